"""The accelerated tier without a GPU: its per-element arithmetic, built for the host, against the reference.

accelerated/kernels/natprec_scalar.cuh holds every float operation the CUDA kernels do, as
``__host__ __device__`` functions.  Here the same header is compiled with g++
(-O2 -ffp-contract=off -fno-fast-math) into accelerated/host_harness.cpp, loaded with
ctypes, and plugged into natprec.accelerated as its launch backend, so the tier's own host
logic (validation, kernel parameters, post-processing) runs too.  Results are compared with
natprec.reference bit for bit:

* every float16 and every bfloat16 bit pattern, for every element format with <= 256 codes,
  every tie rule, saturating and not: codes, dequantized values, cell counts, margins;
* every 16-bit pattern for the support kernel, by value and by bits, every nan_policy;
* hypothesis float32 samples through every conformance body (conformance/bodies.py);
* the margin function on float64 samples with arbitrary codebooks (its exact slow path);
* bad input raises the reference's exception types with no GPU and no backend (before any launch).
"""

import threading
from fractions import Fraction

import ml_dtypes
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import natprec.accelerated as acc
import natprec.reference as ref
from natprec.conformance.bodies import BODIES
from natprec.conformance.exhaustive import DT16, all16, check_element_format_all16
from natprec.conformance.harness import assert_bits_equal, assert_same_outcome
from natprec.conformance.strategies import codebooks, float_arrays, tie_rules
from natprec.reference import get_format
from natprec.reference.codebook import exact_gaps, thresholds

BF16 = np.dtype(ml_dtypes.bfloat16)
SMALL_FORMATS = [n for n in ref.FORMAT_NAMES
                 if isinstance(get_format(n), ref.ElementFormat) and len(get_format(n).codebook) <= 256]


@pytest.fixture
def hosted(host):
    with acc.use_backend(host):
        yield acc


def _same(got, want, what):
    assert_bits_equal(got, want, what)


def test_import_needs_no_driver():
    ok, why = acc.gpu_available()
    assert isinstance(ok, bool) and isinstance(why, str) and why


@pytest.mark.spec("DEF-TOTAL-ORDER", "DEF-DOMAIN")
@pytest.mark.parametrize("name", ["float16", "bfloat16"])
def test_exact_16bit_to_float32_conversion(host, name):
    x = all16(DT16[name])
    out = np.empty(x.size, np.float32)
    host.lib.hh_to_f32(0 if name == "float16" else 1, x.ctypes.data, x.size, out.ctypes.data)
    want = x.astype(np.float32)
    ok = ~np.isnan(want)  # NaN payloads: the kernels classify NaN from the input bits, never from this value
    _same(out[ok], want[ok], f"{name}->float32")
    assert np.isnan(out[~ok]).all()


@pytest.mark.spec("DEF-QUANTIZE", "DEF-FORMAT-ELEMENT", "DEF-TIE-RULES")
@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
@pytest.mark.parametrize("fmt", SMALL_FORMATS)
def test_every_16bit_pattern_quantizes_as_the_reference(hosted, fmt, dtype):
    assert check_element_format_all16(hosted, fmt, dtype) > 0


@pytest.mark.spec("DEF-MARGIN")
@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
@pytest.mark.parametrize("fmt", SMALL_FORMATS)
def test_every_16bit_pattern_has_the_reference_margin(hosted, fmt, dtype):
    x = all16(DT16[dtype])
    for tie in ("even", "up"):  # ties only move the index at exact midpoints; both directions covered
        try:
            want = ref.voronoi_margin(x, fmt, tie=tie, nan_policy="propagate")
        except Exception as exc:
            with pytest.raises(type(exc)):
                hosted.voronoi_margin(x, fmt, tie=tie, nan_policy="propagate")
            continue
        got = hosted.voronoi_margin(x, fmt, tie=tie, nan_policy="propagate")
        assert acc.last_path() == "device"
        _same(got, want, f"{fmt}/{dtype}/{tie} margin")
        assert_bits_equal(hosted.min_voronoi_margin(x, fmt, tie=tie, nan_policy="omit"),
                          ref.min_voronoi_margin(x, fmt, tie=tie, nan_policy="omit"), "min margin")


@pytest.mark.spec("DEF-SUPPORT-VALUE", "DEF-SUPPORT-BITS")
@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_every_16bit_pattern_support(hosted, dtype):
    x = np.concatenate([all16(DT16[dtype]), all16(DT16[dtype])[::7]])
    nan = np.isnan(x.astype(np.float32))
    for by in ("value", "bits"):
        for pol in ("omit", "propagate"):
            _same(hosted.realized_support(x, by=by, nan_policy=pol), ref.realized_support(x, by=by, nan_policy=pol),
                  f"support {by}/{pol}")
            assert hosted.support_size(x, by=by, nan_policy=pol) == ref.support_size(x, by=by, nan_policy=pol)
        _same(hosted.realized_support(x[~nan], by=by), ref.realized_support(x[~nan], by=by), f"support {by}/raise")


