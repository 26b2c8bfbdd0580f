"""DEF-RD-SLB, DEF-RD-BA, DEF-RD-CONTINUOUS, DEF-RD-OPPOINT — rate–distortion for MSE (spec/10-rate-distortion.md).

Rates are in bits unless a name says nats.  The Blahut–Arimoto slope ``slope`` is the
Lagrange parameter s < 0 in nats per unit of squared error (the R(D) curve has slope
s / ln 2 bits per unit of distortion there).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy import optimize, special

from . import ggd
from ._domain import chunks
from .codebook import Codebook, nearest_index
from .errors import EmptyInputError, InvalidParameterError, NonFiniteInputError
from .registry import NF4_VALUES

__all__ = [
    "LOG_CONCAVE_GAP_BITS",
    "ECSQ_HIGH_RATE_GAP_BITS",
    "slb_rate_bits",
    "gaussian_rate_bits",
    "log_concave_gap_check",
    "BAResult",
    "blahut_arimoto",
    "blahut_arimoto_at_distortion",
    "blahut_arimoto_loop",
    "DiscreteSource",
    "ggd_quantile_abs",
    "discretise_ggd",
    "RDResult",
    "rate_distortion_ggd",
    "GGDSource",
    "SampleSource",
    "OperatingPoint",
    "operating_point",
    "format_operating_point",
    "mse_optimal_scale",
    "LloydMaxResult",
    "lloyd_max",
    "uniform_codebook",
    "ECSQPoint",
    "ecsq_uniform",
    "ecsq_uniform_at_distortion",
    "price_of_uniformity_bits",
    "nf4_mismatch",
    "BlockScalingRow",
    "block_scaling_mse",
]

LN2 = math.log(2.0)
#: THM-RD-LOG-CONCAVE-GAP: 0 ≤ R(D) − R_SLB(D) ≤ log2 sqrt(πe/2) for log-concave sources.
LOG_CONCAVE_GAP_BITS = 0.5 * math.log2(math.pi * math.e / 2.0)
#: THM-RD-ECSQ-GAP: high-rate gap of the entropy-coded uniform quantizer to the SLB, ½log2(πe/6).
ECSQ_HIGH_RATE_GAP_BITS = 0.5 * math.log2(math.pi * math.e / 6.0)
# Products below this are recomputed exactly in the log domain (see _ba_step).
_UNDERFLOW_GUARD = 1e-200


def _real(v, name: str) -> float:
    try:
        f = float(v)
    except (TypeError, ValueError):
        raise InvalidParameterError(f"{name} must be a real number; got {v!r}", value=v) from None
    if not math.isfinite(f):
        raise NonFiniteInputError(f"{name} must be finite; got {f!r}", value=f)
    return f


def _check_distortion(D, var: float | None = None) -> float:
    d = _real(D, "distortion D")
    if d <= 0.0:
        raise InvalidParameterError(f"distortion D must be > 0; got {d!r}", value=d)
    if var is not None and d >= var:
        raise InvalidParameterError(
            f"distortion D = {d!r} must be < the source variance {var!r} (R(D) = 0 there)", value=d
        )
    return d


def slb_rate_bits(h_bits, D) -> float:
    """DEF-RD-SLB — Shannon lower bound for MSE: R_SLB(D) = h − ½log2(2πeD) bits (may be negative)."""
    h = _real(h_bits, "h_bits")
    d = _check_distortion(D)
    return h - 0.5 * math.log2(2.0 * math.pi * math.e * d)


def gaussian_rate_bits(variance, D) -> float:
    """DEF-RD-GAUSS — R(D) = ½log2(σ²/D) bits of a Gaussian source under MSE, 0 < D < σ²."""
    var = _real(variance, "variance")
    if var <= 0.0:
        raise InvalidParameterError(f"variance must be > 0; got {var!r}", value=var)
    d = _check_distortion(D, var)
    return 0.5 * math.log2(var / d)


def log_concave_gap_check(rate_bits, slb_bits, tol_bits: float = 0.0) -> bool:
    """THM-RD-LOG-CONCAVE-GAP — whether −tol ≤ R − R_SLB ≤ log2 sqrt(πe/2) + tol."""
    gap = _real(rate_bits, "rate_bits") - _real(slb_bits, "slb_bits")
    return -tol_bits <= gap <= LOG_CONCAVE_GAP_BITS + tol_bits


# ---------------------------------------------------------------- Blahut–Arimoto


@dataclass
class BAResult:
    """DEF-RD-BA — one Blahut–Arimoto point.

    ``rate_bits`` is I(X;Y) of the returned test channel (an achievable point, the
    upper bound); ``rate_lower_bits`` Blahut's lower bound at ``distortion``.
    """

    rate_bits: float
    distortion: float
    rate_lower_bits: float
    rate_upper_bits: float
    bound_gap_bits: float
    slope: float
    iterations: int
    converged: bool
    log_q: np.ndarray = field(repr=False)
    test_channel: np.ndarray = field(repr=False)


def _check_problem(p, x, y):
    p = np.asarray(p, dtype=np.float64).ravel()
    x = np.asarray(x, dtype=np.float64).ravel()
    y = np.asarray(y, dtype=np.float64).ravel()
    for name, a in (("p", p), ("x", x), ("y", y)):
        if a.size == 0:
            raise EmptyInputError(f"{name} is empty", value=[])
        if not np.isfinite(a).all():
            v = float(a[~np.isfinite(a)][0])
            raise NonFiniteInputError(f"{name} contains a non-finite value {v!r}", value=v)
    if p.shape != x.shape:
        raise InvalidParameterError(f"p and x must have the same length; got {p.size} and {x.size}", value=p.size)
    if (p < 0).any():
        raise InvalidParameterError(f"p has a negative mass {float(p.min())!r}", value=float(p.min()))
    total = float(p.sum())
    if not abs(total - 1.0) <= 1e-9:
        raise InvalidParameterError(f"p must sum to 1; sums to {total!r}", value=total)
    keep = p > 0  # zero-mass source points carry no information and would give log 0
    return p[keep] / p[keep].sum(), x[keep], y


_vecdot = getattr(np, "vecdot", None)  # NumPy ≥ 2: a row-wise dot that never spawns BLAS threads


class _Kernel:
    """exp(s·d) for one slope, row-shifted so every row's largest entry is 1.

    The kernel is kept in both layouts so each BA sum is a row-wise dot product over
    contiguous memory: ``np.vecdot`` (one BLAS ddot per row, single-threaded) or, before
    NumPy 2, ``np.einsum``.  A threaded gemv stalls badly on a busy 2-core machine, and the
    thread count never changes the result.
    """

    def __init__(self, x, y, slope, d=None):
        self.slope = slope
        self.d = (x[:, None] - y[None, :]) ** 2 if d is None else d
        sd = slope * self.d
        self.row_max = sd.max(axis=1)
        sd -= self.row_max[:, None]
        k = np.exp(sd, out=sd)
        k[k < 1e-300] = 0.0  # subnormals cost time and are below the underflow guard anyway
        self.k = k
        self.kt = np.ascontiguousarray(k.T)

    def sd(self, rows=slice(None), cols=slice(None)):
        return self.slope * self.d[rows, cols]

    def rows(self, v):
        """Σ_y k(x, y) v(y) for every x."""
        return _vecdot(self.k, v) if _vecdot is not None else np.einsum("ij,j->i", self.k, v)

    def cols(self, w):
        """Σ_x w(x) k(x, y) for every y."""
        return _vecdot(self.kt, w) if _vecdot is not None else np.einsum("ji,j->i", self.kt, w)


def _lse_rows(a):
    m = a.max(axis=1)
    return m + np.log(np.exp(a - m[:, None]).sum(axis=1))


def _ba_step(ker: _Kernel, log_p, log_q):
    """One BA update: returns (log Z(x), log c(y)).

    Sums are row-wise dot products of the shifted kernel with max-scaled vectors;
    a result below _UNDERFLOW_GUARD may have lost terms to underflow and is recomputed
    exactly as a log-sum-exp, so no mass is ever lost to a hard zero.
    """
    mq = log_q.max()
    z = ker.rows(np.exp(log_q - mq))
    with np.errstate(divide="ignore"):
        log_z = np.log(z)
    log_z += ker.row_max + mq
    bad = z < _UNDERFLOW_GUARD
    if bad.any():
        log_z[bad] = _lse_rows(ker.sd(bad) + log_q[None, :])
    v = log_p - log_z
    v += ker.row_max
    mv = v.max()
    c = ker.cols(np.exp(v - mv))
    with np.errstate(divide="ignore"):
        log_c = np.log(c)
    log_c += mv
    bad = c < _UNDERFLOW_GUARD
    if bad.any():
        log_c[bad] = _lse_rows((ker.sd(slice(None), bad) + (log_p - log_z)[:, None]).T)
    return log_z, log_c


def _normalise_log(v):
    m = v.max()
    return v - (m + math.log(float(np.exp(v - m).sum())))


def _validate_ba_args(slope, tol_bits, max_iter):
    s = _real(slope, "slope")
    if s >= 0.0:
        raise InvalidParameterError(f"slope must be < 0; got {s!r}", value=s)
    t = _real(tol_bits, "tol_bits")
    if t <= 0.0:
        raise InvalidParameterError(f"tol_bits must be > 0; got {t!r}", value=t)
    if int(max_iter) != max_iter or max_iter < 1:
        raise InvalidParameterError(f"max_iter must be a positive integer; got {max_iter!r}", value=max_iter)
    return s, t, int(max_iter)


class _Eval:
    """One BA map evaluation at a normalised log q: Z, c, the objective, the bound gap, F(log q)."""

    __slots__ = ("log_q", "log_z", "log_c", "objective", "gap", "q_next", "log_q_next")

    def __init__(self, ker, log_p, p, log_q):
        self.log_q = log_q
        self.log_z, self.log_c = _ba_step(ker, log_p, log_q)
        # BA minimises −Σ p ln Z over normalised q; each plain step never increases it.
        self.objective = -float(p @ self.log_z)
        lq = log_q + self.log_c
        m = lq.max()
        q = np.exp(lq - m)
        tot = float(q.sum())
        q /= tot
        lq -= m + math.log(tot)
        self.q_next = q  # q·c, normalised: the output marginal of the test channel at q
        self.log_q_next = lq  # F(log q), the plain BA step
        # Blahut's bounds differ by max_y log c − Σ_y q'(y) log c(y) (q' = q·c), in nats.
        self.gap = (float(self.log_c.max()) - float(q @ self.log_c)) / LN2


def _ba_solve(ker, log_p, log_q, slope, tol_bits, max_iter, accelerate=True):
    """BA from log_q; with ``accelerate`` the iterates are extrapolated (SQUAREM, Varadhan & Roland 2008).

    Blahut's bounds hold at *every* strictly positive q, not only at BA iterates, so the
    extrapolation cannot invalidate them: an extrapolated q is kept only if it does not
    raise the BA objective −Σ p ln Z (else the plain BA step is taken), and the bounds and
    the stopping test are always those of an evaluated q.  ``max_iter`` counts evaluations
    of the BA map (two kernel sums each), extrapolated or not.
    """
    p = np.exp(log_p)
    cur = _Eval(ker, log_p, p, log_q)
    it = 1
    best = cur
    step_max = 1.0
    while cur.gap > tol_bits and it < max_iter:
        if not accelerate:
            cur = _Eval(ker, log_p, p, cur.log_q_next)
            it += 1
        else:
            nxt = _Eval(ker, log_p, p, cur.log_q_next)
            it += 1
            if nxt.gap <= tol_bits or it >= max_iter:
                cur = nxt
            else:
                r = cur.log_q_next - cur.log_q
                v = nxt.log_q_next - cur.log_q_next - r
                vv = float(v @ v)
                raw = -math.sqrt(float(r @ r) / vv) if vv > 0.0 else -1.0
                alpha = max(min(raw, -1.0), -step_max)
                if alpha == -1.0:
                    cur = _Eval(ker, log_p, p, nxt.log_q_next)  # the extrapolation is the plain step
                    it += 1
                    if raw < -step_max:
                        step_max *= 4.0
                else:
                    ext = cur.log_q - 2.0 * alpha * r + alpha * alpha * v
                    if np.isfinite(ext).all():
                        ext = np.maximum(ext, ext.max() - 700.0)  # keep every q(y) > 0 in float64
                        trial = _Eval(ker, log_p, p, _normalise_log(ext))
                        it += 1
                    else:
                        trial = None
                    if trial is not None and trial.objective <= nxt.objective + 1e-13 * abs(nxt.objective):
                        cur = trial
                        if alpha == -step_max:
                            step_max *= 4.0
                    else:
                        step_max = max(1.0, step_max / 4.0)
                        if trial is not None and trial.gap < best.gap:
                            best = trial
                        if it >= max_iter:
                            cur = nxt
                        else:
                            cur = _Eval(ker, log_p, p, nxt.log_q_next)
                            it += 1
            if nxt.gap < best.gap:
                best = nxt
        if cur.gap < best.gap:
            best = cur
    if cur.gap > tol_bits and best.gap < cur.gap:
        cur = best  # not converged: report the tightest bounds seen
    gap = cur.gap
    log_q, log_z, log_c, q_new = cur.log_q, cur.log_z, cur.log_c, cur.q_next
    # Bounds and channel at the q whose c-vector certified the gap.
    mean_log_z = float(p @ log_z)
    chan = ker.sd()
    chan += log_q[None, :]
    chan -= log_z[:, None]
    np.exp(chan, out=chan)
    dist = float(p @ _rowdot(chan, ker.d))
    base = slope * dist - mean_log_z
    upper = (base - float(q_new @ log_c)) / LN2
    lower = (base - float(log_c.max())) / LN2
    return BAResult(
        rate_bits=upper,
        distortion=dist,
        rate_lower_bits=lower,
        rate_upper_bits=upper,
        bound_gap_bits=upper - lower,
        slope=slope,
        iterations=it,
        converged=gap <= tol_bits,
        log_q=log_q,
        test_channel=chan,
    ), log_c, mean_log_z


def _rowdot(a, b):
    return _vecdot(a, b) if _vecdot is not None else np.einsum("ij,ij->i", a, b)


def _initial_log_q(m, init_log_q):
    if init_log_q is None:
        return np.full(m, -math.log(m))  # uniform: strictly positive everywhere
    lq = np.asarray(init_log_q, dtype=np.float64)
    if lq.shape != (m,) or np.isnan(lq).any() or np.isposinf(lq).any():
        raise InvalidParameterError(f"init_log_q must be {m} finite-or--inf log masses", value=lq.shape)
    # Floor at 1e-30 of the peak: BA can never revive an output with q(y) = 0.
    lq = np.maximum(lq, lq.max() - 69.0)
    return _normalise_log(lq)


def blahut_arimoto(
    p, x, y, slope, *, tol_bits=1e-4, max_iter=20000, init_log_q=None, require_convergence=False, accelerate=True
):
    """DEF-RD-BA — Blahut–Arimoto at one slope s < 0 for source masses p on points x, outputs y, d = (x−y)².

    Log-domain state, strictly positive start, stops when Blahut's upper − lower bound
    gap ≤ tol_bits.  ``accelerate`` (default) extrapolates the iterates (SQUAREM) under a
    monotone safeguard; ``accelerate=False`` is the plain iteration.  ``iterations`` counts
    BA-map evaluations.  Not converged within max_iter: ``converged=False`` with the
    smallest gap reached, or InvalidParameterError if ``require_convergence``.
    """
    p, x, y = _check_problem(p, x, y)
    s, t, n = _validate_ba_args(slope, tol_bits, max_iter)
    res, _, _ = _ba_solve(_Kernel(x, y, s), np.log(p), _initial_log_q(y.size, init_log_q), s, t, n, bool(accelerate))
    if require_convergence and not res.converged:
        raise InvalidParameterError(
            f"Blahut–Arimoto did not reach bound gap {t!r} bits in {n} iterations (gap {res.bound_gap_bits!r})",
            value=res.bound_gap_bits,
        )
    return res


def blahut_arimoto_loop(p, x, y, slope, *, tol_bits=1e-4, max_iter=20000):
    """DEF-RD-BA — the textbook linear-domain BA with explicit loops (benchmark baseline only).

    Same stopping rule as :func:`blahut_arimoto`; no underflow protection, so it is only
    valid while every exp(s·d) it needs stays representable.
    """
    p, x, y = _check_problem(p, x, y)
    s, t, n = _validate_ba_args(slope, tol_bits, max_iter)
    nx, ny = x.size, y.size
    a = [[math.exp(s * (x[i] - y[j]) ** 2) for j in range(ny)] for i in range(nx)]
    q = [1.0 / ny] * ny
    gap = math.inf
    it = 0
    while it < n:
        it += 1
        z = [sum(a[i][j] * q[j] for j in range(ny)) for i in range(nx)]
        w = [p[i] / z[i] for i in range(nx)]
        c = [sum(w[i] * a[i][j] for i in range(nx)) for j in range(ny)]
        q = [q[j] * c[j] for j in range(ny)]
        gap = (math.log(max(c)) - sum(q[j] * math.log(c[j]) for j in range(ny) if q[j] > 0)) / LN2
        if gap <= t:
            break
    return gap, it


def _close_enough(res: BAResult, d_t: float, tol_bits: float) -> bool:
    # Using the channel at D_s ≤ D for R(D) costs at most |s|(D − D_s) nats of bound width.
    return res.distortion <= d_t and abs(res.slope) * (d_t - res.distortion) / LN2 <= 0.5 * tol_bits


def blahut_arimoto_at_distortion(
    p,
    x,
    y,
    D,
    *,
    tol_bits=1e-4,
    max_iter=20000,
    max_slopes=60,
    require_convergence=False,
    init_log_q=None,
    init_slope=None,
    accelerate=True,
):
    """DEF-RD-BA — the BA point whose distortion hits D: secant on log|s| vs log D, warm starts.

    Every slope after the first starts from the previous slope's output distribution;
    ``init_log_q``/``init_slope`` warm-start the first one (default: uniform q and the
    Gaussian tangency s = −1/(2D)).

    Ends on a slope with D_s ≤ D and |s|(D − D_s)/ln 2 ≤ tol_bits/2, so ``rate_upper_bits``
    bounds R(D) from above; ``rate_lower_bits`` is Blahut's lower line evaluated at D itself,
    and the two differ by at most 1.5·tol_bits when ``converged``.
    ``rate_bits`` is the midpoint of the two.  D outside (D_min, Var) of the discrete
    problem raises InvalidParameterError.
    """
    p, x, y = _check_problem(p, x, y)
    mean = float(p @ x)
    var = float(p @ (x - mean) ** 2)
    d_t = _check_distortion(D, var)
    _, t, n_iter = _validate_ba_args(-1.0, tol_bits, max_iter)
    log_p = np.log(p)
    log_q = _initial_log_q(y.size, init_log_q)
    lo = None  # (log|s|, log D_s) with D_s > D
    hi = None  # (log|s|, log D_s) with D_s ≤ D
    if init_slope is None:
        u = math.log(1.0 / (2.0 * d_t))  # Gaussian tangency s = −1/(2D) as the first guess
    else:
        s0 = _real(init_slope, "init_slope")
        if s0 >= 0.0:
            raise InvalidParameterError(f"init_slope must be < 0; got {s0!r}", value=s0)
        u = math.log(-s0)
    d_xy = (x[:, None] - y[None, :]) ** 2  # shared by every slope's kernel
    best = None
    best_lower = None
    total_iterations = 0
    for _ in range(int(max_slopes)):
        s = -math.exp(u)
        res, log_c, mean_log_z = _ba_solve(_Kernel(x, y, s, d_xy), log_p, log_q, s, t, n_iter, bool(accelerate))
        total_iterations += res.iterations
        log_q = res.log_q
        pt = (u, math.log(res.distortion))
        # BA stops at a tolerance, so D_s carries a little warm-start hysteresis; a point
        # that contradicts the bracket replaces it instead of pinning the secant.
        if res.distortion > d_t:
            lo = pt
            if hi is not None and u >= hi[0]:
                hi = None
        else:
            hi = pt
            if lo is not None and u <= lo[0]:
                lo = None
            best = res
            best_lower = (mean_log_z, float(log_c.max()))
            if _close_enough(res, d_t, t):
                break
        if lo is not None and hi is not None:
            # Secant between the bracket ends, kept strictly inside the bracket.
            (u0, l0), (u1, l1) = lo, hi
            aim = d_t - 0.25 * t * LN2 / math.exp(u1)  # middle of the accepted window
            u_new = u0 + (math.log(aim) - l0) * (u1 - u0) / (l1 - l0)
            span = u1 - u0
            u = min(max(u_new, u0 + 0.02 * span), u1 - 0.02 * span)
        else:
            # log D ≈ −log(2|s|) + const: a unit-slope step aimed inside the accepted window.
            aim = d_t - 0.25 * t * LN2 / math.exp(pt[0])
            u = pt[0] + (pt[1] - math.log(aim))
        if u > 60.0:
            raise InvalidParameterError(
                f"distortion D = {d_t!r} is below what the reproduction grid can reach", value=d_t
            )
    if best is None:
        raise InvalidParameterError(f"could not bracket distortion D = {d_t!r} within {max_slopes} slopes", value=d_t)
    # Blahut's lower line at the final q, evaluated at D itself: R(D) ≥ s·D − Σp ln Z − max ln c.
    lower_at_d = (best.slope * d_t - best_lower[0] - best_lower[1]) / LN2
    upper = best.rate_upper_bits
    best.rate_lower_bits = lower_at_d
    best.rate_bits = 0.5 * (upper + lower_at_d)
    best.bound_gap_bits = upper - lower_at_d
    best.iterations = total_iterations  # over every slope tried, warm starts included
    best.converged = best.converged and _close_enough(best, d_t, t)
    if require_convergence and not best.converged:
        raise InvalidParameterError(
            f"Blahut–Arimoto did not converge at D = {d_t!r} (bound gap {best.bound_gap_bits!r} bits)",
            value=best.bound_gap_bits,
        )
    return best


# ---------------------------------------------------------------- continuous sources


@dataclass(frozen=True)
class DiscreteSource:
    """DEF-RD-CONTINUOUS — a discretised source: masses p on points x, reproduction points y."""

    p: np.ndarray
    x: np.ndarray
    y: np.ndarray

    @property
    def step(self) -> float:
        """The coarser of the two grid spacings."""
        return max(float(self.x[1] - self.x[0]), float(self.y[1] - self.y[0]))


#: Source grid covers all but this two-sided tail mass (folded into the end cells).
SOURCE_TAIL_MASS = 1e-10
#: Reproduction grid covers all but this two-sided tail mass of the source.
OUTPUT_TAIL_MASS = 1e-6


def ggd_quantile_abs(tail_mass: float, beta: float, alpha: float) -> float:
    """DEF-RD-CONTINUOUS — |x| with P(|X| > |x|) = tail_mass for GGD(β, α), from the inverse regularized upper incomplete gamma."""
    return alpha * float(special.gammainccinv(1.0 / beta, tail_mass)) ** (1.0 / beta)


def discretise_ggd(beta, n_x: int = 1401, n_y: int = 451, alpha=None) -> DiscreteSource:
    """DEF-RD-CONTINUOUS — GGD as exact CDF bin masses on n_x uniform cells; n_y uniform outputs.

    Source cells are centred on x_i with width Δx and span all but SOURCE_TAIL_MASS (the
    tails go to the end cells); outputs span all but OUTPUT_TAIL_MASS.
    """
    b, a = ggd.check_shape_scale(beta, alpha)
    for name, n in (("n_x", n_x), ("n_y", n_y)):
        if int(n) != n or n < 3:
            raise InvalidParameterError(f"{name} must be an integer ≥ 3; got {n!r}", value=n)
    lx = ggd_quantile_abs(SOURCE_TAIL_MASS, b, a)
    ly = ggd_quantile_abs(OUTPUT_TAIL_MASS, b, a)
    x = np.linspace(-lx, lx, int(n_x))
    h = x[1] - x[0]
    edges = np.concatenate([[-np.inf], x[:-1] + h / 2, [np.inf]])
    # Mass of each cell from the nearer tail: F on the left half, 1 − F via sf on the right.
    cdf_e = ggd.cdf(edges, b, a)
    sf_e = ggd.sf(edges, b, a)
    p = np.where(x < 0, cdf_e[1:] - cdf_e[:-1], sf_e[:-1] - sf_e[1:])
    p = np.maximum(p, 0.0)
    return DiscreteSource(p / p.sum(), x, np.linspace(-ly, ly, int(n_y)))


@dataclass
class RDResult:
    """DEF-RD-CONTINUOUS — R(D) of a continuous source by BA on refined grids."""

    rate_bits: float
    distortion: float
    rate_lower_bits: float
    rate_upper_bits: float
    ba_bound_gap_bits: float
    grid_change_bits: float
    grid: tuple[int, int]
    iterations: int
    converged: bool
    slb_bits: float
    history: list = field(repr=False)


def _check_resolves(src: DiscreteSource, d: float) -> None:
    # The grid must be finer than half the distortion's standard deviation.
    if src.step > 0.5 * math.sqrt(d):
        raise InvalidParameterError(
            f"grid with spacing {src.step:.4g} cannot resolve D = {d!r} (needs spacing ≤ {0.5 * math.sqrt(d):.4g}); "
            "use more grid points",
            value=d,
        )


def _check_captures_variance(src: DiscreteSource, var: float, d: float) -> None:
    # Very heavy tails (small β) put most of the variance in the SOURCE_TAIL_MASS beyond the grid:
    # then the grid is not this source at distortion D, and its R(D) would be silently wrong.
    var_grid = float(np.dot(src.p, src.x * src.x))
    if not abs(var_grid - var) <= 0.01 * d:
        raise InvalidParameterError(
            f"the grid holds variance {var_grid:.6g} of the source's {var:.6g}: the tails beyond "
            f"|x| = {float(src.x[-1]):.6g} carry more than D/100 = {d / 100:.3g} (beta too small for this solver)",
            value=var_grid,
        )


def rate_distortion_ggd(
    beta,
    D,
    *,
    alpha=None,
    grid=(1401, 451),
    grid_tol_bits=1e-3,
    tol_bits=1e-4,
    refine=1.5,
    max_refinements=3,
    max_iter=20000,
    require_convergence=False,
) -> RDResult:
    """DEF-RD-CONTINUOUS — R(D) of GGD(β, α) under MSE by BA, refining both grids by ``refine``.

    Stops when R changes by < grid_tol_bits between successive grids; ``grid_change_bits``
    reports the last change (the achieved tolerance).  0 < D < Var X, else
    InvalidParameterError; a grid too coarse for D raises InvalidParameterError.
    """
    b, a = ggd.check_shape_scale(beta, alpha)
    var = ggd.variance(b, a)
    d = _check_distortion(D, var)
    n_x, n_y = int(grid[0]), int(grid[1])
    src = discretise_ggd(b, n_x, n_y, a)
    _check_resolves(src, d)
    _check_captures_variance(src, var, d)
    history = []
    prev = None
    change = math.inf
    res = None
    for k in range(int(max_refinements) + 1):
        warm = {}
        if k:
            n_x, n_y = 2 * int(n_x * refine / 2) + 1, 2 * int(n_y * refine / 2) + 1
            y_prev = src.y
            src = discretise_ggd(b, n_x, n_y, a)
            # Warm start: the previous grid's output distribution as a density, interpolated in
            # log space onto the new outputs (same span), and the previous final slope.
            dens = res.log_q - math.log(float(y_prev[1] - y_prev[0]))
            warm = {"init_log_q": np.interp(src.y, y_prev, dens), "init_slope": res.slope}
        res = blahut_arimoto_at_distortion(src.p, src.x, src.y, d, tol_bits=tol_bits, max_iter=max_iter, **warm)
        history.append(((n_x, n_y), res.rate_bits, res.bound_gap_bits))
        if prev is not None:
            change = abs(res.rate_bits - prev)
            if change < grid_tol_bits:
                break
        prev = res.rate_bits
    converged = bool(res.converged and change < grid_tol_bits)
    out = RDResult(
        rate_bits=res.rate_bits,
        distortion=d,
        rate_lower_bits=res.rate_lower_bits,
        rate_upper_bits=res.rate_upper_bits,
        ba_bound_gap_bits=res.bound_gap_bits,
        grid_change_bits=change,
        grid=(n_x, n_y),
        iterations=res.iterations,
        converged=converged,
        slb_bits=slb_rate_bits(ggd.differential_entropy_bits(b, a), d),
        history=history,
    )
    if require_convergence and not converged:
        raise InvalidParameterError(
            f"R(D) at D = {d!r} did not converge: grid change {change!r} bits, BA gap {res.bound_gap_bits!r} bits",
            value=change,
        )
    return out


# ---------------------------------------------------------------- scalar quantizer operating points


@dataclass(frozen=True)
class GGDSource:
    """DEF-RD-OPPOINT — an analytic GGD(β, α) source (α=None: unit variance)."""

    beta: float
    alpha: float | None = None

    def params(self) -> tuple[float, float]:
        return ggd.check_shape_scale(self.beta, self.alpha)


@dataclass(frozen=True)
class SampleSource:
    """DEF-RD-OPPOINT — an empirical source given by finite samples (float64)."""

    samples: np.ndarray

    def checked(self) -> np.ndarray:
        arr = np.asarray(self.samples, dtype=np.float64).ravel()
        if arr.size == 0:
            raise EmptyInputError("samples are empty", value=[])
        if not np.isfinite(arr).all():
            v = float(arr[~np.isfinite(arr)][0])
            raise NonFiniteInputError(f"samples contain a non-finite value {v!r}", value=v)
        return ggd.check_sample_range(arr)


@dataclass
class OperatingPoint:
    """DEF-RD-OPPOINT — a scalar quantizer's (rate, MSE) and its gaps to R(D) and R_SLB at that MSE."""

    mse: float
    index_entropy_bits: float
    fixed_rate_bits: float
    scale: float
    slb_bits: float | None
    rd_bits: float | None
    gap_fixed_to_rd_bits: float | None
    gap_entropy_to_rd_bits: float | None
    gap_fixed_to_slb_bits: float | None
    gap_entropy_to_slb_bits: float | None


