"""DEF-BILLM, DEF-STUDY-BILLM — BiLLM's residual binarization (Huang et al. 2024, seed 002 §9.2) on a model's
Linear weights, with its bits counted honestly, against plain sign binarization, int4 and NF4.

BiLLM, as the paper describes it, per block of ``block`` input columns (left to right, GPTQ order):

1. saliency s_ij = w_ij² / d_j² with d_j the j-th diagonal entry of the upper Cholesky factor of H⁻¹
   (H = 2XᵀX/n + λI from the layer's calibration inputs X, λ = 1 % of mean diag — GPTQ's and BiLLM's code's
   convention for [H⁻¹]_jj); columns ranked by Σ_i s_ij;
2. the salient columns are the top-k of that ranking, k ∈ 1 … ``max_salient`` chosen to minimise the block's
   weight MSE when salient and non-salient weights are both binarized with the residual (order-2) scheme;
   the salient columns keep order 2: ŵ = μ₁ + α₁ sgn(w − μ₁) + μ₂ + α₂ sgn(r − μ₂), r the first residual,
   μ, α the row's mean and mean absolute deviation over the group;
3. the non-salient weights are split by |w| at the break point p (one of the 10 %…90 % quantiles of |w|, step
   1 %) minimising the block MSE into a concentrated (|w| < p) and a sparse group, each binarized at order 1
   with its own row mean and scale;
4. the block's error is compensated in the columns to its right as GPTQ does: W[:, right] −= E·U[block, right],
   E = (W_block − Ŵ_block)/d.

sgn(0) = +1 (a 1-bit code has no zero).
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np

from natprec.model.deps import require_matplotlib
from natprec.model.quantize import site_format
from natprec.model.runner import MeasuredModel
from natprec.reference.errors import InvalidParameterError

from .registry import Option, Steps, Study, claim_row
from .weightlayers import (
    check_patterns,
    check_positive_int,
    layer_inputs,
    layer_runner,
    linear_weight_sites,
    relative_output_error,
    save_figure,
    task_distortion,
    verdict_lines,
)

__all__ = ["residual_binarize", "sign_binarize", "billm_binarize", "billm_bits", "layer_hessian", "billm_study",
           "billm_lines", "billm_plots", "BILLM_STUDY", "DEFAULT_BILLM_SITES", "DEFAULT_BILLM_FORMATS", "SCALE_BITS"]

#: Bits of one stored mean or scale (BiLLM keeps them in float16).
SCALE_BITS = 16
DEFAULT_BILLM_SITES = ("encoder.layer.0.attention.self.query.weight", "encoder.layer.0.intermediate.dense.weight",
                       "encoder.layer.0.output.dense.weight", "encoder.layer.5.attention.self.query.weight",
                       "encoder.layer.5.intermediate.dense.weight", "encoder.layer.5.output.dense.weight")
DEFAULT_BILLM_FORMATS = ("int4", "nf4_absmax64", "int3", "int2")


def _sgn(x):
    return np.where(x >= 0, 1.0, -1.0)


def residual_binarize(w: np.ndarray, mask: np.ndarray, order: int = 1) -> np.ndarray:
    """DEF-BILLM — order-``order`` residual binarization of the masked entries of each row (zeros elsewhere).

    Each order binarizes what is left, r, as μ + α·sgn(r − μ) with μ the row's mean and α the row's mean
    |r − μ| over the masked entries (a row with no masked entry contributes 0).
    """
    w = np.asarray(w, np.float64)
    m = np.asarray(mask, bool)
    cnt = m.sum(axis=1, keepdims=True)
    safe = np.maximum(cnt, 1)
    total = np.zeros_like(w)
    for _ in range(order):
        r = np.where(m, w - total, 0.0)
        mu = r.sum(axis=1, keepdims=True) / safe
        dev = np.where(m, r - mu, 0.0)
        alpha = np.abs(dev).sum(axis=1, keepdims=True) / safe
        total = total + np.where(m, mu + alpha * _sgn(dev), 0.0)
    return total


def sign_binarize(w: np.ndarray) -> np.ndarray:
    """DEF-BILLM — plain binarization: ŵ = α_r sgn(w) with α_r = mean |w| of row r (the L2-optimal scale)."""
    w = np.asarray(w, np.float64)
    return np.abs(w).mean(axis=1, keepdims=True) * _sgn(w)


def layer_hessian(x: np.ndarray) -> np.ndarray:
    """DEF-BILLM — H = 2XᵀX/n of a layer's calibration inputs X (n × in), as GPTQ and BiLLM accumulate it."""
    x = np.asarray(x, np.float64)
    if x.ndim != 2 or x.shape[0] == 0:
        raise InvalidParameterError(f"layer Hessian: X must be a non-empty 2-D array; got shape {x.shape}", value=x.shape)
    return 2.0 * (x.T @ x) / x.shape[0]


