"""Kernel parameters from the reference's plans (shared by the device and the host build).

The reference prepares (``natprec.reference.prepare_*``): every check, the thresholds and
the quantizing codebook.  This module only lays a prepared element-format plan out as the
arguments of the fused kernel (accelerated/kernels/quantize.cu).
"""

from __future__ import annotations

from dataclasses import dataclass

import ml_dtypes
import numpy as np

import natprec.reference as ref
from natprec.reference.codebook import exact_gaps

__all__ = ["KIND", "ElementPlan", "element_plan", "device_ok", "bits_of", "QBLOCK", "quantize_launch_config", "BlockPlan", "block_plan"]

#: input dtypes with kernels -> the `kind` argument of the kernels (NP_F16, NP_BF16, NP_F32)
KIND = {np.dtype(np.float16): 0, np.dtype(ml_dtypes.bfloat16): 1, np.dtype(np.float32): 2}


@dataclass(frozen=True)
class ElementPlan:
    """The fused kernel's arguments for one element format, tie rule, input dtype and saturation."""

    u: np.ndarray  # float32 thresholds of the quantizing codebook (base, or extended when not saturating)
    enc: np.ndarray  # uint16: that codebook's encodings cast to the format's code dtype
    flags: int  # bit 0: signed zero; bit 1: NaN code
    zero_code: int
    sign_code: int
    nan_code: int
    code_mask: int
    code_dtype: type
    mu: np.ndarray  # float32 thresholds of the base codebook (margins); `is u` when the same
    v: np.ndarray  # float64 base codebook values
    gaps: np.ndarray  # float64 exact gaps rounded once


def element_plan(plan: ref.QuantizePlan | ref.MarginPlan) -> ElementPlan:
    """Kernel parameters of a reference QuantizePlan or MarginPlan of an element format (thresholds exact in float32)."""
    f = plan.format
    cd = f.code_dtype
    base = f.codebook
    u = np.ascontiguousarray(plan.thresholds.astype(np.float32))
    mu = u if plan.codebook is base else np.ascontiguousarray(ref.thresholds(base, plan.tie, plan.x.dtype).astype(np.float32))
    flags = 0
    zero_code = sign_code = nan_code = 0
    if f.sign_bit is not None:
        sign_code = int(cd(1 << f.sign_bit))
    if f.signed_zero and f.zero_index >= 0:
        flags |= 1
        zero_code = int(cd(base.encodings[f.zero_index]))
    if f.nan_code is not None:
        flags |= 2
        nan_code = int(cd(f.nan_code))
    return ElementPlan(u=u, enc=np.ascontiguousarray(plan.codebook.encodings.astype(cd).astype(np.uint16)), flags=flags,
                       zero_code=zero_code, sign_code=sign_code, nan_code=nan_code, code_mask=int(np.iinfo(cd).max),
                       code_dtype=cd, mu=mu, v=np.ascontiguousarray(base.values, dtype=np.float64), gaps=exact_gaps(base))


def device_ok(f: ref.ElementFormat) -> bool:
    """Whether the kernels take this element format: at most 16 bits, encodings below 2**16, |values| below 2**1000."""
    cb = f.codebook
    return int(cb.encodings.max()) < (1 << 16) and float(np.max(np.abs(cb.values))) < 2.0**1000 and f.nbits <= 16


def bits_of(arr: np.ndarray) -> np.ndarray:
    """The raw bits of a float array, flattened (the kernels classify NaN, sign and value from them)."""
    return np.ascontiguousarray(arr).reshape(-1).view(np.dtype(f"u{arr.dtype.itemsize}"))


#: threads per block of the fused kernel (NP_QBLOCK in kernels/quantize.cu)
QBLOCK = 256
_CC, _TAB_SHARED, _HIST_THREAD_MAX, _HIST_WARP_MAX = 16, 2048, 32, 512  # the constants of quantize.cu
SHARED_LIMIT = 48 * 1024  # dynamic + static shared memory of one block, without opting in to more


