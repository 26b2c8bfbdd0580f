"""DEF-QUANTIZE on every 16-bit input pattern: one exhaustive check for any tier.

conformance/test_exhaustive.py runs it on every candidate tier (the accelerated tier's real
kernels on a GPU); tests/test_accelerated_host.py on the g++ build of the kernels' scalar header.
"""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest

import natprec.reference as ref
from natprec.reference import TIE_RULES, get_format
from natprec.reference.codebook import nearest_index

from .harness import assert_bits_equal

__all__ = ["DT16", "all16", "check_element_format_all16", "near_threshold_rows"]

DT16 = {"float16": np.dtype(np.float16), "bfloat16": np.dtype(ml_dtypes.bfloat16)}


def all16(dtype) -> np.ndarray:
    """Every bit pattern of a 16-bit dtype, in bit order."""
    return np.arange(1 << 16, dtype=np.uint32).astype(np.uint16).view(dtype)


def near_threshold_rows(length: int, codebook: np.ndarray) -> np.ndarray:
    """float32 rows of ``length`` elements, one per positive finite bfloat16 value a (every scale of a block):
    a itself, then for every midpoint m of ``codebook`` (an element codebook's values, max |c| = 1) the four
    float32 values from one below fl32(m · a) to two above it (alternately negated, at most a in magnitude) —
    where fl32(x / a) and fl32(x · fl32(1/a)) can fall on two sides of a decision threshold — and the rest of
    the row the bfloat16 ratios in [−1, 1] times a, taken in turn.  Row i's max |x| is a."""
    v = all16(DT16["bfloat16"]).astype(np.float32)
    a = v[np.isfinite(v) & (v > 0)]
    r = v[np.isfinite(v) & (np.abs(v) <= 1)]
    rows = (a[:, None] * np.resize(r, a.size * length).reshape(a.size, length)).astype(np.float32)
    mids = (codebook[1:] + codebook[:-1]) / 2
    near = (mids[None, :] * a[:, None].astype(np.float64)).astype(np.float32)
    steps = [np.nextafter(near, np.float32(-np.inf)), near, np.nextafter(near, np.float32(np.inf))]
    steps.append(np.nextafter(steps[2], np.float32(np.inf)))
    cols = np.minimum(np.abs(np.stack(steps, axis=-1).reshape(a.size, -1)), a[:, None])
    cols[:, 1::2] *= np.float32(-1)
    if cols.shape[1] >= length:
        raise ValueError(f"near_threshold_rows: {cols.shape[1]} values near the thresholds do not fit rows of {length}")
    rows[:, 0] = a
    rows[:, 1:1 + cols.shape[1]] = cols
    return rows


def check_element_format_all16(impl, fmt: str, dtype: str) -> int:
    """Codes and dequantized values of ``impl`` equal the reference on every 16-bit pattern,
    every tie rule, saturating and not; so do the cell counts of a tier with a fused
    ``code_histogram``.  A tier with ``last_path`` (one that may fall back to the reference)
    must have run on its device.  Returns the number of elements compared (callers assert it
    is positive)."""
    f = get_format(fmt)
    x = all16(DT16[dtype])
    nan = np.isnan(x.astype(np.float32))
    checked = 0
    for tie in TIE_RULES:
        for sat in (True, False):
            if not sat and f.extended is None:
                continue
            pol = "propagate" if f.nan_code is not None else "raise"
            xs = x if pol == "propagate" else x[~nan]
            try:
                want = ref.quantize(xs, f, tie=tie, saturate=sat, nan_policy=pol)
            except Exception as exc:  # e.g. tie='even' on a codebook whose neighbours share parity
                with pytest.raises(type(exc)):
                    impl.quantize(xs, f, tie=tie, saturate=sat, nan_policy=pol)
                continue
            got = impl.quantize(xs, f, tie=tie, saturate=sat, nan_policy=pol)
            if callable(getattr(impl, "last_path", None)):
                assert impl.last_path() == "device"
            what = f"{fmt}/{dtype}/{tie}/sat={sat}"
            assert_bits_equal(got, want, f"{what} codes")
            assert_bits_equal(impl.dequantize(got, f), ref.dequantize(want, f), f"{what} dequantize")
            checked += xs.size
            if not callable(getattr(impl, "code_histogram", None)):
                continue
            # The fused kernel's cell histogram: counts of the reference's indices, NaNs last.
            cb = f.codebook if sat else f.extended
            xn = xs[~np.isnan(xs.astype(np.float32))]
            want_h = np.bincount(nearest_index(xn, cb, tie).astype(np.int64), minlength=len(cb))
            assert_bits_equal(impl.code_histogram(xs, f, tie=tie, saturate=sat, nan_policy=pol),
                              np.append(want_h, xs.size - xn.size).astype(np.int64), f"{what} histogram")
    return checked
