"""The collision census on the accelerated tier (accelerated/census.py, kernels/census.cu) on the host build, against the reference.

The tier prepares with the reference, computes the (cell, value) pairs with its kernels and
finishes with ``natprec.reference.finish_census``.  Here the launches are served by the host
build of the kernels' header (HostBackend), so the tier's pairs come from the very functions
the device runs (np_support_key32 / the 16-bit support passes, the radix sort, the element
kernel; for block formats the block kernel, np_census_block's per-block sort and heads, and
np_census_cell).  Checked bit for bit:

* element formats (every one the kernels take) × every tie rule, on every finite float16 and
  bfloat16 pattern (with ±0 and ±Inf), repeated and shuffled, every collision listed;
  float32 on 262 144 patterns of every class (NaNs omitted);
* every block format × tie rule × float16/bfloat16/float32, shapes with partial last blocks,
  signed zeros and repeated values, and every finite float16 pattern as rows of 71 elements;
* the block pairs against an independent numpy oracle (np.unique of (block, encoding, value));
* hypothesis arrays, formats, tie rules, NaN policies and listing bounds; the host paths.
"""


import ml_dtypes
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import natprec.accelerated as acc
import natprec.reference as ref
from natprec.accelerated.census import census_pairs
from natprec.conformance.harness import assert_bits_equal, assert_same_outcome
from natprec.conformance.strategies import float_arrays

BF16 = np.dtype(ml_dtypes.bfloat16)
DEVICE_ELEMENT = tuple(n for n in ref.element_format_names() if acc.plans.device_ok(ref.get_format(n)))


def _same_report(host, x, fmt, *, path="device", **kw):
    with acc.use_backend(host):
        got = acc.injectivity_report(x, fmt, **kw)
        assert acc.last_path() == path, (fmt, kw, acc.last_path())
    want = ref.injectivity_report(x, fmt, **kw)
    assert_bits_equal(got, want, f"census {fmt} {x.dtype} {kw}")
    return got


def _all16(dtype) -> np.ndarray:
    """Every non-NaN pattern of a 16-bit dtype (±0, subnormals, ±Inf), some repeated, shuffled."""
    v = np.arange(1 << 16, dtype=np.uint16).view(dtype)
    v = v[~np.isnan(v.astype(np.float32))]
    return np.random.default_rng(16).permutation(np.concatenate([v, v[::5], v[::11]]))


@pytest.mark.spec("DEF-COLLISION-CENSUS", "DEF-CENSUS-PAIRS", "DEF-COLLISION-PROBABILITY")
@pytest.mark.parametrize("dtype", [np.dtype(np.float16), BF16], ids=["float16", "bfloat16"])
@pytest.mark.parametrize("fmt", DEVICE_ELEMENT)
def test_element_formats_every_16bit_pattern(host, dtype, fmt):
    x = _all16(dtype)
    for tie in ref.TIE_RULES:
        try:
            ref.injectivity_report(x[:4], fmt, tie=tie)
        except ref.InvalidParameterError:
            continue  # a tie rule the format does not define: the tier raises the same (hypothesis test below)
        _same_report(host, x, fmt, tie=tie, max_listed=None)
    _same_report(host, x, fmt, max_listed=3)


def _patterns32() -> np.ndarray:
    hi = np.arange(1 << 16, dtype=np.uint32) << np.uint32(16)
    lows = np.array([0x0000, 0x0001, 0x8000, 0xFFFF], np.uint32)
    return (hi[:, None] | lows[None, :]).reshape(-1).view(np.float32)


@pytest.mark.spec("DEF-COLLISION-CENSUS", "DEF-CENSUS-PAIRS")
@pytest.mark.parametrize("fmt", ["nf4", "int8", "float8_e4m3fn", "float4_e2m1fn", "float16", "bfloat16"])
def test_element_formats_float32_classes(host, fmt):
    p = _patterns32()
    x = np.random.default_rng(32).permutation(np.concatenate([p, p[::3]]))
    for tie in ("even", "away"):
        _same_report(host, x, fmt, tie=tie, nan_policy="omit", max_listed=None)
    _same_report(host, x, fmt, nan_policy="omit")


def _block_inputs(dtype):
    rng = np.random.default_rng(7)
    a = rng.standard_normal((5, 100)).astype(np.float16)  # few distinct values: many collisions
    a[0, :9] = -0.0
    a[1, 3:70] = 0.0
    a[2, :] = a[2, 0]
    a[3, ::2] = -a[3, 1::2]
    yield a.astype(dtype)
    yield (rng.standard_normal(1000) * 1e-3).astype(dtype)  # 1-D, partial last block for every block size
    yield rng.standard_normal((2, 3, 33)).astype(dtype)
    yield np.asarray([[-0.0]], dtype=dtype)


