"""DEF-DOMAIN, DEF-TOTAL-ORDER, DEF-FTZ-GUARD — input domains shared by every definition (spec/00-conventions.md).

Accepted dtypes, byte order and layout normalisation, ``nan_policy`` handling,
IEEE total-order keys and the flush-to-zero guard.
"""

from __future__ import annotations

import numbers
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import ml_dtypes
import numpy as np

from .errors import (
    EmptyInputError,
    FlushToZeroError,
    InvalidDTypeError,
    InvalidParameterError,
    NaNInputError,
)

__all__ = [
    "FloatLayout",
    "FLOAT_DTYPES",
    "NAN_POLICIES",
    "layout_of",
    "as_float_array",
    "check_nan_policy",
    "real_parameter",
    "count_parameter",
    "nan_mask",
    "has_nan",
    "CHUNK_ELEMENTS",
    "chunks",
    "map_chunks",
    "map_tasks",
    "total_order_key",
    "assert_subnormals_survive",
]

NAN_POLICIES = ("raise", "omit", "propagate")

#: Elements per chunk of the reference's element-wise loops: their temporaries (an 8-byte index, a
#: float64 copy, …) stay this size, so peak memory is the input, the outputs and O(chunk).
CHUNK_ELEMENTS = 1 << 18


def chunks(n: int):
    """Slices covering range(n) in runs of CHUNK_ELEMENTS (one empty slice when n = 0)."""
    return [slice(i, min(i + CHUNK_ELEMENTS, n)) for i in range(0, max(n, 1), CHUNK_ELEMENTS)]


#: Fewest chunks (of CHUNK_ELEMENTS) before map_chunks uses threads: below it, starting threads and sharing the cores
#: with torch's own costs more than it saves.
THREAD_MIN_CHUNKS = 16


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))  # the cores this process may use (taskset, cgroups)
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def map_chunks(fn, n: int) -> None:
    """Call ``fn(slice)`` for every chunk of range(n): in threads, one per core, from THREAD_MIN_CHUNKS chunks on.

    For element-wise work whose NumPy calls release the GIL (searchsorted, casts): each call writes
    its own slice, so the result is the same bits as the serial loop, in any order.
    """
    map_tasks(fn, chunks(n), n)


