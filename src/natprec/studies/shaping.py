"""DEF-STUDY-SHAPING — support shaping (seed 001 §6): SmoothQuant, AWQ, GPTQ, SVD absorption, scored by support and task.

For each selected Linear layer (weight W, d_out × d_in; calibration inputs X, the real positions of
the calibration batches, n × d_in) each method produces the tensor T its quantizer rounds and the
weight Ŵ installed in the model:

* ``rtn``: T = W, Ŵ = Q(W) (DEF-SITE-QUANTIZE at the target format, per output channel);
* ``smoothquant`` (α): s_j = max|X_j|^α / max|W_:j|^(1−α); T = W·diag(s), Ŵ = Q(T)·diag(1/s), the
  activation X·diag(1/s) (quantized at the activation format in the W+A run);
* ``awq``: s_j = (mean|X_j|)^α / √(max s · min s), α on a grid in [0, 1] minimising ‖(W − Ŵ)Xᵀ‖²;
* ``gptq`` (THM-GPTQ-CALIBRATION): columns in order with H = 2XᵀX + λ·mean(diag H)·I, each column
  rounded on W's per-row grid, its error spread over the later columns through the Cholesky
  factor of H⁻¹; T holds each column as it was when rounded;
* ``svd`` (k): W = UΣVᵀ, L = U_k Σ_k V_kᵀ kept in float32, T = W − L, Ŵ = L + Q(T).

Scored on T in the codebook's units y = T/s (s the per-row scale): the crest, the codes used per row,
H_Δ of y at Δ = one codebook unit, the collision probability δ (DEF-COLLISION-PROBABILITY, cells =
(row, code)), the Voronoi margins γ (DEF-MARGIN); and on Ŵ: the relative layer error
‖(W − Ŵ)Xᵀ‖²/‖WXᵀ‖² and the task distortion of the model with only this layer's weight replaced.
"""

from __future__ import annotations

import fnmatch
import math
import re
import time
from pathlib import Path

import numpy as np

from natprec.model.claim import spearman
from natprec.model.deps import require_matplotlib, require_torch
from natprec.model.distortion import per_sample_distortion
from natprec.model.quantize import SiteFormat, site_format
from natprec.model.runner import MeasuredModel, Runner, resolve_device, to_device
from natprec.model.sites import Site, find_sites, module_types_of
from natprec.reference import collision_probability, dequantize, discretized_entropy_bits, quantize, voronoi_margin
from natprec.reference.errors import InvalidParameterError, NatprecError, NonFiniteInputError, UnknownFormatError

from .registry import Option, Steps, Study, claim_row

__all__ = [
    "row_scales",
    "quantize_rows",
    "gptq_quantize",
    "smoothquant_scales",
    "awq_scales",
    "svd_split",
    "calibration_error",
    "grid_measures",
    "check_weight_format",
    "check_act_format",
    "check_alphas",
    "check_ranks",
    "check_damp",
    "check_grid",
    "shaping_study",
    "shaping_lines",
    "shaping_plots",
    "SHAPING_STUDY",
    "DEFAULT_ALPHAS",
    "DEFAULT_RANKS",
    "DEFAULT_DAMP",
    "DEFAULT_AWQ_GRID",
    "MARGIN_SAMPLE",
    "MATERIAL",
]

DEFAULT_ALPHAS = (0.25, 0.5, 0.75)
DEFAULT_RANKS = (8, 32)
#: GPTQ's damping λ: H + λ·mean(diag H)·I (the GPTQ paper's 1 %).
DEFAULT_DAMP = 0.01
DEFAULT_AWQ_GRID = 11
#: A relative change in δ that counts as lowering it (the verdicts): 10 %.
MATERIAL = 0.1
#: Voronoi margins are computed on a seeded uniform sample of at most this many elements (δ on all of them).
MARGIN_SAMPLE = 1 << 15
_F32 = np.float32


# ---------------------------------------------------------------------------------------------- checks
def check_weight_format(flag: str, name) -> SiteFormat:
    """DEF-STUDY-SHAPING — a symmetric element format with one scale per row (intB, nf4, float8_e4m3fn, …)."""
    fmt = name if isinstance(name, SiteFormat) else site_format(name)
    if fmt.element is None or fmt.group is not None or fmt.asymmetric:
        raise UnknownFormatError(f"{flag} {getattr(name, 'name', name)}: the shaping study needs a symmetric element format "
                                 "with one scale per row (intB, nf4, float8_e4m3fn, …), not a block, group or asymmetric one",
                                 value=getattr(name, "name", name))
    return fmt