@pytest.mark.spec("DEF-QUANTIZE", "DEF-FORMAT-ELEMENT", "DEF-TIE-RULES")
@given(x=float_arrays(dtypes=(np.float32,)), fmt=st.sampled_from(SMALL_FORMATS + ["float16", "bfloat16"]),
       tie=tie_rules, sat=st.sampled_from([True, False, None]), pol=st.sampled_from(["raise", "propagate"]))
def test_float32_samples_quantize_as_the_reference(host, x, fmt, tie, sat, pol):
    def body(impl):
        codes = impl.quantize(x, fmt, tie=tie, saturate=sat, nan_policy=pol)
        return codes, impl.dequantize(codes, fmt), impl.voronoi_margin(x, fmt, tie=tie, nan_policy=pol)

    with acc.use_backend(host):
        assert_same_outcome(lambda impl: body(impl), acc, ref)


@pytest.mark.spec("DEF-QUANTIZE", "DEF-MARGIN", "DEF-SUPPORT-VALUE", "DEF-HISTOGRAM")
@pytest.mark.parametrize("body_name", sorted(BODIES))
@given(data=st.data())
def test_conformance_bodies_on_the_host_build(host, body_name, data):
    body = BODIES[body_name]
    args = data.draw(body.args, label="args")
    with acc.use_backend(host):
        assert_same_outcome(body.run, acc, ref, *args)


@pytest.mark.spec("DEF-QUANTIZE", "DEF-MARGIN")
@pytest.mark.parametrize("dtype", [np.float16, BF16, np.float32])
@pytest.mark.parametrize("fmt", ["int4", "nf4", "float8_e4m3fn", "float16"])
@pytest.mark.parametrize("v", [0.3, -0.0, np.nan])
def test_zero_d_input_gives_zero_d_output(hosted, dtype, fmt, v):
    # 0-d in, 0-d ndarray out (shape ()), as the reference: no (1,) shapes, no NumPy scalars.
    x = np.array(v, dtype=dtype)
    pol = "propagate" if get_format(fmt).nan_code is not None else "raise"
    if np.isnan(v) and pol == "raise":
        return
    codes = hosted.quantize(x, fmt, nan_policy=pol)
    want = ref.quantize(x, fmt, nan_policy=pol)
    assert isinstance(codes, np.ndarray) and codes.shape == () and hosted.last_path() == "device"
    _same(codes, want, "0-d codes")
    deq = hosted.dequantize(codes, fmt)
    assert isinstance(deq, np.ndarray) and deq.shape == ()
    _same(deq, ref.dequantize(want, fmt), "0-d dequantize")
    g = hosted.voronoi_margin(x, fmt, nan_policy=pol)
    assert isinstance(g, np.ndarray) and g.shape == ()
    _same(g, ref.voronoi_margin(x, fmt, nan_policy=pol), "0-d margin")


def test_backend_override_is_use_backend_only(host):
    # The only override is use_backend's, and it is process-wide: another thread sees it too.
    seen = []
    assert acc.backend_override() is None
    with acc.use_backend(host):
        t = threading.Thread(target=lambda: seen.append(acc.backend_override()))
        t.start()
        t.join()
        assert acc.backend_override() is host
    assert seen == [host] and acc.backend_override() is None


HOST_CALLS = [
    ("float64 input", "quantize", (np.array([0.3, -2.0]), "nf4"), {}),
    ("block formats", "dequantize", (ref.quantize(np.ones(40, np.float32), "mxfp4"), "mxfp4"), {}),
    ("block formats", "voronoi_margin", (np.ones(40, np.float32), "nf4_absmax64"), {}),
    ("codebook", "voronoi_margin", (np.array([1.0], np.float32), ref.Codebook([0.0, 2.0**1001])), {}),
    ("support of float32/float64", "realized_support", (np.array([1.0, 1.0, 2.0]),), {}),
    ("NaN result", "min_voronoi_margin", (np.array([np.nan, 1.0], np.float32), "nf4"), {"nan_policy": "propagate"}),
    ("float64 input", "discretized_histogram", (np.array([0.3, 2.5]), 0.5), {}),
    ("float64 input", "injectivity_report", (np.array([0.3, 2.5]), "nf4"), {}),
    ("codebook", "injectivity_report", (np.array([1.0, 3.0], np.float32), ref.Codebook([0.0, 2.0**1001])), {}),
    ("entropy_bits_from_counts", "entropy_bits_from_counts", (np.array([3, 1]),), {}),
]


