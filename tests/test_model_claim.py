"""DEF-SITE-RESOLUTION, DEF-INFORMATION-PRECISION, DEF-CLAIM-TEST — the resolution a site needs, the information
it holds there, and the claim's test, each checked against a direct computation on a tiny torch model."""

from __future__ import annotations

import argparse
import json
import math
from fractions import Fraction

import numpy as np
import pytest
import scipy.stats
from hypothesis import given
from hypothesis import strategies as st

from natprec.reference import discretized_entropy_bits
from natprec.reference.errors import InvalidParameterError

torch = pytest.importorskip("torch", reason="natprec.model needs torch (pip install natprec[torch])")

from natprec.cli import main  # noqa: E402
from natprec.cli.study import add_parser as add_study_parser  # noqa: E402
from natprec.model import MeasuredModel, Runner, find_sites, forward_point, measure  # noqa: E402
from natprec.model.claim import (  # noqa: E402
    DISAGREEMENT_BITS,
    NONE_PASSES_BITS,
    claim_test,
    spearman,
    spearman_interval,
    verdict,
)
from natprec.model.report import claim_lines  # noqa: E402
from natprec.model.resolution import (  # noqa: E402
    SEARCH_OCTAVES,
    STEPS_PER_OCTAVE,
    UniformStep,
    grid_step,
    resolution_entropy,
    resolution_search,
    search_window,
    step_index_above,
)
from natprec.studies import STUDIES  # noqa: E402
from natprec.studies.claim import claim_study  # noqa: E402


def tiny(batches=2):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.Tanh(), torch.nn.Linear(16, 4)).float()
    g = torch.Generator().manual_seed(1)
    data = [torch.randn(12, 8, generator=g) for _ in range(batches)]
    return MeasuredModel(model=model, batches=data, distortion="mse", description="tiny")


@pytest.mark.spec("DEF-SITE-RESOLUTION")
@given(k=st.integers(-400, 400))
def test_grid_is_quarter_octaves_exactly_doubling(k):
    assert grid_step(k + STEPS_PER_OCTAVE) == 2 * grid_step(k)
    assert grid_step(k) < grid_step(k + 1)
    assert math.isclose(grid_step(k), 2.0 ** (k / 4), rel_tol=2**-52)


@pytest.mark.spec("DEF-SITE-RESOLUTION")
@given(a=st.floats(1e-30, 1e30))
def test_step_index_above_is_the_least_step_above(a):
    k = step_index_above(a)
    assert grid_step(k - 1) <= a < grid_step(k)


@pytest.mark.spec("DEF-SITE-RESOLUTION")
def test_step_index_above_and_window_reject_what_has_no_step():
    with pytest.raises(InvalidParameterError):
        step_index_above(0.0)
    with pytest.raises(InvalidParameterError):
        search_window(np.zeros(5, np.float32))
    lo, hi = search_window(np.array([0.5, -3.0], np.float32))
    assert grid_step(hi - 1) <= 6.0 < grid_step(hi) and hi - lo == STEPS_PER_OCTAVE * SEARCH_OCTAVES


@pytest.mark.spec("DEF-SITE-RESOLUTION")
@given(xs=st.lists(st.floats(-1e3, 1e3, width=32), min_size=1, max_size=40), k=st.integers(-40, 12))
def test_uniform_step_is_the_exact_cell_centre(xs, k):
    x = np.array(xs, dtype=np.float32)
    d = grid_step(k)
    got = UniformStep(k).quantize_dequantize(x.reshape(1, -1), per_channel=True)
    assert got.dtype == np.float32 and got.shape == (1, x.size)
    for v, q in zip(x.tolist(), got.ravel().tolist()):
        c = (Fraction(v) + Fraction(d) / 2) / Fraction(d)
        cell = c.numerator // c.denominator  # a value on an edge goes to the upper cell
        assert q == float(np.float32(float(cell * d)))


@pytest.mark.spec("DEF-SITE-RESOLUTION")
def test_uniform_step_edges_go_up():
    # Δ = 1: 0.5 is on the edge between cells 0 and 1, −0.5 between −1 and 0.
    assert UniformStep(0).quantize_dequantize(np.array([0.5, -0.5, 1.5, 0.49999997], np.float32)).tolist() == [1.0, 0.0, 2.0, 0.0]


def _brute(curve, tol):
    return max((k for k in curve if curve[k] <= tol), default=None)


