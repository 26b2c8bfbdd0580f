"""DEF-FORMAT-ELEMENT, THM-FORMAT-MATCHES-IEEE: the reference's element formats against independent
oracles.

Oracles, none of which goes through ``natprec.reference``:

* ml_dtypes 0.6 casts from float32 (bfloat16, float8_e4m3fn, float8_e5m2, float6_e2m3fn,
  float6_e3m2fn, float4_e2m1fn) and NumPy's float16 cast; their decodes (``view`` of a code);
* a Fraction-based round-to-nearest-even over the value set enumerated from those decodes;
* the analytic rule "below a midpoint -> lower neighbour, above -> upper, at -> tie rule" over that
  enumeration;
* bitsandbytes' published NF4 / FP4 literals and its CUDA ``dQuantizeNF4`` / ``dQuantizeFP4`` trees.

Conventions shared by the reference and the oracles (so they are compared "under matching
conventions"): the IEEE-style formats (float16, bfloat16, float8_e5m2) overflow to ±Inf and
float8_e4m3fn to NaN beyond the overflow midpoint (the reference's default ``saturate``); the
fp6/fp4 types have no Inf/NaN and always saturate, ±Inf included.  NaN is the one place they part:
see ``test_nan_patterns_propagate_canonically`` and ``test_nan_without_encoding_is_refused``.
"""

from __future__ import annotations

import bisect
import math
from fractions import Fraction

import ml_dtypes as md
import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from natprec.reference import dequantize, get_format, quantize
from natprec.reference.errors import InvalidParameterError, NaNInputError

# --------------------------------------------------------------------------------------------
# Oracle tables, built from ml_dtypes / NumPy decodes only.
# --------------------------------------------------------------------------------------------

ML = {
    "float16": np.dtype(np.float16),
    "bfloat16": np.dtype(md.bfloat16),
    "float8_e4m3fn": np.dtype(md.float8_e4m3fn),
    "float8_e5m2": np.dtype(md.float8_e5m2),
    "float6_e2m3fn": np.dtype(md.float6_e2m3fn),
    "float6_e3m2fn": np.dtype(md.float6_e3m2fn),
    "float4_e2m1fn": np.dtype(md.float4_e2m1fn),
}
MINIFLOATS = tuple(ML)
NBITS = {"float16": 16, "bfloat16": 16, "float8_e4m3fn": 8, "float8_e5m2": 8,
         "float6_e2m3fn": 6, "float6_e3m2fn": 6, "float4_e2m1fn": 4}
#: What a finite value beyond the overflow midpoint (and ±Inf) becomes.
OVERFLOW = {"float16": "inf", "bfloat16": "inf", "float8_e5m2": "inf", "float8_e4m3fn": "nan",
            "float6_e2m3fn": "saturate", "float6_e3m2fn": "saturate", "float4_e2m1fn": "saturate"}
WITH_NAN = tuple(n for n in MINIFLOATS if OVERFLOW[n] != "saturate")
WITHOUT_NAN = tuple(n for n in MINIFLOATS if OVERFLOW[n] == "saturate")

F32_MAX = float(np.finfo(np.float32).max)
F32_TINY_SUB = float(np.finfo(np.float32).smallest_subnormal)


def _code_dtype(name):
    return np.uint16 if NBITS[name] == 16 else np.uint8


def _ml_bits(arr) -> np.ndarray:
    """Codes of an ml_dtypes/NumPy array: its bits, masked to nbits for the sub-byte types."""
    for name, dt in ML.items():
        if arr.dtype == dt:
            if NBITS[name] == 16:
                return arr.view(np.uint16)
            return arr.view(np.uint8) & np.uint8((1 << NBITS[name]) - 1)
    raise AssertionError(arr.dtype)


def _ml_cast_bits(x32: np.ndarray, name: str) -> np.ndarray:
    """The oracle cast of float32 input (NumPy for float16, ml_dtypes for the rest)."""
    assert x32.dtype == np.float32
    with np.errstate(over="ignore", invalid="ignore"):
        return _ml_bits(x32.astype(ML[name]))


def _ml_decode(codes: np.ndarray, name: str) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        return np.asarray(codes).astype(_code_dtype(name)).view(ML[name]).astype(np.float64)


def _all_codes(name: str) -> np.ndarray:
    return np.arange(1 << NBITS[name], dtype=np.uint32).astype(_code_dtype(name))