def _cells_analytic(values: np.ndarray, scale: float, b: float, a: float):
    v = values * scale
    edges = np.concatenate([[-np.inf], 0.5 * (v[:-1] + v[1:]), [np.inf]])
    lo, hi = edges[:-1], edges[1:]
    m0 = ggd.partial_moment(0, lo, hi, b, a)
    m1 = ggd.partial_moment(1, lo, hi, b, a)
    m2 = ggd.partial_moment(2, lo, hi, b, a)
    mse = float(np.sum(m2 - 2.0 * v * m1 + v * v * m0))
    return np.maximum(m0, 0.0), m1, max(mse, 0.0)


def _entropy_bits(masses: np.ndarray) -> float:
    pm = masses[masses > 0]
    pm = pm / pm.sum()
    return float(-(pm * np.log2(pm)).sum())


def _codebook_of(codebook) -> Codebook:
    if isinstance(codebook, Codebook):
        return codebook
    return Codebook(codebook)


def _mse_and_masses(cb: Codebook, source, scale: float):
    if isinstance(source, GGDSource):
        b, a = source.params()
        m0, _, mse = _cells_analytic(cb.values, scale, b, a)
        return mse, m0
    if isinstance(source, SampleSource):
        xs = source.checked()
        sq, counts = [], np.zeros(len(cb), dtype=np.int64)
        for sl in chunks(xs.size):  # the index and error arrays of one chunk at a time
            idx = nearest_index(xs[sl] / scale, cb).astype(np.intp)
            err = xs[sl] - scale * cb.values[idx]
            sq.append(float(np.dot(err, err)))
            counts += np.bincount(idx, minlength=len(cb))
        return math.fsum(sq) / xs.size, counts / xs.size
    raise InvalidParameterError(f"source must be GGDSource or SampleSource; got {type(source).__name__}", value=source)


