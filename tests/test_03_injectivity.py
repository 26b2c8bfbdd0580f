"""DEF-COLLISION-CENSUS, THM-INJECTIVITY, THM-INJECTIVITY-COROLLARY, DEF-COLLISION-PROBABILITY, DEF-TASK-MERGE."""

from fractions import Fraction

import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from natprec.conformance.strategies import codebooks, finite_floats
from natprec.reference import (
    DEFAULT_MAX_LISTED,
    CellPairs,
    EmptyInputError,
    InjectivityPlan,
    InvalidParameterError,
    ProblemTooLargeError,
    collision_probability,
    dequantize,
    execute_injectivity,
    finish_census,
    get_format,
    injectivity_report,
    prepare_injectivity,
    quantize,
    realized_support,
    task_merge_check,
)
from tests.oracles import delta_brute

ELEMENT_FORMATS = ["nf4", "fp4_bnb", "int4", "float8_e4m3fn", "float4_e2m1fn", "ternary", "binary"]
small_samples = st.lists(finite_floats(32, min_value=-8, max_value=8), min_size=1, max_size=40)


@pytest.mark.spec("DEF-COLLISION-PROBABILITY", "DEF-COLLISION-CENSUS")
@given(xs=small_samples, fmt=st.sampled_from(ELEMENT_FORMATS))
@example(xs=[0.0, -0.0, 1e-30, -1e-30], fmt="float8_e4m3fn")
@example(xs=[0.5, 0.5, 0.5], fmt="nf4")
def test_delta_matches_pair_enumeration(xs, fmt):
    x = np.array(xs, dtype=np.float32)
    rep = injectivity_report(x, fmt)
    canon = np.where(x == 0, np.float32(0), x)  # by value: −0.0 is +0.0
    cells = quantize(canon, fmt, saturate=True).tolist()
    assert rep.delta == delta_brute(canon.astype(np.float64).tolist(), cells)
    assert isinstance(rep.delta, Fraction)
    assert rep.support_size == realized_support(x).size
    assert rep.n_elements == x.size


@pytest.mark.spec("THM-INJECTIVITY", "THM-INJECTIVITY-COROLLARY")
@given(xs=small_samples, cb=codebooks(max_size=8))
def test_injective_iff_no_cell_holds_two_values(xs, cb):
    x = np.array(xs, dtype=np.float32)
    rep = injectivity_report(x, cb, max_listed=None)
    sup = realized_support(x).values
    images = quantize(sup, cb).tolist()
    one_to_one = len(set(images)) == len(images)
    assert rep.injective == one_to_one == (rep.delta == 0) == (rep.collisions == [])
    assert rep.corollary == (len(cb) >= len(sup) and one_to_one) == rep.injective  # |C| ≥ |supp| is implied
    # the census lists every colliding value once (no max_listed cap here)
    assert rep.colliding_values == sum(len(c.values) for c in rep.collisions)


@pytest.mark.spec("DEF-COLLISION-CENSUS")
def test_census_lists_values_and_counts():
    x = np.array([0.1, 0.11, 0.11, 0.9, -1.0], dtype=np.float32)
    rep = injectivity_report(x, "nf4")
    assert len(rep.collisions) == 1
    c = rep.collisions[0]
    assert c.values.tolist() == np.array([0.1, 0.11], dtype=np.float32).tolist()
    assert c.counts.tolist() == [1, 2]
    assert c.codeword == float(np.float32(0.07958029955625534))
    assert rep.colliding_values == 2 and rep.cells_used == 3
    assert rep.delta == Fraction(2 * 1 * 2, 25)
    listed = injectivity_report(np.array([0.1, 0.11, 0.6, 0.61], np.float32), "nf4", max_listed=1)
    assert len(listed.collisions) == 1 and listed.colliding_values == 4


