"""Every candidate tier, exhaustively, bit for bit against the reference (skipped without one).

* every float16 and every bfloat16 bit pattern, every element format (the 63 487-value
  float16 and bfloat16 codebooks included), every tie rule, saturating and not: codes,
  dequantized values (and the cell counts of a tier with a fused ``code_histogram``), margins,
  min margin;
* every finite float16 and bfloat16 pattern for the block formats, and for the absmax formats in
  the flat layout (DEF-BLOCK-LAYOUT: blocks across rows, a divided partial last block); the flat
  layout's partial block at every 8th bfloat16 scale, next to every decision threshold;
* every 16-bit pattern for the support functions and for discretized histograms;
* with NATPREC_EXHAUSTIVE_FP32=1: all 2**32 float32 patterns for the NF4, FP4 (E2M1) and
  bitsandbytes FP4 decision rules, in chunks (NATPREC_EXHAUSTIVE_TIES, default "even"); on the
  accelerated tier with a GPU the check runs on the device against an independent float64
  oracle (accelerated/sweep.py), elsewhere against the reference on the host.
The accelerated tier is a candidate when a GPU is usable; accelerated/run_gpu.sh runs this file.
"""

import os

import numpy as np
import pytest

import natprec.reference as ref
from natprec.conformance.bodies import FLAT_FORMATS
from natprec.conformance.exhaustive import DT16, all16, check_element_format_all16, near_threshold_rows
from natprec.conformance.harness import assert_bits_equal, assert_same_outcome
from natprec.reference import TIE_RULES, get_format

ELEMENT = [n for n in ref.FORMAT_NAMES if isinstance(get_format(n), ref.ElementFormat)]


@pytest.mark.spec("DEF-QUANTIZE", "DEF-FORMAT-ELEMENT", "DEF-TIE-RULES")
@pytest.mark.tier_functions("quantize", "dequantize")
@pytest.mark.parametrize("dtype", sorted(DT16))
@pytest.mark.parametrize("fmt", ELEMENT)
def test_every_16bit_pattern_every_format(tier, fmt, dtype):
    assert check_element_format_all16(tier.impl, fmt, dtype) > 0


@pytest.mark.spec("DEF-MARGIN", "DEF-TIE-RULES")
@pytest.mark.tier_functions("voronoi_margin", "min_voronoi_margin")
@pytest.mark.parametrize("dtype", sorted(DT16))
@pytest.mark.parametrize("fmt", ELEMENT)
def test_every_16bit_pattern_margin(tier, fmt, dtype):
    f = get_format(fmt)
    x = all16(DT16[dtype])
    def body(impl, tie):  # a tie rule the codebook does not accept raises in both (e.g. 'even', equal parities)
        return (impl.voronoi_margin(x, f, tie=tie, nan_policy="propagate"),
                impl.min_voronoi_margin(x, f, tie=tie, nan_policy="omit"))
    for tie in TIE_RULES:
        assert_same_outcome(body, tier.impl, ref, tie, path=f"{fmt}/{dtype}/{tie} (margins, min margin)")


@pytest.mark.spec("DEF-SUPPORT-VALUE", "DEF-SUPPORT-BITS")
@pytest.mark.tier_functions("realized_support", "support_size")
@pytest.mark.parametrize("dtype", sorted(DT16))
def test_every_16bit_pattern_support(tier, dtype):
    x = np.concatenate([all16(DT16[dtype])] * 3 + [all16(DT16[dtype])[::5]])
    for by in ("value", "bits"):
        for pol in ("omit", "propagate"):
            assert_bits_equal(tier.impl.realized_support(x, by=by, nan_policy=pol), ref.realized_support(x, by=by, nan_policy=pol))
            assert tier.impl.support_size(x, by=by, nan_policy=pol) == ref.support_size(x, by=by, nan_policy=pol)


@pytest.mark.spec("DEF-HISTOGRAM")
@pytest.mark.tier_functions("discretized_histogram")
@pytest.mark.parametrize("dtype", sorted(DT16))
@pytest.mark.parametrize("delta, origin", [(0.5, 0.0), (0.1, 0.0), (1 / 3, 0.25), (2.0**-20, -1.0), (1e4, 3.0)])
def test_histogram_every_finite_16bit_pattern(tier, dtype, delta, origin):
    x = all16(DT16[dtype])
    x = x[np.isfinite(x.astype(np.float32))]
    x = x[np.abs(x.astype(np.float64)) < 60000]
    assert_bits_equal(tier.impl.discretized_histogram(x, delta, origin=origin), ref.discretized_histogram(x, delta, origin=origin))