def mse_optimal_scale(codebook, source) -> float:
    """DEF-RD-OPPOINT — the scale c > 0 minimising MSE of x ↦ c·Q(x/c) (bounded Brent search on log c)."""
    cb = _codebook_of(codebook)
    if isinstance(source, GGDSource):
        b, a = source.params()
        sd = math.sqrt(ggd.variance(b, a))
    else:
        sd = float(np.std(source.checked())) or 1.0
    peak = float(np.max(np.abs(cb.values))) or 1.0
    ref = sd / peak
    res = optimize.minimize_scalar(
        lambda t: _mse_and_masses(cb, source, ref * math.exp(t))[0],
        bounds=(math.log(1e-3), math.log(1e3)),
        method="bounded",
        options={"xatol": 1e-9},
    )
    return ref * math.exp(res.x)


def operating_point(codebook, source, scale=1.0, *, rd_bits=None, h_bits=None, compute_rd=False,
                    fixed_rate_bits=None) -> OperatingPoint:
    """DEF-RD-OPPOINT — MSE, index entropy (bits), fixed rate of x ↦ scale·c[nearest(x/scale)].

    The fixed rate is ``fixed_rate_bits`` — the bits a format stores per element — or, for a bare
    codebook, log2|C|.  ``scale="mse"`` uses :func:`mse_optimal_scale`.  Gaps: to R_SLB(MSE) when h is known
    (GGD sources, or ``h_bits``); to R(MSE) when ``rd_bits`` is given, or for a GGD
    source with ``compute_rd`` (closed form at β = 2, BA otherwise).  Unknown gaps are None.
    """
    cb = _codebook_of(codebook)
    sc = mse_optimal_scale(cb, source) if isinstance(scale, str) and scale == "mse" else _real(scale, "scale")
    if sc <= 0.0:
        raise InvalidParameterError(f"scale must be > 0; got {sc!r}", value=sc)
    mse, masses = _mse_and_masses(cb, source, sc)
    fixed = math.log2(len(cb)) if fixed_rate_bits is None else _real(fixed_rate_bits, "fixed_rate_bits")
    ent = _entropy_bits(masses)
    if isinstance(source, GGDSource):
        b, a = source.params()
        h = ggd.differential_entropy_bits(b, a) if h_bits is None else _real(h_bits, "h_bits")
        if rd_bits is None and compute_rd and 0.0 < mse < ggd.variance(b, a):
            if b == 2.0:
                rd_bits = gaussian_rate_bits(ggd.variance(b, a), mse)
            else:
                rd_bits = rate_distortion_ggd(b, mse, alpha=a).rate_bits
    else:
        h = None if h_bits is None else _real(h_bits, "h_bits")
    slb = slb_rate_bits(h, mse) if (h is not None and mse > 0) else None
    rd = None if rd_bits is None else _real(rd_bits, "rd_bits")
    return OperatingPoint(
        mse=mse,
        index_entropy_bits=ent,
        fixed_rate_bits=fixed,
        scale=sc,
        slb_bits=slb,
        rd_bits=rd,
        gap_fixed_to_rd_bits=None if rd is None else fixed - rd,
        gap_entropy_to_rd_bits=None if rd is None else ent - rd,
        gap_fixed_to_slb_bits=None if slb is None else fixed - slb,
        gap_entropy_to_slb_bits=None if slb is None else ent - slb,
    )


