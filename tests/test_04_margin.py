"""DEF-MARGIN and THM-MARGIN-ROBUST against exact rational oracles."""

import ml_dtypes
import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from natprec.conformance.strategies import codebooks, finite_floats, tie_rules
from natprec.reference import (
    Codebook,
    EmptyInputError,
    NaNInputError,
    get_format,
    margin_guarantees_codes,
    min_voronoi_margin,
    nearest_index,
    voronoi_margin,
)
from tests.oracles import margin_brute

NF4 = get_format("nf4").codebook


@pytest.mark.spec("DEF-MARGIN")
@given(
    cb=codebooks(width=64),
    xs=st.lists(st.floats(allow_nan=False), min_size=1, max_size=20),
    tie=tie_rules,
)
@example(cb=Codebook([0.5]), xs=[0.0, 1e300], tie="even")
@example(cb=Codebook([-1.0, 1.0]), xs=[0.0, -0.0, np.inf, -np.inf, 1e308], tie="even")
@example(cb=Codebook([0.0, 1e-300, 1e300]), xs=[5e-301, 1e-310, 2.0], tie="down")
def test_margin_is_the_rounded_exact_value(cb, xs, tie):
    x = np.array(xs, dtype=np.float64)
    got = voronoi_margin(x, cb, tie=tie)
    idx = nearest_index(x, cb, tie)
    want = [margin_brute(float(v), cb.values, int(i)) for v, i in zip(x, idx)]
    assert got.tolist() == want
    assert (got >= 0).all()


@pytest.mark.spec("DEF-MARGIN")
@given(xs=st.lists(finite_floats(16), min_size=1, max_size=20), fmt=st.sampled_from(["nf4", "float4_e2m1fn", "int4"]))
def test_margin_in_every_input_dtype(xs, fmt):
    x64 = np.array(xs, dtype=np.float64)
    for dt in (np.float16, ml_dtypes.bfloat16, np.float32):
        x = x64.astype(dt)
        assert voronoi_margin(x, fmt).tolist() == voronoi_margin(x.astype(np.float64), fmt).tolist()


@pytest.mark.spec("DEF-MARGIN")
def test_margin_pinned_values():
    cb = Codebook([-1.0, 0.0, 1.0])
    x = np.array([0.5, 0.25, 0.0, 2.0, np.inf, -3.0])
    assert voronoi_margin(x, cb).tolist() == [0.0, 0.5, 1.0, 1.0, 1.0, 1.0]
    assert voronoi_margin(np.array([np.nan, 0.25]), cb, nan_policy="propagate")[1] == 0.5
    assert np.isnan(voronoi_margin(np.array([np.nan]), cb, nan_policy="propagate")[0])
    with pytest.raises(NaNInputError):
        voronoi_margin(np.array([np.nan]), cb)
    assert min_voronoi_margin(np.array([np.nan, 0.25]), cb, nan_policy="omit") == 0.5
    assert np.isnan(min_voronoi_margin(np.array([np.nan, 0.25]), cb, nan_policy="propagate"))
    with pytest.raises(EmptyInputError):
        min_voronoi_margin(np.array([np.nan]), cb, nan_policy="omit")
    assert voronoi_margin(np.array([3.0]), Codebook([1.0])).tolist() == [np.inf]
    assert voronoi_margin(np.float32(0.25), cb).shape == ()


@pytest.mark.spec("DEF-MARGIN", "DEF-FORMAT-BLOCK-ABSMAX")
def test_block_margin_is_in_element_units():
    x = np.array([[2.0, 1.0, -0.5, 0.0]], dtype=np.float32)
    fmt = get_format("nf4_absmax64")
    assert voronoi_margin(x, fmt).tolist() == voronoi_margin(fmt.scaled(x), "nf4").tolist()


