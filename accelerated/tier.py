"""The tier functions: the reference's names and signatures, executed on the device where a kernel exists.

Each function calls the reference's ``prepare_*`` (every check, in the reference's order,
before any launch: bad input raises the reference's exception with no GPU) and executes
the plan on the device, or hands it to the reference's ``execute_*`` when no kernel covers
it; ``last_path()`` says which ran ("device" or "host:<a key of HOST_PATHS>").
"""

from __future__ import annotations

import threading

import numpy as np

import natprec.reference as ref
from natprec.reference.entropy import exact_floor_bins
from natprec.reference.errors import InvalidDTypeError, InvalidParameterError

from .census import census_pairs, host_reason
from .device import current_backend
from .plans import ABSMAX, KIND, NVFP4, bits_of, block_plan, device_ok, element_plan

__all__ = [
    "HOST_PATHS",
    "last_path",
    "quantize",
    "dequantize",
    "voronoi_margin",
    "min_voronoi_margin",
    "code_histogram",
    "realized_support",
    "support_size",
    "discretized_histogram",
    "injectivity_report",
    "entropy_bits_from_counts",
]

#: What this tier computes on the host with the reference, and why.
HOST_PATHS = {
    "float64 input": "no float64 kernels yet: the reference runs on the host",
    "block formats": "block-format dequantize and margins: the reference runs on the host (block quantize runs on the device)",
    "codebook": "codebooks with encodings >= 2**16 or |values| >= 2**1000: the reference runs on the host",
    "support of float32/float64": "support of float64 input, or of 2**32 or more float32 elements: the reference's sort on the host",
    "NaN result": "min_voronoi_margin with nan_policy='propagate' met a NaN: the result is NaN, nothing to launch",
    "census of 2**32 elements": "collision census of 2**32 or more elements (32-bit scans): the reference runs on the host",
    "census blocks": "collision census of a block format with blocks above 64 elements: the reference runs on the host",
    "entropy_bits_from_counts": "logs and entropies are the reference's functions by design",
}

_state = threading.local()


def last_path() -> str | None:
    """'device' or 'host:<reason>' — which path the last call in this thread took."""
    return getattr(_state, "path", None)


def _on_device() -> None:
    _state.path = "device"


def _host(reason: str, execute, plan):
    """The reference executes ``plan`` on the host; ``reason`` is a key of HOST_PATHS."""
    _state.path = f"host:{reason}"
    return execute(plan)


def _element_reason(f, arr: np.ndarray) -> str | None:
    """Why an element-format plan on ``arr`` stays on the host (a HOST_PATHS key), or None for the device."""
    if not isinstance(f, ref.ElementFormat):
        return "block formats"
    if arr.dtype not in KIND:
        return "float64 input"
    return None if device_ok(f) else "codebook"


def quantize(x, fmt, *, tie: str = "even", saturate: bool | None = None, nan_policy: str = "raise"):
    """DEF-QUANTIZE / DEF-FORMAT-ELEMENT — as ``natprec.reference.quantize``."""
    f = ref.resolve_format(fmt)  # prepare's first step: an unknown format raises here as there
    if not isinstance(f, ref.ElementFormat):
        return _block_quantize(ref.prepare_block_input(x, f, tie=tie, saturate=saturate, nan_policy=nan_policy))
    plan = ref.prepare_quantize(x, f, tie=tie, saturate=saturate, nan_policy=nan_policy)
    reason = _element_reason(plan.format, plan.x)
    if reason:
        return _host(reason, ref.execute_quantize, plan)
    arr, cd = plan.x, plan.format.code_dtype
    _on_device()
    if arr.size == 0:
        return np.zeros(arr.shape, dtype=cd)
    codes, _, _, _ = current_backend().quantize(KIND[arr.dtype], bits_of(arr), element_plan(plan), codes=True)
    return codes.astype(cd).reshape(arr.shape)


