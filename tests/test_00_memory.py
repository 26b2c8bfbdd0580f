"""DEF-DOMAIN — the reference's element-wise loops run in chunks; the result is the whole's, bit for bit.

Inputs larger than a chunk (2**18 elements) are compared with the same operation on pieces
cut at places that are not chunk boundaries: element-wise results must concatenate, and
histograms must add.  Peak memory itself is measured in bench/peak_memory.py, not here.
"""

from fractions import Fraction

import numpy as np
import pytest

import natprec.reference as npr
from natprec.conformance.harness import assert_bits_equal

N = (1 << 18) * 2 + 12_345


@pytest.fixture(scope="module")
def x():
    v = np.random.default_rng(5).standard_normal(N).astype(np.float32) * 3
    v[::97] = -0.0
    v[5::101] = np.float32(2.0) ** -140  # subnormals
    return v


CUT = (1 << 18) - 777  # not a chunk boundary


@pytest.mark.spec("DEF-QUANTIZE", "DEF-FORMAT-ELEMENT")
@pytest.mark.parametrize("fmt", ["nf4", "float8_e4m3fn", "int8", "float16"])
def test_chunked_quantize_is_element_wise(x, fmt):
    whole = npr.quantize(x, fmt)
    assert_bits_equal(whole, np.concatenate([npr.quantize(x[:CUT], fmt), npr.quantize(x[CUT:], fmt)]))
    assert_bits_equal(npr.nearest_index(x, npr.get_format(fmt).codebook),
                      np.concatenate([npr.nearest_index(x[:CUT], npr.get_format(fmt).codebook),
                                      npr.nearest_index(x[CUT:], npr.get_format(fmt).codebook)]))


@pytest.mark.spec("DEF-MARGIN")
def test_chunked_margins_are_element_wise(x):
    whole = npr.voronoi_margin(x, "nf4")
    assert_bits_equal(whole, np.concatenate([npr.voronoi_margin(x[:CUT], "nf4"), npr.voronoi_margin(x[CUT:], "nf4")]))
    assert npr.min_voronoi_margin(x, "nf4") == whole.min()


@pytest.mark.spec("DEF-HISTOGRAM")
def test_chunked_histogram_adds(x):
    h = npr.discretized_histogram(x, 0.01)
    a, b = npr.discretized_histogram(x[:CUT], 0.01), npr.discretized_histogram(x[CUT:], 0.01)
    merged = {}
    for part in (a, b):
        for k, c in zip(part.bins.tolist(), part.counts.tolist()):
            merged[k] = merged.get(k, 0) + c
    assert h.bins.tolist() == sorted(merged) and h.counts.tolist() == [merged[k] for k in sorted(merged)]
    assert h.bins.dtype == np.int64 and h.counts.dtype == np.int64 and int(h.counts.sum()) == N


def _census_oracle(x, fmt):
    """δ, cells used and colliding values from every (cell, value) pair at once (no chunks, no support)."""
    f = npr.get_format(fmt)
    v = np.where(x == 0, np.float32(0), x).astype(np.float32)  # by value: −0.0 is +0.0
    if isinstance(f, npr.ElementFormat):
        cell = npr.quantize(v, f).astype(np.int64)
    else:
        q = npr.quantize(v, f)
        cell = ((np.arange(v.size, dtype=np.int64) // f.block_size) << f.element.nbits) + q.codes.astype(np.int64)
    pairs, counts = np.unique(np.stack([cell.astype(np.float64), v.astype(np.float64)]), axis=1, return_counts=True)
    cells, per_cell_values = np.unique(pairs[0], return_counts=True)
    sums = {}
    for c, n in zip(pairs[0].tolist(), counts.tolist()):
        sums[c] = sums.get(c, 0) + n
    num = sum(s * s for s in sums.values()) - sum(n * n for n in counts.tolist())
    multi = per_cell_values > 1
    return num, int(cells.size), int(per_cell_values[multi].sum()), int(multi.sum())


@pytest.mark.spec("DEF-COLLISION-CENSUS", "DEF-COLLISION-PROBABILITY")
@pytest.mark.parametrize("fmt", ["nf4", "float8_e4m3fn", "nf4_absmax64", "mxfp4", "nvfp4"])
def test_census_over_several_chunks_equals_all_pairs_at_once(x, fmt):
    r = npr.injectivity_report(x, fmt, max_listed=2)
    num, cells_used, colliding, multi_cells = _census_oracle(x, fmt)
    assert r.delta == Fraction(num, x.size**2)
    assert (r.cells_used, r.colliding_values, r.n_elements) == (cells_used, colliding, x.size)
    assert len(r.collisions) == min(2, multi_cells)
    sizes = [int(c.counts.sum()) for c in r.collisions]
    assert sizes == sorted(sizes, reverse=True)