@pytest.mark.parametrize("reason, fn, args, kw", HOST_CALLS, ids=[f"{c[1]}-{i}" for i, c in enumerate(HOST_CALLS)])
def test_host_paths_run_the_reference_and_say_why(hosted, reason, fn, args, kw):
    got = getattr(hosted, fn)(*args, **kw)
    assert hosted.last_path() == f"host:{reason}" and reason in acc.HOST_PATHS
    _same(got, getattr(ref, fn)(*args, **kw), f"{fn} on the host")


@pytest.mark.spec("DEF-MARGIN")
@given(cb=codebooks(width=64), xs=st.lists(st.floats(allow_nan=False), min_size=1, max_size=20), tie=tie_rules)
def test_margin_function_on_float64_samples(host, cb, xs, tie):
    # The header's margin is general float64 arithmetic: check it beyond the kernels' dtypes.
    x = np.array(xs, dtype=np.float64)
    v = np.ascontiguousarray(cb.values)
    if np.max(np.abs(v)) >= 2.0**1000 or np.max(np.abs(x)) >= 2.0**1000:
        x = np.clip(x, -2.0**900, 2.0**900)  # the tier sends such codebooks to the reference (HOST_PATHS)
        if np.max(np.abs(v)) >= 2.0**1000:
            return
    try:
        want = ref.voronoi_margin(x, cb, tie=tie)
    except Exception:
        return
    u = np.ascontiguousarray(thresholds(cb, tie, np.float64))
    gaps = np.ascontiguousarray(exact_gaps(cb))
    out = np.empty(x.size, np.float64)
    host.lib.hh_margin_f64(x.ctypes.data, x.size, u.ctypes.data if u.size else None, u.size, v.ctypes.data,
                           gaps.ctypes.data if gaps.size else None, v.size, out.ctypes.data)
    _same(out, want, "float64 margin")


@pytest.mark.spec("DEF-MARGIN")
@given(a=st.floats(allow_nan=False, allow_infinity=False, min_value=-2.0**1000, max_value=2.0**1000),
       b=st.floats(allow_nan=False, allow_infinity=False, min_value=-2.0**1000, max_value=2.0**1000),
       c=st.floats(allow_nan=False, allow_infinity=False, min_value=-2.0**1000, max_value=2.0**1000))
def test_correctly_rounded_sum_of_three(host, a, b, c):
    assert_bits_equal(host.lib.hh_sum3(a, b, c), float(Fraction(a) + Fraction(b) + Fraction(c)), "sum3")


@pytest.mark.spec("DEF-HISTOGRAM")
@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
@pytest.mark.parametrize("delta, origin", [(0.5, 0.0), (0.1, 0.0), (1 / 3, 0.25), (2.0**-20, -1.0), (1e4, 3.0)])
def test_histogram_of_every_finite_16bit_pattern(hosted, dtype, delta, origin):
    x = all16(DT16[dtype])
    x = x[np.isfinite(x.astype(np.float32))]
    x = x[np.abs(x.astype(np.float64)) < 60000]  # keeps bin indices below 2**53 for the small widths
    _same(hosted.discretized_histogram(x, delta, origin=origin), ref.discretized_histogram(x, delta, origin=origin),
          f"histogram {dtype} delta={delta}")


BAD_INPUTS = [
    ("quantize", (np.array([np.nan], np.float32), "nf4"), {}),
    ("quantize", (np.array([1.0], np.float32), "nf4"), {"tie": "sideways"}),
    ("quantize", (np.array([1.0], np.float32), "nf4"), {"nan_policy": "omit"}),
    ("quantize", (np.array([1.0], np.float32), "int4"), {"saturate": False}),
    ("quantize", (np.array([np.nan], np.float16), "int8"), {"nan_policy": "propagate"}),
    ("quantize", (np.array([1], np.int32), "nf4"), {}),
    ("quantize", (np.array([1.0], np.float32), "no_such_format"), {}),
    ("quantize", (np.array([1.0], np.float32), ref.Codebook([0.0, 1.0, 2.0], [0, 2, 4])), {"tie": "even"}),
    ("dequantize", (np.array([1.5]), "nf4"), {}),
    ("dequantize", (np.array([16]), "nf4"), {}),
    ("dequantize", (np.array([-1]), "int4"), {}),
    ("voronoi_margin", (np.array([np.nan], np.float16), "nf4"), {}),
    ("voronoi_margin", (np.array([1.0], np.float16), "nf4"), {"nan_policy": "omit"}),
    ("min_voronoi_margin", (np.array([np.nan], np.float32), "nf4"), {"nan_policy": "omit"}),
    ("min_voronoi_margin", (np.array([], np.float32), "nf4"), {}),
    ("realized_support", (np.array([np.nan], np.float16),), {}),
    ("realized_support", (np.array([1.0], np.float16),), {"by": "size"}),
    ("support_size", (np.array([1.0], ml_dtypes.bfloat16),), {"nan_policy": "keep"}),
    ("discretized_histogram", (np.array([np.inf], np.float32), 0.5), {}),
    ("discretized_histogram", (np.array([1.0], np.float32), 0.0), {}),
    ("discretized_histogram", (np.array([np.nan], np.float32), 0.5), {"nan_policy": "omit"}),
    ("discretized_histogram", (np.array([1.0], np.float32), 0.5), {"origin": np.inf}),
]


