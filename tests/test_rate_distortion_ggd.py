"""Unit and property tests for reference/ggd.py (spec/10-rate-distortion.md)."""

from __future__ import annotations

import math

import mpmath as mp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from natprec.reference import ggd
from natprec.reference import ratedistortion as rd
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
        # The 95 % profile-likelihood interval covers the true β in ≥ 34 of 40 samples (P(fail) < 1 %).
        covered = sum(lo2 <= beta <= hi2 for lo2, hi2 in (ggd.fit_ml(ggd.sample(20_000, beta, alpha=2.0, rng=s)).beta_ci
                                                          for s in range(40)))
        assert covered >= 34
        assert ml.alpha == pytest.approx(2.0, rel=0.03)
        mm = ggd.fit_moments(x)
        assert mm.beta == pytest.approx(beta, rel=0.05)
        assert mm.beta_ci is None
        # Without the interval: the same numbers (and float32 samples fit as their float64 values do).
        bare = ggd.fit_ml(x.astype(np.float32), confidence=None)
        full = ggd.fit_ml(x.astype(np.float32).astype(np.float64))
        assert (bare.beta, bare.alpha, bare.log_likelihood, bare.beta_ci, bare.confidence) == \
            (full.beta, full.alpha, full.log_likelihood, None, None)


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


# ---- issue 9, item 1: large and small β (|x|/α)^β under- and overflow


@pytest.mark.spec("DEF-RD-GGD")
@pytest.mark.parametrize("beta", [300.0, 1000.0, 1e4, 1e6])
def test_cdf_and_partial_moments_at_large_beta_match_mpmath(beta):
    mp.mp.dps = 40
    b = mp.mpf(beta)
    a = mp.sqrt(mp.gamma(1 / b) / mp.gamma(3 / b))
    for x in (0.3, 1.0, 1.7, 1.73, -0.9):
        t = (abs(mp.mpf(x)) / a) ** b
        p = mp.gammainc(1 / b, 0, t, regularized=True)
        want = float(mp.mpf(1) / 2 + mp.sign(x) * p / 2)
        assert ggd.cdf(x, beta) == pytest.approx(want, rel=1e-12, abs=1e-300)
    for m in (0, 1, 2):
        lo, hi = -0.5, 1.2
        want = float(mp.quad(lambda t: t**m * b / (2 * a * mp.gamma(1 / b)) * mp.exp(-((abs(t) / a) ** b)), [lo, 0, hi]))
        assert ggd.partial_moment(m, lo, hi, beta) == pytest.approx(want, rel=1e-9)


@pytest.mark.spec("DEF-RD-GGD")
def test_sample_at_large_beta_has_no_underflowed_draws():
    x = ggd.sample(100_000, 1000.0, rng=5)
    assert np.count_nonzero(x == 0.0) == 0
    # β = 1000 is within 1e-3 of the uniform law on [−√3, √3]: KS distance to the exact CDF.
    xs = np.sort(x)
    ks = np.max(np.abs(ggd.cdf(xs, 1000.0) - np.arange(1, xs.size + 1) / xs.size))
    assert ks < 0.01


@pytest.mark.spec("DEF-RD-GGD")
def test_sample_matches_the_law_at_ordinary_beta():
    for beta in (0.5, 1.0, 2.0, 8.0):
        xs = np.sort(ggd.sample(50_000, beta, rng=11))
        ks = np.max(np.abs(ggd.cdf(xs, beta) - np.arange(1, xs.size + 1) / xs.size))
        assert ks < 0.01, beta


@pytest.mark.spec("DEF-RD-GGD", "DEF-RD-GGD-KURT")
def test_small_beta_is_finite_or_a_named_error():
    assert ggd.variance(0.01) == pytest.approx(1.0, rel=1e-9)
    assert ggd.absolute_moment(2.0, 0.01, ggd.unit_variance_alpha(0.01)) == pytest.approx(1.0, rel=1e-9)
    with pytest.raises(InvalidParameterError) as e:
        ggd.kurtosis(0.001)
    assert e.value.value == 0.001
    with pytest.raises(InvalidParameterError):
        ggd.unit_variance_alpha(0.0005)


@pytest.mark.spec("DEF-RD-CONTINUOUS", "DEF-RD-SLB")
def test_rate_distortion_at_large_beta_respects_the_slb():
    r = rd.rate_distortion_ggd(1000.0, 0.01)
    assert r.converged
    assert r.rate_bits >= r.slb_bits - 1e-3
    assert r.rate_bits == pytest.approx(3.0929, abs=2e-3)


@pytest.mark.spec("DEF-RD-CONTINUOUS")
def test_rate_distortion_rejects_a_grid_that_misses_the_variance():
    with pytest.raises(InvalidParameterError, match="beta too small"):
        rd.rate_distortion_ggd(0.01, 0.01)