def format_operating_point(samples, fmt, *, h_bits=None) -> OperatingPoint:
    """DEF-RD-OPPOINT — a natprec format's operating point on samples, as the format itself quantizes.

    Element formats and codebooks: x ↦ c·Q(x/c) with the MSE-optimal per-tensor scale c
    (:func:`operating_point` with ``scale="mse"``).  Block formats: their own scaling
    (``dequantize(quantize(x))``, blocks along the last axis); rate = bits per element
    including the scales; index entropy of the element codes.  ``h_bits`` (e.g. the
    fitted GGD's differential entropy) gives the gaps to R_SLB at the measured MSE.
    """
    from .formats import ElementFormat, resolve_format

    f = resolve_format(fmt)
    if isinstance(f, ElementFormat):  # the rate is what the format stores: e2m1 has 15 values in 4 bits
        return operating_point(f.codebook, SampleSource(samples), scale="mse", h_bits=h_bits, fixed_rate_bits=f.bits_per_element)
    x = np.asarray(samples)
    SampleSource(x).checked()  # the same domain as element formats: finite, moments representable
    q = f.quantize(x)
    err = f.dequantize(q) - x.astype(np.float64)
    mse = float(np.mean(err * err))
    counts = np.bincount(q.codes.ravel().astype(np.int64))
    ent = _entropy_bits(counts / counts.sum())
    fixed = float(f.conventions()["bits_per_element"])
    h = None if h_bits is None else _real(h_bits, "h_bits")
    slb = slb_rate_bits(h, mse) if (h is not None and mse > 0) else None
    return OperatingPoint(
        mse=mse, index_entropy_bits=ent, fixed_rate_bits=fixed, scale=float("nan"), slb_bits=slb, rd_bits=None,
        gap_fixed_to_rd_bits=None, gap_entropy_to_rd_bits=None,
        gap_fixed_to_slb_bits=None if slb is None else fixed - slb,
        gap_entropy_to_slb_bits=None if slb is None else ent - slb,
    )


