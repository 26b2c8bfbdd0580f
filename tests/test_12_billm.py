"""DEF-BILLM, DEF-STUDY-BILLM — BiLLM's residual binarization, its bit count and the study, on matrices and a tiny MLP."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from natprec.reference.errors import InvalidParameterError, UnknownFormatError

torch = pytest.importorskip("torch", reason="natprec.model needs torch (pip install natprec[torch])")

from natprec.cli import main  # noqa: E402
from natprec.model import MeasuredModel  # noqa: E402
from natprec.studies import STUDIES  # noqa: E402
from natprec.studies import billm as bmod  # noqa: E402
from natprec.studies.billm import (  # noqa: E402
    SCALE_BITS,
    billm_binarize,
    billm_bits,
    billm_study,
    layer_hessian,
    residual_binarize,
    sign_binarize,
)


def tiny_mlp():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 24), torch.nn.Tanh(), torch.nn.Linear(24, 4)).float()
    g = torch.Generator().manual_seed(1)
    return MeasuredModel(model=model, batches=[torch.randn(10, 8, generator=g) for _ in range(2)], distortion="mse",
                         description="tiny mlp")


@pytest.mark.spec("DEF-BILLM")
def test_residual_binarization_each_order_is_mean_plus_mad_sign_and_never_worse():
    rng = np.random.default_rng(0)
    w = rng.standard_normal((5, 40)) * np.linspace(0.5, 3, 40)
    m = rng.random(w.shape) < 0.6
    q1 = residual_binarize(w, m, 1)
    for r in range(5):
        v = w[r, m[r]]
        mu = v.mean()
        alpha = np.abs(v - mu).mean()
        assert np.allclose(q1[r, m[r]], mu + alpha * np.where(v - mu >= 0, 1, -1))
        assert np.all(q1[r, ~m[r]] == 0)
        # α = mean |v − μ| is the L2-optimal scale of sgn(v − μ): any other scale does worse.
        for a in (alpha * 0.9, alpha * 1.1):
            assert np.sum((v - mu - a * np.sign(v - mu)) ** 2) > np.sum((v - q1[r, m[r]]) ** 2)
    errs = [np.sum(((w - residual_binarize(w, m, k)) * m) ** 2) for k in (1, 2, 3)]
    assert errs[0] >= errs[1] >= errs[2]
    # Distinct values per row: at most 2^order.
    assert all(len(np.unique(residual_binarize(w, m, 2)[r, m[r]])) <= 4 for r in range(5))
    s = sign_binarize(w)
    assert np.allclose(np.abs(s), np.abs(w).mean(axis=1, keepdims=True))


@pytest.mark.spec("DEF-BILLM")
def test_billm_finds_outlier_columns_and_beats_sign_binarization():
    rng = np.random.default_rng(1)
    w = rng.standard_normal((32, 64))
    w[:, [5, 17, 40]] *= 12.0  # three outlier input channels
    x = rng.standard_normal((500, 64))
    q, counts = billm_binarize(w, layer_hessian(x), block=64, max_salient=10)
    assert counts["blocks"][0]["salient"] >= 3 and counts["salient_weights"] == 32 * counts["salient_columns"]
    assert np.sum((q - w) ** 2) < np.sum((sign_binarize(w) - w) ** 2) / 2
    # Per row: ≤ 4 values on the salient columns, ≤ 2 on each non-salient group (≤ 8 in all).
    assert max(len(np.unique(q[r])) for r in range(32)) <= 8


@pytest.mark.spec("DEF-BILLM")
def test_compensation_is_gptq_block_update():
    rng = np.random.default_rng(2)
    w = rng.standard_normal((8, 48))
    x = rng.standard_normal((300, 48)) @ rng.standard_normal((48, 48))  # correlated inputs
    h = layer_hessian(x)
    assert np.allclose(h, 2 * x.T @ x / 300)
    # One block: nothing to its right, compensation changes nothing.
    a, _ = billm_binarize(w, h, block=48)
    b, _ = billm_binarize(w, h, block=48, compensate=False)
    assert np.array_equal(a, b)
    # Uncorrelated inputs (diagonal H): U is diagonal, the update is zero.
    hd = np.diag(np.diag(h))
    a, _ = billm_binarize(w, hd, block=16)
    b, _ = billm_binarize(w, hd, block=16, compensate=False)
    assert np.allclose(a, b)
    # Correlated inputs: the compensated binarization has the lower layer-output error tr(E H Eᵀ) here.
    a, _ = billm_binarize(w, h, block=16)
    b, _ = billm_binarize(w, h, block=16, compensate=False)
    assert np.trace((a - w) @ h @ (a - w).T) < np.trace((b - w) @ h @ (b - w).T)


@pytest.mark.spec("DEF-BILLM")
def test_bits_are_counted_honestly():
    counts = {"rows": 4, "cols": 200, "salient_weights": 4 * 3,
              "blocks": [{"cols": 128, "salient": 2, "sparse": 126}, {"cols": 72, "salient": 1, "sparse": 0}]}
    b = billm_bits(counts)
    n = 800
    signs = n + 12
    flags = 4 * 126 + 4 * 71
    scales = 8 * SCALE_BITS * 4 * 2
    assert b["signs"] == signs / n and b["flags"] == flags / n and b["scales"] == scales / n
    assert b["stored"] == (signs + 200 + flags + scales) / n
    hb = -(0.25 * math.log2(0.25) + 0.75 * math.log2(0.75))  # 126 sparse of 504 non-salient in block 1
    assert b["entropy_coded"] == pytest.approx((signs + 200 + 504 * hb + scales) / n)


@pytest.mark.spec("DEF-BILLM")
def test_bad_input_is_named():
    with pytest.raises(InvalidParameterError, match="square H") as e:
        billm_binarize(np.zeros((3, 4)), np.eye(5))
    assert e.value.value == (5, 5)
    with pytest.raises(InvalidParameterError, match="non-finite"):
        billm_binarize(np.array([[np.nan, 1.0]]), np.eye(2))
    with pytest.raises(InvalidParameterError, match="block") as e:
        billm_binarize(np.ones((2, 2)), np.eye(2), block=1)
    assert e.value.value == 1
    with pytest.raises(InvalidParameterError, match="non-empty"):
        layer_hessian(np.zeros((0, 3)))
    mm = tiny_mlp()
    with pytest.raises(InvalidParameterError, match="--block") as e:
        billm_study(mm, sites="*", block=1)
    assert e.value.value == 1
    with pytest.raises(UnknownFormatError) as e:
        billm_study(mm, sites="*", formats="int4,bogus9")
    assert e.value.value == "bogus9"
    with pytest.raises(InvalidParameterError, match="--sites"):
        billm_study(mm, sites="nothing.*")


@pytest.mark.spec("DEF-STUDY-BILLM")
def test_study_on_a_tiny_mlp_and_a_failing_layer_lands_in_errors(monkeypatch):
    doc = billm_study(tiny_mlp(), sites="*", formats=("int4",))
    assert [r["site"] for r in doc["results"]["layers"]] == ["0.weight", "2.weight"] and not doc["errors"]
    m = doc["results"]["layers"][1]["methods"]
    assert set(m) == {"billm", "billm_no_compensation", "sign", "int4"}
    assert m["sign"]["bits_per_weight"] == 1 + SCALE_BITS / 24 and m["int4"]["bits_per_weight"] == 4 + 32 / 24
    assert m["billm"]["weight_rel_mse"] < m["sign"]["weight_rel_mse"] and m["billm"]["task"] >= 0
    assert {c["id"] for c in doc["claims"]} == {"C-002-9.2-4", "C-002-9.1-1"}
    json.dumps(doc, allow_nan=False)
    real = bmod.billm_binarize
    monkeypatch.setattr(bmod, "billm_binarize", lambda w, h, **k: (_ for _ in ()).throw(np.linalg.LinAlgError("singular"))
                        if w.shape == (24, 8) else real(w, h, **k))
    doc = billm_study(tiny_mlp(), sites="*", formats=("int4",))
    assert doc["errors"] == [{"what": "0.weight", "error": "LinAlgError: singular"}] and len(doc["results"]["layers"]) == 1


@pytest.mark.spec("DEF-STUDY-BILLM")
def test_cli_runs_the_study_on_a_tiny_model(tmp_path, capsys, monkeypatch):
    import natprec.cli.report as cli_report

    monkeypatch.setattr(cli_report, "load_model", lambda *a, **k: tiny_mlp())
    assert STUDIES["billm"].run is billm_study
    assert main(["study", "billm", "--sites", "*", "--formats", "int4,nf4", "--out", str(tmp_path)]) == 0
    text = capsys.readouterr().out
    assert "C-002-9.2-4" in text and "billm_no_compensation" in text
    assert (tmp_path / "billm.json").exists() and (tmp_path / "billm.png").exists()
