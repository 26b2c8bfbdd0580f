"""DEF-LANDAUER-ENERGY, DEF-BOUNDARY-COST, THM-FREE-BOUNDARY."""

import math
from fractions import Fraction

import mpmath
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from natprec.reference import (
    BOLTZMANN_J_PER_K,
    InvalidParameterError,
    NonFiniteInputError,
    boundary_cost_joules,
    entropy_bits_from_counts,
    injectivity_report,
    is_free_boundary,
    landauer_energy_joules,
    natural_precision,
)

bits = st.floats(0, 1e6)
temps = st.floats(1e-3, 1e5)


@pytest.mark.spec("DEF-LANDAUER-ENERGY")
@given(h_in=bits, h_out=bits, t=temps)
def test_energy_is_correctly_rounded(h_in, h_out, t):
    got = landauer_energy_joules(h_in, h_out, t)
    with mpmath.workprec(300):
        exact = mpmath.mpf(1380649) / 10**29 * mpmath.mpf(t) * mpmath.log(2) * (mpmath.mpf(h_in) - mpmath.mpf(h_out))
    assert got == float(exact)
    assert math.isclose(got, BOLTZMANN_J_PER_K * t * math.log(2) * (h_in - h_out), rel_tol=1e-12, abs_tol=1e-300)


@pytest.mark.spec("DEF-LANDAUER-ENERGY")
def test_one_bit_at_300_kelvin():
    assert landauer_energy_joules(1.0) == 2.870978885078724e-21
    assert landauer_energy_joules(0.0, 1.0) == -landauer_energy_joules(1.0)


@pytest.mark.spec("DEF-BOUNDARY-COST", "THM-FREE-BOUNDARY")
@given(h=bits, b=bits, t=temps)
def test_boundary_cost_and_free_predicate(h, b, t):
    c = boundary_cost_joules(h, b, t)
    assert c == (landauer_energy_joules(h, b, t) if h > b else 0.0)
    assert is_free_boundary(h, b) == (c == 0.0) == (Fraction(h) <= Fraction(b))


@pytest.mark.spec("THM-FREE-BOUNDARY")
def test_free_boundary_does_not_mean_lossless():
    # 1 value with weight 1 − 3e-6 plus 3 rare ones: H < 1 bit, yet |supp| = 4 > 2**1.
    counts = np.array([999_997, 1, 1, 1])
    h = entropy_bits_from_counts(counts)
    assert h < 1.0 and is_free_boundary(h, 1)
    assert natural_precision(support_size=4) == 2
    # And |supp| ≤ 2**b is not enough for a given codebook: two values in one int4 cell.
    rep = injectivity_report(np.array([0.1, 0.2], dtype=np.float32), "int4")
    assert is_free_boundary(1.0, 4) and not rep.injective


@pytest.mark.spec("DEF-LANDAUER-ENERGY", "DEF-BOUNDARY-COST")
@pytest.mark.parametrize(
    "call, exc",
    [
        (lambda: landauer_energy_joules(1.0, 0.0, 0.0), InvalidParameterError),
        (lambda: landauer_energy_joules(1.0, 0.0, -5.0), InvalidParameterError),
        (lambda: landauer_energy_joules(1.0, 0.0, float("nan")), NonFiniteInputError),
        (lambda: landauer_energy_joules(float("inf")), NonFiniteInputError),
        (lambda: landauer_energy_joules(-1.0), InvalidParameterError),
        (lambda: landauer_energy_joules("x"), InvalidParameterError),
        (lambda: boundary_cost_joules(1.0, -2.0), InvalidParameterError),
        (lambda: boundary_cost_joules(1.0, 2.0, float("inf")), NonFiniteInputError),
    ],
)
def test_bad_landauer_input(call, exc):
    with pytest.raises(exc):
        call()


@pytest.mark.spec("DEF-LANDAUER-ENERGY", "DEF-BOUNDARY-COST")
def test_results_past_the_float64_range_are_refused_and_tiny_ones_round_once():
    with pytest.raises(InvalidParameterError) as e:
        landauer_energy_joules(1e300, 0.0, 1e40)
    assert e.value.value == (1e300, 1e40)
    with pytest.raises(InvalidParameterError):
        boundary_cost_joules(1e300, 0.0, 1e40)
    assert landauer_energy_joules(1.0, 0.0, 1e-310) == 0.0  # 4e-334 J rounds to +0 (correctly rounded)
    assert landauer_energy_joules(1.0, 0.0, 1e-300) == 1e-323  # subnormal, rounded once