@dataclass
class LloydMaxResult:
    """DEF-RD-LLOYD — a Lloyd–Max fixed-rate quantizer for an analytic GGD source."""

    codebook: Codebook
    mse: float
    iterations: int
    converged: bool


def lloyd_max(levels: int, source: GGDSource, *, tol=1e-12, max_iter=10000, require_convergence=False) -> LloydMaxResult:
    """DEF-RD-LLOYD — Lloyd's method I: midpoint thresholds ↔ cell centroids until the codebook moves < tol·σ.

    Starts from the cell-mass quantiles (symmetric); levels ≥ 2.
    """
    if int(levels) != levels or levels < 2:
        raise InvalidParameterError(f"levels must be an integer ≥ 2; got {levels!r}", value=levels)
    if isinstance(max_iter, bool) or not isinstance(max_iter, (int, np.integer)) or max_iter < 1:
        raise InvalidParameterError(f"max_iter must be an integer ≥ 1; got {max_iter!r}", value=max_iter)
    b, a = source.params()
    k = int(levels)
    sd = math.sqrt(ggd.variance(b, a))
    # Start at the centroids of k equal-mass cells.
    probs = (np.arange(k + 1)) / k
    edges = np.empty(k + 1)
    edges[0], edges[-1] = -np.inf, np.inf
    inner = probs[1:-1]
    tail = np.minimum(inner, 1 - inner)
    mag = a * special.gammainccinv(1.0 / b, 2.0 * tail) ** (1.0 / b)
    edges[1:-1] = np.where(inner < 0.5, -mag, mag)
    v = ggd.partial_moment(1, edges[:-1], edges[1:], b, a) / ggd.partial_moment(0, edges[:-1], edges[1:], b, a)
    converged = False
    it = 0
    while it < max_iter:
        it += 1
        edges[1:-1] = 0.5 * (v[:-1] + v[1:])
        m0 = ggd.partial_moment(0, edges[:-1], edges[1:], b, a)
        v_new = ggd.partial_moment(1, edges[:-1], edges[1:], b, a) / m0
        moved = float(np.max(np.abs(v_new - v)))
        v = v_new
        if moved <= tol * sd:
            converged = True
            break
    if require_convergence and not converged:
        raise InvalidParameterError(f"Lloyd–Max did not converge in {max_iter} iterations (moved {moved!r})", value=moved)
    cb = Codebook(v, name=f"lloyd-max-{k}-ggd{b:g}")
    return LloydMaxResult(cb, _cells_analytic(cb.values, 1.0, b, a)[2], it, converged)