def check_act_format(flag: str, name):
    """DEF-STUDY-SHAPING — "none" or None (no activation quantization) or a format for the activations (per tensor)."""
    if name is None or (isinstance(name, str) and name.strip().lower() == "none"):
        return None
    return check_weight_format(flag, name)


def _floats(flag, vals, lo, hi, what):
    vals = (vals,) if isinstance(vals, (int, float)) else tuple(vals)
    if not vals:
        raise InvalidParameterError(f"{flag}: no value", value=vals)
    for v in vals:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not (math.isfinite(v) and lo <= v <= hi):
            raise InvalidParameterError(f"{flag}: {what}; got {v!r}", value=v)
    return tuple(float(v) for v in dict.fromkeys(vals))


def check_alphas(flag: str, alphas):
    """DEF-STUDY-SHAPING — SmoothQuant's migration strengths α ∈ [0, 1]."""
    return _floats(flag, alphas, 0.0, 1.0, "α must be in [0, 1]")


def check_damp(flag: str, damp):
    """DEF-STUDY-SHAPING — GPTQ's damping λ ≥ 0, finite."""
    return _floats(flag, (damp,), 0.0, math.inf, "λ must be finite and >= 0")[0]


def check_ranks(flag: str, ranks):
    """DEF-STUDY-SHAPING — SVD ranks k ≥ 1 (a rank ≥ min(d_out, d_in) fails that layer only)."""
    vals = (ranks,) if isinstance(ranks, int) else tuple(ranks)
    if not vals:
        raise InvalidParameterError(f"{flag}: no value", value=ranks)
    for v in vals:
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise InvalidParameterError(f"{flag}: ranks are integers >= 1; got {v!r}", value=v)
    return tuple(int(v) for v in dict.fromkeys(vals))


