"""THM-BIN-SEARCH — float32 quantization by bins of the top 16 bits equals the threshold search, on every float32.

``nearest_index`` and ``search_codes`` take, for float32 arrays of BINS_MIN elements or more, per-bin tables:
the 2**16 bins (float32 values sharing their top 16 bits: sign, exponent, top 7 mantissa bits) are closed
intervals of values, and a bin holding at most one threshold u maps x to (count below the bin) + [x > u].
Within a bin, the search ``searchsorted(u, x, "left")`` and the table are constant on [vmin, u] and on
(u, vmax] (on the whole bin when no threshold is inside), and the keyed table on the lowest pattern and on the
rest (patterns 1…FFFF), so evaluating all at each bin's patterns 0, 1 and FFFF, at u and at the float32 before
and after u covers every class: agreement there is agreement on all 2**32 inputs.
"""

import numpy as np
import pytest

from natprec.reference import element_format_names, get_format
from natprec.reference.codebook import BINS_MIN, bin_keys32, code_bins32, codes_by_bins32, index_bins32, nearest_index, thresholds
from natprec.reference.formats import prepare_quantize, search_codes

TIES = ("even", "down", "up", "away")


def _cases():
    for name in element_format_names():
        f = get_format(name)
        for cb in (f.codebook, f.extended) if f.extended is not None else (f.codebook,):
            for tie in TIES:
                try:
                    thresholds(cb, tie, np.float32)
                except Exception:  # a tie rule the codebook does not accept (e.g. "even" with equal parities)
                    continue
                yield pytest.param(name, cb, tie, id=f"{cb.name}-{tie}")


def _class_points(cb, tie) -> np.ndarray:
    """Every bin's lowest, second and highest bit pattern, and every threshold with the float32 after it (no NaN)."""
    top = np.arange(1 << 16, dtype=np.uint32) << np.uint32(16)
    ends = np.concatenate([top, top | np.uint32(1), top | np.uint32(0xFFFF)]).view(np.float32)
    u = thresholds(cb, tie, np.float32).astype(np.float32)
    u = u[np.isfinite(u)]
    pts = np.concatenate([ends, u, np.nextafter(u, np.float32(np.inf)), np.nextafter(u, np.float32(-np.inf))])
    return pts[~np.isnan(pts)].astype(np.float32)


@pytest.mark.spec("THM-BIN-SEARCH")
@pytest.mark.parametrize(("name", "cb", "tie"), list(_cases()))
def test_every_bin_and_threshold(name, cb, tie):
    """nearest_index by bins = searchsorted on every class point (so on every float32), for every registry element
    codebook (and its overflow-extended one) and tie rule; formats with more than one threshold in a bin (float16)
    keep the search."""
    bins = index_bins32(cb, tie)
    if bins is None:
        assert name == "float16"  # 2**10 mantissa steps per bin: the search stays
        return
    x = _class_points(cb, tie)
    assert x.size >= BINS_MIN
    u = thresholds(cb, tie, np.float32)
    np.testing.assert_array_equal(nearest_index(x, cb, tie), np.searchsorted(u, x, side="left"))


@pytest.mark.spec("THM-BIN-SEARCH", "DEF-FORMAT-ELEMENT")
@pytest.mark.parametrize("name", element_format_names())
def test_encodings_by_bins_equal_the_search(name):
    """search_codes on float32: the per-bin encoding tables (signed zero folded in) give the codes of the threshold
    search with the format's zero sign — compared chunk by chunk below BINS_MIN, where the search runs — on every
    class point and its negation, saturating and not, and with NaN propagated where the format has a NaN."""
    f = get_format(name)
    for tie in TIES:
        try:
            thresholds(f.codebook, tie, np.float32)
        except Exception:
            continue
        x = _class_points(f.codebook, tie)
        x = np.concatenate([x, -x, np.float32([0.0, -0.0, np.inf, -np.inf])])
        for sat in (True, False) if f.extended is not None else (True,):
            pol = "propagate" if f.nan_code is not None else "raise"
            xx = np.concatenate([x, np.float32([np.nan, -np.nan])]) if pol == "propagate" else x
            plan = prepare_quantize(xx, f, tie=tie, saturate=sat, nan_policy=pol)
            whole = search_codes(plan)
            small = BINS_MIN - 1
            parts = [search_codes(prepare_quantize(xx[i:i + small], f, tie=tie, saturate=sat, nan_policy=pol))
                     for i in range(0, xx.size, small)]
            np.testing.assert_array_equal(whole, np.concatenate(parts), err_msg=f"{name} tie={tie} saturate={sat}")
            if code_bins32(plan.codebook, tie, np.dtype(f.code_dtype), None) is None:
                assert name == "float16"


@pytest.mark.spec("THM-BIN-SEARCH")
def test_random_float32_through_the_tables():
    """Wide-range random float32 (every exponent) against the search, for a few codebooks and the tables directly."""
    rng = np.random.default_rng(7)
    x = rng.integers(0, 1 << 32, 1 << 20, dtype=np.uint64).astype(np.uint32).view(np.float32)
    x = x[~np.isnan(x)]
    for name in ("nf4", "float4_e2m1fn", "float8_e4m3fn", "int8"):
        cb = get_format(name).codebook
        u = thresholds(cb, "down", np.float32)
        np.testing.assert_array_equal(nearest_index(x, cb, "down"), np.searchsorted(u, x, side="left"))
        enc = cb.encodings.astype(np.uint8)
        bins = code_bins32(cb, "down", np.dtype(np.uint8), None)
        np.testing.assert_array_equal(codes_by_bins32(x, bins), enc[np.searchsorted(u, x, side="left")])


@pytest.mark.spec("THM-BIN-SEARCH")
def test_keys_are_twice_the_bin_plus_an_interior_bit():
    """KEY = 2 · bin + [low 16 bits ≠ 0] for every pattern below the wrap, checked at each bin's patterns 0, 1, 2,
    FFFE and FFFF; the wrapped patterns (negative NaNs, from FFFF0001) still give keys below 2**17."""
    top = np.arange(1 << 16, dtype=np.uint32) << np.uint32(16)
    for low in (0, 1, 2, 0xFFFE, 0xFFFF):
        got = bin_keys32(top | np.uint32(low))
        want = 2 * np.arange(1 << 16, dtype=np.uint32) + np.uint32(low != 0)
        np.testing.assert_array_equal(got[:-1], want[:-1])
    wrapped = bin_keys32(np.arange(0xFFFF0001, 1 << 32, dtype=np.uint64).astype(np.uint32))
    assert wrapped.max() < 1 << 17


@pytest.mark.spec("THM-BIN-SEARCH")
def test_keyed_tables_where_the_thresholds_lie_on_bin_edges():
    """The formats whose every midpoint needs at most 7 significant bits (the 8-, 6- and 4-bit minifloats and the
    integer grids) get the one-gather table for every tie rule; bfloat16 (8-bit midpoints), NF4 and bitsandbytes' FP4
    (float32 codewords) do not."""
    keyed = {}
    for name in element_format_names():
        f = get_format(name)
        b = code_bins32(f.codebook, "down", np.dtype(f.code_dtype), None)
        keyed[name] = b is not None and b.keyed is not None
    assert {n for n, k in keyed.items() if not k} == {"float16", "bfloat16", "nf4", "fp4_bnb"}
