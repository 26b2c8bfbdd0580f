"""Benchmarks between tiers: the same operation on the reference (CPU), the accelerated tier (GPU)
and a torch GPU baseline, in groups; the GPU rows are skipped without a GPU.

Run by accelerated/run_gpu.sh: ``python -m pytest -q -s bench/bench_accelerated.py``.  Results go
to ``$NATPREC_BENCH_OUT/bench_accelerated.json`` (when set) and stdout; ``bench/results_table.py``
turns that JSON into the table of accelerated/RESULTS.md.

Groups (float32 input unless said):
* ``copy``        device-to-device copy of 2**28 float32: the memory ceiling of this run;
* ``nf4_fused``   NF4 codes + cell histogram + min margin (reference: quantize, bincount of the
                  indices, min_voronoi_margin; torch: bucketize + bincount, no margin);
* ``nf4_codes``   NF4 codes only (torch: bucketize + a gather of the encodings);
* ``support16``   support of float16 with counts (torch: unique(return_counts=True));
* ``support32``   support of float32 with counts on 2**26 elements: the tier's radix sort (the
                  input uploaded from the host inside the timing; torch's input is on the device);
* ``mxfp4``       MXFP4 (floor) codes and scales through the tier (upload and download timed too)
                  on 2**24 elements, against the reference;
* ``nf4_absmax64``, ``nf4_absmax64_flat``  NF4 absmax codes and scales through the tier (upload and
                  download timed too) on rows of 1001 elements (2**24 in all on the GPU), in the
                  last-axis layout (a partial block per row) and the flat layout (DEF-BLOCK-LAYOUT:
                  blocks of the flattened tensor, one divided partial block), against the reference;
* ``census_nf4``, ``census_mxfp4``  the collision census (injectivity_report, default listing)
                  of float16-valued float32 (many repeats) through the tier on 2**24 elements
                  (upload, kernels, download and finish_census on the host timed); torch, for
                  NF4 only: unique(return_counts) + bucketize of the support + the cells' runs
                  (device-resident, no δ, no listing).
GPU times: the minimum of REPEAT runs, CUDA events around each, on 2**28 device-resident
elements.  Reference times: the minimum of 3 runs with perf_counter on 2**22 elements (the
reference is single-threaded NumPy; per-element rates are compared, said in the table).
No timed asserts: only sanity checks that the GPU rows computed the same thing as the baseline.
"""

import json
import os
import platform
import subprocess
import time

import numpy as np
import pytest

import natprec.accelerated as acc
import natprec.reference as ref
from natprec.reference import prepare_quantize

_OK, _WHY = acc.gpu_available()
_GPU = _OK and acc.backend_override() is None
gpu = pytest.mark.skipif(not _GPU, reason=f"no GPU: {_WHY}")

N = 1 << 28
N_REF = 1 << 22
REPEAT = 10
RESULTS = []


def _record(group, tier, n, seconds, nbytes=None, note=""):
    r = {"group": group, "tier": tier, "n": n, "seconds": seconds, "ns_per_element": seconds / n * 1e9, "note": note}
    if nbytes:
        r["GB_per_s"] = nbytes / seconds / 1e9
    RESULTS.append(r)
    print(f"{group:10s} {tier:12s} n={n}: {seconds * 1e3:.3f} ms" + (f", {r['GB_per_s']:.1f} GB/s" if nbytes else ""))


def _time_gpu(fn, drv, repeat=REPEAT):
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


def _time_cpu(fn, repeat=3):
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


@pytest.fixture(scope="module")
def dev():
    import torch

    be = acc.current_backend()
    return be, be.drv, be.ga, torch


@pytest.fixture(scope="module")
def x_ref():
    return np.random.default_rng(0).standard_normal(N_REF).astype(np.float32)


# --- reference (CPU): always runs --------------------------------------------------------------


def test_reference_nf4_fused(x_ref):
    def run():
        ref.quantize(x_ref, "nf4")
        np.bincount(ref.nearest_index(x_ref, ref.get_format("nf4").codebook, "even").astype(np.int64), minlength=16)
        ref.min_voronoi_margin(x_ref, "nf4")

    _record("nf4_fused", "reference", N_REF, _time_cpu(run), N_REF * 6)


def test_reference_nf4_codes(x_ref):
    _record("nf4_codes", "reference", N_REF, _time_cpu(lambda: ref.quantize(x_ref, "nf4")), N_REF * 6)


def test_reference_support16(x_ref):
    x16 = x_ref.astype(np.float16)
    _record("support16", "reference", N_REF, _time_cpu(lambda: ref.realized_support(x16)), N_REF * 2)


# --- GPU: the accelerated tier and the torch baseline -------------------------------------------