@pytest.mark.spec("THM-MARGIN-ROBUST")
@given(
    xs=st.lists(finite_floats(32, min_value=-1.5, max_value=1.5), min_size=1, max_size=20),
    eta=st.floats(0, 0.05),
    signs=st.lists(st.sampled_from([-1.0, 1.0]), min_size=20, max_size=20),
    tie=tie_rules,
)
def test_margin_above_eta_keeps_codes_under_half_eta_perturbations(xs, eta, signs, tie):
    x = np.array(xs, dtype=np.float64)
    if not margin_guarantees_codes(x, NF4, eta, tie=tie):
        return
    for frac in (1.0, 0.5):
        d = np.array(signs[: x.size]) * (eta / 2) * frac
        xp = x + d
        # Only perturbations that are exactly within η/2 after rounding count.
        ok = np.abs(np.array([float(a) - float(b) for a, b in zip(xp, x)])) <= eta / 2
        assert (nearest_index(xp[ok], NF4, tie) == nearest_index(x[ok], NF4, tie)).all()


@pytest.mark.spec("THM-MARGIN-ROBUST")
def test_strictness_matters():
    # γ(0.25) = 0.5 = η exactly; a perturbation of η/2 lands on the tie 0.5 and "up" moves it.
    cb = Codebook([0.0, 1.0])
    x = np.array([0.25])
    assert voronoi_margin(x, cb).tolist() == [0.5]
    assert not margin_guarantees_codes(x, cb, 0.5)
    assert nearest_index(x + 0.25, cb, "up").tolist() == [1] != nearest_index(x, cb, "up").tolist()


def _awkward(n, dt, seed):
    """n values of dtype dt: normals at several scales, with ties, ±Inf, −0.0, +0.0 and subnormals mixed in."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(n) * rng.choice([1e-3, 0.3, 1.0, 7.0, 600.0], n)
    x[::11] = rng.choice(np.array([-1.0, -0.5, -0.25, 0.0, 0.25, 0.5, 1.5, 2.5]), x[::11].size)  # ties of int4 and fp4
    x[3::13] = -0.0
    x[5::17] = np.float64(np.finfo(np.float32).smallest_subnormal) * 3
    x[7] = np.inf
    x[9] = -np.inf
    return x.astype(dt)


@pytest.mark.spec("THM-MIN-MARGIN-EXTREMES", "DEF-MARGIN")
@pytest.mark.parametrize("dt", [np.float16, ml_dtypes.bfloat16, np.float32, np.float64])
@pytest.mark.parametrize("n", [40, 70_000])
def test_min_margin_is_the_minimum_of_every_margin(dt, n):
    x = _awkward(n, dt, n)
    for fmt in ["nf4", "int4", "float4_e2m1fn", "float8_e4m3fn", "float8_e5m2", "mxfp4", "nf4_absmax64"]:
        f = get_format(fmt)
        ties = [t for t in ("even", "down", "up", "away") if hasattr(f, "block_size") or _accepts(f.codebook, t)]
        for tie in ties:
            y = x if not hasattr(f, "block_size") else np.where(np.isinf(x), 1.0, x).astype(dt)  # blocks: finite
            assert min_voronoi_margin(y, fmt, tie=tie) == voronoi_margin(y, fmt, tie=tie).min(), (fmt, tie)


def _accepts(cb, tie):
    try:
        nearest_index(np.zeros(1), cb, tie)
    except Exception:
        return False
    return True


@pytest.mark.spec("THM-MIN-MARGIN-EXTREMES")
@given(cb=codebooks(width=32), xs=st.lists(finite_floats(32), min_size=1, max_size=30), tie=tie_rules)
def test_min_margin_extremes_on_drawn_codebooks(cb, xs, tie):
    x = np.array(xs, dtype=np.float32)
    assert min_voronoi_margin(x, cb, tie=tie) == voronoi_margin(x, cb, tie=tie).min()


@pytest.mark.spec("THM-MIN-MARGIN-EXTREMES")
def test_min_margin_over_many_chunks():
    """More than 16 chunks: cell_extremes runs its chunks in threads, one row each."""
    x = _awkward((1 << 22) + 5, np.float32, 3)
    assert min_voronoi_margin(x, "nf4") == voronoi_margin(x, "nf4").min()
    x[123_457] = np.float32(0.5 * (NF4.values[8] + NF4.values[9]))  # not a float32 tie: γ becomes tiny but not 0
    assert min_voronoi_margin(x, "nf4") == voronoi_margin(x, "nf4").min()
