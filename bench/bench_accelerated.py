"""Accelerated-tier speed on the GPU (skipped without one), with device-resident data.

Run by accelerated/run_gpu.sh: ``python -m pytest -q -s bench/bench_accelerated.py``; results
go to ``$NATPREC_BENCH_OUT/bench_accelerated.json`` (when set) and to stdout.

* device-to-device copy of 2**28 float32 (the memory-bandwidth ceiling);
* the fused element kernel (NF4 codes + cell histogram + min margin) on 2**28 float32,
  and codes only;
* baseline: torch.bucketize + torch.bincount on the same tensor (same thresholds);
* support of 2**28 float16: the 65536-bin kernel vs torch.unique(return_counts=True).
Times are the minimum of REPEAT runs, CUDA events around each launch.
"""

import json
import os

import numpy as np
import pytest

import natprec.accelerated as acc
from natprec.reference import prepare_quantize

_OK, _WHY = acc.gpu_available()
pytestmark = pytest.mark.skipif(not _OK or acc.backend_override() is not None, reason=f"no GPU: {_WHY}")

N = 1 << 28
REPEAT = 10
RESULTS = {}


def _time(fn, drv, repeat=REPEAT):
    fn()  # warm-up
    best = float("inf")
    for _ in range(repeat):
        a, b = drv.Event(), drv.Event()
        a.record()
        fn()
        b.record()
        b.synchronize()
        best = min(best, b.time_since(a) / 1e3)
    return best


@pytest.fixture(scope="module")
def dev():
    be = acc.current_backend()
    import torch

    return be, be.drv, be.ga, torch


def _record(name, seconds, nbytes=None, **extra):
    r = {"seconds": seconds, **extra}
    if nbytes:
        r["GB_per_s"] = nbytes / seconds / 1e9
    RESULTS[name] = r
    print(f"{name}: {seconds * 1e3:.3f} ms" + (f", {r['GB_per_s']:.1f} GB/s" if nbytes else ""))


def test_bench_d2d_copy(dev):
    be, drv, ga, _ = dev
    src = ga.empty(N, np.float32)
    dst = ga.empty(N, np.float32)
    t = _time(lambda: drv.memcpy_dtod(dst.gpudata, src.gpudata, N * 4), drv)
    _record("d2d_copy_2^28_f32", t, nbytes=2 * N * 4)


def test_bench_fused_quantize_vs_torch(dev):
    be, drv, ga, torch = dev
    plan = acc.element_plan(prepare_quantize(np.zeros(0, np.float32), "nf4"))  # kernel parameters: NF4, ties even, float32
    dplan = be.device_plan(plan)
    xt = torch.randn(N, device="cuda", dtype=torch.float32)
    codes = ga.empty(N, np.uint16)
    hist = ga.zeros(plan.u.size + 2, np.uint64)
    mn = ga.to_gpu(np.array([np.iinfo(np.uint64).max], np.uint64))
    xp = xt.data_ptr()
    t_fused = _time(lambda: be.launch_quantize(2, xp, N, plan, dplan, codes.gpudata, hist.gpudata, 0, mn.gpudata), drv)
    _record("fused_nf4_codes_hist_minmargin_2^28_f32", t_fused, nbytes=N * 4 + N * 2)
    t_codes = _time(lambda: be.launch_quantize(2, xp, N, plan, dplan, codes.gpudata), drv)
    _record("nf4_codes_only_2^28_f32", t_codes, nbytes=N * 4 + N * 2)
    # Baseline: torch.bucketize (right=False == searchsorted 'left') + bincount, same thresholds.
    bt = torch.from_numpy(plan.u.copy()).cuda()
    t_torch = _time(lambda: torch.bincount(torch.bucketize(xt, bt), minlength=plan.u.size + 1), drv)
    _record("torch_bucketize_bincount_2^28_f32", t_torch, nbytes=N * 4)
    RESULTS["fused_vs_torch_ratio"] = t_fused / t_torch
    # Same decisions as torch on this sample (a cross-check, not the conformance test).
    idx = torch.bucketize(xt[: 1 << 20], bt).cpu().numpy()
    be.launch_quantize(2, xp, 1 << 20, plan, dplan, codes.gpudata)
    drv.Context.synchronize()
    assert np.array_equal(codes.get()[: 1 << 20], plan.enc[idx].astype(np.uint16))


def test_bench_support16_vs_torch_unique(dev):
    be, drv, ga, torch = dev
    xt = torch.randn(N, device="cuda", dtype=torch.float16)
    counts = ga.zeros(1 << 16, np.uint64)

    def ours():
        drv.memset_d8(counts.gpudata, 0, (1 << 16) * 8)
        be.launch_support16(0, xt.data_ptr(), N, True, False, counts.gpudata)

    t_ours = _time(ours, drv)
    _record("support16_2^28_f16", t_ours, nbytes=N * 2)
    t_torch = _time(lambda: torch.unique(xt, return_counts=True), drv, repeat=3)
    _record("torch_unique_2^28_f16", t_torch, nbytes=N * 2)
    RESULTS["support_vs_torch_unique_ratio"] = t_ours / t_torch
    ours()
    drv.Context.synchronize()
    # torch.unique merges −0.0 and +0.0 (==), as support by value does.
    assert int(np.count_nonzero(counts.get())) == int(torch.unique(xt).numel())


def teardown_module(module):
    out = os.environ.get("NATPREC_BENCH_OUT")
    if out and RESULTS:
        import natprec.accelerated as a

        RESULTS["device"] = a.gpu_available()[1]
        with open(os.path.join(out, "bench_accelerated.json"), "w") as fh:
            json.dump(RESULTS, fh, indent=2)
