"""DEF-LANCZOS, DEF-STUDY-GEOMETRY — Hessian and Fisher geometry of a model's layers (seed 002 §9.2, seed 003
opportunity 5): Lanczos spectra of the loss Hessian, Hutchinson traces, the empirical Fisher and κ(G), where
quantization error lies relative to the stiff directions, and water-filling bit allocation.

The loss is the model's ``loss_fn`` summed over samples, or without one natprec.model's default backward loss
(spec/11 DEF-BACKWARD-SENSITIVITY): the probe loss Σ_n ⟨r_n, y_n⟩ with r ~ N(0, I) drawn per batch with seed
``PROBE_SEED + b``. Under the probe loss E_r[∇²L] = 0 (its Hessian is Σ r·∇²y, indefinite) while the per-sample
gradients g_n = J_nᵀr_n satisfy E_r[g gᵀ] = JᵀJ: the empirical Fisher of the probe loss is an unbiased estimate of
seed 003's functional Gram matrix G = E_x[JᵀJ].
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from natprec.model.deps import require_matplotlib, require_torch
from natprec.model.quantize import site_format
from natprec.model.runner import MeasuredModel, call_model
from natprec.model.sensitivity import PROBE_SEED
from natprec.reference.errors import InvalidParameterError

from .registry import Option, Steps, Study, claim_row
from .weightlayers import check_patterns, check_positive_int, layer_runner, linear_weight_sites, save_figure, verdict_lines

__all__ = ["lanczos", "hutchinson", "slq_density", "fisher_gram", "waterfill_bits", "geometry_study", "geometry_lines",
           "geometry_plots", "GEOMETRY_STUDY", "DEFAULT_GEOMETRY_SITES", "KAPPA_FLOOR"]

DEFAULT_GEOMETRY_SITES = ("encoder.layer.0.attention.self.query.weight", "encoder.layer.0.intermediate.dense.weight",
                          "encoder.layer.5.output.dense.weight")
#: Eigenvalues (and Fisher diagonal entries) below KAPPA_FLOOR × the largest are treated as 0 in κ.
KAPPA_FLOOR = 1e-10


def lanczos(matvec, n: int, steps: int, *, seed: int = 0, start=None):
    """DEF-LANCZOS — ``steps`` Lanczos iterations with full reorthogonalization on a symmetric operator of size n.

    ``matvec``: a function of a float64 torch vector returning A·v (any float dtype, same length). The start is
    a seeded Rademacher vector (or ``start``), normalised. Returns (θ, weights, V, T): the Ritz values ascending,
    the squared first components of T's eigenvectors (Gauss quadrature weights, Σ = 1), the Ritz vectors as the
    columns of V (n × m, float64) and the tridiagonal T. Stops early at an invariant subspace
    (β < 1e-12·max|θ|): then m < steps.
    """
    torch = require_torch()
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise InvalidParameterError(f"lanczos: n must be a positive integer; got {n!r}", value=n)
    if isinstance(steps, bool) or not isinstance(steps, int) or not 1 <= steps:
        raise InvalidParameterError(f"lanczos: steps must be a positive integer; got {steps!r}", value=steps)
    steps = min(steps, n)
    if start is None:
        g = torch.Generator().manual_seed(seed)
        q = (torch.randint(0, 2, (n,), generator=g, dtype=torch.float64) * 2 - 1)
    else:
        q = torch.as_tensor(start, dtype=torch.float64).flatten().clone()
        if q.numel() != n or not bool(torch.isfinite(q).all()) or float(q.norm()) == 0:
            raise InvalidParameterError("lanczos: start must be a finite nonzero vector of length n", value=int(q.numel()))
    q = q / q.norm()
    basis = [q]
    alphas, betas = [], []
    for j in range(steps):
        w = torch.as_tensor(matvec(basis[j])).to(torch.float64).flatten()
        if w.numel() != n or not bool(torch.isfinite(w).all()):
            raise InvalidParameterError(f"lanczos: the operator returned a non-finite or wrong-sized vector at step {j}", value=j)
        a = float(basis[j] @ w)
        alphas.append(a)
        Q = torch.stack(basis, 1)
        for _ in range(2):  # full reorthogonalization, twice is enough
            w = w - Q @ (Q.T @ w)
        b = float(w.norm())
        scale = max(abs(x) for x in alphas) or 1.0
        if j == steps - 1 or b < 1e-12 * scale:
            break
        betas.append(b)
        basis.append(w / b)
    m = len(alphas)
    T = torch.diag(torch.tensor(alphas, dtype=torch.float64))
    if m > 1:
        off = torch.tensor(betas[: m - 1], dtype=torch.float64)
        T = T + torch.diag(off, 1) + torch.diag(off, -1)
    theta, S = torch.linalg.eigh(T)
    V = torch.stack(basis[:m], 1) @ S
    return theta, S[0] ** 2, V, T


def hutchinson(matvec, n: int, probes: int, *, seed: int = 0) -> dict:
    """DEF-LANCZOS — Hutchinson's trace estimate (1/P) Σ zᵀAz over P seeded Rademacher probes, with its standard error.

    ``std_error`` = sample standard deviation / √P (None for P = 1); ``samples``: the zᵀAz values.
    """
    torch = require_torch()
    probes = check_positive_int("probes", probes)
    g = torch.Generator().manual_seed(seed)
    vals = []
    for _ in range(probes):
        z = torch.randint(0, 2, (n,), generator=g, dtype=torch.float64) * 2 - 1
        vals.append(float(z @ torch.as_tensor(matvec(z)).to(torch.float64).flatten()))
    v = np.array(vals)
    return {"trace": float(v.mean()), "std_error": float(v.std(ddof=1) / math.sqrt(probes)) if probes > 1 else None,
            "probes": probes, "samples": vals}


def slq_density(theta, weights, n: int, grid, width: float):
    """DEF-LANCZOS — the stochastic-Lanczos-quadrature spectral density of one Lanczos run, Gaussian-broadened:
    φ(λ) = Σ_j τ_j² N(λ; θ_j, width²), normalised to 1 (multiply by n for eigenvalue counts)."""
    th = np.asarray(theta, np.float64)[None, :]
    w = np.asarray(weights, np.float64)[None, :]
    x = np.asarray(grid, np.float64)[:, None]
    if not width > 0:
        raise InvalidParameterError(f"slq_density: width must be > 0; got {width!r}", value=width)
    return (w * np.exp(-0.5 * ((x - th) / width) ** 2) / (width * math.sqrt(2 * math.pi))).sum(axis=1)


def fisher_gram(grads: np.ndarray, floor: float = KAPPA_FLOOR) -> dict:
    """DEF-STUDY-GEOMETRY — the empirical Fisher F = (1/N) Σ g_n g_nᵀ of per-sample gradients (rows of ``grads``).

    Its nonzero spectrum is that of the N×N Gram matrix K = GGᵀ/N (exact, no n×n matrix). Returns the eigenvalues
    (descending), the eigenvectors in weight space as unit columns (n × r), the rank r (eigenvalues above
    ``floor``·λ_max), κ = λ_max/λ_r over that rank, the effective rank (Σλ)²/Σλ², the diagonal F_ii, and
    κ_diag = max F_ii / max(min F_ii, floor·max F_ii).
    """
    g = np.asarray(grads, np.float64)
    if g.ndim != 2 or g.shape[0] < 1:
        raise InvalidParameterError(f"fisher_gram: grads must be N × n with N ≥ 1; got shape {g.shape}", value=g.shape)
    if not np.isfinite(g).all():
        raise InvalidParameterError("fisher_gram: non-finite gradient", value="non-finite")
    N = g.shape[0]
    lam, c = np.linalg.eigh(g @ g.T / N)
    lam, c = lam[::-1].clip(min=0), c[:, ::-1]
    diag = (g**2).mean(axis=0)
    top = float(lam[0]) if lam.size else 0.0
    keep = lam > floor * top if top > 0 else np.zeros_like(lam, bool)
    r = int(keep.sum())
    vecs = g.T @ c[:, :r] / np.sqrt(N * lam[:r])[None, :] if r else np.zeros((g.shape[1], 0))
    dmax = float(diag.max())
    return {"eigenvalues": lam, "vectors": vecs, "rank": r, "kappa": top / float(lam[r - 1]) if r else None,
            "effective_rank": float(lam.sum() ** 2 / np.sum(lam**2)) if top > 0 else 0.0,
            "diag": diag, "kappa_diag": dmax / max(float(diag.min()), floor * dmax) if dmax > 0 else None,
            "diag_below_floor": float(np.mean(diag < floor * dmax)) if dmax > 0 else 1.0}


def waterfill_bits(cost: np.ndarray, mean_bits: int, low: int = 2, high: int = 8) -> np.ndarray:
    """DEF-STUDY-GEOMETRY — integer bit allocation minimising Σ_r cost_r·4^(−b_r) with Σ b_r = R·mean_bits, b ∈ [low, high].

    Greedy on the marginal gains, optimal for these convex separable costs (discrete reverse water-filling:
    b_r ≈ b̄ + ½ log2(cost_r / geometric mean), clipped). Ties go to the lower row index.
    """
    c = np.asarray(cost, np.float64)
    if c.ndim != 1 or not np.isfinite(c).all() or (c < 0).any():
        raise InvalidParameterError("waterfill_bits: costs must be a finite nonnegative vector", value="cost")
    if not low <= mean_bits <= high:
        raise InvalidParameterError(f"waterfill_bits: mean bits {mean_bits} outside [{low}, {high}]", value=mean_bits)
    b = np.full(c.shape, low, dtype=np.int64)
    budget = int(c.size * (mean_bits - low))
    for _ in range(budget):
        gain = np.where(b < high, c * (4.0 ** (-b.astype(np.float64)) - 4.0 ** (-(b + 1).astype(np.float64))), -1.0)
        b[int(np.argmax(gain))] += 1
    return b


# ---------------------------------------------------------------------------- model side

def _slice(batch, i: int):
    torch = require_torch()
    if isinstance(batch, torch.Tensor):
        return batch[i:i + 1]
    if isinstance(batch, Mapping):
        return {k: _slice(v, i) for k, v in batch.items()}
    if isinstance(batch, (tuple, list)):
        return type(batch)(_slice(v, i) for v in batch)
    return batch


def _loss(runner, batch, b: int, rows=None):
    """The study's loss on ``batch`` (calibration batch ``b``): loss_fn summed, or the probe loss (rows: the samples' r)."""
    torch = runner.torch
    out = runner.output_fn(call_model(runner.model, batch), batch)
    if runner.mm.loss_fn is not None:
        return runner.mm.loss_fn(out, batch).sum()
    ref = runner.reference[b]
    g = torch.Generator().manual_seed(PROBE_SEED + b)
    r = torch.randn(ref.shape, generator=g, dtype=out.dtype).to(out.device)
    if rows is not None:
        r = r[rows]
    return (r * out).sum()


class _OnlyParam:
    """Context: only ``p`` requires grad (the graph stays small); restores every flag and .grad."""

    def __init__(self, model, p):
        self.model, self.p = model, p

    def __enter__(self):
        self.saved = [(q, q.requires_grad, q.grad) for q in self.model.parameters()]
        for q, _, _ in self.saved:
            q.requires_grad_(q is self.p)
        return self

    def __exit__(self, *exc):
        for q, flag, grad in self.saved:
            q.requires_grad_(flag)
            q.grad = grad


def _hessian_operator(runner, site, batches):
    """matvec(v) = ∇²_W L · v over ``batches`` (double backward through a kept graph), and the gradient ∇_W L.

    A loss linear in W (a last layer under the probe loss) has H = 0: the operator returns zeros."""
    torch = runner.torch
    p = runner.modules[site.module].get_parameter(site.param)
    graphs = []
    for b in batches:
        loss = _loss(runner, runner.mm.batches[b], b)
        (g,) = torch.autograd.grad(loss, p, create_graph=True)
        graphs.append(g)

    def matvec(v):
        v = v.to(p.dtype).to(p.device).reshape(p.shape)
        out = torch.zeros_like(p, dtype=torch.float64)
        for g in graphs:
            if not g.requires_grad:  # the loss is linear in W on this batch (e.g. a last layer under the probe loss): H = 0
                continue
            (hv,) = torch.autograd.grad(g, p, grad_outputs=v, retain_graph=True, allow_unused=True)
            if hv is not None:
                out += hv.double()
        return out.flatten().cpu()

    grad = sum(g.detach().double() for g in graphs).flatten().cpu()
    return matvec, grad


def _per_sample_grads(runner, site, samples: int):
    """(N × n float32) per-sample gradients of the study's loss for the first ``samples`` calibration samples."""
    torch = runner.torch
    p = runner.modules[site.module].get_parameter(site.param)
    rows = []
    for b, batch in enumerate(runner.mm.batches):
        for i in range(runner.reference[b].shape[0]):
            if len(rows) >= samples:
                break
            loss = _loss(runner, _slice(batch, i), b, rows=slice(i, i + 1))
            (g,) = torch.autograd.grad(loss, p)
            rows.append(g.detach().flatten().cpu().float().numpy())
        if len(rows) >= samples:
            break
    return np.stack(rows)