@gpu
def test_gpu_copy(dev):
    be, drv, ga, _ = dev
    src = ga.empty(N, np.float32)
    dst = ga.empty(N, np.float32)
    _record("copy", "device copy", N, _time_gpu(lambda: drv.memcpy_dtod(dst.gpudata, src.gpudata, N * 4), drv), 2 * N * 4)


@gpu
def test_gpu_nf4(dev):
    be, drv, ga, torch = dev
    plan = acc.element_plan(prepare_quantize(np.zeros(0, np.float32), "nf4"))  # NF4, ties even, float32
    dplan = be.device_plan(plan)
    xt = torch.randn(N, device="cuda", dtype=torch.float32)
    codes = ga.empty(N, np.uint16)
    hist = ga.zeros(plan.u.size + 2, np.uint64)
    mn = ga.to_gpu(np.array([np.iinfo(np.uint64).max], np.uint64))
    xp = xt.data_ptr()
    t = _time_gpu(lambda: be.launch_quantize(2, xp, N, plan, dplan, codes.gpudata, hist.gpudata, 0, mn.gpudata), drv)
    _record("nf4_fused", "accelerated", N, t, N * 6)
    t = _time_gpu(lambda: be.launch_quantize(2, xp, N, plan, dplan, codes.gpudata), drv)
    _record("nf4_codes", "accelerated", N, t, N * 6)
    bt = torch.from_numpy(plan.u.copy()).cuda()
    enc = torch.from_numpy(plan.enc.astype(np.int16)).cuda()
    t = _time_gpu(lambda: torch.bincount(torch.bucketize(xt, bt), minlength=plan.u.size + 1), drv)
    _record("nf4_fused", "torch", N, t, N * 4, note="bucketize + bincount (no margin)")
    t = _time_gpu(lambda: enc[torch.bucketize(xt, bt)], drv)
    _record("nf4_codes", "torch", N, t, N * 6, note="bucketize + gather")
    # The same decisions as torch on a prefix (a cross-check, not the conformance test).
    m = 1 << 20
    idx = torch.bucketize(xt[:m], bt).cpu().numpy()
    be.launch_quantize(2, xp, m, plan, dplan, codes.gpudata)
    drv.Context.synchronize()
    assert np.array_equal(codes.get()[:m], plan.enc[idx].astype(np.uint16))
    h = hist.get()
    hist.fill(0)
    be.launch_quantize(2, xp, N, plan, dplan, 0, hist.gpudata)
    drv.Context.synchronize()
    tb = torch.bincount(torch.bucketize(xt, bt), minlength=plan.u.size + 1).cpu().numpy()
    assert np.array_equal(hist.get()[: plan.u.size + 1], tb.astype(np.uint64)) and h.sum() > 0


@gpu
def test_gpu_support16(dev):
    be, drv, ga, torch = dev
    xt = torch.randn(N, device="cuda", dtype=torch.float16)
    counts = ga.zeros(1 << 16, np.uint64)

    def ours():
        drv.memset_d8(counts.gpudata, 0, (1 << 16) * 8)
        be.launch_support16(0, xt.data_ptr(), N, True, False, counts.gpudata)

    _record("support16", "accelerated", N, _time_gpu(ours, drv), N * 2)
    _record("support16", "torch", N, _time_gpu(lambda: torch.unique(xt, return_counts=True), drv, repeat=3), N * 2,
            note="unique(return_counts=True)")
    ours()
    drv.Context.synchronize()
    vals, cnt = torch.unique(xt, return_counts=True)  # merges −0.0 and +0.0 (==), as support by value does
    c = counts.get()
    assert int(np.count_nonzero(c)) == int(vals.numel()) and int(c.sum()) == int(cnt.sum())


def test_reference_support32_and_mxfp4(x_ref):
    _record("support32", "reference", N_REF, _time_cpu(lambda: ref.realized_support(x_ref)), N_REF * 4)
    _record("mxfp4", "reference", N_REF, _time_cpu(lambda: ref.quantize(x_ref, "mxfp4")), N_REF * 4)


@gpu
def test_gpu_support32_and_mxfp4(dev):
    be, drv, ga, torch = dev
    n = 1 << 26
    x = np.random.default_rng(1).standard_normal(n).astype(np.float16).astype(np.float32)  # many repeats
    bits = x.view(np.uint32)
    t = _time_cpu(lambda: be.support32(bits, True))
    _record("support32", "accelerated", n, t, n * 4, note="host upload included")
    xt = torch.from_numpy(x).cuda()
    _record("support32", "torch", n, _time_gpu(lambda: torch.unique(xt, return_counts=True), drv, repeat=3), n * 4,
            note="unique(return_counts=True), device-resident")
    keys, counts = be.support32(bits, True)
    vals, cnt = torch.unique(xt, return_counts=True)
    assert keys.size == vals.numel() and np.array_equal(counts.astype(np.int64), cnt.cpu().numpy())
    m = 1 << 24
    _record("mxfp4", "accelerated", m, _time_cpu(lambda: acc.quantize(x[:m], "mxfp4")), m * 4,
            note="tier call: prepare on the host, upload, kernel, download")