@pytest.mark.spec("DEF-BAD-INPUT")
@pytest.mark.parametrize("fn, args, kw", BAD_INPUTS, ids=[f"{b[0]}-{i}" for i, b in enumerate(BAD_INPUTS)])
def test_bad_input_raises_before_any_launch(fn, args, kw):
    # No backend at all here: the tier must raise the reference's exception before needing a GPU.
    with pytest.raises(Exception) as want:
        getattr(ref, fn)(*args, **kw)
    if acc.gpu_available()[0]:
        pytest.skip("a GPU is present: the no-launch property is only observable without one")
    with pytest.raises(type(want.value)) as got:
        getattr(acc, fn)(*args, **kw)
    assert type(got.value) is type(want.value)


@pytest.mark.spec("DEF-QUANTIZE")
@given(u=st.lists(st.floats(allow_nan=False, width=32), min_size=0, max_size=16),
       xs=st.lists(st.floats(width=32), min_size=1, max_size=40))
def test_compare_count_is_the_search(host, u, xs):
    # Issue 12: the kernels' branchless compare-count over the +Inf-padded table (<= 16 thresholds)
    # and the binary search give one index for every x: each threshold, its float32 neighbours,
    # ±0, ±Inf and NaN included.
    uu = np.sort(np.array(u, np.float32))
    with np.errstate(over="ignore"):  # nextafter of the largest finite float32 is ±Inf
        near = [np.nextafter(uu, np.float32(np.inf)), np.nextafter(uu, np.float32(-np.inf)), uu]
    x = np.concatenate([np.array(xs, np.float32), *near, np.array([0.0, -0.0, np.inf, -np.inf, np.nan], np.float32)])
    by_count = np.empty(x.size, np.int64)
    by_search = np.empty(x.size, np.int64)
    host.lib.hh_index_both(uu.ctypes.data if uu.size else None, uu.size, x.ctypes.data, x.size,
                           by_count.ctypes.data, by_search.ctypes.data)
    _same(by_count, by_search, "compare-count vs search")
    ok = ~np.isnan(x)
    _same(by_count[ok], np.searchsorted(uu, x[ok], side="left").astype(np.int64), "vs numpy")


@pytest.mark.parametrize("rows", [1, 2, 7])
def test_support_rows_sum_to_the_reference(host, rows, monkeypatch):
    # The support kernel's per-block rows, whatever the number of blocks (the device uses one per SM).
    monkeypatch.setattr(host, "SUPPORT_ROWS", rows)
    x = np.concatenate([all16(np.dtype(np.float16)), all16(np.dtype(np.float16))[::3]])
    with acc.use_backend(host):
        _same(acc.realized_support(x, nan_policy="omit"), ref.realized_support(x, nan_policy="omit"), f"rows={rows}")


def test_quantize_launch_config_fits_shared_memory():
    # Every element format the kernels take, every tie, saturating or not, every input kind: the fused
    # kernel's shared memory stays within 48 KiB (with its 128 static bytes), and the privatized
    # histogram mode follows the bin count.
    from natprec.accelerated.plans import QBLOCK, SHARED_LIMIT, device_ok, quantize_launch_config

    seen = set()
    for name in ref.FORMAT_NAMES:
        f = get_format(name)
        if not isinstance(f, ref.ElementFormat) or not device_ok(f):
            continue
        for dt in (np.float16, BF16, np.float32):
            for tie in ref.TIE_RULES:
                for sat in (True, False):
                    if not sat and f.extended is None:
                        continue
                    try:
                        plan = acc.element_plan(ref.prepare_quantize(np.zeros(0, dt), f, tie=tie, saturate=sat))
                    except ref.errors.NatprecError:
                        continue
                    for hist in (False, True):
                        mode, tab, nbytes = quantize_launch_config(plan, hist)
                        assert nbytes + 128 <= SHARED_LIMIT, (name, nbytes)
                        nbins = plan.u.size + 2
                        want = 0 if not hist else 1 if nbins <= 32 else 2 if nbins <= 512 else 3
                        assert mode == want
                        if mode == 1:
                            assert nbytes >= 4 * nbins * QBLOCK
                        seen.add(mode)
    assert seen == {0, 1, 2, 3}