def _mse(a, b):
    return float(np.mean((a - b) ** 2))


def _block(w1: np.ndarray, d: np.ndarray, max_salient: int):
    """(Ŵ block, salient-column mask, sparse-group mask) of one block, by BiLLM's two searches."""
    rows, n = w1.shape
    score = (w1**2 / d[None, :] ** 2).sum(axis=0)
    order = np.argsort(-score, kind="stable")
    best = (math.inf, 1)
    for k in range(1, max(2, min(max_salient, n - 1) + 1)):
        cols = np.zeros(n, bool)
        cols[order[:k]] = True
        m = np.broadcast_to(cols, w1.shape)
        e = _mse(w1, residual_binarize(w1, m, 2) + residual_binarize(w1, ~m, 2))
        if e < best[0]:
            best = (e, k)
    cols = np.zeros(n, bool)
    cols[order[:best[1]]] = True
    sal = np.broadcast_to(cols, w1.shape)
    q_sal = residual_binarize(w1, sal, 2)
    a = np.abs(w1[:, ~cols]) if (~cols).any() else np.zeros((rows, 0))
    best = (math.inf, None, None)
    for p in (np.quantile(a, np.linspace(0.10, 0.90, 81)) if a.size else ()):
        sparse = (np.abs(w1) >= p) & ~sal
        conc = ~sparse & ~sal
        q = q_sal + residual_binarize(w1, conc, 1) + residual_binarize(w1, sparse, 1)
        e = _mse(w1, q)
        if e < best[0]:
            best = (e, q, sparse)
    if best[1] is None:  # every column salient
        return q_sal, sal, np.zeros_like(sal)
    return best[1], sal, best[2]


def billm_binarize(w: np.ndarray, h: np.ndarray, *, block: int = 128, max_salient: int = 50, percdamp: float = 0.01,
                   compensate: bool = True) -> tuple[np.ndarray, dict]:
    """DEF-BILLM — BiLLM's binarization of ``w`` (out × in) with layer Hessian ``h`` (in × in); returns (Ŵ, counts).

    ``counts``: rows, cols, blocks, salient columns (total), salient weights, sparse-group weights, and the
    per-block figures :func:`billm_bits` needs. ``compensate=False`` skips step 4 (BiLLM without its GPTQ part).
    """
    w = np.array(w, dtype=np.float64)
    h = np.array(h, dtype=np.float64)
    if w.ndim != 2 or h.shape != (w.shape[1], w.shape[1]):
        raise InvalidParameterError(f"BiLLM: W {w.shape} needs a square H over its {w.shape[-1]} inputs; got {h.shape}",
                                    value=h.shape)
    if not (np.isfinite(w).all() and np.isfinite(h).all()):
        raise InvalidParameterError("BiLLM: non-finite weight or Hessian", value="non-finite")
    if isinstance(block, bool) or not isinstance(block, int) or block < 2:
        raise InvalidParameterError(f"BiLLM: block must be an integer >= 2; got {block!r}", value=block)
    rows, cols = w.shape
    dead = np.diag(h) == 0
    h[dead, dead] = 1.0
    w[:, dead] = 0.0
    h[np.diag_indices(cols)] += percdamp * float(np.mean(np.diag(h)))
    try:
        hinv = np.linalg.inv(h)
        u = np.linalg.cholesky(hinv).T  # upper: H⁻¹ = UᵀU
    except np.linalg.LinAlgError:
        raise InvalidParameterError("BiLLM: the damped layer Hessian is not positive definite", value=float(np.min(np.diag(h)))) from None
    q = np.zeros_like(w)
    salient = sparse = 0
    per_block = []
    for c0 in range(0, cols, block):
        c1 = min(c0 + block, cols)
        d = np.diag(u)[c0:c1]
        w1 = w[:, c0:c1]
        q1, sal, sp = _block(w1, d, max_salient)
        q[:, c0:c1] = q1
        ns = int(sal[0].sum())
        salient += ns
        sparse += int(sp.sum())
        per_block.append({"cols": c1 - c0, "salient": ns, "sparse": int(sp.sum())})
        if compensate and c1 < cols:
            err = (w1 - q1) / d[None, :]
            w[:, c1:] -= err @ u[c0:c1, c1:]
    return q, {"rows": rows, "cols": cols, "blocks": per_block, "salient_columns": salient,
               "salient_weights": salient * rows, "sparse_weights": sparse}