@pytest.mark.spec("DEF-SITE-RESOLUTION")
@given(data=st.data())
def test_search_finds_the_largest_passing_step_on_a_monotone_curve(data):
    lo = data.draw(st.integers(-60, 0))
    hi = lo + data.draw(st.integers(0, 60))
    steps = data.draw(st.lists(st.sampled_from([0.0, 0.0, 1e-4, 1e-3, 0.3, 5.0]), min_size=hi - lo + 1, max_size=hi - lo + 1))
    curve = dict(zip(range(lo, hi + 1), np.cumsum(steps).tolist()))
    tol = data.draw(st.sampled_from([1e-5, 1e-3, 0.01, 1.0, 100.0]))
    calls = []

    def ev(k):
        calls.append(k)
        return curve[k]
    known = {}
    start = data.draw(st.integers(lo - 10, hi + 10))
    got = resolution_search(ev, start, (lo, hi), tol, known)
    assert got == _brute(curve, tol)
    assert len(calls) == len(set(calls)) and set(calls) == set(known)
    # Answer certified by measured points: a pass next to a fail, or a window edge.
    if got is None:
        assert known[lo] > tol
    else:
        assert known[got] <= tol and (got == hi or known[got + 1] > tol)
    # A second search over the same points measures nothing new.
    again = []
    assert resolution_search(lambda k: again.append(k) or curve[k], start, (lo, hi), tol, known) == got and again == []


@pytest.mark.spec("DEF-SITE-RESOLUTION")
@given(data=st.data())
def test_search_on_any_curve_returns_a_measured_pass_next_to_a_measured_fail(data):
    lo, hi = -20, 20
    curve = dict(zip(range(lo, hi + 1), data.draw(st.lists(st.floats(0, 1), min_size=41, max_size=41))))
    known = {}
    got = resolution_search(lambda k: curve[k], data.draw(st.integers(lo, hi)), (lo, hi), 0.5, known)
    if got is None:
        assert known[lo] > 0.5
    else:
        assert known[got] <= 0.5 and (got == hi or known[got + 1] > 0.5)


@pytest.mark.spec("DEF-SITE-RESOLUTION", "DEF-INFORMATION-PRECISION")
def test_measured_resolution_is_a_pass_next_to_a_fail_and_its_entropy_is_the_cells():
    mm = tiny()
    doc = measure(mm, formats="int", tolerance=1e-3, claim_tolerances=[1e-5, 1e-1], jacobian=False)
    assert doc["tolerances"] == [1e-3, 1e-5, 1e-1]
    runner = Runner(mm, find_sites(mm.model))
    for s in doc["sites"]:
        assert s["error"] is None
        site = next(x for x in runner.sites if x.name == s["site"])
        res = s["resolution"]
        lo, hi = res["window"]
        x = runner.site_tensor(site).numpy() if site.kind == "weight" else np.concatenate(
            [runner.valid_rows(site, b) for b in range(len(mm.batches))])
        assert (lo, hi) == search_window(x)
        for row in res["by_tolerance"]:
            k, t = row["step_index"], row["tolerance"]
            assert k is not None and row["step"] == grid_step(k)
            # Independent runs: U at k passes, one quarter octave coarser fails.
            assert forward_point(runner, site, UniformStep(k))["distortion"] <= t
            assert k == hi or forward_point(runner, site, UniformStep(k + 1))["distortion"] > t
            assert res["curve"][str(k)] <= t
            # b_H: entropy of the cells of U_Δ, computed here by float64 floor (no value sits near an edge here).
            d = grid_step(k)
            cells = np.floor((x.astype(np.float64).ravel() + d / 2) / d)
            _, counts = np.unique(cells, return_counts=True)
            assert math.isclose(row["entropy_bits"], scipy.stats.entropy(counts, base=2), rel_tol=1e-12, abs_tol=1e-12)
            assert row["entropy_bits"] == discretized_entropy_bits(x, d, origin=-d / 2)
            assert row["cells"] == counts.size and row["entropy_bits_mm"] >= row["entropy_bits"]
            assert row["b_star"] == (s["forward"]["b_star"] if t == 1e-3 else row["b_star"])
        # A tighter ε never needs a coarser step.
        ks = {row["tolerance"]: row["step_index"] for row in res["by_tolerance"]}
        assert ks[1e-5] <= ks[1e-3] <= ks[1e-1]


