"""DEF-FORMAT-ELEMENT, DEF-FORMAT-BLOCK-ABSMAX, DEF-FORMAT-MX, DEF-FORMAT-NVFP4 — number formats as exact codebooks.

Chapter: spec/07-formats.md.  An element format is a :class:`Codebook` of its
finite values plus conversion rules (signed zero, overflow, ±Inf, NaN).  A block
format adds a per-block scale whose arithmetic — which operation, in which
dtype, in which order — is fixed here and in the spec.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from ._domain import as_float_array, assert_subnormals_survive, check_nan_policy, layout_of, nan_mask, raise_on_nan
from .codebook import Codebook, nearest_index
from .errors import (
    CodebookError,
    InvalidDTypeError,
    InvalidParameterError,
    NaNInputError,
    NonFiniteInputError,
    UnknownFormatError,
)

__all__ = [
    "ElementFormat",
    "BlockQuantized",
    "AbsmaxBlockFormat",
    "MXFormat",
    "NVFP4Format",
    "FORMAT_NAMES",
    "get_format",
    "format_names",
    "quantize",
    "dequantize",
    "NF4_VALUES",
]

_F32 = np.float32


class ElementFormat:
    """DEF-FORMAT-ELEMENT — an element-wise format: codebook of finite values + conversion rules.

    * ``signed_zero``: a result of zero keeps the input's sign bit (IEEE).
    * ``overflow_code``: encoding of the value one step beyond the largest finite
      magnitude in an unbounded-exponent version of the format (the IEEE ±Inf
      pattern, or e4m3fn's NaN pattern).  Finite inputs beyond the overflow
      midpoint go there when ``saturate=False``; ``None`` means the format can only saturate.
    * ``inf_code``/``nan_code``: positive-sign encodings of +Inf / the canonical quiet NaN, or None.
    * ``sign_bit``: the encoding bit that carries the sign (None for unsigned encodings).
    """

    def __init__(
        self,
        name: str,
        codebook: Codebook,
        *,
        nbits: int,
        description: str,
        signed_zero: bool = False,
        sign_bit: int | None = None,
        overflow_value: float | None = None,
        overflow_code: int | None = None,
        inf_code: int | None = None,
        nan_code: int | None = None,
        default_saturate: bool = True,
    ):
        self.name = name
        self.codebook = codebook
        self.nbits = nbits
        self.description = description
        self.signed_zero = signed_zero
        self.sign_bit = sign_bit
        self.inf_code = inf_code
        self.nan_code = nan_code
        self.default_saturate = default_saturate
        self.overflow_code = overflow_code
        v = codebook.values
        self.max_finite = float(v[-1])
        self.min_finite = float(v[0])
        if overflow_code is not None:
            s = 1 << sign_bit
            ext_vals = np.concatenate(([-overflow_value], v, [overflow_value]))
            ext_enc = np.concatenate((np.array([overflow_code | s], np.uint64), codebook.encodings.astype(np.uint64),
                                      np.array([overflow_code], np.uint64)))
            self._extended = Codebook(ext_vals, ext_enc, name=name + "+overflow")
        else:
            self._extended = None
        zero = np.flatnonzero(v == 0.0)
        self._zero_index = int(zero[0]) if zero.size else -1
        self._decode = self._decode_table()

    def __repr__(self) -> str:
        return f"ElementFormat({self.name!r}, {len(self.codebook)} finite values, max {self.max_finite!r})"

    @property
    def code_dtype(self):
        return np.uint8 if self.nbits <= 8 else np.uint16

    def conventions(self) -> dict:
        return {
            "nbits": self.nbits,
            "finite_values": len(self.codebook),
            "max_finite": self.max_finite,
            "signed_zero": self.signed_zero,
            "default_saturate": self.default_saturate,
            "overflow": None if self.overflow_code is None else ("Inf" if self.overflow_code == self.inf_code else "NaN"),
            "inf": self.inf_code is not None,
            "nan": self.nan_code is not None,
            "tie_default": "even",
        }

    def _decode_table(self) -> np.ndarray:
        table = np.full(1 << self.nbits, np.nan)
        valid = np.zeros(1 << self.nbits, dtype=bool)
        table[self.codebook.encodings.astype(np.int64)] = self.codebook.values
        valid[self.codebook.encodings.astype(np.int64)] = True
        if self.signed_zero and self._zero_index >= 0:
            nz = int(self.codebook.encodings[self._zero_index]) | (1 << self.sign_bit)
            table[nz] = -0.0
            valid[nz] = True
        if self.inf_code is not None:
            table[self.inf_code] = np.inf
            table[self.inf_code | (1 << self.sign_bit)] = -np.inf
            valid[[self.inf_code, self.inf_code | (1 << self.sign_bit)]] = True
        if self.nan_code is not None:
            nan_codes = self._nan_codes()
            valid[nan_codes] = True
            signed = (nan_codes >> self.sign_bit) & 1 == 1
            table[nan_codes[signed]] = -np.nan  # NaN codes keep their sign bit
        table.flags.writeable = False
        self._valid = valid
        return table

    def _nan_codes(self) -> np.ndarray:
        """Every encoding that decodes to NaN (all payloads, both signs)."""
        n = 1 << self.nbits
        known = np.zeros(n, dtype=bool)
        known[self.codebook.encodings.astype(np.int64)] = True
        if self.signed_zero and self._zero_index >= 0:
            known[int(self.codebook.encodings[self._zero_index]) | (1 << self.sign_bit)] = True
        if self.inf_code is not None:
            known[[self.inf_code, self.inf_code | (1 << self.sign_bit)]] = True
        return np.flatnonzero(~known)

    def quantize(self, x, *, tie: str = "even", saturate: bool | None = None, nan_policy: str = "raise") -> np.ndarray:
        """DEF-FORMAT-ELEMENT — encodings of the format value each element converts to."""
        check_nan_policy(nan_policy, ("raise", "propagate"))
        assert_subnormals_survive()
        arr = as_float_array(x)
        sat = self.default_saturate if saturate is None else bool(saturate)
        if not sat and self._extended is None:
            raise InvalidParameterError(
                f"format {self.name} has no Inf or NaN encoding: overflow can only saturate (saturate=False given)",
                value=saturate,
            )
        nan = nan_mask(arr)
        if nan_policy == "raise":
            raise_on_nan(arr, "x", nan)
        elif nan.any() and self.nan_code is None:
            raise NaNInputError(
                f"format {self.name} has no NaN encoding, so nan_policy='propagate' cannot keep the NaNs of x",
                value=int(np.flatnonzero(nan.ravel())[0]),
            )
        lay = layout_of(arr.dtype)
        if sat:
            idx = nearest_index(arr, self.codebook, tie)
            codes = self.codebook.encodings[idx.ravel()].reshape(idx.shape).astype(self.code_dtype)
        else:
            idx = nearest_index(arr, self._extended, tie)
            # Beyond the overflow midpoint (and ±Inf) the virtual codeword's code: ±Inf, or NaN for e4m3fn.
            codes = self._extended.encodings[idx.ravel()].reshape(idx.shape).astype(self.code_dtype)
        signbit = (np.ascontiguousarray(arr).view(lay.uint).reshape(arr.shape) >> lay.uint(lay.nbits - 1)).astype(bool)
        if self.signed_zero and self._zero_index >= 0:
            zero_code = self.code_dtype(self.codebook.encodings[self._zero_index])
            neg_zero = signbit & (codes == zero_code)
            codes = np.where(neg_zero, codes | self.code_dtype(1 << self.sign_bit), codes).astype(self.code_dtype)
        if nan.any():
            canon = self.code_dtype(self.nan_code)
            sign = self.code_dtype(1 << self.sign_bit)
            codes = np.where(nan, np.where(signbit, canon | sign, canon), codes).astype(self.code_dtype)
        return codes

    def dequantize(self, codes) -> np.ndarray:
        """DEF-FORMAT-ELEMENT — exact float64 value of each encoding (NaN encodings decode to NaN)."""
        c = np.asarray(codes)
        if c.dtype.kind not in "iu":
            raise InvalidDTypeError(f"codes must be integers; got {c.dtype}", value=str(c.dtype))
        if c.size and (c.min() < 0 or c.max() >= (1 << self.nbits) or not self._valid[c.astype(np.int64)].all()):
            bad = c.ravel()[(c.ravel() < 0) | (c.ravel() >= (1 << self.nbits))]
            if bad.size == 0:
                bad = c.ravel()[~self._valid[c.ravel().astype(np.int64)]]
            raise InvalidParameterError(f"{int(bad[0])} is not an encoding of format {self.name}", value=int(bad[0]))
        return self._decode[c.astype(np.int64).ravel()].reshape(c.shape)


def _minifloat(name: str, ebits: int, mbits: int, bias: int, *, ieee: bool, description: str) -> ElementFormat:
    """Enumerate a sign-exponent-mantissa format.  ``ieee``: all-ones exponent is Inf/NaN;
    otherwise (``fn`` formats) only S.1…1.1…1 is NaN when the format has 8+ bits (e4m3fn), none below."""
    nbits = 1 + ebits + mbits
    sign_bit = nbits - 1
    codes = np.arange(1 << (nbits - 1), dtype=np.int64)  # positive half
    e = codes >> mbits
    m = codes & ((1 << mbits) - 1)
    top = (1 << ebits) - 1
    val = np.where(e == 0, m * 2.0 ** (1 - bias - mbits), (1.0 + m / 2.0**mbits) * 2.0 ** (e - bias))
    if ieee:
        finite = e != top
        inf_code = top << mbits
        nan_code = inf_code | (1 << (mbits - 1))
    else:
        has_nan = nbits == 8
        finite = ~((e == top) & (m == (1 << mbits) - 1)) if has_nan else np.ones_like(e, dtype=bool)
        inf_code = None
        nan_code = int((top << mbits) | ((1 << mbits) - 1)) if has_nan else None
    pos_codes, pos_vals = codes[finite], val[finite]
    neg_codes = pos_codes[1:] | (1 << sign_bit)  # skip −0
    values = np.concatenate((-pos_vals[1:][::-1], pos_vals))
    encs = np.concatenate((neg_codes[::-1], pos_codes))
    cb = Codebook(values, encs, name=name)
    max_code = int(pos_codes[-1])
    emax_field = max_code >> mbits
    ulp = 2.0 ** (max(emax_field, 1) - bias - mbits)
    overflow_code = inf_code if ieee else nan_code
    return ElementFormat(
        name,
        cb,
        nbits=nbits,
        description=description,
        signed_zero=True,
        sign_bit=sign_bit,
        overflow_value=float(pos_vals[-1] + ulp) if overflow_code is not None else None,
        overflow_code=overflow_code,
        inf_code=inf_code,
        nan_code=nan_code,
        default_saturate=overflow_code is None,
    )


def _integer(name: str, nbits: int, description: str) -> ElementFormat:
    lo, hi = -(1 << (nbits - 1)), (1 << (nbits - 1)) - 1
    vals = np.arange(lo, hi + 1, dtype=np.int64)
    cb = Codebook(vals.astype(np.float64), vals & ((1 << nbits) - 1), name=name)
    return ElementFormat(name, cb, nbits=nbits, description=description)


#: bitsandbytes' NF4 table (code order = ascending order), float32 constants.
NF4_VALUES = np.array(
    [
        -1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453,
        -0.28444138169288635, -0.18477343022823334, -0.09105003625154495, 0.0,
        0.07958029955625534, 0.16093020141124725, 0.24611230194568634, 0.33791524171829224,
        0.44070982933044434, 0.5626170039176941, 0.7229568362236023, 1.0,
    ],
    dtype=np.float32,
)

#: bitsandbytes' FP4 (not E2M1): magnitude for each 3-bit code, sign in bit 3.
_BNB_FP4_MAGNITUDE = np.array(
    [0.0, 0.005208333333, 0.6666667, 1.0, 0.33333333, 0.5, 0.16666667, 0.25], dtype=np.float32
)


def _bnb_fp4() -> ElementFormat:
    mag = _BNB_FP4_MAGNITUDE.astype(np.float64)
    codes = np.arange(8)
    order = np.argsort(mag)
    pos_v, pos_c = mag[order], codes[order]
    values = np.concatenate((-pos_v[1:][::-1], pos_v))
    encs = np.concatenate(((pos_c[1:] | 8)[::-1], pos_c))
    cb = Codebook(values, encs, name="fp4_bnb")
    return ElementFormat(
        "fp4_bnb",
        cb,
        nbits=4,
        signed_zero=True,
        sign_bit=3,
        description="bitsandbytes FP4 (sign + 3-bit code, normalised to max 1; not OCP E2M1)",
    )


def _element_formats() -> dict[str, ElementFormat]:
    f = {}
    f["float16"] = _minifloat("float16", 5, 10, 15, ieee=True, description="IEEE binary16")
    f["bfloat16"] = _minifloat("bfloat16", 8, 7, 127, ieee=True, description="bfloat16 (IEEE-style, 8-bit exponent)")
    f["float8_e4m3fn"] = _minifloat("float8_e4m3fn", 4, 3, 7, ieee=False, description="OCP FP8 E4M3 (no Inf, NaN = S.1111.111)")
    f["float8_e5m2"] = _minifloat("float8_e5m2", 5, 2, 15, ieee=True, description="OCP FP8 E5M2 (IEEE-style)")
    f["float6_e2m3fn"] = _minifloat("float6_e2m3fn", 2, 3, 1, ieee=False, description="OCP FP6 E2M3 (no Inf/NaN)")
    f["float6_e3m2fn"] = _minifloat("float6_e3m2fn", 3, 2, 3, ieee=False, description="OCP FP6 E3M2 (no Inf/NaN)")
    f["float4_e2m1fn"] = _minifloat("float4_e2m1fn", 2, 1, 1, ieee=False, description="OCP FP4 E2M1 (no Inf/NaN)")
    f["int8"] = _integer("int8", 8, "two's complement integers -128..127")
    f["int4"] = _integer("int4", 4, "two's complement integers -8..7")
    f["nf4"] = ElementFormat(
        "nf4", Codebook(NF4_VALUES, name="nf4"), nbits=4, description="bitsandbytes NormalFloat4 (codes 0..15 ascending)"
    )
    f["fp4_bnb"] = _bnb_fp4()
    # Binary: encoding = sign bit, so the tie at 0 goes to +1 (even code 0).
    f["binary"] = ElementFormat(
        "binary", Codebook([-1.0, 1.0], [1, 0], name="binary"), nbits=1, description="{-1, +1}, code = sign bit"
    )
    # Ternary, sign-magnitude: 0 -> 00, +1 -> 01, -1 -> 11; ties at ±0.5 go to 0.
    f["ternary"] = ElementFormat(
        "ternary", Codebook([-1.0, 0.0, 1.0], [3, 0, 1], name="ternary"), nbits=2, description="{-1, 0, +1}, sign-magnitude codes"
    )
    return f


@dataclass(frozen=True)
class BlockQuantized:
    """DEF-FORMAT-BLOCK-ABSMAX / DEF-FORMAT-MX / DEF-FORMAT-NVFP4 — codes plus the scales that decode them.

    ``codes`` has the input's shape; ``scales`` has shape ``shape[:-1] + (nblocks,)``
    (float32 absmax, uint8 E8M0 code, or uint8 E4M3 code); ``tensor_scale`` is the
    NVFP4 float32 global decode scale (None elsewhere).
    """

    format: str
    codes: np.ndarray
    scales: np.ndarray
    tensor_scale: np.float32 | None
    shape: tuple


def _blocks(arr32: np.ndarray, block: int) -> tuple[np.ndarray, int]:
    """View the last axis as blocks, zero-padding a partial last block (zeros never raise an absmax)."""
    if arr32.ndim == 0:
        arr32 = arr32.reshape(1)
    n = arr32.shape[-1]
    nb = -(-n // block)
    pad = nb * block - n
    if pad:
        arr32 = np.concatenate([arr32, np.zeros(arr32.shape[:-1] + (pad,), dtype=arr32.dtype)], axis=-1)
    return arr32.reshape(arr32.shape[:-1] + (nb, block)), n


def _unblock(blocked: np.ndarray, n: int, shape: tuple) -> np.ndarray:
    flat = blocked.reshape(blocked.shape[:-2] + (-1,))[..., :n]
    return flat.reshape(shape)


def _block_input(x, name: str) -> np.ndarray:
    """Block formats take float16/bfloat16/float32 (converted exactly) or float64 (rounded once to float32, RNE)."""
    assert_subnormals_survive()
    arr = as_float_array(x)
    nan = nan_mask(arr)
    if nan.any():
        raise NaNInputError(
            f"{name}: x contains NaN at flat index {int(np.flatnonzero(nan.ravel())[0])}; block formats "
            "need finite input (a NaN would poison its block's scale)",
            value=int(np.flatnonzero(nan.ravel())[0]),
        )
    with np.errstate(over="ignore"):
        a32 = arr.astype(_F32)
    bad = ~np.isfinite(a32)
    if bad.any():
        i = int(np.flatnonzero(bad.ravel())[0])
        raise NonFiniteInputError(
            f"{name}: x has a non-finite value {arr.ravel()[i]!r} (after rounding to float32) at flat index {i}",
            value=float(arr.ravel()[i]),
        )
    return a32


def _check_block_size(block_size) -> int:
    if isinstance(block_size, bool) or not isinstance(block_size, (int, np.integer)) or block_size < 1:
        raise InvalidParameterError(f"block_size must be a positive integer; got {block_size!r}", value=block_size)
    return int(block_size)


class _BlockFormat:
    """Shared block machinery: subclasses define ``_scale(x) -> (y, n, scales, tensor_scale)`` and ``dequantize``."""

    name: str
    element: ElementFormat
    block_size: int

    def scaled(self, x) -> np.ndarray:
        """The block-scaled values the element codebook sees (x's shape)."""
        y, n, _, _ = self._scale(x)
        return _unblock(y, n, np.shape(x))

    def quantize(self, x, *, tie: str = "even") -> BlockQuantized:
        y, n, scales, tensor_scale = self._scale(x)
        codes = self.element.quantize(y, tie=tie, saturate=True)
        return BlockQuantized(self.name, _unblock(codes, n, np.shape(x)), scales, tensor_scale, np.shape(x))


class AbsmaxBlockFormat(_BlockFormat):
    """DEF-FORMAT-BLOCK-ABSMAX — bitsandbytes-style blockwise absmax scaling of a codebook in [-1, 1].

    Per block of ``block_size`` consecutive elements of the last axis (last block
    partial): s = max|x| in float32; r = fl32(1 / s); y = fl32(x · r); code = nearest
    codeword of y (tie rule ``tie``); decode fl32(c · s).  s = 0 encodes every element
    as the codeword nearest 0; a block whose fl32(1/s) overflows (s ≲ 2**-128) uses y = fl32(x / s).
    """

    def __init__(self, name: str, element: ElementFormat, block_size: int):
        if np.max(np.abs(element.codebook.values)) != 1.0:
            peak = np.max(np.abs(element.codebook.values))
            raise CodebookError(f"absmax scaling needs a codebook with max |c| = 1; {element.name} has {peak}", value=element.name)
        self.name = name
        self.element = element
        self.block_size = _check_block_size(block_size)
        self.description = f"{element.name} with float32 absmax scale per {block_size} elements (bitsandbytes blockwise)"

    def conventions(self) -> dict:
        return {"element": self.element.name, "block_size": self.block_size, "scale": "float32 absmax",
                "bits_per_element": self.element.nbits + 32 / self.block_size,
                "normalise": "x * fl32(1/absmax)", "blocks": "last axis, partial last block"}

    def _scale(self, x):
        a32 = _block_input(x, self.name)
        blk, n = _blocks(a32, self.block_size)
        s = np.max(np.abs(blk), axis=-1)
        with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
            r = np.divide(_F32(1), s, dtype=_F32)
            y = np.multiply(blk, np.where(s > 0, r, _F32(0))[..., None], dtype=_F32)
            # fl32(1/s) overflows (s ≲ 2**-128): such blocks divide instead, y = fl32(x / s).
            tiny = (s > 0) & np.isinf(r)
            if tiny.any():
                y = np.where(tiny[..., None], np.divide(blk, np.where(tiny, s, _F32(1))[..., None], dtype=_F32), y)
        return y.astype(_F32), n, s.astype(_F32), None

    def dequantize(self, q: BlockQuantized) -> np.ndarray:
        blk, n = _blocks(self.element.dequantize(q.codes).astype(_F32), self.block_size)
        out = np.multiply(blk, q.scales[..., None], dtype=_F32)
        return _unblock(out, n, q.shape).astype(np.float64)


def _floor_log2(a: np.ndarray) -> np.ndarray:
    """Exact ⌊log2 a⌋ for positive finite floats (frexp normalises subnormals)."""
    _, k = np.frexp(a.astype(np.float64))
    return (k - 1).astype(np.int64)


class MXFormat(_BlockFormat):
    """DEF-FORMAT-MX — OCP Microscaling: 32-element blocks, E8M0 power-of-two scale.

    ``scale_rule="floor"`` (OCP v1.0): e = ⌊log2 amax⌋ − emax_elem.
    ``scale_rule="rceil"``: e = ⌈log2(amax / max_elem)⌉ (no element saturates).
    e is clamped to [−127, 127]; amax = 0 gives e = −127.  Elements: x · 2^−e
    (exact), converted with the element format saturating, ties to even.
    """

    def __init__(self, name: str, element: ElementFormat, emax_elem: int, block_size: int = 32, scale_rule: str = "floor"):
        if scale_rule not in ("floor", "rceil"):
            raise InvalidParameterError(f"scale_rule must be 'floor' or 'rceil'; got {scale_rule!r}", value=scale_rule)
        self.name = name
        self.element = element
        self.emax_elem = emax_elem
        self.block_size = _check_block_size(block_size)
        self.scale_rule = scale_rule
        self.description = f"MX: {element.name} elements, E8M0 scale per {block_size} ({scale_rule} rule)"

    def conventions(self) -> dict:
        return {"element": self.element.name, "block_size": self.block_size, "scale": "E8M0",
                "bits_per_element": self.element.nbits + 8 / self.block_size,
                "scale_rule": self.scale_rule, "emax_elem": self.emax_elem, "saturate": True}

    def with_scale_rule(self, rule: str) -> MXFormat:
        return MXFormat(self.name, self.element, self.emax_elem, self.block_size, rule)

    def _scale(self, x):
        a32 = _block_input(x, self.name)
        blk, n = _blocks(a32, self.block_size)
        amax = np.max(np.abs(blk), axis=-1).astype(np.float64)
        pos = amax > 0
        safe = np.where(pos, amax, 1.0)
        if self.scale_rule == "floor":
            e = _floor_log2(safe) - self.emax_elem
        else:
            m = self.element.max_finite
            e = _floor_log2(safe) - _floor_log2(np.array(m))
            # smallest e with amax <= m * 2**e (ldexp is exact here)
            e = np.where(safe > np.ldexp(m, e), e + 1, e)
            e = np.where(safe <= np.ldexp(m, e - 1), e - 1, e)
        e = np.where(pos, np.clip(e, -127, 127), -127)
        y = np.ldexp(blk.astype(np.float64), -e[..., None])  # exact power-of-two scaling
        return y, n, (e + 127).astype(np.uint8), None

    def dequantize(self, q: BlockQuantized) -> np.ndarray:
        blk, n = _blocks(self.element.dequantize(q.codes), self.block_size)
        e = q.scales.astype(np.int64) - 127
        return _unblock(np.ldexp(blk, e[..., None]), n, q.shape)


class NVFP4Format(_BlockFormat):
    """DEF-FORMAT-NVFP4 — E2M1 elements, E4M3 scale per 16, float32 tensor scale.

    The arithmetic of NVIDIA Transformer Engine's NVFP4 kernel, every step in float32:
    A = max|x| over the tensor; S_enc = min(fl32(2688 / A), FLT_MAX), or 1 when A = 0
    or S_enc = 0; S_dec = fl32(1 / S_enc).  Per block of 16 (last axis, last block
    partial): a = max|x|; s = e4m3(fl32(a · fl32(S_enc · fl32(1/6)))) (RNE, saturating);
    k = min(fl32(1 / fl32(s · S_dec)), FLT_MAX); code = e2m1(fl32(x · k)) (RNE,
    saturating to ±6, signed zero kept).  Decode: fl32(fl32(c · s) · S_dec).
    """

    def __init__(self, name: str = "nvfp4", block_size: int = 16):
        self.name = name
        self.element = _ELEMENTS["float4_e2m1fn"]
        self.scale_format = _ELEMENTS["float8_e4m3fn"]
        self.block_size = _check_block_size(block_size)
        self.description = f"NVFP4: E2M1 elements, E4M3 scale per {block_size}, float32 tensor scale"

    def conventions(self) -> dict:
        return {"element": "float4_e2m1fn", "block_size": self.block_size, "scale": "float8_e4m3fn",
                "bits_per_element": 4 + 8 / self.block_size,
                "tensor_scale": "float32 S_dec = 1/(2688/amax)", "saturate": True}

    def _scale(self, x):
        a32 = _block_input(x, self.name)
        blk, n = _blocks(a32, self.block_size)
        big = _F32(np.finfo(_F32).max)
        A = _F32(np.max(np.abs(a32))) if a32.size else _F32(0)
        with np.errstate(divide="ignore", over="ignore"):
            s_enc = np.minimum(np.divide(_F32(2688.0), A, dtype=_F32), big) if A > 0 else _F32(1.0)
        if s_enc == 0:
            s_enc = _F32(1.0)
        s_dec = np.divide(_F32(1.0), s_enc, dtype=_F32)
        a = np.max(np.abs(blk), axis=-1)
        factor = np.multiply(s_enc, np.divide(_F32(1.0), _F32(6.0), dtype=_F32), dtype=_F32)
        with np.errstate(over="ignore"):
            pre = np.minimum(np.multiply(a, factor, dtype=_F32), big)
        s_code = self.scale_format.quantize(pre, tie="even", saturate=True)
        s = self.scale_format.dequantize(s_code).astype(_F32)
        with np.errstate(divide="ignore", over="ignore"):
            k = np.minimum(np.divide(_F32(1.0), np.multiply(s, s_dec, dtype=_F32), dtype=_F32), big)
            y = np.multiply(blk, k[..., None], dtype=_F32)
        return y, n, s_code, _F32(s_dec)

    def dequantize(self, q: BlockQuantized) -> np.ndarray:
        blk, n = _blocks(self.element.dequantize(q.codes).astype(_F32), self.block_size)
        s = self.scale_format.dequantize(q.scales).astype(_F32)
        out = np.multiply(np.multiply(blk, s[..., None], dtype=_F32), q.tensor_scale, dtype=_F32)
        return _unblock(out, n, q.shape).astype(np.float64)


_ELEMENTS = _element_formats()


def _block_formats() -> dict:
    el = _ELEMENTS
    return {
        "nf4_absmax64": AbsmaxBlockFormat("nf4_absmax64", el["nf4"], 64),
        "fp4_bnb_absmax64": AbsmaxBlockFormat("fp4_bnb_absmax64", el["fp4_bnb"], 64),
        "mxfp8_e4m3": MXFormat("mxfp8_e4m3", el["float8_e4m3fn"], 8),
        "mxfp8_e5m2": MXFormat("mxfp8_e5m2", el["float8_e5m2"], 15),
        "mxfp6_e2m3": MXFormat("mxfp6_e2m3", el["float6_e2m3fn"], 2),
        "mxfp6_e3m2": MXFormat("mxfp6_e3m2", el["float6_e3m2fn"], 4),
        "mxfp4": MXFormat("mxfp4", el["float4_e2m1fn"], 2),
        "nvfp4": NVFP4Format(),
    }


_FORMATS = {**_ELEMENTS, **_block_formats()}
FORMAT_NAMES = tuple(_FORMATS)


def format_names() -> tuple[str, ...]:
    return FORMAT_NAMES


def get_format(name: str, **options):
    """DEF-FORMAT-ELEMENT — the format called ``name`` (see ``natprec formats``).

    Options: ``block_size=`` for absmax/MX/NVFP4 formats, ``scale_rule=`` for MX.
    """
    if not isinstance(name, str):
        raise UnknownFormatError(f"format name must be a string; got {name!r}", value=name)
    key = name.strip().lower().replace("-", "_")
    if key not in _FORMATS:
        raise UnknownFormatError(f"unknown format {name!r}; known: {', '.join(FORMAT_NAMES)}", value=name)
    fmt = _FORMATS[key]
    if not options:
        return fmt
    unknown = set(options) - {"block_size", "scale_rule"}
    if unknown or isinstance(fmt, ElementFormat):
        raise InvalidParameterError(f"format {key} takes no options {sorted(options)}", value=sorted(options))
    if isinstance(fmt, AbsmaxBlockFormat):
        if "scale_rule" in options:
            raise InvalidParameterError("absmax formats have no scale_rule", value=options["scale_rule"])
        return AbsmaxBlockFormat(fmt.name, fmt.element, options.get("block_size", fmt.block_size))
    if isinstance(fmt, MXFormat):
        return MXFormat(fmt.name, fmt.element, fmt.emax_elem, options.get("block_size", fmt.block_size),
                        options.get("scale_rule", fmt.scale_rule))
    if "scale_rule" in options:
        raise InvalidParameterError("nvfp4 has no scale_rule", value=options["scale_rule"])
    return NVFP4Format(fmt.name, options.get("block_size", fmt.block_size))


@lru_cache(maxsize=32)
def _codebook_format(cb: Codebook) -> ElementFormat:
    nbits = max(1, int(cb.encodings.max()).bit_length())
    if nbits > 16:  # dequantize decodes through a 2**nbits table
        raise CodebookError(f"codebook {cb.name!r}: encodings must be below 2**16 to quantize; largest is {int(cb.encodings.max())}",
                            value=int(cb.encodings.max()))
    return ElementFormat(cb.name, cb, nbits=nbits, description="user codebook")


def _resolve(fmt):
    if isinstance(fmt, str):
        return get_format(fmt)
    if isinstance(fmt, Codebook):
        return _codebook_format(fmt)
    if isinstance(fmt, (ElementFormat, _BlockFormat)):
        return fmt
    raise UnknownFormatError(f"expected a format name, Codebook or format object; got {type(fmt).__name__}", value=fmt)


def quantize(x, fmt, *, tie: str = "even", saturate: bool | None = None, nan_policy: str = "raise"):
    """DEF-QUANTIZE — quantize ``x`` with a format name, format object or :class:`Codebook`.

    Element formats and codebooks return an unsigned integer array of encodings
    (x's shape); block formats return a :class:`BlockQuantized`.
    """
    f = _resolve(fmt)
    if isinstance(f, ElementFormat):
        return f.quantize(x, tie=tie, saturate=saturate, nan_policy=nan_policy)
    if saturate is False:
        raise InvalidParameterError(f"block format {f.name} always saturates", value=saturate)
    check_nan_policy(nan_policy, ("raise",))
    return f.quantize(x, tie=tie)


def dequantize(q, fmt) -> np.ndarray:
    """DEF-QUANTIZE — reconstructed values (float64) of codes or a :class:`BlockQuantized`."""
    f = _resolve(fmt)
    if isinstance(f, ElementFormat):
        if isinstance(q, BlockQuantized):
            raise InvalidParameterError("a BlockQuantized needs its block format", value=q.format)
        return f.dequantize(q)
    if not isinstance(q, BlockQuantized) or q.format != f.name:
        raise InvalidParameterError(
            f"format {f.name} dequantizes a BlockQuantized of the same format; got {type(q).__name__}",
            value=getattr(q, "format", type(q).__name__),
        )
    return f.dequantize(q)
