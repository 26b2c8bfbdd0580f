"""Reference-tier speed, as ratios against the NumPy primitive each definition reduces to.

Run: ``python -m pytest bench/bench_reference.py --benchmark-only --benchmark-group-by=group``.
Each group pairs a natprec call with its baseline on the same 2**24 float32 input in one
run; the README reports the ratio of their minimum times.  Targets (issue 2): quantize to a
16-entry codebook ≤ 1.5× one ``np.searchsorted`` pass; support count ≤ 1.5× ``np.sort``; (issue 17)
``injectivity_report`` ≤ 2× a plain vectorized census (``census_numpy``) on 2**22 elements, groups
``census-<format>``, each asserting that both give the same counts and δ.
"""

from fractions import Fraction

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


# The collision census (issue 17): injectivity_report beside a plain vectorized NumPy census of the same
# 2**22 float32 elements — quantize, a cell id per element, one np.unique over packed (cell, value) keys.
CENSUS_N = 1 << 22
CENSUS_FORMATS = ["nf4", "float8_e4m3fn", "int4", "nf4_absmax64", "mxfp4", "nvfp4"]


def census_numpy(x: np.ndarray, fmt: str) -> tuple[int, int, int]:
    """(δ numerator, cells used, colliding values) of DEF-COLLISION-CENSUS for a 1-D float32 x, the plain way.

    Every element gets its cell id (the saturating encoding; for a block format (block << bits) + encoding)
    after −0.0 → +0.0; the pair (cell, value bits) is packed into one uint64 and np.unique counts the pairs.
    """
    f = ref.get_format(fmt)
    v = np.where(x == 0, np.float32(0), x)  # by value: −0.0 is +0.0
    if isinstance(f, ref.ElementFormat):
        cell = ref.quantize(v, f, saturate=True).astype(np.uint64)
    else:
        codes = ref.quantize(v, f).codes.astype(np.uint64)
        cell = (np.arange(v.size, dtype=np.uint64) // np.uint64(f.block_size) << np.uint64(f.element.nbits)) + codes
    pairs, counts = np.unique((cell << np.uint64(32)) | v.view(np.uint32), return_counts=True)
    pair_cell = pairs >> np.uint64(32)
    starts = np.flatnonzero(np.concatenate(([True], pair_cell[1:] != pair_cell[:-1])))
    values_per_cell = np.diff(starts, append=pair_cell.size)
    per_cell = np.add.reduceat(counts, starts)
    num = int(np.dot(per_cell, per_cell)) - int(np.dot(counts, counts))
    return num, int(starts.size), int(values_per_cell[values_per_cell > 1].sum())


def _census_group(fmt):
    return pytest.mark.benchmark(group=f"census-{fmt}")


def _agree(rep, census) -> None:
    """The equality check of a census group: the report's counts and δ are the plain census's."""
    num, cells_used, colliding = census
    assert (rep.n_elements, rep.delta, rep.cells_used, rep.colliding_values) == (
        CENSUS_N, Fraction(num, CENSUS_N**2), cells_used, colliding)


@pytest.mark.parametrize("fmt", [pytest.param(f, marks=_census_group(f)) for f in CENSUS_FORMATS])
def test_baseline_census_numpy(benchmark, x, fmt):
    xs = x[:CENSUS_N]
    _agree(ref.injectivity_report(xs, fmt), benchmark.pedantic(census_numpy, args=(xs, fmt), rounds=3))


@pytest.mark.parametrize("fmt", [pytest.param(f, marks=_census_group(f)) for f in CENSUS_FORMATS])
def test_census_injectivity_report(benchmark, x, fmt):
    xs = x[:CENSUS_N]
    _agree(benchmark.pedantic(ref.injectivity_report, args=(xs, fmt), rounds=3), census_numpy(xs, fmt))