class _Table:
    """Positive finite values ascending, their codes, and the virtual overflow codeword."""

    def __init__(self, name: str):
        n = NBITS[name]
        pos_codes = np.arange(1 << (n - 1), dtype=np.uint32).astype(_code_dtype(name))
        vals = _ml_decode(pos_codes, name)
        fin = np.isfinite(vals)
        self.name = name
        self.sign = 1 << (n - 1)
        self.mags = vals[fin]
        self.codes = pos_codes[fin].astype(np.int64)
        assert (np.diff(self.mags) > 0).all() and self.mags[0] == 0.0 and self.codes[0] == 0
        # Codes of the finite values are the contiguous run 0..max_code.
        assert (self.codes == np.arange(self.codes.size)).all()
        self.max = float(self.mags[-1])
        self.max_code = int(self.codes[-1])
        if OVERFLOW[name] == "saturate":
            self.virtual = None
        else:
            # One step beyond max in an unbounded-exponent version of the format; its code is the
            # next code (all-ones exponent / e4m3fn's S.1111.111), i.e. Inf or NaN.
            ulp = float(self.mags[-1] - self.mags[-2])
            self.virtual = (self.max + ulp, self.max_code + 1)
            assert not np.isfinite(_ml_decode(np.array([self.max_code + 1]), name)[0])
        self.mags_list = self.mags.tolist()
        self.mid_overflow = None if self.virtual is None else (self.max + self.virtual[0]) / 2

    def signed(self):
        """All finite values ascending (one zero), codes, plus the virtual codewords at both ends."""
        neg_v, neg_c = -self.mags[1:][::-1], (self.codes[1:] | self.sign)[::-1]
        v = np.concatenate((neg_v, self.mags))
        c = np.concatenate((neg_c, self.codes))
        if self.virtual is not None:
            vv, vc = self.virtual
            v = np.concatenate(([-vv], v, [vv]))
            c = np.concatenate(([vc | self.sign], c, [vc]))
        return v, c

    def fraction_rne(self, x: float) -> int:
        """Independent oracle: round x (any float) to nearest, ties to the even code, in exact rationals."""
        neg = math.copysign(1.0, x) < 0
        a = abs(x)
        s = self.sign if neg else 0
        mags = self.mags_list + ([self.virtual[0]] if self.virtual else [])
        codes = list(range(self.max_code + 1)) + ([self.virtual[1]] if self.virtual else [])
        if math.isinf(a):
            return codes[-1] | s
        i = bisect.bisect_right(mags, a)  # mags[i-1] <= a < mags[i]
        if i == len(mags):
            return codes[-1] | s  # beyond the last (virtual) codeword: overflow code, or saturate
        lo, hi = Fraction(mags[i - 1]), Fraction(mags[i])
        q = Fraction(a)
        dl, dh = q - lo, hi - q
        if dl < dh:
            c = codes[i - 1]
        elif dh < dl:
            c = codes[i]
        else:
            c = codes[i - 1] if codes[i - 1] % 2 == 0 else codes[i]
        return c | s


TABLES = {n: _Table(n) for n in MINIFLOATS}


# --------------------------------------------------------------------------------------------
# 1. Every float16 / bfloat16 bit pattern.
# --------------------------------------------------------------------------------------------

SOURCES = {"float16": np.dtype(np.float16), "bfloat16": np.dtype(md.bfloat16)}


def _patterns(src: str) -> np.ndarray:
    return np.arange(1 << 16, dtype=np.uint32).astype(np.uint16).view(SOURCES[src])


@pytest.mark.spec("DEF-FORMAT-ELEMENT", "THM-FORMAT-MATCHES-IEEE", "DEF-QUANTIZE")
@pytest.mark.parametrize("name", MINIFLOATS)
@pytest.mark.parametrize("as_float32", [False, True], ids=["own-dtype", "as-float32"])
@pytest.mark.parametrize("src", tuple(SOURCES))
def test_every_16bit_pattern_matches_cast(src, as_float32, name):
    """All 65536 patterns minus NaNs (±0, subnormals, ±max, ±Inf included) vs the ml_dtypes/NumPy cast."""
    a = _patterns(src)
    x32 = a.astype(np.float32)  # exact
    keep = ~np.isnan(x32)
    a, x32 = a[keep], x32[keep]
    assert a.size == 65536 - (2046 if src == "float16" else 254)
    x = x32 if as_float32 else a
    got = quantize(x, name)
    assert got.dtype == _code_dtype(name) and got.shape == a.shape
    want = _ml_cast_bits(x32, name)
    bad = np.flatnonzero(got != want)
    assert bad.size == 0, (
        f"{bad.size} mismatches, first: input {x32[bad[:5]]!r} got {got[bad[:5]]} want {want[bad[:5]]}"
    )


