"""DEF-SITE-QUANTIZE — quantizing a site tensor with a natprec format at b bits (reference semantics).

Every code comes from :func:`natprec.reference.quantize`; this module only fixes the
granularity and the scales:

* ``intB`` (B = 2…8): symmetric absmax, per output channel for weights (rows of the
  2-D view) and per tensor for activations: s = fl32(absmax / (2^(B−1) − 1)),
  y = fl32(x / s), code = nearest integer of the B-bit two's-complement codebook (ties
  to even), x̂ = fl32(code · s).  An all-zero group uses s = 1.
* any other element format (e.g. float8_e4m3fn, or nf4 — the bare NF4 codebook): the
  same with the format's largest finite value in place of 2^(B−1) − 1, converted saturating.
* block formats (nf4_absmax64, fp4_bnb_absmax64, mxfp4, nvfp4, …): exactly as the
  reference defines them, blocks along the last axis of the 2-D view (weights: the
  flattened non-output axes; activations: the feature axis).

The feature axis of an activation is the site's (DEF-SITE): the last axis for Linear
layers, the channel axis 1 for convolutions (NCHW).  The 2-D view moves it last; with
the default ``feature_axis=-1`` the view is the plain reshape used for Linear sites.

Names are the reference registry's (natprec.reference.registry): an alias resolves to its
canonical name, which is the name reported.

Activations are quantized per calibration batch tensor (dynamic per-tensor scale).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

import numpy as np

import natprec.reference
from natprec.reference import Codebook, ElementFormat, get_format, resolve_format
from natprec.reference.errors import InvalidParameterError, UnknownFormatError

__all__ = [
    "SiteFormat",
    "INT_BITS",
    "GROUP_SCALE_BITS",
    "DEFAULT_FORMATS",
    "site_format",
    "parse_formats",
    "integer_format",
    "unsigned_format",
    "as_2d",
]

#: Bits of one group's float32 absmax scale (``intB_gG``), counted in its bits per element.
GROUP_SCALE_BITS = 32
#: Bit-widths of the integer family searched for b*_v(ε).
INT_BITS = tuple(range(2, 9))
#: The report's candidate formats: the integer family, then reference formats by their canonical names.
DEFAULT_FORMATS = tuple(f"int{b}" for b in INT_BITS) + ("nf4_absmax64", "fp4_bnb_absmax64", "float8_e4m3fn", "mxfp4", "nvfp4")
_F32 = np.float32


def integer_format(bits: int) -> ElementFormat:
    """DEF-SITE-QUANTIZE — the B-bit two's-complement integer codebook −2^(B−1) … 2^(B−1) − 1."""
    if not 2 <= bits <= 16:
        raise InvalidParameterError(f"integer formats take 2..16 bits; got {bits}", value=bits)
    vals = np.arange(-(1 << (bits - 1)), 1 << (bits - 1), dtype=np.int64)
    cb = Codebook(vals.astype(np.float64), vals & ((1 << bits) - 1), name=f"int{bits}")
    return ElementFormat(f"int{bits}", cb, nbits=bits, description=f"{bits}-bit two's complement integers")


def unsigned_format(bits: int) -> ElementFormat:
    """DEF-SITE-QUANTIZE — the B-bit unsigned integer codebook 0 … 2^B − 1 (codes of the asymmetric ``uintB``)."""
    if not 2 <= bits <= 16:
        raise InvalidParameterError(f"integer formats take 2..16 bits; got {bits}", value=bits)
    vals = np.arange(0, 1 << bits, dtype=np.int64)
    return ElementFormat(f"uint{bits}", Codebook(vals.astype(np.float64), vals, name=f"uint{bits}"), nbits=bits,
                         description=f"{bits}-bit unsigned integers")