def check_grid(flag: str, n):
    """DEF-STUDY-SHAPING — AWQ's α grid size, an integer ≥ 2 (α = 0, 1/(n−1), …, 1)."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 2:
        raise InvalidParameterError(f"{flag} must be an integer >= 2; got {n!r}", value=n)
    return int(n)


def _check_layers(flag: str, layers):
    if layers is None:
        return None
    vals = tuple(p.strip() for p in (layers.split(",") if isinstance(layers, str) else layers) if p and p.strip())
    if not vals:
        raise InvalidParameterError(f"{flag}: no value", value=layers)
    return vals


# ---------------------------------------------------------------------------------------------- the grid
def row_scales(w, fmt: SiteFormat) -> np.ndarray:
    """DEF-SITE-QUANTIZE — per-row scales s = fl32(max|row| / max code), 1 for an all-zero row (shape (rows, 1))."""
    w32 = np.asarray(w, dtype=_F32)
    amax = np.max(np.abs(w32), axis=1, keepdims=True).astype(_F32)
    s = np.divide(amax, _F32(fmt.element.max_finite), dtype=_F32)
    return np.where(s > 0, s, _F32(1.0)).astype(_F32)


def quantize_rows(t, s, fmt: SiteFormat) -> tuple[np.ndarray, np.ndarray]:
    """DEF-SITE-QUANTIZE — (y, Q(t)) on the fixed per-row grid s: y = fl32(fl32(t)/s), Q = fl32(code(y)·s), saturating.

    With s = row_scales(t) it is exactly ``fmt.quantize_dequantize(t, per_channel=True)``.
    """
    y = np.divide(np.asarray(t, dtype=_F32), s, dtype=_F32)
    codes = quantize(y, fmt.element, saturate=True)
    return y, np.multiply(dequantize(codes, fmt.element).astype(_F32), s, dtype=_F32)


def calibration_error(w, w_hat, gram) -> float:
    """DEF-STUDY-SHAPING — ‖(W − Ŵ)Xᵀ‖² = Σ_rows (ΔW·G·ΔWᵀ)_ii with G = XᵀX (float64)."""
    d = np.asarray(w, dtype=np.float64) - np.asarray(w_hat, dtype=np.float64)
    return float(np.sum((d @ gram) * d))


def gptq_quantize(w, x, fmt: SiteFormat, *, damp: float = DEFAULT_DAMP) -> tuple[np.ndarray, np.ndarray]:
    """THM-GPTQ-CALIBRATION — GPTQ (Frantar et al. 2023) on the per-row grid of W: returns (Ŵ float32, T float64).

    H = 2XᵀX (x: n × d_in calibration inputs); a column whose input is always 0 (H_jj = 0) gets
    H_jj = 1 and weight 0; H += λ·mean(diag H)·I; U = the upper Cholesky factor of H⁻¹.  For
    j = 0 … d_in − 1: T_:j = the current column, Ŵ_:j = Q(T_:j) on W's fixed per-row grid, and the
    later columns move by −(T_:j − Ŵ_:j)/U_jj · U_j,j+1:.  A non-positive-definite H raises
    InvalidParameterError (use λ > 0).
    """
    w32 = np.asarray(w, dtype=_F32)
    x64 = np.asarray(x, dtype=np.float64)
    if w32.ndim != 2 or x64.ndim != 2 or x64.shape[1] != w32.shape[1]:
        raise InvalidParameterError(f"gptq: W {w32.shape} and X {x64.shape} must be (d_out, d_in) and (n, d_in)", value=(w32.shape, x64.shape))
    if not (np.all(np.isfinite(w32)) and np.all(np.isfinite(x64))):
        raise NonFiniteInputError("gptq: W and X must be finite", value="W, X")
    s = row_scales(w32, fmt)
    h = 2.0 * x64.T @ x64
    dead = np.diag(h) == 0
    h[dead, dead] = 1.0
    work = w32.astype(np.float64)
    work[:, dead] = 0.0
    h[np.diag_indices_from(h)] += damp * float(np.mean(np.diag(h)))
    try:
        hinv = np.linalg.inv(np.linalg.cholesky(h))
        hinv = hinv.T @ hinv
        u = np.linalg.cholesky(hinv).T  # upper: H⁻¹ = UᵀU
    except np.linalg.LinAlgError:
        raise InvalidParameterError(f"gptq: H = 2XᵀX + λ·mean(diag)·I is not positive definite at λ = {damp}", value=damp) from None
    n_in = w32.shape[1]
    t = np.empty_like(work)
    q = np.empty(w32.shape, dtype=_F32)
    for j in range(n_in):
        col = work[:, j]
        t[:, j] = col
        _, qj = quantize_rows(col[:, None], s, fmt)
        q[:, j] = qj[:, 0]
        err = (col - qj[:, 0].astype(np.float64)) / u[j, j]
        work[:, j + 1:] -= np.outer(err, u[j, j + 1:])
    return q, t


def smoothquant_scales(x_absmax, w_absmax, alpha: float) -> np.ndarray:
    """DEF-STUDY-SHAPING — s_j = max|X_j|^α / max|W_:j|^(1−α); 1 where either maximum is 0."""
    xa, wa = np.asarray(x_absmax, np.float64), np.asarray(w_absmax, np.float64)
    ok = (xa > 0) & (wa > 0)
    s = np.ones_like(xa)
    s[ok] = xa[ok] ** alpha / wa[ok] ** (1 - alpha)
    return s


def awq_scales(x_absmean, alpha: float) -> np.ndarray:
    """DEF-STUDY-SHAPING — s_j = (mean|X_j|)^α normalised by √(max s · min s) (zero means count as the smallest positive)."""
    xa = np.asarray(x_absmean, np.float64)
    pos = xa[xa > 0]
    xa = np.where(xa > 0, xa, pos.min() if pos.size else 1.0)
    s = xa ** alpha
    return s / math.sqrt(float(s.max() * s.min()))


def svd_split(w, rank: int) -> tuple[np.ndarray, np.ndarray]:
    """DEF-STUDY-SHAPING — (L, R): L = U_k Σ_k V_kᵀ (float32, the top ``rank`` singular triplets), R = fl32(W − L)."""
    w32 = np.asarray(w, dtype=_F32)
    if not 1 <= rank < min(w32.shape):
        raise InvalidParameterError(f"svd rank {rank} must be in 1..{min(w32.shape) - 1} for a {w32.shape} weight", value=rank)
    u, sv, vt = np.linalg.svd(w32.astype(np.float64), full_matrices=False)
    low = ((u[:, :rank] * sv[:rank]) @ vt[:rank]).astype(_F32)
    return low, np.subtract(w32, low, dtype=_F32)


def grid_measures(t, s, fmt: SiteFormat, *, seed: int = 0) -> dict:
    """DEF-STUDY-SHAPING — support measures of T on the per-row grid s, in codebook units y = T/s.

    crest: mean over rows of log2(max|y|/rms(y)); codes per row: distinct codes used, averaged;
    H_Δ of all y at Δ = 1 (one codebook unit, origin −½: the entropy of round(y)); δ over all elements
    with cells (row, code), and δ·rows — the mean δ within a row, for rows of equal length; γ (min, 1 % quantile,
    median) on a seeded sample of ≤ MARGIN_SAMPLE elements.
    """
    t32 = np.asarray(t, dtype=_F32)
    t32 = np.where(t32 == 0, _F32(0), t32)  # −0 is +0, as in the census
    y, _ = quantize_rows(t32, s, fmt)
    el = fmt.element
    codes = quantize(y, el, saturate=True).astype(np.int64)
    rows = np.broadcast_to(np.arange(y.shape[0])[:, None], y.shape)
    cells = rows * (1 << el.nbits) + codes
    pairs, counts = np.unique(np.stack([cells.ravel().astype(np.float64), t32.ravel().astype(np.float64)]), axis=1, return_counts=True)
    delta = float(collision_probability(counts.astype(np.int64), pairs[0].astype(np.int64)))
    yv = y.ravel()
    if yv.size > MARGIN_SAMPLE:
        yv = yv[np.sort(np.random.default_rng(seed).choice(yv.size, MARGIN_SAMPLE, replace=False))]
    gamma = voronoi_margin(yv, el.codebook)
    y64 = y.astype(np.float64)
    rms = np.sqrt(np.mean(y64 ** 2, axis=1))
    ok = rms > 0
    return {
        "crest_bits": float(np.mean(np.log2(np.max(np.abs(y64[ok]), axis=1) / rms[ok]))) if ok.any() else None,
        "codes_per_row": float(np.mean([np.unique(c).size for c in codes])),
        "entropy_bits": discretized_entropy_bits(y64.ravel(), 1.0, origin=-0.5),
        "collision_probability": delta,
        "collision_within_row": delta * y.shape[0],  # mean per-row δ when every row has the same length (weights)
        "min_margin": float(gamma.min()),
        "margin_q01": float(np.quantile(gamma, 0.01)),
        "median_margin": float(np.median(gamma)),
        "margin_elements": int(yv.size),
    }


def _act_measures(x, fmt: SiteFormat) -> dict:
    """Support measures of an activation (positions × features) at ``fmt`` per tensor (one row)."""
    x32 = np.asarray(x, dtype=_F32).reshape(1, -1)
    rec = grid_measures(x32, row_scales(x32, fmt), fmt)
    rec.pop("codes_per_row")
    return rec


# ---------------------------------------------------------------------------------------------- the study
def _default_layers(linears: list[str]) -> tuple:
    """The Linears of the last ``layer.N`` of the model (MiniLM: its 6 Linears of layer 5); all Linears if there is no such name."""
    idx = sorted({int(m.group(1)) for n in linears if (m := re.search(r"(?:^|\.)layer\.(\d+)\.", n))})
    return (f"*layer.{idx[-1]}.*",) if idx else ("*",)


def _distortion(runner: Runner, wsite: Site, w_hat, act=None) -> float:
    """Mean task distortion with ``w_hat`` at ``wsite`` (and ``act``: input site and function) over all batches."""
    torch = runner.torch
    value = torch.from_numpy(np.ascontiguousarray(w_hat, dtype=_F32)).to(runner.site_tensor(wsite).device)
    total, n = 0.0, 0
    for b in range(len(runner.mm.batches)):
        if act is None:
            out = runner.run_replaced(wsite, value, b)
        else:
            with runner.replaced(act[0], act[1]):
                out = runner.run_replaced(wsite, value, b)
        if not bool(torch.isfinite(out).all()):
            raise NonFiniteInputError(f"{wsite.module}: non-finite model output on batch {b}", value=wsite.module)
        total += float(per_sample_distortion(runner.mm.distortion, runner.reference[b], out, loss_fn=runner.mm.loss_fn,
                                             batch=runner.mm.batches[b]).sum())
        n += runner.reference[b].shape[0]
    return total / n


def _layer(runner, wsite, isite, fmt, afmt, alphas, grid, damp, ranks):
    torch = runner.torch
    w = runner.site_tensor(wsite).detach().cpu().numpy().astype(_F32)
    x = np.concatenate([runner.valid_rows(isite, b) for b in range(len(runner.mm.batches))]).astype(np.float64)
    gram = x.T @ x
    ref_power = float(np.sum((w.astype(np.float64) @ gram) * w))
    d_out, d_in = w.shape
    methods = []

    def score(method, param, t, s, w_hat, extra_bits, act_scale=None, **more):
        rec = {"method": method, "param": param, "extra_bits": extra_bits, **grid_measures(t, s, fmt), **more,
               "calibration_error": calibration_error(w, w_hat, gram) / ref_power if ref_power > 0 else None,
               "distortion": _distortion(runner, wsite, w_hat)}
        if act_scale is not None and afmt is not None:
            sc = act_scale.astype(_F32)
            rec["activation"] = _act_measures(np.divide(x.astype(_F32), sc, dtype=_F32), afmt)

            sc_t = torch.from_numpy(sc)

            def qa(inp, sc_t=sc_t):
                v = (inp.detach().float() / sc_t.to(inp.device)).cpu().numpy()
                return torch.from_numpy(afmt.quantize_dequantize(v, per_channel=False)).to(inp.device) * sc_t.to(inp.device)
            rec["distortion_wa"] = _distortion(runner, wsite, w_hat, (isite, qa))
        methods.append(rec)

    s_w = row_scales(w, fmt)
    _, q_rtn = quantize_rows(w, s_w, fmt)
    score("rtn", None, w, s_w, q_rtn, 0.0, act_scale=np.ones(d_in))
    x_absmax, w_absmax = np.max(np.abs(x), axis=0), np.max(np.abs(w.astype(np.float64)), axis=0)
    for a in alphas:
        sc = smoothquant_scales(x_absmax, w_absmax, a).astype(_F32)
        t = np.multiply(w, sc, dtype=_F32)
        s_t = row_scales(t, fmt)
        _, qt = quantize_rows(t, s_t, fmt)
        score("smoothquant", a, t, s_t, np.divide(qt, sc, dtype=_F32), 32.0 / d_out, act_scale=sc)
    x_absmean = np.mean(np.abs(x), axis=0)
    objective = []
    best = None
    for a in np.linspace(0.0, 1.0, grid):
        sc = awq_scales(x_absmean, float(a)).astype(_F32)
        t = np.multiply(w, sc, dtype=_F32)
        _, qt = quantize_rows(t, row_scales(t, fmt), fmt)
        w_hat = np.divide(qt, sc, dtype=_F32)
        err = calibration_error(w, w_hat, gram)
        objective.append(err / ref_power if ref_power > 0 else None)
        if best is None or err < best[0]:
            best = (err, float(a), sc, t, w_hat)
    _, a_best, sc, t, w_hat = best
    score("awq", a_best, t, row_scales(t, fmt), w_hat, 32.0 / d_out, search=objective)
    q_g, t_g = gptq_quantize(w, x, fmt, damp=damp)
    score("gptq", damp, t_g, s_w, q_g, 0.0)
    for k in ranks:
        if k >= min(w.shape):
            methods.append({"method": "svd", "param": k, "error": f"rank {k} >= min{w.shape}"})
            continue
        low, res = svd_split(w, k)
        s_r = row_scales(res, fmt)
        _, qr = quantize_rows(res, s_r, fmt)
        score("svd", k, res, s_r, np.add(low, qr, dtype=_F32), 32.0 * k * (d_out + d_in) / (d_out * d_in))
    ok = [m for m in methods if "error" not in m]
    dist = [m["distortion"] for m in ok]
    return {"layer": wsite.module, "shape": [d_out, d_in], "positions": int(x.shape[0]), "methods": methods,
            "rho_delta": spearman(dist, [m["collision_within_row"] for m in ok]),
            "rho_median_margin": spearman(dist, [m["median_margin"] for m in ok]),
            "rho_entropy": spearman(dist, [m["entropy_bits"] for m in ok]),
            "rho_calibration_error": spearman(dist, [m["calibration_error"] for m in ok])}


def shaping_study(mm: MeasuredModel, *, layers=None, format="int4", act_format="int8", alphas=DEFAULT_ALPHAS,
                  awq_grid: int = DEFAULT_AWQ_GRID, damp: float = DEFAULT_DAMP, ranks=DEFAULT_RANKS, progress=False, device=None) -> dict:
    """DEF-STUDY-SHAPING — each method on each selected Linear layer, scored by support measures and task distortion.

    ``layers``: glob patterns of Linear module names (default: the Linears of the last ``layer.N``,
    or every Linear of a model without such names); ``format``: the weights' target
    (per row); ``act_format``: the activations' format in SmoothQuant's W+A run and measures ("none": off).
    """
    torch = require_torch()
    fmt = check_weight_format("--format", format)
    afmt = check_act_format("--act-format", act_format)
    alphas, ranks = check_alphas("--alphas", alphas), check_ranks("--ranks", ranks)
    grid, damp = check_grid("--awq-grid", awq_grid), check_damp("--damp", damp)
    patterns = _check_layers("--layers", layers)
    dev = resolve_device(device)
    mm.model.to(dev)
    mm.batches = [to_device(b, dev) for b in mm.batches]
    wsites = find_sites(mm.model, kinds=("weight",), module_types=module_types_of(("linear",)))
    names = [s.module for s in wsites]
    if patterns is None:
        patterns = _default_layers(names)
    for p in patterns:
        if not any(fnmatch.fnmatchcase(n, p) for n in names):
            raise InvalidParameterError(f"--layers {p!r} matches no Linear layer of the model", value=p)
    chosen = [s for s in wsites if any(fnmatch.fnmatchcase(s.module, p) for p in patterns)]
    isites = [Site(f"{s.module}:input", "input", s.module, None, s.feature_axis) for s in chosen]
    t0 = time.perf_counter()
    runner = Runner(mm, chosen + isites)
    timing = {"baseline": time.perf_counter() - t0}
    steps = Steps("shaping", len(chosen), progress)
    results, errors = [], []
    t1 = time.perf_counter()
    for ws, is_ in zip(chosen, isites, strict=True):
        try:
            with torch.no_grad():
                rec = _layer(runner, ws, is_, fmt, afmt, alphas, grid, damp, ranks)
            errors += [{"what": f"{ws.module} {m['method']}({m['param']})", "error": m["error"]} for m in rec["methods"] if "error" in m]
        except NatprecError as exc:
            rec = {"layer": ws.module, "error": str(exc)}
            errors.append({"what": ws.module, "error": str(exc)})
        results.append(rec)
        steps.step(ws.module)
    timing["measure"] = time.perf_counter() - t1
    timing["total"] = time.perf_counter() - t0
    doc = {"study": "shaping", "spec": "DEF-STUDY-SHAPING", "model": mm.description,
           "settings": {"layers": list(patterns), "format": fmt.name, "act_format": None if afmt is None else afmt.name,
                        "alphas": list(alphas), "awq_grid": grid, "damp": damp, "ranks": list(ranks),
                        "distortion": mm.distortion, "device": dev, "entropy_delta": "1 codebook unit (origin -1/2)",
                        "margin_sample": MARGIN_SAMPLE},
           "results": {"layers": results, "summary": _summary(results)}, "errors": errors, "timing": timing}
    doc["claims"] = _claims(doc)
    return doc


def _median(vals):
    vals = [v for v in vals if v is not None]
    return float(np.median(vals)) if vals else None


def _summary(results: list[dict]) -> dict:
    ok = [r for r in results if "error" not in r]
    out = {"layers": len(ok)}
    for key in ("rho_delta", "rho_median_margin", "rho_entropy", "rho_calibration_error"):
        vals = [r[key] for r in ok if r[key] is not None]
        out[key] = {"median": _median(vals), "positive": sum(v > 0 for v in vals), "negative": sum(v < 0 for v in vals), "n": len(vals)}
    best = {"lowest_delta": 0, "largest_median_margin": 0, "n": 0}
    per = {}
    for r in ok:
        ms = [m for m in r["methods"] if "error" not in m]
        rtn = ms[0]
        top = min(ms, key=lambda m: m["distortion"])
        best["n"] += 1
        best["lowest_delta"] += top["collision_within_row"] == min(m["collision_within_row"] for m in ms)
        best["largest_median_margin"] += top["median_margin"] == max(m["median_margin"] for m in ms)
        for m in ms[1:]:
            key = m["method"] if m["method"] not in ("smoothquant", "svd") else f"{m['method']}({m['param']:g})"
            p = per.setdefault(key, {"n": 0, "lower_distortion": 0, "lower_delta": 0, "larger_median_margin": 0,
                                     "distortion_ratio": [], "delta_change": []})
            p["n"] += 1
            p["lower_distortion"] += m["distortion"] < rtn["distortion"]
            p["lower_delta"] += m["collision_within_row"] <= (1 - MATERIAL) * rtn["collision_within_row"]
            p["larger_median_margin"] += m["median_margin"] > rtn["median_margin"]
            p["distortion_ratio"].append(m["distortion"] / rtn["distortion"] if rtn["distortion"] > 0 else None)
            p["delta_change"].append(m["collision_within_row"] - rtn["collision_within_row"])
    for p in per.values():
        p["median_distortion_ratio"] = _median(p.pop("distortion_ratio"))
        p["median_delta_change"] = _median(p.pop("delta_change"))
    out["best_method"] = best
    out["vs_rtn"] = per
    return out


def _method_verdict(p: dict | None) -> str:
    if not p or not p["n"]:
        return "out of scope"
    d, s = p["lower_distortion"] / p["n"], p["lower_delta"] / p["n"]
    if d >= 2 / 3 and s >= 2 / 3:
        return "supported"
    if d >= 2 / 3 and s <= 1 / 3:
        return "refuted"
    return "mixed"


def _claims(doc: dict) -> list[dict]:
    summ = doc["results"]["summary"]
    if not summ["layers"]:
        return []
    per = summ["vs_rtn"]
    fmt = doc["settings"]["format"]
    rows = []

    def txt(key):
        p = per.get(key)
        if not p:
            return f"{key}: not measured"
        return (f"{key} vs RTN at {fmt} on {p['n']} layers: task distortion lower on {p['lower_distortion']} (median ratio "
                f"{p['median_distortion_ratio']:.3g}), δ within a row ≥ {MATERIAL:.0%} lower on {p['lower_delta']} "
                f"(median change {p['median_delta_change']:+.4f}), "
                f"median margin larger on {p['larger_median_margin']}")
    ok = [r for r in doc["results"]["layers"] if "error" not in r]
    sq_key = "smoothquant(0.5)" if "smoothquant(0.5)" in per else next((k for k in per if k.startswith("smoothquant")), None)
    act = ""
    if sq_key and doc["settings"]["act_format"]:
        a = float(sq_key[len("smoothquant("):-1])
        pairs = [(r["methods"][0], next(m for m in r["methods"] if m["method"] == "smoothquant" and m["param"] == a)) for r in ok]
        lower_wa = sum(sq["distortion_wa"] < rt["distortion_wa"] for rt, sq in pairs)
        lower_ad = sum(sq["activation"]["collision_probability"] <= (1 - MATERIAL) * rt["activation"]["collision_probability"]
                       for rt, sq in pairs)
        lower_ac = sum(sq["activation"]["crest_bits"] < rt["activation"]["crest_bits"] for rt, sq in pairs)
        act = (f"; activations at {doc['settings']['act_format']}: crest lower on {lower_ac}, δ ≥ {MATERIAL:.0%} lower on {lower_ad}, "
               f"W+A distortion lower on {lower_wa} of {len(pairs)}")
        v = ("supported" if lower_wa >= 2 / 3 * len(pairs) and lower_ad >= 2 / 3 * len(pairs)
             else "refuted" if lower_wa >= 2 / 3 * len(pairs) and lower_ad <= len(pairs) / 3 else "mixed")
    else:
        v = _method_verdict(per.get(sq_key))
    rows.append(claim_row("C-001-6-1", txt(sq_key or "smoothquant") + act, v))
    rows.append(claim_row("C-001-6-2", txt("awq"), _method_verdict(per.get("awq"))))
    rows.append(claim_row("C-001-6-3", txt("gptq"), _method_verdict(per.get("gptq"))))
    svd_keys = [k for k in per if k.startswith("svd")]
    rows.append(claim_row("C-001-6-4", "; ".join(txt(k) for k in svd_keys) or "svd: not measured",
                          _method_verdict(per[svd_keys[-1]]) if svd_keys else "out of scope"))
    rd, rm = summ["rho_delta"], summ["rho_median_margin"]
    b = summ["best_method"]
    med_d, med_m = rd["median"], rm["median"]
    if med_d is None or med_m is None:
        v = "out of scope"
    elif med_d > 0.5 and med_m < -0.5:
        v = "supported"
    elif med_d < 0.2 and med_m > -0.2:
        v = "refuted"
    else:
        v = "mixed"
    rows.append(claim_row("C-001-6-5", (
        f"within each of {summ['layers']} layers, Spearman ρ over the methods of task distortion vs δ: median {med_d:+.2f} "
        f"(> 0 on {rd['positive']}, < 0 on {rd['negative']}); vs median margin: median {med_m:+.2f} (< 0 on {rm['negative']}); "
        f"vs the layer error ‖ΔW·Xᵀ‖²: median {summ['rho_calibration_error']['median']:+.2f}; the lowest-distortion method has the lowest δ "
        f"on {b['lowest_delta']} of {b['n']} layers, the largest median margin on {b['largest_median_margin']}"), v))
    return rows


def _g(v, spec=".3g"):
    return "—" if v is None else format(v, spec)


def shaping_lines(doc: dict) -> list[str]:
    """DEF-STUDY-SHAPING — per layer, one row per method: support measures, layer error, task distortion; then the claims."""
    s = doc["settings"]
    out = [f"support shaping at {s['format']} per row (activations: {s['act_format'] or 'not quantized'}); distortion: {s['distortion']}",
           f"{'layer / method':<44} {'crest':>6} {'codes':>6} {'H_Δ':>6} {'δ_row':>8} {'γ med':>7} {'γ 1%':>8} {'+bits':>6} "
           f"{'layer err':>9} {'distortion':>10} {'W+A dist':>9}"]
    for r in doc["results"]["layers"]:
        if "error" in r:
            out.append(f"{r['layer']}: error: {r['error']}")
            continue
        out.append(f"{r['layer']} {tuple(r['shape'])}: ρ(distortion, δ) = {_g(r['rho_delta'], '+.2f')}, "
                   f"ρ(distortion, median γ) = {_g(r['rho_median_margin'], '+.2f')}")
        for m in r["methods"]:
            label = f"  {m['method']}" + ("" if m["param"] is None else f"({m['param']:g})")
            if "error" in m:
                out.append(f"{label:<44} error: {m['error']}")
                continue
            out.append(f"{label:<44} {m['crest_bits']:>6.2f} {m['codes_per_row']:>6.1f} {m['entropy_bits']:>6.3f} "
                       f"{m['collision_within_row']:>8.4f} {m['median_margin']:>7.3f} {m['margin_q01']:>8.2e} {m['extra_bits']:>6.2f} "
                       f"{_g(m['calibration_error'], '9.2e')} {m['distortion']:>10.3e} {_g(m.get('distortion_wa'), '9.2e')}")
    out += ["", "crest, H_Δ (Δ = 1 codebook unit), δ and margins γ are on the tensor the quantizer rounds, in codebook units",
            ""]
    out += [f"{c['id']} [{c['verdict']}] {c['measured']}" for c in doc["claims"]]
    return out


def shaping_plots(doc: dict, out: Path) -> list[Path]:
    """DEF-STUDY-SHAPING — shaping.png: change in δ vs change in task distortion against RTN, per method and layer."""
    plt = require_matplotlib()
    ok = [r for r in doc["results"]["layers"] if "error" not in r]
    if not ok:
        return []
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    colours = {}
    for r in ok:
        ms = [m for m in r["methods"] if "error" not in m]
        rtn = ms[0]
        for m in ms[1:]:
            key = m["method"]
            c = colours.setdefault(key, plt.cm.tab10(len(colours) % 10))
            ratio = m["distortion"] / rtn["distortion"] if rtn["distortion"] > 0 else np.nan
            axes[0].scatter(m["collision_within_row"] - rtn["collision_within_row"], ratio, color=c, s=18)
            axes[1].scatter(m["median_margin"] - rtn["median_margin"], ratio, color=c, s=18)
    for ax, xl in zip(axes, ("δ within a row: method − RTN", "median margin(method) − median margin(RTN), codebook units"), strict=True):
        ax.set_yscale("log")
        ax.axhline(1, color="grey", lw=0.8)
        ax.axvline(0, color="grey", lw=0.8)
        ax.set_xlabel(xl)
        ax.set_ylabel("task distortion / RTN's")
    handles = [plt.Line2D([], [], marker="o", ls="", color=c, label=k) for k, c in colours.items()]
    axes[0].legend(handles=handles, fontsize=7)
    fig.suptitle(f"Do methods that lower task distortion at {doc['settings']['format']} lower collisions / widen margins? (seed 001 §6)")
    fig.tight_layout()
    p = Path(out) / "shaping.png"
    fig.savefig(p, dpi=110)
    plt.close(fig)
    return [p]


SHAPING_STUDY = Study(
    name="shaping",
    summary="SmoothQuant, AWQ, GPTQ, SVD absorption scored by support (δ, margins, H_Δ) and task distortion (seed 001 §6)",
    spec="DEF-STUDY-SHAPING",
    run=shaping_study,
    lines=shaping_lines,
    plots=shaping_plots,
    claims=("C-001-6-1", "C-001-6-2", "C-001-6-3", "C-001-6-4", "C-001-6-5"),
    options=(
        Option("layers", "strs", None, "glob patterns of Linear layer names (default: the last layer.N's Linears)",
               _check_layers),
        Option("format", "str", "int4", "the weights' target format, one scale per output channel", check_weight_format),
        Option("act_format", "str", "int8", "activation format (per tensor) for SmoothQuant's W+A run, or none",
               check_act_format),
        Option("alphas", "floats", DEFAULT_ALPHAS, "SmoothQuant migration strengths α", check_alphas),
        Option("awq_grid", "int", DEFAULT_AWQ_GRID, "AWQ's α grid size on [0, 1]", check_grid),
        Option("damp", "float", DEFAULT_DAMP, "GPTQ damping λ (times mean diag H)", check_damp),
        Option("ranks", "ints", DEFAULT_RANKS, "SVD ranks kept in float32", check_ranks),
    ),
)
