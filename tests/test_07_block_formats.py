"""DEF-FORMAT-BLOCK-ABSMAX, DEF-FORMAT-MX, DEF-FORMAT-NVFP4: the reference's block formats against
straightforward re-implementations written here — plain loops over blocks, Python ``math.frexp`` /
``Fraction`` for exponents, NumPy float32 scalar arithmetic in the documented order, ml_dtypes casts
(from float32, where they round once) with explicit clamping for saturation, and
microsoft/microxcaling's element rounding ``sign(A)·floor(|A| + 0.5)``.

Codes, scales, tensor_scale and dequantized values are compared bit for bit.
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
from natprec.reference.errors import InvalidParameterError, NaNInputError, NonFiniteInputError

F32 = np.float32
FLT_MAX = F32(np.finfo(np.float32).max)
TINY_SUB = float(np.finfo(np.float32).smallest_subnormal)

# --------------------------------------------------------------------------------------------
# Inputs.
# --------------------------------------------------------------------------------------------


@st.composite
def block_arrays(draw, max_rows: int = 3, max_len: int = 80):
    """float32 arrays (rows, length), length often not a multiple of the block.

    Built from one drawn byte string (cheap to generate and to shrink; all-zero bytes give +0.0):
    per element a kind byte picks a raw float32 bit pattern (whole range, subnormals included;
    NaN/Inf patterns lose their exponent), a small half-integer times 2**j (exact ties after
    power-of-two scaling), a random significand times 2**j, or a signed zero.
    """
    rows = draw(st.integers(1, max_rows))
    n = draw(st.integers(1, max_len))
    j = draw(st.integers(-152, 118))
    size = rows * n
    b = np.frombuffer(draw(st.binary(min_size=6 * size, max_size=6 * size)), dtype=np.uint8).reshape(size, 6)
    bits = np.ascontiguousarray(b[:, :4]).view(np.uint32).ravel()
    bits = np.where((bits & 0x7F800000) == 0x7F800000, bits & 0x807FFFFF, bits).astype(np.uint32)
    kind = b[:, 4] % 6
    with np.errstate(over="ignore", under="ignore"):
        scale = 2.0**j
        raw = bits.view(np.float32)
        grid = (b[:, 5].astype(np.int8).astype(np.float64) / 2 * scale).astype(np.float32)
        frac = (((bits & 0x807FFFFF) | 0x3F800000).view(np.float32).astype(np.float64) * scale).astype(np.float32)
        zero = np.where(b[:, 5] & 1, F32(-0.0), F32(0.0))
    x = np.select([kind == 0, kind == 1, kind == 2, kind == 3, kind == 4], [raw, grid, frac, zero, grid], frac)
    x = x.astype(np.float32).reshape(rows, n)
    assert np.isfinite(x).all()
    return x


def _a(rows) -> np.ndarray:
    return np.array(rows, dtype=np.float32)


ALL_ZERO = _a([[0.0] * 40 + [-0.0] * 30, [0.0] * 70])
WITH_F32_MAX = _a([[float(FLT_MAX), -1.0, 2.0**-149, 0.5] * 10 + [3.0] * 33, [-float(FLT_MAX)] + [1.0] * 72])
SINGLE = _a([[3.0]])
SINGLE_NEG_TINY = _a([[-TINY_SUB]])
# subnormal-only blocks (absmax formats need max |x| >= 2**-128 — see test_absmax_tiny_block_is_finite)
SUBNORMAL_ONLY = _a([[2.0**-127, -(2.0**-128), 2.0**-149, -0.0, 3 * 2.0**-140] * 14])
SUBNORMAL_TINY = _a([[2.0**-149, -(2.0**-148), 0.0, 5 * 2.0**-149] * 9])

# --------------------------------------------------------------------------------------------
# Helpers.
# --------------------------------------------------------------------------------------------


def _bits64(a) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(a, dtype=np.float64)).view(np.uint64)


def _assert_same(got, want, what):
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape, (what, got.shape, want.shape)
    if got.dtype.kind == "f" or want.dtype.kind == "f":
        bad = _bits64(got) != _bits64(want)
    else:
        bad = got != want
    assert not bad.any(), (what, np.argwhere(bad)[:5].tolist(), got[bad][:5], want[bad][:5])


def _blocks(n: int, bs: int):
    return [(b * bs, min(n, (b + 1) * bs)) for b in range(-(-n // bs))]


ML_ELEM = {
    "float8_e4m3fn": md.float8_e4m3fn, "float8_e5m2": md.float8_e5m2, "float6_e2m3fn": md.float6_e2m3fn,
    "float6_e3m2fn": md.float6_e3m2fn, "float4_e2m1fn": md.float4_e2m1fn,
}
NBITS = {"float8_e4m3fn": 8, "float8_e5m2": 8, "float6_e2m3fn": 6, "float6_e3m2fn": 6, "float4_e2m1fn": 4}


def _ml_cast(y32: np.ndarray, elem: str, maxn: float):
    """Saturating RNE cast of float32 values: explicit clamp to ±max, then the ml_dtypes cast.
    Returns (codes, float64 decodes)."""
    assert y32.dtype == np.float32
    c = np.clip(y32, F32(-maxn), F32(maxn)).astype(ML_ELEM[elem])
    codes = c.view(np.uint8) & np.uint8((1 << NBITS[elem]) - 1)
    return codes, c.astype(np.float64)


def _to_f32_exact(y: np.ndarray) -> np.ndarray:
    """float64 -> float32 for scaled MX elements: exact, except below 2**-126 where every element
    format rounds to ±0 anyway (the sign survives)."""
    with np.errstate(under="ignore"):
        y32 = y.astype(np.float32)
    inexact = y32.astype(np.float64) != y
    assert not (inexact & (np.abs(y) >= 2.0**-126)).any()
    return y32


# --------------------------------------------------------------------------------------------
# Absmax (bitsandbytes blockwise).
# --------------------------------------------------------------------------------------------

NF4 = [-1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453, -0.28444138169288635,
       -0.18477343022823334, -0.09105003625154495, 0.0, 0.07958029955625534, 0.16093020141124725,
       0.24611230194568634, 0.33791524171829224, 0.44070982933044434, 0.5626170039176941,
       0.7229568362236023, 1.0]
_BNB_MAG = np.array([0, 0.0625, 8, 12, 4, 6, 2, 3], dtype=np.float32) / F32(12)


def _absmax_table(element: str):
    """(value by code as float32, signed-zero code or None) from the bitsandbytes literals."""
    if element == "nf4":
        return np.array(NF4, dtype=np.float32), None
    return np.concatenate((_BNB_MAG, -_BNB_MAG)), 8


class _Nearest:
    """Nearest codeword by the exact midpoints of adjacent codewords (each checked, once, to be exact in
    float64 with rationals, so plain float comparisons below are exact); ties by the named rule."""

    def __init__(self, by_code: np.ndarray, neg_zero_code):
        order = sorted((float(v), c) for c, v in enumerate(by_code) if not (v == 0 and np.signbit(v)))
        self.vals = [v for v, _ in order]
        self.codes = [c for _, c in order]
        self.mids = [(a + b) / 2 for a, b in zip(self.vals[:-1], self.vals[1:])]
        for m, a, b in zip(self.mids, self.vals[:-1], self.vals[1:]):
            assert Fraction(m) == (Fraction(a) + Fraction(b)) / 2
        self.neg_zero = neg_zero_code

    def __call__(self, y: float, tie: str) -> int:
        i = bisect.bisect_left(self.mids, y)  # number of midpoints < y
        if i < len(self.mids) and self.mids[i] == y:  # exactly between vals[i] and vals[i+1]
            lo, hi = i, i + 1
            if tie == "even":
                i = lo if self.codes[lo] % 2 == 0 else hi
            elif tie == "down":
                i = lo
            elif tie == "up":
                i = hi
            else:  # away: the larger magnitude (no midpoint is 0 here)
                i = hi if y > 0 else lo
        c = self.codes[i]
        if self.vals[i] == 0.0 and self.neg_zero is not None and math.copysign(1.0, y) < 0:
            c = self.neg_zero
        return c


def _absmax_oracle(x: np.ndarray, element: str, bs: int, tie: str):
    by_code, neg_zero = _absmax_table(element)
    nearest = _Nearest(by_code, neg_zero)
    rows, n = x.shape
    codes = np.zeros((rows, n), dtype=np.uint8)
    deq = np.zeros((rows, n), dtype=np.float64)
    scales = np.zeros((rows, -(-n // bs)), dtype=np.float32)
    for r in range(rows):
        for b, (lo, hi) in enumerate(_blocks(n, bs)):
            s = F32(0)
            for v in x[r, lo:hi]:
                s = max(s, abs(v))  # float32 absmax of the valid items
            with np.errstate(over="ignore", divide="ignore"):
                rcp = F32(1) / s if s > 0 else F32(0)  # float32 reciprocal
            scales[r, b] = s
            for i in range(lo, hi):
                # fl32(x · fl32(1/s)); when 1/s overflows (s < 2**-128) the spec divides: fl32(x / s)
                y = x[r, i] / s if np.isinf(rcp) else x[r, i] * rcp
                assert y.dtype == np.float32
                c = nearest(float(y), tie)
                codes[r, i] = c
                deq[r, i] = float(by_code[c] * s)  # fl32(c · s)
    return codes, scales, deq


ABSMAX = {"nf4_absmax64": "nf4", "fp4_bnb_absmax64": "fp4_bnb"}


@pytest.mark.spec("DEF-FORMAT-BLOCK-ABSMAX", "DEF-QUANTIZE")
@pytest.mark.parametrize("name", tuple(ABSMAX))
@given(x=block_arrays(max_len=90), bs=st.sampled_from([64, 64, 1, 3, 16, 128]))
@example(x=ALL_ZERO, bs=64)
@example(x=WITH_F32_MAX, bs=64)
@example(x=SUBNORMAL_ONLY, bs=64)
@example(x=SINGLE, bs=64)
@example(x=SINGLE_NEG_TINY, bs=64)
@example(x=_a([NF4 * 4 + [0.1, -0.3, 0.7]]), bs=64)
# x·fl32(1/s) and x/s land on different sides of an NF4 midpoint for the second element of each row.
@example(x=_a([[94.89061737060547, -32.232391357421875], [45.62303924560547, 39.30326461791992],
               [98.0833511352539, 3.9027514457702637]]), bs=64)
def test_absmax_matches_loop_oracle(name, x, bs):
    fmt = get_format(name) if bs == 64 else get_format(name, block_size=bs)
    q = quantize(x, fmt)
    codes, scales, deq = _absmax_oracle(x, ABSMAX[name], bs, "even")
    assert q.format == name and q.tensor_scale is None and tuple(q.shape) == x.shape
    _assert_same(q.codes, codes, "codes")
    assert q.scales.dtype == np.float32
    _assert_same(q.scales.astype(np.float64), scales.astype(np.float64), "scales")
    _assert_same(dequantize(q, fmt), deq, "dequantized")


@pytest.mark.spec("DEF-FORMAT-BLOCK-ABSMAX", "DEF-TIE-RULES")
@pytest.mark.parametrize("tie", ["down", "up", "away"])
@pytest.mark.parametrize("name", tuple(ABSMAX))
@given(x=block_arrays(max_rows=2, max_len=70))
@example(x=_a([[1.0, 0.5, 0.25, 0.75, -0.5, 0.0, -0.0, 0.00260416674]]))
def test_absmax_tie_rules(name, tie, x):
    q = quantize(x, name, tie=tie)
    codes, scales, deq = _absmax_oracle(x, ABSMAX[name], 64, tie)
    _assert_same(q.codes, codes, "codes")
    _assert_same(dequantize(q, name), deq, "dequantized")


@pytest.mark.spec("DEF-FORMAT-BLOCK-ABSMAX")
def test_absmax_partial_block_and_block_count():
    x = np.linspace(-3, 5, 3 * 130, dtype=np.float32).reshape(3, 130)
    for name in ABSMAX:
        q = quantize(x, name)
        assert q.codes.shape == (3, 130) and q.scales.shape == (3, 3)
        # the partial last block's absmax covers its 2 valid items only
        assert (q.scales[:, 2] == np.max(np.abs(x[:, 128:]), axis=1)).all()


@pytest.mark.spec("DEF-FORMAT-BLOCK-ABSMAX")
@pytest.mark.parametrize("name", tuple(ABSMAX))
def test_absmax_tiny_block_divides(name):
    # s = 2**-149: fl32(1/s) overflows, so y = fl32(x / s) = [1, 0] and the block decodes exactly.
    x = _a([[2.0**-149, 0.0]])
    d = dequantize(quantize(x, name), name)
    assert d.tolist() == [[2.0**-149, 0.0]]


# --------------------------------------------------------------------------------------------
# MX (OCP Microscaling).
# --------------------------------------------------------------------------------------------

#: name -> (element, emax_elem, max_norm, microxcaling ebits, mbits (sign and implicit bit included))
MX = {
    "mxfp8_e4m3": ("float8_e4m3fn", 8, 448.0, 4, 5),
    "mxfp8_e5m2": ("float8_e5m2", 15, 57344.0, 5, 4),
    "mxfp6_e2m3": ("float6_e2m3fn", 2, 7.5, 2, 5),
    "mxfp6_e3m2": ("float6_e3m2fn", 4, 28.0, 3, 4),
    "mxfp4": ("float4_e2m1fn", 2, 6.0, 2, 3),
}


def _ceil_log2(q: Fraction) -> int:
    """Smallest integer k with q <= 2**k (q > 0), exactly."""
    k = q.numerator.bit_length() - q.denominator.bit_length()
    while q > Fraction(2) ** k:
        k += 1
    while q <= Fraction(2) ** (k - 1):
        k -= 1
    return k


def _mx_exponent(amax: float, emax: int, maxn: float, rule: str) -> int:
    if amax == 0:
        return -127
    if rule == "floor":
        _, ex = math.frexp(amax)  # amax = m·2**ex, m in [0.5, 1): floor(log2 amax) = ex − 1
        e = ex - 1 - emax
    else:
        e = _ceil_log2(Fraction(amax) / Fraction(maxn))
    return min(max(e, -127), 127)


def _mx_oracle(x: np.ndarray, name: str, bs: int, rule: str):
    elem, emax, maxn, _, _ = MX[name]
    rows, n = x.shape
    codes = np.zeros((rows, n), dtype=np.uint8)
    deq = np.zeros((rows, n), dtype=np.float64)
    scales = np.zeros((rows, -(-n // bs)), dtype=np.uint8)
    for r in range(rows):
        for b, (lo, hi) in enumerate(_blocks(n, bs)):
            amax = max(abs(float(v)) for v in x[r, lo:hi])
            e = _mx_exponent(amax, emax, maxn, rule)
            scales[r, b] = e + 127
            y = np.array([math.ldexp(float(v), -e) for v in x[r, lo:hi]])  # exact
            c, v = _ml_cast(_to_f32_exact(y), elem, maxn)
            codes[r, lo:hi] = c
            deq[r, lo:hi] = [math.ldexp(float(t), e) for t in v]
    return codes, scales, deq


MX_EXAMPLES = [
    ALL_ZERO, WITH_F32_MAX, SUBNORMAL_ONLY, SUBNORMAL_TINY, SINGLE, SINGLE_NEG_TINY,
    _a([[6.0, 5.0, 1.25, 0.25, -0.75, 2.5, 3.5, -5.0, 7.75, 464.0, 30.0, 61440.0, -0.0]]),
    _a([[7.9999995, 255.99998, 1.0, -0.1]]),  # amax just below a power of two: log2 would round up
    # amax where TE's RCEIL (ceil log2 of fl32(amax·fl32(1/max))) is one below the exact rule
    _a([[float.fromhex("0x1.c00002p-119"), -(2.0**-125)], [float.fromhex("0x1.800002p-125"), 2.0**-130]]),
]


def _mx_fmt(name, bs, rule):
    if bs == 32 and rule == "floor":
        return get_format(name)
    return get_format(name, block_size=bs, scale_rule=rule)


@pytest.mark.spec("DEF-FORMAT-MX", "DEF-QUANTIZE")
@pytest.mark.parametrize("rule", ["floor", "rceil"])
@pytest.mark.parametrize("name", tuple(MX))
@given(x=block_arrays(), bs=st.sampled_from([32, 32, 8, 5]))
@example(x=MX_EXAMPLES[0], bs=32)
@example(x=MX_EXAMPLES[1], bs=32)
@example(x=MX_EXAMPLES[2], bs=32)
@example(x=MX_EXAMPLES[3], bs=32)
@example(x=MX_EXAMPLES[4], bs=32)
@example(x=MX_EXAMPLES[5], bs=32)
@example(x=MX_EXAMPLES[6], bs=32)
@example(x=MX_EXAMPLES[7], bs=32)
@example(x=MX_EXAMPLES[8], bs=32)
def test_mx_matches_loop_oracle(name, rule, x, bs):
    fmt = _mx_fmt(name, bs, rule)
    q = quantize(x, fmt)
    codes, scales, deq = _mx_oracle(x, name, bs, rule)
    assert q.format == name and q.tensor_scale is None
    _assert_same(q.codes, codes, "codes")
    assert q.scales.dtype == np.uint8
    _assert_same(q.scales, scales, "E8M0 scale codes")
    _assert_same(dequantize(q, fmt), deq, "dequantized")
    if rule == "rceil":  # the point of RCEIL: nothing saturates
        e = scales.astype(np.int64) - 127
        for r in range(x.shape[0]):
            for b, (lo, hi) in enumerate(_blocks(x.shape[1], bs)):
                amax = float(np.max(np.abs(x[r, lo:hi])))
                assert amax <= math.ldexp(MX[name][2], int(e[r, b]))


@pytest.mark.spec("DEF-FORMAT-MX")
@pytest.mark.parametrize("rule", ["floor", "rceil"])
@pytest.mark.parametrize("name", tuple(MX))
def test_mx_exponent_of_every_float32_class(name, rule):
    """The shared exponent of a block of one |x| (read from the bits) against the exact rule, for every float32
    exponent field and the mantissas where the rules turn: 0, 1, the element max's mantissa Mm and its neighbours,
    all ones; the signs and zero too."""
    mm = int(np.float32(MX[name][2]).view(np.uint32)) & 0x7FFFFF
    mant = np.array(sorted({0, 1, max(mm - 1, 0), mm, mm + 1, 0x7FFFFF}), dtype=np.uint32)
    bits = (np.arange(255, dtype=np.uint32)[:, None] << np.uint32(23)) | mant
    a = np.concatenate([bits.ravel().view(np.float32), np.float32([0.0])])
    x = np.concatenate([a, -a])
    q = quantize(x, get_format(name, block_size=1, scale_rule=rule))
    want = [_mx_exponent(float(v), MX[name][1], MX[name][2], rule) + 127 for v in np.abs(x)]
    np.testing.assert_array_equal(q.scales, np.array(want, dtype=np.uint8))


@pytest.mark.spec("DEF-FORMAT-MX")
def test_mx_refuses_an_element_outside_its_exponent_arithmetic():
    """MX scales read e from amax's bits, exact where emax_elem ≥ 0 and the element's max is a float32 ≥ 2."""
    from natprec.reference import MXFormat
    from natprec.reference.errors import CodebookError

    fp4 = get_format("mxfp4")
    with pytest.raises(CodebookError) as e:
        MXFormat("mx_bad", fp4.element, -1, 32, "floor")
    assert e.value.value == (-1, 6.0)
    with pytest.raises(CodebookError):
        MXFormat("mx_ternary", get_format("ternary"), 0, 32, "rceil")  # max 1


def _microxcaling_elem(a: float, ebits: int, mbits: int, maxn: float, rounding: str) -> float:
    """microxcaling ``_quantize_elemwise_core`` (saturate_normals=True, allow_denorm=True) with its
    exact exponent (the CUDA path): private_exp = max(floor(log2 |A|), min_exp); scale to
    mbits−2 fraction bits; round ("nearest" = sign·floor(|·| + 0.5), or "even"); unscale; clamp."""
    if a == 0.0:
        return a
    min_exp = -(2 ** (ebits - 1)) + 2
    _, ex = math.frexp(abs(a))
    pe = max(ex - 1, min_exp)
    s = math.ldexp(abs(a), mbits - 2 - pe)  # exact
    r = math.floor(s + 0.5) if rounding == "nearest" else float(round(s))  # round() is half-even
    out = min(math.ldexp(r, pe - (mbits - 2)), maxn)
    return math.copysign(out, a)


@pytest.mark.spec("DEF-FORMAT-MX", "DEF-TIE-RULES")
@pytest.mark.parametrize("tie", ["away", "even"])
@pytest.mark.parametrize("name", tuple(MX))
@given(x=block_arrays(max_rows=2, max_len=70))
@example(x=MX_EXAMPLES[6])
@example(x=MX_EXAMPLES[0])
@example(x=MX_EXAMPLES[3])
def test_mx_matches_microxcaling_rounding(name, tie, x):
    """tie='away' is microxcaling's default round="nearest" (floor(|x|+0.5)); tie='even' its
    round="even".  Shared exponent from the exact (CUDA-path) exponent, range −127..127."""
    elem, emax, maxn, ebits, mbits = MX[name]
    q = quantize(x, name, tie=tie)
    got = dequantize(q, name)
    rows, n = x.shape
    for r in range(rows):
        for b, (lo, hi) in enumerate(_blocks(n, 32)):
            amax = max(abs(float(v)) for v in x[r, lo:hi])
            shared = math.frexp(amax if amax > 0 else 2.0**-126)[1] - 1 - emax
            shared = min(max(shared, -127), 127)
            assert int(q.scales[r, b]) == shared + 127
            for i in range(lo, hi):
                a = math.ldexp(float(x[r, i]), -shared)
                want = math.ldexp(_microxcaling_elem(a, ebits, mbits, maxn,
                                                     "nearest" if tie == "away" else "even"), shared)
                assert got[r, i] == want, (r, i, float(x[r, i]), got[r, i], want)
                if want == 0.0:  # the reference keeps the input's sign on a zero
                    assert np.signbit(got[r, i]) == np.signbit(x[r, i])


# --------------------------------------------------------------------------------------------
# NVFP4 (Transformer Engine arithmetic).
# --------------------------------------------------------------------------------------------


def _nvfp4_oracle(x: np.ndarray, bs: int):
    """TE's NVFP4 quantization, every step a float32 scalar operation, in TE's order."""
    rows, n = x.shape
    A = F32(0)
    for v in x.ravel():
        A = max(A, abs(v))
    with np.errstate(divide="ignore", over="ignore"):
        s_enc = F32(1) if A == 0 else min(F32(2688) / A, FLT_MAX)
    if s_enc == 0:
        s_enc = F32(1)
    s_dec = F32(1) / s_enc
    factor = s_enc * (F32(1) / F32(6))  # S_enc · (1/6) first
    codes = np.zeros((rows, n), dtype=np.uint8)
    deq = np.zeros((rows, n), dtype=np.float64)
    scales = np.zeros((rows, -(-n // bs)), dtype=np.uint8)
    for r in range(rows):
        for b, (lo, hi) in enumerate(_blocks(n, bs)):
            a = F32(0)
            for v in x[r, lo:hi]:
                a = max(a, abs(v))
            with np.errstate(over="ignore"):
                pre = min(a * factor, FLT_MAX)
            sc, sv = _ml_cast(np.array([pre], dtype=np.float32), "float8_e4m3fn", 448.0)
            scales[r, b] = sc[0]
            s = F32(sv[0])
            with np.errstate(divide="ignore", over="ignore"):
                k = min(F32(1) / (s * s_dec), FLT_MAX)
                y = np.array([v * k for v in x[r, lo:hi]], dtype=np.float32)
            c, cv = _ml_cast(y, "float4_e2m1fn", 6.0)
            codes[r, lo:hi] = c
            deq[r, lo:hi] = [float((F32(t) * s) * s_dec) for t in cv]
    return codes, scales, s_dec, deq


@pytest.mark.spec("DEF-FORMAT-NVFP4", "DEF-QUANTIZE")
@given(x=block_arrays(), bs=st.sampled_from([16, 16, 4, 7]))
@example(x=ALL_ZERO, bs=16)
@example(x=WITH_F32_MAX, bs=16)
@example(x=SUBNORMAL_ONLY, bs=16)
@example(x=SUBNORMAL_TINY, bs=16)
@example(x=SINGLE, bs=16)
@example(x=SINGLE_NEG_TINY, bs=16)
@example(x=_a([[1000.0] + [0.0] * 15 + [1e-4] * 16]), bs=16)  # spec evidence: block 1's scale rounds to 0
@example(x=_a([[2688.0, 6.0, 5.0, 1.25, 0.25, -0.75, 2.5, 3.5, -5.0, 1e-3] + [0.5] * 7]), bs=16)
# Second block: fl32(a·fl32(S_enc·fl32(1/6))) and fl32(fl32(a/6)·S_enc) straddle an E4M3 midpoint
# (29.000002 vs 29.0; 2.1250002 vs 2.125): the order of the scale arithmetic matters.
@example(x=_a([[544.0813598632812] + [0.0] * 15 + [35.21955108642578, -1.0]]), bs=16)
@example(x=_a([[300.41217041015625] + [0.0] * 15 + [1.4249460697174072]]), bs=16)
def test_nvfp4_matches_te_arithmetic(x, bs):
    fmt = get_format("nvfp4") if bs == 16 else get_format("nvfp4", block_size=bs)
    q = quantize(x, fmt)
    codes, scales, s_dec, deq = _nvfp4_oracle(x, bs)
    assert q.format == "nvfp4"
    _assert_same(q.codes, codes, "codes")
    assert q.scales.dtype == np.uint8
    _assert_same(q.scales, scales, "E4M3 scale codes")
    assert isinstance(q.tensor_scale, np.float32) and q.tensor_scale.view(np.uint32) == s_dec.view(np.uint32)
    _assert_same(dequantize(q, fmt), deq, "dequantized")


# --------------------------------------------------------------------------------------------
# Input dtypes and refusals common to the block formats.
# --------------------------------------------------------------------------------------------

BLOCK = tuple(ABSMAX) + tuple(MX) + ("nvfp4",)


@pytest.mark.spec("DEF-FORMAT-BLOCK-ABSMAX", "DEF-FORMAT-MX", "DEF-FORMAT-NVFP4")
@pytest.mark.parametrize("name", BLOCK)
@given(x=block_arrays(max_rows=2, max_len=40))
def test_block_input_dtypes(name, x):
    """float16/bfloat16 inputs convert exactly to float32; float64 is rounded once to float32 (RNE)."""
    with np.errstate(over="ignore"):
        for lowp in (np.float16, md.bfloat16):
            xl = x.astype(lowp)
            if not np.isfinite(xl.astype(np.float32)).all():
                continue
            a, b = quantize(xl, name), quantize(xl.astype(np.float32), name)
            _assert_same(a.codes, b.codes, "codes")
            _assert_same(a.scales.astype(np.float64), b.scales.astype(np.float64), "scales")
    x64 = x.astype(np.float64) * (1 + 2.0**-30)  # not float32 values: must round once to float32
    x64_32 = x64.astype(np.float32)
    if np.isfinite(x64_32).all():
        a, b = quantize(x64, name), quantize(x64_32, name)
        _assert_same(a.codes, b.codes, "codes")


@pytest.mark.spec("DEF-FORMAT-BLOCK-ABSMAX", "DEF-FORMAT-MX", "DEF-FORMAT-NVFP4")
@pytest.mark.parametrize("name", BLOCK)
def test_block_formats_refuse_non_finite(name):
    with pytest.raises(NaNInputError):
        quantize(_a([[1.0, np.nan]]), name)
    with pytest.raises(NonFiniteInputError):
        quantize(_a([[1.0, np.inf]]), name)
    with pytest.raises(NonFiniteInputError):
        quantize(np.array([[1.0, 1e300]]), name)  # overflows float32


@pytest.mark.spec("DEF-FORMAT-BLOCK-ABSMAX", "DEF-FORMAT-MX", "DEF-FORMAT-NVFP4")
def test_block_codes_decode_only_with_their_own_block_size():
    x = np.full((2, 64), 96.0, np.float32)
    for name in ("mxfp4", "nvfp4", "nf4_absmax64", "mxfp8_e4m3"):
        for bs in (16, 32, 64):
            f = get_format(name, block_size=bs)
            q = quantize(x, f)
            assert q.block_size == bs
            np.testing.assert_array_equal(dequantize(q, f), dequantize(quantize(x, get_format(name, block_size=bs)), f))
            other = get_format(name, block_size=128)
            with pytest.raises(InvalidParameterError) as e:
                dequantize(q, other)
            assert e.value.value == bs


@pytest.mark.spec("DEF-FORMAT-BLOCK-ABSMAX", "DEF-FORMAT-MX", "DEF-FORMAT-NVFP4")
def test_block_size_beyond_the_input_is_one_block_of_the_values():
    x = np.random.default_rng(2).standard_normal((3, 10)).astype(np.float32)
    for name in ("mxfp4", "nvfp4", "nf4_absmax64"):
        small, huge = get_format(name, block_size=16), get_format(name, block_size=2**40)
        a, b = quantize(x, small), quantize(x, huge)
        np.testing.assert_array_equal(a.codes, b.codes)
        np.testing.assert_array_equal(a.scales, b.scales)
        np.testing.assert_array_equal(dequantize(a, small), dequantize(b, huge))


@pytest.mark.spec("DEF-FORMAT-MX")
@pytest.mark.parametrize("fmt", ["mxfp4", "mxfp8_e4m3", "mxfp6_e2m3"])
def test_mx_scaled_values_are_exact_where_float32_would_round(fmt):
    # A block whose maximum is 2^128 times its smallest values: x·2^−e falls among float32's subnormals.
    x = np.random.default_rng(8).standard_normal((4, 64)).astype(np.float32)
    x[:, 0] = 3e38
    x[:, 1:6] = np.array([1e-40, -2e-45, 1.5e-42, 7e-39, -1e-44], np.float32)
    f = get_format(fmt)
    q = quantize(x, f)
    e = q.scales.astype(np.int64) - 127
    exact = np.ldexp(x.astype(np.float64), -np.repeat(e, f.block_size, axis=-1)[..., : x.shape[-1]])
    y = f.scaled(x)
    assert y.dtype == np.float64 and np.array_equal(y, exact)
    assert np.array_equal(q.codes, quantize(exact, f.element, saturate=True))
    x[:, 0] = 1.0  # ordinary blocks: the float32 path, same definition
    q, y = quantize(x, f), f.scaled(x)
    e = q.scales.astype(np.int64) - 127
    assert np.array_equal(y, np.ldexp(x.astype(np.float64), -np.repeat(e, f.block_size, axis=-1)[..., : x.shape[-1]]))
