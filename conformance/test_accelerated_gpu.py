"""The accelerated tier on a real GPU, exhaustively (skipped without one).

* every float16 and every bfloat16 bit pattern, every element format (the 63 487-value
  float16 and bfloat16 codebooks included), every tie rule, saturating and not: codes,
  dequantized values, cell counts, margins, min margin — bit for bit against the reference;
* every 16-bit pattern for the support kernel and for discretized histograms;
* with NATPREC_EXHAUSTIVE_FP32=1: all 2**32 float32 patterns for the NF4, FP4 (E2M1) and
  bitsandbytes FP4 decision rules, in chunks (NATPREC_EXHAUSTIVE_TIES, default "even").
Run by accelerated/run_gpu.sh.
"""

import os

import numpy as np
import pytest

import natprec.accelerated as acc
import natprec.reference as ref
from natprec.conformance.exhaustive import DT16, all16, check_element_format_all16
from natprec.conformance.harness import assert_bits_equal
from natprec.reference import TIE_RULES, get_format

_OK, _WHY = acc.gpu_available()
pytestmark = pytest.mark.skipif(not _OK or acc.backend_override() is not None, reason=f"no GPU: {_WHY}")

ELEMENT = [n for n in ref.FORMAT_NAMES if isinstance(get_format(n), ref.ElementFormat)]


@pytest.mark.spec("DEF-QUANTIZE", "DEF-FORMAT-ELEMENT", "DEF-TIE-RULES")
@pytest.mark.parametrize("dtype", sorted(DT16))
@pytest.mark.parametrize("fmt", ELEMENT)
def test_gpu_every_16bit_pattern_every_format(fmt, dtype):
    assert check_element_format_all16(acc, fmt, dtype) > 0
    f = get_format(fmt)
    x = all16(DT16[dtype])
    for tie in TIE_RULES:
        try:
            want_m = ref.voronoi_margin(x, f, tie=tie, nan_policy="propagate")
        except Exception:
            continue
        assert_bits_equal(acc.voronoi_margin(x, f, tie=tie, nan_policy="propagate"), want_m, f"{fmt}/{dtype}/{tie} margin")
        assert_bits_equal(acc.min_voronoi_margin(x, f, tie=tie, nan_policy="omit"),
                          ref.min_voronoi_margin(x, f, tie=tie, nan_policy="omit"), "min margin")


@pytest.mark.spec("DEF-SUPPORT-VALUE", "DEF-SUPPORT-BITS")
@pytest.mark.parametrize("dtype", sorted(DT16))
def test_gpu_every_16bit_pattern_support(dtype):
    x = np.concatenate([all16(DT16[dtype])] * 3 + [all16(DT16[dtype])[::5]])
    for by in ("value", "bits"):
        for pol in ("omit", "propagate"):
            assert_bits_equal(acc.realized_support(x, by=by, nan_policy=pol), ref.realized_support(x, by=by, nan_policy=pol))
            assert acc.support_size(x, by=by, nan_policy=pol) == ref.support_size(x, by=by, nan_policy=pol)


@pytest.mark.spec("DEF-HISTOGRAM")
@pytest.mark.parametrize("dtype", sorted(DT16))
@pytest.mark.parametrize("delta, origin", [(0.5, 0.0), (0.1, 0.0), (1 / 3, 0.25), (2.0**-20, -1.0), (1e4, 3.0)])
def test_gpu_histogram_every_finite_16bit_pattern(dtype, delta, origin):
    x = all16(DT16[dtype])
    x = x[np.isfinite(x.astype(np.float32))]
    x = x[np.abs(x.astype(np.float64)) < 60000]
    assert_bits_equal(acc.discretized_histogram(x, delta, origin=origin), ref.discretized_histogram(x, delta, origin=origin))


_FP32 = os.environ.get("NATPREC_EXHAUSTIVE_FP32") == "1"
_TIES = [t for t in os.environ.get("NATPREC_EXHAUSTIVE_TIES", "even").split(",") if t]
CHUNK = 1 << 26


@pytest.mark.skipif(not _FP32, reason="set NATPREC_EXHAUSTIVE_FP32=1 for all 2**32 float32 patterns")
@pytest.mark.spec("DEF-QUANTIZE", "DEF-FORMAT-ELEMENT")
@pytest.mark.parametrize("tie", _TIES)
@pytest.mark.parametrize("fmt", ["nf4", "float4_e2m1fn", "fp4_bnb"])
def test_gpu_all_float32_patterns(fmt, tie):
    f = get_format(fmt)
    for start in range(0, 1 << 32, CHUNK):
        bits = np.arange(start, start + CHUNK, dtype=np.uint64).astype(np.uint32)
        keep = (bits & np.uint32(0x7FFFFFFF)) <= np.uint32(0x7F800000)  # NaNs: these formats have no NaN code
        x = bits[keep].view(np.float32) if not keep.all() else bits.view(np.float32)
        if x.size == 0:
            continue
        got = acc.quantize(x, f, tie=tie)
        want = ref.quantize(x, f, tie=tie)
        bad = np.flatnonzero(got != want)
        assert bad.size == 0, (f"{fmt}/{tie}: {bad.size} codes differ in chunk {start:#x}; first x bits "
                               f"{int(x.view(np.uint32)[bad[0]]):#010x}: {int(got[bad[0]])} != {int(want[bad[0]])}")