def as_2d(x: np.ndarray, per_channel: bool, feature_axis: int = -1) -> np.ndarray:
    """DEF-SITE-QUANTIZE — the 2-D view a site is quantized in (a scalar or vector is one row).

    Weights (``per_channel``): one row per output channel (first axis), the other axes
    flattened (a conv kernel's row is its flattened (in, kh, kw)); activations: one row per
    position, the feature axis ``feature_axis`` (last for Linear, 1 = channels for a
    convolution's NCHW tensors) moved last as the columns.  An axis outside x's dimensions
    raises InvalidParameterError.
    """
    if x.ndim < 2:
        return x.reshape(1, -1)
    if per_channel:
        return x.reshape(x.shape[0], -1)
    ax = _axis(x, feature_axis)
    if ax != x.ndim - 1:
        x = np.moveaxis(x, ax, -1)
    return x.reshape(-1, x.shape[-1])


def _axis(x: np.ndarray, feature_axis: int) -> int:
    if isinstance(feature_axis, bool) or not isinstance(feature_axis, (int, np.integer)) \
            or not -x.ndim <= feature_axis < x.ndim:
        raise InvalidParameterError(f"feature axis {feature_axis!r} outside a {x.ndim}-D activation", value=feature_axis)
    return int(feature_axis) % x.ndim


def _from_2d(x2: np.ndarray, shape: tuple, per_channel: bool, feature_axis: int) -> np.ndarray:
    """Inverse of :func:`as_2d`: the 2-D view back in the site tensor's shape."""
    if len(shape) < 2 or per_channel:
        return x2.reshape(shape)
    ax = feature_axis % len(shape)
    if ax == len(shape) - 1:
        return x2.reshape(shape)
    moved = shape[:ax] + shape[ax + 1:] + (shape[ax],)
    return np.ascontiguousarray(np.moveaxis(x2.reshape(moved), -1, ax))


