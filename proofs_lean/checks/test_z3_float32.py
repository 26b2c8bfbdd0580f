"""SMT proofs (z3, IEEE binary32 semantics) about the reference's decision rule on float32 inputs.

The reference quantizes a float32 ``x`` as ``searchsorted(u, x, side="left")``: the number of its
float32 thresholds ``u = thresholds(codebook, tie, float32)`` that are below x (DEF-QUANTIZE). For
the int4 codebook under every tie rule and nf4 under "even" and "up", z3 proves over *all* finite float32 x (a symbolic
``Float32`` variable, compared with IEEE ``fpLT`` exactly as NumPy does, its value taken as an
exact real, compared with the exact float64 midpoints):

* the index is a nearest codeword: |x − v_idx| ≤ |x − v_j| for every j (THM-QUANTIZE-MONOTONE's
  "nearest", DEF-QUANTIZE);
* the index is non-decreasing in x (THM-QUANTIZE-MONOTONE);
* the ties are exactly the float32 inputs equal to a midpoint (v_i + v_{i+1})/2, and z3 finds such an
  input for boundary i iff that midpoint is a float32 (checked against an exact ``Fraction`` test):
  every other input has a unique nearest codeword, and at a tie the index follows the tie rule;
* the same formula is what ``nearest_index`` returns, at every tie input and at both float32
  neighbours of every threshold (the only places the index changes).
"""

from fractions import Fraction

import numpy as np
import pytest

from natprec.reference import nearest_index, thresholds
from natprec.reference.formats import resolve_format

z3 = pytest.importorskip("z3", reason="z3-solver is in the [test] extra")

F32 = None if z3 is None else z3.Float32()


def _proved(claim) -> bool:
    s = z3.Solver()
    s.add(z3.Not(claim))
    return s.check() == z3.unsat


@pytest.mark.spec("DEF-QUANTIZE")
def test_distance_comparison_is_a_midpoint_comparison_over_the_reals():
    """The lemma that lets the float checks compare with midpoints: for a < b and any real x,
    |x − a| ≤ |x − b| ⇔ x ≤ (a+b)/2, with equality ⇔ x = (a+b)/2 (z3, real arithmetic)."""
    x, a, b = z3.Reals("x a b")
    d = lambda p, q: z3.If(p - q >= 0, p - q, q - p)  # noqa: E731
    m = (a + b) / 2
    assert _proved(z3.Implies(a < b, z3.And((d(x, a) <= d(x, b)) == (x <= m), (d(x, a) == d(x, b)) == (x == m),
                                            (d(x, a) < d(x, b)) == (x < m))))


def _model(name, tie):
    cb = resolve_format(name).codebook
    v = [Fraction(float(c)) for c in cb.values]
    u = thresholds(cb, tie, np.float32)
    up = [bool(b) for b in cb.tie_goes_up(tie)]
    x = z3.FP("x", F32)
    x64 = z3.fpFPToFP(z3.RNE(), x, z3.Float64())  # exact: every float32 is a float64
    finite = z3.And(z3.Not(z3.fpIsNaN(x)), z3.Not(z3.fpIsInf(x)))
    us = [z3.FPVal(float(t), F32) if np.isfinite(t) else (z3.fpPlusInfinity(F32) if t > 0 else z3.fpMinusInfinity(F32))
          for t in u]

    def index(t):  # searchsorted(u, t, side="left"): how many thresholds lie below t (IEEE <)
        return z3.Sum(*[z3.If(z3.fpLT(ui, t), 1, 0) for ui in us])

    def mid(i, j):  # (v_i + v_j)/2 of two float32 codewords is exact in float64
        m = (v[i] + v[j]) / 2
        assert Fraction(float(m)) == m
        return z3.FPVal(float(m), z3.Float64())

    return cb, v, u, up, x, x64, finite, index, mid


CASES = [("int4", tie) for tie in ("even", "down", "up", "away")] + [("nf4", "even"), ("nf4", "up")]