_FP32 = os.environ.get("NATPREC_EXHAUSTIVE_FP32") == "1"
_TIES = [t for t in os.environ.get("NATPREC_EXHAUSTIVE_TIES", "even").split(",") if t]
CHUNK = 1 << 26


def _device_sweep(tier):
    """The accelerated tier on a real GPU with torch CUDA: the sweep checks on the device (accelerated/sweep.py)."""
    if tier.name != "accelerated":
        return None
    try:
        import torch

        from natprec.accelerated.device import CudaBackend, current_backend
    except Exception:
        return None
    if not torch.cuda.is_available() or not isinstance(current_backend(), CudaBackend):
        return None
    return torch


@pytest.mark.skipif(not _FP32, reason="set NATPREC_EXHAUSTIVE_FP32=1 for all 2**32 float32 patterns")
@pytest.mark.spec("DEF-QUANTIZE", "DEF-FORMAT-ELEMENT")
@pytest.mark.tier_functions("quantize")
@pytest.mark.parametrize("tie", _TIES)
@pytest.mark.parametrize("fmt", ["nf4", "float4_e2m1fn", "fp4_bnb"])
def test_all_float32_patterns(tier, fmt, tie):
    f = get_format(fmt)
    torch = _device_sweep(tier)
    if torch is not None:
        # On the device: the element kernel against an independent float64 bucketize on exact
        # midpoints with the tie rule written out again (accelerated/sweep.py; the oracle is
        # checked against the reference in tests/test_accelerated_sweep.py and here on a sample).
        from natprec.accelerated.sweep import device_codes_fn, oracle_codes, oracle_table, sweep_float32

        table = oracle_table(f, tie)
        if table is None:  # 'even' undefined for this codebook: the tier must raise as the reference does
            with pytest.raises(type(_raised(ref.quantize, f, tie))):
                tier.impl.quantize(np.zeros(1, np.float32), f, tie=tie)
            return
        sample = np.random.default_rng(0).integers(0, 1 << 32, 1 << 20, dtype=np.uint64).astype(np.uint32)
        sample = sample[(sample & np.uint32(0x7FFFFFFF)) <= np.uint32(0x7F800000)]
        want = ref.quantize(sample.view(np.float32), f, tie=tie).astype(np.int64)
        got = oracle_codes(torch.from_numpy(sample.view(np.int32).copy()).cuda(), table, torch).cpu().numpy()
        assert np.array_equal(got, want), f"{fmt}/{tie}: the oracle disagrees with the reference on its sample"
        r = sweep_float32(f, tie, device_codes_fn(f, tie, torch), torch)
        print(f"all float32 {fmt}/{tie}: {r}")
        assert r["checked"] == (1 << 32) - 2 * ((1 << 23) - 1) and r["mismatches"] == 0, r
        return
    for start in range(0, 1 << 32, CHUNK):
        bits = np.arange(start, start + CHUNK, dtype=np.uint64).astype(np.uint32)
        keep = (bits & np.uint32(0x7FFFFFFF)) <= np.uint32(0x7F800000)  # NaNs: these formats have no NaN code
        x = bits[keep].view(np.float32) if not keep.all() else bits.view(np.float32)
        if x.size == 0:
            continue
        got = tier.impl.quantize(x, f, tie=tie)
        want = ref.quantize(x, f, tie=tie)
        bad = np.flatnonzero(got != want)
        assert bad.size == 0, (f"{fmt}/{tie}: {bad.size} codes differ in chunk {start:#x}; first x bits "
                               f"{int(x.view(np.uint32)[bad[0]]):#010x}: {int(got[bad[0]])} != {int(want[bad[0]])}")


def _raised(fn, f, tie):
    try:
        fn(np.zeros(1, np.float32), f, tie=tie)
    except Exception as exc:
        return exc
    raise AssertionError(f"the reference accepts tie={tie!r} for {f.name} but the oracle says it is undefined")


BLOCK_VARIANTS = [(n, r) for n in ref.FORMAT_NAMES if not isinstance(get_format(n), ref.ElementFormat)
                  for r in (("floor", "rceil") if isinstance(get_format(n), ref.MXFormat) else (None,))]


