"""DEF-RD-GGD — the generalized Gaussian distribution (spec/10-rate-distortion.md).

Density f(x; α, β) = β / (2 α Γ(1/β)) · exp(-(|x|/α)^β), α > 0 (scale), β > 0 (shape).
β = 2 is the Gaussian N(0, α²/2), β = 1 the Laplacian.  ``alpha=None`` everywhere
means the unit-variance scale α = sqrt(Γ(1/β)/Γ(3/β)) (DEF-RD-GGD-UNIT).

Every function holds for all β > 0.  Closed forms are evaluated in the log domain and raise
InvalidParameterError when the value itself is not representable in float64 (e.g. the kurtosis
at β = 0.001); CDFs and partial moments use the regularized incomplete gamma function with its
argument t = (|x|/α)^β carried as log t, so that t^(1/β) = |x|/α survives when t underflows
(β → ∞ tends to the uniform law on [−α, α]).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import optimize, special, stats

from ._domain import FLOAT_DTYPES, chunks
from .errors import EmptyInputError, InvalidParameterError, NonFiniteInputError

__all__ = [
    "check_shape_scale",
    "check_sample_range",
    "SAMPLE_RANGE",
    "unit_variance_alpha",
    "pdf",
    "logpdf",
    "cdf",
    "sf",
    "partial_moment",
    "sample",
    "absolute_moment",
    "variance",
    "kurtosis",
    "differential_entropy_nats",
    "differential_entropy_bits",
    "kl_to_gaussian_bits",
    "GGDFit",
    "fit_ml",
    "fit_moments",
]

LN2 = math.log(2.0)
# Fits search β in this interval; outside it the likelihood is numerically flat.
BETA_FIT_RANGE = (0.05, 50.0)


def _check_positive(v, name: str) -> float:
    try:
        f = float(v)
    except (TypeError, ValueError):
        raise InvalidParameterError(f"{name} must be a real number; got {v!r}", value=v) from None
    if not math.isfinite(f):
        raise NonFiniteInputError(f"{name} must be finite; got {f!r}", value=f)
    if f <= 0.0:
        raise InvalidParameterError(f"{name} must be > 0; got {f!r}", value=f)
    return f


def check_shape_scale(beta, alpha=None) -> tuple[float, float]:
    """DEF-RD-GGD — validate (β, α); α=None resolves to the unit-variance scale."""
    b = _check_positive(beta, "beta")
    a = unit_variance_alpha(b) if alpha is None else _check_positive(alpha, "alpha")
    return b, a


def _exp_or_raise(log_value: float, what: str, beta: float) -> float:
    """exp(log_value), or InvalidParameterError when it leaves the normal float64 range."""
    if not -708.0 < log_value < 709.0:
        raise InvalidParameterError(
            f"{what} = exp({log_value:.6g}) at beta = {beta!r} is not representable in float64", value=beta
        )
    return math.exp(log_value)


def unit_variance_alpha(beta) -> float:
    """DEF-RD-GGD-UNIT — the scale α = sqrt(Γ(1/β)/Γ(3/β)) that gives variance 1."""
    b = _check_positive(beta, "beta")
    return _exp_or_raise(0.5 * (math.lgamma(1.0 / b) - math.lgamma(3.0 / b)), "the unit-variance scale alpha", b)


def _finite_array(x, name: str = "x") -> np.ndarray:
    arr = np.asarray(x, dtype=np.float64)
    bad = ~np.isfinite(arr)
    if bad.any():
        v = float(arr[bad].flat[0])
        raise NonFiniteInputError(f"{name} contains a non-finite value {v!r}", value=v)
    return arr


def logpdf(x, beta, alpha=None) -> np.ndarray:
    """DEF-RD-GGD — natural log of the density."""
    b, a = check_shape_scale(beta, alpha)
    arr = _finite_array(x)
    log_norm = math.log(b) - math.log(2.0 * a) - math.lgamma(1.0 / b)
    return log_norm - (np.abs(arr) / a) ** b


def pdf(x, beta, alpha=None) -> np.ndarray:
    """DEF-RD-GGD — the density f(x; α, β)."""
    return np.exp(logpdf(x, beta, alpha))


#: Below this log t the series γ(k, t) = t^k e^(−t) Σ t^j/((k)(k+1)…(k+j)) is its first term to
#: double precision (e^(−t) = 1 and t/(k+1) < 1e-260), so P(k, t) = exp(k·log t − lnΓ(k+1)).
_LOG_T_SERIES = -600.0


def _regularized_gamma(k: float, b: float, a: float, x: np.ndarray, upper: bool) -> np.ndarray:
    """P(k, t) (or Q = 1 − P when ``upper``) at t = (|x|/α)^β, exact where t underflows."""
    ax = np.abs(x)
    with np.errstate(divide="ignore", over="ignore"):
        log_t = b * (np.log(ax) - math.log(a))  # −inf at x = 0
        t = np.exp(log_t)  # inf beyond the float range: P = 1, Q = 0, as the functions give
        out = special.gammaincc(k, t) if upper else special.gammainc(k, t)
        tiny = log_t < _LOG_T_SERIES
        if np.any(tiny):
            p_small = np.exp(k * np.where(tiny, log_t, 0.0) - math.lgamma(k + 1.0))
            out = np.where(tiny, 1.0 - p_small if upper else p_small, out)
    return out


def cdf(x, beta, alpha=None) -> np.ndarray:
    """DEF-RD-GGD — F(x) = ½ + sign(x)·½·P(1/β, (|x|/α)^β) (P = regularized lower incomplete gamma)."""
    b, a = check_shape_scale(beta, alpha)
    arr = np.asarray(x, dtype=np.float64)
    if np.isnan(arr).any():
        raise NonFiniteInputError("x contains NaN", value=float("nan"))
    half_tail = 0.5 * _regularized_gamma(1.0 / b, b, a, arr, upper=True)
    # Evaluate the small side directly (no 1 - F cancellation in the tails).
    return np.where(arr < 0, half_tail, 1.0 - half_tail)


def sf(x, beta, alpha=None) -> np.ndarray:
    """DEF-RD-GGD — survival function 1 - F(x), accurate in the upper tail."""
    return cdf(-np.asarray(x, dtype=np.float64), beta, alpha)


def partial_moment(m: int, lo, hi, beta, alpha=None) -> np.ndarray:
    """DEF-RD-GGD — ∫_lo^hi x^m f(x) dx for m ∈ {0, 1, 2}; lo/hi may be ±inf (elementwise, lo ≤ hi)."""
    if m not in (0, 1, 2):
        raise InvalidParameterError(f"partial moment order must be 0, 1 or 2; got {m!r}", value=m)
    b, a = check_shape_scale(beta, alpha)
    lo = np.asarray(lo, dtype=np.float64)
    hi = np.asarray(hi, dtype=np.float64)
    k = (m + 1.0) / b
    coef = _exp_or_raise(m * math.log(a) + math.lgamma(k) - math.lgamma(1.0 / b), f"E|X|^{m}", b) / 2.0

    def from0(t):  # ∫_0^t x^m f dx (odd in t for m = 1, even-signed for m = 0, 2)
        g = coef * _regularized_gamma(k, b, a, t, upper=False)
        return g * np.sign(t) if m != 1 else g

    # ∫_lo^hi = G(hi) - G(lo) with G(t) = ∫_0^t, sign handled per order.
    return from0(hi) - from0(lo)


def sample(n: int, beta, alpha=None, rng=None) -> np.ndarray:
    """DEF-RD-GGD — n i.i.d. draws: α · sign · G1^{1/β} · U, G1 ~ Gamma(1 + 1/β, 1), U ~ U(0, 1).

    |X|/α = G^{1/β} with G ~ Gamma(1/β); G = G1 · U^β in law (the gamma shape boost), so the
    draw never forms G itself, which underflows to 0 for large β (about half the draws at β = 1000).
    """
    b, a = check_shape_scale(beta, alpha)
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise InvalidParameterError(f"n must be a non-negative integer; got {n!r}", value=n)
    gen = np.random.default_rng(rng)
    g1 = gen.gamma(1.0 + 1.0 / b, 1.0, size=int(n))
    u = gen.random(int(n))
    sign = np.where(gen.random(int(n)) < 0.5, -1.0, 1.0)
    return a * sign * g1 ** (1.0 / b) * u


def absolute_moment(r, beta, alpha=None) -> float:
    """DEF-RD-GGD — E|X|^r = α^r Γ((r+1)/β) / Γ(1/β), r > -1."""
    b, a = check_shape_scale(beta, alpha)
    r = float(r)
    if not r > -1.0:
        raise InvalidParameterError(f"absolute moment order must be > -1; got {r!r}", value=r)
    return _exp_or_raise(r * math.log(a) + math.lgamma((r + 1.0) / b) - math.lgamma(1.0 / b), f"E|X|^{r:g}", b)


def variance(beta, alpha=None) -> float:
    """DEF-RD-GGD — Var X = α² Γ(3/β) / Γ(1/β)."""
    return absolute_moment(2.0, beta, alpha)


def kurtosis(beta) -> float:
    """DEF-RD-GGD-KURT — E X⁴ / (E X²)² = Γ(5/β) Γ(1/β) / Γ(3/β)² (not excess; Gaussian = 3)."""
    b = _check_positive(beta, "beta")
    return _exp_or_raise(math.lgamma(5.0 / b) + math.lgamma(1.0 / b) - 2.0 * math.lgamma(3.0 / b), "the kurtosis", b)


def differential_entropy_nats(beta, alpha=None) -> float:
    """DEF-RD-GGD-ENTROPY — h = 1/β − ln(β / (2 α Γ(1/β))) nats."""
    b, a = check_shape_scale(beta, alpha)
    return 1.0 / b - math.log(b) + math.log(2.0 * a) + math.lgamma(1.0 / b)


def differential_entropy_bits(beta, alpha=None) -> float:
    """DEF-RD-GGD-ENTROPY — h in bits: (1/β)/ln 2 − log2(β / (2 α Γ(1/β)))."""
    return differential_entropy_nats(beta, alpha) / LN2


def kl_to_gaussian_bits(beta) -> float:
    """DEF-RD-GGD-KL — KL(GGD(β) ‖ N(0, σ²)) at equal variance σ², in bits; scale-free.

    Equals ½log2(2πeσ²) − h(GGD): the Gaussian maximises entropy at fixed variance.
    """
    b = _check_positive(beta, "beta")
    kl = 0.5 * math.log2(2.0 * math.pi * math.e) - differential_entropy_bits(b)
    return max(kl, 0.0)  # KL ≥ 0; at β = 2 the difference is rounding noise of either sign


@dataclass(frozen=True)
class GGDFit:
    """DEF-RD-GGD-FIT — a fitted (β, α) with a confidence interval for β."""

    beta: float
    alpha: float
    beta_ci: tuple[float, float] | None
    confidence: float | None
    method: str
    n: int
    log_likelihood: float | None


def _check_samples(x) -> np.ndarray:
    """Samples for a fit, flattened: a float array keeps its dtype (no float64 copy; sums convert chunk by chunk)."""
    arr = np.asarray(x)
    if arr.dtype not in FLOAT_DTYPES:
        arr = np.asarray(x, dtype=np.float64)
    arr = arr.ravel()
    if arr.size == 0:
        raise EmptyInputError("samples are empty", value=[])
    for sl in chunks(arr.size):
        bad = ~np.isfinite(arr[sl])
        if bad.any():
            v = float(arr[sl][bad][0])
            raise NonFiniteInputError(f"samples contains a non-finite value {v!r}", value=v)
    if np.count_nonzero(arr) < 2:
        raise InvalidParameterError(
            f"a GGD fit needs at least 2 non-zero samples; got {np.count_nonzero(arr)}", value=arr.size
        )
    return check_sample_range(arr)


#: Samples whose magnitudes leave [2**-500, 2**500] have second moments outside float64.
SAMPLE_RANGE = (2.0**-500, 2.0**500)


def check_sample_range(arr: np.ndarray) -> np.ndarray:
    """DEF-RD-GGD — samples for moment statistics: every non-zero |x| in SAMPLE_RANGE, else InvalidParameterError.

    Beyond it x² over- or underflows, and a fit or an MSE would be ±Inf, 0 or a division by zero.
    """
    lo, hi = math.inf, 0.0
    for sl in chunks(arr.size):  # |x| of one chunk at a time
        a = np.abs(arr[sl])
        a = a[a != 0]
        if a.size:
            lo, hi = min(lo, float(a.min())), max(hi, float(a.max()))
    if hi > SAMPLE_RANGE[1] or lo < SAMPLE_RANGE[0]:
        bad = hi if hi > SAMPLE_RANGE[1] else lo
        raise InvalidParameterError(
            f"sample magnitude {bad!r} is outside [2**-500, 2**500], where second moments are float64 numbers; "
            "rescale the samples", value=bad,
        )
    return arr


def _log_abs_nonzero(arr: np.ndarray) -> np.ndarray:
    """ln|x| of the non-zero samples, formed chunk by chunk (no |x| copy of the samples)."""
    out = np.empty(int(np.count_nonzero(arr)))
    k = 0
    for sl in chunks(arr.size):
        a = arr[sl]
        v = np.log(np.abs(a[a != 0]).astype(np.float64))
        out[k:k + v.size] = v
        k += v.size
    return out


def _log_mean_pow(beta: float, logs: np.ndarray, n: int) -> float:
    """ln((1/n) Σ|x|^β) from ln|x|, shifted by the largest term and summed chunk by chunk (no overflow, O(chunk) memory)."""
    mx = beta * float(np.max(logs))  # = max(β·ln|x|): β > 0 keeps the maximiser
    total = math.fsum(float(np.sum(np.exp(beta * logs[sl] - mx))) for sl in chunks(logs.size))
    return mx + math.log(total / n)


def _profile_loglik(beta: float, logs: np.ndarray, n: int) -> float:
    # α̂(β) = (β/n Σ|x|^β)^{1/β} maximises the likelihood at fixed β; substituting gives
    # ℓ(β) = n[ln β − ln 2 − lnΓ(1/β) − ln α̂ − 1/β].  Logs avoid |x|^β overflow.
    log_alpha = (math.log(beta) + _log_mean_pow(beta, logs, n)) / beta
    return n * (math.log(beta) - LN2 - math.lgamma(1.0 / beta) - log_alpha - 1.0 / beta)


def fit_ml(x, confidence: float | None = 0.95) -> GGDFit:
    """DEF-RD-GGD-FIT — maximum-likelihood (β, α) with a profile-likelihood CI for β.

    The CI is {β : 2(ℓ(β̂) − ℓ_p(β)) ≤ χ²₁(confidence)}, ℓ_p the profile log-likelihood
    (α maximised out).  An end that would leave BETA_FIT_RANGE is reported as that bound.
    ``confidence=None``: no interval (``beta_ci`` None) — the same β̂ and α̂ at about half the likelihood evaluations.
    """
    arr = _check_samples(x)
    conf = None if confidence is None else float(confidence)
    if conf is not None and not 0.0 < conf < 1.0:
        raise InvalidParameterError(f"confidence must be in (0, 1) or None; got {confidence!r}", value=confidence)
    n = arr.size
    logs = _log_abs_nonzero(arr)
    del arr  # the fit needs only ln|x| of the non-zero samples
    lo_b, hi_b = BETA_FIT_RANGE

    def negll(t):
        return -_profile_loglik(math.exp(t), logs, n)

    res = optimize.minimize_scalar(
        negll, bounds=(math.log(lo_b), math.log(hi_b)), method="bounded", options={"xatol": 1e-10}
    )
    beta_hat = math.exp(res.x)
    ll_max = -res.fun
    alpha_hat = math.exp((math.log(beta_hat) + _log_mean_pow(beta_hat, logs, n)) / beta_hat)
    if conf is None:
        return GGDFit(beta_hat, alpha_hat, None, None, "ml-profile-likelihood", n, float(ll_max))
    cut = ll_max - 0.5 * stats.chi2.ppf(conf, 1)

    def excess(t):
        return _profile_loglik(math.exp(t), logs, n) - cut

    def end(bound):
        tb = math.log(bound)
        if excess(tb) >= 0:
            return bound
        return math.exp(optimize.brentq(excess, min(res.x, tb), max(res.x, tb), xtol=1e-12))

    ci = (end(lo_b), end(hi_b))
    return GGDFit(beta_hat, alpha_hat, ci, conf, "ml-profile-likelihood", n, float(ll_max))


def _abs_ratio(beta: float) -> float:
    # (E|X|)² / E X² = Γ(2/β)² / (Γ(1/β) Γ(3/β)); increasing in β, from 0 (β→0) to 3/4 (β→∞, uniform).
    return math.exp(2.0 * math.lgamma(2.0 / beta) - math.lgamma(1.0 / beta) - math.lgamma(3.0 / beta))


def fit_moments(x) -> GGDFit:
    """DEF-RD-GGD-MOMFIT — moment matching: solve Γ(2/β)²/(Γ(1/β)Γ(3/β)) = (mean|x|)²/mean(x²).

    α then matches the second moment.  No confidence interval.  A sample ratio outside
    the range the ratio takes on BETA_FIT_RANGE raises InvalidParameterError.
    """
    arr = _check_samples(x)
    n = arr.size
    m1 = math.fsum(float(np.sum(np.abs(arr[sl].astype(np.float64)))) for sl in chunks(n)) / n
    m2 = math.fsum(float(np.sum(np.square(arr[sl].astype(np.float64)))) for sl in chunks(n)) / n
    r = m1 * m1 / m2
    lo_b, hi_b = BETA_FIT_RANGE
    r_lo, r_hi = _abs_ratio(lo_b), _abs_ratio(hi_b)
    if not r_lo < r < r_hi:
        raise InvalidParameterError(
            f"moment ratio (E|x|)^2/E[x^2] = {r!r} is outside ({r_lo!r}, {r_hi!r}) reached by "
            f"beta in {BETA_FIT_RANGE}",
            value=r,
        )
    t = optimize.brentq(lambda t: _abs_ratio(math.exp(t)) - r, math.log(lo_b), math.log(hi_b), xtol=1e-14)
    beta = math.exp(t)
    alpha = math.sqrt(m2) * unit_variance_alpha(beta)
    return GGDFit(beta, alpha, None, None, "moment-matching-abs-ratio", arr.size, None)
