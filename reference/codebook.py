"""DEF-CODEBOOK, DEF-QUANTIZE, DEF-TIE-RULES, DEF-VORONOI-CELLS — codebooks and exact nearest-codeword quantization.

Chapter: spec/02-codebook.md.  Nearest-codeword quantization is decided by the
exact midpoints of adjacent codewords.  For each input dtype T the midpoints are
converted, once and exactly (rational arithmetic where float64 is not enough), to
*thresholds in T*: u_i is the largest T value that stays in cell i.  Quantizing is
then one ``searchsorted`` in T (or a 65536-entry table for 16-bit T; for float32, a
table over its top 16 bits and one comparison, THM-BIN-SEARCH) with no rounding
anywhere on the hot path.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache
from typing import NamedTuple

import numpy as np

from ._domain import FLOAT_DTYPES, as_float_array, from_total_order_key, layout_of, map_chunks, total_order_key
from .errors import CodebookError, InvalidDTypeError, InvalidParameterError

__all__ = [
    "TIE_RULES",
    "Codebook",
    "nearest_index",
    "thresholds",
    "voronoi_cells",
    "VoronoiCell",
    "exact_gaps",
]

#: DEF-TIE-RULES: which codeword wins when x is exactly a midpoint.
TIE_RULES = ("even", "down", "up", "away")


def _uint_for(max_code: int):
    for t in (np.uint8, np.uint16, np.uint32, np.uint64):
        if max_code <= np.iinfo(t).max:
            return t
    raise CodebookError("encodings do not fit in 64 bits", value=max_code)


class Codebook:
    """DEF-CODEBOOK — a finite, sorted set of distinct finite reconstruction values with integer encodings.

    ``values`` are stored as float64 (every accepted input dtype converts exactly).
    ``encodings[i]`` is the integer code of ``values[i]``; by default the index.
    """

    __slots__ = ("values", "encodings", "name", "code_dtype", "_key")

    def __init__(self, values, encodings=None, name: str = "codebook"):
        try:
            raw = np.asarray(values)
        except (TypeError, ValueError) as exc:
            raise CodebookError(f"codebook values are not an array of numbers: {exc}", value=values) from None
        if raw.dtype.kind in "iub":
            as_f = raw.astype(np.float64)
            inexact = as_f.astype(object) != raw.astype(object)  # compare as Python ints: exact
            if np.any(inexact):
                i = int(np.flatnonzero(inexact)[0])
                raise CodebookError(f"integer codeword {raw.ravel()[i]} is not exactly representable in float64", value=int(raw.ravel()[i]))
            raw = as_f
        elif raw.dtype.kind == "O" or (raw.dtype.newbyteorder("=") not in FLOAT_DTYPES and raw.dtype.kind != "V"):
            raise CodebookError(f"codebook dtype {raw.dtype} is not a real floating type", value=str(raw.dtype))
        else:
            try:
                raw = as_float_array(raw, "codebook").astype(np.float64)
            except InvalidDTypeError:  # e.g. ml_dtypes float8: a codebook's dtype problem is a CodebookError
                raise CodebookError(f"codebook dtype {raw.dtype} is not one of float16, bfloat16, float32, float64",
                                    value=str(raw.dtype)) from None
        if raw.ndim != 1:
            raise CodebookError(f"codebook must be 1-D, got shape {raw.shape}", value=raw.shape)
        if raw.size == 0:
            raise CodebookError("codebook is empty", value=[])
        bad = ~np.isfinite(raw)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise CodebookError(f"codebook entry {i} is not finite: {raw[i]!r}", value=float(raw[i]))
        with np.errstate(over="ignore"):  # a difference past float64's range is ±inf: its sign is still right
            d = np.diff(raw)
        if (d == 0).any():
            i = int(np.flatnonzero(d == 0)[0])
            raise CodebookError(
                f"codebook has duplicate entries {raw[i]!r} and {raw[i + 1]!r} at {i}, {i + 1}",
                value=float(raw[i]),
            )
        if (d < 0).any():
            i = int(np.flatnonzero(d < 0)[0])
            raise CodebookError(
                f"codebook is not sorted ascending: entry {i + 1} ({raw[i + 1]!r}) < entry {i} ({raw[i]!r})",
                value=float(raw[i + 1]),
            )
        if encodings is None:
            enc = np.arange(raw.size, dtype=np.uint64)
        else:
            enc_in = np.asarray(encodings)
            if enc_in.shape != raw.shape or enc_in.dtype.kind not in "iu":
                raise CodebookError(
                    f"encodings must be integers of shape {raw.shape}; got {enc_in.dtype} {enc_in.shape}",
                    value=encodings,
                )
            if (enc_in < 0).any():
                raise CodebookError("encodings must be non-negative", value=int(enc_in.min()))
            enc = enc_in.astype(np.uint64)
            if np.unique(enc).size != enc.size:
                raise CodebookError("encodings are not distinct", value=encodings)
        self.values = raw
        self.values.flags.writeable = False
        self.code_dtype = _uint_for(int(enc.max()))
        self.encodings = enc.astype(self.code_dtype)
        self.encodings.flags.writeable = False
        self.name = name
        self._key = (name, raw.tobytes(), self.encodings.tobytes())

    def __len__(self) -> int:
        return int(self.values.size)

    def __repr__(self) -> str:
        return f"Codebook({self.name!r}, {len(self)} values in [{self.values[0]!r}, {self.values[-1]!r}])"

    def __eq__(self, other):
        return isinstance(other, Codebook) and self._key == other._key

    def __hash__(self):
        return hash(self._key)

    def tie_goes_up(self, tie: str) -> np.ndarray:
        """DEF-TIE-RULES — for each boundary i (between values i and i+1), whether a tie picks i+1."""
        _check_tie(tie)
        v = self.values
        k = v.size - 1
        if tie == "down":
            return np.zeros(k, dtype=bool)
        if tie == "up":
            return np.ones(k, dtype=bool)
        if tie == "away":
            # The midpoint's sign decides; a midpoint of exactly 0 goes up (toward +inf).
            with np.errstate(over="ignore"):  # a sum past float64's range is ±inf: its sign is still the midpoint's
                return (v[:-1] + v[1:]) >= 0  # sign of a float64 sum is exact
        par = (self.encodings & 1).astype(bool)
        same = par[:-1] == par[1:]
        if same.any():
            i = int(np.flatnonzero(same)[0])
            raise CodebookError(
                f"tie='even' needs adjacent codewords with encodings of different parity; "
                f"{v[i]!r} (code {int(self.encodings[i])}) and {v[i + 1]!r} (code {int(self.encodings[i + 1])}) "
                "have the same parity",
                value=(float(v[i]), float(v[i + 1])),
            )
        return ~par[1:]


def _exact_midpoints(v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """float64 midpoints and a mask of those that are exact (TwoSum residual 0, halving exact)."""
    a, b = v[:-1], v[1:]
    with np.errstate(over="ignore", invalid="ignore"):
        s = a + b
        bb = s - a
        err = (a - (s - bb)) + (b - bb)
        m = s * 0.5
        exact = np.isfinite(s) & (err == 0) & (m * 2.0 == s)
    return m, exact


@lru_cache(maxsize=64)
def _thresholds_cached(cb: Codebook, tie: str, dtype: np.dtype) -> np.ndarray:
    lay = layout_of(dtype)
    v = cb.values
    if v.size == 1:
        return np.empty(0, dtype=lay.dtype)
    goes_up = cb.tie_goes_up(tie)
    m64, exact = _exact_midpoints(v)
    # Where float64 cannot hold the midpoint, bracket it between two float64 values
    # with exact rationals; the comparisons below then stay exact.
    inexact = np.flatnonzero(~exact)
    lo = m64.copy()
    for i in inexact:
        mq = (Fraction(float(v[i])) + Fraction(float(v[i + 1]))) / 2
        f = float(mq)
        if Fraction(f) > mq:
            f = float(np.nextafter(f, -np.inf))
        lo[i] = f  # largest float64 < exact midpoint (midpoint is not a float64)
    strict = goes_up.copy()
    # An inexact midpoint lies strictly between lo and nextafter(lo): "< m" and "<= m" agree.
    strict[inexact] = False
    target = lo
    # Round the float64 target into T, then correct by whole T-ulp steps until
    # c = the largest T value with c < target (strict) or c <= target (non-strict).
    with np.errstate(over="ignore"):
        c = target.astype(lay.dtype)
    key = total_order_key(c)
    for _ in range(4):
        cv = from_total_order_key(key, lay.dtype).astype(np.float64)
        too_big = (cv > target) | (strict & (cv == target))
        if not too_big.any():
            break
        key = np.where(too_big, key - lay.uint(1), key).astype(lay.uint)
    top = lay.uint(total_order_key(np.array([np.inf], dtype=lay.dtype))[0])
    for _ in range(4):
        nk = np.minimum(key + lay.uint(1), top).astype(lay.uint)
        nv = from_total_order_key(nk, lay.dtype).astype(np.float64)
        fits = (nk != key) & ((nv < target) | (~strict & (nv == target)))
        if not fits.any():
            break
        key = np.where(fits, nk, key).astype(lay.uint)
    u = from_total_order_key(key, lay.dtype)
    u.flags.writeable = False
    return u


def _check_tie(tie) -> None:
    if not isinstance(tie, str) or tie not in TIE_RULES:  # a list would reach the threshold cache unhashed
        raise InvalidParameterError(f"tie must be one of {TIE_RULES}; got {tie!r}", value=tie)


def thresholds(codebook: Codebook, tie: str, dtype) -> np.ndarray:
    """DEF-QUANTIZE — thresholds u (dtype T): x in T lies in cell i iff u[i-1] < x <= u[i].

    u[i] is the largest T value that the tie rule keeps in cell i (±Inf allowed).
    """
    _check_tie(tie)
    return _thresholds_cached(codebook, tie, layout_of(dtype).dtype)


_F64_MAX = Fraction(float(np.finfo(np.float64).max))


@lru_cache(maxsize=64)
def exact_gaps(cb: Codebook) -> np.ndarray:
    """c[i+1] − c[i] for every adjacent pair, each the float64 nearest the exact difference."""
    v = cb.values
    exact = [Fraction(float(v[i + 1])) - Fraction(float(v[i])) for i in range(v.size - 1)]
    big = next((i for i, d in enumerate(exact) if d > _F64_MAX), None)
    if big is not None:
        raise CodebookError(
            f"codebook {cb.name!r}: codewords {float(v[big])!r} and {float(v[big + 1])!r} differ by more than the float64 range, "
            "so margins between them (DEF-MARGIN) are not representable", value=(float(v[big]), float(v[big + 1])),
        )
    g = np.array([float(d) for d in exact])
    g.flags.writeable = False
    return g


@lru_cache(maxsize=64)
def _lut16(cb: Codebook, tie: str, dtype: np.dtype) -> np.ndarray:
    lay = layout_of(dtype)
    u = thresholds(cb, tie, dtype).astype(np.float32)  # 16-bit values are exact in float32
    every = np.arange(1 << 16, dtype=np.uint32).astype(np.uint16).view(lay.dtype).astype(np.float32)
    lut = np.searchsorted(u, every, side="left").astype(np.min_scalar_type(max(len(cb) - 1, 0)))
    lut.flags.writeable = False
    return lut


#: Fewest float32 elements for which nearest_index builds (once per codebook and tie rule) its bin tables.
BINS_MIN = 1 << 12
#: Elements per piece of the table lookups (temporaries of 0.5–1 MB per thread).  Pieces of 2^16 cost 5–15 % more
#: (4096 × 4096 normals, two threads: float8_e4m3fn codes 28.2 → 24.0 ms, NF4 quantize 40.1 → 35.3): per-call costs and
#: the GIL; pieces of 2^18 gain nothing more and add 0.2–0.4× a 2^22-element input to the peak (bench/peak_memory.py).
_BIN_PIECE = 1 << 17
_HIGH = 1 if sys.byteorder == "little" else 0  # which uint16 half of a float32 holds its sign, exponent and top 7 bits


@lru_cache(maxsize=64)
def index_bins32(cb: Codebook, tie: str) -> tuple[np.ndarray, np.ndarray] | None:
    """THM-BIN-SEARCH — per bin of float32 (the 2**16 classes of equal top 16 bits, a closed interval of values): the
    number of thresholds below the bin, and the one threshold inside it (+Inf if none); None when a bin holds two."""
    u = thresholds(cb, tie, np.float32)
    top = np.arange(1 << 16, dtype=np.uint32) << np.uint32(16)
    lo, hi = top.view(np.float32), (top | np.uint32(0xFFFF)).view(np.float32)
    hi = np.where(np.isnan(hi), lo, hi)  # the ±Inf bins: their one non-NaN member; NaN bins stay NaN (index unspecified)
    vmin, vmax = np.fmin(lo, hi), np.fmax(lo, hi)
    below = np.searchsorted(u, vmin, side="left")  # #{u < vmin}
    inside = np.searchsorted(u, vmax, side="left") - below  # #{vmin <= u < vmax}
    if inside.max(initial=0) > 1:
        return None
    at = np.append(u, np.float32(np.inf)).astype(np.float32)[np.where(inside == 1, below, u.size)]
    idx = below.astype(np.min_scalar_type(max(len(cb) - 1, 0)))
    idx.flags.writeable = at.flags.writeable = False
    return idx, at


def _nearest_index32(flat: np.ndarray, bins: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """THM-BIN-SEARCH — searchsorted(u, flat, "left") for float32 ``flat``, by its bin: below + (x > the bin's threshold)."""
    below, at = bins
    out = np.empty(flat.shape, below.dtype)
    for i in range(0, flat.size, _BIN_PIECE):
        x = flat[i:i + _BIN_PIECE]
        k = _bin_of(x)
        o = np.take(below, k)
        o += np.greater(x, np.take(at, k))
        out[i:i + _BIN_PIECE] = o
    return out


def _bin_of(flat: np.ndarray) -> np.ndarray:
    """The bin (top 16 bits) of each float32, contiguous: np.take gathers twice as fast with it as fancy indexing."""
    return np.ascontiguousarray(np.ascontiguousarray(flat).view(np.uint16)[_HIGH::2])


class CodeBins(NamedTuple):
    """THM-BIN-SEARCH's encoding tables for one codebook, tie rule, code dtype and signed-zero rule (see code_bins32)."""

    packed: np.ndarray
    at: np.ndarray
    code_dtype: np.dtype
    keyed: np.ndarray | None


@lru_cache(maxsize=64)
def code_bins32(cb: Codebook, tie: str, code_dtype: np.dtype, neg_zero: int | None) -> CodeBins | None:
    """THM-BIN-SEARCH — per float32 bin: the encoding below its threshold and the one above (packed in one integer of
    twice the code's width, below in the low half), the threshold (+Inf if none), and the code dtype, so that a float32
    x's encoding is ``above if x > at else below`` of its bin; None where a bin holds two thresholds.  ``neg_zero``:
    the encoding negative values and −0.0 take when their codeword is 0 (a format's signed zero; None: no signed
    zero).  Every value of a bin has the bin's sign bit.

    ``keyed``: where every bin's patterns other than its lowest (low 16 bits 1…FFFF) share one encoding, the
    encodings by KEY (2 · bin + [low 16 bits ≠ 0]): one gather per element; else None."""
    bins = index_bins32(cb, tie)
    if bins is None:
        return None
    idx, at = bins
    enc = cb.encodings.astype(code_dtype)
    i = idx.astype(np.int64)
    below, above = enc[i], enc[np.minimum(i + 1, enc.size - 1)]
    if neg_zero is not None:
        z = np.flatnonzero(cb.values == 0.0)
        if z.size:
            negative = np.arange(1 << 16) >= 1 << 15  # bins whose sign bit is set
            below = np.where(negative & (i == z[0]), code_dtype.type(neg_zero), below).astype(code_dtype)
            above = np.where(negative & (i + 1 == z[0]), code_dtype.type(neg_zero), above).astype(code_dtype)
    bits = 8 * code_dtype.itemsize  # below in the low half, above in the high half: one gather for both
    wide = np.dtype(np.uint16 if bits == 8 else np.uint32)
    packed = below.astype(wide) | (above.astype(wide) << wide.type(bits))
    keyed = _keyed(below, above, at)
    for t in (packed, keyed):
        if t is not None:
            t.flags.writeable = False
    return CodeBins(packed, at, code_dtype, keyed)


def _keyed(below: np.ndarray, above: np.ndarray, at: np.ndarray) -> np.ndarray | None:
    """THM-BIN-SEARCH — the 2**17 encodings by KEY, or None where some bin's patterns 1…FFFF (an interval of values:
    the encoding is monotone in x on it) do not share one encoding (checked at the interval's ends)."""
    top = np.arange(1 << 16, dtype=np.uint32) << np.uint32(16)

    def encoding(pattern: int) -> np.ndarray:
        return np.where((top | np.uint32(pattern)).view(np.float32) > at, above, below)

    second, last = encoding(1), encoding(0xFFFF)
    numbers = ~np.isnan((top | np.uint32(1)).view(np.float32))  # the ±Inf and NaN bins hold no other number
    if np.any((second != last) & numbers):
        return None
    keyed = np.empty(1 << 17, below.dtype)
    keyed[0::2], keyed[1::2] = encoding(0), second
    return keyed


def bin_keys32(u: np.ndarray) -> np.ndarray:
    """THM-BIN-SEARCH — KEY of each float32 bit pattern ``u`` (uint32): (u >> 16) + ((u + FFFF) >> 16) = 2 · bin +
    [low 16 bits ≠ 0], four integer passes; the add wraps only for negative NaN patterns (still a key < 2**17)."""
    k = u >> np.uint32(16)
    d = u + np.uint32(0xFFFF)
    d >>= np.uint32(16)
    k += d
    return k


def codes_by_bins32(flat: np.ndarray, bins: CodeBins) -> np.ndarray:
    """THM-BIN-SEARCH — the encodings of float32 ``flat`` from :func:`code_bins32`'s tables (NaN: unspecified)."""
    out = np.empty(flat.shape, bins.code_dtype)
    if bins.keyed is not None:
        u = np.ascontiguousarray(flat).view(np.uint32)
        for i in range(0, flat.size, _BIN_PIECE):
            np.take(bins.keyed, bin_keys32(u[i:i + _BIN_PIECE]), out=out[i:i + _BIN_PIECE])
        return out
    shift = bins.packed.dtype.type(8 * bins.code_dtype.itemsize)
    for i in range(0, flat.size, _BIN_PIECE):
        x = flat[i:i + _BIN_PIECE]
        k = _bin_of(x)
        up = np.greater(x, np.take(bins.at, k)).astype(bins.packed.dtype)
        t = np.take(bins.packed, k)
        t >>= up * shift  # above where x > at: the high half
        out[i:i + _BIN_PIECE] = t  # the low half (a truncating cast)
    return out


def nearest_index(x, codebook: Codebook, tie: str = "even") -> np.ndarray:
    """DEF-QUANTIZE — index of the nearest codeword of each element (ties by ``tie``).

    Exact for every accepted dtype.  NaN elements get an unspecified index: callers
    apply ``nan_policy`` before or after (see :func:`natprec.reference.quantize`).
    ±Inf go to the extreme codewords.  Returns an unsigned integer array of x's shape.
    """
    arr = as_float_array(x)
    lay = layout_of(arr.dtype)
    if lay.nbits == 16:
        lut = _lut16(codebook, tie, lay.dtype)
        return lut[np.ascontiguousarray(arr).view(np.uint16).reshape(arr.shape)]
    u = thresholds(codebook, tie, lay.dtype)
    flat = arr.reshape(-1)  # a view when it can be; searchsorted's 8-byte result is formed one chunk at a time
    out = np.empty(flat.size, dtype=np.min_scalar_type(max(len(codebook) - 1, 0)))
    bins = index_bins32(codebook, tie) if lay.nbits == 32 and flat.size >= BINS_MIN else None

    def run(sl):
        if bins is not None:  # THM-BIN-SEARCH: the same indices as searchsorted, a gather and a compare per element
            out[sl] = _nearest_index32(flat[sl], bins)
        else:
            out[sl] = np.searchsorted(u, flat[sl], side="left")
    map_chunks(run, flat.size)  # searchsorted releases the GIL: chunks on every core, the same bits
    return out.reshape(arr.shape)


@dataclass(frozen=True)
class VoronoiCell:
    """DEF-VORONOI-CELLS — the interval of reals quantized to one codeword.

    ``lower``/``upper`` are exact midpoints (Fractions; None for ±∞); ``*_closed``
    says whether the tie at that midpoint belongs to this cell.
    """

    index: int
    encoding: int
    value: float
    lower: Fraction | None
    upper: Fraction | None
    lower_closed: bool
    upper_closed: bool

    def contains(self, x: float) -> bool:
        q = Fraction(x)
        if self.lower is not None and (q < self.lower or (q == self.lower and not self.lower_closed)):
            return False
        if self.upper is not None and (q > self.upper or (q == self.upper and not self.upper_closed)):
            return False
        return True


def voronoi_cells(codebook: Codebook, tie: str = "even") -> list[VoronoiCell]:
    """DEF-VORONOI-CELLS — every cell of the 1-D Voronoi partition, with exact rational bounds."""
    v = codebook.values
    up = codebook.tie_goes_up(tie)
    mids = [(Fraction(float(v[i])) + Fraction(float(v[i + 1]))) / 2 for i in range(v.size - 1)]
    cells = []
    for i in range(v.size):
        lower = mids[i - 1] if i > 0 else None
        upper = mids[i] if i < v.size - 1 else None
        cells.append(
            VoronoiCell(
                index=i,
                encoding=int(codebook.encodings[i]),
                value=float(v[i]),
                lower=lower,
                upper=upper,
                lower_closed=bool(up[i - 1]) if i > 0 else False,
                upper_closed=(not bool(up[i])) if i < v.size - 1 else False,
            )
        )
    return cells