@pytest.mark.spec("THM-QUANTIZE-MONOTONE", "DEF-QUANTIZE")
@pytest.mark.parametrize(("name", "tie"), CASES)
def test_decision_rule_returns_a_nearest_codeword_for_every_float32(name, tie):
    cb, v, u, up, x, x64, finite, index, mid = _model(name, tie)
    k = len(v)
    assert all(v[i] < v[i + 1] for i in range(k - 1))
    idx = index(x)
    # index i is nearest ⇔ x ≤ mid(i, j) for every j > i and x ≥ mid(j, i) for every j < i (the lemma above).
    nearest = z3.And(*[z3.Implies(idx == i, z3.And(*[z3.fpLEQ(x64, mid(i, j)) for j in range(i + 1, k)],
                                                  *[z3.fpGEQ(x64, mid(j, i)) for j in range(i)]))
                       for i in range(k)])
    assert _proved(z3.Implies(finite, nearest))
    # Monotone: x ≤ y (IEEE) ⇒ index(x) ≤ index(y), over all non-NaN float32 including ±Inf.
    y = z3.FP("y", F32)
    assert _proved(z3.Implies(z3.And(z3.Not(z3.fpIsNaN(x)), z3.Not(z3.fpIsNaN(y)), z3.fpLEQ(x, y)), idx <= index(y)))
    # ±Inf go to the extreme codewords.
    assert _proved(index(z3.fpPlusInfinity(F32)) == k - 1) and _proved(index(z3.fpMinusInfinity(F32)) == 0)


@pytest.mark.spec("THM-QUANTIZE-MONOTONE", "DEF-TIE-RULES")
@pytest.mark.parametrize(("name", "tie"), CASES)
def test_ties_are_exactly_the_float32_midpoints(name, tie):
    cb, v, u, up, x, x64, finite, index, mid = _model(name, tie)
    k = len(v)
    idx = index(x)
    # Away from the adjacent midpoints the nearest codeword is unique: strictly nearer than every other.
    not_a_midpoint = z3.And(*[z3.Not(z3.fpEQ(x64, mid(i, i + 1))) for i in range(k - 1)])
    unique = z3.And(*[z3.Implies(idx == i, z3.And(*[z3.fpLT(x64, mid(i, j)) for j in range(i + 1, k)],
                                                 *[z3.fpGT(x64, mid(j, i)) for j in range(i)]))
                      for i in range(k)])
    assert _proved(z3.Implies(z3.And(finite, not_a_midpoint), unique))
    ties = []
    for i in range(k - 1):
        m = (v[i] + v[i + 1]) / 2
        s = z3.Solver()
        s.add(finite, z3.fpEQ(x64, mid(i, i + 1)))
        representable = Fraction(float(np.float32(float(m)))) == m
        assert (s.check() == z3.sat) == representable, (name, i, m)
        if representable:
            t = np.float32(float(m))  # the one float32 equal to m
            ties.append(float(t))
            assert _proved(z3.Implies(z3.fpEQ(x64, mid(i, i + 1)), idx == i + int(up[i])))
            assert int(nearest_index(np.array([t], np.float32), cb, tie=tie)[0]) == i + int(up[i])
    if name == "int4":
        assert ties == [j + 0.5 for j in range(-8, 7)]  # every int4 midpoint is a float32
    # The formula is the reference's: at every finite threshold and both its float32 neighbours.
    fin = u[np.isfinite(u)].astype(np.float32)
    probe = np.concatenate([fin, np.nextafter(fin, np.float32(np.inf)), np.nextafter(fin, np.float32(-np.inf))])
    got = nearest_index(probe, cb, tie=tie).astype(int)
    assert np.array_equal(got, np.searchsorted(u, probe, side="left"))
    for p, g in zip(probe.tolist(), got.tolist(), strict=True):
        assert _proved(index(z3.FPVal(p, F32)) == g)
