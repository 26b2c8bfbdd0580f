"""Reference-tier speed, as ratios against the NumPy primitive each definition reduces to.

Run: ``python -m pytest bench/bench_reference.py --benchmark-only --benchmark-group-by=group``.
Each group pairs a natprec call with its baseline on the same 2**24 float32 input in one
run; the README reports the ratio of their minimum times.  Targets (issue 2): quantize to a
16-entry codebook ≤ 1.5× one ``np.searchsorted`` pass; support count ≤ 1.5× ``np.sort``.
"""

import numpy as np
import pytest

import natprec.reference as ref

N = 1 << 24


@pytest.fixture(scope="module")
def x():
    return np.random.default_rng(0).standard_normal(N).astype(np.float32)


@pytest.fixture(scope="module")
def nf4():
    fmt = ref.get_format("nf4")
    ref.thresholds(fmt.codebook, "even", np.float32)  # build the thresholds once, outside the timing
    return fmt


@pytest.mark.benchmark(group="quantize-16")
def test_baseline_searchsorted(benchmark, x, nf4):
    u = ref.thresholds(nf4.codebook, "even", np.float32)
    benchmark(np.searchsorted, u, x)


@pytest.mark.benchmark(group="quantize-16")
def test_quantize_nf4(benchmark, x, nf4):
    codes = benchmark(ref.quantize, x, nf4)
    assert codes.dtype == np.uint8 and codes.shape == x.shape


@pytest.mark.benchmark(group="support")
def test_baseline_sort(benchmark, x):
    benchmark(np.sort, x)


@pytest.mark.benchmark(group="support")
def test_support_size(benchmark, x):
    assert benchmark(ref.support_size, x) > 0


@pytest.mark.benchmark(group="support")
def test_realized_support_with_counts(benchmark, x):
    assert benchmark(ref.realized_support, x).counts.sum() == N


@pytest.mark.benchmark(group="support-float16")
def test_support_float16_bincount(benchmark, x):
    h = x.astype(np.float16)
    assert benchmark(ref.support_size, h) > 0


@pytest.mark.benchmark(group="margin")
def test_voronoi_margin_nf4(benchmark, x, nf4):
    benchmark.pedantic(ref.voronoi_margin, args=(x[: 1 << 22], nf4), rounds=3)


@pytest.mark.benchmark(group="entropy")
def test_discretized_entropy(benchmark, x):
    benchmark.pedantic(ref.discretized_entropy_bits, args=(x, 0.01), rounds=3)
