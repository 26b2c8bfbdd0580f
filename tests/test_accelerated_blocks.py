"""Block formats in the accelerated tier, on the host build of the kernels' header, against the reference.

accelerated/kernels/block.cu runs np_block_quantize_one (natprec_scalar.cuh) once per block;
here the g++ build runs the same function, through the tier (natprec.accelerated.quantize with
the host backend), so the tier's use of the reference's plan (prepare_block_input) and its
layout of codes and scales are checked too.  Bit for bit (codes, scales, tensor scale):

* every finite float16 and bfloat16 pattern as input, in bit order (every tie rule) and shuffled,
  for every block format and both MX scale rules;
* every scale: blocks whose max |x| is each positive finite bfloat16 value (so every E8M0
  exponent, every RCEIL boundary, every absmax scale's binade and every E4M3 scale code that a
  tensor reaches), the other positions every bfloat16 ratio in [-1, 1] cycling through them;
* hypothesis arrays of any accepted dtype and shape (float64 rounded once, as the reference);
* bad input raises the reference's exception with no backend (before any launch).
"""


import ml_dtypes
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import natprec.accelerated as acc
import natprec.reference as ref
from natprec.conformance.exhaustive import DT16, all16
from natprec.conformance.harness import assert_bits_equal, assert_same_outcome
from natprec.conformance.strategies import float_arrays, tie_rules

BF16 = np.dtype(ml_dtypes.bfloat16)
BLOCK = [n for n in ref.FORMAT_NAMES if not isinstance(ref.get_format(n), ref.ElementFormat)]
VARIANTS = [(n, r) for n in BLOCK for r in (("floor", "rceil") if isinstance(ref.get_format(n), ref.MXFormat) else (None,))]
IDS = [f"{n}-{r}" if r else n for n, r in VARIANTS]


def _fmt(name, rule):
    return ref.get_format(name, scale_rule=rule) if rule else ref.get_format(name)


def _check(host, x, f, tie="even", what=""):
    try:
        want = ref.quantize(x, f, tie=tie)
    except ref.errors.NatprecError as exc:
        with acc.use_backend(host), pytest.raises(type(exc)):
            acc.quantize(x, f, tie=tie)
        return 0
    with acc.use_backend(host):
        got = acc.quantize(x, f, tie=tie)
        assert acc.last_path() == "device"
    assert_bits_equal(got, want, what)
    return x.size


