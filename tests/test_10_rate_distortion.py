"""DEF-RD-*, THM-RD-* (spec/10-rate-distortion.md): the reference against independent checks with sympy and mpmath."""

from __future__ import annotations

import math

import mpmath as mp
import pytest
import sympy as sp

from natprec.reference import ggd
from natprec.reference import ratedistortion as rd
from natprec.reference.errors import InvalidParameterError

BETAS = [0.5, 0.8, 1.0, 1.3, 1.7, 2.0, 2.5, 3.0, 4.0]
ALPHAS = [0.5, 1.0, 2.3]


def _sym_ggd():
    x, a, b = sp.symbols("x alpha beta", positive=True)
    c = b / (2 * a * sp.gamma(1 / b))
    return x, a, b, c, c * sp.exp(-((x / a) ** b))


@pytest.mark.spec("DEF-RD-GGD")
def test_sympy_density_integrates_to_one():
    x, a, b, _, f = _sym_ggd()
    assert sp.simplify(2 * sp.integrate(f, (x, 0, sp.oo)) - 1) == 0


@pytest.mark.spec("DEF-RD-GGD", "DEF-RD-GGD-UNIT")
def test_sympy_variance_closed_form():
    x, a, b, _, f = _sym_ggd()
    var = sp.simplify(2 * sp.integrate(x**2 * f, (x, 0, sp.oo)))
    expected = a**2 * sp.gamma(3 / b) / sp.gamma(1 / b)
    assert sp.simplify(sp.gammasimp(var - expected)) == 0
    var_num = sp.lambdify((a, b), var, "mpmath")
    for beta in BETAS:
        for alpha in ALPHAS:
            assert ggd.variance(beta, alpha) == pytest.approx(float(var_num(alpha, beta)), rel=1e-13)
        assert float(var_num(ggd.unit_variance_alpha(beta), beta)) == pytest.approx(1.0, rel=1e-13)


@pytest.mark.spec("DEF-RD-GGD-ENTROPY")
def test_sympy_entropy_closed_form():
    # ln f = ln C − (x/α)^β exactly, so h = −ln C + E[(|X|/α)^β]; sympy integrates the expectation.
    x, a, b, c, f = _sym_ggd()
    e_pow = sp.simplify(2 * sp.integrate(f * (x / a) ** b, (x, 0, sp.oo)))
    assert sp.simplify(e_pow - 1 / b) == 0
    h = -sp.log(c) + e_pow
    h_num = sp.lambdify((a, b), h, "mpmath")
    for beta in BETAS:
        for alpha in ALPHAS:
            assert ggd.differential_entropy_nats(beta, alpha) == pytest.approx(float(h_num(alpha, beta)), rel=1e-13)


def _mp_entropy_closed_nats(beta, alpha):
    b, a = mp.mpf(beta), mp.mpf(alpha)
    return 1 / b - mp.log(b / (2 * a * mp.gamma(1 / b)))


@pytest.mark.spec("DEF-RD-GGD-ENTROPY", "DEF-RD-GGD")
def test_mpmath_entropy_by_integration_matches_closed_form():
    with mp.workdps(35):
        for beta in BETAS:
            for alpha in ALPHAS:
                b, a = mp.mpf(beta), mp.mpf(alpha)
                log_c = mp.log(b / (2 * a * mp.gamma(1 / b)))

                def integrand(t):
                    lf = log_c - (t / a) ** b
                    return -mp.exp(lf) * lf

                pts = [0, a, 5 * a, 30 * a, 300 * a, mp.inf]
                h_int = 2 * mp.quad(integrand, pts)
                h_closed = _mp_entropy_closed_nats(beta, alpha)
                assert abs(h_int - h_closed) <= mp.mpf("1e-12") * abs(h_closed)
                assert ggd.differential_entropy_nats(beta, alpha) == pytest.approx(float(h_closed), rel=1e-13)
                assert ggd.differential_entropy_bits(beta, alpha) == pytest.approx(
                    float(h_closed / mp.log(2)), rel=1e-13
                )


@pytest.mark.spec("DEF-RD-SLB")
def test_mpmath_slb_matches_definition():
    with mp.workdps(35):
        for beta in (1.0, 1.7, 2.0, 3.0):
            for d in (0.3, 0.01, 1e-5):
                h_bits = _mp_entropy_closed_nats(beta, ggd.unit_variance_alpha(beta)) / mp.log(2)
                slb = h_bits - mp.log(2 * mp.pi * mp.e * mp.mpf(d), 2) / 2
                got = rd.slb_rate_bits(ggd.differential_entropy_bits(beta), d)
                assert abs(got - float(slb)) <= 1e-13 * max(1.0, abs(float(slb)))