@pytest.mark.spec("DEF-FORMAT-ELEMENT", "THM-FORMAT-MATCHES-IEEE", "DEF-QUANTIZE")
@pytest.mark.parametrize("name", WITH_NAN)
@pytest.mark.parametrize("as_float32", [False, True], ids=["own-dtype", "as-float32"])
@pytest.mark.parametrize("src", tuple(SOURCES))
def test_nan_patterns_propagate_canonically(src, as_float32, name):
    """Every NaN pattern (both signs, every payload, quiet and signalling) with nan_policy='propagate'.

    Decision pinned here: NaN payloads are canonicalised (the spec says so) — the result is the
    format's canonical quiet NaN with the input's sign, which is also what the ml_dtypes / NumPy
    cast of a quiet NaN of that sign gives.  The sign is checked separately on the decode.
    """
    a = _patterns(src)
    x32 = a.astype(np.float32)
    nan = np.isnan(x32)
    a = a[nan]
    neg = (a.view(np.uint16) >> 15).astype(bool)
    x = a.astype(np.float32) if as_float32 else a
    if as_float32:  # the float32 conversion keeps the sign bit of a NaN
        assert (np.signbit(x) == neg).all()
    got = quantize(x, name, nan_policy="propagate")
    assert np.isnan(dequantize(got, name)).all()
    assert (((got >> (NBITS[name] - 1)) & 1).astype(bool) == neg).all()
    canon = _ml_cast_bits(np.array([np.nan, -np.nan], dtype=np.float32), name)
    assert np.isnan(_ml_decode(canon, name)).all() and canon[0] != canon[1]
    assert (got == np.where(neg, canon[1], canon[0])).all()
    # The default nan_policy refuses NaN.
    with pytest.raises(NaNInputError):
        quantize(x, name)


@pytest.mark.spec("DEF-FORMAT-ELEMENT", "DEF-QUANTIZE")
@pytest.mark.parametrize("name", WITHOUT_NAN)
@pytest.mark.parametrize("src", tuple(SOURCES))
def test_nan_without_encoding_is_refused(src, name):
    """fp6/fp4 have no NaN encoding.  ml_dtypes turns NaN into a zero (of the opposite sign, observed in
    0.6.0); the reference does not imitate that: a NaN is an error under both nan policies."""
    nan = _patterns(src)[np.isnan(_patterns(src).astype(np.float32))]
    for x in (nan, nan.astype(np.float32), np.array([np.nan])):
        with pytest.raises(NaNInputError):
            quantize(x, name, nan_policy="propagate")
        with pytest.raises(NaNInputError):
            quantize(x, name)


# --------------------------------------------------------------------------------------------
# 2. Every code of every format of <= 16 bits: decode, and quantize(dequantize(code)) == code.
# --------------------------------------------------------------------------------------------


@pytest.mark.spec("DEF-FORMAT-ELEMENT", "THM-FORMAT-MATCHES-IEEE")
@pytest.mark.parametrize("name", MINIFLOATS)
def test_every_code_decodes_like_ml_dtypes(name):
    codes = _all_codes(name)
    got = dequantize(codes, name)
    want = _ml_decode(codes, name)
    assert got.dtype == np.float64
    nan = np.isnan(want)
    assert (np.isnan(got) == nan).all()
    assert (got[~nan].view(np.uint64) == want[~nan].view(np.uint64)).all()  # bit for bit, signed zeros too
    # The NaN codes are exactly e4m3fn's S.1111.111 / the IEEE all-ones exponent with nonzero mantissa.
    assert int(nan.sum()) == {"float16": 2046, "bfloat16": 254, "float8_e4m3fn": 2, "float8_e5m2": 6}.get(name, 0)


