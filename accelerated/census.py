"""DEF-COLLISION-CENSUS / DEF-CENSUS-PAIRS on the accelerated tier: the (cell, value) pairs on the device, the report by the reference.

The tier's ``injectivity_report`` (accelerated/tier.py) prepares with ``natprec.reference.prepare_injectivity`` (every check, in
the reference's order, before any launch), computes the CellPairs of the plan on the device and
hands them to ``natprec.reference.finish_census``, which makes δ, the counts, the verdicts and
the listing.  So the report is the reference's by construction wherever the pairs are.

* Element formats and Codebooks (the quantizer is monotone: a cell is a range of the sorted
  values): the realized support by value on the device (the 16-bit count kernel, or the float32
  radix sort), then the support's values quantized by the element kernel (saturating, the plan's
  tie rule).  The support by value gives 0 as +0.0, which is quantized as +0.0, as the reference.
* Block formats: the block kernel's codes, then kernels/census.cu: each block sorted in place by
  (encoding << 32 | value key), the encoding of an element equal to 0 without its sign bit, runs
  flagged, scanned and compacted into (cell id, value key, first position); |supp| by the tier's
  support kernels; the listed codewords decoded with the device's scales.

Host paths (``last_path()``): float64 input, codebooks the kernels do not take, 2**32 or more
elements, block sizes above NP_CENSUS_SEG (64).
"""

from __future__ import annotations

import numpy as np

import natprec.reference as ref

from .device import current_backend
from .plans import KIND, bits_of, device_ok, element_plan

__all__ = ["CENSUS_SEG", "host_reason", "census_pairs"]

#: the largest block the census kernel sorts (NP_CENSUS_SEG in kernels/natprec_scalar.cuh)
CENSUS_SEG = 64


def host_reason(plan: ref.InjectivityPlan) -> str | None:
    """Why a census plan stays on the host (a key of tier.HOST_PATHS), or None for the device."""
    f, arr = plan.format, plan.x
    if arr.dtype not in KIND:
        return "float64 input"
    if arr.size >= (1 << 32):
        return "census of 2**32 elements"
    if isinstance(f, ref.ElementFormat):
        return None if device_ok(f) else "codebook"
    return None if f.block_size <= CENSUS_SEG else "census blocks"


def _element_pairs(plan: ref.InjectivityPlan) -> ref.CellPairs:
    """DEF-CENSUS-PAIRS of an element format: support by value on the device, its values' saturating codes on the device."""
    arr, be = plan.x, current_backend()
    if arr.dtype.itemsize == 2:
        counts = be.support16(KIND[arr.dtype], bits_of(arr), True, False)
        keys = np.flatnonzero(counts).astype(np.uint16)
        cnt = counts[keys]
    else:
        keys, cnt = be.support32(bits_of(arr), True)
    values = ref.from_total_order_key(keys, arr.dtype)  # ascending by value; 0 is +0.0
    codes, _, _, _ = be.quantize(KIND[arr.dtype], bits_of(values), element_plan(plan.element), codes=True)
    cells = codes.astype(plan.format.code_dtype).astype(np.int64)
    return ref.CellPairs(cells, values, cnt.astype(np.int64))


def _block_pairs(plan: ref.InjectivityPlan, q: ref.BlockQuantized) -> ref.CellPairs:
    """DEF-CENSUS-PAIRS of a block format from its device codes ``q``: the census kernels' pairs."""
    f, arr = plan.format, plan.x
    el = f.element
    rows, ncols = arr.size // arr.shape[-1], arr.shape[-1]
    zero_sign = (1 << el.sign_bit) if el.signed_zero and el.zero_index >= 0 else 0
    x32 = np.ascontiguousarray(plan.block_input.x32.reshape(-1), dtype=np.float32)
    cells, vkeys, starts = current_backend().census_blocks(
        x32.view(np.uint32), np.ascontiguousarray(q.codes.reshape(-1).astype(np.uint16)), rows, ncols, f.block_size,
        zero_sign, el.nbits)
    counts = np.diff(np.append(starts, arr.size)).astype(np.int64)
    values = ref.from_total_order_key(vkeys, np.float32).astype(arr.dtype)  # exact: every value came from x
    return ref.CellPairs(cells.astype(np.int64, copy=False), values, counts)


def census_pairs(plan: ref.InjectivityPlan, q: ref.BlockQuantized | None = None) -> ref.CellPairs:
    """DEF-CENSUS-PAIRS — the device's (cell, value) pairs of a plan the device takes (one batch, cells ascending).

    ``q``: for a block format, its quantization by the device (``natprec.accelerated.quantize``), required.
    """
    reason = host_reason(plan)
    if reason is not None:
        raise ref.InvalidParameterError(f"census_pairs: this plan runs on the host ({reason})", value=reason)
    if isinstance(plan.format, ref.ElementFormat):
        return _element_pairs(plan)
    if not isinstance(q, ref.BlockQuantized):
        raise ref.InvalidParameterError("census_pairs of a block format needs its BlockQuantized q", value=type(q).__name__)
    return _block_pairs(plan, q)