def _measured(runner, site, w_hat: np.ndarray) -> float:
    """Measured effect of installing ``w_hat``: mean ‖Δy‖² per sample (probe loss) or mean Δloss (loss_fn)."""
    torch = runner.torch
    w = runner.site_tensor(site)
    value = torch.from_numpy(np.asarray(w_hat, np.float32)).to(w.device)
    tot, n = 0.0, 0
    for b, batch in enumerate(runner.mm.batches):
        out = runner.run_replaced(site, value, b)
        ref = runner.reference[b]
        if runner.mm.loss_fn is not None:
            tot += float((runner.mm.loss_fn(out, batch) - runner.mm.loss_fn(ref, batch)).double().sum())
        else:
            tot += float(((out.double() - ref.double()) ** 2).flatten(1).sum())
        n += ref.shape[0]
    return tot / n


def _check_k(flag, v):
    return check_positive_int(flag, v, low=1, high=200)


def _check_steps(flag, v):
    return check_positive_int(flag, v, low=2, high=500)


def _check_probes(flag, v):
    return check_positive_int(flag, v, low=2, high=10000)


def _check_samples(flag, v):
    return check_positive_int(flag, v, low=2)


def _check_format(flag, v):
    if not isinstance(v, str) or not v.strip():
        raise InvalidParameterError(f"{flag}: a format name; got {v!r}", value=v)
    return site_format(v).name