def _literal_decoders():
    bits_nf4 = np.array(NF4_BITS, dtype=np.uint32).view(np.float32).astype(np.float64)
    bnb_mag = np.array([0, 0.0625, 8, 12, 4, 6, 2, 3], dtype=np.float32) / np.float32(12)
    fp4 = np.concatenate((bnb_mag, -bnb_mag)).astype(np.float64)  # sign in bit 3; code 8 is -0.0
    return {
        "int8": (np.arange(256, dtype=np.uint32).astype(np.uint8).view(np.int8).astype(np.float64)),
        "int4": np.arange(16, dtype=np.uint8).view(md.int4).astype(np.float64),
        "nf4": bits_nf4,
        "fp4_bnb": fp4,
        "binary": np.array([1.0, -1.0]),
        "ternary": np.array([0.0, 1.0, np.nan, -1.0]),  # code 2 is not an encoding
    }


#: bitsandbytes nf4_dequantization_lut (kernels.cu), as float32 bit patterns, code order 0..15.
NF4_BITS = [
    0xBF800000, 0xBF3239B1, 0xBF066B30, 0xBECA32A0, 0xBE91A24D, 0xBE3D353F, 0xBDBA7871, 0x00000000,
    0x3DA2FAFF, 0x3E24CAE3, 0x3E7C04DD, 0x3EAD033A, 0x3EE1A4B8, 0x3F1007AB, 0x3F3913B3, 0x3F800000,
]
OTHER_SMALL = ("int8", "int4", "nf4", "fp4_bnb", "binary", "ternary")
NBITS_OTHER = {"int8": 8, "int4": 4, "nf4": 4, "fp4_bnb": 4, "binary": 1, "ternary": 2}


@pytest.mark.spec("DEF-FORMAT-ELEMENT")
@pytest.mark.parametrize("name", OTHER_SMALL)
def test_every_code_decodes_like_literal_table(name):
    """int8 (NumPy int8 view), int4 (ml_dtypes int4 view), nf4/fp4_bnb (bitsandbytes literals),
    binary {0:+1, 1:-1}, ternary sign-magnitude {00:0, 01:+1, 11:-1}."""
    want = _literal_decoders()[name]
    codes = np.arange(1 << NBITS_OTHER[name], dtype=np.uint8)
    valid = ~np.isnan(want)
    got = dequantize(codes[valid], name)
    assert (got.view(np.uint64) == want[valid].view(np.uint64)).all(), (got, want[valid])
    for bad in codes[~valid].tolist() + [1 << NBITS_OTHER[name]]:
        with pytest.raises(InvalidParameterError):
            dequantize(np.array([bad], dtype=np.uint16), name)


@pytest.mark.spec("DEF-FORMAT-ELEMENT", "DEF-QUANTIZE")
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name", MINIFLOATS + OTHER_SMALL)
def test_every_code_round_trips(name, dtype):
    """quantize(dequantize(c)) == c for every non-NaN code — canonical codes.  The −0 codes come back
    as themselves because the zero keeps the input's sign bit; ±Inf codes come back because the
    IEEE-style formats overflow by default."""
    fmt = get_format(name)
    codes = np.arange(1 << fmt.nbits, dtype=np.uint32).astype(fmt.code_dtype)
    if name in ML:
        ok = ~np.isnan(_ml_decode(codes, name))
    else:
        ok = ~np.isnan(_literal_decoders()[name])
    codes = codes[ok]
    vals = dequantize(codes, name)
    assert (vals.astype(dtype).astype(np.float64) == vals).all()  # every value is exact in float32
    back = quantize(vals.astype(dtype), name)
    assert (back == codes).all(), codes[back != codes]
    # NaN codes decode to NaN, and a NaN comes back (nan_policy='propagate') as the canonical NaN.
    if name in WITH_NAN:
        nan_codes = _all_codes(name)[np.isnan(_ml_decode(_all_codes(name), name))]
        nan_vals = dequantize(nan_codes, name)
        assert np.isnan(nan_vals).all()
        again = quantize(nan_vals.astype(dtype), name, nan_policy="propagate")
        assert np.isnan(dequantize(again, name)).all()
        canon = _ml_cast_bits(np.array([np.nan, -np.nan], dtype=np.float32), name)
        assert np.isin(again, canon).all()