def uniform_codebook(levels: int, step=1.0) -> Codebook:
    """DEF-RD-ECSQ — the symmetric uniform codebook step·(i − (levels−1)/2), i = 0..levels−1."""
    if int(levels) != levels or levels < 1:
        raise InvalidParameterError(f"levels must be a positive integer; got {levels!r}", value=levels)
    st = _real(step, "step")
    if st <= 0:
        raise InvalidParameterError(f"step must be > 0; got {st!r}", value=st)
    return Codebook(st * (np.arange(int(levels)) - (levels - 1) / 2.0), name=f"uniform-{int(levels)}")


@dataclass
class ECSQPoint:
    """DEF-RD-ECSQ — entropy-coded uniform (mid-tread) quantizer operating point."""

    step: float
    mse: float
    entropy_bits: float
    slb_bits: float
    gap_to_slb_bits: float


def ecsq_uniform(step, source: GGDSource) -> ECSQPoint:
    """DEF-RD-ECSQ — unbounded mid-tread uniform quantizer (cells [(k−½)Δ, (k+½)Δ), output kΔ).

    Cells out to where the remaining tail mass is < 1e-16 are summed exactly; rate is the
    index entropy in bits.
    """
    st = _real(step, "step")
    if st <= 0:
        raise InvalidParameterError(f"step must be > 0; got {st!r}", value=st)
    b, a = source.params()
    reach = ggd_quantile_abs(1e-16, b, a)
    kmax = int(math.ceil(reach / st)) + 1
    cb = Codebook(st * np.arange(-kmax, kmax + 1, dtype=np.float64), name="ecsq")
    m0, _, mse = _cells_analytic(cb.values, 1.0, b, a)
    h = ggd.differential_entropy_bits(b, a)
    ent = _entropy_bits(m0)
    slb = slb_rate_bits(h, mse)
    return ECSQPoint(st, mse, ent, slb, ent - slb)