@pytest.mark.spec("DEF-INFORMATION-PRECISION")
def test_resolution_entropy_of_two_cells():
    x = np.array([0.1, 0.2, 1.1, 1.2], np.float32)
    r = resolution_entropy(x, 0)  # Δ = 1: cells 0 and 1, two each
    assert r["entropy_bits"] == 1.0 and r["cells"] == 2 and r["cells_bits"] == 1
    assert r["entropy_bits_mm"] == 1.0 + 1 / (2 * 4 * math.log(2))


@pytest.mark.spec("DEF-CLAIM-TEST")
@given(a=st.lists(st.integers(0, 6), min_size=3, max_size=30), data=st.data())
def test_spearman_is_scipys_with_ties(a, data):
    b = data.draw(st.lists(st.integers(0, 6), min_size=len(a), max_size=len(a)))
    got = spearman(a, b)
    if len(set(a)) == 1 or len(set(b)) == 1:
        assert got is None
    else:
        assert math.isclose(got, scipy.stats.spearmanr(a, b).statistic, rel_tol=1e-12, abs_tol=1e-12)


@pytest.mark.spec("DEF-CLAIM-TEST")
def test_spearman_interval_and_verdicts():
    rng = np.random.default_rng(3)
    a = rng.standard_normal(40)
    up = spearman_interval(a, a + 0.3 * rng.standard_normal(40))
    assert up["low"] <= up["rho"] <= up["high"] and up["low"] > 0 and verdict(up).startswith("predicts")
    b = a + 0.3 * rng.standard_normal(40)
    assert spearman_interval(a, b) == spearman_interval(a, b) and spearman_interval(a, b)["resamples"] == 2000  # seeded
    down = spearman_interval(a, -a)
    assert down["rho"] == -1.0 and verdict(down).startswith("inverts")
    none = spearman_interval(a, rng.standard_normal(40))
    assert none["low"] < 0 < none["high"] and verdict(none).startswith("no evidence")
    assert verdict(spearman_interval([1, 2], [2, 1])).startswith("undetermined")
    assert verdict(spearman_interval([1, 2, 3, 4], [1, 2, 3, 4])) == "undetermined (fewer than 5 sites)"
    assert verdict(spearman_interval([1, 2, 3, 4, 5], [1, 1, 1, 1, 1])) == "undetermined (one side constant)"
    # Constant resamples are dropped and counted: 3 distinct pairs give constant resamples often.
    few = spearman_interval([1, 2, 3], [1, 2, 3])  # ρ and its interval are still given; only the verdict waits for 5
    assert few["degenerate"] > 0 and few["low"] == few["high"] == 1.0
    with pytest.raises(InvalidParameterError):
        spearman([1, 2, 3], [1, 2])


def _rec(name, kind, b_star, h, *, cells=4, crest=2.0, error=None, step=0):
    return {"site": name, "kind": kind, "error": error,
            "info": {"natural_precision_bits": 18, "entropy_bits": 10.0 + h / 10, "crest_bits": crest, "ggd_beta": None},
            "resolution": {"by_tolerance": [{"tolerance": 1e-3, "b_star": b_star, "step_index": step, "entropy_bits": h,
                                             "cells_bits": cells}]}}