@pytest.mark.spec("DEF-COLLISION-CENSUS")
def test_block_format_cells_are_per_block():
    # Same values in two blocks: no collision across blocks; within a block 0.01 and 0.02 share the 0 cell.
    x = np.array([[1.0, 0.01, 0.02] + [0.0] * 13, [1.0, 0.5] + [0.0] * 14], dtype=np.float32)
    rep = injectivity_report(x, "nvfp4")
    assert not rep.injective
    assert {tuple(c.values.tolist()) for c in rep.collisions} == {tuple(np.array([0.0, 0.01, 0.02], np.float32).tolist())}
    assert rep.codebook_size == 2 * 16  # 15 E2M1 values + the −0 code, per block


@pytest.mark.spec("DEF-COLLISION-PROBABILITY")
@given(counts=st.lists(st.integers(0, 10**12), min_size=1, max_size=20), data=st.data())
def test_collision_probability_exact_for_huge_counts(counts, data):
    cells = data.draw(st.lists(st.integers(0, 3), min_size=len(counts), max_size=len(counts)))
    n = sum(counts)
    if n == 0:
        with pytest.raises(EmptyInputError):
            collision_probability(np.array(counts, dtype=np.int64), np.array(cells))
        return
    got = collision_probability(np.array(counts, dtype=np.int64), np.array(cells))
    want = Fraction(0)
    for i, ci in enumerate(counts):
        for j, cj in enumerate(counts):
            if i != j and cells[i] == cells[j]:
                want += Fraction(ci * cj, n * n)
    assert got == want


@pytest.mark.spec("DEF-COLLISION-PROBABILITY")
def test_collision_probability_rejects_bad_counts():
    with pytest.raises(InvalidParameterError):
        collision_probability(np.array([1.5]), np.array([0]))
    with pytest.raises(InvalidParameterError):
        collision_probability(np.array([-1]), np.array([0]))
    with pytest.raises(InvalidParameterError):
        collision_probability(np.array([1, 2]), np.array([0]))


@pytest.mark.spec("DEF-TASK-MERGE")
@given(xs=small_samples, tau=st.floats(0, 1))
def test_task_merge_monotone_shortcut_agrees_with_all_pairs(xs, tau):
    x = np.array(xs, dtype=np.float32)
    g = lambda z: np.tanh(z)[:, None]  # noqa: E731
    full = task_merge_check(x, "int4", g, tau)
    fast = task_merge_check(x, "int4", g, tau, assume_monotone=True)
    assert full.ok == fast.ok
    assert full.worst_distance == pytest.approx(fast.worst_distance, rel=0, abs=1e-15)


@pytest.mark.spec("DEF-TASK-MERGE")
def test_task_merge_detects_a_bad_merge_and_caps_work():
    x = np.array([0.1, 0.2, 3.0], dtype=np.float32)  # 0.1 and 0.2 share int4's cell 0
    step = lambda z: (z > 0.15).astype(np.float64)[:, None]  # noqa: E731
    r = task_merge_check(x, "int4", step, 0.5)
    assert not r.ok and r.worst_distance == 1.0 and r.pairs_checked == 1
    assert task_merge_check(x, "int4", lambda z: z[:, None], 0.5).ok
    many = np.linspace(0.01, 0.4, 2000).astype(np.float32)
    with pytest.raises(ProblemTooLargeError):
        task_merge_check(many, "int4", lambda z: z[:, None], 1.0, max_pairs=1000)


# --- the default listing and the plan (DEF-COLLISION-CENSUS, DEF-CENSUS-PAIRS) ---------------------------------------


