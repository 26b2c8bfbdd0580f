"""Exhaustive checks of the spec's finite theorems: every case of a small finite domain, no sampling.

Each test enumerates a whole domain (all maps between small sets, all supports of a small grid, all
monotone sequences …) and checks the theorem's statement in every case, against the reference where
the theorem is about what the reference computes. They are the CI-run form of the Lean statements in
``proofs_lean/NatPrec/Thm/`` (which no Lean toolchain has checked; proofs_lean/README.md): a proof for
the enumerated sizes, not for every size.
"""

import itertools
import math
from fractions import Fraction

import numpy as np
import pytest

from natprec.model.sensitivity import int_step_law, monotone_search, monotonicity_violations, precision_from_curve
from natprec.reference import (
    Codebook,
    discretized_entropy_bits,
    entropy_bits_from_counts,
    erased_information,
    injectivity_report,
    natural_precision,
    realized_support,
    support_size,
    task_quotient,
)
from natprec.reference.ratedistortion import block_scaling_mse


def _set_partitions(items):
    """Every partition of the list ``items`` into non-empty blocks."""
    if not items:
        yield []
        return
    first, rest = items[0], items[1:]
    for part in _set_partitions(rest):
        yield [[first], *part]
        for i in range(len(part)):
            yield [*part[:i], [first, *part[i]], *part[i + 1:]]


def _nearest_cells(values, codewords):
    """Brute-force nearest codeword of each value with exact rationals: the set of nearest indices."""
    cw = [Fraction(float(c)) for c in codewords]
    out = []
    for v in values:
        d = [abs(Fraction(float(v)) - c) for c in cw]
        out.append({i for i, di in enumerate(d) if di == min(d)})
    return out


@pytest.mark.spec("THM-BIJECTION-INVARIANCE")
def test_maps_injective_on_the_support_preserve_counts_and_bstar_exhaustively():
    """All x in G³ (G = 4 float32 values) and all 5⁴ maps G → I: injective on supp ⇒ same |supp|, b*, counts."""
    grid = np.array([-2.0, 0.0, 0.5, 1.5], dtype=np.float32)
    images = np.array([-1.0, 0.25, 3.0, 7.5, 1e-3], dtype=np.float32)
    checked = injective_seen = 0
    for idx in itertools.product(range(4), repeat=3):
        x = grid[list(idx)]
        sup = realized_support(x)
        used = sorted(set(idx))
        for f in itertools.product(range(5), repeat=4):
            y = images[[f[i] for i in idx]]
            injective = len({f[i] for i in used}) == len(used)
            ys = realized_support(y)
            assert (ys.size == sup.size) == injective  # a non-injective map always loses a value
            if injective:
                injective_seen += 1
                assert natural_precision(y) == natural_precision(x)
                assert sorted(ys.counts.tolist()) == sorted(sup.counts.tolist())
            checked += 1
    assert checked == 64 * 625 and injective_seen > 0


@pytest.mark.spec("THM-INJECTIVITY", "THM-INJECTIVITY-COROLLARY")
def test_pigeonhole_and_the_corollary_over_all_small_maps():
    """All maps {0..n−1} → {0..k−1}, n, k ≤ 5: no shared cell ⇒ n ≤ k, so the corollary's |C| ≥ |supp| is implied."""
    for n in range(6):
        for k in range(6):
            for cell in itertools.product(range(k), repeat=n):
                injective = all(cell[i] != cell[j] for i in range(n) for j in range(i + 1, n))
                assert injective == (len(set(cell)) == n)  # Prop. 2: injective iff no two share a cell
                if injective:
                    assert n <= k  # Cor. 1, pigeonhole
                assert (n <= k and injective) == injective