@pytest.mark.spec("DEF-CLAIM-TEST")
def test_claim_test_on_records():
    recs = [_rec("a", "weight", 3, 2.5, cells=3), _rec("b", "weight", 4, 3.2, cells=5), _rec("c", "input", 8, 2.0, crest=6.0, cells=8),
            _rec("d", "input", None, 6.5, cells=9), _rec("e", "weight", 2, 1.2, cells=2), _rec("f", "weight", 5, 4.1, error="x"),
            _rec("g", "input", 6, 5.4, step=None)]
    recs[-1]["resolution"]["by_tolerance"][0]["step_index"] = None
    (c,) = claim_test(recs, [1e-3])
    assert c["sites"] == 5
    assert [e["site"] for e in c["excluded"]] == ["f", "g"]
    assert [e["reason"] for e in c["excluded"]] == ["failed", "no step of the grid meets ε"]
    b = [3, 4, 8, NONE_PASSES_BITS, 2]
    h = [2.5, 3.2, 2.0, 6.5, 1.2]
    cells = [3, 5, 8, 9, 2]
    info, supp = c["information"], c["support"]
    assert info["interval"]["rho"] == pytest.approx(scipy.stats.spearmanr(h, b).statistic)
    assert supp["interval"]["rho"] == pytest.approx(scipy.stats.spearmanr(cells, b).statistic)
    assert info["exact_agreement"] == pytest.approx(3 / 5)  # ⌈2.5⌉ = 3, ⌈3.2⌉ = 4 and ⌈1.2⌉ = 2 agree; 2 ≠ 8, 7 ≠ 9
    assert info["within_one_bit"] == pytest.approx(3 / 5)
    assert supp["exact_agreement"] == pytest.approx(4 / 5) and supp["within_one_bit"] == 1.0  # only b: 5 vs 4
    assert info["mean_excess_bits"] == pytest.approx(np.mean(np.array(b) - np.array(h)))
    assert supp["mean_excess_bits"] == pytest.approx(np.mean(np.array(b) - np.array(cells)))
    assert info["verdict"] == verdict(info["interval"])
    assert [d["site"] for d in c["disagreements"]] == ["c", "d"]  # |8 − 2| = 6 first, then |9 − 7| = 2 ≥ DISAGREEMENT_BITS
    assert all(abs(d["b_star"] - math.ceil(d["information_bits"])) >= DISAGREEMENT_BITS for d in c["disagreements"])
    assert set(c["controls"]) == {"natural_precision_bits", "entropy_bits"}
    assert c["controls"]["natural_precision_bits"]["rho"] is None  # constant b* = 18: undetermined, not a number
    assert set(c["by_kind"]) == {"weight"}  # only 2 input sites remain: no ρ for them
    assert c["by_kind"]["weight"]["support"]["rho"] == pytest.approx(scipy.stats.spearmanr([3, 5, 2], [3, 4, 2]).statistic)
    lines = claim_lines({"claim": [c]})
    text = "\n".join(lines)
    assert "5 sites" in lines[0] and "differ by ≥ 2 bits" in text and "excluded: f (failed)" in lines[-1]
    assert "within 1 bit on 100%" in text and "b*_Δ" in text


@pytest.mark.spec("DEF-CLAIM-TEST")
def test_claim_study_and_cli(tmp_path, capsys, monkeypatch):
    doc = claim_study(tiny(), tolerances="1e-3,1e-4")
    assert doc["tolerances"] == [1e-3, 1e-4] and [c["tolerance"] for c in doc["claim"]] == [1e-3, 1e-4]
    assert [f["name"] for f in doc["formats"]] == [f"int{b}" for b in range(2, 9)] and "jacobian" not in doc["sites"][0]
    assert STUDIES["claim"].run is claim_study
    import natprec.cli.report as cli_report

    monkeypatch.setattr(cli_report, "load_model", lambda *a, **k: tiny())
    p = argparse.ArgumentParser()
    add_study_parser(p.add_subparsers(dest="command"))
    args = p.parse_args(["study", "claim", "--json", "--tolerances", "1e-2,1e-3", "--out", str(tmp_path / "o"), "--no-plots"])
    assert args.run(args) == 0
    out = json.loads(capsys.readouterr().out)
    assert [c["tolerance"] for c in out["claim"]] == [1e-2, 1e-3] and (tmp_path / "o" / "claim.json").exists()
    assert not (tmp_path / "o" / "report.html").exists()  # --no-plots
    args = p.parse_args(["study", "claim", "--tolerances", "1e-2", "--out", str(tmp_path / "t"), "--no-plots"])
    assert args.run(args) == 0
    text = capsys.readouterr().out
    assert "natprec study claim: tiny" in text and "does information predict the need b*_v(ε)?" in text


@pytest.mark.spec("DEF-CLAIM-TEST")
def test_study_cli_errors(capsys):
    assert main(["study", "--list"]) == 0 and capsys.readouterr().out.startswith("claim")
    assert main(["study"]) == 2 and "name a study" in capsys.readouterr().err
    assert main(["study", "claim", "--tolerances", "1e-3,0"]) == 2 and "--tolerances must be finite and > 0" in capsys.readouterr().err
    assert main(["study", "claim", "--tolerances", ","]) == 2 and "--tolerances: no value" in capsys.readouterr().err
    assert main(["study", "claim", "--modules", "lstm"]) == 2 and "unknown layer kind" in capsys.readouterr().err
    assert main(["report", "--claim-tolerances", "x"]) == 2 and "not a number" in capsys.readouterr().err


@pytest.mark.spec("DEF-OPERATIONAL-PRECISION-SITE")
def test_measure_needs_the_int_family():
    with pytest.raises(InvalidParameterError, match="--formats: b.*int family") as e:
        measure(tiny(), formats="nf4,mxfp4", jacobian=False)
    assert e.value.value == "nf4,mxfp4"