def ecsq_uniform_at_distortion(D, source: GGDSource) -> ECSQPoint:
    """DEF-RD-ECSQ — the mid-tread uniform quantizer whose MSE equals D (Brent on log Δ)."""
    b, a = source.params()
    d = _check_distortion(D, ggd.variance(b, a))
    # Δ²/12 ≈ D at high rate; bracket generously around it.
    t0 = math.log(math.sqrt(12.0 * d))
    f = lambda t: math.log(ecsq_uniform(math.exp(t), source).mse / d)  # noqa: E731
    lo, hi = t0 - 1.0, t0 + 0.5
    while f(lo) > 0:
        lo -= 1.0
    while f(hi) < 0:
        hi += 0.5
        if hi > t0 + 10:
            raise InvalidParameterError(f"no uniform step reaches MSE D = {d!r}", value=d)
    return ecsq_uniform(math.exp(optimize.brentq(f, lo, hi, xtol=1e-13)), source)


def price_of_uniformity_bits(levels: int, source: GGDSource) -> dict:
    """DEF-RD-PRICE-UNIFORM — ρ = ½log2(D_uniform / D_LloydMax) at equal fixed rate log2(levels).

    D_uniform uses the MSE-optimal step for the symmetric uniform codebook.  ½log2 of an
    MSE ratio is the rate that ratio costs at 6.02 dB per bit.  ``converged`` is the
    Lloyd–Max run's flag (DEF-RD-LLOYD).
    """
    lm = lloyd_max(levels, source)
    uni = uniform_codebook(levels)
    sc = mse_optimal_scale(uni, source)
    d_uni = _mse_and_masses(uni, source, sc)[0]
    return {
        "levels": int(levels),
        "mse_uniform": d_uni,
        "mse_lloyd_max": lm.mse,
        "uniform_step": sc,
        "price_bits": 0.5 * math.log2(d_uni / lm.mse),
        "converged": lm.converged,
    }


