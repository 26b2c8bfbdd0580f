"""DEF-BLOCK-LAYOUT, THM-MX-FLOAT32 and the block executor: blocks of the last axis or of the flattened tensor, the
MX elements formed in float32, and the fused per-rectangle executor against independent computations."""

import numpy as np
import pytest

from natprec.reference import (
    BlockQuantized,
    InvalidParameterError,
    dequantize,
    get_format,
    injectivity_report,
    quantize,
    thresholds,
)
from natprec.reference.formats import TASK_ELEMENTS

F32 = np.float32
MX = ["mxfp8_e4m3", "mxfp8_e5m2", "mxfp6_e2m3", "mxfp6_e3m2", "mxfp4"]


def _x(shape, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(shape) * rng.lognormal(0, 2, shape)).astype(F32)


# --------------------------------------------------------------------------------------------
# DEF-BLOCK-LAYOUT
# --------------------------------------------------------------------------------------------


@pytest.mark.spec("DEF-BLOCK-LAYOUT")
@pytest.mark.parametrize("name", ["nf4_absmax64", "fp4_bnb_absmax64"])
@pytest.mark.parametrize("shape", [(6, 128), (3, 4, 64), (1000,), (2, 3, 5, 7)], ids=str)
def test_flat_layout_is_the_flattened_tensor(name, shape):
    """layout="flat" on x = the last-axis layout on x.reshape(-1) wherever no block is partial (codes reshaped, scales
    the same); with a partial last block the two differ only in that block's normalisation (y = fl32(x/s) there)."""
    x = _x(shape)
    flat = get_format(name, layout="flat")
    q, ref1 = quantize(x, flat), quantize(x.reshape(-1), name)
    np.testing.assert_array_equal(q.codes.reshape(-1), ref1.codes)
    np.testing.assert_array_equal(q.scales, ref1.scales)
    np.testing.assert_array_equal(dequantize(q, flat).reshape(-1), dequantize(ref1, name))
    y = flat.scaled(x).reshape(-1)
    n, full = x.size, x.size // 64 * 64
    np.testing.assert_array_equal(y[:full], get_format(name).scaled(x.reshape(-1))[:full])
    if full < n:
        s = np.abs(x.reshape(-1)[full:]).max()
        np.testing.assert_array_equal(y[full:], np.divide(x.reshape(-1)[full:], s, dtype=F32))