@pytest.mark.spec("DEF-COLLISION-CENSUS")
def test_default_listing_is_the_16_cells_with_most_elements():
    x = np.arange(1, 1001, dtype=np.float32) / 8  # the spec's example
    rep = injectivity_report(x, "float8_e4m3fn")
    every = injectivity_report(x, "float8_e4m3fn", max_listed=None)
    none = injectivity_report(x, "float8_e4m3fn", max_listed=0)
    assert DEFAULT_MAX_LISTED == 16 and len(rep.collisions) == 16 and len(every.collisions) == 45 and none.collisions == []
    assert (rep.cells_used, rep.colliding_values, rep.delta) == (64, 981, Fraction(4037, 100000))
    for other in (every, none):  # the listing never changes a count, δ or a verdict
        assert (other.cells_used, other.colliding_values, other.delta, other.injective, other.support_size) == (
            rep.cells_used, rep.colliding_values, rep.delta, rep.injective, rep.support_size)
    rank = [(-int(c.counts.sum()), c.cell[0]) for c in every.collisions]
    assert rank == sorted(rank)  # most elements first, ties by the lower cell id
    assert [c.cell for c in rep.collisions] == [c.cell for c in every.collisions[:16]]
    assert [c.cell[0] for c in rep.collisions[:7]] == [106, 108, 110, 105, 107, 109, 111]
    assert [c.codeword for c in rep.collisions[:3]] == [80.0, 96.0, 112.0]
    assert rep.collisions[-1].cell == (96,) and rep.collisions[-1].codeword == 32.0
    assert sum(len(c.values) for c in every.collisions) == every.colliding_values
    c = rep.collisions[0]
    assert not c.values.flags.writeable and not c.counts.flags.writeable and c.counts.dtype == np.int64


def _element_pairs(x, fmt, tie):
    """CellPairs made independently: the support (by value) and each value's saturating encoding, one batch per cell."""
    sup = realized_support(x)
    vals = np.asarray(sup.values)
    cells = quantize(np.where(vals == 0, np.zeros_like(vals), vals), fmt, tie=tie, saturate=True).astype(np.int64)
    return [CellPairs(np.full(int((cells == c).sum()), c, np.int64), vals[cells == c], np.asarray(sup.counts)[cells == c])
            for c in np.unique(cells)]


