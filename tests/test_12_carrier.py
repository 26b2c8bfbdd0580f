"""DEF-STUDY-CARRIER, THM-CARRIER-GAIN — the residual carrier study on a tiny BERT built here, and its SNR arithmetic."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from natprec.reference.errors import InvalidParameterError, NonFiniteInputError

torch = pytest.importorskip("torch", reason="natprec.model needs torch (pip install natprec[torch])")
transformers = pytest.importorskip("transformers")

from natprec.cli import main  # noqa: E402
from natprec.model import MeasuredModel, site_format  # noqa: E402
from natprec.model.resolution import grid_step  # noqa: E402
from natprec.studies import STUDIES  # noqa: E402
from natprec.studies import carrier as carrier_mod  # noqa: E402
from natprec.studies.carrier import (  # noqa: E402
    carrier_gain_db,
    carrier_lines,
    carrier_study,
    find_residual_adds,
    snr_db,
)


def tiny_bert(layers=2, batches=2):
    torch.manual_seed(0)
    cfg = transformers.BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=layers, num_attention_heads=2,
                                  intermediate_size=32, max_position_embeddings=32, attn_implementation="eager")
    model = transformers.BertModel(cfg, add_pooling_layer=False).eval()
    g = torch.Generator().manual_seed(1)
    data = []
    for _ in range(batches):
        ids = torch.randint(0, 50, (4, 7), generator=g)
        mask = torch.ones(4, 7, dtype=torch.long)
        mask[0, 5:] = 0  # one padded sentence
        data.append({"input_ids": ids, "attention_mask": mask})

    def out(o, batch):
        return o.last_hidden_state.mean(dim=1)
    return MeasuredModel(model=model, batches=data, output_fn=out, distortion="mse",
                         token_mask=lambda b: b["attention_mask"].bool(), description="tiny-bert")


finite = st.floats(-100, 100, allow_nan=False, width=64)


@pytest.mark.spec("THM-CARRIER-GAIN")
@settings(max_examples=60, deadline=None)
@given(r=arrays(np.float64, 12, elements=finite), a=arrays(np.float64, 12, elements=finite),
       n=arrays(np.float64, 12, elements=finite))
def test_gain_is_the_snr_difference_for_noise_on_the_branch(r, a, n):
    s, pa, pn = float(np.sum((r + a) ** 2)), float(np.sum(a ** 2)), float(np.sum(n ** 2))
    if pa == 0 or pn == 0 or s == 0:
        return
    assert snr_db(s, pn) - snr_db(pa, pn) == pytest.approx(carrier_gain_db(r, a), abs=1e-9)
    assert carrier_gain_db(r, a) == pytest.approx(10 * math.log10(s / pa), abs=1e-12)


@pytest.mark.spec("THM-CARRIER-GAIN")
def test_snr_arithmetic_is_linear_first():
    # ‖r+a‖²/‖a‖² = 16: +12.04 dB; the seed's 1.2 dB branch then reads 13.24 dB at the sum.
    r, a = np.full(4, 3.0), np.ones(4)
    assert carrier_gain_db(r, a) == pytest.approx(10 * math.log10(16))
    assert snr_db(4.0, 4.0 / 10 ** 0.12) + carrier_gain_db(r, a) == pytest.approx(1.2 + 10 * math.log10(16))
    # Two orthogonal noises add in power, not in dB: S/(N1+N2), 3.01 dB below either alone at equal N.
    assert snr_db(100.0, 1.0 + 1.0) == pytest.approx(snr_db(100.0, 1.0) - 10 * math.log10(2))
    assert snr_db(1.0, 0.0) == math.inf and snr_db(0.0, 1.0) == -math.inf
    with pytest.raises(InvalidParameterError) as e:
        snr_db(-1.0, 1.0)
    assert e.value.value == (-1.0, 1.0)
    with pytest.raises(InvalidParameterError):
        carrier_gain_db(np.ones(3), np.ones(4))
    with pytest.raises(NonFiniteInputError):
        carrier_gain_db(np.array([np.nan]), np.ones(1))


@pytest.mark.spec("DEF-STUDY-CARRIER")
def test_adds_found_on_bert_and_a_named_error_elsewhere():
    mm = tiny_bert()
    adds = find_residual_adds(mm.model)
    assert [(a.layer, a.branch, a.index) for a in adds] == [("encoder.layer.0", "attention", 0), ("encoder.layer.0", "ffn", 0),
                                                             ("encoder.layer.1", "attention", 1), ("encoder.layer.1", "ffn", 1)]
    assert adds[0].block == "encoder.layer.0.attention.output" and adds[1].block == "encoder.layer.0.output"
    with pytest.raises(InvalidParameterError, match="no post-LN residual block") as e:
        find_residual_adds(torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.LayerNorm(4)))
    assert e.value.value == "Sequential"


def _oracle(mm):
    """r and a at every add, taken independently: r = the layer's input (attention) or the attention LayerNorm's
    output (ffn); a = the dense output; real positions only."""
    model = mm.model
    got = {}
    hooks = []
    for i, layer in enumerate(model.encoder.layer):
        hooks.append(layer.register_forward_pre_hook(
            lambda m, args, kw=None, i=i: got.setdefault((i, "attention", "r"), []).append(args[0].detach())))
        hooks.append(layer.attention.output.LayerNorm.register_forward_hook(
            lambda m, args, out, i=i: got.setdefault((i, "ffn", "r"), []).append(out.detach())))
        hooks.append(layer.attention.output.dense.register_forward_hook(
            lambda m, args, out, i=i: got.setdefault((i, "attention", "a"), []).append(out.detach())))
        hooks.append(layer.output.dense.register_forward_hook(
            lambda m, args, out, i=i: got.setdefault((i, "ffn", "a"), []).append(out.detach())))
    with torch.no_grad():
        for b in mm.batches:
            model(**b)
    for h in hooks:
        h.remove()
    masks = [b["attention_mask"].bool() for b in mm.batches]
    return {k: np.concatenate([t[m].double().numpy() for t, m in zip(v, masks, strict=True)]) for k, v in got.items()}, masks


@pytest.mark.spec("DEF-STUDY-CARRIER")
def test_study_measures_r_and_a_as_an_independent_capture_does():
    mm = tiny_bert()
    ref, masks = _oracle(mm)
    doc = carrier_study(mm, tolerance=1e-4, table_bits=4)
    assert doc["errors"] == [] and len(doc["results"]["adds"]) == 4
    for rec in doc["results"]["adds"]:
        r, a = ref[(rec["index"], rec["branch"], "r")], ref[(rec["index"], rec["branch"], "a")]
        assert rec["positions"] == r.shape[0] == sum(int(m.sum()) for m in masks)
        assert rec["gain_db"] == pytest.approx(carrier_gain_db(r, a), abs=1e-9)
        assert rec["carrier_to_signal_db"] == pytest.approx(10 * math.log10((r ** 2).sum() / (a ** 2).sum()), abs=1e-9)
        for p in rec["protocol"].values():
            # the gain is exactly the SNR of the sum minus that of the branch, at every b
            assert p["snr_sum_a_db"] - p["snr_branch_a_db"] == pytest.approx(rec["gain_db"], abs=1e-9)
            assert 0 < p["quadrature_ratio"] < 4
        # b*: the distortion at b* is within ε, the one below (if measured) is not
        for which in ("r", "a"):
            curve = {int(k): v for k, v in rec[f"distortion_{which}"].items()}
            b = rec[f"b_star_{which}"]
            if b is not None:
                assert curve[b] <= 1e-4 and all(v > 1e-4 for k, v in curve.items() if k < b)
    assert [c["id"] for c in doc["claims"]] == ["C-001-7-1", "C-001-7-2", "C-001-7-3"]
    text = "\n".join(carrier_lines(doc))
    assert "encoder.layer.1/ffn" in text and "C-001-7-2" in text
    json.dumps(doc, allow_nan=True)


@pytest.mark.spec("DEF-STUDY-CARRIER")
def test_noise_measures_match_a_direct_computation():
    mm = tiny_bert(layers=1, batches=1)
    doc = carrier_study(mm, layers=(0,))
    rec = doc["results"]["adds"][0]
    blk = mm.model.encoder.layer[0].attention.output
    got = {}
    h1 = blk.register_forward_pre_hook(lambda m, args: got.__setitem__("r", args[1].detach()))
    h2 = blk.dense.register_forward_hook(lambda m, args, out: got.__setitem__("a", out.detach()))
    with torch.no_grad():
        mm.model(**mm.batches[0])
    h1.remove()
    h2.remove()
    mask = mm.batches[0]["attention_mask"].bool()
    fmt = site_format("int3")
    qa = torch.from_numpy(fmt.quantize_dequantize(got["a"].numpy(), per_channel=False))
    qr = torch.from_numpy(fmt.quantize_dequantize(got["r"].numpy(), per_channel=False))
    ea = qa[mask].double().numpy() - got["a"][mask].double().numpy()  # differences in float64, as the study takes them
    er = qr[mask].double().numpy() - got["r"][mask].double().numpy()
    y = got["r"][mask].double().numpy() + got["a"][mask].double().numpy()
    p = rec["protocol"]["3"]
    n = y.shape[0]
    assert p["noise_a"] == pytest.approx((ea ** 2).sum() / n, rel=1e-9)
    assert p["noise_both"] == pytest.approx(((ea + er) ** 2).sum() / n, rel=1e-9)
    assert p["snr_sum_r_db"] == pytest.approx(10 * math.log10((y ** 2).sum() / (er ** 2).sum()), abs=1e-9)
    assert p["corr_signal_noise_a"] == pytest.approx(np.corrcoef(y.ravel(), ea.ravel())[0, 1], abs=1e-9)
    assert p["corr_noise_a_noise_r"] == pytest.approx(np.corrcoef(ea.ravel(), er.ravel())[0, 1], abs=1e-9)


@pytest.mark.spec("DEF-STUDY-CARRIER")
def test_resolution_of_carrier_and_signal_is_a_pass_next_to_a_fail():
    mm = tiny_bert(layers=1, batches=1)
    tol = 1e-7
    doc = carrier_study(mm, tolerance=tol, resolution=True)
    assert doc["settings"]["resolution"] is True
    for rec in doc["results"]["adds"]:
        for which in ("r", "a"):
            res = rec[f"resolution_{which}"]
            curve = {int(k): v for k, v in res["curve"].items()}
            k = res["step_index"]
            assert k is not None and curve[k] <= tol and res["step"] == grid_step(k)
            # the coarser neighbour was measured and fails, unless k is the window's top (every value → 0 passes)
            assert k == res["window"][1] or (k + 1 in curve and curve[k + 1] > tol)
            assert res["cells_bits"] >= math.ceil(res["entropy_bits"]) and res["cells"] >= 1
    assert "the uniform step each needs" in "\n".join(carrier_lines(doc))


@pytest.mark.spec("DEF-STUDY-CARRIER")
def test_bad_options_and_a_failing_add(monkeypatch):
    mm = tiny_bert()
    for kw, val in (({"layers": (-1,)}, -1), ({"layers": (2,)}, 2), ({"tolerance": 0.0}, 0.0), ({"table_bits": 9}, 9),
                    ({"layers": (0, 0)}, (0, 0))):
        with pytest.raises(InvalidParameterError) as e:
            carrier_study(mm, **kw)
        assert e.value.value == val
    real = carrier_mod._task_distortion

    def flaky(torch_, mm_, ad, which, fmt, refs):
        if ad.name == "encoder.layer.0/ffn":
            raise NonFiniteInputError(f"{ad.name}: non-finite model output", value=ad.name)
        return real(torch_, mm_, ad, which, fmt, refs)
    monkeypatch.setattr(carrier_mod, "_task_distortion", flaky)
    doc = carrier_study(mm)
    assert doc["errors"] == [{"what": "encoder.layer.0/ffn", "error": "encoder.layer.0/ffn: non-finite model output"}]
    assert sum("error" in r for r in doc["results"]["adds"]) == 1 and len(doc["results"]["adds"]) == 4
    assert "error" in "\n".join(carrier_lines(doc))


@pytest.mark.spec("DEF-STUDY-CARRIER")
def test_cli_runs_the_study(tmp_path, capsys, monkeypatch):
    import natprec.cli.report as cli_report

    monkeypatch.setattr(cli_report, "load_model", lambda *a, **k: tiny_bert())
    assert STUDIES["carrier"].run is carrier_study
    assert main(["study", "carrier", "--json", "--layers", "1", "--table-bits", "6", "--out", str(tmp_path / "o"), "--no-plots"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["settings"]["layers"] == [1] and doc["settings"]["table_bits"] == 6 and len(doc["results"]["adds"]) == 2
    assert (tmp_path / "o" / "carrier.json").exists()
    assert main(["study", "carrier", "--out", str(tmp_path / "p")]) == 0
    assert "natprec study carrier: tiny-bert" in capsys.readouterr().out
    assert (tmp_path / "p" / "carrier.png").exists() and (tmp_path / "p" / "carrier_precision.png").exists()
    assert main(["study", "carrier", "--table-bits", "1"]) == 2 and "--table-bits must be one of" in capsys.readouterr().err