@pytest.mark.spec("DEF-FORMAT-ELEMENT")
@pytest.mark.parametrize("name", WITH_NAN)
def test_nan_codes_decode_with_their_sign(name):
    codes = _all_codes(name)
    want = _ml_decode(codes, name)
    nan = np.isnan(want)
    got = dequantize(codes[nan], name)
    assert (np.signbit(got) == np.signbit(want[nan])).all()
    assert (quantize(got, name, nan_policy="propagate") >> (NBITS[name] - 1) == codes[nan] >> (NBITS[name] - 1)).all()


# --------------------------------------------------------------------------------------------
# 3. Midpoints and their neighbours (exhaustive), float32 and float64 hypothesis samples.
# --------------------------------------------------------------------------------------------


def _tie_pick(lo_v, hi_v, lo_c, hi_c, tie):
    if tie == "even":
        return np.where(lo_c % 2 == 0, lo_c, hi_c)
    if tie == "down":
        return lo_c
    if tie == "up":
        return hi_c
    assert tie == "away"  # the larger magnitude; a midpoint is never 0 here
    return np.where((lo_v + hi_v) > 0, hi_c, lo_c)


def _with_zero_sign(codes, values, x, table):
    """A zero result carries the input's sign bit."""
    return np.where((values == 0) & np.signbit(x), codes | table.sign, codes)


@pytest.mark.spec("DEF-FORMAT-ELEMENT", "THM-FORMAT-MATCHES-IEEE", "DEF-QUANTIZE", "DEF-TIE-RULES")
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", MINIFLOATS)
def test_every_midpoint_and_its_neighbours(name, dtype):
    """Every midpoint between adjacent values (both signs, the overflow midpoints included) and the
    adjacent float32/float64 values on either side: below -> lower codeword, above -> upper, at -> the
    tie rule.  For float64 the neighbours are the double-rounding hazards (they round *to* the
    midpoint in float32).  float32 inputs are also checked against the ml_dtypes cast (RNE)."""
    t = TABLES[name]
    v, c = t.signed()
    lo_v, hi_v, lo_c, hi_c = v[:-1], v[1:], c[:-1], c[1:]
    mid = (lo_v + hi_v) / 2
    assert (mid.astype(dtype).astype(np.float64) == mid).all()  # every midpoint is exact in dtype
    m = mid.astype(dtype)
    below = np.nextafter(m, dtype(-np.inf))
    above = np.nextafter(m, dtype(np.inf))
    assert ((below < mid) & (below > lo_v) & (above > mid) & (above < hi_v)).all()
    for x, want_c, want_v in ((below, lo_c, lo_v), (above, hi_c, hi_v)):
        want = _with_zero_sign(want_c, want_v, x, t)
        got = quantize(x, name)
        assert (got == want).all(), (x[got != want][:5], got[got != want][:5], want[got != want][:5])
        if dtype is np.float32:
            assert (_ml_cast_bits(x, name) == want).all()
    for tie in ("even", "down", "up", "away"):
        want_c = _tie_pick(lo_v, hi_v, lo_c, hi_c, tie)
        want_v = np.where(want_c == lo_c, lo_v, hi_v)
        want = _with_zero_sign(want_c, want_v, m, t)
        got = quantize(m, name, tie=tie)
        assert (got == want).all(), (tie, m[got != want][:5], got[got != want][:5], want[got != want][:5])
        if tie == "even" and dtype is np.float32:
            assert (_ml_cast_bits(m, name) == want).all()


@pytest.mark.spec("DEF-FORMAT-ELEMENT", "DEF-QUANTIZE")
@pytest.mark.parametrize("name", MINIFLOATS)
def test_overflow_and_saturation(name):
    """Beyond the range: ±Inf/NaN code by default for the IEEE-style formats and e4m3fn, ±max with
    saturate=True; the fp6/fp4 formats always saturate and refuse saturate=False."""
    t = TABLES[name]
    x = np.array([F32_MAX, -F32_MAX, np.inf, -np.inf, 2 * t.max, -2 * t.max], dtype=np.float64)
    sat = quantize(x, name, saturate=True)
    want_sat = np.array([t.max_code, t.max_code | t.sign] * 3)
    assert (sat == want_sat).all()
    if t.virtual is None:
        assert (quantize(x, name) == want_sat).all()
        with pytest.raises(InvalidParameterError):
            quantize(x, name, saturate=False)
    else:
        oc = t.virtual[1]
        want = np.array([oc, oc | t.sign] * 3)
        assert (quantize(x, name) == want).all() and (quantize(x, name, saturate=False) == want).all()
        with np.errstate(over="ignore"):
            x32 = x.astype(np.float32)
        assert (_ml_cast_bits(x32, name) == want).all()


