"""DEF-STOCHASTIC-ROUNDING, DEF-STUDY-ROUNDING — stochastic vs round-to-nearest rounding on real layers, and
whether widening a layer moves its quantization noise into the next layer's null space (seed 002 §9.2).

Both roundings use the intB per-channel grid of natprec.model (DEF-SITE-QUANTIZE): step
Δ_r = fl32(absmax_r / (2^(B−1) − 1)) per output row r.  Round-to-nearest is
``site_format("intB").quantize_dequantize``; stochastic rounding takes y = fl32(w/Δ), rounds up
with probability p = y − ⌊y⌋ and down otherwise.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np

from natprec.model.deps import require_matplotlib, require_torch
from natprec.model.quantize import site_format
from natprec.model.runner import MeasuredModel
from natprec.model.sites import Site
from natprec.reference.errors import InvalidParameterError

from .registry import Option, Steps, Study, claim_row
from .weightlayers import (
    check_bits,
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

__all__ = ["grid_step", "stochastic_round", "rounding_errors", "expansion_noise", "rounding_study", "rounding_lines",
           "rounding_plots", "ROUNDING_STUDY", "DEFAULT_ROUNDING_SITES", "DEFAULT_EXPANSION"]

DEFAULT_ROUNDING_SITES = ("encoder.layer.*",)
#: The first layer of the expanded pair (its block's output.dense is the second); "auto" falls back to the first
#: consecutive pair of Linear layers whose widths match.
DEFAULT_EXPANSION = "auto"
_F32 = np.float32


def grid_step(w: np.ndarray, bits: int) -> np.ndarray:
    """DEF-STOCHASTIC-ROUNDING — Δ per row: fl32(absmax_r / (2^(B−1) − 1)), 1 for an all-zero row (the intB grid)."""
    w2 = np.asarray(w, dtype=_F32).reshape(np.shape(w)[0], -1)
    amax = np.max(np.abs(w2), axis=1, keepdims=True)
    s = np.divide(amax, _F32((1 << (bits - 1)) - 1), dtype=_F32)
    return np.where(s > 0, s, _F32(1.0)).astype(_F32)


def stochastic_round(w: np.ndarray, bits: int, rng: np.random.Generator, draws: int = 1):
    """DEF-STOCHASTIC-ROUNDING — ``draws`` stochastic roundings of ``w`` (2-D) on the intB per-row grid.

    Returns (ŵ of shape (draws, *w.shape) float32, Δ per row (rows, 1), p = y − ⌊y⌋ float64): element
    (r, i) rounds up to (⌊y⌋ + 1)Δ_r with probability p, so E[ŵ] = fl32(w/Δ)·Δ and
    E[(ŵ − w)²] = p(1 − p)Δ² up to the float32 rounding of y.
    """
    w = np.asarray(w, dtype=_F32)
    if w.ndim != 2:
        raise InvalidParameterError(f"stochastic rounding takes a 2-D weight; got shape {w.shape}", value=w.shape)
    if not np.isfinite(w).all():
        raise InvalidParameterError("stochastic rounding: non-finite weight", value=float(w[~np.isfinite(w)][0]))
    s = grid_step(w, bits)
    y = np.divide(w, s, dtype=_F32).astype(np.float64)
    lo = np.floor(y)
    p = y - lo
    up = rng.random((draws, *w.shape)) < p
    return np.multiply((lo + up).astype(_F32), s, dtype=_F32), s, p


def rounding_errors(w: np.ndarray, bits: int, *, draws: int = 8, seed: int = 0) -> dict:
    """DEF-STOCHASTIC-ROUNDING — RTN and stochastic rounding errors of ``w`` at intB against their bounds.

    RTN: max |e|/(Δ/2) (≤ 1), MSE/(Δ²/12) and MSE/(Δ²/4) (means of e²/Δ² over the elements). Stochastic
    (``draws`` seeded draws): the bias z-score z = Σ ē / √(Σ p(1−p)Δ²/draws) (N(0, 1) when unbiased), the
    measured mean e² over the predicted Σ p(1−p)Δ² (→ 1), and its ratio to RTN's MSE.
    """
    w = np.asarray(w, dtype=_F32)
    w2 = w.reshape(w.shape[0], -1)
    s = grid_step(w2, bits).astype(np.float64)
    e_rtn = site_format(f"int{bits}").quantize_dequantize(w2, per_channel=True).astype(np.float64) - w2
    rel = e_rtn / s
    wq, _, p = stochastic_round(w2, bits, np.random.default_rng(seed), draws)
    e_sr = wq.astype(np.float64) - w2[None]
    var = p * (1 - p) * s**2
    mean_e = e_sr.mean(axis=0)
    sd = math.sqrt(float(var.sum()) / draws)
    pred = float(var.mean())
    mse_sr = float((e_sr**2).mean())
    mse_rtn = float((e_rtn**2).mean())
    return {
        "bits": bits,
        "elements": int(w2.size),
        "rtn_max_over_half_step": float(np.max(np.abs(rel)) * 2),
        "rtn_mse_over_step2_12": float((rel**2).mean() * 12),
        "rtn_mse_over_step2_4": float((rel**2).mean() * 4),
        "rtn_mse": mse_rtn,
        "sr_draws": draws,
        "sr_bias_z": float(mean_e.sum() / sd) if sd > 0 else 0.0,
        "sr_mean_error_over_step": float((mean_e / s).mean()),
        "sr_mse": mse_sr,
        "sr_mse_over_predicted": mse_sr / pred if pred > 0 else None,
        "sr_max_p1p": float((p * (1 - p)).max()),
        "sr_mse_over_step2_4": float(((e_sr / s) ** 2).mean() * 4),
        "sr_over_rtn_mse": mse_sr / mse_rtn if mse_rtn > 0 else None,
    }


def _orth_rows(w2: np.ndarray) -> np.ndarray:
    """An orthonormal basis (columns) of the row space of ``w2`` (d_out × h), rank from the SVD at float64 tolerance."""
    u, sv, vt = np.linalg.svd(w2, full_matrices=False)
    r = int(np.sum(sv > sv.max() * max(w2.shape) * np.finfo(np.float64).eps)) if sv.size and sv.max() > 0 else 0
    return vt[:r].T


def expansion_noise(x: np.ndarray, w1: np.ndarray, b1, w2: np.ndarray, act, *, bits: int = 4, copies: int = 2,
                    draws: int = 8, seed: int = 0) -> dict:
    """DEF-STUDY-ROUNDING — where layer 1's quantization noise goes, before and after widening it ``copies``-fold.

    Layer 1: a = act(X W1ᵀ + b1), X the calibration inputs; layer 2 reads a through W2 (d_out × h). The noise
    is δa = act(X Ŵ1ᵀ + b1) − a. Widening: every hidden unit is repeated ``copies`` times and W2' = [W2/m … W2/m]
    (the same function). Per rounding (rtn, sr): ``null_fraction`` = the share of ‖δa‖² in the null space of
    W2 (and of W2' after widening), ``isotropic`` = 1 − rank/h, the share of a random direction; ``delivered`` =
    ‖δa W2ᵀ‖²_F (what reaches layer 2's output) and ``delivered_ratio`` = widened / original. SR uses
    ⌊draws/copies⌋ trials of ``copies`` independent draws each; the original's figures are the means over all those
    draws, each alone. ``zero_gain``: the
    original with h more units whose outgoing weights are zero (their noise lies in the null space by construction).
    ``act``: a function on float64 torch tensors.
    """
    torch = require_torch()
    x = np.asarray(x, np.float64)
    w1 = np.asarray(w1, np.float32)
    w2 = np.asarray(w2, np.float64)
    if w1.shape[0] != w2.shape[1] or x.shape[1] != w1.shape[1]:
        raise InvalidParameterError(f"expansion: shapes X {x.shape}, W1 {w1.shape}, W2 {w2.shape} do not chain", value=w2.shape)
    b = np.zeros(w1.shape[0]) if b1 is None else np.asarray(b1, np.float64)
    h = w1.shape[0]

    def layer1(wq):
        return act(torch.from_numpy(x @ np.asarray(wq, np.float64).T + b)).numpy()

    a = layer1(w1)
    q = _orth_rows(w2)
    rank = q.shape[1]
    rng = np.random.default_rng(seed)
    out = {"bits": bits, "copies": copies, "hidden": h, "rank_w2": rank, "isotropic": 1 - rank / h,
           "isotropic_widened": 1 - rank / (copies * h)}
    groups = max(1, draws // copies)
    for method in ("rtn", "sr"):
        if method == "rtn":  # deterministic: every copy rounds alike, one group says it all
            wq = [site_format(f"int{bits}").quantize_dequantize(w1, per_channel=True)] * copies
            sets = [wq]
        else:
            drawn = list(stochastic_round(w1, bits, rng, groups * copies)[0])
            sets = [drawn[g * copies:(g + 1) * copies] for g in range(groups)]
        tot = in_row = delivered = tot_w = in_row_w = delivered_w = 0.0
        for wq in sets:
            da = [layer1(v) - a for v in wq]
            # The original layer: each copy's rounding alone; the widened one: all copies, outgoing weights W2/m.
            tot += sum(float(np.sum(d**2)) for d in da) / copies
            in_row += sum(float(np.sum((d @ q) ** 2)) for d in da) / copies
            delivered += sum(float(np.sum((d @ w2.T) ** 2)) for d in da) / copies
            s = sum(da)
            tot_w += float(sum(np.sum(d**2) for d in da))
            in_row_w += float(np.sum((s @ q) ** 2)) / copies
            delivered_w += float(np.sum((s @ w2.T / copies) ** 2))
        out[method] = {
            "trials": len(sets),
            "noise": tot / len(sets),
            "null_fraction": 1 - in_row / tot if tot > 0 else None,
            "delivered": delivered / len(sets),
            "null_fraction_widened": 1 - in_row_w / tot_w if tot_w > 0 else None,
            "delivered_widened": delivered_w / len(sets),
            "delivered_ratio": delivered_w / delivered if delivered > 0 else None,
            # zero-gain units: as many again, noise of the same size, outgoing weights 0
            "null_fraction_zero_gain": 1 - in_row / (2 * tot) if tot > 0 else None,
            "delivered_ratio_zero_gain": 1.0,
        }
    return out


def _check_draws(flag, v):
    return check_positive_int(flag, v, low=2, high=1000)


def _check_copies(flag, v):
    return check_positive_int(flag, v, low=2, high=16)


def _check_max_rows(flag, v):
    return check_positive_int(flag, v, low=1)


def _expansion_pair(mm: MeasuredModel, spec: str):
    """(first Linear path, second Linear path, activation) of the widened pair; None when the model has none."""
    torch = require_torch()
    mods = dict(mm.model.named_modules())
    lin = [n for n, m in mods.items() if isinstance(m, torch.nn.Linear)]
    if spec != "auto":
        first = spec[: -len(".weight")] if spec.endswith(".weight") else spec
        if first not in lin:
            raise InvalidParameterError(f"--expansion: {spec!r} is not a Linear layer of the model", value=spec)
        cands = [first]
    else:
        cands = [n for n in lin if n.endswith("intermediate.dense")] + lin
    for first in cands:
        parent_name = first.rsplit(".", 1)[0] if "." in first else ""
        parent = mods[parent_name]
        block = parent_name.rsplit(".", 1)[0] if parent_name.endswith("intermediate") else None
        if block is not None and f"{block}.output.dense" in mods and hasattr(parent, "intermediate_act_fn"):
            return first, f"{block}.output.dense", parent.intermediate_act_fn
        if isinstance(parent, torch.nn.Sequential):
            kids = list(parent.named_children())
            i = [k for k, _ in kids].index(first.rsplit(".", 1)[-1])
            act = torch.nn.Identity()
            for _, m in kids[i + 1:]:
                if isinstance(m, torch.nn.Linear):
                    second = f"{parent_name}.{_}" if parent_name else _
                    if m.in_features == mods[first].out_features:
                        return first, second, act
                    break
                if not any(True for _p in m.parameters()):
                    act = m
    if spec != "auto":
        raise InvalidParameterError(f"--expansion: no Linear layer reads {spec!r}'s output directly", value=spec)
    return None


def rounding_study(mm: MeasuredModel, *, sites=DEFAULT_ROUNDING_SITES, bits=(4, 8), draws: int = 8, seed: int = 0,
                   task: bool = True, expansion: str = DEFAULT_EXPANSION, copies: int = 2, max_rows: int = 2048,
                   progress=False, device=None) -> dict:
    """DEF-STUDY-ROUNDING — RTN vs stochastic rounding of every matching Linear weight, and the widening test.

    Per layer and B in ``bits``: :func:`rounding_errors`, the layer's output distortion ‖X(Ŵ − W)ᵀ‖²/‖XWᵀ‖² on
    (at most ``max_rows``) calibration inputs for RTN, one stochastic draw and the mean of ``draws`` draws, and
    (``task``) the model's task distortion for RTN and one stochastic draw. Then :func:`expansion_noise` on the
    pair ``expansion`` (``"auto"``: the first FFN block, else the first consecutive Linear pair).
    """
    pats = check_patterns("--sites", sites)
    bs = check_bits("--bits", bits)
    draws = _check_draws("--draws", draws)
    copies = _check_copies("--copies", copies)
    max_rows = _check_max_rows("--max-rows", max_rows)
    seed = check_positive_int("--seed", seed, low=0)
    if not isinstance(expansion, str) or not expansion.strip():
        raise InvalidParameterError(f"--expansion: a Linear layer name, 'auto' or 'none'; got {expansion!r}", value=expansion)
    expansion = expansion.strip()
    pair = None if expansion == "none" else _expansion_pair(mm, expansion)  # a bad name fails before any work
    timing = {}
    t0 = time.perf_counter()
    chosen = linear_weight_sites(mm, pats)
    runner = layer_runner(mm, chosen, device)
    timing["baseline"] = time.perf_counter() - t0
    steps = Steps("rounding", len(chosen) + 1, progress)
    layers, errors = [], []
    t0 = time.perf_counter()
    for site in chosen:
        try:
            w = runner.site_tensor(site).cpu().numpy().astype(np.float32)
            x = layer_inputs(runner, site, max_rows)
            row = {"site": site.name, "shape": list(w.shape), "bits": {}}
            for b in bs:
                r = rounding_errors(w, b, draws=draws, seed=seed)
                rtn = site_format(f"int{b}").quantize_dequantize(w, per_channel=True)
                sr, _, _ = stochastic_round(w, b, np.random.default_rng(seed + 1), draws)
                r["out_rtn"] = relative_output_error(x, w, rtn)
                r["out_sr"] = relative_output_error(x, w, sr[0])
                r["out_sr_mean"] = relative_output_error(x, w, sr.astype(np.float64).mean(axis=0))
                if task:
                    r["task_rtn"] = task_distortion(runner, site, rtn)
                    r["task_sr"] = task_distortion(runner, site, sr[0])
                row["bits"][str(b)] = r
            layers.append(row)
        except (InvalidParameterError, ValueError, RuntimeError, np.linalg.LinAlgError) as exc:
            errors.append({"what": site.name, "error": f"{type(exc).__name__}: {exc}"})
        steps.step(site.name)
    timing["layers"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    exp = None
    if expansion != "none":
        try:
            if pair is None:
                errors.append({"what": "expansion", "error": "no pair of consecutive Linear layers with matching widths"})
            else:
                first, second, act = pair
                mods = dict(mm.model.named_modules())
                f, g = mods[first], mods[second]
                s1 = Site(f"{first}.weight", "weight", first, "weight")
                r1 = runner if any(s.name == s1.name for s in chosen) else layer_runner(mm, [s1])
                x = layer_inputs(r1, s1, max_rows)
                torch = runner.torch

                def act64(t, act=act):
                    with torch.no_grad():
                        return act(t)
                exp = expansion_noise(x, f.weight.detach().cpu().numpy(), None if f.bias is None else f.bias.detach().cpu().numpy(),
                                      g.weight.detach().cpu().numpy(), act64, bits=min(bs), copies=copies, draws=draws,
                                      seed=seed)
                exp.update({"first": first, "second": second, "activation": type(act).__name__})
        except (InvalidParameterError, ValueError, RuntimeError, np.linalg.LinAlgError) as exc:
            errors.append({"what": "expansion", "error": f"{type(exc).__name__}: {exc}"})
    steps.step("expansion")
    timing["expansion"] = time.perf_counter() - t0
    doc = {"study": "rounding", "spec": "DEF-STUDY-ROUNDING", "model": mm.description,
           "settings": {"sites": list(pats), "bits": list(bs), "draws": draws, "seed": seed, "task": bool(task),
                        "expansion": expansion, "copies": copies, "max_rows": max_rows, "distortion": mm.distortion},
           "results": {"layers": layers, "expansion": exp}, "timing": timing, "errors": errors}
    doc["claims"] = _claims(doc)
    return doc


def _claims(doc) -> list:
    layers = doc["results"]["layers"]
    rows = []
    if layers:
        bs = doc["settings"]["bits"]
        worst = max(r["bits"][str(b)]["rtn_max_over_half_step"] for r in layers for b in bs)
        ratio = [r["bits"][str(b)]["rtn_mse_over_step2_12"] for r in layers for b in bs]
        zs = [r["bits"][str(b)]["sr_bias_z"] for r in layers for b in bs]
        pred = [r["bits"][str(b)]["sr_mse_over_predicted"] for r in layers for b in bs]
        srr = [r["bits"][str(b)]["sr_over_rtn_mse"] for r in layers for b in bs]
        out = [r["bits"][str(b)]["out_sr"] / r["bits"][str(b)]["out_rtn"] for r in layers for b in bs if r["bits"][str(b)]["out_rtn"] > 0]
        holds = worst <= 1 + 1e-5 and max(abs(z) for z in zs) < 5
        rows.append(claim_row(
            "C-002-9.2-2",
            f"{len(layers)} layers × int{'/'.join(map(str, bs))}: RTN max|e|/(Δ/2) ≤ {worst:.6f}, MSE/(Δ²/12) "
            f"{min(ratio):.3f}…{max(ratio):.3f}; stochastic bias z in [{min(zs):.2f}, {max(zs):.2f}], E[e²]/Σp(1−p)Δ² "
            f"{min(pred):.3f}…{max(pred):.3f}, MSE {min(srr):.2f}…{max(srr):.2f}× RTN's, layer-output MSE "
            f"{min(out):.2f}…{max(out):.2f}× RTN's", "checked" if holds else "refuted"))
    exp = doc["results"]["expansion"]
    if exp:
        r, s = exp["rtn"], exp["sr"]
        rows.append(claim_row(
            "C-002-9.2-3",
            f"{exp['first']} → {exp['second']} at int{exp['bits']}, ×{exp['copies']} units: null-space share of the noise "
            f"RTN {r['null_fraction']:.3f} → {r['null_fraction_widened']:.3f}, SR {s['null_fraction']:.3f} → "
            f"{s['null_fraction_widened']:.3f} (isotropic {exp['isotropic']:.3f} → {exp['isotropic_widened']:.3f}); noise "
            f"reaching the next layer ×{r['delivered_ratio']:.3f} (RTN: duplicated rows round alike) vs ×{s['delivered_ratio']:.3f} "
            f"(SR: independent errors average; widened SR delivers {s['delivered_widened'] / r['delivered']:.2f}× unwidened RTN); "
            f"zero-gain units raise the share to {r['null_fraction_zero_gain']:.3f} and deliver ×1",
            "mixed"))
    return rows


def rounding_lines(doc: dict) -> list[str]:
    """DEF-STUDY-ROUNDING — per layer and B: RTN and SR against their bounds, output and task distortion; the widening test."""
    out = [f"{'site':44} {'B':>2} {'RTN max|e|/(Δ/2)':>16} {'RTN MSE/(Δ²/12)':>15} {'SR bias z':>9} {'SR E[e²]/pred':>13} "
           f"{'SR/RTN MSE':>10} {'out RTN':>9} {'out SR':>9} {'out SR̄':>9} {'task RTN':>9} {'task SR':>9}"]
    for row in doc["results"]["layers"]:
        for b, r in row["bits"].items():
            out.append(f"{row['site'][-44:]:44} {b:>2} {r['rtn_max_over_half_step']:16.6f} {r['rtn_mse_over_step2_12']:15.4f} "
                       f"{r['sr_bias_z']:9.2f} {r['sr_mse_over_predicted']:13.4f} {r['sr_over_rtn_mse']:10.3f} "
                       f"{r['out_rtn']:9.2e} {r['out_sr']:9.2e} {r['out_sr_mean']:9.2e} "
                       f"{r.get('task_rtn', math.nan):9.2e} {r.get('task_sr', math.nan):9.2e}")
    exp = doc["results"]["expansion"]
    if exp:
        out += ["", f"widening {exp['first']} ×{exp['copies']} (→ {exp['second']}, {exp['activation']}, int{exp['bits']}); "
                f"rank W2 {exp['rank_w2']} of {exp['hidden']}: isotropic null share {exp['isotropic']:.3f} → {exp['isotropic_widened']:.3f}"]
        for m in ("rtn", "sr"):
            r = exp[m]
            out.append(f"  {m.upper():3}: null share {r['null_fraction']:.3f} → {r['null_fraction_widened']:.3f} (zero-gain units "
                       f"{r['null_fraction_zero_gain']:.3f}); noise reaching layer 2 ×{r['delivered_ratio']:.3f}")
    return out + verdict_lines(doc)


def rounding_plots(doc: dict, out_dir) -> list[Path]:
    """DEF-STUDY-ROUNDING — one figure: stochastic vs RTN error per layer (weight MSE and layer-output distortion)."""
    layers = doc["results"]["layers"]
    if not layers:
        return []
    plt = require_matplotlib()
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for b in doc["settings"]["bits"]:
        w = [r["bits"][str(b)]["sr_over_rtn_mse"] for r in layers]
        o = [r["bits"][str(b)]["out_sr"] / r["bits"][str(b)]["out_rtn"] for r in layers]
        ax.plot(range(len(layers)), w, "o-", label=f"int{b}: weight MSE, SR / RTN")
        ax.plot(range(len(layers)), o, "s--", label=f"int{b}: layer-output distortion, SR / RTN")
    ax.axhline(2.0, color="grey", lw=0.8, label="2 (uniform fractional parts: Δ²/6 vs Δ²/12)")
    ax.set_xlabel("layer (in model order)")
    ax.set_ylabel("stochastic / round-to-nearest")
    ax.set_title("How much more error does stochastic rounding add than round-to-nearest?")
    ax.legend(fontsize=7)
    return [save_figure(plt, fig, out_dir, "rounding.png")]


ROUNDING_STUDY = Study(
    name="rounding",
    summary="stochastic vs round-to-nearest rounding against their bounds; does widening move noise into a null space? (seed 002)",
    spec="DEF-STUDY-ROUNDING",
    run=rounding_study,
    lines=rounding_lines,
    plots=rounding_plots,
    claims=("C-002-9.2-2", "C-002-9.2-3"),
    options=(
        Option("sites", "strs", DEFAULT_ROUNDING_SITES, "glob patterns of Linear weight sites", check_patterns),
        Option("bits", "ints", (4, 8), "integer bit-widths of the per-channel grid", check_bits),
        Option("draws", "int", 8, "stochastic-rounding draws per layer", _check_draws),
        Option("seed", "int", 0, "seed of the stochastic draws", lambda f, v: check_positive_int(f, v, low=0)),
        Option("copies", "int", 2, "widening factor of the expansion test", _check_copies),
        Option("expansion", "str", DEFAULT_EXPANSION, "first Linear layer of the widened pair: a name, auto or none"),
        Option("max_rows", "int", 2048, "calibration input rows per layer for the layer-output distortion", _check_max_rows),
    ),
)