@dataclass(frozen=True)
class SiteFormat:
    """DEF-SITE-QUANTIZE — a format with the granularity it is applied at.

    ``element``: the reference element format (scaled by absmax) or ``None`` for a
    block format ``block``.  ``int_bits`` is B for the integer family, else None.
    ``tier``: the module whose ``quantize``/``dequantize`` run the codes (``natprec.reference`` unless
    :meth:`on` bound another tier, e.g. ``natprec.accelerated``); the scales are computed here either way.
    """

    name: str
    bits_per_element: float
    element: ElementFormat | None
    block: object | None
    int_bits: int | None
    group: int | None = None
    asymmetric: bool = False
    tier: object = natprec.reference

    def on(self, tier) -> SiteFormat:
        """This format with its codes computed by ``tier`` (a module with the reference's quantize/dequantize)."""
        return replace(self, tier=tier)

    @property
    def scaling(self) -> str:
        """DEF-SITE-QUANTIZE — how the format scales a site, in words (from the reference format's conventions)."""
        if self.asymmetric:
            where = (f"per {self.group} elements along a row (weights: the input dimension; activations: the features), "
                     "counted in the bits" if self.group else "per output channel (weights) or per tensor (activations), "
                     "not counted in the bits")
            return f"float32 scale and B-bit zero point over [min(x, 0), max(x, 0)] {where}"
        if self.group is not None:
            return (f"float32 absmax scale per {self.group} elements along a row (weights: the input dimension; "
                    "activations: the features), counted in the bits")
        if self.block is None:
            return ("float32 absmax scale per output channel (weights) or per tensor (activations), "
                    "not counted in the bits")
        c = self.block.conventions()
        extra = f", plus a {c['tensor_scale'].split(' ')[0]} tensor scale" if "tensor_scale" in c else ""
        return (f"{c['scale']} scale per {c['block_size']} elements along a row (weights: the input dimension; "
                f"activations: the features), counted in the bits{extra}")

    @property
    def codebook_format(self) -> ElementFormat:
        """The element format whose codebook the (scaled) values see."""
        return self.element if self.element is not None else self.block.element

    def effective_bits(self, shape, per_channel: bool, feature_axis: int = -1) -> float:
        """DEF-SITE-QUANTIZE — bits per element spent on a tensor of ``shape``: a block format's scale bits over its real blocks.

        A block format's nominal bits (``bits_per_element``) assume full blocks; a row of the
        2-D view of n elements holds ⌈n/B⌉ blocks, so it spends e + (nominal − e)·B·⌈n/B⌉/n
        bits per element (e: element bits).  A 1-channel conv input puts one element in each
        block: 4 + 32 = 36 bits for nf4_absmax64.  Other formats: the nominal bits.
        """
        if self.block is None and self.group is None:
            return self.bits_per_element
        dims = tuple(int(d) for d in shape)
        if len(dims) < 2:
            n = int(np.prod(dims))
        else:
            n = int(np.prod(dims[1:])) if per_channel else dims[_axis(np.empty((0,) * len(dims)), feature_axis)]
        if n == 0:
            return self.bits_per_element
        e = float(self.codebook_format.nbits)
        bsz = self.group if self.group is not None else self.block.block_size
        return e + (self.bits_per_element - e) * bsz * (-(-n // bsz)) / n

    def _reduce(self, x2: np.ndarray, per_channel: bool, op) -> np.ndarray:
        """``op`` (np.maximum / np.minimum) over each scale group, broadcastable against ``x2``: one per row
        (per_channel) or one for the tensor as a (rows, 1) or (1, 1) array; ``group`` elements of a row repeated
        back to every element."""
        if self.group is not None:
            if not x2.size:
                return x2
            r = op.reduceat(x2, np.arange(0, x2.shape[1], self.group), axis=1)
            return np.repeat(r, self.group, axis=1)[:, : x2.shape[1]]
        return op.reduce(x2, axis=1 if per_channel else None, keepdims=True)

    def _scales(self, x2: np.ndarray, per_channel: bool) -> np.ndarray:
        """Symmetric: s = fl32(absmax/max code) per scale group, 1 for an all-zero group."""
        return self.group_scales(self._reduce(np.abs(x2), per_channel, np.maximum))

    def group_scales(self, amax: np.ndarray) -> np.ndarray:
        """DEF-SITE-QUANTIZE — the symmetric scales s = fl32(absmax/max code) of scale groups whose max|x| is ``amax``
        (1 for an all-zero group); element-wise, so scales of the groups alone equal those broadcast to their elements."""
        s = np.divide(np.asarray(amax).astype(_F32), _F32(self.element.max_finite), dtype=_F32)
        return np.where(s > 0, s, _F32(1.0)).astype(_F32)

    def _zero_point(self, x2: np.ndarray, per_channel: bool) -> tuple[np.ndarray, np.ndarray]:
        """Asymmetric: (s, z) per scale group over the range [min(lo, 0), max(hi, 0)], so that 0 is exact."""
        return self.group_zero_points(self._reduce(x2, per_channel, np.minimum), self._reduce(x2, per_channel, np.maximum))

    def group_zero_points(self, lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """DEF-SITE-QUANTIZE — the asymmetric (s, z) of scale groups whose float32 minimum and maximum are ``lo`` and
        ``hi``, over the range [min(lo, 0), max(hi, 0)]; element-wise, like :meth:`group_scales`."""
        lo = np.minimum(lo, _F32(0)).astype(_F32)
        hi = np.maximum(hi, _F32(0)).astype(_F32)
        top = _F32(self.element.max_finite)  # 2^B − 1
        s = np.divide(np.subtract(hi, lo, dtype=_F32), top, dtype=_F32)
        s = np.where(s > 0, s, _F32(1.0)).astype(_F32)
        z = np.clip(np.rint(np.divide(-lo, s, dtype=_F32)), 0, top).astype(np.float64)
        return s, z

    def element_view(self, x: np.ndarray, per_channel: bool, feature_axis: int = -1) -> tuple[np.ndarray, np.ndarray]:
        """(y, group): the values the element codebook sees (2-D view) and each element's scale group id.

        Asymmetric formats see y = fl32(x/s) + z (exact in float64) against the codes 0 … 2^B − 1.
        """
        x2 = as_2d(np.asarray(x, dtype=_F32), per_channel, feature_axis)
        rows, n = x2.shape
        if self.element is not None and self.asymmetric:
            s, z = self._zero_point(x2, per_channel)
            y = np.divide(x2, s, dtype=_F32).astype(np.float64) + z
        elif self.element is not None:
            y = np.divide(x2, self._scales(x2, per_channel), dtype=_F32)
        else:
            y = np.asarray(self.block.scaled(x2))
        if self.block is not None or self.group is not None:
            size = self.group or self.block.block_size
            per_row = -(-n // size)
            group = np.arange(rows)[:, None] * per_row + np.arange(n)[None, :] // size
        else:
            group = np.broadcast_to(np.arange(rows)[:, None] if per_channel else np.zeros((1, 1), np.int64), x2.shape)
        return y, np.asarray(group, dtype=np.int64)

    def quantize_dequantize(self, x: np.ndarray, per_channel: bool, feature_axis: int = -1) -> np.ndarray:
        """DEF-SITE-QUANTIZE — x̂ = Q(x) as float32, x's shape (per_channel: one scale per row of the 2-D view).

        ``feature_axis``: an activation's feature axis (blocks run along it; see :func:`as_2d`).
        """
        x32 = np.asarray(x, dtype=_F32)
        x2 = as_2d(x32, per_channel, feature_axis)
        quantize, dequantize = self.tier.quantize, self.tier.dequantize
        if self.element is not None and self.asymmetric:
            s, z = self._zero_point(x2, per_channel)
            y = np.divide(x2, s, dtype=_F32).astype(np.float64) + z  # exact: a float32 plus an integer < 2^16
            v = dequantize(quantize(y, self.element, saturate=True), self.element) - z
            out = (v * s.astype(np.float64)).astype(_F32)  # v·s is exact in float64: one rounding, to float32
        elif self.element is not None:
            s = self._scales(x2, per_channel)
            codes = quantize(np.divide(x2, s, dtype=_F32), self.element, saturate=True)
            out = np.multiply(dequantize(codes, self.element), s, dtype=_F32)  # the codeword rounded to float32, then · s
        else:
            out = dequantize(quantize(x2, self.block), self.block).astype(_F32)
        return _from_2d(out, x32.shape, per_channel, feature_axis)


def site_format(name) -> SiteFormat:
    """DEF-SITE-QUANTIZE — the SiteFormat for ``intB``, a reference format name or alias, or a Codebook."""
    if isinstance(name, Codebook):
        el = resolve_format(name)
        return SiteFormat(name.name, float(el.nbits), el, None, None)
    if not isinstance(name, str):
        raise UnknownFormatError(f"format must be a name or a Codebook; got {name!r}", value=name)
    key = name.strip().lower()
    if key.startswith("int") and key[3:].isdigit():
        b = int(key[3:])
        return SiteFormat(key, float(b), integer_format(b), None, b)
    grouped = re.fullmatch(r"(u?)int(\d+)(?:_g(\d+))?", key)
    if grouped:
        asym, b, g = grouped[1] == "u", int(grouped[2]), None if grouped[3] is None else int(grouped[3])
        if g is not None and g < 2:
            raise InvalidParameterError(f"format {name!r}: a group holds at least 2 elements", value=name)
        el = unsigned_format(b) if asym else integer_format(b)
        # A group counts its float32 scale (and an asymmetric one its B-bit zero point).
        bits = b if g is None else b + (GROUP_SCALE_BITS + (b if asym else 0)) / g
        return SiteFormat(key, float(bits), el, None, None, g, asym)
    ref = get_format(key)
    if isinstance(ref, ElementFormat):
        if ref.max_finite <= 0:
            raise UnknownFormatError(f"format {key!r} has no positive value to scale to", value=name)
        return SiteFormat(ref.name, float(ref.nbits), ref, None, None)
    # Element bits plus the amortised scale bits, as the format states them (and ``natprec formats`` prints).
    return SiteFormat(ref.name, float(ref.conventions()["bits_per_element"]), None, ref, None)


def parse_formats(spec) -> list[SiteFormat]:
    """DEF-SITE-QUANTIZE — formats from a comma-separated string or list; ``int`` expands to int2…int8."""
    items = spec.split(",") if isinstance(spec, str) else list(spec)
    names: list = []
    for it in items:
        if isinstance(it, str):
            it = it.strip()
            if not it:
                continue
            names.extend(f"int{b}" for b in INT_BITS) if it.lower() == "int" else names.append(it)
        else:
            names.append(it)
    if not names:
        raise InvalidParameterError("--formats: no format given", value=spec)
    out, seen = [], set()
    for n in names:
        f = site_format(n)
        if f.name not in seen:
            seen.add(f.name)
            out.append(f)
    return out
