"""DEF-STUDY-CARRIER — the residual stream as carrier (seed 001 §7): carrier r, added signal a, SNR, noise, precision.

At every residual add of a post-LN BERT-style block (a module with a ``dense`` Linear and a
``LayerNorm``, called as ``block(hidden, input_tensor)`` and computing LayerNorm(dropout(dense(hidden))
+ input_tensor): ``BertSelfOutput`` and ``BertOutput`` in transformers' BERT, MiniLM, RoBERTa, ELECTRA …)
the carrier is r = ``input_tensor`` and the added signal is a = ``dense``'s output (dropout is the
identity in eval mode); their sum is the LayerNorm's input, which is checked to equal r + a.

Measured per add, on the real (non-padding) positions of the calibration batches: the powers of r,
a and r + a, the gain 10·log10(‖r+a‖²/‖a‖²) (THM-CARRIER-GAIN), the seed's protocol — quantize a
only, r only, both, at the int family per tensor (DEF-SITE-QUANTIZE), linear SNRs S/N of the sum, the
noises' correlation with the signal and with each other and whether they add in quadrature — and the
int precision each of r and a needs for the model's task distortion (b*(ε), DEF-OPERATIONAL-PRECISION-SITE,
with only that tensor at that add quantized).
"""

from __future__ import annotations

import inspect
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from natprec.model.deps import require_matplotlib, require_torch
from natprec.model.distortion import per_sample_distortion
from natprec.model.measure import DEFAULT_TOLERANCE, check_tolerance
from natprec.model.quantize import INT_BITS, site_format
from natprec.model.resolution import UniformStep, grid_step, resolution_entropy, resolution_search, search_window, step_index_above
from natprec.model.runner import MeasuredModel, call_model, resolve_device, to_device
from natprec.model.sensitivity import monotone_search
from natprec.reference.errors import InvalidParameterError, NatprecError, NonFiniteInputError

from .registry import Option, Steps, Study, claim_row

__all__ = [
    "ResidualAdd",
    "find_residual_adds",
    "snr_db",
    "carrier_gain_db",
    "check_layers",
    "check_bits",
    "carrier_study",
    "carrier_lines",
    "carrier_plots",
    "CARRIER_STUDY",
    "DEFAULT_TABLE_BITS",
    "SEARCH_BITS",
    "GAIN_THRESHOLD_DB",
    "CORRELATION_THRESHOLD",
    "QUADRATURE_BAND",
]

#: Bit-widths searched for b*_r(ε), b*_a(ε): the int codebooks 2…16 (a carrier may need more than the int family's 8).
SEARCH_BITS = tuple(range(2, 17))
#: The bit-width whose SNRs the table shows (the document has every b of the int family).
DEFAULT_TABLE_BITS = 4
#: The carrier gain that counts as the seed's recovery (C-001-7-1): +27 dB within 7 dB (a factor 5 in power).
GAIN_THRESHOLD_DB = 20.0
#: |Pearson r| below which noise counts as uncorrelated (C-001-7-3).
CORRELATION_THRESHOLD = 0.1
#: N_{A+R}/(N_A + N_R) inside this band counts as adding in quadrature (C-001-7-3).
QUADRATURE_BAND = (0.9, 1.1)
#: |LayerNorm input − (r + a)| allowed, relative to max|r + a| (float32 addition is exact to half an ulp).
_SUM_RTOL = 1e-5


@dataclass(frozen=True)
class ResidualAdd:
    """DEF-STUDY-CARRIER — one residual add: ``block`` computes LayerNorm(dense(h) + r); r is its second positional input."""

    block: str   # module path, e.g. "encoder.layer.0.attention.output"
    layer: str   # the transformer layer it belongs to, e.g. "encoder.layer.0"
    branch: str  # "attention" or "ffn"
    index: int   # the layer's position among the model's layers (0-based)

    @property
    def name(self) -> str:
        return f"{self.layer}/{self.branch}"