def _hb(p: float) -> float:
    return 0.0 if p <= 0 or p >= 1 else -(p * math.log2(p) + (1 - p) * math.log2(1 - p))


def billm_bits(counts: dict, scale_bits: int = SCALE_BITS) -> dict:
    """DEF-BILLM — bits per weight of a BiLLM-binarized matrix, from :func:`billm_binarize`'s counts.

    ``signs``: one sign per weight plus one per salient weight (its second order) — the figure the paper
    reports. ``stored``: signs + the salient-column bitmap (1 bit per column per block) + one group flag per
    non-salient weight + 8 means/scales per row per block (μ, α for each of the two salient orders, the
    concentrated and the sparse group) at ``scale_bits`` each. ``entropy_coded``: as stored with the group flags
    at their binary entropy h_b(sparse share) per non-salient weight (a lower bound for any flag coding).
    """
    rows, cols = counts["rows"], counts["cols"]
    n = rows * cols
    signs = n + counts["salient_weights"]
    bitmap = cols  # one bit per column, each column in exactly one block
    flags = flags_h = 0.0
    for b in counts["blocks"]:
        ns = rows * (b["cols"] - b["salient"])
        flags += ns
        flags_h += ns * _hb(b["sparse"] / ns) if ns else 0.0
    scales = 8 * scale_bits * rows * len(counts["blocks"])
    return {"signs": signs / n, "stored": (signs + bitmap + flags + scales) / n,
            "entropy_coded": (signs + bitmap + flags_h + scales) / n, "scales": scales / n, "flags": flags / n}


def _check_block(flag, v):
    return check_positive_int(flag, v, low=2)


def _check_max_salient(flag, v):
    return check_positive_int(flag, v, low=1)


def _check_formats(flag, v):
    names = tuple(v.split(",")) if isinstance(v, str) else tuple(v)
    names = tuple(n.strip() for n in names if isinstance(n, str) and n.strip())
    if not names:
        raise InvalidParameterError(f"{flag}: no format given", value=v)
    for n in names:
        site_format(n)  # UnknownFormatError naming it
    return names