@pytest.mark.spec("THM-INJECTIVITY", "THM-INJECTIVITY-COROLLARY")
@pytest.mark.parametrize("tie", ["even", "down", "up", "away"])
def test_census_over_every_support_of_a_grid(tie):
    """Every non-empty subset of an 8-point grid (with exact ties) through a 4-codeword codebook."""
    cb = Codebook([-1.0, 0.0, 1.0, 2.5])
    grid = np.array([-3.0, -0.5, -0.25, 0.5, 0.75, 1.75, 2.0, 9.0], dtype=np.float64)
    up = cb.tie_goes_up(tie)
    for r in range(1, grid.size + 1):
        for sub in itertools.combinations(range(grid.size), r):
            x = grid[list(sub)]
            nearest = _nearest_cells(x, cb.values)
            cells = []
            for s in nearest:
                i = min(s)
                if len(s) == 2:  # an exact midpoint between codewords i and i+1
                    i = i + 1 if up[i] else i
                cells.append(i)
            rep = injectivity_report(x, cb, tie=tie)
            assert rep.injective == (len(set(cells)) == len(cells))
            assert rep.corollary == rep.injective
            if rep.injective:
                assert rep.support_size <= rep.codebook_size


@pytest.mark.spec("DEF-NATPREC")
def test_natural_precision_bounds_for_every_support_size_up_to_2_to_the_14():
    """b* = ⌈log2 n⌉: the least b with n ≤ 2^b, and 2^(b*−1) < n ≤ 2^b* for n ≥ 2 (Lean: natPrec_bounds)."""
    for n in range(1, (1 << 14) + 2):
        b = natural_precision(support_size=n)
        assert b == next(c for c in range(64) if n <= 2**c)
        if n >= 2:
            assert 2 ** (b - 1) < n <= 2**b
        else:
            assert b == 0


@pytest.mark.spec("THM-QUOTIENT-MINIMAL")
def test_greedy_quotient_is_minimal_for_every_small_monotone_g():
    """All nondecreasing and nonincreasing integer G on supports of ≤ 6 values, τ ∈ {0, 1, 2}: greedy = minimum."""
    partitions = {n: list(_set_partitions(list(range(n)))) for n in range(1, 7)}
    cases = 0
    for n in range(1, 7):
        z = np.arange(n, dtype=np.float64)
        for g in itertools.combinations_with_replacement(range(5), n):
            for sign in (1, -1):
                gv = [sign * v for v in g]
                for tau in (0, 1, 2):
                    q = task_quotient(z, lambda t, gv=gv: np.array([gv[int(i)] for i in t], dtype=np.float64), tau)
                    m = len(q.leaders)
                    classes = {}
                    for i, c in enumerate(q.class_of.tolist()):
                        classes.setdefault(c, []).append(i)
                    for members in classes.values():  # (1) intervals, pairwise equivalent
                        assert members == list(range(members[0], members[-1] + 1))
                        assert max(gv[i] for i in members) - min(gv[i] for i in members) <= tau
                    best = min(len(p) for p in partitions[n]
                               if all(abs(gv[a] - gv[b]) <= tau for blk in p for a in blk for b in blk))
                    assert m == best  # (2) minimal
                    assert q.bits == natural_precision(support_size=m)
                    cases += 1
    assert cases == 3 * 2 * sum(math.comb(4 + n, n) for n in range(1, 7))


@pytest.mark.spec("THM-ENTROPY-LE-NATPREC")
def test_entropy_le_log_support_le_bstar_for_every_small_histogram():
    """Every count vector with ≤ 5 occupied values and ≤ 8 elements, at Δ = 1 and a coarser Δ = 2."""
    for k in range(1, 6):
        for counts in itertools.product(range(1, 5), repeat=k):
            if sum(counts) > 8:
                continue
            h = entropy_bits_from_counts(np.array(counts, dtype=np.int64))
            assert h <= math.log2(k) + 1e-12 <= natural_precision(support_size=k) + 1e-12
            x = np.repeat(np.arange(k, dtype=np.float64), counts)
            for delta in (1.0, 2.0):
                hd = discretized_entropy_bits(x, delta)
                assert hd <= h + 1e-12  # binning merges values: never more entropy
                assert hd <= math.log2(support_size(x)) + 1e-12 <= natural_precision(x) + 1e-12
            if k == 1:
                assert h == 0.0