def nf4_mismatch(beta, codebook=None) -> dict:
    """DEF-RD-NF4-MISMATCH — MSE of a 16-level codebook (default NF4, MSE-optimal scale) on unit-variance GGD(β).

    Reports the ratio to the 16-level Lloyd–Max MSE (the best fixed-rate scalar quantizer
    at 4 bits) and to D_SLB(4 bits) = 2^{2h}/(2πe)·2^{−8}, a lower bound on D(R = 4).
    """
    cb = Codebook(NF4_VALUES, name="nf4") if codebook is None else _codebook_of(codebook)
    src = GGDSource(float(beta))
    b, a = src.params()
    sc = mse_optimal_scale(cb, src)
    d_cb = _mse_and_masses(cb, src, sc)[0]
    lm = lloyd_max(len(cb), src)
    rate = math.log2(len(cb))
    d_slb = 2.0 ** (2.0 * ggd.differential_entropy_bits(b, a)) / (2.0 * math.pi * math.e) * 2.0 ** (-2.0 * rate)
    return {
        "beta": b,
        "scale": sc,
        "mse": d_cb,
        "mse_lloyd_max": lm.mse,
        "ratio_to_lloyd_max": d_cb / lm.mse,
        "penalty_bits_vs_lloyd_max": 0.5 * math.log2(d_cb / lm.mse),
        "mse_slb": d_slb,
        "ratio_to_slb": d_cb / d_slb,
        "kl_to_gaussian_bits": ggd.kl_to_gaussian_bits(b),
    }


@dataclass
class BlockScalingRow:
    """DEF-RD-BLOCK-SCALING — MSE (per unit variance) of absmax vs quantile block scaling at block size n."""

    block_size: int
    mse_absmax: float
    mse_quantile: float
    quantile_level: float
    difference: float


def block_scaling_mse(
    beta, block_sizes, codebook=None, *, n_values=1 << 16, quantile_levels=None, rng=0
) -> list[BlockScalingRow]:
    """DEF-RD-BLOCK-SCALING — Monte Carlo (seeded) blockwise scaling on unit-variance GGD(β).

    absmax: scale = max|x| over the block, so nothing clips.  quantile: scale = the block's
    empirical q-quantile of |x| (values beyond clip to the end codewords), q the best of
    ``quantile_levels``.  Same samples for both; difference = absmax − quantile.
    """
    cb = Codebook(NF4_VALUES, name="nf4") if codebook is None else _codebook_of(codebook)
    peak = float(np.max(np.abs(cb.values)))
    levels = np.array([0.98, 0.99, 0.995, 0.998, 0.999, 1.0] if quantile_levels is None else quantile_levels, float)
    if levels.size == 0 or ((levels <= 0) | (levels > 1)).any():
        raise InvalidParameterError(f"quantile levels must lie in (0, 1]; got {levels.tolist()!r}", value=levels)
    gen = np.random.default_rng(rng)
    rows = []
    for n in block_sizes:
        if int(n) != n or n < 1:
            raise InvalidParameterError(f"block size must be a positive integer; got {n!r}", value=n)
        n = int(n)
        blocks = max(1, int(n_values) // n)
        xs = ggd.sample(blocks * n, beta, rng=gen).reshape(blocks, n)
        absx = np.abs(xs)

        def mse_for(scale):
            s = np.where(scale > 0, scale, 1.0)[:, None] / peak
            idx = nearest_index(xs / s, cb).astype(np.int64)
            return float(np.mean((xs - s * cb.values[idx]) ** 2))

        d_abs = mse_for(absx.max(axis=1))
        best = min((mse_for(np.quantile(absx, q, axis=1)), float(q)) for q in levels)
        rows.append(BlockScalingRow(n, d_abs, best[0], best[1], d_abs - best[0]))
    return rows