def _format_specials():
    out = [0.0, -0.0, F32_MAX, -F32_MAX, F32_TINY_SUB, -F32_TINY_SUB, 2.0**-126, math.inf, -math.inf]
    for t in TABLES.values():
        out += [t.max, -t.max]
        if t.mid_overflow is not None:
            out += [t.mid_overflow, -t.mid_overflow]
    return out


def _format_ties():
    out = []
    for t in TABLES.values():
        sub = float(t.mags[1])
        one = int(np.flatnonzero(t.mags == 1.0)[0])
        half_ulp = float(t.mags[one + 1] - 1.0) / 2
        out += [sub / 2, -sub / 2, 3 * sub / 2, 1 + half_ulp, -(1 + half_ulp), 1 + 3 * half_ulp, 1 - half_ulp / 2]
    return out


SPECIALS = _format_specials()
TIES = _format_ties()
assert all(float(np.float32(v)) == v for v in SPECIALS + TIES)


@pytest.mark.spec("DEF-FORMAT-ELEMENT", "THM-FORMAT-MATCHES-IEEE", "DEF-QUANTIZE", "DEF-TIE-RULES")
@pytest.mark.parametrize("name", MINIFLOATS)
@given(xs=st.lists(st.floats(width=32, allow_nan=False), min_size=1, max_size=32))
@example(xs=SPECIALS)
@example(xs=TIES)
def test_float32_samples_match_ml_dtypes(name, xs):
    x = np.array(xs, dtype=np.float32)
    got = quantize(x, name)
    assert (got == _ml_cast_bits(x, name)).all()
    assert (got == np.array([TABLES[name].fraction_rne(float(v)) for v in x])).all()


def _fraction_rne_float16_bits(x: float) -> int:
    return TABLES["float16"].fraction_rne(x)


