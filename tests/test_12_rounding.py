"""DEF-STOCHASTIC-ROUNDING, DEF-STUDY-ROUNDING — stochastic vs round-to-nearest rounding and the widening test,
against exact expectations on matrices and a tiny MLP built here."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from natprec.reference.errors import InvalidParameterError

torch = pytest.importorskip("torch", reason="natprec.model needs torch (pip install natprec[torch])")

from natprec.cli import main  # noqa: E402
from natprec.model import MeasuredModel, site_format  # noqa: E402
from natprec.studies import STUDIES  # noqa: E402
from natprec.studies import rounding as rmod  # noqa: E402
from natprec.studies.rounding import expansion_noise, grid_step, rounding_errors, rounding_study, stochastic_round  # noqa: E402

Z = 5.0  # two-sided 5σ: a correct implementation fails a check with probability < 6e-7 (seeded anyway)


def weights(rows=6, cols=40, seed=3):
    return np.random.default_rng(seed).standard_normal((rows, cols)).astype(np.float32)


def tiny_mlp(batches=2):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 24), torch.nn.Tanh(), torch.nn.Linear(24, 4)).float()
    g = torch.Generator().manual_seed(1)
    return MeasuredModel(model=model, batches=[torch.randn(10, 8, generator=g) for _ in range(batches)], distortion="mse",
                         description="tiny mlp")


@pytest.mark.spec("DEF-STOCHASTIC-ROUNDING")
@pytest.mark.parametrize("bits", [4, 8])
def test_stochastic_rounding_is_unbiased_elementwise(bits):
    w = weights()
    draws = 4000
    wq, s, p = stochastic_round(w, bits, np.random.default_rng(11), draws)
    y = np.divide(w, s, dtype=np.float32).astype(np.float64)
    target = y * s  # E[ŵ] exactly: fl32(w/Δ)·Δ
    mean = wq.astype(np.float64).mean(axis=0)
    sd = np.sqrt(p * (1 - p)) * s / math.sqrt(draws)
    # Every element within Z standard errors of its expectation (the float32 product adds at most ½ ulp of |ŵ|).
    slack = np.abs(target) * 2.0**-24
    assert np.all(np.abs(mean - target) <= Z * sd + slack)
    # The aggregate: Σ mean errors over its standard deviation is N(0, 1) when unbiased.
    z = (mean - target).sum() / math.sqrt(float(np.sum(sd**2)))
    assert abs(z) < Z
    # And the expectation is the weight itself up to the float32 rounding of y = w/Δ (≤ ½ ulp of y, times Δ).
    assert np.all(np.abs(target - w) <= np.abs(y) * 2.0**-24 * s + 1e-30)


@pytest.mark.spec("DEF-STOCHASTIC-ROUNDING")
def test_stochastic_rounding_variance_is_p_one_minus_p_step_squared():
    w = weights(4, 30, seed=5)
    draws = 4000
    wq, s, p = stochastic_round(w, 4, np.random.default_rng(2), draws)
    e = wq.astype(np.float64) - np.divide(w, s, dtype=np.float32).astype(np.float64) * s
    # e is −pΔ with probability 1 − p and (1 − p)Δ with probability p: E e² = p(1−p)Δ², E e⁴ = p(1−p)(p³ + (1−p)³)Δ⁴.
    m2 = p * (1 - p) * s**2
    m4 = p * (1 - p) * (p**3 + (1 - p) ** 3) * s**4
    se = np.sqrt((m4 - m2**2) / draws)
    assert np.all(np.abs((e**2).mean(axis=0) - m2) <= Z * se + 1e-12 * s**2)
    assert np.all(m2 <= s**2 / 4)
    # Only the two neighbours of y are ever produced.
    y = np.divide(w, s, dtype=np.float32).astype(np.float64)
    codes = np.rint(wq.astype(np.float64) / s)
    assert np.all((codes == np.floor(y)) | (codes == np.floor(y) + 1))


@pytest.mark.spec("DEF-STOCHASTIC-ROUNDING")
def test_round_to_nearest_bound_and_the_grid_is_the_site_format_grid():
    w = weights(8, 64, seed=9)
    for bits in (2, 4, 8):
        s = grid_step(w, bits)
        assert np.allclose(s[:, 0], np.abs(w).max(axis=1) / ((1 << (bits - 1)) - 1), rtol=2**-23)
        e = site_format(f"int{bits}").quantize_dequantize(w, per_channel=True).astype(np.float64) - w
        assert np.all(np.abs(e) <= s / 2 * (1 + 2.0**-20))
        # On the grid (y an integer) p = 0 and stochastic rounding is round-to-nearest.
        qmax = (1 << (bits - 1)) - 1
        k = np.random.default_rng(bits).integers(-qmax, qmax + 1, (5, 12))
        k[:, 0] = qmax
        on_grid = (k * 0.0625).astype(np.float32)  # absmax = qmax/16, so Δ = 1/16 exactly and every y is an integer
        sr, _, p = stochastic_round(on_grid, bits, np.random.default_rng(0), 3)
        assert np.all(p == 0) and np.array_equal(sr[0], site_format(f"int{bits}").quantize_dequantize(on_grid, per_channel=True))
    r = rounding_errors(np.random.default_rng(4).standard_normal((64, 256)).astype(np.float32), 4, draws=16, seed=1)
    assert r["rtn_max_over_half_step"] <= 1 + 1e-5 and abs(r["sr_bias_z"]) < Z
    # Gaussian weights on a 15-level grid: fractional parts nearly uniform, so MSE ≈ Δ²/12 and SR ≈ 2× (Δ²/6).
    assert 0.9 < r["rtn_mse_over_step2_12"] < 1.1 and 1.8 < r["sr_over_rtn_mse"] < 2.2
    assert abs(r["sr_mse_over_predicted"] - 1) < 0.05 and r["sr_max_p1p"] <= 0.25


@pytest.mark.spec("DEF-STUDY-ROUNDING")
def test_widening_averages_stochastic_noise_and_not_deterministic_noise():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((300, 16))
    w1 = rng.standard_normal((32, 16)).astype(np.float32)
    w2 = rng.standard_normal((8, 32))
    ident = torch.nn.Identity()
    r = expansion_noise(x, w1, None, w2, ident, bits=4, copies=2, draws=400, seed=1)
    assert r["rank_w2"] == 8 and r["isotropic"] == 1 - 8 / 32 and r["isotropic_widened"] == 1 - 8 / 64
    # RTN: the copies round alike — the widened net carries exactly the same noise to layer 2.
    assert r["rtn"]["delivered_ratio"] == pytest.approx(1.0, rel=1e-12)
    assert r["rtn"]["null_fraction_widened"] == pytest.approx(r["rtn"]["null_fraction"], rel=1e-12)
    # SR: m independent draws averaged by W2/m — E[delivered] = 1/m of one draw's (linear activation: exact).
    # 200 trials of a sum over 300 tokens × 8 outputs: relative standard error well under 10 %.
    assert r["sr"]["delivered_ratio"] == pytest.approx(0.5, rel=0.1)
    # Zero-gain units: their noise is all in the null space, the share rises, nothing reaches layer 2 differently.
    z = r["rtn"]["null_fraction_zero_gain"]
    assert z == pytest.approx(1 - (1 - r["rtn"]["null_fraction"]) / 2) and r["rtn"]["delivered_ratio_zero_gain"] == 1.0
    t = expansion_noise(x, w1, np.zeros(32), w2, torch.tanh, bits=4, copies=3, draws=6, seed=1)
    assert t["rtn"]["delivered_ratio"] == pytest.approx(1.0, rel=1e-12) and t["sr"]["trials"] == 2


@pytest.mark.spec("DEF-STOCHASTIC-ROUNDING")
def test_bad_input_is_named():
    with pytest.raises(InvalidParameterError, match="2-D") as e:
        stochastic_round(np.zeros(5, np.float32), 4, np.random.default_rng(0))
    assert e.value.value == (5,)
    with pytest.raises(InvalidParameterError, match="non-finite"):
        stochastic_round(np.array([[1.0, np.nan]], np.float32), 4, np.random.default_rng(0))
    with pytest.raises(InvalidParameterError, match="do not chain"):
        expansion_noise(np.zeros((3, 4)), np.zeros((5, 4), np.float32), None, np.zeros((2, 6)), lambda t: t)
    mm = tiny_mlp()
    for kw, flag, val in (({"bits": (4, 9)}, "--bits", 9), ({"draws": 1}, "--draws", 1), ({"copies": 1}, "--copies", 1),
                          ({"sites": ""}, "--sites", "")):
        with pytest.raises(InvalidParameterError, match=flag) as e:
            rounding_study(mm, **kw)
        assert e.value.value == val
    with pytest.raises(InvalidParameterError, match="--expansion"):
        rounding_study(mm, sites="*", expansion="nothing.here")


@pytest.mark.spec("DEF-STUDY-ROUNDING")
def test_study_on_a_tiny_mlp_and_a_failing_layer_lands_in_errors(monkeypatch):
    doc = rounding_study(tiny_mlp(), sites="*", bits=(4,), draws=4)
    assert [r["site"] for r in doc["results"]["layers"]] == ["0.weight", "2.weight"] and not doc["errors"]
    r = doc["results"]["layers"][0]["bits"]["4"]
    assert r["rtn_max_over_half_step"] <= 1 + 1e-5 and r["task_rtn"] >= 0 and r["out_sr_mean"] >= 0
    e = doc["results"]["expansion"]
    assert (e["first"], e["second"], e["activation"]) == ("0", "2", "Tanh") and e["rtn"]["delivered_ratio"] == pytest.approx(1.0)
    assert {c["id"] for c in doc["claims"]} == {"C-002-9.2-2", "C-002-9.2-3"}
    json.dumps(doc, allow_nan=False)
    real = rmod.rounding_errors
    monkeypatch.setattr(rmod, "rounding_errors", lambda w, b, **k: (_ for _ in ()).throw(ValueError("boom"))
                        if w.shape == (4, 24) else real(w, b, **k))
    doc = rounding_study(tiny_mlp(), sites="*", bits=(4,), draws=4, expansion="none")
    assert doc["errors"] == [{"what": "2.weight", "error": "ValueError: boom"}] and len(doc["results"]["layers"]) == 1


@pytest.mark.spec("DEF-STUDY-ROUNDING")
def test_cli_runs_the_study_on_a_tiny_model(tmp_path, capsys, monkeypatch):
    import natprec.cli.report as cli_report

    monkeypatch.setattr(cli_report, "load_model", lambda *a, **k: tiny_mlp())
    assert STUDIES["rounding"].run is rounding_study
    assert main(["study", "rounding", "--sites", "*", "--bits", "4", "--draws", "4", "--out", str(tmp_path)]) == 0
    text = capsys.readouterr().out
    assert "C-002-9.2-2" in text and "widening 0 ×2" in text
    assert (tmp_path / "rounding.json").exists() and (tmp_path / "rounding.png").exists()