def map_tasks(fn, tasks, n: int) -> None:
    """Call ``fn(task)`` for every task, parts of work on n elements that write disjoint outputs: in threads, one per
    core, when n spans THREAD_MIN_CHUNKS chunks or more (as :func:`map_chunks`, for work that is not a range of
    elements: a block format's rectangles of whole blocks)."""
    workers = min(len(tasks), _cores()) if -(-n // CHUNK_ELEMENTS) >= THREAD_MIN_CHUNKS else 1
    if workers <= 1:
        for t in tasks:
            fn(t)
        return
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for _ in pool.map(fn, tasks):  # re-raises a task's exception here
            pass


@dataclass(frozen=True)
class FloatLayout:
    """Bit layout of an accepted binary floating-point dtype."""

    dtype: np.dtype
    uint: type  # unsigned integer type of the same width
    nbits: int
    ebits: int
    mbits: int

    @property
    def sign_mask(self) -> int:
        return 1 << (self.nbits - 1)

    @property
    def abs_mask(self) -> int:
        return (1 << (self.nbits - 1)) - 1

    @property
    def inf_bits(self) -> int:
        return ((1 << self.ebits) - 1) << self.mbits


FLOAT_DTYPES = {
    np.dtype(np.float16): FloatLayout(np.dtype(np.float16), np.uint16, 16, 5, 10),
    np.dtype(ml_dtypes.bfloat16): FloatLayout(np.dtype(ml_dtypes.bfloat16), np.uint16, 16, 8, 7),
    np.dtype(np.float32): FloatLayout(np.dtype(np.float32), np.uint32, 32, 8, 23),
    np.dtype(np.float64): FloatLayout(np.dtype(np.float64), np.uint64, 64, 11, 52),
}


def layout_of(dtype) -> FloatLayout:
    """Layout of an accepted dtype; ``InvalidDTypeError`` for anything else."""
    dt = np.dtype(dtype)
    native = dt.newbyteorder("=") if dt.byteorder not in ("=", "|") else dt
    try:
        return FLOAT_DTYPES[native]
    except KeyError:
        raise InvalidDTypeError(
            f"dtype {dt} is not accepted: expected one of float16, bfloat16, float32, float64",
            value=str(dt),
        ) from None


def as_float_array(x, name: str = "x") -> np.ndarray:
    """DEF-DOMAIN — return ``x`` as a native-byte-order ndarray of an accepted dtype (no value changes).

    Python floats and lists of floats become float64; integer, complex, bool and
    object arrays raise ``InvalidDTypeError``.  Byte-swapped input is converted to
    native order (same values); non-contiguous input is accepted as is.
    """
    if isinstance(x, np.ndarray):
        arr = x
    elif isinstance(x, np.generic):
        arr = np.asarray(x)
    else:
        try:
            arr = np.asarray(x)
        except (ValueError, TypeError) as exc:  # ragged lists; torch tensors of dtypes NumPy lacks (bfloat16)
            dt = getattr(x, "dtype", None)
            what = str(dt) if dt is not None else "ragged or non-numeric sequence"
            raise InvalidDTypeError(
                f"{name} cannot be read as an array of floats ({what}: {exc}); pass a NumPy array of float16, "
                "bfloat16 (ml_dtypes), float32 or float64",
                value=what,
            ) from None
        if arr.dtype.kind in "iu" and arr.size == 0:
            arr = arr.astype(np.float64)
    layout = layout_of(arr.dtype)
    if arr.dtype != layout.dtype:
        arr = arr.astype(layout.dtype)
    return arr


def real_parameter(name: str, v, *, low: float | None = None, low_open: bool = False, finite: bool = True) -> float:
    """DEF-DOMAIN — a real scalar parameter as a float: not bool, finite, and ≥ ``low`` (> when ``low_open``).

    Anything else is ``InvalidParameterError`` carrying ``v``: a string, a list, a bool (True is
    no Δ), NaN, ±Inf or a value below the bound.  ``finite=False`` leaves NaN/±Inf to the
    caller (whose own rule, e.g. on a result computed from it, then decides).
    """
    r = v.item() if isinstance(v, np.ndarray) and v.ndim == 0 else v
    if isinstance(r, (bool, np.bool_)) or not isinstance(r, numbers.Real):
        raise InvalidParameterError(f"{name} must be a real number; got {v!r}", value=v)
    f = float(r)
    if (finite and not np.isfinite(f)) or (low is not None and (f <= low if low_open else f < low)):
        bound = "" if low is None else f" and {'>' if low_open else '>='} {low:g}"
        raise InvalidParameterError(f"{name} must be finite{bound}; got {v!r}", value=v)
    return f


def count_parameter(name: str, v, *, low: int = 0) -> int:
    """DEF-DOMAIN — an integer parameter ≥ ``low`` (not bool); else ``InvalidParameterError`` carrying ``v``."""
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)) or v < low:
        raise InvalidParameterError(f"{name} must be an integer >= {low}; got {v!r}", value=v)
    return int(v)


def check_nan_policy(nan_policy: str, allowed=NAN_POLICIES) -> str:
    if not isinstance(nan_policy, str) or nan_policy not in allowed:
        raise InvalidParameterError(
            f"nan_policy must be one of {', '.join(map(repr, allowed))}; got {nan_policy!r}",
            value=nan_policy,
        )
    return nan_policy


def nan_mask(arr: np.ndarray) -> np.ndarray:
    """Boolean mask of NaN elements, computed from bits (works for every accepted dtype)."""
    lay = layout_of(arr.dtype)
    if arr.dtype.kind == "f":  # NumPy's own floats: isnan is the same test on the bits, and vectorized
        return np.asarray(np.isnan(arr))  # an array for 0-d input too, as below
    bits = np.ascontiguousarray(arr).view(lay.uint).reshape(-1)  # ascontiguousarray makes 0-d 1-d
    out = np.empty(bits.size, dtype=bool)
    for sl in chunks(bits.size):  # the masked bits are a temporary of the input's size: one chunk at a time
        out[sl] = (bits[sl] & lay.uint(lay.abs_mask)) > lay.uint(lay.inf_bits)
    return out.reshape(np.shape(arr))


