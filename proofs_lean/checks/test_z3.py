"""Machine-checked proofs (z3) of the spec's theorems that are decidable over the reals.

Each test asks z3 for a counterexample to the theorem's statement and requires ``unsat``:
no counterexample exists over all real numbers (not just floats).  The statements are
the ones in the spec; the float-level consequences are tested elsewhere.
"""

import pytest

z3 = pytest.importorskip("z3", reason="z3-solver is in the [test] extra")


def _abs(v):
    return z3.If(v >= 0, v, -v)


def _proved(claim) -> bool:
    s = z3.Solver()
    s.add(z3.Not(claim))
    return s.check() == z3.unsat


@pytest.mark.spec("THM-MARGIN-ROBUST")
def test_margin_robustness_over_the_reals():
    x, d, c, c2, eta = z3.Reals("x d c c2 eta")
    gamma = _abs(x - c2) - _abs(x - c)
    hyp = z3.And(eta >= 0, gamma > eta, _abs(d) <= eta / 2)
    # After the perturbation c is still strictly nearer than c2: no tie, so no tie rule can move x+d.
    assert _proved(z3.Implies(hyp, _abs(x + d - c) < _abs(x + d - c2)))
    # Strictness is needed: with γ = η the perturbed point can sit exactly on the boundary.
    assert not _proved(z3.Implies(z3.And(eta >= 0, gamma >= eta, _abs(d) <= eta / 2), _abs(x + d - c) < _abs(x + d - c2)))


@pytest.mark.spec("THM-ORDER-NOT-STRICT")
def test_relu_commutes_with_a_monotone_quantizer_fixing_zero():
    t = z3.Real("t")
    Q = z3.Function("Q", z3.RealSort(), z3.RealSort())
    a, b = z3.Reals("a b")
    monotone = z3.ForAll([a, b], z3.Implies(a <= b, Q(a) <= Q(b)))
    relu = lambda v: z3.If(v > 0, v, 0)  # noqa: E731
    assert _proved(z3.Implies(z3.And(monotone, Q(0) == 0), Q(relu(t)) == relu(Q(t))))
    # Without Q(0) = 0 the orders can differ (so the theorem's hypothesis is needed).
    assert not _proved(z3.Implies(monotone, Q(relu(t)) == relu(Q(t))))


@pytest.mark.spec("THM-DOUBLE-ROUNDING-NEVER-BETTER")
def test_nearest_rounding_is_never_beaten_by_double_rounding():
    x, qx, m, qm = z3.Reals("x qx m qm")
    InC = z3.Function("InC", z3.RealSort(), z3.BoolSort())
    c = z3.Real("c")
    nearest = z3.ForAll([c], z3.Implies(InC(c), _abs(x - qx) <= _abs(x - c)))
    # qm = Q(Q_mid(x)) is some codeword of C, whatever Q_mid did.
    assert _proved(z3.Implies(z3.And(InC(qx), nearest, InC(qm)), _abs(x - qx) <= _abs(x - qm)))


@pytest.mark.spec("THM-QUANTIZE-MONOTONE")
@pytest.mark.parametrize("k", [2, 3, 5])
def test_threshold_quantizer_is_monotone(k):
    # Sorted codewords v_0 < … < v_{k−1}; x passes boundary i when x > m_i, or x = m_i and the tie goes up.
    v = z3.Reals(" ".join(f"v{i}" for i in range(k)))
    up = z3.Bools(" ".join(f"u{i}" for i in range(k - 1)))
    x, y = z3.Reals("x y")
    sorted_ = z3.And(*[v[i] < v[i + 1] for i in range(k - 1)])

    def index(t):
        return z3.Sum(*[z3.If(z3.Or(t > (v[i] + v[i + 1]) / 2, z3.And(t == (v[i] + v[i + 1]) / 2, up[i])), 1, 0)
                        for i in range(k - 1)])

    assert _proved(z3.Implies(z3.And(sorted_, x <= y), index(x) <= index(y)))
    # And the index really is a nearest codeword: |t − v_index| ≤ |t − v_j| for every j.
    t = z3.Real("t")
    for j in range(k):
        nearest_j = z3.And(*[z3.Implies(index(t) == i, _abs(t - v[i]) <= _abs(t - v[j])) for i in range(k)])
        assert _proved(z3.Implies(sorted_, nearest_j))


@pytest.mark.spec("THM-FREE-BOUNDARY")
def test_free_boundary_is_the_positive_part_vanishing():
    h, b, k = z3.Reals("h b k")
    cost = k * z3.If(h - b > 0, h - b, 0)
    assert _proved(z3.Implies(k > 0, (cost == 0) == (h <= b)))


@pytest.mark.spec("THM-INJECTIVITY")
def test_injectivity_iff_no_shared_cell_on_a_finite_support():
    # Support {s0, s1, s2} distinct; Q injective on it iff no two share an image.
    s = z3.Reals("s0 s1 s2")
    Q = z3.Function("Q", z3.RealSort(), z3.RealSort())
    distinct = z3.Distinct(*s)
    injective = z3.And(*[z3.Implies(Q(s[i]) == Q(s[j]), s[i] == s[j]) for i in range(3) for j in range(3)])
    no_collision = z3.Distinct(*[Q(v) for v in s])
    assert _proved(z3.Implies(distinct, injective == no_collision))
