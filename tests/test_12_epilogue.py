"""DEF-EPILOGUE-REAL — the epilogue study: the reference's orders and double rounding applied to captured values."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from natprec.reference import double_rounding, epilogue_order_comparison
from natprec.reference.epilogue import activation_f32
from natprec.reference.errors import InvalidParameterError

torch = pytest.importorskip("torch", reason="natprec.model needs torch (pip install natprec[torch])")

from natprec.cli import main  # noqa: E402
from natprec.model import MeasuredModel  # noqa: E402
from natprec.studies import STUDIES  # noqa: E402
from natprec.studies.epilogue import activation_minimum, epilogue_layer, epilogue_study  # noqa: E402


def tiny(bad_second=False):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.GELU(), torch.nn.Linear(16, 12), torch.nn.GELU())
    if bad_second:
        with torch.no_grad():
            model[2].bias[3] = float("inf")
    return MeasuredModel(model=model, batches=[torch.randn(5, 8) * 3, torch.randn(3, 8) * 3], description="tiny")


@pytest.mark.spec("DEF-EPILOGUE-REAL")
def test_activation_minimum_is_where_the_derivative_vanishes():
    from scipy.optimize import brentq
    from scipy.special import erf

    def dgelu(t):  # d/dt ½t(1 + erf(t/√2)) = Φ(t) + t φ(t)
        return 0.5 * (1 + erf(t / math.sqrt(2))) + t * math.exp(-t * t / 2) / math.sqrt(2 * math.pi)

    def dsilu(t):
        s = 1 / (1 + math.exp(-t))
        return s * (1 + t * (1 - s))

    assert activation_minimum("gelu") == pytest.approx(brentq(dgelu, -2, 0), abs=1e-4)
    assert activation_minimum("silu") == pytest.approx(brentq(dsilu, -3, 0), abs=1e-4)
    assert activation_minimum("relu") == -math.inf and activation_minimum("identity") == -math.inf


@pytest.mark.spec("DEF-EPILOGUE-REAL")
def test_layer_is_the_reference_on_the_values():
    v = np.random.default_rng(1).normal(0, 2, 5000).astype(np.float32)
    got = epilogue_layer(v, formats=("float8_e4m3fn", "float4_e2m1fn"), mids=("bfloat16",))
    assert got["n"] == 5000 and got["nonmonotone_fraction"] == pytest.approx(float(np.mean(v < activation_minimum("gelu"))))
    for f in got["formats"]:
        ref = epilogue_order_comparison(v, 1.0, 0.0, "gelu", f["format"], store="bfloat16")
        for row, c in zip(f["orders"], ref):
            assert (row["order"], row["differ"], row["worse"], row["better"], row["mse_order"]) == \
                (c.order, c.differ, c.worse, c.better, c.mse_order)
            assert row["mse_ratio"] == pytest.approx(c.mse_order / c.mse_fused)
        assert f["relu_control_differ"] == 0  # THM-ORDER-NOT-STRICT on any values
        d = double_rounding(activation_f32(v, "gelu"), "bfloat16", f["format"])
        assert f["double_rounding"][0]["differ"] == d.differ and f["double_rounding"][0]["double_better"] == 0


@pytest.mark.spec("DEF-EPILOGUE-REAL")
def test_study_captures_each_layer_and_a_failing_layer_lands_in_errors():
    doc = epilogue_study(tiny(), modules=("0", "2"), formats=("float8_e4m3fn",), mids=("bfloat16",), max_values=50)
    assert [lay["module"] for lay in doc["results"]["layers"]] == ["0", "2"]
    assert [lay["n_total"] for lay in doc["results"]["layers"]] == [8 * 16, 8 * 12]
    assert all(lay["n"] == 50 for lay in doc["results"]["layers"]) and not doc["errors"]
    assert {c["id"] for c in doc["claims"]} == {"C-000-3-1", "C-000-3-2", "C-000-3-3"}
    json.dumps(doc, allow_nan=False)  # JSON-able, no NaN
    # all values of layer 0 without sampling: its quantize-then-activate row is the reference's on those values
    full = epilogue_study(tiny(), modules=("0",), formats=("float8_e5m2",), mids=("float16",), max_values=10**6)
    m = tiny().model
    with torch.no_grad():
        v = torch.cat([m[0](b) for b in tiny().batches]).numpy().ravel()
    ref = epilogue_order_comparison(v, 1.0, 0.0, "gelu", "float8_e5m2")[0]
    assert full["results"]["layers"][0]["formats"][0]["orders"][0]["worse"] == ref.worse
    bad = epilogue_study(tiny(bad_second=True), modules=("0", "2"), formats=("float8_e4m3fn",), mids=("bfloat16",))
    assert [e["what"] for e in bad["errors"]] == ["2"] and "non-finite" in bad["errors"][0]["error"]
    assert "formats" in bad["results"]["layers"][0] and "error" in bad["results"]["layers"][1]


@pytest.mark.spec("DEF-EPILOGUE-REAL")
@pytest.mark.parametrize("kw,value", [({"formats": ("nvfp4",)}, "nvfp4"), ({"formats": ("nope",)}, "nope"),
                                      ({"activation": "tanh"}, "tanh"), ({"max_values": 0}, 0),
                                      ({"mids": ("mxfp4",)}, "mxfp4"), ({"modules": ("nothing*",)}, "nothing*")])
@pytest.mark.spec("DEF-EPILOGUE-REAL")
def test_bad_options_are_named_errors(kw, value):
    with pytest.raises(InvalidParameterError) as e:
        epilogue_study(tiny(), **{"modules": ("0",), **kw})
    assert e.value.value == value


@pytest.mark.spec("DEF-EPILOGUE-REAL")
def test_cli_runs_the_study(tmp_path, capsys, monkeypatch):
    import natprec.cli.report as cli_report

    monkeypatch.setattr(cli_report, "load_model", lambda *a, **k: tiny())
    assert STUDIES["epilogue"].run is epilogue_study
    rc = main(["study", "epilogue", "--modules", "0,2", "--formats", "float8_e4m3fn", "--max-values", "40",
               "--out", str(tmp_path / "o")])
    assert rc == 0
    text = capsys.readouterr().out
    assert "C-000-3-1" in text and (tmp_path / "o" / "epilogue.json").exists() and (tmp_path / "o" / "epilogue_order.png").exists()
    doc = json.loads((tmp_path / "o" / "epilogue.json").read_text())
    assert doc["settings"]["max_values"] == 40 and doc["settings"]["formats"] == ["float8_e4m3fn"]