@pytest.mark.spec("DEF-FORMAT-BLOCK-ABSMAX", "DEF-FORMAT-MX", "DEF-FORMAT-NVFP4")
@pytest.mark.tier_functions("quantize")
@pytest.mark.parametrize("dtype", sorted(DT16))
@pytest.mark.parametrize("name, rule", BLOCK_VARIANTS, ids=[f"{n}-{r}" if r else n for n, r in BLOCK_VARIANTS])
def test_every_16bit_pattern_block_formats(tier, name, rule, dtype):
    f = get_format(name, scale_rule=rule) if rule else get_format(name)
    x = all16(DT16[dtype])
    x = x[np.isfinite(x.astype(np.float32))]
    shuffled = np.random.default_rng(4).permutation(x)
    cols = 3 * f.block_size + 7
    inputs = [x, shuffled.reshape(1, -1), shuffled[: (x.size // cols) * cols].reshape(-1, cols)]
    for tie in TIE_RULES:
        for i, xi in enumerate(inputs):
            assert_same_outcome(lambda impl: impl.quantize(xi, f, tie=tie), tier.impl, ref, path=f"{name}/{rule}/{dtype}/{tie}/input {i}")


@pytest.mark.spec("DEF-BLOCK-LAYOUT", "DEF-FORMAT-BLOCK-ABSMAX")
@pytest.mark.tier_functions("quantize", "dequantize")
@pytest.mark.parametrize("dtype", sorted(DT16))
@pytest.mark.parametrize("name", FLAT_FORMATS)
def test_every_16bit_pattern_flat_layout(tier, name, dtype):
    # layout="flat": blocks of the flattened tensor, across rows; the last block partial and divided (n mod B
    # elements), and every pattern in one partial block of a block size beyond n.
    f = get_format(name, layout="flat")
    x = all16(DT16[dtype])
    x = x[np.isfinite(x.astype(np.float32))]
    shuffled = np.random.default_rng(4).permutation(x)
    cols = 3 * f.block_size + 7
    inputs = [(f, x[: x.size - 37]), (f, shuffled[: (x.size // cols) * cols].reshape(-1, cols)),
              (get_format(name, layout="flat", block_size=1 << 17), shuffled)]
    def body(impl, g, xi, tie):  # the codes, and the values the tier decodes from its own codes
        q = impl.quantize(xi, g, tie=tie)
        return q, impl.dequantize(q, g)
    for tie in TIE_RULES:
        for g, xi in inputs:
            assert_same_outcome(body, tier.impl, ref, g, xi, tie, path=f"{name}/flat/{g.block_size}/{dtype}/{tie} (codes, dequantized)")


@pytest.mark.spec("DEF-BLOCK-LAYOUT", "DEF-FORMAT-BLOCK-ABSMAX")
@pytest.mark.tier_functions("quantize")
@pytest.mark.parametrize("name", FLAT_FORMATS)
def test_flat_partial_block_scales(tier, name):
    # The flat layout's divided partial last block at every 8th positive finite bfloat16 scale s (every 64th for
    # the tie rules other than 'even'), the block holding the float32 values next to each threshold times s; a
    # full block of the same values (multiplied) in front.  One tensor of 2B - 1 elements per scale.
    f = get_format(name, layout="flat")
    bs = f.block_size
    rows = near_threshold_rows(bs - 1, f.element.codebook.values)
    for tie in TIE_RULES:
        for row in rows[:: 8 if tie == "even" else 64]:
            x = np.concatenate([np.resize(row, bs), row])
            if assert_same_outcome(lambda impl: impl.quantize(x, f, tie=tie), tier.impl, ref,
                                   path=f"{name}/flat/{tie} s={row[0]!r}") == "raised":
                break  # a tie rule the codebook does not accept: every row raises alike


@pytest.mark.spec("DEF-SUPPORT-VALUE", "DEF-SUPPORT-BITS", "DEF-TOTAL-ORDER")
@pytest.mark.tier_functions("realized_support", "support_size")
def test_float32_support_every_class(tier):
    # Every float32 pattern whose low 16 bits are 0x0000, 0x0001, 0x8000 or 0xffff (every sign, exponent
    # and high-mantissa class: ±0, subnormals, ±Inf, NaNs), repeated and shuffled.
    hi = np.arange(1 << 16, dtype=np.uint32) << np.uint32(16)
    p = (hi[:, None] | np.array([0, 1, 0x8000, 0xFFFF], np.uint32)[None, :]).reshape(-1).view(np.float32)
    x = np.random.default_rng(5).permutation(np.concatenate([p, p[::3], p[::7]]))
    for by in ("value", "bits"):
        for pol in ("omit", "propagate"):
            assert_bits_equal(tier.impl.realized_support(x, by=by, nan_policy=pol), ref.realized_support(x, by=by, nan_policy=pol))
            assert tier.impl.support_size(x, by=by, nan_policy=pol) == ref.support_size(x, by=by, nan_policy=pol)