@pytest.mark.spec("DEF-FORMAT-BLOCK-ABSMAX", "DEF-FORMAT-MX", "DEF-FORMAT-NVFP4")
@pytest.mark.parametrize("dtype", sorted(DT16))
@pytest.mark.parametrize("name, rule", VARIANTS, ids=IDS)
def test_every_16bit_pattern(host, name, rule, dtype):
    f = _fmt(name, rule)
    x = all16(DT16[dtype])
    x = x[np.isfinite(x.astype(np.float32))]
    checked = 0
    for tie in ref.TIE_RULES:
        checked += _check(host, x, f, tie, f"{name}/{rule}/{dtype}/{tie}")
    shuffled = np.random.default_rng(4).permutation(x)
    checked += _check(host, shuffled.reshape(1, -1), f, "even", f"{name}/{rule}/{dtype} shuffled")
    # rows whose length is not a multiple of the block: partial last blocks in every row
    cols = 3 * f.block_size + 7
    m = (x.size // cols) * cols
    checked += _check(host, shuffled[:m].reshape(-1, cols), f, "even", f"{name}/{rule}/{dtype} rows")
    assert checked > 0


def _every_scale_blocks(bs: int) -> np.ndarray:
    """One block per positive finite bfloat16 value a: a at a rotating position, the others a * r for the
    bfloat16 ratios r in [-1, 1] taken in turn (rounded to float32)."""
    b = all16(BF16)
    v = b.astype(np.float32)
    a = v[np.isfinite(v) & (v > 0)]
    r = v[np.isfinite(v) & (np.abs(v) <= 1)]
    nb = a.size
    ratios = np.resize(r, nb * (bs - 1)).reshape(nb, bs - 1)
    blocks = np.empty((nb, bs), np.float32)
    blocks[:, 1:] = (a[:, None] * ratios).astype(np.float32)
    blocks[:, 0] = a
    pos = np.arange(nb) % bs  # move a to position pos (swap with what is there)
    rows = np.arange(nb)
    tmp = blocks[rows, pos].copy()
    blocks[rows, pos] = a
    blocks[rows, 0] = np.where(pos == 0, a, tmp)
    return blocks.reshape(-1)


@pytest.mark.spec("DEF-FORMAT-BLOCK-ABSMAX", "DEF-FORMAT-MX", "DEF-FORMAT-NVFP4")
@pytest.mark.parametrize("name, rule", VARIANTS, ids=IDS)
def test_every_scale(host, name, rule):
    f = _fmt(name, rule)
    x = _every_scale_blocks(f.block_size)
    assert _check(host, x, f, "even", f"{name}/{rule} every scale") == x.size
    q = ref.quantize(x, f)
    if isinstance(f, ref.MXFormat):
        u = np.unique(q.scales).astype(np.int64)  # every E8M0 exponent from the clamp at -127 up to the largest
        assert u[0] == 0 and np.array_equal(u, np.arange(u[0], u[-1] + 1)) and u[-1] >= 254 - f.emax_elem - 1
    elif isinstance(f, ref.NVFP4Format):
        assert np.unique(q.scales).size >= 100  # E4M3 scale codes reached under one tensor scale
        # and with the tensor scale moved: the largest block alone sets it
        for top in (np.float32(1e-30), np.float32(3e38), np.float32(1.0)):
            y = np.minimum(np.abs(x), top) * np.sign(x)
            _check(host, y.astype(np.float32), f, "even", f"nvfp4 amax {top}")


@pytest.mark.spec("DEF-FORMAT-BLOCK-ABSMAX", "DEF-FORMAT-MX", "DEF-FORMAT-NVFP4")
@given(x=float_arrays(allow_nan=False, allow_infinity=False), v=st.sampled_from(VARIANTS), tie=tie_rules)
def test_hypothesis_arrays(host, x, v, tie):
    f = _fmt(*v)
    with acc.use_backend(host):
        assert_same_outcome(lambda impl: impl.quantize(x, f, tie=tie), acc, ref)


@pytest.mark.spec("DEF-BAD-INPUT")
@pytest.mark.parametrize("args, kw", [
    ((np.array([np.nan, 1.0], np.float32), "mxfp4"), {}),
    ((np.array([np.inf, 1.0], np.float32), "nvfp4"), {}),
    ((np.array([1e300, 1.0]), "nf4_absmax64"), {}),
    ((np.array([1.0], np.float32), "mxfp4"), {"saturate": False}),
    ((np.array([1.0], np.float32), "mxfp4"), {"nan_policy": "propagate"}),
    ((np.array([1.0], np.float32), "nvfp4"), {"tie": "sideways"}),
    ((np.array([1], np.int32), "mxfp4"), {}),
])
def test_bad_block_input_raises_before_any_launch(args, kw):
    with pytest.raises(Exception) as want:
        ref.quantize(*args, **kw)
    if acc.gpu_available()[0]:
        pytest.skip("a GPU is present: the no-launch property is only observable without one")
    with pytest.raises(type(want.value)):
        acc.quantize(*args, **kw)


def test_prepare_block_input_refuses_element_formats():
    with pytest.raises(ref.errors.InvalidParameterError):
        ref.prepare_block_input(np.ones(3, np.float32), "nf4")


@pytest.mark.spec("DEF-FORMAT-NVFP4")
def test_nvfp4_every_tensor_scale_binade(host):
    # The tensor scale (S_enc, S_dec, the factor) from many tensor maxima A: every 8th positive finite
    # bfloat16 value, one small tensor each (A and values below it).
    v = all16(BF16).astype(np.float32)
    tops = v[np.isfinite(v) & (v > 0)][::8]
    fracs = np.array([1.0, -0.9, 0.51, 0.26, -0.125, 0.0626, 0.031, -0.0156, 0.0079, 0.004, 0.002, -0.001,
                      1e-4, 1e-5, 0.0, -0.0, 0.77, 0.333, 0.05, -0.6], np.float32)
    for a in tops:
        x = (a * fracs).astype(np.float32)
        _check(host, x, ref.get_format("nvfp4"), "even", f"nvfp4 A={a!r}")


@pytest.mark.spec("DEF-FORMAT-NVFP4")
def test_nvfp4_tensor_scales_as_the_spec_states(host):
    # S_enc = min(fl32(2688/A), FLT_MAX) (1 when A = 0 or S_enc = 0), S_dec = fl32(1/S_enc),
    # factor = fl32(S_enc · fl32(1/6)), in NumPy float32 on every positive finite float16 and bfloat16 A.
    f32 = np.float32
    big = f32(np.finfo(f32).max)
    As = np.concatenate([all16(DT16[d]).astype(f32) for d in sorted(DT16)] + [np.array([0.0, 3.4e38, 1e-45], f32)])
    As = As[np.isfinite(As) & (As >= 0)]
    out = np.zeros(3, f32)
    with np.errstate(divide="ignore", over="ignore"):
        for A in As[::7]:
            s_enc = np.minimum(np.divide(f32(2688), A, dtype=f32), big) if A > 0 else f32(1)
            s_enc = f32(1) if s_enc == 0 else s_enc
            want = np.array([s_enc, np.divide(f32(1), s_enc, dtype=f32),
                             np.multiply(s_enc, np.divide(f32(1), f32(6), dtype=f32), dtype=f32)], f32)
            host.lib.hh_nvfp4_scales(int(np.array([A], f32).view(np.uint32)[0]), out.ctypes.data)
            assert_bits_equal(out, want, f"A={A!r}")
