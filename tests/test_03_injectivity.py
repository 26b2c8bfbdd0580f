"""DEF-COLLISION-CENSUS, THM-INJECTIVITY, THM-INJECTIVITY-COROLLARY, DEF-COLLISION-PROBABILITY, DEF-TASK-MERGE."""

from fractions import Fraction

import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from natprec.conformance.strategies import codebooks, finite_floats
from natprec.reference import (
    EmptyInputError,
    InvalidParameterError,
    ProblemTooLargeError,
    collision_probability,
    injectivity_report,
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
    rep = injectivity_report(x, cb)
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