@pytest.mark.spec("THM-ERASURE-CONDITIONAL", "THM-BOUND-NOT-ERASURE")
def test_erasure_bounds_over_every_small_tensor():
    """All x in G⁴ (G = 5 values, two of them ties) through a 3-codeword codebook: 0 ≤ E ≤ H(X), E = 0 ⇔ injective, E ≥ bound."""
    cb = Codebook([-1.0, 0.0, 2.0])
    grid = np.array([-1.5, -0.5, 0.25, 1.0, 3.0], dtype=np.float32)
    nearest = _nearest_cells(grid, cb.values)
    cell_of = [min(s) + (1 if len(s) == 2 and cb.tie_goes_up("even")[min(s)] else 0) for s in nearest]
    for idx in itertools.product(range(5), repeat=4):
        r = erased_information(grid[list(idx)], cb)
        used = set(idx)
        injective = len({cell_of[i] for i in used}) == len(used)
        assert -1e-15 <= r.erased_bits <= r.source_bits + 1e-12
        assert (r.erased_bits == 0.0) == injective == r.injective
        assert math.isclose(r.erased_bits, r.source_bits - r.cell_bits, abs_tol=1e-12)
        assert r.erased_bits >= r.bound_bits - 1e-12  # THM-BOUND-NOT-ERASURE: the seed's bound is a lower bound


@pytest.mark.spec("THM-MONOTONE-SEARCH")
def test_bisection_equals_the_sweep_on_every_small_monotone_curve():
    """All curves Δ: {2..8} → {0..3}, ε ∈ {−1, …, 3}, the search alone and with each predictor (the int step law and
    every constant answer, right or wrong, including "none passes"), the law also from every estimate of Δ(5) in
    0..3 and the constants with one: on the nonincreasing curves the answer is the linear minimum within
    ⌈log2 8⌉ = 3 evaluations, 4 with a predictor (the bound +2 is not reached at 7 widths), 6 with an estimate too
    (the bound +3 is: three wrongly placed probes); on every curve it is a measured pass next to a measured fail (or
    an end); the violation list is empty exactly on the nonincreasing ones."""
    bits = list(range(2, 9))
    constants = [lambda known, tol, c=c: c for c in (*bits, None)]
    searches = [(None, None, 3), (int_step_law, None, 4)] + [(p, None, 4) for p in constants]
    searches += [(int_step_law, {5: v}, 6) for v in range(4)] + [(p, {5: 0}, 6) for p in constants]
    monotone = 0
    for vals in itertools.product(range(4), repeat=len(bits)):
        curve = dict(zip(bits, vals, strict=True))
        nonincreasing = all(a >= b for a, b in itertools.pairwise(vals))
        assert (not monotonicity_violations(curve)) == nonincreasing
        monotone += nonincreasing
        for tol in (-1, 0, 1, 2, 3):
            truth = precision_from_curve(curve, tol)
            for predict, estimate, most in searches:
                best, seen = monotone_search(curve.__getitem__, bits, tol, predict=predict, estimate=estimate)
                if best is None:
                    assert seen[bits[-1]] > tol
                else:
                    assert seen[best] <= tol and (best == bits[0] or seen[best - 1] > tol)
                if nonincreasing:
                    assert best == truth
                    assert len(seen) <= most
    assert monotone == math.comb(len(bits) + 3, 3)


@pytest.mark.spec("THM-RD-BLOCK-QUANTILE")
def test_the_q1_quantile_is_the_absmax_on_every_small_block():
    """The proof's one fact: numpy's 1-quantile of |x| is max|x|, for every 3-element block of a 12-value grid
    (subnormal, huge, ±0, ties), so with q = 1 among the candidates absmax − quantile ≥ 0 exactly."""
    vals = np.array([0.0, -0.0, 5e-324, 1e-300, 0.1, 0.5, 1.0, 1.0 + 2**-52, 3.0, 1e300, 1.7e308, -2.0])
    blocks = np.abs(np.array(list(itertools.product(vals, repeat=3))))
    assert np.array_equal(np.quantile(blocks, 1.0, axis=1), blocks.max(axis=1))
    for beta in (1.0, 2.0):
        for row in block_scaling_mse(beta, [1, 2, 3, 16], n_values=1 << 10, quantile_levels=[1.0], rng=3):
            assert row.difference == 0.0
        for row in block_scaling_mse(beta, [2, 16], n_values=1 << 10, quantile_levels=[0.5, 0.9, 1.0], rng=3):
            assert row.difference >= 0.0