def has_nan(arr: np.ndarray) -> bool:
    """Whether ``nan_mask(arr)`` has a True, with no mask of the input's size: for NumPy's own floats, whether the
    minimum (NaN-propagating) is NaN, one read of the input (2^24 float32: 2.5 ms, where the mask and its ``any``
    take 4.5); for the others, the mask one chunk at a time."""
    if arr.size == 0:
        return False
    if arr.dtype.kind == "f":
        return bool(np.isnan(np.min(arr)))
    flat = arr.reshape(-1)  # a view when it can be
    return any(nan_mask(flat[sl]).any() for sl in chunks(flat.size))


def raise_on_nan(arr: np.ndarray, name: str, mask: np.ndarray | None = None) -> None:
    m = nan_mask(arr) if mask is None else mask
    if m.any():
        first = int(np.flatnonzero(m.ravel())[0])
        raise NaNInputError(
            f"{name} contains {int(m.sum())} NaN value(s) (first at flat index {first}) "
            "and nan_policy='raise'",
            value=first,
        )


def require_nonempty(arr: np.ndarray, name: str) -> None:
    if arr.size == 0:
        raise EmptyInputError(f"{name} is empty (after applying nan_policy)", value=arr.shape)


_SIGNED = {np.uint16: np.int16, np.uint32: np.int32, np.uint64: np.int64}


def total_order_key(arr: np.ndarray) -> np.ndarray:
    """DEF-TOTAL-ORDER — IEEE 754 totalOrder as unsigned integers: −NaN < −Inf < … < −0 < +0 < … < +Inf < +NaN.

    key = bits XOR (sign bit | all-ones if negative): positives get the sign bit set,
    negatives are complemented.
    """
    lay = layout_of(arr.dtype)
    bits = np.ascontiguousarray(arr).view(lay.uint).reshape(np.shape(arr))
    neg = (bits.view(_SIGNED[lay.uint]) >> (lay.nbits - 1)).view(lay.uint)  # all ones where negative
    neg |= lay.uint(lay.sign_mask)
    neg ^= bits
    return neg


def from_total_order_key(key: np.ndarray, dtype) -> np.ndarray:
    """Inverse of :func:`total_order_key`."""
    lay = layout_of(dtype)
    key = np.ascontiguousarray(key, dtype=lay.uint)
    pos = (key.view(_SIGNED[lay.uint]) >> (lay.nbits - 1)).view(lay.uint)  # all ones where originally positive
    bits = ~pos
    bits |= lay.uint(lay.sign_mask)
    bits ^= key
    return bits.view(lay.dtype)


_TINY32 = np.float32(np.finfo(np.float32).smallest_normal)


def assert_subnormals_survive() -> None:
    """DEF-FTZ-GUARD — raise ``FlushToZeroError`` if float32 subnormals are flushed in this thread.

    Flush-to-zero (FTZ) zeroes subnormal results; denormals-are-zero (DAZ) zeroes
    subnormal operands.  Both silently change quantization of tiny values, so the
    reference refuses to run under either.
    """
    sub = np.multiply(_TINY32, np.float32(0.5))  # FTZ turns this result into 0
    if sub.view(np.uint32) == 0:  # read the bits: comparing would itself be subject to DAZ
        raise FlushToZeroError(
            "flush-to-zero is on: float32 smallest_normal * 0.5 gave 0; "
            "the reference needs IEEE subnormals (was a library built with -ffast-math loaded?)",
            value="FTZ",
        )
    if np.multiply(sub, np.float32(2.0)).view(np.uint32) != _TINY32.view(np.uint32):  # DAZ reads sub as 0
        raise FlushToZeroError(
            "denormals-are-zero is on: a float32 subnormal operand was read as 0",
            value="DAZ",
        )