def quantize_launch_config(plan: ElementPlan, hist: bool) -> tuple[int, int, int]:
    """(hist_mode, tab_shared, dynamic shared bytes) of the fused kernel, as quantize.cu lays its shared memory out.

    hist_mode: 0 none, 1 per-thread counters (nbins <= 32), 2 per-warp counters (nbins <= 512),
    3 global atomics.  tab_shared: thresholds and encodings copied into shared memory
    (at most 2048 thresholds).  Layout: [counters][u][mu when it differs from u][enc].
    """
    nu, nmu = int(plan.u.size), int(plan.mu.size)
    nbins = nu + 2
    if not hist:
        mode, words = 0, 0
    elif nbins <= _HIST_THREAD_MAX:
        mode, words = 1, nbins * QBLOCK
    elif nbins <= _HIST_WARP_MAX:
        mode, words = 2, nbins * (QBLOCK // 32)
    else:
        mode, words = 3, 0
    split = plan.mu is not plan.u
    tab = int(nu <= _TAB_SHARED and nmu <= _TAB_SHARED)
    nbytes = 4 * words + (4 * nu + (4 * nmu if split else 0) + 2 * (nu + 1) if tab else 0)
    return mode, tab, nbytes


#: block-format families (NP_BLOCK_* in kernels/natprec_scalar.cuh)
ABSMAX, MX_FLOOR, MX_RCEIL, NVFP4 = 0, 1, 2, 3


@dataclass(frozen=True)
class BlockPlan:
    """The block kernel's arguments (kernels/block.cu) for one block format and tie rule."""

    family: int
    block: int
    el: ElementPlan  # the element format's float32 thresholds, encodings and code rule
    u64: np.ndarray | None  # MX: the element thresholds in float64 (the scaled values are exact float64)
    emax_elem: int
    max_finite: float
    us: np.ndarray | None  # NVFP4: float32 thresholds of the E4M3 scale codebook (ties to even)
    encs: np.ndarray | None  # NVFP4: its encodings (uint16)
    vs: np.ndarray | None  # NVFP4: its values (float64, exact in float32)
    scale_dtype: np.dtype  # dtype of the stored scales: float32 (absmax) or the scale code dtype
    flat: bool = False  # DEF-BLOCK-LAYOUT layout="flat" (absmax): launched as one row, the partial last block divided


def block_plan(plan: ref.BlockInputPlan) -> BlockPlan:
    """Kernel parameters of a reference BlockInputPlan (every check passed; thresholds from the reference)."""
    f = plan.format
    el = element_plan(plan.element)
    u64 = None
    emax = 0
    mf = 0.0
    us = encs = vs = None
    if isinstance(f, ref.AbsmaxBlockFormat):
        fam, sdt = ABSMAX, np.dtype(np.float32)
    elif isinstance(f, ref.MXFormat):
        fam, sdt = (MX_FLOOR if f.scale_rule == "floor" else MX_RCEIL), np.dtype(np.uint8)
        u64 = np.ascontiguousarray(ref.thresholds(plan.element.codebook, plan.tie, np.float64), dtype=np.float64)
        emax, mf = int(f.emax_elem), float(f.element.max_finite)
    elif isinstance(f, ref.NVFP4Format):
        sf = f.scale_format
        fam, sdt = NVFP4, np.dtype(sf.code_dtype)
        us = np.ascontiguousarray(ref.thresholds(sf.codebook, "even", np.float32).astype(np.float32))
        encs = np.ascontiguousarray(sf.codebook.encodings.astype(np.uint16))
        vs = np.ascontiguousarray(sf.codebook.values, dtype=np.float64)
    else:  # pragma: no cover - the reference has no other block family
        raise TypeError(f"no block kernel for {type(f).__name__}")
    return BlockPlan(fam, int(f.block_size), el, u64, emax, mf, us, encs, vs, sdt, f.layout == "flat")