@pytest.mark.spec("THM-RD-ENTROPY-QUANT", "DEF-RD-GGD")
def test_quantized_entropy_approaches_h_minus_log_step():
    # H_Δ from exact bin masses (mpmath, 30 digits) of GGD(β=1.7, unit variance), bins [kΔ, (k+1)Δ).
    beta = 1.7
    alpha = ggd.unit_variance_alpha(beta)
    h = ggd.differential_entropy_bits(beta)
    errors = []
    with mp.workdps(30):
        b, a = mp.mpf(beta), mp.mpf(alpha)

        def half_cdf(t):  # P(0 ≤ X ≤ t) for t ≥ 0
            return mp.gammainc(1 / b, 0, (t / a) ** b, regularized=True) / 2

        for step in (0.5, 0.25, 0.125, 0.0625):
            s = mp.mpf(step)
            k_max = int(12 / step)
            cum = [half_cdf(k * s) for k in range(k_max + 1)]
            masses = [cum[k + 1] - cum[k] for k in range(k_max)] + [mp.mpf(0.5) - cum[-1]]
            ent = -2 * mp.fsum(m * mp.log(m, 2) for m in masses if m > 0)
            errors.append(abs(float(ent) - (h - math.log2(step))))
    assert all(e2 < e1 for e1, e2 in zip(errors, errors[1:]))
    assert errors[-1] < 2e-3


def _gaussian_problem():
    return rd.discretise_ggd(2.0, 1401, 451)


@pytest.mark.spec("DEF-RD-BA", "DEF-RD-GAUSS", "THM-RD-GAUSS-SLB-TIGHT")
def test_ba_gaussian_matches_closed_form():
    src = _gaussian_problem()
    for d in (0.9, 0.5, 0.1, 0.01, 0.005):
        res = rd.blahut_arimoto_at_distortion(src.p, src.x, src.y, d, tol_bits=1e-4)
        exact = rd.gaussian_rate_bits(1.0, d)
        assert res.converged
        assert res.rate_lower_bits - 1e-9 <= res.rate_upper_bits
        assert abs(res.rate_bits - exact) < 2e-4, (d, res.rate_bits, exact)
        assert res.distortion <= d


@pytest.mark.spec("DEF-RD-BA", "THM-RD-BA-BOUNDS")
def test_ba_bounds_bracket_and_shrink():
    # Plain BA iterates and extrapolated (SQUAREM) ones alike: the bounds hold at every q.
    src = _gaussian_problem()
    for accelerate in (False, True):
        prev_gap = math.inf
        for it in (5, 50, 500):
            res = rd.blahut_arimoto(
                src.p, src.x, src.y, -1 / (2 * 0.05), tol_bits=1e-12, max_iter=it, accelerate=accelerate
            )
            assert not res.converged and res.iterations == it
            assert res.rate_lower_bits <= res.rate_upper_bits
            assert res.bound_gap_bits < prev_gap
            # The exact R at the channel's own distortion lies inside Blahut's bounds.
            exact = 0.5 * math.log2(1 / res.distortion)
            assert res.rate_lower_bits - 2e-4 <= exact <= res.rate_upper_bits + 2e-4
            prev_gap = res.bound_gap_bits
    # To a common tolerance the two agree within it, and the extrapolation needs fewer evaluations.
    plain = rd.blahut_arimoto(src.p, src.x, src.y, -1 / (2 * 0.05), tol_bits=1e-4, accelerate=False)
    fast = rd.blahut_arimoto(src.p, src.x, src.y, -1 / (2 * 0.05), tol_bits=1e-4)
    assert plain.converged and fast.converged and fast.iterations < plain.iterations
    assert abs(fast.rate_upper_bits - plain.rate_upper_bits) <= 1e-4
    assert abs(fast.distortion - plain.distortion) <= 1e-6


@pytest.mark.spec("DEF-RD-CONTINUOUS", "THM-RD-SLB", "THM-RD-LOG-CONCAVE-GAP")
def test_ggd_rd_between_slb_and_constant_gap():
    for beta in (1.0, 1.5):
        res = rd.rate_distortion_ggd(beta, 0.05, grid=(701, 225), grid_tol_bits=2e-3, max_refinements=2)
        assert res.converged, res
        assert res.grid_change_bits < 2e-3
        # R ≥ R_SLB up to the grid and BA tolerance; within the log-concave constant gap.
        assert res.rate_upper_bits >= res.slb_bits - 2e-3
        assert rd.log_concave_gap_check(res.rate_bits, res.slb_bits, tol_bits=2e-3)


@pytest.mark.spec("DEF-RD-BA", "DEF-RD-CONTINUOUS")
def test_bad_inputs_raise_named_errors():
    src = _gaussian_problem()
    for d in (0.0, -1.0, 1.0, 2.0):
        with pytest.raises(InvalidParameterError) as ei:
            rd.rate_distortion_ggd(2.0, d)
        assert ei.value.value == d
    with pytest.raises(InvalidParameterError):
        rd.rate_distortion_ggd(2.0, 1e-5)  # the default grid cannot resolve this D
    with pytest.raises(InvalidParameterError):
        rd.blahut_arimoto(src.p, src.x, src.y, 0.5)  # slope must be negative
    with pytest.raises(InvalidParameterError):
        rd.blahut_arimoto(src.p, src.x, src.y, -10.0, max_iter=3, tol_bits=1e-9, require_convergence=True)
    for beta in (0.0, -1.0):
        with pytest.raises(InvalidParameterError):
            rd.rate_distortion_ggd(beta, 0.1)
    with pytest.raises(InvalidParameterError):
        rd.rate_distortion_ggd(1.7, 0.1, alpha=0.0)
