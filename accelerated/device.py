"""The device backend: CUDA kernels launched through PyCUDA, and the choice of backend that serves launches.

Importable with no driver: PyCUDA is imported inside functions.  ``use_backend`` serves
launches with another backend (tests: the host build of the kernels' header,
:class:`natprec.accelerated.host.HostBackend`); otherwise the first launch compiles the
kernels for the first CUDA device.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from pathlib import Path

import numpy as np

from .plans import QBLOCK, ElementPlan, quantize_launch_config

__all__ = [
    "KERNEL_DIR",
    "NVCC_OPTIONS",
    "gpu_available",
    "backend_override",
    "use_backend",
    "current_backend",
    "CudaBackend",
]

KERNEL_DIR = Path(__file__).resolve().parent / "kernels"
#: nvcc options of every kernel (the same as accelerated/compile_kernels.sh).
NVCC_OPTIONS = ["-std=c++17", "--fmad=false", "-ftz=false", "-prec-div=true", "-prec-sqrt=true"]

#: keys per pass of the support kernel (NP_SUPPORT_PASS in kernels/natprec_scalar.cuh)
SUPPORT_PASS = 32768

_OVERRIDE = [None]  # process-wide, not per thread: use_backend's backend
_DEVICE = [None]


def backend_override():
    """The backend ``use_backend`` installed (process-wide), or None."""
    return _OVERRIDE[0]


@contextlib.contextmanager
def use_backend(backend):
    """Serve launches with ``backend`` (tests: the host build of the kernels' header)."""
    prev = _OVERRIDE[0]
    _OVERRIDE[0] = backend
    try:
        yield backend
    finally:
        _OVERRIDE[0] = prev


def gpu_available() -> tuple[bool, str]:
    """(True, device name) when PyCUDA imports and a CUDA device exists; else (False, why)."""
    if backend_override() is not None:
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


def current_backend():
    """The backend that serves launches: ``use_backend``'s, else the CUDA device (RuntimeError without one)."""
    b = backend_override()
    if b is not None:
        return b
    if _DEVICE[0] is None:
        ok, why = gpu_available()
        if not ok:
            raise RuntimeError(f"natprec.accelerated: no GPU: {why}")
        _DEVICE[0] = CudaBackend()
    return _DEVICE[0]


def _cdiv(a: int, b: int) -> int:
    return -(-a // b)


class CudaBackend:
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
        for name in ("quantize", "dequantize", "support", "histogram", "block", "sort", "census"):
            src = f"// natprec_scalar.cuh sha256 {tag}\n" + (KERNEL_DIR / f"{name}.cu").read_text()
            self.mods[name] = SourceModule(src, options=list(NVCC_OPTIONS), include_dirs=[str(KERNEL_DIR)],
                                           no_extern_c=True)
        sig = "PqPqPIIIIIPPPqPPqPPii"
        self.fq = {}  # (kind, with margins) -> kernel
        for kind, name in ((0, "f16"), (1, "bf16"), (2, "f32")):
            for with_margin, stem in ((True, "np_quantize_"), (False, "np_quantize_codes_")):
                f = self.mods["quantize"].get_function(stem + name)
                f.prepare(sig)
                self.fq[kind, with_margin] = f
        self.fdeq = self.mods["dequantize"].get_function("np_dequantize_gather")
        self.fdeq.prepare("PqPP")
        self.fsup = self.mods["support"].get_function("np_support16_pass")
        self.fsup.prepare("PqiiiIP")
        self.fsup.set_attribute(drv.function_attribute.MAX_DYNAMIC_SHARED_SIZE_BYTES, SUPPORT_PASS * 4)
        self.fsupr = self.mods["support"].get_function("np_support16_reduce")
        self.fsupr.prepare("PiIP")
        self._partial = None
        self.fblk = self.mods["block"].get_function("np_block_quantize32")
        self.fblk.prepare("PiqqqiiPqPPIIIIIidPqPPPPP")
        self.famax = self.mods["block"].get_function("np_tensor_amax")
        self.famax.prepare("PiqP")
        self.fnv = self.mods["block"].get_function("np_nvfp4_scales")
        self.fnv.prepare("PP")
        srt = self.mods["sort"]
        self.fkey32 = srt.get_function("np_support_keys32")
        self.fkey32.prepare("PqiP")
        self.fcount = srt.get_function("np_radix_count")
        self.fcount.prepare("PqiqP")
        self.fscatter = srt.get_function("np_radix_scatter")
        self.fscatter.prepare("PqiqPP")
        self.fheads = srt.get_function("np_run_heads")
        self.fheads.prepare("PqP")
        self.fcompact = srt.get_function("np_run_compact")
        self.fcompact.prepare("PqPPPP")
        cen = self.mods["census"]
        self.fcblocks = cen.get_function("np_census_blocks")
        self.fcblocks.prepare("PPqqqIPP")
        self.fccompact = cen.get_function("np_census_compact")
        self.fccompact.prepare("PqPPqqiPPP")
        from pycuda.scan import ExclusiveScanKernel

        self.scan32 = ExclusiveScanKernel(np.uint32, "a+b", 0)
        self.fhb = self.mods["histogram"].get_function("np_hist_bins")
        self.fhb.prepare("PiqddPPPPPP")
        self.fhc = self.mods["histogram"].get_function("np_hist_count")
        self.fhc.prepare("PqqP")
        self.sms = drv.Context.get_device().get_attribute(drv.device_attribute.MULTIPROCESSOR_COUNT)

    def _grid(self, n: int, block: int = BLOCK) -> tuple:
        """Blocks for n work items of grid-stride loops: enough to fill the device (16 per SM), no more."""
        g = max(min(_cdiv(max(n, 1), block), self.sms * 16), _cdiv(n, 1 << 30))
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
        mode, tab, shared = quantize_launch_config(plan, bool(hist_ptr))
        vec = 4 if kind == 2 else 8  # elements per 16-byte load
        self.fq[kind, bool(margin_ptr or min_ptr)].prepared_call(
            self._grid(_cdiv(max(n, 1), vec), QBLOCK), (QBLOCK, 1, 1),
            int(x_ptr), n, int(dplan["u"].gpudata), plan.u.size, int(dplan["enc"].gpudata), plan.flags,
            plan.zero_code, plan.sign_code, plan.nan_code, plan.code_mask, int(codes_ptr), int(hist_ptr),
            int(dplan["mu"].gpudata), plan.mu.size, int(dplan["v"].gpudata), int(dplan["gaps"].gpudata),
            plan.v.size, int(margin_ptr), int(min_ptr), mode, tab, shared_size=shared)

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
        """counts[65536] += the key counts of n 16-bit elements: two passes of 32768 keys, then the row sums."""
        rows = max(self.sms, _cdiv(n, 1 << 31))  # one block per SM; no block counts 2**32 elements
        if self._partial is None or self._partial.size < rows * SUPPORT_PASS:
            self._partial = self.ga.empty(rows * SUPPORT_PASS, np.uint32)
        for base in (0, SUPPORT_PASS):
            self.fsup.prepared_call((rows, 1, 1), (1024, 1, 1), int(x_ptr), n, kind, int(by_value), int(omit_nan),
                                    base, int(self._partial.gpudata), shared_size=SUPPORT_PASS * 4)
            self.fsupr.prepared_call((SUPPORT_PASS // 256, 1, 1), (256, 1, 1), int(self._partial.gpudata), rows,
                                     base, int(counts_ptr))

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

    def block_quantize(self, x32, rows, ncols, bp):
        """Codes (uint16, flat), scales (uint32 words, one per block) and the NVFP4 tensor3 (or None)."""
        ga = self.ga
        x = np.ascontiguousarray(x32.reshape(-1).view(np.uint32))
        n = x.size
        total = rows * (-(-ncols // bp.block))
        dx = self._up(x)
        dcodes = ga.zeros(max(n, 1), np.uint16)
        dscales = ga.zeros(max(total, 1), np.uint32)
        dt3 = None
        if bp.family == 3:
            damax = ga.zeros(1, np.uint32)
            self.famax.prepared_call(self._grid(n), (self.BLOCK, 1, 1), int(dx.gpudata), 2, n, int(damax.gpudata))
            dt3 = ga.zeros(3, np.float32)
            self.fnv.prepared_call((1, 1, 1), (32, 1, 1), int(damax.gpudata), int(dt3.gpudata))
        el = bp.el
        keep = []  # device tables alive until the launch is done

        def up(a):
            if a is None:
                return 0
            d = self._up(a)
            keep.append(d)
            return int(d.gpudata)

        self.fblk.prepared_call(
            self._grid(total), (self.BLOCK, 1, 1), int(dx.gpudata), 2, rows, ncols, bp.block, bp.family, int(bp.flat),
            up(el.u) if bp.u64 is None else 0, el.u.size, up(bp.u64), up(el.enc), el.flags, el.zero_code, el.sign_code,
            el.nan_code, el.code_mask, bp.emax_elem, bp.max_finite, up(bp.us), 0 if bp.us is None else bp.us.size,
            up(bp.encs), up(bp.vs), 0 if dt3 is None else int(dt3.gpudata), int(dcodes.gpudata), int(dscales.gpudata))
        return dcodes.get()[:n], dscales.get()[:total], (dt3.get() if dt3 is not None else None)

    def support32(self, bits, by_value):
        """(sorted distinct support keys uint32, counts uint64) of float32 bits (n < 2**32): keys, LSD radix sort, runs."""
        ga = self.ga
        x = np.ascontiguousarray(bits.reshape(-1).view(np.uint32))
        n = x.size
        if n == 0:
            return np.zeros(0, np.uint32), np.zeros(0, np.uint64)
        dx = self._up(x)
        a = ga.empty(n, np.uint32)
        b = ga.empty(n, np.uint32)
        self.fkey32.prepared_call(self._grid(n), (self.BLOCK, 1, 1), int(dx.gpudata), n, int(by_value), int(a.gpudata))
        del dx
        ntiles = _cdiv(n, 4096)  # NP_RADIX_TILE
        counts = ga.empty(256 * ntiles, np.uint32)
        tg = (_cdiv(ntiles, 64), 1, 1)
        for shift in (0, 8, 16, 24):
            self.fcount.prepared_call(tg, (64, 1, 1), int(a.gpudata), n, shift, ntiles, int(counts.gpudata))
            self.scan32(counts)
            self.fscatter.prepared_call(tg, (64, 1, 1), int(a.gpudata), n, shift, ntiles, int(counts.gpudata),
                                        int(b.gpudata))
            a, b = b, a
        flags = ga.empty(n, np.uint32)
        self.fheads.prepared_call(self._grid(n), (self.BLOCK, 1, 1), int(a.gpudata), n, int(flags.gpudata))
        pos = flags.copy()
        self.scan32(pos)
        m = int(pos[n - 1:n].get()[0]) + int(flags[n - 1:n].get()[0])
        ukeys = ga.empty(m, np.uint32)
        starts = ga.empty(m, np.int64)
        self.fcompact.prepared_call(self._grid(n), (self.BLOCK, 1, 1), int(a.gpudata), n, int(flags.gpudata),
                                    int(pos.gpudata), int(ukeys.gpudata), int(starts.gpudata))
        st = starts.get()
        return ukeys.get(), np.diff(np.append(st, n)).astype(np.uint64)

    def census_blocks(self, x32bits, codes, rows, ncols, bs, zero_sign, nbits):
        """(cell ids int64, value keys uint32, first positions int64) of a block format's pairs (n < 2**32).

        np_census_blocks (one thread per block: sort by encoding << 32 | value key, run heads), an
        exclusive scan of the heads, np_census_compact.
        """
        ga = self.ga
        n = rows * ncols
        if n == 0:
            return np.zeros(0, np.int64), np.zeros(0, np.uint32), np.zeros(0, np.int64)
        dx = self._up(np.ascontiguousarray(x32bits.reshape(-1), dtype=np.uint32))
        dc = self._up(np.ascontiguousarray(codes.reshape(-1), dtype=np.uint16))
        keys = ga.empty(n, np.uint64)
        heads = ga.empty(n, np.uint32)
        total = rows * _cdiv(ncols, bs)
        self.fcblocks.prepared_call(self._grid(total), (self.BLOCK, 1, 1), int(dx.gpudata), int(dc.gpudata), rows, ncols,
                                    bs, int(zero_sign), int(keys.gpudata), int(heads.gpudata))
        del dx, dc
        pos = heads.copy()
        self.scan32(pos)
        m = int(pos[n - 1:n].get()[0]) + int(heads[n - 1:n].get()[0])
        cells = ga.empty(m, np.int64)
        vkeys = ga.empty(m, np.uint32)
        starts = ga.empty(m, np.int64)
        self.fccompact.prepared_call(self._grid(n), (self.BLOCK, 1, 1), int(keys.gpudata), n, int(heads.gpudata),
                                     int(pos.gpudata), ncols, bs, int(nbits), int(cells.gpudata), int(vkeys.gpudata),
                                     int(starts.gpudata))
        return cells.get(), vkeys.get(), starts.get()