def _block_pairs_brute(x, fmt, tie):
    """CellPairs of a block format by a loop over every element: cell (block << bits) + encoding, 0 as +0's code."""
    f = get_format(fmt)
    x = np.atleast_1d(x)
    canon = np.where(x == 0, np.zeros_like(x), x)
    q = quantize(canon, f, tie=tie)
    rows, length = x.size // x.shape[-1], x.shape[-1]
    nb = -(-length // f.block_size)
    counts, codewords = {}, {}
    decoded = dequantize(q, f).reshape(rows, length)
    for r, (row, codes) in enumerate(zip(canon.reshape(rows, length), q.codes.reshape(rows, length))):
        for j in range(length):
            key = (((r * nb + j // f.block_size) << f.element.nbits) + int(codes[j]), float(row[j]))
            counts[key] = counts.get(key, 0) + 1
            codewords[key[0]] = float(decoded[r, j])
    by_cell = {}
    for (cell, v), k in counts.items():
        by_cell.setdefault(cell, []).append((v, k))
    return [CellPairs(np.full(len(vk), cell, np.int64), np.array(sorted(vk), dtype=x.dtype)[:, 0].astype(x.dtype),
                      np.array([k for _, k in sorted(vk)], np.int64)) for cell, vk in by_cell.items()], q, codewords


_EDGES = [  # (name, x, format, keyword arguments)
    ("±0 element", [-0.0, 0.0, 0.0, -1e-4, 1e-4], "float8_e4m3fn", {}),
    ("±0 int4", [-0.0, 0.0, 0.01, -0.01], "int4", {}),
    ("±0 block", [-0.0, 0.0, 1.0, -0.0], "mxfp4", {}),
    ("±0 nvfp4", [[-0.0, 0.0, 1.0, 0.01] * 4, [0.0] * 16], "nvfp4", {}),
    ("NaN omitted", [0.1, np.nan, 0.11, 0.9, np.nan], "nf4", {"nan_policy": "omit"}),
    ("NaN omitted block", [[0.1, np.nan], [0.11, 0.9]], "nf4_absmax64", {"nan_policy": "omit"}),
    ("tie even", [0.25, 0.75, 1.25, 0.5], "int4", {"tie": "even"}),
    ("tie away", [0.25, 0.75, 1.25, 0.5], "int4", {"tie": "away"}),
    ("tie down", [1.25, 1.75, 2.5, 0.5], "float4_e2m1fn", {"tie": "down"}),
    ("tie up block", [4.0, 1.25, 1.75, 2.5, 0.5], "mxfp4", {"tie": "up"}),
    ("one element", [0.3], "nf4", {}),
    ("one element block", [0.3], "nvfp4", {}),
    ("0-d", 2.5, "mxfp4", {}),
    ("all equal", [0.7] * 50, "float8_e4m3fn", {}),
    ("all equal block", [[0.7] * 70] * 3, "nf4_absmax64", {}),
    ("partial blocks", np.linspace(-3, 3, 3 * 45).reshape(3, 45), "mxfp4", {}),
    ("partial nvfp4", np.linspace(-1, 1, 2 * 37).reshape(2, 37) ** 3, "nvfp4", {}),
    ("partial absmax", np.linspace(-2, 2, 4 * 70).reshape(4, 70) ** 3, "nf4_absmax64", {}),
    ("saturating fn", [448.0, 464.0, 500.0, 1e6, -1e6, 1.0], "float8_e4m3fn", {}),
    ("saturating with Inf code", [57344.0, 61440.0, 1e9, np.inf, -np.inf, 1.0], "float8_e5m2", {}),
    ("saturating int4", [7.0, 7.4, 100.0, -8.0, -50.0], "int4", {}),
    ("float16 Inf", [65504.0, 1e30, np.inf], "float16", {}),
    ("max listed 1", [0.1, 0.11, 0.6, 0.61, 0.62], "nf4", {"max_listed": 1}),
    ("max listed none block", np.linspace(0, 1, 200), "nvfp4", {"max_listed": None}),
]


@pytest.mark.spec("DEF-CENSUS-PAIRS", "DEF-COLLISION-CENSUS", "DEF-COLLISION-PROBABILITY")
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16])
@pytest.mark.parametrize("name,xs,fmt,kw", _EDGES, ids=[e[0] for e in _EDGES])
def test_finish_census_over_independent_pairs_equals_the_report(name, xs, fmt, kw, dtype):
    with np.errstate(over="ignore"):
        x = np.asarray(xs, dtype=np.float64).astype(dtype)
    if dtype is np.float16 and np.isinf(x).any() != np.isinf(np.asarray(xs, dtype=np.float64)).any():
        pytest.skip("a value overflows float16")
    rep = injectivity_report(x, fmt, **kw)
    plan = prepare_injectivity(x, fmt, **kw)
    assert isinstance(plan, InjectivityPlan) and execute_injectivity(plan) == _same(rep)
    tie = kw.get("tie", "even")
    if plan.element is not None:
        batches, q = _element_pairs(plan.x, plan.format, tie), None
        codewords = {int(b.cells[0]): float(dequantize(b.cells[:1].astype(plan.format.code_dtype), fmt)[0]) for b in batches}
    else:
        batches, q, codewords = _block_pairs_brute(plan.x, fmt, tie)
    assert all(c.codeword == codewords[c.cell[0]] for c in rep.collisions)  # decoded as the element's reconstruction
    for extra in ({}, {"quantized": q, "support_size": rep.support_size}):
        got = finish_census(plan, reversed(batches), **extra)
        assert got == _same(rep), name
    # δ again from the counts entry, with every count scaled past 2**31 (δ does not change)
    counts = np.concatenate([b.counts for b in batches]) * (1 << 33)
    assert collision_probability(counts, np.concatenate([b.cells for b in batches])) == rep.delta
    cells = quantize(np.where(plan.x == 0, 0, plan.x).astype(plan.x.dtype), fmt, tie=tie, saturate=True) if q is None else None
    if cells is not None:  # element formats: δ by enumerating all pairs of elements
        assert rep.delta == delta_brute(np.where(plan.x == 0, 0, plan.x).astype(np.float64).ravel().tolist(), cells.ravel().tolist())


class _same:
    """Equality of two InjectivityReports, the listed arrays compared by value and dtype."""

    def __init__(self, rep):
        self.rep = rep

    def __eq__(self, other):
        a, b = self.rep, other
        keys = ("format", "n_elements", "support_size", "codebook_size", "cells_used", "injective", "corollary",
                "colliding_values", "delta")
        if any(getattr(a, k) != getattr(b, k) for k in keys) or len(a.collisions) != len(b.collisions):
            return False
        return all(c.cell == d.cell and c.codeword == d.codeword and c.values.dtype == d.values.dtype
                   and c.values.tobytes() == d.values.tobytes() and c.counts.tolist() == d.counts.tolist()
                   for c, d in zip(a.collisions, b.collisions))


@pytest.mark.spec("DEF-CENSUS-PAIRS")
@given(xs=st.lists(finite_floats(32, min_value=-4, max_value=4), min_size=1, max_size=120),
       fmt=st.sampled_from(["nf4", "int4", "float4_e2m1fn", "mxfp4", "nvfp4", "nf4_absmax64"]),
       cols=st.sampled_from([1, 2, 3, 5]), ml=st.sampled_from([None, 0, 1, 2, 16]), seed=st.integers(0, 2**32 - 1))
def test_finish_census_any_batch_order_any_listing(xs, fmt, cols, ml, seed):
    x = np.array(xs, dtype=np.float32)
    x = x[: x.size // cols * cols].reshape(cols, -1) if x.size >= cols else x
    plan = prepare_injectivity(x, fmt, max_listed=ml)
    batches = _element_pairs(plan.x, plan.format, "even") if plan.element is not None else _block_pairs_brute(plan.x, fmt, "even")[0]
    np.random.default_rng(seed).shuffle(batches)
    merged = [CellPairs(np.concatenate([b.cells for b in batches[i:i + 3]]), np.concatenate([b.values for b in batches[i:i + 3]]),
                        np.concatenate([b.counts for b in batches[i:i + 3]])) for i in range(0, len(batches), 3)]
    assert finish_census(plan, merged) == _same(injectivity_report(x, fmt, max_listed=ml))


@pytest.mark.spec("DEF-CENSUS-PAIRS")
def test_finish_census_rejects_malformed_pairs():
    plan = prepare_injectivity(np.array([0.1, 0.2, 0.2, 1.0]), "int4")
    good = CellPairs(np.array([0, 0, 1]), np.array([0.1, 0.2, 1.0]), np.array([1, 2, 1]))
    assert finish_census(plan, [good]).delta == Fraction(1, 4)
    two = prepare_injectivity(np.array([0.1, 0.2, 0.2, 1.0, 1.1, 1.1, 1.1]), "int4")  # cells 0 (3 elements), 1 (4)
    pairs = CellPairs(np.array([0, 0, 1, 1], np.uint8), np.array([0.1, 0.2, 1.0, 1.1]), np.array([1, 2, 1, 3], np.uint64))
    assert [c.cell for c in finish_census(two, [pairs]).collisions] == [(1,), (0,)]  # unsigned ids and counts are integers too
    bad = [
        ((good.cells, good.values, np.array([1, 2])), ((3,), (3,), (2,))),
        ((good.cells, good.values.astype(np.float32), good.counts), "float32"),
        ((good.cells.astype(np.float64), good.values, good.counts), "float64"),
        ((good.cells, good.values, np.array([1, 0, 1])), 0),
        ((good.cells, good.values, np.array([1, 1, 1])), 3),  # the counts sum to 3, x has 4 elements
    ]
    for arrays, value in bad:
        with pytest.raises(InvalidParameterError) as e:
            finish_census(plan, [CellPairs(*arrays)])
        assert value == e.value.value or (isinstance(value, str) and value in str(e.value.value))
    with pytest.raises(InvalidParameterError):
        finish_census(plan, [(good.cells, good.values, good.counts)])
    with pytest.raises(InvalidParameterError):
        finish_census(None, [good])