@pytest.mark.spec("DEF-COLLISION-CENSUS", "DEF-CENSUS-PAIRS", "DEF-FORMAT-BLOCK-ABSMAX", "DEF-FORMAT-MX", "DEF-FORMAT-NVFP4")
@pytest.mark.parametrize("dtype", [np.dtype(np.float16), BF16, np.dtype(np.float32)], ids=["float16", "bfloat16", "float32"])
@pytest.mark.parametrize("fmt", ref.block_format_names())
def test_block_formats(host, dtype, fmt):
    for x in _block_inputs(dtype):
        for tie in ref.TIE_RULES:
            _same_report(host, x, fmt, tie=tie, max_listed=None)
        _same_report(host, x, fmt)
        _same_report(host, x, fmt, max_listed=0)


@pytest.mark.spec("DEF-COLLISION-CENSUS", "DEF-CENSUS-PAIRS")
@pytest.mark.parametrize("fmt", ref.block_format_names())
def test_block_formats_every_float16_pattern(host, fmt):
    v = np.arange(1 << 16, dtype=np.uint16).view(np.float16)
    v = v[np.isfinite(v)]
    x = np.random.default_rng(3).permutation(np.concatenate([v, v[::7]]))
    x = x[: x.size // 71 * 71].reshape(-1, 71)
    _same_report(host, x, fmt, max_listed=None)


def _oracle_block_pairs(x: np.ndarray, fmt: str, tie: str):
    """(cells, values, counts) of a block format by np.unique over (cell id, value key): no sort per block."""
    f = ref.get_format(fmt)
    el = f.element
    q = ref.quantize(x, fmt, tie=tie)
    ncols = x.shape[-1]
    nb = -(-ncols // f.block_size)
    col = np.arange(x.size) % ncols
    block = (np.arange(x.size) // ncols) * nb + col // f.block_size
    v = x.reshape(-1).astype(np.float32)
    codes = q.codes.reshape(-1).astype(np.int64)
    if el.signed_zero and el.zero_index >= 0:
        codes = np.where(v == 0, codes & ~(1 << el.sign_bit), codes)
    cell = (block << el.nbits) + codes
    key = ref.total_order_key(np.where(v == 0, np.float32(0), v)).astype(np.int64)
    u, counts = np.unique(cell * (1 << 32) + key, return_counts=True)
    vals = ref.from_total_order_key((u & 0xFFFFFFFF).astype(np.uint32), np.float32).astype(x.dtype)
    return u >> 32, vals, counts.astype(np.int64)


@pytest.mark.spec("DEF-CENSUS-PAIRS")
@pytest.mark.parametrize("fmt", ref.block_format_names())
def test_block_pairs_against_unique(host, fmt):
    for x in _block_inputs(np.float32):
        for tie in ("even", "up"):
            plan = ref.prepare_injectivity(x, fmt, tie=tie)
            with acc.use_backend(host):
                got = census_pairs(plan, acc.quantize(x, fmt, tie=tie))
            cells, vals, counts = _oracle_block_pairs(x, fmt, tie)
            assert_bits_equal((got.cells, got.values, got.counts), (cells, vals, counts), f"pairs {fmt} {tie}")


@pytest.mark.spec("DEF-COLLISION-CENSUS")
def test_host_paths(host):
    x = np.random.default_rng(1).standard_normal(300)
    _same_report(host, x, "nf4", path="host:float64 input")
    _same_report(host, x, "mxfp4", path="host:float64 input")
    with acc.use_backend(host):
        with pytest.raises(ref.InvalidParameterError):
            census_pairs(ref.prepare_injectivity(x, "nf4"))


@pytest.mark.spec("DEF-COLLISION-CENSUS")
@pytest.mark.parametrize("args", [
    (np.array([1.0, np.nan], np.float32), "nf4", {}),
    (np.zeros(0, np.float16), "nf4", {}),
    (np.array([np.nan], np.float16), "mxfp4", {"nan_policy": "omit"}),
    (np.ones(4, np.float32), "nf4", {"max_listed": -1}),
    (np.ones(4, np.float32), "no_such_format", {}),
    (np.ones(4, np.float32), "nf4", {"tie": "sideways"}),
    (np.array([np.inf, 1.0], np.float32), "mxfp4", {}),
])
def test_bad_input_raises_before_any_launch(args):
    x, fmt, kw = args  # no backend installed: reaching a launch would raise RuntimeError (no GPU)
    assert_same_outcome(lambda impl: impl.injectivity_report(x, fmt, **kw), acc, ref)


@pytest.mark.spec("DEF-COLLISION-CENSUS", "DEF-CENSUS-PAIRS")
@given(x=float_arrays(dtypes=(np.float16, BF16, np.float32)),
       fmt=st.sampled_from(DEVICE_ELEMENT + ref.block_format_names()), tie=st.sampled_from(ref.TIE_RULES),
       pol=st.sampled_from(["raise", "omit"]), listed=st.sampled_from([None, 0, 1, 16]))
def test_hypothesis(host, x, fmt, tie, pol, listed):
    with acc.use_backend(host):
        assert_same_outcome(lambda impl: impl.injectivity_report(x, fmt, tie=tie, nan_policy=pol, max_listed=listed), acc, ref)
