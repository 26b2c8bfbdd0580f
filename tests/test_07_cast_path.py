"""THM-CAST-PATH — the cast path of element formats computes the codebook search's codes, bit for bit.

``search_codes`` is the definition (exact nearest codeword, ties to even, the format's zero sign and
NaN); ``cast_codes`` converts with NumPy/ml_dtypes casts where that is proved equal:

* every float16 and every bfloat16 input, every cast format, saturating or not, each nan_policy;
* float32: every rounding class — for each sign and each of the 256 exponents, every pattern of the
  top m + 2 mantissa bits (m: the target's mantissa bits) with the rest zero, one, a half, all ones.
  Round-to-nearest of a float32 depends only on the sign, the exponent, the kept bits, the round bit
  and whether any lower bit is set; the patterns cover every such combination, and both paths are
  constant between two neighbouring midpoints, so agreement here is agreement on all 2^32 inputs;
* hypothesis float32 arrays through ``quantize`` itself.
"""

import warnings

import ml_dtypes
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import natprec.reference.formats as formats
from natprec.reference import get_format, quantize
from natprec.reference.formats import CAST_DTYPES, CAST_FASTER, cast_codes, prepare_quantize, search_codes

FORMATS = list(CAST_DTYPES)
MANTISSA = {n: int(ml_dtypes.finfo(d).nmant) for n, d in CAST_DTYPES.items()}


def _plans(x, name):
    f = get_format(name)
    for sat in (True, False) if f.nan_code is not None or f.inf_code is not None else (True,):
        for pol in ("propagate", "raise") if f.nan_code is not None else ("raise",):
            xx = x if pol == "propagate" else x[~np.isnan(x.astype(np.float32))]
            yield sat, pol, prepare_quantize(xx, name, saturate=sat, nan_policy=pol)


def _assert_same(plan, what):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # the cast's own overflow warnings
        got = cast_codes(plan)
    want = search_codes(plan)
    assert got is not None, what
    bad = np.flatnonzero(got.ravel() != want.ravel())
    assert bad.size == 0, f"{what}: {bad.size} codes differ, first input {plan.x.ravel()[bad[0]]!r}: " \
                          f"cast {got.ravel()[bad[0]]}, search {want.ravel()[bad[0]]}"


@pytest.mark.spec("THM-CAST-PATH")
@pytest.mark.parametrize("name", FORMATS)
@pytest.mark.parametrize("dtype", [np.float16, ml_dtypes.bfloat16], ids=["float16", "bfloat16"])
def test_every_16_bit_input(name, dtype):
    x = np.arange(1 << 16, dtype=np.uint16).view(dtype)
    for sat, pol, plan in _plans(x, name):
        _assert_same(plan, f"{name} {np.dtype(dtype).name} saturate={sat} nan_policy={pol}")


def float32_classes(m: int) -> np.ndarray:
    """Every (sign, exponent, top m + 2 mantissa bits) with the low bits 0, 1, half and all ones."""
    k = min(m + 2, 23)
    low = 23 - k
    tops = np.arange(1 << k, dtype=np.uint32) << np.uint32(low)
    lows = np.unique(np.array([0, 1, (1 << low) >> 1, (1 << low) - 1], dtype=np.uint32)) if low else np.zeros(1, np.uint32)
    mant = (tops[:, None] | lows[None, :]).ravel()
    head = (np.arange(512, dtype=np.uint32) << np.uint32(23))  # sign and exponent
    return (head[:, None] | mant[None, :]).ravel().view(np.float32)


@pytest.mark.spec("THM-CAST-PATH")
@pytest.mark.parametrize("name", FORMATS)
def test_every_float32_rounding_class(name):
    x = float32_classes(MANTISSA[name])
    for sat, pol, plan in _plans(x, name):
        _assert_same(plan, f"{name} float32 saturate={sat} nan_policy={pol}")


@pytest.mark.spec("THM-CAST-PATH")
@given(name=st.sampled_from(FORMATS),
       x=hnp.arrays(np.float32, hnp.array_shapes(max_dims=2, max_side=40), elements=st.floats(width=32, allow_nan=False)))
def test_quantize_takes_the_cast_path_and_agrees(name, x):
    plan = prepare_quantize(x, name, saturate=True)
    want = search_codes(plan)
    assert np.array_equal(quantize(x, name, saturate=True), want)


@pytest.mark.spec("THM-CAST-PATH")
def test_the_cast_path_applies_only_where_it_is_proved():
    x = np.linspace(-3, 3, 11, dtype=np.float32)
    assert cast_codes(prepare_quantize(x, "float8_e4m3fn")) is not None
    assert cast_codes(prepare_quantize(x, "float8_e4m3fn", tie="away")) is None  # another tie rule: the search
    assert cast_codes(prepare_quantize(x.astype(np.float64), "float8_e4m3fn")) is None  # float64 could round twice
    assert cast_codes(prepare_quantize(x, "nf4")) is None  # not an IEEE-like format
    for tie in ("down", "up", "away"):  # and those still give the search's codes through quantize
        assert np.array_equal(quantize(x, "bfloat16", tie=tie), search_codes(prepare_quantize(x, "bfloat16", tie=tie)))


@pytest.mark.spec("THM-CAST-PATH")
def test_quantize_casts_only_where_the_cast_is_faster(monkeypatch):
    """execute_quantize converts CAST_FASTER's formats by the cast and every other format by the search (the same
    codes either way, by the theorem): a recording cast_codes sees only those."""
    seen = []
    real = formats.cast_codes
    monkeypatch.setattr(formats, "cast_codes", lambda plan: seen.append(plan.format.name) or real(plan))
    x = np.linspace(-3, 3, 1 << 13, dtype=np.float32)
    for name in FORMATS:
        assert np.array_equal(quantize(x, name, saturate=True), search_codes(prepare_quantize(x, name, saturate=True)))
    assert seen == [n for n in FORMATS if n in CAST_FASTER] and set(CAST_FASTER) <= set(CAST_DTYPES)
