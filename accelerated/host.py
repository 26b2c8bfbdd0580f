"""The host-build backend: the tier's launches served by the g++ build of natprec_scalar.cuh.

accelerated/host_harness.cpp runs the kernels' per-element functions in serial loops; it is
loaded with ctypes.  Used by tests/test_accelerated_host.py through ``use_backend``, so the
tier's own host logic runs exactly as it does with a GPU.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np

from .device import KERNEL_DIR

__all__ = ["build_host_library", "HostBackend"]


def build_host_library(out_dir, cxx: str = "g++") -> Path:
    """Compile accelerated/host_harness.cpp into ``out_dir``; returns the shared library's path."""
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
        self.lib.hh_support16_passes.argtypes = [P, q, i, i, i, i, P, P]
        self.lib.hh_index_both.argtypes = [P, q, P, q, P, P]
        self.lib.hh_hist_bins.argtypes = [i, P, q, d, d, P, P]
        self.lib.hh_support32.argtypes = [P, q, i, P, P, P]
        self.lib.hh_support32.restype = q
        self.lib.hh_tensor_amax.argtypes = [i, P, q]
        self.lib.hh_tensor_amax.restype = u32
        self.lib.hh_nvfp4_scales.argtypes = [u32, P]
        self.lib.hh_census_blocks.argtypes = [P, P, q, q, q, u32, i, P, P, P, P, P]
        self.lib.hh_census_blocks.restype = q
        self.lib.hh_block_quantize.argtypes = [i, P, q, q, q, i, i, P, q, P, P, u32, u32, u32, u32, u32, i, d, P, q, P,
                                               P, P, P, P]

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

    #: blocks the serial support run splits its input into (the kernel uses one per SM)
    SUPPORT_ROWS = 3

    def support16(self, kind, bits, by_value, omit_nan):
        """The support kernel's two passes and per-block rows, serially (np_support_slot, as the device)."""
        counts = np.zeros(1 << 16, np.uint64)
        b = np.ascontiguousarray(bits)
        partial = np.empty(self.SUPPORT_ROWS * 32768, np.uint32)
        self.lib.hh_support16_passes(b.ctypes.data, b.size, kind, int(by_value), int(omit_nan), self.SUPPORT_ROWS,
                                     partial.ctypes.data, counts.ctypes.data)
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

    def block_quantize(self, x32, rows, ncols, bp):
        """Codes (uint16, flat), scales (uint32 words, one per block) and tensor3 of the block kernel, serially."""
        x = np.ascontiguousarray(x32.reshape(-1).view(np.uint32))
        nb = -(-ncols // bp.block)
        codes = np.zeros(max(x.size, 1), np.uint16)
        scales = np.zeros(max(rows * nb, 1), np.uint32)
        t3 = None
        if bp.family == 3:
            t3 = np.zeros(3, np.float32)
            self.lib.hh_nvfp4_scales(self.lib.hh_tensor_amax(2, x.ctypes.data, x.size), t3.ctypes.data)
        el = bp.el
        self.lib.hh_block_quantize(
            2, x.ctypes.data, rows, ncols, bp.block, bp.family, int(bp.flat), el.u.ctypes.data if bp.u64 is None else None, el.u.size,
            self._p(bp.u64), el.enc.ctypes.data, el.flags, el.zero_code, el.sign_code, el.nan_code, el.code_mask,
            bp.emax_elem, bp.max_finite, self._p(bp.us), 0 if bp.us is None else bp.us.size, self._p(bp.encs),
            self._p(bp.vs), self._p(t3), codes.ctypes.data, scales.ctypes.data)
        return codes[: x.size], scales[: rows * nb], t3

    def support32(self, bits, by_value):
        """(sorted distinct support keys uint32, counts uint64) of float32 bits: the sort kernels' functions, serially."""
        x = np.ascontiguousarray(bits.reshape(-1).view(np.uint32))
        n = x.size
        ntiles = -(-n // 4096)
        work = np.empty(2 * n + 256 * ntiles + 1, np.uint32)
        ukeys = np.empty(max(n, 1), np.uint32)
        starts = np.empty(max(n, 1), np.int64)
        m = self.lib.hh_support32(x.ctypes.data, n, int(by_value), work.ctypes.data, ukeys.ctypes.data, starts.ctypes.data)
        return ukeys[:m].copy(), np.diff(np.append(starts[:m], n)).astype(np.uint64)

    def census_blocks(self, x32bits, codes, rows, ncols, bs, zero_sign, nbits):
        """(cell ids int64, value keys uint32, first positions int64) of a block format's pairs: the census kernels' functions, serially."""
        x = np.ascontiguousarray(x32bits.reshape(-1), dtype=np.uint32)
        c = np.ascontiguousarray(codes.reshape(-1), dtype=np.uint16)
        n = x.size
        keys = np.empty(max(n, 1), np.uint64)
        heads = np.empty(max(n, 1), np.uint32)
        cells = np.empty(max(n, 1), np.int64)
        vkeys = np.empty(max(n, 1), np.uint32)
        starts = np.empty(max(n, 1), np.int64)
        m = self.lib.hh_census_blocks(x.ctypes.data, c.ctypes.data, rows, ncols, bs, zero_sign, nbits, keys.ctypes.data,
                                      heads.ctypes.data, cells.ctypes.data, vkeys.ctypes.data, starts.ctypes.data)
        return cells[:m].copy(), vkeys[:m].copy(), starts[:m].copy()