def billm_study(mm: MeasuredModel, *, sites=DEFAULT_BILLM_SITES, formats=DEFAULT_BILLM_FORMATS, block: int = 128,
                max_salient: int = 50, task: bool = True, progress=False, device=None) -> dict:
    """DEF-STUDY-BILLM — BiLLM (with and without its error compensation), sign binarization and ``formats``
    on every matching Linear weight: weight relative MSE, layer-output distortion, task distortion, bits per weight.
    """
    pats = check_patterns("--sites", sites)
    fmts = _check_formats("--formats", formats)
    block = _check_block("--block", block)
    max_salient = _check_max_salient("--max-salient", max_salient)
    timing = {}
    t0 = time.perf_counter()
    chosen = linear_weight_sites(mm, pats)
    runner = layer_runner(mm, chosen, device)
    timing["baseline"] = time.perf_counter() - t0
    steps = Steps("billm", len(chosen), progress)
    layers, errors = [], []
    t0 = time.perf_counter()
    for site in chosen:
        try:
            w = runner.site_tensor(site).cpu().numpy().astype(np.float64)
            x = layer_inputs(runner, site)
            h = layer_hessian(x)
            methods = {}
            tb = time.perf_counter()
            qb, counts = billm_binarize(w, h, block=block, max_salient=max_salient)
            bits = billm_bits(counts)
            methods["billm"] = (qb, bits["stored"], {"bits_signs": bits["signs"], "bits_entropy_coded": bits["entropy_coded"],
                                                     "salient_columns": counts["salient_columns"],
                                                     "sparse_share": counts["sparse_weights"] / max(1, w.size - counts["salient_weights"]),
                                                     "seconds": time.perf_counter() - tb})
            qn, cn = billm_binarize(w, h, block=block, max_salient=max_salient, compensate=False)
            methods["billm_no_compensation"] = (qn, billm_bits(cn)["stored"], {})
            methods["sign"] = (sign_binarize(w), 1 + SCALE_BITS / w.shape[1], {})
            for name in fmts:
                f = site_format(name)
                eff = f.effective_bits(w.shape, True)
                if f.block is None and f.group is None:
                    eff += 32 / w.shape[1]  # the float32 per-row scale, counted
                methods[f.name] = (f.quantize_dequantize(w.astype(np.float32), per_channel=True).astype(np.float64), eff, {})
            wn = float(np.sum(w**2))
            row = {"site": site.name, "shape": list(w.shape), "methods": {}}
            for name, (qw, b, extra) in methods.items():
                r = {"bits_per_weight": float(b), "weight_rel_mse": float(np.sum((qw - w) ** 2)) / wn,
                     "output_rel_mse": relative_output_error(x, w, qw), **extra}
                if task:
                    r["task"] = task_distortion(runner, site, qw)
                row["methods"][name] = r
            layers.append(row)
        except (InvalidParameterError, ValueError, RuntimeError, np.linalg.LinAlgError) as exc:
            errors.append({"what": site.name, "error": f"{type(exc).__name__}: {exc}"})
        steps.step(site.name)
    timing["layers"] = time.perf_counter() - t0
    doc = {"study": "billm", "spec": "DEF-STUDY-BILLM", "model": mm.description,
           "settings": {"sites": list(pats), "formats": list(fmts), "block": block, "max_salient": max_salient,
                        "task": bool(task), "scale_bits": SCALE_BITS, "distortion": mm.distortion},
           "results": {"layers": layers}, "timing": timing, "errors": errors}
    doc["claims"] = _claims(doc)
    return doc