def _hazards64():
    """float64 values 1 ulp (and 2**-40 relative) off float16/bfloat16/fp8 midpoints: a float32 detour
    lands exactly on the midpoint and then ties, a single rounding does not."""
    out = []
    for t in TABLES.values():
        for k in (1, 2, 3, len(t.mags) // 2, len(t.mags) - 2):
            mid = float(t.mags[k] + t.mags[k + 1]) / 2
            for d in (math.nextafter(mid, math.inf), math.nextafter(mid, -math.inf), mid * (1 + 2.0**-40),
                      mid * (1 - 2.0**-40)):
                out += [d, -d]
    return out


HAZARDS64 = _hazards64()
SPECIALS64 = SPECIALS + [5e-324, -5e-324, 1e300, -1e300, float(np.finfo(np.float64).max), 65519.99999999999,
                         65520.0, 65520.00000000001]


@pytest.mark.spec("THM-FORMAT-MATCHES-IEEE")
@given(xs=st.lists(st.floats(allow_nan=False), min_size=1, max_size=32))
@example(xs=HAZARDS64)
@example(xs=SPECIALS64)
def test_numpy_float64_to_float16_is_one_correct_rounding(xs):
    """The assumption behind using NumPy as the float64 oracle: ``astype(np.float16)`` rounds float64
    once, to nearest-even (no float32 detour), overflowing to ±Inf — checked against exact rationals."""
    x = np.array(xs, dtype=np.float64)
    with np.errstate(over="ignore"):
        npy = x.astype(np.float16).view(np.uint16)
    assert (npy == np.array([_fraction_rne_float16_bits(v) for v in xs])).all()


@pytest.mark.spec("DEF-FORMAT-ELEMENT", "THM-FORMAT-MATCHES-IEEE", "DEF-QUANTIZE")
@given(xs=st.lists(st.floats(allow_nan=False), min_size=1, max_size=32))
@example(xs=HAZARDS64)
@example(xs=SPECIALS64)
def test_float64_samples_match_numpy_float16(xs):
    x = np.array(xs, dtype=np.float64)
    with np.errstate(over="ignore"):
        assert (quantize(x, "float16") == x.astype(np.float16).view(np.uint16)).all()


# ml_dtypes 0.6.0 does NOT round float64 once: its float64 -> bfloat16 / float8 / float6 / float4 casts
# go through float32 (observed: 1 + 2**-8 + 2**-40 -> bfloat16 gives 1.0, 0x3f80; the correct single
# rounding is 1 + 2**-7, 0x3f81; likewise 1 + 2**-4 + 2**-40 -> e4m3fn gives 1.0 instead of 1.125).
# So ml_dtypes is compared against float32 inputs only (where its cast is a single rounding), and
# float64 inputs are checked against the Fraction oracle instead.
@pytest.mark.spec("DEF-FORMAT-ELEMENT", "THM-FORMAT-MATCHES-IEEE", "DEF-QUANTIZE")
@pytest.mark.parametrize("name", MINIFLOATS)
@given(xs=st.lists(st.floats(allow_nan=False), min_size=1, max_size=32))
@example(xs=HAZARDS64)
@example(xs=SPECIALS64)
def test_float64_samples_round_once(name, xs):
    x = np.array(xs, dtype=np.float64)
    got = quantize(x, name)
    assert (got == np.array([TABLES[name].fraction_rne(v) for v in xs])).all()


@pytest.mark.spec("DEF-FORMAT-ELEMENT", "THM-FORMAT-MATCHES-IEEE")
@pytest.mark.parametrize("name", ["bfloat16", "float8_e4m3fn", "float8_e5m2", "float6_e2m3fn", "float6_e3m2fn",
                                  "float4_e2m1fn", "float16"])
def test_float64_double_rounding_hazard(name):
    """x = (just above a midpoint) in float64 whose float32 rounding IS the midpoint: the reference
    rounds once (up), a float32 detour ties (to even, here down)."""
    t = TABLES[name]
    one = int(np.flatnonzero(t.mags == 1.0)[0])
    half_ulp = float(t.mags[one + 1] - 1.0) / 2
    x = 1 + half_ulp + 2.0**-40
    assert float(np.float32(x)) == 1 + half_ulp
    up = int(t.codes[one + 1])
    assert t.fraction_rne(x) == up
    assert int(quantize(np.array([x]), name)[0]) == up
    assert int(_ml_cast_bits(np.array([x], dtype=np.float32), name)[0]) == int(t.codes[one])


# --------------------------------------------------------------------------------------------
# 4. bitsandbytes NF4 and FP4.
# --------------------------------------------------------------------------------------------


@pytest.mark.spec("DEF-FORMAT-ELEMENT")
def test_nf4_codebook_is_bitsandbytes_table():
    want = np.array(NF4_BITS, dtype=np.uint32).view(np.float32)
    fmt = get_format("nf4")
    assert (fmt.codebook.values == want.astype(np.float64)).all()
    assert (fmt.codebook.encodings == np.arange(16)).all()
    got = dequantize(np.arange(16, dtype=np.uint8), "nf4")
    assert (got.astype(np.float32).view(np.uint32) == want.view(np.uint32)).all()
    assert (got.astype(np.float32).astype(np.float64) == got).all()  # float32 values, exactly
    # The decimal literals of kernels.cu, read as C float literals, give the same bits.
    lits = [-1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453, -0.28444138169288635,
            -0.18477343022823334, -0.09105003625154495, 0.0, 0.07958029955625534, 0.16093020141124725,
            0.24611230194568634, 0.33791524171829224, 0.44070982933044434, 0.5626170039176941,
            0.7229568362236023, 1.0]
    assert (np.array(lits, dtype=np.float32).view(np.uint32) == want.view(np.uint32)).all()


#: dQuantizeNF4 thresholds (float32 literals, strict '>' tree; ties go to the lower code).
NF4_TREE = np.array([
    -0.8480964004993439, -0.6106329262256622, -0.4599952697753906, -0.33967943489551544,
    -0.23460740596055984, -0.13791173323988914, -0.045525018125772476, 0.03979014977812767,
    0.1202552504837513, 0.2035212516784668, 0.2920137718319893, 0.3893125355243683,
    0.5016634166240692, 0.6427869200706482, 0.8614784181118011], dtype=np.float32)


def _tree_disagreement(x32: np.ndarray, tree: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Inputs in [fl32 literal, exact midpoint] (either order): where bitsandbytes' rounded literal
    threshold and the exact-midpoint definition may legitimately differ."""
    mids = [(Fraction(float(a)) + Fraction(float(b))) / 2 for a, b in zip(values[:-1], values[1:])]
    out = np.zeros(x32.shape, dtype=bool)
    for lit, m in zip(tree.astype(np.float64), mids):
        lo, hi = min(Fraction(float(lit)), m), max(Fraction(float(lit)), m)
        out |= np.array([lo <= Fraction(float(v)) <= hi for v in x32.ravel()], dtype=bool).reshape(x32.shape)
    return out


@pytest.mark.spec("DEF-FORMAT-ELEMENT", "DEF-QUANTIZE")
@given(xs=st.lists(st.floats(-1.0, 1.0, width=32), min_size=1, max_size=32))
@example(xs=[float(v) for v in NF4_TREE] + [float(np.nextafter(v, np.float32(2))) for v in NF4_TREE]
         + [float(np.nextafter(v, np.float32(-2))) for v in NF4_TREE] + [-1.0, 1.0, 0.0, -0.0])
def test_nf4_matches_bitsandbytes_tree(xs):
    """Away from the tiny intervals between each float32 literal threshold and the exact midpoint,
    the reference's nearest-codeword NF4 code equals bitsandbytes' dQuantizeNF4 (code = number of
    thresholds T with x > T)."""
    x = np.array(xs, dtype=np.float32)
    tree = (x[:, None] > NF4_TREE[None, :]).sum(axis=1)
    keep = ~_tree_disagreement(x, NF4_TREE, get_format("nf4").codebook.values)
    got = quantize(x, "nf4")
    assert (got[keep] == tree[keep]).all()


@pytest.mark.spec("DEF-FORMAT-ELEMENT")
def test_fp4_bnb_values():
    """fp4_bnb = bitsandbytes' get_4bit_type('fp4') ([0, 0.0625, 8, 12, 4, 6, 2, 3] / 12 in float32),
    equal to the CUDA fp4_dequantization_lut literals, sign in bit 3."""
    raw = np.array([0, 0.0625, 8, 12, 4, 6, 2, 3], dtype=np.float32) / np.float32(12)
    cuda = np.array([0.0, 5.208333333e-03, 0.66666667, 1.0, 0.33333333, 0.5, 0.16666667, 0.25], dtype=np.float32)
    assert (raw.view(np.uint32) == cuda.view(np.uint32)).all()
    got = dequantize(np.arange(16, dtype=np.uint8), "fp4_bnb")
    sign = 1.0 - 2.0 * ((np.arange(16) & 0b1000) >> 3)
    want = (np.tile(cuda, 2) * sign.astype(np.float32)).astype(np.float64)
    assert (got.view(np.uint64) == want.view(np.uint64)).all()  # code 8 is -0.0


FP4_TREE = np.array([0.00260417, 0.0859375, 0.20833333, 0.29166667, 0.4166667, 0.583333, 0.8333333], dtype=np.float32)
FP4_TREE_CODES = np.array([0b000, 0b001, 0b110, 0b111, 0b100, 0b101, 0b010, 0b011])


@pytest.mark.spec("DEF-FORMAT-ELEMENT", "DEF-QUANTIZE")
@given(xs=st.lists(st.floats(-1.0, 1.0, width=32), min_size=1, max_size=32))
@example(xs=[float(v) for v in FP4_TREE] + [-float(v) for v in FP4_TREE] + [-1.0, 1.0, 0.0, -1e-30])
def test_fp4_bnb_matches_bitsandbytes_tree(xs):
    """Away from the literal-vs-midpoint intervals, fp4_bnb codes equal dQuantizeFP4:
    sign = x < 0 ? 0b1000 : 0, then a strict '>' tree on |x|.  Excluded too: x = −0.0, which
    bitsandbytes encodes as +0 (code 0) and the reference as −0 (code 8, signed zero kept)."""
    x = np.array(xs, dtype=np.float32)
    mag = np.abs(x)
    tree = FP4_TREE_CODES[(mag[:, None] > FP4_TREE[None, :]).sum(axis=1)] | np.where(x < 0, 0b1000, 0)
    pos = np.array([0, 0.0625, 8, 12, 4, 6, 2, 3], dtype=np.float32) / np.float32(12)
    sorted_mag = np.sort(pos).astype(np.float64)
    keep = ~_tree_disagreement(mag, FP4_TREE, sorted_mag) & ~((x == 0) & np.signbit(x))
    got = quantize(x, "fp4_bnb")
    assert (got[keep] == tree[keep]).all()