@pytest.mark.spec("DEF-BLOCK-LAYOUT", "DEF-COLLISION-CENSUS")
@pytest.mark.parametrize("shape", [(6, 128), (7, 33), (3, 5, 70)], ids=str)
def test_flat_layout_census_is_that_of_the_flattened_tensor(shape):
    """A flat block spans rows: the census of x is the census of x.reshape(-1), counts, δ and listing alike."""
    x = np.round(_x(shape, seed=3), 1)  # repeated values: collisions to list
    f = get_format("nf4_absmax64", layout="flat")
    a, b = injectivity_report(x, f, max_listed=None), injectivity_report(x.reshape(-1), f, max_listed=None)
    assert (a.n_elements, a.support_size, a.codebook_size, a.cells_used, a.colliding_values, a.delta) == \
        (b.n_elements, b.support_size, b.codebook_size, b.cells_used, b.colliding_values, b.delta)
    assert a.codebook_size == 16 * -(-x.size // 64) and a.colliding_values > 0
    assert [(c.cell, c.values.tolist(), c.counts.tolist()) for c in a.collisions] == \
        [(c.cell, c.values.tolist(), c.counts.tolist()) for c in b.collisions]


@pytest.mark.spec("DEF-BLOCK-LAYOUT")
def test_flat_layout_edges():
    """Empty, 0-d, all-zero and tiny partial blocks in the flat layout."""
    f = get_format("nf4_absmax64", layout="flat")
    q = quantize(np.zeros((0, 5), F32), f)
    assert q.codes.shape == (0, 5) and q.scales.shape == (0,) and dequantize(q, f).shape == (0, 5)
    q = quantize(np.float32(3.0), f)
    assert q.codes.shape == () and q.scales.tolist() == [3.0] and dequantize(q, f) == 3.0
    x = np.zeros(70, F32)
    x[65] = -0.0
    q = quantize(x, f)
    assert (q.codes == 7).all() and q.scales.tolist() == [0.0, 0.0] and (dequantize(q, f) == 0).all()
    x[64:67] = 2.0**-130, -(2.0**-131), 2.0**-132  # a subnormal max: division, as every flat partial block
    assert quantize(x, f).codes[64:67].tolist() == [15, 2, 10]


@pytest.mark.spec("DEF-BLOCK-LAYOUT", "DEF-BAD-INPUT")
def test_layout_errors():
    """An unknown layout, a flat layout for MX or NVFP4, and decoding with another layout are errors carrying the value."""
    with pytest.raises(InvalidParameterError) as e:
        get_format("nf4_absmax64", layout="rows")
    assert e.value.value == "rows"
    for name in ("mxfp4", "nvfp4"):
        with pytest.raises(InvalidParameterError) as e:
            get_format(name, layout="flat")
        assert e.value.value == "flat"
        assert get_format(name, layout="last_axis").layout == "last_axis"
    with pytest.raises(InvalidParameterError) as e:
        get_format("nf4", layout="flat")
    x = _x((4, 64))
    q = quantize(x, get_format("nf4_absmax64", layout="flat"))
    with pytest.raises(InvalidParameterError) as e:
        dequantize(q, "nf4_absmax64")
    assert e.value.value == "flat"
    bad = BlockQuantized(q.format, q.codes, q.scales.reshape(4, 1), None, q.shape, 64, "flat")
    with pytest.raises(InvalidParameterError):
        dequantize(bad, get_format("nf4_absmax64", layout="flat"))
    assert get_format("nf4_absmax64", layout="flat").conventions()["layout"] == "flat"


# --------------------------------------------------------------------------------------------
# THM-MX-FLOAT32
# --------------------------------------------------------------------------------------------


@pytest.mark.spec("THM-MX-FLOAT32")
@pytest.mark.parametrize("name", MX)
def test_mx_zero_cell_holds_every_float32_subnormal(name):
    """The proof's one fact about arithmetic: every element codebook's thresholds next to 0 lie beyond ±2^-126, for
    every tie rule it accepts, so every |y| ≤ 2^-126 (any float32 subnormal, and the exact y it rounds from) is in
    the zero cell."""
    el = get_format(name).element
    for tie in ("even", "down", "up", "away"):
        for dt in (np.float32, np.float64):
            u = thresholds(el.codebook, tie, dt).astype(np.float64)
            z = int(np.flatnonzero(el.codebook.values == 0)[0])
            assert u[z - 1] < -(2.0**-126) and u[z] > 2.0**-126, (name, tie)


@pytest.mark.spec("THM-MX-FLOAT32", "DEF-FORMAT-MX")
@pytest.mark.parametrize("name", MX)
@pytest.mark.parametrize("rule", ["floor", "rceil"])
def test_mx_codes_equal_those_of_the_exact_scaled_values(name, rule):
    """Blocks whose small elements fall 2^126 and more below their maximum (float32 y subnormal and inexact): the
    codes quantize forms from fl32(x·2^-e) equal the element format's codes of the exact x·2^-e (float64, scaled())."""
    fmt = get_format(name, scale_rule=rule)
    rng = np.random.default_rng(3)
    big = rng.uniform(1, 2, (512, 1)) * 2.0 ** rng.integers(60, 128, (512, 1))
    small = rng.uniform(-2, 2, (512, 31)) * 2.0 ** rng.integers(-149, -100, (512, 31))
    x = np.concatenate([big, small], axis=1).astype(F32)
    x[::7, 5] = -0.0
    q = quantize(x, fmt)
    y = fmt.scaled(x)
    assert (np.abs(y[y != 0]) < 2.0**-126).any()
    assert not np.array_equal(y, y.astype(F32).astype(np.float64))  # some exact y are not float32
    np.testing.assert_array_equal(q.codes, quantize(y, fmt.element, saturate=True))


# --------------------------------------------------------------------------------------------
# The executor: rectangles of whole blocks, whatever the shape.
# --------------------------------------------------------------------------------------------


@pytest.mark.spec("DEF-FORMAT-BLOCK-ABSMAX", "DEF-FORMAT-MX", "DEF-FORMAT-NVFP4")
@pytest.mark.parametrize("name", ["nf4_absmax64", "mxfp4", "mxfp8_e4m3", "nvfp4"])
def test_rectangles_equal_column_slabs(name):
    """An (8, TASK_ELEMENTS + 4 229) tensor — rows longer than a task (tasks are block ranges of one row), a partial last
    block per row, and threads (over 4.2M elements: 16 chunks of 2^18 and more) — quantizes as its block-aligned column
    slabs do one by one (each one task of rows).  Every slab holds the tensor's max |x|, so NVFP4's tensor scale is the
    same."""
    fmt = get_format(name)
    x = _x((8, TASK_ELEMENTS + 4229), 5)
    bs, w = fmt.block_size, 1000 * fmt.block_size
    m = np.abs(x).max()
    x[0, ::w] = m
    q = quantize(x, fmt)
    cols = [(a, min(a + w, x.shape[1])) for a in range(0, x.shape[1], w)]
    parts = [quantize(x[:, a:b], fmt) for a, b in cols]
    np.testing.assert_array_equal(q.codes, np.concatenate([p.codes for p in parts], axis=1))
    np.testing.assert_array_equal(q.scales, np.concatenate([p.scales for p in parts], axis=1))
    np.testing.assert_array_equal(dequantize(q, fmt), np.concatenate([dequantize(p, fmt) for p in parts], axis=1))
    assert q.scales.shape == (8, -(-x.shape[1] // bs))
