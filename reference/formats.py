"""DEF-FORMAT-ELEMENT, DEF-FORMAT-BLOCK-ABSMAX, DEF-FORMAT-MX, DEF-FORMAT-NVFP4 — number formats as exact codebooks.

Chapter: spec/07-formats.md.  An element format is a :class:`Codebook` of its
finite values plus conversion rules (signed zero, overflow, ±Inf, NaN).  A block
format adds a per-block scale whose arithmetic — which operation, in which
dtype, in which order — is fixed here and in the spec.  The named formats are
built from the rows of ``registry.py``.

``quantize`` and ``dequantize`` are ``execute_*(prepare_*(...))``: preparation runs
every check and computes what execution needs into a plan (spec/00-conventions.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import ml_dtypes
import numpy as np

from ._domain import (
    CHUNK_ELEMENTS,
    as_float_array,
    assert_subnormals_survive,
    check_nan_policy,
    has_nan,
    layout_of,
    map_chunks,
    map_tasks,
    nan_mask,
    raise_on_nan,
)
from .codebook import BINS_MIN, CodeBins, Codebook, code_bins32, codes_by_bins32, nearest_index, thresholds
from .errors import (
    CodebookError,
    InvalidDTypeError,
    InvalidParameterError,
    NaNInputError,
    NonFiniteInputError,
    UnknownFormatError,
)
from .registry import FORMAT_NAMES, FORMAT_SPECS, NF4_VALUES, STRUCTURES, BlockSpec, ElementSpec, Structure, canonical_name

__all__ = [
    "ElementFormat",
    "BlockQuantized",
    "LAYOUTS",
    "AbsmaxBlockFormat",
    "MXFormat",
    "NVFP4Format",
    "FORMAT_NAMES",
    "get_format",
    "resolve_format",
    "QuantizePlan",
    "BlockQuantizePlan",
    "BlockInputPlan",
    "prepare_block_input",
    "prepare_quantize",
    "execute_quantize",
    "cast_codes",
    "search_codes",
    "code_bins",
    "CAST_DTYPES",
    "CAST_FASTER",
    "CAST_INPUTS",
    "DequantizePlan",
    "BlockDequantizePlan",
    "prepare_dequantize",
    "execute_dequantize",
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

    Read-only, for tiers: ``extended`` (the codebook with the two overflow codewords, or
    None), ``zero_index`` (index of the codeword 0, or −1) and ``decode_table`` (the float64
    value of each of the 2**nbits encodings, NaN for invalid ones).
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
    def extended(self) -> Codebook | None:
        """The codebook quantized against when not saturating: ±(max + ulp_max) carry the overflow code."""
        return self._extended

    @property
    def zero_index(self) -> int:
        """Index of the codeword 0 in ``codebook`` (−1 when 0 is not a codeword)."""
        return self._zero_index

    @property
    def decode_table(self) -> np.ndarray:
        """float64 value of every encoding 0 … 2**nbits − 1 (read-only; NaN encodings keep their sign)."""
        return self._decode

    @property
    def code_dtype(self):
        return np.uint8 if self.nbits <= 8 else np.uint16

    @property
    def bits_per_element(self) -> int:
        return STRUCTURES["element"].bits_per_element(self.nbits)

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
        return execute_quantize(prepare_quantize(x, self, tie=tie, saturate=saturate, nan_policy=nan_policy))

    def dequantize(self, codes) -> np.ndarray:
        """DEF-FORMAT-ELEMENT — exact float64 value of each encoding (NaN encodings decode to NaN)."""
        return execute_dequantize(self._dequantize_plan(codes))

    def _quantize_plan(self, x, tie: str, saturate: bool | None, nan_policy: str) -> QuantizePlan:
        check_nan_policy(nan_policy, ("raise", "propagate"))
        assert_subnormals_survive()
        arr = as_float_array(x)
        sat = self.default_saturate if saturate is None else bool(saturate)
        if not sat and self._extended is None:
            raise InvalidParameterError(
                f"format {self.name} has no Inf or NaN encoding: overflow can only saturate (saturate=False given)",
                value=saturate,
            )
        nan = nan_mask(arr) if has_nan(arr) else None  # no mask of x's size where x holds no NaN
        if nan is not None and nan_policy == "raise":
            raise_on_nan(arr, "x", nan)
        if nan is not None and self.nan_code is None:
            raise NaNInputError(
                f"format {self.name} has no NaN encoding, so nan_policy='propagate' cannot keep the NaNs of x",
                value=int(np.flatnonzero(nan.ravel())[0]),
            )
        cb = self.codebook if sat else self._extended
        return QuantizePlan(self, arr, tie, sat, nan, cb, thresholds(cb, tie, arr.dtype))  # tie errors here

    def _dequantize_plan(self, codes) -> DequantizePlan:
        c = np.asarray(codes)
        if c.dtype.kind not in "iu":
            raise InvalidDTypeError(f"codes must be integers; got {c.dtype}", value=str(c.dtype))
        if c.size and (c.min() < 0 or c.max() >= (1 << self.nbits) or not self._valid[c.astype(np.int64)].all()):
            bad = c.ravel()[(c.ravel() < 0) | (c.ravel() >= (1 << self.nbits))]
            if bad.size == 0:
                bad = c.ravel()[~self._valid[c.ravel().astype(np.int64)]]
            raise InvalidParameterError(f"{int(bad[0])} is not an encoding of format {self.name}", value=int(bad[0]))
        return DequantizePlan(self, c, self._decode)


def _minifloat(spec: ElementSpec) -> ElementFormat:
    """Enumerate a sign-exponent-mantissa format.  ``ieee``: all-ones exponent is Inf/NaN;
    otherwise (``fn`` formats) only S.1…1.1…1 is NaN when the format has 8+ bits (e4m3fn), none below."""
    name, ebits, mbits, bias, ieee = spec.name, spec.ebits, spec.mbits, spec.bias, spec.ieee
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
        description=spec.description,
        signed_zero=True,
        sign_bit=sign_bit,
        overflow_value=float(pos_vals[-1] + ulp) if overflow_code is not None else None,
        overflow_code=overflow_code,
        inf_code=inf_code,
        nan_code=nan_code,
        default_saturate=overflow_code is None,
    )


def _integer(spec: ElementSpec) -> ElementFormat:
    nbits = spec.nbits
    lo, hi = -(1 << (nbits - 1)), (1 << (nbits - 1)) - 1
    vals = np.arange(lo, hi + 1, dtype=np.int64)
    cb = Codebook(vals.astype(np.float64), vals & ((1 << nbits) - 1), name=spec.name)
    return ElementFormat(spec.name, cb, nbits=nbits, description=spec.description)


def _table(spec: ElementSpec) -> ElementFormat:
    cb = Codebook(np.array(spec.values, dtype=np.float32), spec.encodings, name=spec.name)
    return ElementFormat(spec.name, cb, nbits=spec.nbits, description=spec.description)


def _sign_magnitude_table(spec: ElementSpec) -> ElementFormat:
    sign = 1 << (spec.nbits - 1)
    mag = np.array(spec.values, dtype=np.float32).astype(np.float64)
    codes = np.arange(mag.size)
    order = np.argsort(mag)
    pos_v, pos_c = mag[order], codes[order]
    values = np.concatenate((-pos_v[1:][::-1], pos_v))
    encs = np.concatenate(((pos_c[1:] | sign)[::-1], pos_c))
    cb = Codebook(values, encs, name=spec.name)
    return ElementFormat(spec.name, cb, nbits=spec.nbits, signed_zero=True, sign_bit=spec.nbits - 1,
                         description=spec.description)


_CONSTRUCTIONS = {"minifloat": _minifloat, "integer": _integer, "table": _table, "sign_magnitude_table": _sign_magnitude_table}


@dataclass(frozen=True)
class BlockQuantized:
    """DEF-FORMAT-BLOCK-ABSMAX / DEF-FORMAT-MX / DEF-FORMAT-NVFP4 — codes plus the scales that decode them.

    ``codes`` has the input's shape; ``scales`` has shape ``shape[:-1] + (nblocks,)`` for
    ``layout="last_axis"`` and ``(nblocks,)`` for ``layout="flat"`` (float32 absmax, uint8 E8M0
    code, or uint8 E4M3 code); ``tensor_scale`` is the NVFP4 float32 global decode scale (None
    elsewhere); ``block_size`` and ``layout`` are those the codes were made with, so that decoding
    with others is an error, not other numbers.
    """

    format: str
    codes: np.ndarray
    scales: np.ndarray
    tensor_scale: np.float32 | None
    shape: tuple
    block_size: int
    layout: str = "last_axis"


#: DEF-BLOCK-LAYOUT — how a block format cuts a tensor into blocks.
LAYOUTS = ("last_axis", "flat")


def _rows(a: np.ndarray, shape: tuple, layout: str) -> np.ndarray:
    """The tensor as rows of blocks (R, L): its last axis (a 0-d input is one element), or, flat, one row of all of it."""
    if layout == "flat" or not shape:
        return a.reshape(1, a.size)
    return a.reshape(int(np.prod(shape[:-1], dtype=np.int64)), shape[-1])  # a view for contiguous input


def _scales_shape(shape: tuple, block: int, layout: str = "last_axis") -> tuple:
    """One scale per block: per block of the last axis (a 0-d input is one block of one), or of the flattened tensor."""
    if layout == "flat":
        return (-(-int(np.prod(shape, dtype=np.int64)) // block),)
    return shape[:-1] + (-(-shape[-1] // block),) if shape else (1,)


#: Elements per task of the block executors (whole blocks, about this many).  Each NumPy call of a task drops the GIL
#: for its length: at 2^16 elements two threads spent their time handing the GIL over and ran no faster than one
#: (4096 × 4096 normals, mxfp8: 116 ms on one thread, 124 on two); at 2^18, 78 and 55 ms.  2^19 against 2^18, with
#: table pieces of 2^17, in two alternating runs: mxfp8 floor 45.4 → 38.3 and 39.6 → 33.2 ms, rceil 32.6 → 31.5 and
#: 35.9 → 33.3, nf4_absmax64 46.8 → 45.5 and 40.0 → 39.2.
TASK_ELEMENTS = 2 * CHUNK_ELEMENTS


def _block_tasks(rows: int, length: int, block: int) -> list[tuple[slice, int, int]]:
    """Rectangles (rows, first block, end block) of whole blocks covering a (rows, length) array, about
    TASK_ELEMENTS elements each; a row's partial last block (length mod block elements) is a task of its own rows."""
    full, rem = divmod(length, block)
    per = max(1, TASK_ELEMENTS // block)
    tasks = []
    if full and full >= per:
        tasks += [(slice(r, r + 1), b, min(full, b + per)) for r in range(rows) for b in range(0, full, per)]
    elif full:
        step = max(1, per // full)
        tasks += [(slice(r, min(rows, r + step)), 0, full) for r in range(0, rows, step)]
    if rem:
        step = max(1, TASK_ELEMENTS // rem)
        tasks += [(slice(r, min(rows, r + step)), full, full + 1) for r in range(0, rows, step)]
    return tasks


def _task_view(a2: np.ndarray, task, block: int):
    """A task's blocks of the (R, L) array as (rows, blocks, block) — a view — its column range and whether it is the
    partial last block of its rows."""
    rs, b0, b1 = task
    c0, c1 = b0 * block, min(a2.shape[1], b1 * block)
    v = a2[rs, c0:c1]
    partial = c1 - c0 < (b1 - b0) * block
    return v.reshape(v.shape[0], 1 if partial else b1 - b0, -1), (c0, c1), partial


def _abs_and_max(v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """|v| (a new float32 array, free for the caller to overwrite) and its max over the last axis, both exact.

    On the bits: clearing the sign bit is |x|, and non-negative floats without NaN order as their bits do as unsigned
    integers.  Their maxima by ``reduceat`` over the contiguous |v|: 0.37 ns per element here, where ``max(axis=-1)``
    over a short axis takes 0.88 (uint32) or 1.6 (float32)."""
    a = np.bitwise_and(v.view(np.uint32), np.uint32(0x7FFFFFFF))
    if a.size == 0:
        return a.view(_F32), a.max(axis=-1, initial=0).view(_F32)
    m = np.maximum.reduceat(a.reshape(-1), np.arange(0, a.size, a.shape[-1]))
    return a.view(_F32), m.reshape(a.shape[:-1]).view(_F32)


def _block_input(x, name: str) -> tuple[np.ndarray, np.float32]:
    """Block formats take float16/bfloat16/float32 (converted exactly) or float64 (rounded once to float32, RNE).

    Returns the float32 array and its max|x| (0 for empty input), from one min and max per chunk: a NaN or ±Inf
    makes them non-finite, and only then is the offending element looked for."""
    assert_subnormals_survive()
    arr = as_float_array(x)
    with np.errstate(over="ignore"):
        a32 = arr.astype(_F32, copy=False)  # float32 input is not copied
    flat = a32.reshape(-1)
    parts = {}

    def run(sl):
        if sl.stop > sl.start:
            parts[sl.start] = (flat[sl].min(), flat[sl].max())
    map_chunks(run, flat.size)
    lo = min((p[0] for p in parts.values()), default=_F32(0))
    hi = max((p[1] for p in parts.values()), default=_F32(0))
    if parts and not all(np.isfinite(p[0]) and np.isfinite(p[1]) for p in parts.values()):
        nan = nan_mask(arr)
        if nan.any():
            i = int(np.flatnonzero(nan.ravel())[0])
            raise NaNInputError(
                f"{name}: x contains NaN at flat index {i}; block formats need finite input (a NaN would poison its "
                "block's scale)", value=i,
            )
        i = int(np.flatnonzero(~np.isfinite(flat))[0])
        raise NonFiniteInputError(
            f"{name}: x has a non-finite value {arr.ravel()[i]!r} (after rounding to float32) at flat index {i}",
            value=float(arr.ravel()[i]),
        )
    return a32, _F32(max(-lo, hi))


def _check_block_size(block_size) -> int:
    if isinstance(block_size, bool) or not isinstance(block_size, (int, np.integer)) or block_size < 1:
        raise InvalidParameterError(f"block_size must be a positive integer; got {block_size!r}", value=block_size)
    return int(block_size)


def _check_layout(layout, name: str, allowed: tuple = LAYOUTS) -> str:
    if not isinstance(layout, str) or layout not in allowed:
        raise InvalidParameterError(f"{name}: layout must be one of {', '.join(map(repr, allowed))}; got {layout!r}",
                                    value=layout)
    return layout


class _BlockFormat:
    """Shared block machinery: subclasses define ``structure``, ``_context(amax)`` (tensor-level constants, from the
    input's max|x|), ``_scale_blocks(v, ctx, partial, dtype) -> (y, scales)`` (v: float32 blocks along the last axis of
    a (rows, blocks, block) view) and ``_decode_blocks(values, scales, q)``."""

    name: str
    element: ElementFormat
    block_size: int
    structure: Structure
    layout: str = "last_axis"

    @property
    def bits_per_element(self) -> float:
        """Element bits plus the block scale's bits amortised over the block (registry.STRUCTURES)."""
        return self.structure.bits_per_element(self.element.nbits, self.block_size)

    def _context(self, amax: np.float32):
        return None

    def scaled(self, x) -> np.ndarray:
        """The block-scaled values the element codebook sees (x's shape)."""
        return self._scaled(x, _F32)

    def _scaled(self, x, dtype) -> np.ndarray:
        a32, amax = _block_input(x, self.name)
        shape = np.shape(x)
        a2 = _rows(a32, shape, self.layout)
        out = np.empty(a2.shape, dtype)
        ctx = self._context(amax)

        def task(t):
            v, (c0, c1), partial = _task_view(a2, t, self.block_size)
            out[t[0], c0:c1] = self._scale_blocks(v, ctx, partial, dtype)[0].reshape(v.shape[0], -1)
        map_tasks(task, _block_tasks(*a2.shape, self.block_size), a2.size)
        return out.reshape(shape)

    def quantize(self, x, *, tie: str = "even") -> BlockQuantized:
        return execute_quantize(prepare_quantize(x, self, tie=tie))

    def dequantize(self, q: BlockQuantized) -> np.ndarray:
        return execute_dequantize(self._dequantize_plan(q))

    def _input_plan(self, x, tie: str) -> BlockInputPlan:
        a32, amax = _block_input(x, self.name)
        # The tie rule's checks (unknown rule; 'even' on a codebook whose neighbours share parity) come after the
        # input's, as when the element plan of the scaled values is made; no scale is computed here.
        element = self.element._quantize_plan(np.zeros(0, _F32), tie, True, "raise")
        return BlockInputPlan(self, np.shape(x), a32, tie, element, amax)

    def _quantize_plan_from(self, p: BlockInputPlan) -> BlockQuantizePlan:
        amax = p.amax if p.amax is not None else _block_input(p.x32, self.name)[1]
        ctx = self._context(amax)
        return BlockQuantizePlan(self, p.shape, p.x32, p.tie, p.element, ctx, self._tensor_scale(ctx))

    def _tensor_scale(self, ctx):
        return None

    def _quantize_plan(self, x, tie: str) -> BlockQuantizePlan:
        return self._quantize_plan_from(self._input_plan(x, tie))

    def _execute(self, plan: BlockQuantizePlan) -> BlockQuantized:
        """Scales and codes fused per task of whole blocks: the scaled values of a task exist only while it runs, and
        get the element format's codes as :func:`search_codes` gives them: on float32 y from THM-BIN-SEARCH's tables
        (:func:`code_bins`, resolved once per tensor; faster than :func:`cast_codes` and the same codes)."""
        shape, bs = tuple(plan.shape), self.block_size
        a2 = _rows(plan.x32, shape, self.layout)
        codes = np.empty(a2.shape, self.element.code_dtype)
        nb = -(-a2.shape[1] // bs)
        scales = np.empty((a2.shape[0], nb), self._scale_dtype)
        ep = plan.element
        bins = code_bins(ep) if a2.size >= BINS_MIN else None  # as search_codes on the whole: the same codes

        def task(t):
            v, (c0, c1), partial = _task_view(a2, t, bs)
            y, s = self._scale_blocks(v, plan.context, partial, _F32)
            flat = y.reshape(-1)
            if bins is not None:  # y is finite float32: THM-BIN-SEARCH's tables, signed zero folded in
                c = codes_by_bins32(flat, bins)
            else:
                c = search_codes(QuantizePlan(ep.format, flat, ep.tie, True, None, ep.codebook, ep.thresholds))
            codes[t[0], c0:c1] = c.reshape(v.shape[0], -1)
            scales[t[0], t[1]:t[2]] = s.reshape(v.shape[0], -1)
        map_tasks(task, _block_tasks(*a2.shape, bs), a2.size)
        return BlockQuantized(self.name, codes.reshape(shape), scales.reshape(_scales_shape(shape, bs, self.layout)),
                              plan.tensor_scale, shape, bs, self.layout)

    def _dequantize_plan(self, q: BlockQuantized) -> BlockDequantizePlan:
        return BlockDequantizePlan(self, q, self.element._dequantize_plan(q.codes), None)

    def _decode(self, values: np.ndarray, plan: BlockDequantizePlan) -> np.ndarray:
        """float64 values of the element codes (x's shape) times their blocks' scales, task by task."""
        q, bs = plan.quantized, self.block_size
        shape = tuple(q.shape)
        v2 = _rows(values, shape, self.layout)
        s2 = self._decoded_scales(plan).reshape(v2.shape[0], -(-v2.shape[1] // bs))
        out = np.empty(v2.shape, np.float64)

        def task(t):
            v, (c0, c1), _ = _task_view(v2, t, bs)
            out[t[0], c0:c1] = self._decode_blocks(v, s2[t[0], t[1]:t[2]], q).reshape(v.shape[0], -1)
        map_tasks(task, _block_tasks(*v2.shape, bs), v2.size)
        return out.reshape(shape)

    def _decoded_scales(self, plan: BlockDequantizePlan) -> np.ndarray:
        return plan.quantized.scales


class AbsmaxBlockFormat(_BlockFormat):
    """DEF-FORMAT-BLOCK-ABSMAX — bitsandbytes-style blockwise absmax scaling of a codebook in [-1, 1].

    Per block of ``block_size`` consecutive elements (DEF-BLOCK-LAYOUT: of the last axis, or with
    ``layout="flat"`` of the flattened tensor, as bitsandbytes): s = max|x| in float32; r = fl32(1 / s);
    y = fl32(x · r); code = nearest codeword of y (tie rule ``tie``); decode fl32(c · s).  s = 0
    encodes every element as the codeword nearest 0; a block whose fl32(1/s) overflows (s ≲ 2**-128)
    uses y = fl32(x / s), and so does the flat layout's partial last block (bitsandbytes divides it).
    """

    structure = STRUCTURES["absmax"]
    _scale_dtype = np.dtype(np.float32)

    def __init__(self, name: str, element: ElementFormat, block_size: int, layout: str = "last_axis"):
        if np.max(np.abs(element.codebook.values)) != 1.0:
            peak = np.max(np.abs(element.codebook.values))
            raise CodebookError(f"absmax scaling needs a codebook with max |c| = 1; {element.name} has {peak}", value=element.name)
        self.name = name
        self.element = element
        self.block_size = _check_block_size(block_size)
        self.layout = _check_layout(layout, name)
        self.description = f"{element.name} with float32 absmax scale per {block_size} elements (bitsandbytes blockwise)"

    def conventions(self) -> dict:
        return {"element": self.element.name, "block_size": self.block_size, "scale": self.structure.scale,
                "bits_per_element": self.bits_per_element, "normalise": "x * fl32(1/absmax)", "layout": self.layout,
                "blocks": ("the flattened tensor, partial last block divided: fl32(x/absmax)" if self.layout == "flat"
                           else "last axis, partial last block")}

    def _scale_blocks(self, v, ctx, partial, dtype):
        a, s = _abs_and_max(v)
        with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
            if partial and self.layout == "flat":  # bitsandbytes divides its partial last block (s = 0: y = x = ±0)
                np.divide(v, np.where(s > 0, s, _F32(1))[..., None], out=a, dtype=_F32)
                return a, s
            r = np.divide(_F32(1), s, dtype=_F32)
            np.multiply(v, np.where(s > 0, r, _F32(0))[..., None], out=a, dtype=_F32)
            # fl32(1/s) overflows (s ≲ 2**-128): such blocks divide instead, y = fl32(x / s).
            tiny = (s > 0) & np.isinf(r)
            if tiny.any():
                a = np.where(tiny[..., None], np.divide(v, np.where(tiny, s, _F32(1))[..., None], dtype=_F32), a)
        return a, s

    def _decode_blocks(self, values, scales, q):
        return np.multiply(values.astype(_F32), scales[..., None], dtype=_F32).astype(np.float64)


class MXFormat(_BlockFormat):
    """DEF-FORMAT-MX — OCP Microscaling: 32-element blocks, E8M0 power-of-two scale.

    ``scale_rule="floor"`` (OCP v1.0): e = ⌊log2 amax⌋ − emax_elem.
    ``scale_rule="rceil"``: e = ⌈log2(amax / max_elem)⌉ (no element saturates).
    e is clamped to [−127, 127]; amax = 0 gives e = −127.  Elements: x · 2^−e
    (exact), converted with the element format saturating, ties to even.
    """

    structure = STRUCTURES["mx"]
    _scale_dtype = np.dtype(np.uint8)

    def __init__(self, name: str, element: ElementFormat, emax_elem: int, block_size: int, scale_rule: str):
        if scale_rule not in ("floor", "rceil"):
            raise InvalidParameterError(f"scale_rule must be 'floor' or 'rceil'; got {scale_rule!r}", value=scale_rule)
        m = element.max_finite
        if not (isinstance(emax_elem, int) and emax_elem >= 0 and m >= 2 and float(np.float32(m)) == m):
            raise CodebookError(f"{name}: MX scaling needs emax_elem ≥ 0 and a float32 max_finite ≥ 2 (the exponent "
                                f"arithmetic of _exponents); got emax_elem={emax_elem!r}, max_finite={m!r}",
                                value=(emax_elem, m))
        self.name = name
        self.element = element
        self.emax_elem = emax_elem
        self.block_size = _check_block_size(block_size)
        self.scale_rule = scale_rule
        self.description = f"MX: {element.name} elements, E8M0 scale per {block_size} ({scale_rule} rule)"

    def conventions(self) -> dict:
        return {"element": self.element.name, "block_size": self.block_size, "scale": self.structure.scale,
                "bits_per_element": self.bits_per_element,
                "scale_rule": self.scale_rule, "emax_elem": self.emax_elem, "saturate": True}

    def with_scale_rule(self, rule: str) -> MXFormat:
        return MXFormat(self.name, self.element, self.emax_elem, self.block_size, rule)

    def _exponents(self, amax: np.ndarray) -> np.ndarray:
        """The shared exponent e of each block's float32 amax (finite, ≥ 0), exactly, from its bits: a normal
        amax = 2^(E−127)·(1 + M·2^−23) has ⌊log2 amax⌋ = E − 127, and amax ≤ m·2^e (m = 2^Em·(1 + Mm·2^−23), the
        element's max_finite) iff (E − 127, M) ≤ (Em + e, Mm) in lexicographic order.  A zero or subnormal amax
        (E = 0; ⌊log2 amax⌋ ≤ −127) has e ≤ −127 by either rule and by this arithmetic (emax_elem ≥ 0 and m ≥ 2,
        checked when the format is made), so both clamp to −127."""
        bits = amax.view(np.uint32)
        big = (bits >> np.uint32(23)).astype(np.int32)
        if self.scale_rule == "floor":
            e = big - np.int32(127 + self.emax_elem)
        else:
            mb = int(np.float32(self.element.max_finite).view(np.uint32))
            e = big - np.int32(mb >> 23)  # (E − 127) − Em, and one more where M > Mm
            e += (bits & np.uint32(0x7FFFFF)) > np.uint32(mb & 0x7FFFFF)
        return np.clip(e, -127, 127, out=e)

    def _scale_blocks(self, v, ctx, partial, dtype):
        a, amax = _abs_and_max(v)
        e = self._exponents(amax)
        shift = np.negative(e)[..., None]
        if dtype == np.float64:  # scaled(): the exact y
            y = np.ldexp(v.astype(np.float64), shift)
        else:  # THM-MX-FLOAT32: fl32(x · 2^−e) has the codes of the exact y
            y = np.ldexp(v, shift, out=a)
        return y, (e + 127).astype(np.uint8)

    def scaled(self, x) -> np.ndarray:
        """The block-scaled values x · 2^−e, exact, as float64 (x's shape)."""
        return self._scaled(x, np.float64)

    def _decode_blocks(self, values, scales, q):
        return np.ldexp(values, (scales.astype(np.int64) - 127)[..., None])


class NVFP4Format(_BlockFormat):
    """DEF-FORMAT-NVFP4 — E2M1 elements, E4M3 scale per 16, float32 tensor scale.

    The arithmetic of NVIDIA Transformer Engine's NVFP4 kernel, every step in float32:
    A = max|x| over the tensor; S_enc = min(fl32(2688 / A), FLT_MAX), or 1 when A = 0
    or S_enc = 0; S_dec = fl32(1 / S_enc).  Per block of 16 (last axis, last block
    partial): a = max|x|; s = e4m3(fl32(a · fl32(S_enc · fl32(1/6)))) (RNE, saturating);
    k = min(fl32(1 / fl32(s · S_dec)), FLT_MAX); code = e2m1(fl32(x · k)) (RNE,
    saturating to ±6, signed zero kept).  Decode: fl32(fl32(c · s) · S_dec).
    """

    structure = STRUCTURES["nvfp4"]

    def __init__(self, name: str, element: ElementFormat, scale_format: ElementFormat, block_size: int):
        self.name = name
        self.element = element
        self.scale_format = scale_format
        self.block_size = _check_block_size(block_size)
        self._scale_dtype = np.dtype(scale_format.code_dtype)
        self.description = f"NVFP4: E2M1 elements, E4M3 scale per {block_size}, float32 tensor scale"

    def conventions(self) -> dict:
        return {"element": self.element.name, "block_size": self.block_size, "scale": self.structure.scale,
                "bits_per_element": self.bits_per_element,
                "tensor_scale": "float32 S_dec = 1/(2688/amax)", "saturate": True}

    def _context(self, amax):
        """(S_enc, S_dec, fl32(S_enc · fl32(1/6))) from the tensor's max|x| A."""
        big = _F32(np.finfo(_F32).max)
        with np.errstate(divide="ignore", over="ignore"):
            s_enc = np.minimum(np.divide(_F32(2688.0), amax, dtype=_F32), big) if amax > 0 else _F32(1.0)
        if s_enc == 0:
            s_enc = _F32(1.0)
        s_dec = np.divide(_F32(1.0), s_enc, dtype=_F32)
        return _F32(s_enc), _F32(s_dec), np.multiply(s_enc, np.divide(_F32(1.0), _F32(6.0), dtype=_F32), dtype=_F32)

    def _tensor_scale(self, ctx):
        return _F32(ctx[1])

    def _scale_blocks(self, v, ctx, partial, dtype):
        _, s_dec, factor = ctx
        big = _F32(np.finfo(_F32).max)
        a, amax = _abs_and_max(v)
        with np.errstate(over="ignore"):
            pre = np.minimum(np.multiply(amax, factor, dtype=_F32), big)
        s_code = self.scale_format.quantize(pre, tie="even", saturate=True)
        s = self.scale_format.dequantize(s_code).astype(_F32)
        with np.errstate(divide="ignore", over="ignore"):
            k = np.minimum(np.divide(_F32(1.0), np.multiply(s, s_dec, dtype=_F32), dtype=_F32), big)
            np.multiply(v, k[..., None], out=a, dtype=_F32)
        return a, s_code

    def _dequantize_plan(self, q: BlockQuantized) -> BlockDequantizePlan:
        return BlockDequantizePlan(self, q, self.element._dequantize_plan(q.codes), self.scale_format._dequantize_plan(q.scales))

    def _decoded_scales(self, plan: BlockDequantizePlan) -> np.ndarray:
        return execute_dequantize(plan.scales).astype(_F32)

    def _decode_blocks(self, values, scales, q):
        return np.multiply(np.multiply(values.astype(_F32), scales[..., None], dtype=_F32), q.tensor_scale,
                           dtype=_F32).astype(np.float64)


def _element_formats() -> dict[str, ElementFormat]:
    return {n: _CONSTRUCTIONS[s.construction](s) for n, s in FORMAT_SPECS.items() if isinstance(s, ElementSpec)}


def _block_format(spec: BlockSpec, elements: dict[str, ElementFormat]) -> _BlockFormat:
    el = elements[spec.element]
    if spec.structure == "absmax":
        return AbsmaxBlockFormat(spec.name, el, spec.block_size)
    if spec.structure == "mx":
        return MXFormat(spec.name, el, spec.emax_elem, spec.block_size, spec.scale_rule)
    return NVFP4Format(spec.name, el, elements[spec.scale], spec.block_size)


_ELEMENTS = _element_formats()
_FORMATS = {**_ELEMENTS, **{n: _block_format(s, _ELEMENTS) for n, s in FORMAT_SPECS.items() if isinstance(s, BlockSpec)}}


def get_format(name: str, **options):
    """DEF-FORMAT-ELEMENT — the format called ``name`` or one of its aliases (see ``natprec formats``).

    Options: ``block_size=`` for absmax/MX/NVFP4 formats, ``scale_rule=`` for MX, ``layout=`` ("last_axis" or
    "flat", DEF-BLOCK-LAYOUT) for absmax formats.
    """
    key = canonical_name(name)
    fmt = _FORMATS[key]
    if not options:
        return fmt
    unknown = set(options) - {"block_size", "scale_rule", "layout"}
    if unknown or isinstance(fmt, ElementFormat):
        raise InvalidParameterError(f"format {key} takes no options {sorted(options)}", value=sorted(options))
    if isinstance(fmt, AbsmaxBlockFormat):
        if "scale_rule" in options:
            raise InvalidParameterError("absmax formats have no scale_rule", value=options["scale_rule"])
        return AbsmaxBlockFormat(fmt.name, fmt.element, options.get("block_size", fmt.block_size),
                                 options.get("layout", fmt.layout))
    if "layout" in options:  # DEF-BLOCK-LAYOUT: the flat layout is bitsandbytes'; MX and NVFP4 block the last axis
        _check_layout(options["layout"], key, ("last_axis",))
    if isinstance(fmt, MXFormat):
        return MXFormat(fmt.name, fmt.element, fmt.emax_elem, options.get("block_size", fmt.block_size),
                        options.get("scale_rule", fmt.scale_rule))
    if "scale_rule" in options:
        raise InvalidParameterError("nvfp4 has no scale_rule", value=options["scale_rule"])
    return NVFP4Format(fmt.name, fmt.element, fmt.scale_format, options.get("block_size", fmt.block_size))


@lru_cache(maxsize=32)
def _codebook_format(cb: Codebook) -> ElementFormat:
    nbits = max(1, int(cb.encodings.max()).bit_length())
    if nbits > 16:  # dequantize decodes through a 2**nbits table
        raise CodebookError(f"codebook {cb.name!r}: encodings must be below 2**16 to quantize; largest is {int(cb.encodings.max())}",
                            value=int(cb.encodings.max()))
    return ElementFormat(cb.name, cb, nbits=nbits, description="user codebook")


def resolve_format(fmt) -> ElementFormat | AbsmaxBlockFormat | MXFormat | NVFP4Format:
    """DEF-FORMAT-ELEMENT — the format object of a format name, a :class:`Codebook` (an element format with no
    signed zero, saturating) or a format object."""
    if isinstance(fmt, str):
        return get_format(fmt)
    if isinstance(fmt, Codebook):
        return _codebook_format(fmt)
    if isinstance(fmt, (ElementFormat, _BlockFormat)):
        return fmt
    raise UnknownFormatError(f"expected a format name, Codebook or format object; got {type(fmt).__name__}", value=fmt)


# ---------------------------------------------------------------------------------------------------------------------
# Plans: quantize = execute_quantize(prepare_quantize(...)), dequantize likewise (spec/00-conventions.md).
# ---------------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class QuantizePlan:
    """DEF-QUANTIZE — an element-format quantization whose checks have all passed.

    ``x``: the input as accepted (DEF-DOMAIN), NaN mask ``nan`` (None where x holds no NaN); ``codebook``: the
    codebook quantized against (the format's, or its ``extended`` one when not
    saturating) and its ``thresholds`` in x's dtype for ``tie`` (DEF-QUANTIZE).
    """

    format: ElementFormat
    x: np.ndarray
    tie: str
    saturate: bool
    nan: np.ndarray | None
    codebook: Codebook
    thresholds: np.ndarray


@dataclass(frozen=True)
class BlockQuantizePlan:
    """DEF-FORMAT-BLOCK-ABSMAX / DEF-FORMAT-MX / DEF-FORMAT-NVFP4 — a block quantization whose checks have passed.

    ``x32``: the accepted input as float32; ``element``: the element format's plan on an empty float32
    array (codebook, float32 thresholds for ``tie``); ``context``: the tensor-level constants (NVFP4's
    S_enc, S_dec and S_enc/6; None elsewhere) and ``tensor_scale`` (NVFP4's S_dec).  Executing it computes
    the block scales and codes together, a rectangle of whole blocks at a time.
    """

    format: _BlockFormat
    shape: tuple
    x32: np.ndarray
    tie: str
    element: QuantizePlan
    context: object
    tensor_scale: np.float32 | None


@dataclass(frozen=True)
class BlockInputPlan:
    """DEF-FORMAT-BLOCK-ABSMAX / DEF-FORMAT-MX / DEF-FORMAT-NVFP4 — a block quantization's accepted input, before its scales.

    Every check of :func:`quantize` for a block format has passed.  ``x32``: the input as
    float32 (float16/bfloat16 converted exactly, float64 rounded once, RNE), finite;
    ``shape``: x's shape; ``element``: the element format's plan on an empty float32 array
    (its codebook and float32 thresholds for ``tie``).  A tier computes the scales and codes
    from this (``natprec.accelerated``); the reference continues with :func:`prepare_quantize`.
    ``amax``: max|x| over the tensor (float32; 0 for empty input), found by the finiteness check.
    """

    format: _BlockFormat
    shape: tuple
    x32: np.ndarray
    tie: str
    element: QuantizePlan
    amax: np.float32 | None = None


def prepare_block_input(x, fmt, *, tie: str = "even", saturate: bool | None = None, nan_policy: str = "raise") -> BlockInputPlan:
    """DEF-QUANTIZE — every check of :func:`quantize` for a block format, in its order, without computing any scale.

    ``prepare_quantize`` on a block format is this plan continued by the scale arithmetic, so
    the checks exist once.  A format that is not a block format raises InvalidParameterError.
    """
    f = resolve_format(fmt)
    if isinstance(f, ElementFormat):
        raise InvalidParameterError(f"prepare_block_input takes a block format; {f.name} is an element format", value=f.name)
    if saturate is False:
        raise InvalidParameterError(f"block format {f.name} always saturates", value=saturate)
    check_nan_policy(nan_policy, ("raise",))
    return f._input_plan(x, tie)


def prepare_quantize(x, fmt, *, tie: str = "even", saturate: bool | None = None, nan_policy: str = "raise"):
    """DEF-QUANTIZE — every check of :func:`quantize`, in its order; returns a QuantizePlan or BlockQuantizePlan."""
    f = resolve_format(fmt)
    if isinstance(f, ElementFormat):
        return f._quantize_plan(x, tie, saturate, nan_policy)
    return f._quantize_plan_from(prepare_block_input(x, f, tie=tie, saturate=saturate, nan_policy=nan_policy))


def execute_quantize(plan: QuantizePlan | BlockQuantizePlan):
    """DEF-QUANTIZE — the reference executor: the encodings (or BlockQuantized) a prepared plan stands for.

    Element formats: :func:`cast_codes` where a dtype cast computes the definition (THM-CAST-PATH) and is the
    faster path (CAST_FASTER), else :func:`search_codes`, the definition itself.
    """
    if isinstance(plan, BlockQuantizePlan):
        return plan.format._execute(plan)
    codes = cast_codes(plan) if plan.format.name in CAST_FASTER else None
    return search_codes(plan) if codes is None else codes


#: THM-CAST-PATH — registry element formats whose round-to-nearest-even conversion NumPy or ml_dtypes casts compute.
CAST_DTYPES = {
    "float16": np.dtype(np.float16),
    "bfloat16": np.dtype(ml_dtypes.bfloat16),
    "float8_e4m3fn": np.dtype(ml_dtypes.float8_e4m3fn),
    "float8_e5m2": np.dtype(ml_dtypes.float8_e5m2),
    "float6_e2m3fn": np.dtype(ml_dtypes.float6_e2m3fn),
    "float6_e3m2fn": np.dtype(ml_dtypes.float6_e3m2fn),
    "float4_e2m1fn": np.dtype(ml_dtypes.float4_e2m1fn),
}
#: The CAST_DTYPES formats that execute_quantize converts by the cast.  The 8-, 6- and 4-bit formats take the search:
#: its tables (THM-BIN-SEARCH, and one of every 16-bit pattern) beat ml_dtypes' casts to them by 1.6–2.6× here
#: (float8_e4m3fn from 2^24 float32: 27–48 ms against 71–77; from float16: 43 against 93).
CAST_FASTER = ("float16", "bfloat16")
#: Input dtypes the cast path takes: each converts to the target in one rounding (float64 may round twice).
CAST_INPUTS = (np.dtype(np.float16), np.dtype(ml_dtypes.bfloat16), np.dtype(np.float32))


def cast_codes(plan: QuantizePlan) -> np.ndarray | None:
    """THM-CAST-PATH — the plan's encodings by a dtype cast, or None where the cast is not proved to equal the search.

    Applies to the registry's own formats in CAST_DTYPES, tie "even", float16/bfloat16/float32 input.
    Saturating plans clip to ±max_finite in float32 first (the cast's overflow would be Inf or NaN); NaN inputs get the
    canonical NaN with the input's sign bit, as in :func:`search_codes`.
    """
    f, arr = plan.format, plan.x
    target = CAST_DTYPES.get(f.name)
    if target is None or plan.tie != "even" or arr.dtype not in CAST_INPUTS or _ELEMENTS.get(f.name) is not f:
        return None
    cd = f.code_dtype
    flat = arr.reshape(-1)
    nan = None if plan.nan is None else plan.nan.reshape(-1)
    top = _F32(f.max_finite)  # exact in float32 for every format of CAST_DTYPES (not in float16 or bfloat16)
    codes = np.empty(flat.size, dtype=cd)
    cast = codes.view(target)  # the code dtype has the target's width: the cast writes the codes in place

    def run(sl):
        x = flat[sl]
        if plan.saturate:  # in float32, exactly: the input converts to it without rounding; NaN passes np.clip
            x = np.clip(x.astype(_F32, copy=False), -top, top)
        with np.errstate(over="ignore", invalid="ignore"):  # overflow to Inf/NaN is the non-saturating result
            cast[sl] = x
        if nan is not None and nan[sl].any():
            lay = layout_of(arr.dtype)
            signbit = (np.ascontiguousarray(flat[sl]).view(lay.uint) >> lay.uint(lay.nbits - 1)).astype(bool)
            canon, sign = cd(f.nan_code), cd(1 << f.sign_bit)
            codes[sl] = np.where(nan[sl], np.where(signbit, canon | sign, canon), codes[sl])
    map_chunks(run, flat.size)  # NumPy releases the GIL in these calls: chunks on every core, the same bits
    return codes.reshape(arr.shape)


def code_bins(plan: QuantizePlan) -> CodeBins | None:
    """THM-BIN-SEARCH — the tables of float32 codes for the plan's codebook and tie rule, with the format's −0 code for
    negative values whose codeword is 0 (None where a bin holds two thresholds: the search runs)."""
    f = plan.format
    signed_zero = f.signed_zero and f.zero_index >= 0
    neg_zero = int(f.codebook.encodings[f.zero_index]) | (1 << f.sign_bit) if signed_zero else None
    return code_bins32(plan.codebook, plan.tie, np.dtype(f.code_dtype), neg_zero)


def search_codes(plan: QuantizePlan) -> np.ndarray:
    """DEF-QUANTIZE — the definition: each element's nearest codeword by exact threshold search (spec/02), its
    encoding, the sign of zero and NaN as the format states them."""
    f, arr, cb = plan.format, plan.x, plan.codebook
    cd = f.code_dtype
    lay = layout_of(arr.dtype)
    flat = arr.reshape(-1)
    nan = None if plan.nan is None else plan.nan.reshape(-1)
    enc = cb.encodings.astype(cd)  # encodings fit the code dtype by construction
    signed_zero = f.signed_zero and f.zero_index >= 0
    any_nan = nan is not None and bool(nan.any())
    codes = np.empty(flat.size, dtype=cd)
    # THM-BIN-SEARCH: the same codes, a table lookup per element
    bins = code_bins(plan) if arr.dtype == np.float32 and flat.size >= BINS_MIN else None

    def run(sl):  # element-wise: each chunk's codes are those of the whole
        # Not saturating, beyond the overflow midpoint (and ±Inf): the virtual codeword's code, ±Inf or NaN for e4m3fn.
        if bins is not None:
            c = codes_by_bins32(flat[sl], bins)
        else:
            c = enc[nearest_index(flat[sl], cb, plan.tie)]
        if (signed_zero and bins is None) or any_nan:
            signbit = (np.ascontiguousarray(flat[sl]).view(lay.uint) >> lay.uint(lay.nbits - 1)).astype(bool)
        if signed_zero and bins is None:
            neg_zero = signbit & (c == cd(f.codebook.encodings[f.zero_index]))
            c = np.where(neg_zero, c | cd(1 << f.sign_bit), c).astype(cd)
        if any_nan:
            canon, sign = cd(f.nan_code), cd(1 << f.sign_bit)
            c = np.where(nan[sl], np.where(signbit, canon | sign, canon), c).astype(cd)
        codes[sl] = c
    map_chunks(run, flat.size)  # NumPy releases the GIL in these calls: chunks on every core, the same bits
    return codes.reshape(arr.shape)


@dataclass(frozen=True)
class DequantizePlan:
    """DEF-QUANTIZE — integer codes of an element format, every one a valid encoding, and the format's decode table."""

    format: ElementFormat
    codes: np.ndarray
    table: np.ndarray


@dataclass(frozen=True)
class BlockDequantizePlan:
    """DEF-FORMAT-BLOCK-ABSMAX / DEF-FORMAT-MX / DEF-FORMAT-NVFP4 — a BlockQuantized whose element codes
    (and, for NVFP4, E4M3 scale codes) are valid encodings."""

    format: _BlockFormat
    quantized: BlockQuantized
    elements: DequantizePlan
    scales: DequantizePlan | None


def prepare_dequantize(q, fmt) -> DequantizePlan | BlockDequantizePlan:
    """DEF-QUANTIZE — every check of :func:`dequantize`, in its order."""
    f = resolve_format(fmt)
    if isinstance(f, ElementFormat):
        if isinstance(q, BlockQuantized):
            raise InvalidParameterError("a BlockQuantized needs its block format", value=q.format)
    elif not isinstance(q, BlockQuantized) or q.format != f.name:
        raise InvalidParameterError(
            f"format {f.name} dequantizes a BlockQuantized of the same format; got {type(q).__name__}",
            value=getattr(q, "format", type(q).__name__),
        )
    elif q.block_size != f.block_size:
        raise InvalidParameterError(
            f"these {q.format} codes were made with block_size={q.block_size}; the format given has "
            f"block_size={f.block_size}", value=q.block_size,
        )
    elif q.layout != f.layout:
        raise InvalidParameterError(
            f"these {q.format} codes were made with layout={q.layout!r}; the format given has layout={f.layout!r}",
            value=q.layout,
        )
    elif np.shape(q.codes) != tuple(q.shape) or np.shape(q.scales) != _scales_shape(tuple(q.shape), q.block_size, q.layout):
        where = "of the flattened tensor" if q.layout == "flat" else "along the last axis"
        raise InvalidParameterError(
            f"a {q.format} BlockQuantized of shape {tuple(q.shape)} needs codes of that shape and scales of one per "
            f"{q.block_size} {where}; got codes {np.shape(q.codes)}, scales {np.shape(q.scales)}",
            value=(np.shape(q.codes), np.shape(q.scales)),
        )
    return f._dequantize_plan(q)


def execute_dequantize(plan: DequantizePlan | BlockDequantizePlan) -> np.ndarray:
    """DEF-QUANTIZE — the reference executor: the float64 values a prepared plan stands for."""
    if isinstance(plan, BlockDequantizePlan):
        return plan.format._decode(execute_dequantize(plan.elements), plan)
    c = plan.codes
    return plan.table[c.astype(np.int64).ravel()].reshape(c.shape)


def quantize(x, fmt, *, tie: str = "even", saturate: bool | None = None, nan_policy: str = "raise"):
    """DEF-QUANTIZE — quantize ``x`` with a format name, format object or :class:`Codebook`.

    Element formats and codebooks return an unsigned integer array of encodings
    (x's shape); block formats return a :class:`BlockQuantized`.
    """
    return execute_quantize(prepare_quantize(x, fmt, tie=tie, saturate=saturate, nan_policy=nan_policy))


def dequantize(q, fmt) -> np.ndarray:
    """DEF-QUANTIZE — reconstructed values (float64) of codes or a :class:`BlockQuantized`."""
    return execute_dequantize(prepare_dequantize(q, fmt))