def find_residual_adds(model) -> list[ResidualAdd]:
    """DEF-STUDY-CARRIER — the post-LN residual adds of a BERT-style model, in module order.

    A block is a module with a ``dense`` ``torch.nn.Linear`` and a ``LayerNorm`` ``torch.nn.LayerNorm``
    whose ``forward`` takes two inputs (hidden states, the residual).  Its branch is "attention" when
    its parent's name ends in "attention", else "ffn".  No such block → InvalidParameterError naming
    the model's class (the study measures post-LN residual blocks only).
    """
    torch = require_torch()
    found = []
    for name, m in model.named_modules():
        dense, norm = getattr(m, "dense", None), getattr(m, "LayerNorm", None)
        if not (isinstance(dense, torch.nn.Linear) and isinstance(norm, torch.nn.LayerNorm)):
            continue
        try:
            params = [p for p in inspect.signature(m.forward).parameters.values()
                      if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
        except (TypeError, ValueError):
            continue
        if len(params) < 2:
            continue
        parent = name.rpartition(".")[0]
        attention = parent.rpartition(".")[2] == "attention"
        found.append((name, parent.rpartition(".")[0] if attention else parent, "attention" if attention else "ffn"))
    if not found:
        raise InvalidParameterError(
            f"{type(model).__name__}: no post-LN residual block recognised (a module with .dense and .LayerNorm called as "
            "block(hidden, residual), as BERT's SelfOutput/Output); the carrier study measures only those", value=type(model).__name__)
    layers = list(dict.fromkeys(lay for _, lay, _ in found))
    return [ResidualAdd(block, lay, br, layers.index(lay)) for block, lay, br in found]


def snr_db(signal_power: float, noise_power: float) -> float:
    """THM-CARRIER-GAIN — 10·log10(S/N) of powers (linear domain first); +inf for N = 0, −inf for S = 0 < N."""
    s, n = float(signal_power), float(noise_power)
    if not (math.isfinite(s) and math.isfinite(n)) or s < 0 or n < 0:
        raise InvalidParameterError(f"snr_db needs finite powers >= 0; got S={s!r}, N={n!r}", value=(s, n))
    if n == 0:
        return math.inf if s > 0 else math.nan
    return -math.inf if s == 0 else 10.0 * (math.log10(s) - math.log10(n))  # logs apart: no overflow of s/n


def carrier_gain_db(r, a) -> float:
    """THM-CARRIER-GAIN — 10·log10(‖r+a‖²/‖a‖²): SNR of the sum minus SNR of the branch for any noise on a alone."""
    r64, a64 = np.asarray(r, dtype=np.float64), np.asarray(a, dtype=np.float64)
    if r64.shape != a64.shape:
        raise InvalidParameterError(f"carrier_gain_db: r {r64.shape} and a {a64.shape} differ in shape", value=(r64.shape, a64.shape))
    if not (np.all(np.isfinite(r64)) and np.all(np.isfinite(a64))):
        raise NonFiniteInputError("carrier_gain_db: r and a must be finite", value="r, a")
    return snr_db(float(np.sum((r64 + a64) ** 2)), float(np.sum(a64 ** 2)))


def check_layers(flag: str, layers):
    """DEF-STUDY-CARRIER — layer indices: integers ≥ 0, no repeats (InvalidParameterError naming ``flag``)."""
    if layers is None:
        return None
    vals = (layers,) if isinstance(layers, int) else tuple(layers)
    if not vals:
        raise InvalidParameterError(f"{flag}: no value", value=layers)
    for v in vals:
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 0:
            raise InvalidParameterError(f"{flag}: layer indices are integers >= 0; got {v!r}", value=v)
    if len(set(vals)) != len(vals):
        raise InvalidParameterError(f"{flag}: repeated layer in {vals}", value=vals)
    return tuple(int(v) for v in vals)


def check_bits(flag: str, bits):
    """DEF-STUDY-CARRIER — a bit-width of the int family (2…8), else InvalidParameterError naming ``flag``."""
    if isinstance(bits, bool) or not isinstance(bits, (int, np.integer)) or int(bits) not in INT_BITS:
        raise InvalidParameterError(f"{flag} must be one of {INT_BITS[0]}..{INT_BITS[-1]}; got {bits!r}", value=bits)
    return int(bits)


class _Moments:
    """Running sums for Pearson correlations between element arrays (float64)."""

    def __init__(self):
        self.n, self.s = 0, {}

    def add(self, **arrays):
        names = sorted(arrays)
        self.n += next(iter(arrays.values())).size
        for i, p in enumerate(names):
            x = arrays[p]
            self.s[p] = self.s.get(p, 0.0) + float(x.sum())
            self.s[p + p] = self.s.get(p + p, 0.0) + float((x * x).sum())
            for q in names[i + 1:]:
                self.s[p + q] = self.s.get(p + q, 0.0) + float((x * arrays[q]).sum())

    def corr(self, p: str, q: str) -> float | None:
        p, q = sorted((p, q))
        n = self.n
        cov = self.s[p + q] - self.s[p] * self.s[q] / n
        vp, vq = self.s[p + p] - self.s[p] ** 2 / n, self.s[q + q] - self.s[q] ** 2 / n
        return float(cov / math.sqrt(vp * vq)) if vp > 0 and vq > 0 else None


def _quantize(torch, x, fmt):
    """DEF-SITE-QUANTIZE — an activation quantized per tensor (the batch tensor, padding included): a SiteFormat or UniformStep."""
    q = fmt.quantize_dequantize(x.detach().cpu().numpy(), per_channel=False)
    return torch.from_numpy(q).to(x.device)


def _capture(mm: MeasuredModel, adds: list[ResidualAdd]):
    """Float32 pass: reference outputs, and r, a (full batch tensors) and the real-position mask per add and batch."""
    torch = require_torch()
    modules = dict(mm.model.named_modules())
    store = {ad.block: [] for ad in adds}
    refs, masks, errors = [], [], {}
    for b, batch in enumerate(mm.batches):
        cur, hooks = {}, []
        for ad in adds:
            blk = modules[ad.block]

            def pre(m, args, ad=ad):
                if len(args) < 2:
                    errors.setdefault(ad.name, f"{ad.block} is called without the residual as its second positional input")
                else:
                    cur.setdefault(ad.block, {})["r"] = args[1].detach()

            def dense_out(m, args, out, ad=ad):
                cur.setdefault(ad.block, {})["a"] = out.detach()

            def norm_in(m, args, ad=ad):
                cur.setdefault(ad.block, {})["s"] = args[0].detach()
            hooks += [blk.register_forward_pre_hook(pre), blk.dense.register_forward_hook(dense_out),
                      blk.LayerNorm.register_forward_pre_hook(norm_in)]
        try:
            with torch.no_grad():
                refs.append(mm.output_fn(call_model(mm.model, batch), batch).detach().float())
        finally:
            for h in hooks:
                h.remove()
        for ad in adds:
            got = cur.get(ad.block, {})
            if ad.name in errors:
                continue
            if not {"r", "a", "s"} <= set(got):
                errors[ad.name] = f"{ad.block} was not called on batch {b}"
                continue
            r, a, s = got["r"].float(), got["a"].float(), got["s"].float()
            if r.shape != a.shape or s.shape != a.shape or float((s - (r + a)).abs().max()) > _SUM_RTOL * max(float(s.abs().max()), 1e-30):
                errors[ad.name] = f"{ad.block}: its LayerNorm input is not residual + dense output (not a post-LN residual add)"
                continue
            store[ad.block].append((r, a))
        x = next((v["a"] for v in cur.values() if "a" in v), None)
        mask = None
        if mm.token_mask is not None and x is not None:
            mk = mm.token_mask(batch)
            if tuple(mk.shape) == tuple(x.shape[: mk.ndim]):
                mask = mk.bool()
        masks.append(mask)
    return refs, store, masks, errors


def _real(x, mask):
    """Rows of real positions × features, float64 numpy."""
    if mask is not None:
        x = x[mask]
    return x.reshape(-1, x.shape[-1]).detach().cpu().double().numpy()


def _add_measures(torch, pairs, masks, bits) -> dict:
    """Powers, gain, coherence and the seed's protocol (per b) at one add, pooled over batches' real positions."""
    pr = pa = ps = 0.0
    npos = 0
    cos_sum = 0.0
    amax = {"r": 0.0, "a": 0.0}
    mom = {"r": _Moments(), "a": _Moments()}
    for (r, a), mask in zip(pairs, masks, strict=True):
        r2, a2 = _real(r, mask), _real(a, mask)
        s2 = r2 + a2
        pr += float((r2 ** 2).sum())
        pa += float((a2 ** 2).sum())
        ps += float((s2 ** 2).sum())
        nr, na = np.linalg.norm(r2, axis=1), np.linalg.norm(a2, axis=1)
        ok = (nr > 0) & (na > 0)
        cos_sum += float(((r2 * a2).sum(axis=1)[ok] / (nr[ok] * na[ok])).sum())
        npos += r2.shape[0]
        amax["r"], amax["a"] = max(amax["r"], float(np.abs(r2).max())), max(amax["a"], float(np.abs(a2).max()))
        mom["r"].add(x=r2)
        mom["a"].add(x=a2)
    n_el = mom["r"].n
    crest = {k: (math.log2(amax[k] / math.sqrt(mom[k].s["xx"] / n_el - (mom[k].s["x"] / n_el) ** 2))
                 if mom[k].s["xx"] > 0 and amax[k] > 0 else None) for k in ("r", "a")}
    rec = {
        "positions": npos, "features": int(pairs[0][0].shape[-1]),
        "power_r": pr / npos, "power_a": pa / npos, "power_sum": ps / npos,
        "carrier_to_signal_db": snr_db(pr, pa),
        "gain_db": snr_db(ps, pa),
        "mean_cos_r_a": cos_sum / npos,
        "coherence": ps / (pr + pa) if pr + pa > 0 else None,  # 1: orthogonal; > 1 aligned; < 1 opposed
        "crest_r_bits": crest["r"], "crest_a_bits": crest["a"],
        "protocol": {},
    }
    for b in bits:
        fmt = site_format(f"int{b}")
        na_ = nr_ = nar = 0.0
        m = _Moments()
        for (r, a), mask in zip(pairs, masks, strict=True):
            ea = _real(_quantize(torch, a, fmt), mask) - _real(a, mask)
            er = _real(_quantize(torch, r, fmt), mask) - _real(r, mask)
            y = _real(r, mask) + _real(a, mask)
            na_ += float((ea ** 2).sum())
            nr_ += float((er ** 2).sum())
            nar += float(((ea + er) ** 2).sum())
            m.add(y=y, ea=ea, er=er)
        rec["protocol"][str(b)] = {
            "noise_a": na_ / npos, "noise_r": nr_ / npos, "noise_both": nar / npos,
            "snr_branch_a_db": snr_db(pa, na_), "snr_branch_r_db": snr_db(pr, nr_),
            "snr_sum_a_db": snr_db(ps, na_), "snr_sum_r_db": snr_db(ps, nr_), "snr_sum_both_db": snr_db(ps, nar),
            "corr_signal_noise_a": m.corr("y", "ea"), "corr_signal_noise_r": m.corr("y", "er"),
            "corr_noise_a_noise_r": m.corr("ea", "er"),
            "quadrature_ratio": nar / (na_ + nr_) if na_ + nr_ > 0 else None,
        }
    return rec


def _task_distortion(torch, mm, ad: ResidualAdd, which: str, fmt, refs) -> float:
    """Mean task distortion with only ``which`` (r or a) of ``ad`` quantized by ``fmt`` (per batch tensor)."""
    blk = dict(mm.model.named_modules())[ad.block]
    if which == "r":
        h = blk.register_forward_pre_hook(lambda m, args: (args[0], _quantize(torch, args[1], fmt), *args[2:]))
    else:
        h = blk.dense.register_forward_hook(lambda m, args, out: _quantize(torch, out, fmt))
    total, n = 0.0, 0
    try:
        for b, batch in enumerate(mm.batches):
            with torch.no_grad():
                out = mm.output_fn(call_model(mm.model, batch), batch).float()
            if not bool(torch.isfinite(out).all()):
                raise NonFiniteInputError(f"{ad.name}: {which} at {fmt.name}: non-finite model output on batch {b}", value=ad.name)
            total += float(per_sample_distortion(mm.distortion, refs[b], out, loss_fn=mm.loss_fn, batch=batch).sum())
            n += refs[b].shape[0]
    finally:
        h.remove()
    return total / n


def _resolution(torch, mm, ad, which, pairs, masks, refs, tol, b_star, curve) -> dict | None:
    """DEF-SITE-RESOLUTION, DEF-INFORMATION-PRECISION for r or a at one add: Δ(ε), its cells and entropy (None: all zero)."""
    x = np.concatenate([_real(p[0 if which == "r" else 1], m) for p, m in zip(pairs, masks, strict=True)]).astype(np.float32)
    if not np.any(x):
        return None
    window = search_window(x)
    b = b_star if b_star is not None else max(curve)
    start = step_index_above(float(np.max(np.abs(x))) / ((1 << (b - 1)) - 1)) - 1
    if curve[b] > 0:  # as the report's search: from the int-b point, moved as a distortion growing as Δ² would move
        start += math.floor(2 * (math.log2(tol) - math.log2(curve[b])))
    seen: dict[int, float] = {}
    k = resolution_search(lambda j: _task_distortion(torch, mm, ad, which, UniformStep(j), refs), start, window, tol, seen)
    out = {"step_index": k, "step": None if k is None else grid_step(k), "window": list(window),
           "curve": {str(j): seen[j] for j in sorted(seen)},
           "std": float(np.std(x.astype(np.float64)))}
    out.update(resolution_entropy(x, k) if k is not None else
               {"entropy_bits": None, "entropy_bits_mm": None, "cells": None, "cells_bits": None})
    return out


def carrier_study(mm: MeasuredModel, *, layers=None, tolerance: float = DEFAULT_TOLERANCE, table_bits: int = DEFAULT_TABLE_BITS,
                  resolution: bool = False, progress=False, device=None) -> dict:
    """DEF-STUDY-CARRIER — carrier r and added signal a at every residual add of ``layers`` (default all), seed 001 §7.

    ``tolerance``: ε of the task distortion for b*_r(ε), b*_a(ε) (int2…int16, bisection);
    ``table_bits``: the b whose SNRs the table and the verdicts read (the document holds every b);
    ``resolution``: also the uniform step Δ(ε) each of r and a needs and b_H, b*_Δ there (DEF-SITE-RESOLUTION).
    """
    torch = require_torch()
    layers = check_layers("--layers", layers)
    tol = check_tolerance("--tolerance", tolerance)
    table_bits = check_bits("--table-bits", table_bits)
    dev = resolve_device(device)
    mm.model.to(dev)
    mm.model.eval()
    mm.batches = [to_device(b, dev) for b in mm.batches]
    adds = find_residual_adds(mm.model)
    n_layers = max(ad.index for ad in adds) + 1
    if layers is not None:
        bad = [v for v in layers if v >= n_layers]
        if bad:
            raise InvalidParameterError(f"--layers: the model has {n_layers} layers (0..{n_layers - 1}); got {bad[0]}", value=bad[0])
        adds = [ad for ad in adds if ad.index in layers]
    timing = {}
    t0 = time.perf_counter()
    refs, store, masks, cap_errors = _capture(mm, adds)
    timing["capture"] = time.perf_counter() - t0
    errors = [{"what": k, "error": v} for k, v in cap_errors.items()]
    steps = Steps("carrier", len(adds), progress)
    results = []
    t1 = time.perf_counter()
    for ad in adds:
        rec = {"add": ad.name, "block": ad.block, "layer": ad.layer, "index": ad.index, "branch": ad.branch,
               "carrier": "r = the block's second input (" + ("the layer's input" if ad.branch == "attention"
                                                              else "the attention sub-layer's LayerNorm output") + ")",
               "signal": f"a = {ad.block}.dense output"}
        if ad.name in cap_errors:
            rec["error"] = cap_errors[ad.name]
            results.append(rec)
            steps.step(ad.name)
            continue
        try:
            rec.update(_add_measures(torch, store[ad.block], masks, INT_BITS))
            for which in ("r", "a"):
                curve_eval = {}

                def ev(b, which=which, curve_eval=curve_eval):
                    curve_eval[b] = _task_distortion(torch, mm, ad, which, site_format(f"int{b}"), refs)
                    return curve_eval[b]
                b_star, _ = monotone_search(ev, list(SEARCH_BITS), tol)
                rec[f"b_star_{which}"] = b_star
                rec[f"distortion_{which}"] = {str(b): v for b, v in sorted(curve_eval.items())}
                if resolution:
                    rec[f"resolution_{which}"] = _resolution(torch, mm, ad, which, store[ad.block], masks, refs, tol, b_star, curve_eval)
        except NatprecError as exc:
            rec["error"] = str(exc)
            errors.append({"what": ad.name, "error": str(exc)})
        results.append(rec)
        steps.step(ad.name)
    timing["measure"] = time.perf_counter() - t1
    doc = {
        "study": "carrier", "spec": "DEF-STUDY-CARRIER", "model": mm.description,
        "settings": {"layers": list(layers) if layers is not None else None, "tolerance": tol, "table_bits": table_bits,
                     "resolution": bool(resolution), "distortion": mm.distortion,
                     "device": dev, "quantizer": "intB per tensor, per batch tensor (DEF-SITE-QUANTIZE)",
                     "bits": list(INT_BITS), "search_bits": list(SEARCH_BITS)},
        "results": {"adds": results},
        "errors": errors,
        "timing": timing,
    }
    doc["claims"] = _claims(results, table_bits, tol)
    timing["total"] = time.perf_counter() - t0
    return doc


def _span(vals, fmt="{:.1f}") -> str:
    vals = [v for v in vals if v is not None]
    return (fmt.format(min(vals)) + "…" + fmt.format(max(vals))) if vals else "none"


def _information(ok: list[dict]) -> str:
    """With --resolution: how often a holds less information than r at the task's resolution (b_H), and the steps."""
    both = [(r["resolution_r"], r["resolution_a"]) for r in ok if r.get("resolution_r") and r.get("resolution_a")
            and r["resolution_r"]["entropy_bits"] is not None and r["resolution_a"]["entropy_bits"] is not None]
    if not both:
        return ""
    less = sum(a["entropy_bits"] < r["entropy_bits"] for r, a in both)
    same = sum(a["step_index"] == r["step_index"] for r, a in both)
    h_a, h_r = _span([a["entropy_bits"] for _, a in both], "{:.2f}"), _span([r["entropy_bits"] for r, _ in both], "{:.2f}")
    return (f"; at the step the task needs (same step for r and a at {same} of {len(both)} adds) b_H of a < b_H of r at {less} of "
            f"{len(both)} (a {h_a}, r {h_r} bits)")


def _claims(results: list[dict], bits: int, tol: float) -> list[dict]:
    ok = [r for r in results if "error" not in r]
    att = [r for r in ok if r["branch"] == "attention"]
    rows = []
    if not ok:
        return rows
    gains = [r["gain_db"] for r in att]
    p = [r["protocol"][str(bits)] for r in att]
    if att:
        big = [r["add"] for r in att if r["gain_db"] >= GAIN_THRESHOLD_DB]
        verdict = "supported" if len(big) == len(att) else ("refuted" if not big else "mixed")
        rows.append(claim_row("C-001-7-1", (
            f"gain 10·log10(‖r+a‖²/‖a‖²) at the {len(att)} attention adds {_span(gains)} dB (seed: +27 dB, from 1.2 to 28 dB); "
            f"at int{bits} per tensor the attention branch's own SNR {_span([x['snr_branch_a_db'] for x in p])} dB, the sum's "
            f"{_span([x['snr_sum_a_db'] for x in p])} dB; adds with a gain ≥ {GAIN_THRESHOLD_DB:g} dB: {len(big)}"), verdict))

    def num(b):
        return 17 if b is None else b

    def show(b):
        return ">16" if b is None else str(b)
    if att:
        lower = [r for r in att if num(r["b_star_a"]) < num(r["b_star_r"])]
        higher = [r for r in att if num(r["b_star_a"]) > num(r["b_star_r"])]
        ffn = [r for r in ok if r["branch"] != "attention"]
        lower_all = [r for r in ok if num(r["b_star_a"]) < num(r["b_star_r"])]
        v2 = "supported" if len(lower_all) == len(ok) else ("refuted" if not lower_all else "mixed")
        rows.append(claim_row("C-001-7-2", (
            f"int b*(ε = {tol:g}) of the added signal a / of the carrier r at the attention adds: "
            + ", ".join(f"{show(r['b_star_a'])}/{show(r['b_star_r'])}" for r in att)
            + f" (a needs fewer bits at {len(lower)} of {len(att)}, more at {len(higher)}); at the feed-forward adds: "
            + (", ".join(f"{show(r['b_star_a'])}/{show(r['b_star_r'])}" for r in ffn) or "none measured") + _information(ok)), v2))
    allp = [r["protocol"][str(bits)] for r in ok]
    cs = [abs(x[k]) for x in allp for k in ("corr_signal_noise_a", "corr_signal_noise_r") if x[k] is not None]
    qr = [x["quadrature_ratio"] for x in allp if x["quadrature_ratio"] is not None]
    cn = [abs(x["corr_noise_a_noise_r"]) for x in allp if x["corr_noise_a_noise_r"] is not None]
    unc = [max(abs(x[k]) for k in ("corr_signal_noise_a", "corr_signal_noise_r", "corr_noise_a_noise_r") if x[k] is not None)
           < CORRELATION_THRESHOLD for x in allp]
    quad = [x["quadrature_ratio"] is not None and QUADRATURE_BAND[0] <= x["quadrature_ratio"] <= QUADRATURE_BAND[1] for x in allp]
    v3 = "supported" if all(unc) and all(quad) else ("refuted" if not any(unc) and not any(quad) else "mixed")
    rows.append(claim_row("C-001-7-3", (
        f"at int{bits}: |corr(y_fp, noise)| up to {max(cs, default=float('nan')):.3f} (below {CORRELATION_THRESHOLD:g}, with "
        f"|corr(noise_a, noise_r)|, at {sum(unc)} of {len(allp)} adds), N_(A+R)/(N_A+N_R) {_span(qr, '{:.3f}')} (within "
        f"{QUADRATURE_BAND[0]:g}–{QUADRATURE_BAND[1]:g} at {sum(quad)}); |corr(noise_a, noise_r)| up to {max(cn, default=float('nan')):.3f}; "
        f"signal coherence ‖r+a‖²/(‖r‖²+‖a‖²) {_span([r['coherence'] for r in ok], '{:.3f}')}, mean cos(r, a) "
        f"{_span([r['mean_cos_r_a'] for r in ok], '{:.2f}')}"), v3))
    return rows


def _f(v, spec="{:.1f}"):
    return "—" if v is None else spec.format(v)


def carrier_lines(doc: dict) -> list[str]:
    """DEF-STUDY-CARRIER — one row per residual add at the table's b, then the claims."""
    b = str(doc["settings"]["table_bits"])
    head = (f"{'add':<28} {'P_r/P_a dB':>10} {'gain dB':>8} {'cos(r,a)':>8} {'SNR a':>7} {'SNR sum':>8} {'SNR r':>7} "
            f"{'N_AR/(N_A+N_R)':>14} {'corr(y,e_a)':>11} {'b*_a':>5} {'b*_r':>5}")
    out = [f"residual adds: carrier r, added signal a; SNRs in dB at int{b} per tensor; b* at ε = {doc['settings']['tolerance']:g} "
           f"({doc['settings']['distortion']})", head]
    for r in doc["results"]["adds"]:
        if "error" in r:
            out.append(f"{r['add']:<28} error: {r['error']}")
            continue
        p = r["protocol"][b]
        out.append(f"{r['add']:<28} {r['carrier_to_signal_db']:>10.1f} {r['gain_db']:>8.1f} {r['mean_cos_r_a']:>8.2f} "
                   f"{p['snr_branch_a_db']:>7.1f} {p['snr_sum_a_db']:>8.1f} {p['snr_sum_r_db']:>7.1f} "
                   f"{_f(p['quadrature_ratio'], '{:.3f}'):>14} {_f(p['corr_signal_noise_a'], '{:+.3f}'):>11} "
                   f"{'>16' if r['b_star_a'] is None else r['b_star_a']:>5} {'>16' if r['b_star_r'] is None else r['b_star_r']:>5}")
    res = [r for r in doc["results"]["adds"] if r.get("resolution_r") or r.get("resolution_a")]
    if res:
        out += ["", "the uniform step each needs at ε (DEF-SITE-RESOLUTION), and b*_Δ, b_H there (DEF-INFORMATION-PRECISION):",
                f"{'add':<28} {'Δ_r':>9} {'Δ_a':>9} {'Δ_r/std_r':>9} {'Δ_a/std_a':>9} {'b*_Δ r':>6} {'b*_Δ a':>6} {'b_H r':>6} {'b_H a':>6}"]
        for r in res:
            x, y = r.get("resolution_r") or {}, r.get("resolution_a") or {}

            def ratio(v):
                return None if not v or v.get("step") is None or not v["std"] else v["step"] / v["std"]
            out.append(f"{r['add']:<28} {_f(x.get('step'), '{:.3g}'):>9} {_f(y.get('step'), '{:.3g}'):>9} "
                       f"{_f(ratio(x), '{:.3g}'):>9} {_f(ratio(y), '{:.3g}'):>9} {_f(x.get('cells_bits'), '{}'):>6} "
                       f"{_f(y.get('cells_bits'), '{}'):>6} {_f(x.get('entropy_bits'), '{:.2f}'):>6} {_f(y.get('entropy_bits'), '{:.2f}'):>6}")
    out += ["", "gain = SNR(sum) − SNR(branch a) = 10·log10(‖r+a‖²/‖a‖²) for noise on a alone (THM-CARRIER-GAIN)", ""]
    out += [f"{c['id']} [{c['verdict']}] {c['measured']}" for c in doc["claims"]]
    return out


def carrier_plots(doc: dict, out: Path) -> list[Path]:
    """DEF-STUDY-CARRIER — carrier.png: per add, the gain and the SNRs; carrier_precision.png: b*_a vs b*_r."""
    plt = require_matplotlib()
    ok = [r for r in doc["results"]["adds"] if "error" not in r]
    if not ok:
        return []
    b = str(doc["settings"]["table_bits"])
    x = np.arange(len(ok))
    labels = [r["add"].replace("encoder.layer.", "L") for r in ok]
    fig, ax = plt.subplots(figsize=(max(6, 0.6 * len(ok) + 2), 4))
    ax.plot(x, [r["gain_db"] for r in ok], "ko-", label="gain 10·log10(‖r+a‖²/‖a‖²)")
    ax.plot(x, [r["protocol"][b]["snr_branch_a_db"] for r in ok], "s--", label=f"SNR of a alone, a at int{b}")
    ax.plot(x, [r["protocol"][b]["snr_sum_a_db"] for r in ok], "^-", label=f"SNR of r+a, a at int{b}")
    ax.plot(x, [r["protocol"][b]["snr_sum_r_db"] for r in ok], "v-", label=f"SNR of r+a, r at int{b}")
    ax.set_xticks(x, labels, rotation=45, ha="right", fontsize=8)
    ax.set_ylabel("dB")
    ax.set_title("Does the residual carrier lift the SNR of the added signal? (seed 001 §7)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    p1 = Path(out) / "carrier.png"
    fig.savefig(p1, dpi=110)
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(max(6, 0.6 * len(ok) + 2), 3.5))
    ax.bar(x - 0.2, [r["b_star_r"] or 17 for r in ok], 0.4, label="b* of the carrier r")
    ax.bar(x + 0.2, [r["b_star_a"] or 17 for r in ok], 0.4, label="b* of the added signal a")
    ax.set_xticks(x, labels, rotation=45, ha="right", fontsize=8)
    ax.set_ylabel(f"int bits for distortion ≤ {doc['settings']['tolerance']:g} (17 = >16)")
    ax.set_title("Which needs more precision: the carrier or the added signal?")
    ax.legend(fontsize=7)
    fig.tight_layout()
    p2 = Path(out) / "carrier_precision.png"
    fig.savefig(p2, dpi=110)
    plt.close(fig)
    return [p1, p2]


CARRIER_STUDY = Study(
    name="carrier",
    summary="residual carrier r vs added signal a per add: gain, SNRs, noise correlation, precision (seed 001 §7)",
    spec="DEF-STUDY-CARRIER",
    run=carrier_study,
    lines=carrier_lines,
    plots=carrier_plots,
    claims=("C-001-7-1", "C-001-7-2", "C-001-7-3"),
    options=(
        Option("layers", "ints", None, "layer indices measured (default: all)", check_layers),
        Option("tolerance", "float", DEFAULT_TOLERANCE, "ε of the task distortion for b*_r and b*_a", check_tolerance),
        Option("table_bits", "int", DEFAULT_TABLE_BITS, "the int bits whose SNRs the table shows", check_bits),
        Option("resolution", "flag", False, "also search the uniform step Δ(ε) r and a need, with b_H and b*_Δ there (slower)"),
    ),
)
