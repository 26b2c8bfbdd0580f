"""float32 realized support in the accelerated tier (kernels/sort.cu) on the host build, against the reference.

The device path maps float32 bits to support keys (np_support_key32), sorts them with a
tile-serial LSD radix sort (4 passes of 8 bits; tile counts digit-major, an exclusive scan,
a stable scatter per tile) and counts runs (np_run_head).  The host harness runs the same
functions with the same layout, so these tests check the key mapping, the sort and the
run-length logic bit for bit against natprec.reference:

* every float32 pattern whose low 16 bits are one of 0x0000, 0x0001, 0x8000, 0xffff (all
  sign/exponent/high-mantissa classes: ±0, subnormals, ±Inf, every NaN class), repeated and
  shuffled, by value and by bits, nan_policy omit and propagate;
* sizes at the tile boundaries (0, 1, 4095, 4096, 4097, 3·4096 + 5);
* hypothesis float32 arrays.
"""


import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import natprec.accelerated as acc
import natprec.reference as ref
from natprec.conformance.harness import assert_bits_equal, assert_same_outcome
from natprec.conformance.strategies import float_arrays


def _patterns() -> np.ndarray:
    hi = np.arange(1 << 16, dtype=np.uint32) << np.uint32(16)
    lows = np.array([0x0000, 0x0001, 0x8000, 0xFFFF], np.uint32)
    return (hi[:, None] | lows[None, :]).reshape(-1).view(np.float32)


def _same_support(host, x, by, pol):
    with acc.use_backend(host):
        got = acc.realized_support(x, by=by, nan_policy=pol)
        assert acc.last_path() == "device"
        size = acc.support_size(x, by=by, nan_policy=pol)
    want = ref.realized_support(x, by=by, nan_policy=pol)
    assert_bits_equal(got, want, f"support {by}/{pol} n={x.size}")
    assert size == ref.support_size(x, by=by, nan_policy=pol)


@pytest.mark.spec("DEF-SUPPORT-VALUE", "DEF-SUPPORT-BITS", "DEF-TOTAL-ORDER")
@pytest.mark.parametrize("by", ["value", "bits"])
@pytest.mark.parametrize("pol", ["omit", "propagate"])
def test_every_float32_class(host, by, pol):
    p = _patterns()
    x = np.random.default_rng(5).permutation(np.concatenate([p, p[::3], p[::7]]))
    _same_support(host, x, by, pol)


@pytest.mark.spec("DEF-SUPPORT-VALUE", "DEF-SUPPORT-BITS")
@pytest.mark.parametrize("n", [0, 1, 4095, 4096, 4097, 3 * 4096 + 5])
def test_tile_boundaries(host, n):
    x = np.random.default_rng(n).standard_normal(n).astype(np.float16).astype(np.float32)  # many repeats
    for by in ("value", "bits"):
        if n == 0:
            with acc.use_backend(host):
                assert_bits_equal(acc.realized_support(x, by=by), ref.realized_support(x, by=by), "empty")
            continue
        _same_support(host, x, by, "raise")


@pytest.mark.spec("DEF-SUPPORT-VALUE", "DEF-SUPPORT-BITS")
@given(x=float_arrays(dtypes=(np.float32,)), by=st.sampled_from(["value", "bits"]),
       pol=st.sampled_from(["raise", "omit", "propagate"]))
def test_hypothesis_float32(host, x, by, pol):
    with acc.use_backend(host):
        assert_same_outcome(lambda impl: (impl.realized_support(x, by=by, nan_policy=pol),
                                          impl.support_size(x, by=by, nan_policy=pol)), acc, ref)