def geometry_study(mm: MeasuredModel, *, sites=DEFAULT_GEOMETRY_SITES, k: int = 8, steps: int = 24, probes: int = 8,
                   hessian_batches: int = 1, fisher_samples: int = 128, format: str = "int4", mean_bits: int = 4,
                   min_bits: int = 3, seed: int = 0, progress=False, device=None) -> dict:
    """DEF-STUDY-GEOMETRY — per matching Linear weight: Hessian spectrum (Lanczos, ``steps`` iterations, top-``k`` by
    magnitude), Hutchinson trace (``probes``), SLQ density, empirical Fisher (``fisher_samples`` per-sample
    gradients) with κ, the overlap of ``format``'s quantization error with the top-k Hessian and Fisher
    eigenvectors, and water-filling vs uniform bits per row at ``mean_bits`` (diagonal Fisher as the modes; each row
    gets ``min_bits`` … 8 bits — below 3 the quadratic model the allocation rests on fails, spec/12).

    The Hessian uses the first ``hessian_batches`` calibration batches; the measured effects use all of them.
    """
    pats = check_patterns("--sites", sites)
    k = _check_k("--k", k)
    steps = _check_steps("--steps", steps)
    probes = _check_probes("--probes", probes)
    hb = check_positive_int("--hessian-batches", hessian_batches)
    fs = _check_samples("--fisher-samples", fisher_samples)
    fmt_name = _check_format("--format", format)
    mean_bits = check_positive_int("--mean-bits", mean_bits, low=2, high=8)
    min_bits = check_positive_int("--min-bits", min_bits, low=2, high=mean_bits)
    seed = check_positive_int("--seed", seed, low=0)
    if k > steps:
        raise InvalidParameterError(f"--k {k} exceeds --steps {steps} (Lanczos gives at most steps Ritz values)", value=k)
    timing = {}
    t0 = time.perf_counter()
    chosen = linear_weight_sites(mm, pats)
    runner = layer_runner(mm, chosen, device)
    hb = min(hb, len(mm.batches))
    timing["baseline"] = time.perf_counter() - t0
    steps_bar = Steps("geometry", len(chosen), progress)
    fmt = site_format(fmt_name)
    layers, errors = [], []
    phase = {"hessian": 0.0, "fisher": 0.0, "allocation": 0.0}
    for site in chosen:
        try:
            layers.append(_layer(runner, site, k, steps, probes, hb, fs, fmt, (mean_bits, min_bits), seed, phase))
        except (InvalidParameterError, ValueError, RuntimeError, np.linalg.LinAlgError) as exc:
            errors.append({"what": site.name, "error": f"{type(exc).__name__}: {exc}"})
        steps_bar.step(site.name)
    timing.update(phase)
    doc = {"study": "geometry", "spec": "DEF-STUDY-GEOMETRY", "model": mm.description,
           "settings": {"sites": list(pats), "k": k, "steps": steps, "probes": probes, "hessian_batches": hb,
                        "fisher_samples": fs, "format": fmt_name, "mean_bits": mean_bits, "min_bits": min_bits, "seed": seed,
                        "loss": "loss_fn" if mm.loss_fn is not None else "probe Σ⟨r, y⟩ (spec/11 DEF-BACKWARD-SENSITIVITY)",
                        "kappa_floor": KAPPA_FLOOR, "density": "stochastic Lanczos quadrature, one probe (the Lanczos start)"},
           "results": {"layers": layers}, "timing": timing, "errors": errors}
    doc["claims"] = _claims(doc)
    return doc