def _claims(doc) -> list:
    layers = doc["results"]["layers"]
    if not layers:
        return []

    def col(method, key):
        return [r["methods"][method][key] for r in layers if method in r["methods"]]
    bb, bs = col("billm", "weight_rel_mse"), col("sign", "weight_rel_mse")
    ob, os_ = col("billm", "output_rel_mse"), col("sign", "output_rel_mse")
    bits, signs = col("billm", "bits_per_weight"), col("billm", "bits_signs")
    gain = [s / b for s, b in zip(os_, ob) if b > 0]
    rows = [claim_row(
        "C-002-9.2-4",
        f"{len(layers)} layers: BiLLM weight rel. MSE {min(bb):.3f}…{max(bb):.3f} vs sign {min(bs):.3f}…{max(bs):.3f}; "
        f"layer-output distortion {min(gain):.2f}…{max(gain):.2f}× lower than sign's; bits/weight {min(signs):.2f}…{max(signs):.2f} "
        f"counting signs only (the paper's figure) but {min(bits):.2f}…{max(bits):.2f} with bitmap, group flags and fp16 scales",
        "mixed")]
    first = layers[0]["methods"]
    if "task" in first["billm"] and "int4" in first:
        t4 = col("int4", "task")
        naive = ["sign"] + [m for m in ("int2",) if m in first]
        worst = {m: [t / f for t, f in zip(col(m, "task"), t4) if f > 0] for m in naive}
        tb = [b / f for b, f in zip(col("billm", "task"), t4) if f > 0]
        same = ""
        if "int3" in first:
            t3 = [b / f for b, f in zip(col("billm", "task"), col("int3", "task")) if f > 0]
            same = f"; at its ≈3 stored bits BiLLM's task distortion is {min(t3):.2f}…{max(t3):.2f}× int3's"
        rows.append(claim_row(
            "C-002-9.1-1",
            f"one layer at a time on {len(layers)} layers, task distortion over int4's: "
            + ", ".join(f"{m} {min(v):.0f}…{max(v):.0f}×" for m, v in worst.items())
            + f", BiLLM {min(tb):.1f}…{max(tb):.1f}×{same}",
            "supported" if all(min(v) > 10 for v in worst.values()) else "mixed"))
    return rows


def billm_lines(doc: dict) -> list[str]:
    """DEF-STUDY-BILLM — per layer and method: bits per weight, weight and layer-output relative MSE, task distortion."""
    out = [f"{'site':44} {'method':22} {'bits/w':>7} {'W rel MSE':>10} {'out rel MSE':>11} {'task':>9}"]
    for row in doc["results"]["layers"]:
        for name, r in row["methods"].items():
            out.append(f"{row['site'][-44:]:44} {name:22} {r['bits_per_weight']:7.3f} {r['weight_rel_mse']:10.4f} "
                       f"{r['output_rel_mse']:11.4f} {r.get('task', math.nan):9.2e}")
        b = row["methods"]["billm"]
        out.append(f"{'':44} BiLLM: {b['salient_columns']} salient columns, sparse share {b['sparse_share']:.3f}, signs only "
                   f"{b['bits_signs']:.3f} b/w, flags entropy-coded {b['bits_entropy_coded']:.3f} b/w")
    return out + verdict_lines(doc)


def billm_plots(doc: dict, out_dir) -> list[Path]:
    """DEF-STUDY-BILLM — one figure: layer-output distortion against bits per weight, one point per layer and method."""
    layers = doc["results"]["layers"]
    if not layers:
        return []
    plt = require_matplotlib()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name in layers[0]["methods"]:
        pts = [(r["methods"][name]["bits_per_weight"], r["methods"][name]["output_rel_mse"]) for r in layers if name in r["methods"]]
        ax.scatter(*zip(*pts), label=name, s=18)
    ax.set_xlabel("bits per weight (scales, bitmaps and flags counted)")
    ax.set_ylabel("layer-output relative MSE")
    ax.set_yscale("log")
    ax.set_title("BiLLM vs sign binarization vs 4-bit: distortion per bit")
    ax.legend(fontsize=7)
    return [save_figure(plt, fig, out_dir, "billm.png")]


BILLM_STUDY = Study(
    name="billm",
    summary="BiLLM residual binarization vs sign, int4, NF4: distortion and honestly counted bits (seed 002)",
    spec="DEF-STUDY-BILLM",
    run=billm_study,
    lines=billm_lines,
    plots=billm_plots,
    claims=("C-002-9.2-4", "C-002-9.1-1"),
    options=(
        Option("sites", "strs", DEFAULT_BILLM_SITES, "glob patterns of Linear weight sites", check_patterns),
        Option("formats", "strs", DEFAULT_BILLM_FORMATS, "formats compared (per-channel int, NF4 blocks, …)", _check_formats),
        Option("block", "int", 128, "BiLLM block width (input columns)", _check_block),
        Option("max_salient", "int", 50, "most salient columns searched per block", _check_max_salient),
    ),
)
