"""DEF-SEED003-REAL — seed 003 on weights: β with intervals, operating points against R(D), amplification."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from natprec.model.quantize import site_format
from natprec.reference import ggd
from natprec.reference.errors import InvalidParameterError

torch = pytest.importorskip("torch", reason="natprec.model needs torch (pip install natprec[torch])")

from natprec.cli import main  # noqa: E402
from natprec.model import MeasuredModel  # noqa: E402
from natprec.studies import STUDIES  # noqa: E402
from natprec.studies.seed003 import bootstrap_beta, format_against_rd, seed003_study, spearman_rho  # noqa: E402


def tiny(zero_second=False):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.Tanh(), torch.nn.Linear(32, 8))
    if zero_second:
        with torch.no_grad():
            model[2].weight.zero_()
    return MeasuredModel(model=model, batches=[torch.randn(6, 16), torch.randn(4, 16)], description="tiny")


@pytest.mark.spec("DEF-SEED003-REAL")
def test_bootstrap_is_seeded_and_covers_the_true_shape():
    w = ggd.sample(200 * 200, 1.5, rng=np.random.default_rng(3)).reshape(200, 200)
    a = bootstrap_beta(w, 20, np.random.default_rng(7))
    assert np.array_equal(a, bootstrap_beta(w, 20, np.random.default_rng(7)))
    assert np.percentile(a, 2.5) - 0.05 <= 1.5 <= np.percentile(a, 97.5) + 0.05
    assert abs(np.mean(a) - ggd.fit_ml(w).beta) < 0.05


@pytest.mark.spec("DEF-SEED003-REAL")
def test_operating_point_against_the_gaussian_closed_form():
    w = np.random.default_rng(0).normal(0, 0.05, (64, 256)).astype(np.float32)
    p = format_against_rd(w, "int4", 2.0)
    wq = site_format("int4").quantize_dequantize(w, per_channel=True)
    mse = float(np.mean((wq.astype(np.float64) - w) ** 2))
    assert p["mse"] == pytest.approx(mse, rel=1e-12)
    assert p["distortion"] == pytest.approx(mse / float(np.mean(w.astype(np.float64) ** 2)), rel=1e-12)
    assert p["bits"] == 4 + 32 / 256  # one float32 scale per row
    assert p["rd_bits"] == pytest.approx(0.5 * math.log2(1 / p["distortion"]), abs=5e-3)  # R(D) of N(0, 1)
    assert p["slb_bits"] == pytest.approx(0.5 * math.log2(1 / p["distortion"]), abs=1e-12)  # SLB exact at β = 2
    assert p["gap_bits"] == pytest.approx(p["bits"] - p["rd_bits"])
    blk = format_against_rd(w, "nf4_absmax64", 2.0)
    assert blk["bits"] == 4.5
    hi = format_against_rd(w, "int8", 2.0)  # D below what the BA grid resolves: no R(D), SLB kept
    assert hi["rd_bits"] is None and hi["slb_bits"] is not None


@pytest.mark.spec("DEF-SEED003-REAL")
def test_spearman():
    assert spearman_rho([1, 2, 3, 4], [10, 20, 30, 50]) == pytest.approx(1.0)
    assert spearman_rho([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    assert spearman_rho([1, 2], [1, 2]) is None


@pytest.mark.spec("DEF-SEED003-REAL")
def test_study_amplification_is_output_mse_over_weight_mse_and_failures_go_to_errors():
    doc = seed003_study(tiny(), sites="*", formats=("int4", "nf4"), bootstrap=5)
    assert [s["site"] for s in doc["results"]["sites"]] == ["0.weight", "2.weight"] and not doc["errors"]
    json.dumps(doc, allow_nan=False)
    # A_v by hand for 2.weight at int4: quantize it per row, run the model, compare the outputs
    mm = tiny()
    m = mm.model
    with torch.no_grad():
        ref = [m(b) for b in mm.batches]
    w = m[2].weight.detach().clone().numpy()
    wq = site_format("int4").quantize_dequantize(w, per_channel=True)
    with torch.no_grad():
        m[2].weight.copy_(torch.from_numpy(wq))
        out = [m(b) for b in mm.batches]
    out_mse = float(sum(((o - r).double() ** 2).mean(1).sum() for o, r in zip(out, ref)) / 10)
    w_mse = float(np.mean((wq.astype(np.float64) - w) ** 2))
    a = doc["results"]["sites"][1]["amplification"][0]
    assert a["format"] == "int4" and a["amplification"] == pytest.approx(out_mse / w_mse, rel=1e-5)
    s0 = doc["results"]["sites"][0]
    assert s0["beta"] == pytest.approx(ggd.fit_ml(m[0].weight.detach().numpy()).beta)
    assert s0["beta_ci_bootstrap"][0] <= s0["beta_ci_bootstrap"][1] and s0["bootstrap"] == 5
    bad = seed003_study(tiny(zero_second=True), sites="*", formats=("int4",), bootstrap=3)
    assert [e["what"] for e in bad["errors"]] == ["2.weight"] and "error" in bad["results"]["sites"][1]
    assert "beta" in bad["results"]["sites"][0]


@pytest.mark.spec("DEF-SEED003-REAL")
@pytest.mark.parametrize("kw,value", [({"formats": ("bogus",)}, "bogus"), ({"amplification_formats": ("int0x",)}, "int0x"),
                                      ({"bootstrap": 0}, 0), ({"sites": "nothing*"}, "nothing*")])
@pytest.mark.spec("DEF-SEED003-REAL")
def test_bad_options_are_named_errors(kw, value):
    with pytest.raises(InvalidParameterError) as e:
        seed003_study(tiny(), **{"sites": "*", **kw})
    assert e.value.value == value


@pytest.mark.spec("DEF-SEED003-REAL")
def test_cli_runs_the_study(tmp_path, capsys, monkeypatch):
    import natprec.cli.report as cli_report

    monkeypatch.setattr(cli_report, "load_model", lambda *a, **k: tiny())
    assert STUDIES["seed003"].run is seed003_study
    rc = main(["study", "seed003", "--sites", "*", "--formats", "int4", "--bootstrap", "3", "--out", str(tmp_path / "o")])
    assert rc == 0
    assert "C-003-1-1" in capsys.readouterr().out
    assert {p.name for p in (tmp_path / "o").iterdir()} == {"seed003.json", "seed003_beta.png", "seed003_rd.png"}
