"""Unit and property tests for reference/ggd.py (spec/10-rate-distortion.md)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from natprec.reference import ggd
from natprec.reference.errors import EmptyInputError, InvalidParameterError, NonFiniteInputError

betas = st.floats(0.3, 8.0)
alphas = st.floats(0.1, 10.0)


@pytest.mark.spec("DEF-RD-GGD")
@given(betas, alphas)
def test_partial_moments_match_closed_moments(beta, alpha):
    assert float(ggd.partial_moment(0, -np.inf, np.inf, beta, alpha)) == pytest.approx(1.0, rel=1e-12)
    assert float(ggd.partial_moment(1, -np.inf, np.inf, beta, alpha)) == pytest.approx(0.0, abs=1e-12 * alpha)
    assert float(ggd.partial_moment(2, -np.inf, np.inf, beta, alpha)) == pytest.approx(
        ggd.variance(beta, alpha), rel=1e-12
    )
    assert float(ggd.partial_moment(0, -np.inf, 0.0, beta, alpha)) == pytest.approx(0.5, rel=1e-14)


@pytest.mark.spec("DEF-RD-GGD")
@given(betas, alphas, st.floats(-5.0, 5.0))
def test_cdf_symmetric_and_matches_density(beta, alpha, t):
    x = t * alpha
    assert float(ggd.cdf(x, beta, alpha) + ggd.cdf(-x, beta, alpha)) == pytest.approx(1.0, abs=1e-14)
    h = 1e-5 * alpha
    slope = (ggd.cdf(x + h, beta, alpha) - ggd.cdf(x - h, beta, alpha)) / (2 * h)
    if abs(x) > 10 * h:  # the density has a cusp at 0 for β ≤ 1
        assert float(slope) == pytest.approx(float(ggd.pdf(x, beta, alpha)), rel=1e-4, abs=1e-9)


@pytest.mark.spec("DEF-RD-GGD-UNIT", "DEF-RD-GGD-KURT")
@given(betas)
def test_unit_variance_and_kurtosis(beta):
    assert ggd.variance(beta) == pytest.approx(1.0, rel=1e-13)
    assert ggd.kurtosis(beta) == pytest.approx(ggd.absolute_moment(4, beta), rel=1e-12)


@pytest.mark.spec("DEF-RD-GGD-ENTROPY")
@given(betas, alphas)
def test_entropy_scale_law_and_units(beta, alpha):
    h1 = ggd.differential_entropy_bits(beta, 1.0)
    assert ggd.differential_entropy_bits(beta, alpha) == pytest.approx(h1 + math.log2(alpha), abs=1e-12)
    assert ggd.differential_entropy_nats(beta, alpha) == pytest.approx(
        ggd.differential_entropy_bits(beta, alpha) * math.log(2), abs=1e-13
    )


@pytest.mark.spec("DEF-RD-GGD-ENTROPY", "DEF-RD-GGD")
def test_known_special_cases():
    # Gaussian (β=2, α=√2σ) and Laplacian (β=1, scale α) entropies.
    assert ggd.differential_entropy_bits(2.0) == pytest.approx(0.5 * math.log2(2 * math.pi * math.e), rel=1e-15)
    assert ggd.differential_entropy_nats(1.0, 0.7) == pytest.approx(1 + math.log(2 * 0.7), rel=1e-15)
    assert ggd.kurtosis(2.0) == pytest.approx(3.0, rel=1e-14)
    assert ggd.kurtosis(1.0) == pytest.approx(6.0, rel=1e-14)


@pytest.mark.spec("DEF-RD-GGD-KL", "THM-RD-KL-EQ-DH")
@given(betas)
def test_kl_equals_entropy_deficit_and_is_nonnegative(beta):
    kl = ggd.kl_to_gaussian_bits(beta)
    assert kl >= 0.0
    assert kl == pytest.approx(ggd.differential_entropy_bits(2.0) - ggd.differential_entropy_bits(beta), abs=1e-13)


@pytest.mark.spec("DEF-RD-GGD-KL")
def test_kl_by_numerical_integration():
    from scipy import integrate, stats

    for beta in (1.0, 1.7, 3.0):
        f = lambda x: ggd.pdf(x, beta) * (ggd.logpdf(x, beta) - stats.norm.logpdf(x))  # noqa: E731
        val = 2 * integrate.quad(f, 0, 60, limit=200, epsabs=1e-14)[0] / math.log(2)
        assert ggd.kl_to_gaussian_bits(beta) == pytest.approx(val, rel=1e-8)


@pytest.mark.spec("DEF-RD-GGD")
def test_sampling_moments():
    x = ggd.sample(200_000, 1.7, rng=3)
    assert np.var(x) == pytest.approx(1.0, rel=0.02)
    assert np.mean(x**4) / np.var(x) ** 2 == pytest.approx(ggd.kurtosis(1.7), rel=0.05)


@pytest.mark.spec("DEF-RD-GGD-FIT", "DEF-RD-GGD-MOMFIT")
def test_fits_recover_parameters_and_ci_covers():
    for beta in (1.0, 1.7, 3.0):
        x = ggd.sample(50_000, beta, alpha=2.0, rng=int(beta * 10))
        ml = ggd.fit_ml(x)
        lo, hi = ml.beta_ci
        assert lo < ml.beta < hi
        assert lo <= beta <= hi
        assert ml.alpha == pytest.approx(2.0, rel=0.03)
        mm = ggd.fit_moments(x)
        assert mm.beta == pytest.approx(beta, rel=0.05)
        assert mm.beta_ci is None


@pytest.mark.spec("DEF-RD-GGD", "DEF-RD-GGD-FIT", "DEF-RD-GGD-MOMFIT")
def test_ggd_bad_inputs():
    for bad in (0.0, -1.0):
        with pytest.raises(InvalidParameterError) as ei:
            ggd.pdf(0.0, bad)
        assert ei.value.value == bad
        with pytest.raises(InvalidParameterError):
            ggd.differential_entropy_bits(1.7, bad)
    with pytest.raises(NonFiniteInputError):
        ggd.variance(float("inf"))
    with pytest.raises(NonFiniteInputError):
        ggd.pdf([0.0, float("nan")], 2.0)
    with pytest.raises(EmptyInputError):
        ggd.fit_ml([])
    with pytest.raises(NonFiniteInputError):
        ggd.fit_moments([1.0, float("inf"), 2.0])
    with pytest.raises(InvalidParameterError):
        ggd.fit_ml([0.0, 0.0, 1.0])
    with pytest.raises(InvalidParameterError):
        ggd.fit_ml([1.0, -2.0, 3.0], confidence=1.5)
