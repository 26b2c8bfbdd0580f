"""DEF-STUDY-SHAPING, THM-GPTQ-CALIBRATION — support shaping: the methods' mathematics on small problems, the study on a tiny model."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from natprec.reference import collision_probability
from natprec.reference.errors import InvalidParameterError, UnknownFormatError

torch = pytest.importorskip("torch", reason="natprec.model needs torch (pip install natprec[torch])")

from natprec.cli import main  # noqa: E402
from natprec.model import MeasuredModel, Runner, find_sites, forward_point, site_format  # noqa: E402
from natprec.studies import STUDIES  # noqa: E402
from natprec.studies.shaping import (  # noqa: E402
    awq_scales,
    calibration_error,
    gptq_quantize,
    grid_measures,
    quantize_rows,
    row_scales,
    shaping_lines,
    shaping_study,
    smoothquant_scales,
    svd_split,
)

INT4 = site_format("int4")


def _rtn(w, fmt=INT4):
    return quantize_rows(w, row_scales(w, fmt), fmt)[1]


def tiny(batches=2):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.Tanh(), torch.nn.Linear(16, 4)).float()
    g = torch.Generator().manual_seed(1)
    data = [torch.randn(12, 8, generator=g) for _ in range(batches)]
    return MeasuredModel(model=model, batches=data, distortion="mse", description="tiny")


@pytest.mark.spec("DEF-STUDY-SHAPING")
@settings(max_examples=40, deadline=None)
@given(w=arrays(np.float32, st.tuples(st.integers(1, 5), st.integers(1, 9)), elements=st.floats(-50, 50, width=32)),
       name=st.sampled_from(["int3", "int4", "int8", "nf4", "float8_e4m3fn"]))
def test_fixed_grid_is_the_site_quantizer(w, name):
    fmt = site_format(name)
    assert np.array_equal(_rtn(w, fmt), fmt.quantize_dequantize(w, per_channel=True))


def _oracle_gptq(w, x, fmt, damp):
    """OBQ order-fixed: after column j, the remaining columns F move by −err/[H_F⁻¹]_jj · [H_F⁻¹]_j,F∖j, H_F⁻¹ inverted anew."""
    h = 2 * x.T @ x
    dead = np.diag(h) == 0
    h[dead, dead] = 1
    w64 = w.astype(np.float64)
    w64[:, dead] = 0
    h = h + damp * np.mean(np.diag(h)) * np.eye(h.shape[0])
    s = row_scales(w, fmt)
    q = np.empty_like(w)
    for j in range(w.shape[1]):
        hinv = np.linalg.inv(h[j:, j:])
        q[:, j] = quantize_rows(w64[:, j:j + 1], s, fmt)[1][:, 0]
        err = (w64[:, j] - q[:, j]) / hinv[0, 0]
        w64[:, j + 1:] -= np.outer(err, hinv[0, 1:])
    return q


def _problem(seed, dout=(1, 6), din=(2, 9)):
    rng = np.random.default_rng(seed)
    d_in = int(rng.integers(*din))
    w = rng.standard_normal((int(rng.integers(*dout)), d_in)).astype(np.float32)
    x = rng.standard_normal((4 * d_in, d_in)) @ (np.eye(d_in) + 0.5 * rng.standard_normal((d_in, d_in)))
    return w, x


@pytest.mark.spec("THM-GPTQ-CALIBRATION")
def test_gptq_is_sequential_optimal_brain_quantization():
    for seed in range(40):
        w, x = _problem(seed)
        x[:, 0] = 0 if seed % 5 == 0 else x[:, 0]  # a dead input now and then
        q, _ = gptq_quantize(w, x, INT4, damp=0.01)
        assert np.array_equal(q, _oracle_gptq(w, x, INT4, 0.01)), seed


@pytest.mark.spec("THM-GPTQ-CALIBRATION")
def test_gptq_error_is_the_sum_of_its_column_errors():
    # ‖(W − Ŵ)Xᵀ‖² = ½ Σ_j ‖T_:j − Ŵ_:j‖² / U_jj², U the upper Cholesky factor of H⁻¹ (λ = 0, H = 2XᵀX invertible)
    for seed in range(30):
        w, x = _problem(seed)
        q, t = gptq_quantize(w, x, INT4, damp=0.0)
        u = np.linalg.cholesky(np.linalg.inv(2 * x.T @ x)).T
        rhs = 0.5 * np.sum(((t - q) / np.diag(u)) ** 2)
        assert calibration_error(w, q, x.T @ x) == pytest.approx(rhs, rel=1e-8)


@pytest.mark.spec("THM-GPTQ-CALIBRATION")
def test_gptq_with_uncorrelated_inputs_is_round_to_nearest():
    rng = np.random.default_rng(3)
    w = rng.standard_normal((5, 6)).astype(np.float32)
    x = np.diag(rng.uniform(0.5, 3, 6))  # orthogonal columns: H diagonal, no error is spread
    q, t = gptq_quantize(w, x, INT4)
    assert np.array_equal(q, INT4.quantize_dequantize(w, per_channel=True)) and np.array_equal(t, w.astype(np.float64))


@pytest.mark.spec("THM-GPTQ-CALIBRATION")
def test_gptq_is_not_always_below_round_to_nearest_but_usually_is():
    # A counterexample (seed 2 of the generator below, λ = 0): GPTQ's greedy column order lands farther than RTN.
    rng = np.random.default_rng(2)
    dout, din, n = rng.integers(1, 5), rng.integers(2, 6), rng.integers(2, 12)
    w = rng.standard_normal((dout, din)).astype(np.float32)
    x = rng.standard_normal((n, din))
    q, t = gptq_quantize(w, x, INT4, damp=0.0)
    assert np.all(np.abs(t / row_scales(w, INT4)) <= 7.5)  # no saturation involved
    assert calibration_error(w, q, x.T @ x) > 1.08 * calibration_error(w, _rtn(w), x.T @ x)
    # Over seeded random problems (d_in 8–16, n = 4·d_in, correlated inputs) it is below RTN nearly always.
    below, ratios = 0, []
    for seed in range(100):
        w, x = _problem(seed, dout=(4, 9), din=(8, 17))
        g = x.T @ x
        eg, er = calibration_error(w, gptq_quantize(w, x, INT4)[0], g), calibration_error(w, _rtn(w), g)
        below += eg <= er
        ratios.append(eg / er)
    assert below >= 90 and np.mean(ratios) < 0.8


@pytest.mark.spec("DEF-STUDY-SHAPING")
def test_smoothquant_awq_and_svd_transforms():
    rng = np.random.default_rng(0)
    xa, wa = rng.uniform(0.1, 20, 7), rng.uniform(0.01, 2, 7)
    s = smoothquant_scales(xa, wa, 0.5)
    assert np.allclose(xa / s, wa * s)  # α = ½ balances the two maxima
    assert np.allclose(smoothquant_scales(xa, wa, 1.0), xa) and np.allclose(smoothquant_scales(xa, wa, 0.0), 1 / wa)
    assert smoothquant_scales(np.array([0.0, 2.0]), np.array([1.0, 0.0]), 0.5).tolist() == [1.0, 1.0]
    a = awq_scales(xa, 0.7)
    assert a.max() * a.min() == pytest.approx(1.0) and np.allclose(awq_scales(xa, 0.0), 1.0)
    w = rng.standard_normal((6, 5)).astype(np.float32)
    low, res = svd_split(w, 2)
    assert np.linalg.matrix_rank(low.astype(np.float64), tol=1e-4) == 2 and np.allclose(low + res, w, atol=1e-6)
    assert np.linalg.norm(res, 2) == pytest.approx(np.linalg.svd(w.astype(np.float64), compute_uv=False)[2], rel=1e-5)
    with pytest.raises(InvalidParameterError) as e:
        svd_split(w, 5)
    assert e.value.value == 5


@pytest.mark.spec("DEF-STUDY-SHAPING")
def test_grid_measures_by_hand():
    t = np.array([[0.0, 0.1, 1.0, 7.0]], dtype=np.float32)  # int4: s = 1, codes 0, 0, 1, 7
    m = grid_measures(t, row_scales(t, INT4), INT4)
    assert m["collision_probability"] == pytest.approx(2 / 16) and m["collision_within_row"] == pytest.approx(2 / 16)
    assert float(collision_probability(np.array([1, 1, 1, 1]), np.array([0, 0, 1, 7]))) == pytest.approx(2 / 16)
    assert m["entropy_bits"] == pytest.approx(1.5) and m["codes_per_row"] == 3
    assert m["min_margin"] == pytest.approx(0.8, abs=1e-6) and m["median_margin"] == pytest.approx(1.0)
    two = np.array([[0.0, 0.1, 1.0, 7.0], [7.0, 1.0, 0.1, 0.0]], dtype=np.float32)  # δ·rows: the mean δ within a row
    assert grid_measures(two, row_scales(two, INT4), INT4)["collision_within_row"] == pytest.approx(2 / 16)


@pytest.mark.spec("DEF-STUDY-SHAPING")
def test_study_on_a_tiny_model_reuses_the_site_measurement():
    mm = tiny()
    doc = shaping_study(mm, ranks=(2,), alphas=(0.5,), awq_grid=5)
    assert doc["errors"] == [] and doc["settings"]["layers"] == ["*"]
    layers = {r["layer"]: r for r in doc["results"]["layers"]}
    assert set(layers) == {"0", "2"}
    runner = Runner(mm, find_sites(mm.model, kinds=("weight",)))
    for r in layers.values():
        names = [(m["method"], m["param"]) for m in r["methods"]]
        assert names == [("rtn", None), ("smoothquant", 0.5), ("awq", r["methods"][2]["param"]), ("gptq", 0.01), ("svd", 2)]
        site = next(s for s in runner.sites if s.module == r["layer"])
        rtn = r["methods"][0]
        assert rtn["distortion"] == pytest.approx(forward_point(runner, site, INT4)["distortion"], rel=1e-9)
        assert "distortion_wa" in rtn and "activation" in r["methods"][1]
        assert r["methods"][2]["calibration_error"] <= rtn["calibration_error"] + 1e-12  # α = 0 (RTN) is on AWQ's grid
    assert [c["id"] for c in doc["claims"]] == [f"C-001-6-{i}" for i in range(1, 6)]
    assert "gptq(0.01)" in "\n".join(shaping_lines(doc))
    json.dumps(doc)


@pytest.mark.spec("DEF-STUDY-SHAPING")
def test_bad_options_and_a_failing_layer():
    mm = tiny()
    with pytest.raises(UnknownFormatError) as e:
        shaping_study(mm, format="mxfp4")
    assert e.value.value == "mxfp4"
    for kw, val in (({"alphas": (1.5,)}, 1.5), ({"ranks": (0,)}, 0), ({"damp": -1.0}, -1.0), ({"awq_grid": 1}, 1),
                    ({"layers": "nomatch*"}, "nomatch*")):
        with pytest.raises(InvalidParameterError) as e:
            shaping_study(mm, **kw)
        assert e.value.value == val
    doc = shaping_study(mm, ranks=(4,), alphas=(0.5,), awq_grid=3, act_format="none")
    assert doc["errors"] == [{"what": "2 svd(4)", "error": "rank 4 >= min(4, 16)"}]  # the other layer and methods still measured
    assert len(doc["results"]["layers"][0]["methods"]) == 5 and "error" in doc["results"]["layers"][1]["methods"][4]
    assert "distortion_wa" not in doc["results"]["layers"][0]["methods"][0] and "error" in "\n".join(shaping_lines(doc))


@pytest.mark.spec("DEF-STUDY-SHAPING")
def test_cli_runs_the_study(tmp_path, capsys, monkeypatch):
    import natprec.cli.report as cli_report

    monkeypatch.setattr(cli_report, "load_model", lambda *a, **k: tiny())
    assert STUDIES["shaping"].run is shaping_study
    assert main(["study", "shaping", "--json", "--layers", "2", "--ranks", "2", "--alphas", "0.3,0.6", "--out", str(tmp_path / "o"),
                 "--no-plots"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["settings"]["layers"] == ["2"] and doc["settings"]["alphas"] == [0.3, 0.6] and len(doc["results"]["layers"]) == 1
    assert main(["study", "shaping", "--layers", "2", "--ranks", "2", "--awq-grid", "3", "--out", str(tmp_path / "p")]) == 0
    assert "natprec study shaping: tiny" in capsys.readouterr().out and (tmp_path / "p" / "shaping.png").exists()
    assert main(["study", "shaping", "--format", "nvfp4"]) == 2 and "symmetric element format" in capsys.readouterr().err