def _layer(runner, site, k, steps, probes, hb, fs, fmt, bits, seed, phase) -> dict:
    torch = runner.torch
    p = runner.modules[site.module].get_parameter(site.param)
    w = p.detach().cpu().numpy().astype(np.float32)
    n = w.size
    t = time.perf_counter()
    with _OnlyParam(runner.model, p), torch.enable_grad():
        matvec, _ = _hessian_operator(runner, site, range(hb))
        theta, tau2, V, _ = lanczos(matvec, n, steps, seed=seed)
        hut = hutchinson(matvec, n, probes, seed=seed + 1)
    phase["hessian"] += time.perf_counter() - t
    order = np.argsort(-np.abs(theta.numpy()), kind="stable")[:k]
    Vk = V[:, order].numpy()
    th = theta.numpy()
    t = time.perf_counter()
    with _OnlyParam(runner.model, p), torch.enable_grad():
        grads = _per_sample_grads(runner, site, fs)
    fg = fisher_gram(grads)
    phase["fisher"] += time.perf_counter() - t
    t = time.perf_counter()
    e = (fmt.quantize_dequantize(w, per_channel=True).astype(np.float64) - w).flatten()
    e2 = float(e @ e)
    kf = min(k, fg["rank"])
    top_w = np.argsort(-np.abs(w.flatten()))[: max(1, n // 100)]
    res = {
        "site": site.name, "shape": list(w.shape), "parameters": n,
        "hessian": {"ritz": th.tolist(), "weights": tau2.numpy().tolist(), "top": th[order].tolist(),
                    "lambda_max": float(th.max()), "lambda_min": float(th.min()),
                    "trace": hut["trace"], "trace_se": hut["std_error"], "probes": probes,
                    "slq_trace": float(n * np.sum(tau2.numpy() * th))},
        "fisher": {"eigenvalues": fg["eigenvalues"][: max(k, 16)].tolist(), "rank": fg["rank"], "kappa": fg["kappa"],
                   "effective_rank": fg["effective_rank"], "samples": int(grads.shape[0]), "trace": float(fg["diag"].sum()),
                   "top_k_share": float(fg["eigenvalues"][:k].sum() / fg["eigenvalues"].sum()) if fg["eigenvalues"].sum() > 0 else None,
                   "kappa_diag": fg["kappa_diag"], "diag_below_floor": fg["diag_below_floor"],
                   "diag_quantiles": np.quantile(fg["diag"], [0.0, 0.01, 0.5, 0.99, 1.0]).tolist()},
        "overlap": {"format": fmt.name, "k": k, "random": k / n,
                    "hessian": float(np.sum((Vk.T @ e) ** 2) / e2) if e2 > 0 else None,
                    "fisher": float(np.sum((fg["vectors"][:, :kf].T @ e) ** 2) / e2) if e2 > 0 and kf else None,
                    "hessian_on_top1pct_weights": float(np.sum(Vk[top_w] ** 2) / Vk.shape[1]),
                    "top1pct_share": len(top_w) / n},
    }
    res["allocation"] = _allocation(runner, site, w, grads, *bits)
    phase["allocation"] += time.perf_counter() - t
    return res


def _allocation(runner, site, w, grads, mean_bits, min_bits) -> dict:
    """Water-filling over rows (diagonal Fisher as the modes) vs uniform bits: predicted and measured effects.

    The allocation uses the first half of the per-sample gradients; ``predicted_*`` use the other half
    (``predicted_diag_in_sample``: the first half, the allocation's own estimate)."""
    rows = w.shape[0]
    qs = {b: site_format(f"int{b}").quantize_dequantize(w, per_channel=True) for b in range(2, 9)}
    step2 = {b: (np.abs(w).max(axis=1) / ((1 << (b - 1)) - 1)) ** 2 for b in qs}
    # Allocate on the first half of the samples, predict on the second: rows picked for few bits because their
    # estimated Fisher is small would otherwise be predicted with that same (selected, biased-low) estimate.
    half = grads.shape[0] // 2
    fit, held = grads[:half].astype(np.float64), grads[half:].astype(np.float64)
    diag_fit, diag_held = (fit**2).mean(axis=0), (held**2).mean(axis=0)
    f_rows = diag_fit.reshape(rows, -1).sum(axis=1)
    # cost_r·4^(−b) ≈ Σ_i∈r F_ii Δ_r(b)²/12 with Δ_r(b) ≈ absmax_r·2^(1−b): cost_r = F_row·absmax_r²·4/12.
    cost = f_rows * (np.abs(w).max(axis=1) ** 2) * 4 / 12
    alloc = {"uniform": np.full(rows, mean_bits), "waterfill": waterfill_bits(cost, mean_bits, low=min_bits)}
    out = {"mean_bits": mean_bits, "min_bits": min_bits, "modes": "diagonal Fisher, summed per output row (one bit-width per row)",
           "samples_fit": int(half), "samples_held_out": int(held.shape[0]),
           "quantity": "mean Δloss per sample (ḡ·e + ½ Σ F_ii e_i²)" if runner.mm.loss_fn is not None
           else "mean ‖Δy‖² per sample (eᵀGe, G = E[JᵀJ] estimated by the probe gradients)"}
    for name, b in alloc.items():
        wq = np.stack([qs[int(b[r])][r] for r in range(rows)])
        e = (wq.astype(np.float64) - w).flatten()
        diag_pred = float(np.sum(diag_held * e * e))
        in_sample = float(np.sum(diag_fit * e * e))
        full = float(np.mean((held @ e) ** 2))
        model_pred = float(np.sum(f_rows * np.array([step2[int(b[r])][r] for r in range(rows)]) / 12))
        if runner.mm.loss_fn is not None:
            first = float(held.mean(axis=0) @ e)
            diag_pred, full, in_sample = first + diag_pred / 2, first + full / 2, float(fit.mean(axis=0) @ e) + in_sample / 2
        out[name] = {"bits_histogram": {str(v): int(np.sum(b == v)) for v in range(2, 9) if np.any(b == v)},
                     "total_bits": int(b.sum()), "predicted_diag": diag_pred, "predicted_gram": full,
                     "predicted_diag_in_sample": in_sample,
                     "predicted_step_model": model_pred, "measured": _measured(runner, site, wq)}
    u, f = out["uniform"], out["waterfill"]
    out["measured_ratio"] = f["measured"] / u["measured"] if u["measured"] else None
    out["predicted_ratio"] = f["predicted_diag"] / u["predicted_diag"] if u["predicted_diag"] else None
    return out


def _claims(doc) -> list:
    layers = doc["results"]["layers"]
    if not layers:
        return []
    ov = [r["overlap"] for r in layers]
    hs = [o["hessian"] / o["random"] for o in ov if o["hessian"] is not None]
    fs = [o["fisher"] / o["random"] for o in ov if o["fisher"] is not None]
    out_w = [o["hessian_on_top1pct_weights"] / o["top1pct_share"] for o in ov]
    rows = [claim_row(
        "C-002-9.2-1",
        f"{len(layers)} layers: {doc['settings']['format']} error's share in the top-{doc['settings']['k']} Hessian "
        f"eigenvectors {min(hs):.3g}…{max(hs):.3g}× a random direction's (k/n), in the top Fisher eigenvectors "
        f"{min(fs) if fs else math.nan:.3g}…{max(fs) if fs else math.nan:.3g}×; top Hessian eigenvectors put "
        f"{min(out_w):.2f}…{max(out_w):.2f}× their uniform share on the 1 % largest |w|",
        "supported" if min(hs) > 2 and min(out_w) > 2 else ("refuted" if max(hs) < 2 and max(out_w) < 2 else "mixed"))]
    fis = [r["fisher"] for r in layers]
    kap = [f["kappa"] for f in fis if f["kappa"] is not None]
    share = [f["top_k_share"] for f in fis if f["top_k_share"] is not None]
    kd = [f["kappa_diag"] for f in fis if f["kappa_diag"] is not None]
    rows.append(claim_row(
        "C-003-opp5-1",
        f"{len(layers)} layers, empirical Fisher of {fis[0]['samples']} samples: κ over its nonzero spectrum "
        f"{min(kap):.3g}…{max(kap):.3g} (rank ≤ samples), effective rank {min(f['effective_rank'] for f in fis):.1f}…"
        f"{max(f['effective_rank'] for f in fis):.1f}, top-{doc['settings']['k']} share of tr G {min(share):.2f}…{max(share):.2f} "
        f"(isotropic: k/n ≤ {max(o['random'] for o in ov):.1e}); diagonal κ {min(kd):.3g}…{max(kd):.3g}",
        # Anisotropy: the top-k eigenvalues hold far more of tr G than k/n, and the diagonal spans decades.
        # κ ≫ 1 on the coordinates (the diagonal spans decades, G is rank-deficient) but, within the sampled span,
        # "a few stiff modes" needs the top-k to hold most of tr G and the effective rank to be far below the samples.
        "supported" if kd and min(kd) > 1e3 and max(f["effective_rank"] / f["samples"] for f in fis) < 0.5 else "mixed"))
    al = [r["allocation"] for r in layers]
    mr = [a["measured_ratio"] for a in al if a["measured_ratio"] is not None]
    pr = [a["predicted_ratio"] for a in al if a["predicted_ratio"] is not None]
    rows.append(claim_row(
        "C-003-opp5-2",
        f"{len(layers)} layers at {doc['settings']['mean_bits']} bits/weight mean: water-filling over rows "
        f"({doc['settings']['min_bits']}…8 bits) by diagonal Fisher vs uniform, predicted effect ×{min(pr):.2f}…{max(pr):.2f}, "
        f"measured ×{min(mr):.2f}…{max(mr):.2f}",
        "supported" if mr and max(mr) < 1 else ("refuted" if mr and min(mr) >= 1 else "mixed")))
    return rows


def geometry_lines(doc: dict) -> list[str]:
    """DEF-STUDY-GEOMETRY — per layer: Hessian, Fisher, overlap and allocation rows."""
    s = doc["settings"]
    out = [f"loss: {s['loss']}; Hessian on {s['hessian_batches']} batch(es), {s['steps']} Lanczos steps, "
           f"{s['probes']} Hutchinson probes; Fisher from {s['fisher_samples']} samples; density: {s['density']}"]
    for r in doc["results"]["layers"]:
        h, f, o, a = r["hessian"], r["fisher"], r["overlap"], r["allocation"]
        out += ["", f"{r['site']} {tuple(r['shape'])}",
                f"  Hessian: top-{len(h['top'])} |λ| {', '.join(f'{v:.3g}' for v in h['top'][:5])}…; λ range "
                f"[{h['lambda_min']:.3g}, {h['lambda_max']:.3g}]; trace {h['trace']:.4g} ± {h['trace_se'] or math.nan:.2g} "
                f"(Hutchinson), {h['slq_trace']:.4g} (SLQ, one probe)",
                f"  Fisher:  λ1 {f['eigenvalues'][0]:.3g}, rank {f['rank']}, κ {f['kappa'] or math.nan:.3g}, effective rank "
                f"{f['effective_rank']:.1f}, top-{s['k']} share {f['top_k_share'] or math.nan:.3f}; diag κ {f['kappa_diag'] or math.nan:.3g} "
                f"(floor {s['kappa_floor']:g}·max, {f['diag_below_floor']:.1%} below)",
                f"  {o['format']} error in top-{o['k']}: Hessian {o['hessian'] or math.nan:.3g}, Fisher {o['fisher'] or math.nan:.3g}, "
                f"random {o['random']:.2g}; top-|λ| eigenvectors on the 1 % largest |w|: {o['hessian_on_top1pct_weights']:.3f}",
                f"  bits ({a['quantity']}): uniform {a['uniform']['measured']:.4g} (pred. {a['uniform']['predicted_diag']:.4g}, "
                f"G {a['uniform']['predicted_gram']:.4g}) vs water-filling {a['waterfill']['measured']:.4g} (pred. "
                f"{a['waterfill']['predicted_diag']:.4g}, G {a['waterfill']['predicted_gram']:.4g}, in-sample "
                f"{a['waterfill']['predicted_diag_in_sample']:.4g}); bits {a['waterfill']['bits_histogram']}"]
    return out + verdict_lines(doc)


def geometry_plots(doc: dict, out_dir) -> list[Path]:
    """DEF-STUDY-GEOMETRY — the Hessian's SLQ spectral density per layer, and the Fisher eigenvalue decay per layer."""
    layers = doc["results"]["layers"]
    if not layers:
        return []
    plt = require_matplotlib()
    paths = []
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for r in layers:
        th = np.array(r["hessian"]["ritz"])
        span = max(float(np.ptp(th)), 1e-30)
        grid = np.linspace(th.min() - 0.1 * span, th.max() + 0.1 * span, 400)
        ax.plot(grid, slq_density(th, r["hessian"]["weights"], r["parameters"], grid, span / 50), label=r["site"])
    ax.set_xlabel("eigenvalue λ of the loss Hessian (layer block)")
    ax.set_ylabel("density (SLQ, one probe, Gaussian-broadened)")
    ax.set_yscale("log")
    ax.set_ylim(bottom=1e-6 * ax.get_ylim()[1])
    ax.set_title("Where do the layer Hessians' eigenvalues lie?")
    ax.legend(fontsize=6)
    paths.append(save_figure(plt, fig, out_dir, "geometry_hessian_density.png"))
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for r in layers:
        ev = np.array(r["fisher"]["eigenvalues"])
        ev = ev[ev > 0]
        ax.semilogy(np.arange(1, ev.size + 1), ev / ev[0], "o-", ms=3, label=r["site"])
    ax.set_xlabel("index j of the empirical Fisher's eigenvalue")
    ax.set_ylabel("λ_j / λ_1")
    ax.set_title("How anisotropic is the Fisher / Gram matrix G of each layer?")
    ax.legend(fontsize=6)
    paths.append(save_figure(plt, fig, out_dir, "geometry_fisher_spectrum.png"))
    return paths


GEOMETRY_STUDY = Study(
    name="geometry",
    summary="Hessian (Lanczos, Hutchinson) and Fisher geometry per layer: κ(G), error vs stiff directions, water-filling bits "
            "(seed 002, seed 003 opp. 5)",
    spec="DEF-STUDY-GEOMETRY",
    run=geometry_study,
    lines=geometry_lines,
    plots=geometry_plots,
    claims=("C-002-9.2-1", "C-003-opp5-1", "C-003-opp5-2"),
    options=(
        Option("sites", "strs", DEFAULT_GEOMETRY_SITES, "glob patterns of Linear weight sites", check_patterns),
        Option("k", "int", 8, "top eigenvalues/eigenvectors per layer", _check_k),
        Option("steps", "int", 24, "Lanczos iterations (Hessian-vector products) per layer", _check_steps),
        Option("probes", "int", 8, "Hutchinson probes per layer", _check_probes),
        Option("hessian_batches", "int", 1, "calibration batches in the Hessian", lambda f, v: check_positive_int(f, v)),
        Option("fisher_samples", "int", 128, "samples in the empirical Fisher", _check_samples),
        Option("format", "str", "int4", "format whose error is compared with the eigenvectors", _check_format),
        Option("mean_bits", "int", 4, "mean bits per weight of the allocation", lambda f, v: check_positive_int(f, v, low=2, high=8)),
        Option("min_bits", "int", 3, "fewest bits water-filling gives a row", lambda f, v: check_positive_int(f, v, low=2, high=8)),
        Option("seed", "int", 0, "seed of the Lanczos start and the Hutchinson probes", lambda f, v: check_positive_int(f, v, low=0)),
    ),
)
