"""natprec.accelerated — the GPU tier (CUDA kernels launched through PyCUDA).

NOT YET RUN ON A GPU: see accelerated/RESULTS.md.  What is verified without one: every
kernel compiles (accelerated/compile_kernels.sh, sm_80 and sm_90, warnings are errors),
the per-element arithmetic (kernels/natprec_scalar.cuh) matches the reference bit for bit
on the host, and this module's host logic (validation, kernel parameters, post-processing)
matches the reference when its launches are served by the host build of the same header
(tests/test_accelerated_host.py).

Importable with no driver: PyCUDA is imported lazily, inside functions.  The tier exposes
the reference's names and signatures; bad input raises the reference's exception types on
the host, before any launch (the reference's own validation functions are reused).
Integer results (codes, counts, bins, index searches) come from the device; logs and
entropies are the reference's functions on the host.

Device paths (float16, bfloat16 and float32 input):
  quantize / dequantize     element formats and Codebooks (fused kernel: codes + cell
                            histogram + margin + min margin in one pass)
  voronoi_margin, min_voronoi_margin   element formats and Codebooks
  realized_support, support_size       float16 and bfloat16 (65536-bin key count)
  discretized_histogram                bins on the device; quotients within 8 ulp of an
                                       integer are decided on the host with rationals
  code_histogram            (tier extra) cell counts of the fused kernel
Everything else — float64 input, block formats, the collision census, entropies — is the
reference on the host (``HOST_PATHS`` lists them; ``last_path()`` says which path ran).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import threading
from dataclasses import dataclass
from pathlib import Path

import ml_dtypes
import numpy as np

import natprec.reference as _ref
from natprec.reference import _domain as _dom
from natprec.reference import entropy as _ent
from natprec.reference import formats as _fmts
from natprec.reference import support as _sup
from natprec.reference.codebook import Codebook, exact_gaps, thresholds
from natprec.reference.errors import (
    EmptyInputError,
    InvalidDTypeError,
    InvalidParameterError,
    NaNInputError,
    NonFiniteInputError,
)

__all__ = [
    "gpu_available",
    "quantize",
    "dequantize",
    "voronoi_margin",
    "min_voronoi_margin",
    "realized_support",
    "support_size",
    "discretized_histogram",
    "code_histogram",
    "injectivity_report",
    "entropy_bits_from_counts",
    "HOST_PATHS",
    "KERNEL_DIR",
    "NVCC_OPTIONS",
    "last_path",
]

KERNEL_DIR = Path(__file__).resolve().parent / "kernels"
#: nvcc options of every kernel (the same as accelerated/compile_kernels.sh).
NVCC_OPTIONS = ["-std=c++17", "--fmad=false", "-ftz=false", "-prec-div=true", "-prec-sqrt=true"]

#: What this tier computes on the host with the reference, and why.
HOST_PATHS = {
    "float64 input": "no float64 kernels yet: the reference runs on the host",
    "block formats": "no block-format kernels yet (quantize, dequantize, margins): the reference runs on the host",
    "injectivity_report": "collision census: the reference runs on the host",
    "entropy_bits_from_counts": "logs and entropies are the reference's functions by design",
    "support of float32": "support of 32-bit input: the reference's sort on the host",
    "codebooks with encodings >= 2**16 or |values| >= 2**1000": "the reference runs on the host",
}

#: input dtypes with kernels -> the `kind` argument of the kernels (NP_F16, NP_BF16, NP_F32)
_KIND = {np.dtype(np.float16): 0, np.dtype(ml_dtypes.bfloat16): 1, np.dtype(np.float32): 2}

_state = threading.local()


def last_path() -> str | None:
    """'device' or 'host:<reason>' — which path the last call in this thread took."""
    return getattr(_state, "path", None)


def _set_path(p: str) -> None:
    _state.path = p


# ---------------------------------------------------------------------------------------
# Availability and the device backend (PyCUDA, imported lazily).
# ---------------------------------------------------------------------------------------


def gpu_available() -> tuple[bool, str]:
    """(True, device name) when PyCUDA imports and a CUDA device exists; else (False, why)."""
    if _override() is not None:
        return True, "host backend (test override)"
    if os.environ.get("NATPREC_ACCELERATED", "1") == "0":
        return False, "NATPREC_ACCELERATED=0"
    try:
        import pycuda.driver as drv
    except Exception as exc:  # no PyCUDA, or no libcuda
        return False, f"PyCUDA is not importable ({type(exc).__name__}: {exc}); the accelerated tier needs a CUDA GPU"
    try:
        drv.init()
        n = drv.Device.count()
    except Exception as exc:
        return False, f"CUDA driver unusable ({type(exc).__name__}: {exc})"
    if n == 0:
        return False, "no CUDA device"
    return True, drv.Device(0).name()


def _override():
    return _GLOBAL_OVERRIDE[0]


_GLOBAL_OVERRIDE = [None]


@contextlib.contextmanager
def use_backend(backend):
    """Serve launches with ``backend`` (tests: the host build of the kernels' header)."""
    prev = _GLOBAL_OVERRIDE[0]
    _GLOBAL_OVERRIDE[0] = backend
    try:
        yield backend
    finally:
        _GLOBAL_OVERRIDE[0] = prev


_DEVICE = [None]


def _backend():
    b = _override()
    if b is not None:
        return b
    if _DEVICE[0] is None:
        ok, why = gpu_available()
        if not ok:
            raise RuntimeError(f"natprec.accelerated: no GPU: {why}")
        _DEVICE[0] = _CudaBackend()
    return _DEVICE[0]


def _cdiv(a: int, b: int) -> int:
    return -(-a // b)


class _CudaBackend:
    """Kernel launches through PyCUDA.  Modules are compiled once per process."""

    BLOCK = 256

    def __init__(self):
        import pycuda.autoprimaryctx  # noqa: F401  (primary context: shares the GPU with torch/CuPy)
        import pycuda.driver as drv
        import pycuda.gpuarray as ga
        from pycuda.compiler import SourceModule

        self.drv, self.ga = drv, ga
        header = (KERNEL_DIR / "natprec_scalar.cuh").read_text()
        tag = hashlib.sha256(header.encode()).hexdigest()
        self.mods = {}
        for name in ("quantize", "dequantize", "support", "histogram"):
            src = f"// natprec_scalar.cuh sha256 {tag}\n" + (KERNEL_DIR / f"{name}.cu").read_text()
            self.mods[name] = SourceModule(src, options=list(NVCC_OPTIONS), include_dirs=[str(KERNEL_DIR)],
                                           no_extern_c=True)
        sig = "PqPqPIIIIIPPPqPPqPP"
        self.fq = {}
        for kind, name in ((0, "np_quantize_f16"), (1, "np_quantize_bf16"), (2, "np_quantize_f32")):
            f = self.mods["quantize"].get_function(name)
            f.prepare(sig)
            self.fq[kind] = f
        self.fdeq = self.mods["dequantize"].get_function("np_dequantize_gather")
        self.fdeq.prepare("PqPP")
        self.fsup = self.mods["support"].get_function("np_support16")
        self.fsup.prepare("PqiiiP")
        self.fhb = self.mods["histogram"].get_function("np_hist_bins")
        self.fhb.prepare("PiqddPPPPPP")
        self.fhc = self.mods["histogram"].get_function("np_hist_count")
        self.fhc.prepare("PqqP")
        self.sms = drv.Context.get_device().get_attribute(drv.device_attribute.MULTIPROCESSOR_COUNT)

    def _grid(self, n: int) -> tuple:
        g = max(min(_cdiv(max(n, 1), self.BLOCK), self.sms * 16), _cdiv(n, 1 << 30))
        return (min(g, 2**31 - 1), 1, 1)

    def _up(self, a: np.ndarray):
        a = np.ascontiguousarray(a)
        if a.size == 0:
            a = np.zeros(1, a.dtype)
        return self.ga.to_gpu(a)

    def device_plan(self, plan: ElementPlan) -> dict:
        """Upload an element plan's tables (thresholds, encodings, codebook values, gaps)."""
        d = {"u": self._up(plan.u), "enc": self._up(plan.enc), "v": self._up(plan.v), "gaps": self._up(plan.gaps)}
        d["mu"] = d["u"] if plan.mu is plan.u else self._up(plan.mu)
        return d

    def launch_quantize(self, kind, x_ptr, n, plan, dplan, codes_ptr=0, hist_ptr=0, margin_ptr=0, min_ptr=0):
        """One launch of the fused kernel on device pointers (0 = output not wanted)."""
        nbins = plan.u.size + 2
        shared = nbins * 4 if (hist_ptr and nbins <= 4096) else 0
        self.fq[kind].prepared_call(
            self._grid(n), (self.BLOCK, 1, 1),
            int(x_ptr), n, int(dplan["u"].gpudata), plan.u.size, int(dplan["enc"].gpudata), plan.flags,
            plan.zero_code, plan.sign_code, plan.nan_code, plan.code_mask, int(codes_ptr), int(hist_ptr),
            int(dplan["mu"].gpudata), plan.mu.size, int(dplan["v"].gpudata), int(dplan["gaps"].gpudata),
            plan.v.size, int(margin_ptr), int(min_ptr), shared_size=shared)

    def quantize(self, kind, xbits, plan, *, codes=True, hist=False, margin=False, min_margin=False):
        ga = self.ga
        n = xbits.size
        dx = self._up(xbits)
        dplan = self.device_plan(plan)
        dcodes = ga.empty(max(n, 1), np.uint16) if codes else None
        dhist = ga.zeros(plan.u.size + 2, np.uint64) if hist else None
        dmargin = ga.empty(max(n, 1), np.float64) if margin else None
        dmin = ga.to_gpu(np.array([np.iinfo(np.uint64).max], np.uint64)) if min_margin else None
        p = lambda a: 0 if a is None else int(a.gpudata)  # noqa: E731
        self.launch_quantize(kind, p(dx), n, plan, dplan, p(dcodes), p(dhist), p(dmargin), p(dmin))
        return (dcodes.get()[:n] if codes else None, dhist.get() if hist else None,
                dmargin.get()[:n] if margin else None, int(dmin.get()[0]) if min_margin else None)

    def launch_support16(self, kind, x_ptr, n, by_value, omit_nan, counts_ptr):
        self.fsup.prepared_call(self._grid(n), (self.BLOCK, 1, 1), int(x_ptr), n, kind, int(by_value),
                                int(omit_nan), int(counts_ptr))

    def dequantize(self, codes_u32, table):
        n = codes_u32.size
        dc, dt = self._up(codes_u32), self._up(table)
        out = self.ga.empty(max(n, 1), np.float64)
        self.fdeq.prepared_call(self._grid(n), (self.BLOCK, 1, 1), int(dc.gpudata), n, int(dt.gpudata),
                                int(out.gpudata))
        return out.get()[:n]

    def support16(self, kind, bits, by_value, omit_nan):
        n = bits.size
        dx = self._up(bits)
        counts = self.ga.zeros(1 << 16, np.uint64)
        self.launch_support16(kind, dx.gpudata, n, by_value, omit_nan, counts.gpudata)
        return counts.get()

    def hist_bins(self, kind, xbits, origin, delta):
        ga = self.ga
        n = xbits.size
        dx = self._up(xbits)
        dk = ga.empty(max(n, 1), np.int64)
        kmin = ga.to_gpu(np.array([np.iinfo(np.int64).max], np.int64))
        kmax = ga.to_gpu(np.array([np.iinfo(np.int64).min], np.int64))
        nnear = ga.zeros(1, np.uint64)
        near = ga.empty(max(n, 1), np.int64)
        nbad = ga.zeros(1, np.uint64)
        self.fhb.prepared_call(self._grid(n), (self.BLOCK, 1, 1), int(dx.gpudata), kind, n, float(origin),
                               float(delta), int(dk.gpudata), int(kmin.gpudata), int(kmax.gpudata),
                               int(nnear.gpudata), int(near.gpudata), int(nbad.gpudata))
        if int(nbad.get()[0]):
            return None
        lo, hi = int(kmin.get()[0]), int(kmax.get()[0])
        m = int(nnear.get()[0])
        near_idx = np.sort(near.get()[:m])
        if hi - lo < (1 << 24):
            counts = ga.zeros(hi - lo + 1, np.uint64)
            self.fhc.prepared_call(self._grid(n), (self.BLOCK, 1, 1), int(dk.gpudata), n, lo, int(counts.gpudata))
            k_near = dk.get()[near_idx] if m else np.zeros(0, np.int64)  # small: one gather on the host
            return "dense", lo, counts.get(), near_idx, k_near
        k = dk.get()[:n]
        return "full", lo, k, near_idx, k[near_idx]


# ---------------------------------------------------------------------------------------
# Kernel parameters of an element format (shared by the device and the host harness).
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ElementPlan:
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


def _codebook_arrays(cb: Codebook) -> tuple[np.ndarray, np.ndarray]:
    """Codebook values and the reference margin's exact gaps (cached there)."""
    return np.ascontiguousarray(cb.values, dtype=np.float64), exact_gaps(cb)


def element_plan(f: _fmts.ElementFormat, tie: str, dtype, saturate: bool = True) -> ElementPlan:
    """Kernel parameters for element format ``f``; raises the reference's tie/codebook errors."""
    dt = _dom.layout_of(dtype).dtype
    cd = f.code_dtype
    base = f.codebook
    q_cb = base if saturate else f._extended
    mu = np.ascontiguousarray(thresholds(base, tie, dt).astype(np.float32))
    u = mu if q_cb is base else np.ascontiguousarray(thresholds(q_cb, tie, dt).astype(np.float32))
    enc = q_cb.encodings.astype(cd).astype(np.uint16)
    flags = 0
    zero_code = sign_code = nan_code = 0
    if f.sign_bit is not None:
        sign_code = int(cd(1 << f.sign_bit))
    if f.signed_zero and f._zero_index >= 0:
        flags |= 1
        zero_code = int(cd(base.encodings[f._zero_index]))
    if f.nan_code is not None:
        flags |= 2
        nan_code = int(cd(f.nan_code))
    return ElementPlan(u=u, enc=np.ascontiguousarray(enc), flags=flags, zero_code=zero_code, sign_code=sign_code,
                       nan_code=nan_code, code_mask=int(np.iinfo(cd).max), code_dtype=cd, mu=mu,
                       v=_codebook_arrays(base)[0], gaps=_codebook_arrays(base)[1])


def _bits_of(arr: np.ndarray) -> np.ndarray:
    lay = _dom.layout_of(arr.dtype)
    return np.ascontiguousarray(arr).reshape(-1).view(lay.uint)


def _device_ok_codebook(f) -> bool:
    cb = f.codebook
    return int(cb.encodings.max()) < (1 << 16) and float(np.max(np.abs(cb.values))) < 2.0**1000 and f.nbits <= 16


# ---------------------------------------------------------------------------------------
# The tier functions.
# ---------------------------------------------------------------------------------------


def quantize(x, fmt, *, tie: str = "even", saturate: bool | None = None, nan_policy: str = "raise"):
    """DEF-QUANTIZE / DEF-FORMAT-ELEMENT — as ``natprec.reference.quantize``."""
    f = _fmts._resolve(fmt)
    if not isinstance(f, _fmts.ElementFormat):
        _set_path("host:block formats")
        return _ref.quantize(x, f, tie=tie, saturate=saturate, nan_policy=nan_policy)
    # The reference's checks, in the reference's order (ElementFormat.quantize), before any launch.
    _dom.check_nan_policy(nan_policy, ("raise", "propagate"))
    _dom.assert_subnormals_survive()
    arr = _dom.as_float_array(x)
    sat = f.default_saturate if saturate is None else bool(saturate)
    if arr.dtype not in _KIND or not _device_ok_codebook(f):
        _set_path("host:float64 input" if arr.dtype not in _KIND else "host:codebook")
        return f.quantize(arr, tie=tie, saturate=saturate, nan_policy=nan_policy)
    if not sat and f._extended is None:
        return f.quantize(arr, tie=tie, saturate=saturate, nan_policy=nan_policy)  # raises InvalidParameterError
    nan = _dom.nan_mask(arr)
    if nan_policy == "raise":
        _dom.raise_on_nan(arr, "x", nan)
    elif nan.any() and f.nan_code is None:
        raise NaNInputError(
            f"format {f.name} has no NaN encoding, so nan_policy='propagate' cannot keep the NaNs of x",
            value=int(np.flatnonzero(nan.ravel())[0]),
        )
    plan = element_plan(f, tie, arr.dtype, sat)  # tie / parity errors (the reference's) before launch
    _set_path("device")
    if arr.size == 0:
        return np.zeros(arr.shape, dtype=f.code_dtype)
    codes, _, _, _ = _backend().quantize(_KIND[arr.dtype], _bits_of(arr), plan, codes=True)
    return codes.astype(f.code_dtype).reshape(arr.shape)


def dequantize(q, fmt) -> np.ndarray:
    """DEF-QUANTIZE — as ``natprec.reference.dequantize`` (element formats: device gather)."""
    f = _fmts._resolve(fmt)
    if not isinstance(f, _fmts.ElementFormat) or f.nbits > 16:
        _set_path("host:block formats")
        return _ref.dequantize(q, f)
    if isinstance(q, _fmts.BlockQuantized):
        raise InvalidParameterError("a BlockQuantized needs its block format", value=q.format)
    c = np.asarray(q)
    # ElementFormat.dequantize's checks (same order, same exceptions), then the gather.
    if c.dtype.kind not in "iu":
        raise InvalidDTypeError(f"codes must be integers; got {c.dtype}", value=str(c.dtype))
    if c.size and (c.min() < 0 or c.max() >= (1 << f.nbits) or not f._valid[c.astype(np.int64)].all()):
        return f.dequantize(c)  # raises the reference's InvalidParameterError with its message
    _set_path("device")
    if c.size == 0:
        return np.zeros(c.shape, dtype=np.float64)
    out = _backend().dequantize(np.ascontiguousarray(c.reshape(-1).astype(np.uint32)), np.asarray(f._decode))
    return out.reshape(c.shape)


def _margin_setup(x, fmt, tie, nan_policy):
    """Reference voronoi_margin's checks; returns (f, arr, nan) or None for the host path."""
    _dom.check_nan_policy(nan_policy, ("raise", "propagate"))
    f = _fmts._resolve(fmt)
    if not isinstance(f, _fmts.ElementFormat):
        return None
    arr = _dom.as_float_array(x)
    nan = _dom.nan_mask(arr)
    if nan_policy == "raise":
        _dom.raise_on_nan(arr, "x", nan)
    if arr.dtype not in _KIND or not _device_ok_codebook(f):
        return None
    return f, arr, nan


def voronoi_margin(x, fmt, *, tie: str = "even", nan_policy: str = "raise") -> np.ndarray:
    """DEF-MARGIN — as ``natprec.reference.voronoi_margin`` (element formats on the device)."""
    s = _margin_setup(x, fmt, tie, nan_policy)
    if s is None:
        _set_path("host:block formats or float64 input")
        return _ref.voronoi_margin(x, fmt, tie=tie, nan_policy=nan_policy)
    f, arr, _ = s
    plan = element_plan(f, tie, arr.dtype, True)
    _set_path("device")
    if arr.size == 0:
        return np.zeros(arr.shape, dtype=np.float64)
    _, _, g, _ = _backend().quantize(_KIND[arr.dtype], _bits_of(arr), plan, codes=False, margin=True)
    return g.reshape(arr.shape)


def min_voronoi_margin(x, fmt, *, tie: str = "even", nan_policy: str = "raise") -> float:
    """DEF-MARGIN — as ``natprec.reference.min_voronoi_margin`` (element formats: device reduction)."""
    # The reference's order: policy, omit (always flattens) / propagate, non-empty, then
    # voronoi_margin's checks (format, NaN under 'raise'), all before any launch.
    _dom.check_nan_policy(nan_policy)
    arr = _dom.as_float_array(x)
    nan = _dom.nan_mask(arr)
    if nan_policy == "omit":
        arr = arr[~nan]
    elif nan.any() and nan_policy == "propagate":
        return float("nan")
    _dom.require_nonempty(arr, "x")
    f = _fmts._resolve(fmt)
    if not isinstance(f, _fmts.ElementFormat) or arr.dtype not in _KIND or not _device_ok_codebook(f):
        _set_path("host:block formats or float64 input")
        return _ref.min_voronoi_margin(x, fmt, tie=tie, nan_policy=nan_policy)
    _dom.raise_on_nan(arr, "x")
    plan = element_plan(f, tie, arr.dtype, True)
    _set_path("device")
    _, _, _, key = _backend().quantize(_KIND[arr.dtype], _bits_of(arr), plan, codes=False, min_margin=True)
    return float(np.array([key], np.uint64).view(np.float64)[0])


def code_histogram(x, fmt, *, tie: str = "even", saturate: bool | None = None, nan_policy: str = "raise"):
    """(tier extra) counts per cell of the quantizing codebook, int64, plus the NaN count last.

    Cells are the codebook's indices (ascending values; with ``saturate=False`` the extended
    codebook: overflow cells first and last).  Validation as :func:`quantize`.
    """
    f = _fmts._resolve(fmt)
    if not isinstance(f, _fmts.ElementFormat):
        raise InvalidParameterError("code_histogram takes an element format or a Codebook", value=getattr(f, "name", f))
    _dom.check_nan_policy(nan_policy, ("raise", "propagate"))
    arr = _dom.as_float_array(x)
    sat = f.default_saturate if saturate is None else bool(saturate)
    if not sat and f._extended is None:
        raise InvalidParameterError(f"format {f.name} can only saturate", value=saturate)
    if nan_policy == "raise":
        _dom.raise_on_nan(arr, "x")
    if arr.dtype not in _KIND:
        raise InvalidDTypeError(f"code_histogram runs on float16/bfloat16/float32; got {arr.dtype}", value=str(arr.dtype))
    plan = element_plan(f, tie, arr.dtype, sat)
    _set_path("device")
    if arr.size == 0:
        return np.zeros(plan.u.size + 2, np.int64)
    _, h, _, _ = _backend().quantize(_KIND[arr.dtype], _bits_of(arr), plan, codes=False, hist=True)
    return h.astype(np.int64)


def _support16(x, by, nan_policy):
    """Reference support._prepare's checks; None for the host path, else (lay, counts)."""
    if by not in ("value", "bits"):
        raise InvalidParameterError(f"by must be 'value' or 'bits'; got {by!r}", value=by)
    _dom.check_nan_policy(nan_policy)
    arr = _dom.as_float_array(x).ravel()
    lay = _dom.layout_of(arr.dtype)
    if lay.nbits != 16:
        return None
    nan = _dom.nan_mask(arr)
    if nan_policy == "raise":
        _dom.raise_on_nan(arr, "x", nan)
    _set_path("device")
    if arr.size == 0:
        return lay, np.zeros(1 << 16, np.uint64)
    counts = _backend().support16(_KIND[arr.dtype], _bits_of(arr), by == "value", nan_policy == "omit")
    return lay, counts


def support_size(x, *, by: str = "value", nan_policy: str = "raise") -> int:
    """DEF-SUPPORT-VALUE / DEF-SUPPORT-BITS — as the reference (16-bit input on the device)."""
    s = _support16(x, by, nan_policy)
    if s is None:
        _set_path("host:support of float32")
        return _ref.support_size(x, by=by, nan_policy=nan_policy)
    return int(np.count_nonzero(s[1]))


def realized_support(x, *, by: str = "value", nan_policy: str = "raise") -> _sup.Support:
    """DEF-SUPPORT-VALUE / DEF-SUPPORT-BITS — as the reference (16-bit input on the device)."""
    s = _support16(x, by, nan_policy)
    if s is None:
        _set_path("host:support of float32")
        return _ref.realized_support(x, by=by, nan_policy=nan_policy)
    lay, counts = s
    keys = np.flatnonzero(counts).astype(lay.uint)
    vals = _dom.from_total_order_key(keys, lay.dtype)
    cnt = counts[keys].astype(np.int64)
    vals.flags.writeable = False
    cnt.flags.writeable = False
    return _sup.Support(values=vals, counts=cnt, by=by)


def discretized_histogram(x, delta: float, *, origin: float = 0.0, nan_policy: str = "raise") -> _ent.Histogram:
    """DEF-HISTOGRAM — as the reference; bins on the device, near-integer quotients exactly on the host."""
    d = _ent._positive_finite("delta", delta)
    o = float(origin)
    if not np.isfinite(o):
        raise InvalidParameterError(f"origin must be finite; got {origin!r}", value=origin)
    _dom.check_nan_policy(nan_policy, ("raise", "omit"))
    arr = _dom.as_float_array(x).ravel()
    if arr.dtype not in _KIND:
        _set_path("host:float64 input")
        return _ref.discretized_histogram(x, delta, origin=origin, nan_policy=nan_policy)
    nan = _dom.nan_mask(arr)
    if nan_policy == "raise":
        _dom.raise_on_nan(arr, "x", nan)
    elif nan.any():
        arr = arr[~nan]
    if arr.size == 0:
        raise EmptyInputError("histogram of an empty input (after nan_policy) is undefined", value=0)
    bits = _bits_of(arr)
    lay = _dom.layout_of(arr.dtype)
    inf = (bits & lay.uint(lay.abs_mask)) == lay.uint(lay.inf_bits)
    if inf.any():
        i = int(np.flatnonzero(inf)[0])
        v = float(arr[i])
        raise NonFiniteInputError(f"x has an infinite value {v!r} at index {i}; it has no bin", value=v)
    _set_path("device")
    res = _backend().hist_bins(_KIND[arr.dtype], bits, o, d)
    if res is None:
        raise InvalidParameterError(
            f"bin width {d!r} is too small for these values: bin indices reach 2**53 or overflow", value=d
        )
    mode, lo, data, near_idx, k_near = res
    # Near-integer quotients: the reference's exact rational floor.
    moves = {}
    exact = _ent.exact_floor_bins(arr[near_idx].astype(np.float64), o, d)
    if mode == "full":
        k = data.copy()
        k[near_idx] = exact
        k = np.sort(k)
        starts = np.flatnonzero(np.concatenate(([True], k[1:] != k[:-1])))
        counts = np.diff(np.append(starts, k.size)).astype(np.int64)
        return _ent.Histogram(bins=k[starts], counts=counts, delta=d, origin=o)
    counts = data.astype(np.int64)
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
    return _ent.Histogram(bins=bins.astype(np.int64), counts=cnt.astype(np.int64), delta=d, origin=o)


def injectivity_report(x, fmt, **kw):
    """DEF-COLLISION-CENSUS — the reference's census on the host (no census kernel yet)."""
    _set_path("host:injectivity_report")
    return _ref.injectivity_report(x, fmt, **kw)


def entropy_bits_from_counts(counts, **kw):
    """DEF-ENTROPY-DISCRETIZED — the reference's function (logs on the host by design)."""
    _set_path("host:entropy_bits_from_counts")
    return _ref.entropy_bits_from_counts(counts, **kw)


# ---------------------------------------------------------------------------------------
# Host backend: the same launches served by the g++ build of natprec_scalar.cuh
# (accelerated/host_harness.cpp).  Used by tests/test_accelerated_host.py.
# ---------------------------------------------------------------------------------------


def build_host_library(out_dir, cxx: str = "g++") -> Path:
    """Compile accelerated/host_harness.cpp into ``out_dir``; returns the shared library's path."""
    import subprocess

    here = Path(__file__).resolve().parent
    lib = Path(out_dir) / "libnatprec_host.so"
    cmd = [cxx, "-std=c++17", "-O2", "-ffp-contract=off", "-fno-fast-math", "-Wall", "-Wextra", "-Werror",
           "-shared", "-fPIC", "-I", str(KERNEL_DIR), str(here / "host_harness.cpp"), "-o", str(lib)]
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    return lib


class HostBackend:
    """Serves the tier's launches with the host build of the kernels' header (serial loops)."""

    def __init__(self, lib_path):
        import ctypes as C

        self.C = C
        self.lib = C.CDLL(str(lib_path))
        P, q, u32, i, d = C.c_void_p, C.c_int64, C.c_uint32, C.c_int, C.c_double
        self.lib.hh_quantize.argtypes = [i, P, q, P, q, P, u32, u32, u32, u32, u32, P, P, P, q, P, P, q, P, P]
        self.lib.hh_quantize.restype = None
        self.lib.hh_to_f32.argtypes = [i, P, q, P]
        self.lib.hh_margin_f64.argtypes = [P, q, P, q, P, P, q, P]
        self.lib.hh_sum3.argtypes = [d, d, d]
        self.lib.hh_sum3.restype = d
        self.lib.hh_support16.argtypes = [P, q, i, i, i, P]
        self.lib.hh_hist_bins.argtypes = [i, P, q, d, d, P, P]

    @staticmethod
    def _p(a):
        return None if a is None else a.ctypes.data

    def quantize(self, kind, xbits, plan, *, codes=True, hist=False, margin=False, min_margin=False):
        n = xbits.size
        xb = np.ascontiguousarray(xbits)
        c = np.empty(n, np.uint16) if codes else None
        h = np.zeros(plan.u.size + 2, np.uint64) if hist else None
        g = np.empty(n, np.float64) if margin else None
        mk = np.array([np.iinfo(np.uint64).max], np.uint64) if min_margin else None
        mu_ptr = plan.u.ctypes.data if plan.mu is plan.u else plan.mu.ctypes.data
        self.lib.hh_quantize(kind, xb.ctypes.data, n, plan.u.ctypes.data, plan.u.size, plan.enc.ctypes.data,
                             plan.flags, plan.zero_code, plan.sign_code, plan.nan_code, plan.code_mask,
                             self._p(c), self._p(h), mu_ptr, plan.mu.size, plan.v.ctypes.data,
                             plan.gaps.ctypes.data if plan.gaps.size else None, plan.v.size, self._p(g), self._p(mk))
        return c, h, g, (int(mk[0]) if min_margin else None)

    def dequantize(self, codes_u32, table):
        return np.asarray(table, dtype=np.float64)[codes_u32]  # a gather has no arithmetic to test

    def support16(self, kind, bits, by_value, omit_nan):
        counts = np.zeros(1 << 16, np.uint64)
        b = np.ascontiguousarray(bits)
        self.lib.hh_support16(b.ctypes.data, b.size, kind, int(by_value), int(omit_nan), counts.ctypes.data)
        return counts

    def hist_bins(self, kind, xbits, origin, delta):
        n = xbits.size
        xb = np.ascontiguousarray(xbits)
        k = np.empty(n, np.int64)
        st = np.empty(n, np.int32)
        self.lib.hh_hist_bins(kind, xb.ctypes.data, n, origin, delta, k.ctypes.data, st.ctypes.data)
        if (st == 2).any():
            return None
        near_idx = np.flatnonzero(st == 1)
        lo, hi = int(k.min()), int(k.max())
        if hi - lo < (1 << 24):
            counts = np.bincount(k - lo, minlength=hi - lo + 1).astype(np.uint64)
            return "dense", lo, counts, near_idx, k[near_idx]
        return "full", lo, k, near_idx, k[near_idx]