def _block_quantize(plan: ref.BlockInputPlan) -> ref.BlockQuantized:
    """DEF-FORMAT-BLOCK-ABSMAX / DEF-FORMAT-MX / DEF-FORMAT-NVFP4 / DEF-BLOCK-LAYOUT — scales and codes on the device from a
    checked input.  The last-axis layout is launched as (rows, last axis); the flat layout as one row of all n elements
    (its only partial block, the last, divided: ``BlockPlan.flat``), with ⌈n/B⌉ scales."""
    f, shape = plan.format, tuple(plan.shape)
    bp = block_plan(plan)
    if bp.flat or shape == ():
        rows, ncols = 1, int(plan.x32.size)
    else:
        rows, ncols = int(np.prod(shape[:-1], dtype=np.int64)), int(shape[-1])
    _on_device()
    codes, words, t3 = current_backend().block_quantize(plan.x32, rows, ncols, bp)
    nb = -(-ncols // bp.block)
    scales = words.view(np.float32) if bp.family == ABSMAX else words.astype(bp.scale_dtype)
    scales = scales.reshape((nb,) if bp.flat else shape[:-1] + (nb,) if shape else (1,))
    ts = np.float32(t3[1]) if bp.family == NVFP4 else None
    return ref.BlockQuantized(f.name, codes.astype(f.element.code_dtype).reshape(shape), scales, ts, shape, f.block_size,
                              f.layout)


def dequantize(q, fmt) -> np.ndarray:
    """DEF-QUANTIZE — as ``natprec.reference.dequantize`` (element formats: device gather)."""
    plan = ref.prepare_dequantize(q, fmt)
    if isinstance(plan, ref.BlockDequantizePlan):
        return _host("block formats", ref.execute_dequantize, plan)
    if plan.format.nbits > 16:
        return _host("codebook", ref.execute_dequantize, plan)
    c = plan.codes
    _on_device()
    if c.size == 0:
        return np.zeros(c.shape, dtype=np.float64)
    out = current_backend().dequantize(np.ascontiguousarray(c.reshape(-1).astype(np.uint32)), np.asarray(plan.table))
    return out.reshape(c.shape)


def voronoi_margin(x, fmt, *, tie: str = "even", nan_policy: str = "raise") -> np.ndarray:
    """DEF-MARGIN — as ``natprec.reference.voronoi_margin`` (element formats on the device)."""
    plan = ref.prepare_voronoi_margin(x, fmt, tie=tie, nan_policy=nan_policy)
    reason = _element_reason(plan.format, plan.x)
    if reason:
        return _host(reason, ref.execute_voronoi_margin, plan)
    arr = plan.x
    _on_device()
    if arr.size == 0:
        return np.zeros(arr.shape, dtype=np.float64)
    _, _, g, _ = current_backend().quantize(KIND[arr.dtype], bits_of(arr), element_plan(plan), codes=False, margin=True)
    return g.reshape(arr.shape)


def min_voronoi_margin(x, fmt, *, tie: str = "even", nan_policy: str = "raise") -> float:
    """DEF-MARGIN — as ``natprec.reference.min_voronoi_margin`` (element formats: device reduction)."""
    plan = ref.prepare_min_voronoi_margin(x, fmt, tie=tie, nan_policy=nan_policy)
    m = plan.margin
    if m is None:
        return _host("NaN result", ref.execute_min_voronoi_margin, plan)
    reason = _element_reason(m.format, m.x)
    if reason:
        return _host(reason, ref.execute_min_voronoi_margin, plan)
    _on_device()
    _, _, _, key = current_backend().quantize(KIND[m.x.dtype], bits_of(m.x), element_plan(m), codes=False, min_margin=True)
    return float(np.array([key], np.uint64).view(np.float64)[0])


def code_histogram(x, fmt, *, tie: str = "even", saturate: bool | None = None, nan_policy: str = "raise"):
    """(tier extra) counts per cell of the quantizing codebook, int64, plus the NaN count last.

    Cells are the codebook's indices (ascending values; with ``saturate=False`` the extended
    codebook: overflow cells first and last).  Validation as :func:`quantize`; float16,
    bfloat16 and float32 input only.
    """
    f = ref.resolve_format(fmt)
    if not isinstance(f, ref.ElementFormat):
        raise InvalidParameterError("code_histogram takes an element format or a Codebook", value=f.name)
    plan = ref.prepare_quantize(x, f, tie=tie, saturate=saturate, nan_policy=nan_policy)
    arr = plan.x
    if arr.dtype not in KIND:
        raise InvalidDTypeError(f"code_histogram runs on float16/bfloat16/float32; got {arr.dtype}", value=str(arr.dtype))
    kplan = element_plan(plan)
    _on_device()
    if arr.size == 0:
        return np.zeros(kplan.u.size + 2, np.int64)
    _, h, _, _ = current_backend().quantize(KIND[arr.dtype], bits_of(arr), kplan, codes=False, hist=True)
    return h.astype(np.int64)


def _support_counts(plan: ref.SupportPlan) -> np.ndarray:
    """Counts of every 16-bit key of the plan's elements (NaN handling is the plan's: ``omit`` dropped them)."""
    arr = plan.x
    _on_device()
    if arr.size == 0:
        return np.zeros(1 << 16, np.uint64)
    return current_backend().support16(KIND[arr.dtype], bits_of(arr), plan.by == "value", False)


def _support32(plan: ref.SupportPlan):
    """(distinct support keys in total order, counts) of a float32 plan: radix sort and runs on the device."""
    _on_device()
    return current_backend().support32(bits_of(plan.x), plan.by == "value")


def support_size(x, *, by: str = "value", nan_policy: str = "raise") -> int:
    """DEF-SUPPORT-VALUE / DEF-SUPPORT-BITS — as the reference (16-bit and float32 input on the device)."""
    plan = ref.prepare_support(x, by=by, nan_policy=nan_policy)
    if plan.x.dtype.itemsize == 4 and plan.x.size < (1 << 32):
        return int(_support32(plan)[0].size)
    if plan.x.dtype.itemsize != 2:
        return _host("support of float32/float64", ref.execute_support_size, plan)
    return int(np.count_nonzero(_support_counts(plan)))


def realized_support(x, *, by: str = "value", nan_policy: str = "raise") -> ref.Support:
    """DEF-SUPPORT-VALUE / DEF-SUPPORT-BITS — as the reference (16-bit and float32 input on the device)."""
    plan = ref.prepare_support(x, by=by, nan_policy=nan_policy)
    if plan.x.dtype.itemsize == 4 and plan.x.size < (1 << 32):
        keys, counts = _support32(plan)
        vals = ref.from_total_order_key(keys, plan.x.dtype)
        cnt = counts.astype(np.int64)
    elif plan.x.dtype.itemsize != 2:
        return _host("support of float32/float64", ref.execute_realized_support, plan)
    else:
        counts = _support_counts(plan)
        keys = np.flatnonzero(counts).astype(np.uint16)
        vals = ref.from_total_order_key(keys, plan.x.dtype)
        cnt = counts[keys].astype(np.int64)
    vals.flags.writeable = False
    cnt.flags.writeable = False
    return ref.Support(values=vals, counts=cnt, by=plan.by)


def discretized_histogram(x, delta: float, *, origin: float = 0.0, nan_policy: str = "raise") -> ref.Histogram:
    """DEF-HISTOGRAM — as the reference; bins on the device, near-integer quotients exactly on the host."""
    plan = ref.prepare_discretized_histogram(x, delta, origin=origin, nan_policy=nan_policy)
    arr, d, o = plan.x, plan.delta, plan.origin
    if arr.dtype not in KIND:
        return _host("float64 input", ref.execute_discretized_histogram, plan)
    _on_device()
    res = current_backend().hist_bins(KIND[arr.dtype], bits_of(arr), o, d)
    if res is None:  # the plan guarantees every quotient is finite and below 2**53
        raise RuntimeError("natprec.accelerated: the histogram kernel rejected a quotient the reference admitted")
    mode, lo, data, near_idx, k_near = res
    # Near-integer quotients: the reference's exact rational floor.
    exact = exact_floor_bins(arr[near_idx].astype(np.float64), o, d)
    if mode == "full":
        k = data.copy()
        k[near_idx] = exact
        k = np.sort(k)
        starts = np.flatnonzero(np.concatenate(([True], k[1:] != k[:-1])))
        counts = np.diff(np.append(starts, k.size)).astype(np.int64)
        return ref.Histogram(bins=k[starts], counts=counts, delta=d, origin=o)
    counts = data.astype(np.int64)
    moves = {}
    for kf, ke in zip(k_near.tolist(), exact.tolist()):
        if kf != ke:
            counts[kf - lo] -= 1
            moves[ke] = moves.get(ke, 0) + 1
    bins = lo + np.flatnonzero(counts).astype(np.int64)
    cnt = counts[counts != 0]
    if moves:
        allb = np.concatenate((bins, np.array(sorted(moves), np.int64)))
        allc = np.concatenate((cnt, np.array([moves[b] for b in sorted(moves)], np.int64)))
        order = np.argsort(allb, kind="stable")
        allb, allc = allb[order], allc[order]
        starts = np.flatnonzero(np.concatenate(([True], allb[1:] != allb[:-1])))
        bins, cnt = allb[starts], np.add.reduceat(allc, starts).astype(np.int64)
    return ref.Histogram(bins=bins.astype(np.int64), counts=cnt.astype(np.int64), delta=d, origin=o)


def injectivity_report(x, fmt, *, tie: str = "even", nan_policy: str = "raise", max_listed: int | None = ref.DEFAULT_MAX_LISTED):
    """DEF-COLLISION-CENSUS / DEF-CENSUS-PAIRS — as the reference; the (cell, value) pairs on the device (accelerated/census.py)."""
    plan = ref.prepare_injectivity(x, fmt, tie=tie, nan_policy=nan_policy, max_listed=max_listed)
    reason = host_reason(plan)
    if reason is not None:
        return _host(reason, ref.execute_injectivity, plan)
    if isinstance(plan.format, ref.ElementFormat):
        pairs = census_pairs(plan)
        _on_device()
        return ref.finish_census(plan, [pairs])
    q = _block_quantize(plan.block_input)
    pairs = census_pairs(plan, q)
    supp = support_size(plan.x)  # by value, on the device (x has no NaN here)
    _on_device()
    return ref.finish_census(plan, [pairs], support_size=supp, quantized=q)


def entropy_bits_from_counts(counts, **kw):
    """DEF-ENTROPY-DISCRETIZED — the reference's function (logs on the host by design)."""
    _state.path = "host:entropy_bits_from_counts"
    return ref.entropy_bits_from_counts(counts, **kw)