ABSMAX_COLS = 1001  # not a multiple of 64: each row's last block is partial in the last-axis layout


def _absmax_layouts():
    """(group, format) of nf4_absmax64 in its two layouts (DEF-BLOCK-LAYOUT)."""
    return (("nf4_absmax64", ref.get_format("nf4_absmax64")),
            ("nf4_absmax64_flat", ref.get_format("nf4_absmax64", layout="flat")))


def test_reference_absmax_layouts(x_ref):
    x = x_ref[: (x_ref.size // ABSMAX_COLS) * ABSMAX_COLS].reshape(-1, ABSMAX_COLS)
    for group, f in _absmax_layouts():
        _record(group, "reference", x.size, _time_cpu(lambda: ref.quantize(x, f)), x.size * 4)


@gpu
def test_gpu_absmax_layouts(dev):
    m = 1 << 24
    x = np.random.default_rng(3).standard_normal(m).astype(np.float32)
    x = x[: (m // ABSMAX_COLS) * ABSMAX_COLS].reshape(-1, ABSMAX_COLS)
    for group, f in _absmax_layouts():
        _record(group, "accelerated", x.size, _time_cpu(lambda: acc.quantize(x, f)), x.size * 4,
                note="tier call: prepare on the host, upload, kernel, download")
        q = acc.quantize(x, f)
        assert acc.last_path() == "device" and q.layout == f.layout
    # a cross-check of the layouts (not the conformance test): the flat layout's full blocks are the last-axis
    # layout's blocks of x.reshape(-1)
    flat = acc.quantize(x, _absmax_layouts()[1][1])
    rows = acc.quantize(x.reshape(-1), "nf4_absmax64")
    full = (x.size // 64) * 64
    assert np.array_equal(flat.codes.reshape(-1)[:full], rows.codes[:full])
    assert np.array_equal(flat.scales[: full // 64], rows.scales[: full // 64])


def _census_input(n):
    return np.random.default_rng(2).standard_normal(n).astype(np.float16).astype(np.float32)  # many repeats


def test_reference_census():
    x = _census_input(N_REF)
    for fmt in ("nf4", "mxfp4"):
        _record(f"census_{fmt}", "reference", N_REF, _time_cpu(lambda: ref.injectivity_report(x, fmt)), N_REF * 4)


@gpu
def test_gpu_census(dev):
    be, drv, ga, torch = dev
    m = 1 << 24
    x = _census_input(m)
    for fmt in ("nf4", "mxfp4"):
        _record(f"census_{fmt}", "accelerated", m, _time_cpu(lambda: acc.injectivity_report(x, fmt)), m * 4,
                note="tier call: prepare, upload, kernels, download, finish_census")
        assert acc.last_path() == "device"
    plan = acc.element_plan(prepare_quantize(np.zeros(0, np.float32), "nf4"))
    bt = torch.from_numpy(plan.u.copy()).cuda()
    xt = torch.from_numpy(x).cuda()

    def torch_census():
        vals, cnt = torch.unique(xt, return_counts=True)
        cells = torch.bucketize(vals, bt)
        return torch.unique_consecutive(cells, return_counts=True), cnt

    _record("census_nf4", "torch", m, _time_gpu(torch_census, drv, repeat=3), m * 4,
            note="unique + bucketize + unique_consecutive, device-resident; no delta, no listing")
    (cells, _), _ = torch_census()
    assert cells.numel() == acc.injectivity_report(x, "nf4").cells_used


def _versions():
    v = {"python": platform.python_version(), "numpy": np.__version__}
    try:
        import torch

        v["torch"] = torch.__version__
        v["torch_cuda"] = torch.version.cuda
    except Exception:
        pass
    try:
        import pycuda.driver as drv

        v["pycuda_cuda_version"] = ".".join(map(str, drv.get_version()))
        v["driver_version"] = drv.get_driver_version()
    except Exception:
        pass
    try:
        v["commit"] = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    except Exception:
        pass
    return v


def teardown_module(module):
    out = os.environ.get("NATPREC_BENCH_OUT")
    if out and RESULTS:
        doc = {"device": acc.gpu_available()[1] if _GPU else f"no GPU ({_WHY})", "cpu": platform.processor(),
               "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "versions": _versions(),
               "n_gpu": N, "n_reference": N_REF, "results": RESULTS}
        with open(os.path.join(out, "bench_accelerated.json"), "w") as fh:
            json.dump(doc, fh, indent=2)
