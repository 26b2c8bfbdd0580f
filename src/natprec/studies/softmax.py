"""DEF-SOFTMAX-ROUNDING, DEF-ACCUMULATION-GROWTH — seed 004 on a model: low-precision attention scores vs probabilities,
and how rounding error grows with the length of a dot product.

Attention: for every BERT-style self-attention module (``query``/``key``/``value`` Linear
children, ``num_attention_heads``, ``attention_head_size``) the scores S = QKᵀ·scaling (+ the
additive mask) are recomputed in float64 from the module's own input; the probabilities
P = softmax(S) are compared with P̂ when the *scores* are rounded to a format before the softmax
("pre") or the *probabilities* after it ("post"), and the layer's output with the variant
installed in that layer alone is compared with the model's float32 output.

Accumulation: on real (activation row, weight row) pairs of a Linear layer, the error of a
dot product of length k against its exact value, for k = 1 … K, when the products are rounded
and accumulated sequentially in a 16/32-bit float ("accumulate"), or when the inputs are
rounded and the products summed exactly ("products", the seed's picture of low-precision
multiplies into a wide accumulator); the growth exponents of the error and of the signal.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np

from natprec.model.deps import require_torch
from natprec.model.distortion import per_sample_distortion
from natprec.model.quantize import site_format
from natprec.model.runner import MeasuredModel, Runner, call_model
from natprec.model.sites import Site
from natprec.reference import dequantize, quantize
from natprec.reference.errors import InvalidParameterError, NatprecError, NonFiniteInputError

from .capture import matching_modules, module_rows, place_model
from .epilogue import check_element_formats, check_positive_int
from .plotting import save_figure
from .registry import Option, Steps, Study, claim_row

__all__ = ["ACCUMULATION_DTYPES", "ACCUMULATION_MODES", "DEFAULT_SOFTMAX_FORMATS", "SCALINGS", "SOFTMAX_STUDY",
           "accumulation_curves", "attention_probabilities", "check_dtypes", "check_order", "check_scalings", "growth_exponent",
           "probability_distortion", "round_to", "rounded_attention", "softmax_study", "softmax_lines", "softmax_plots"]

DEFAULT_SOFTMAX_FORMATS = ("float8_e4m3fn", "float8_e5m2", "float4_e2m1fn")
#: "none": the format applied to the values as they are (saturating); "tensor": one absmax scale per tensor
#: (the values' absmax onto the format's largest value, `natprec.model.site_format`).
SCALINGS = ("none", "tensor")
ACCUMULATION_DTYPES = ("float16", "bfloat16", "float32")
ACCUMULATION_MODES = ("accumulate", "products")
DEFAULT_ATTENTION_MODULES = ("*attention.self",)
#: MiniLM: K = 384 (the FFN's first dense) and K = 1536 (its second; "?" keeps attention.output.dense out).
DEFAULT_ACCUMULATION_MODULES = ("*layer.?.intermediate.dense", "*layer.?.output.dense")
#: A key is masked when its additive mask is at most this (transformers uses the dtype's minimum).
MASKED_BELOW = -1e30


def _choices(flag: str, v, allowed: tuple) -> tuple:
    v = (v,) if isinstance(v, str) else tuple(v)
    bad = [s for s in v if s not in allowed]
    if not v or bad:
        raise InvalidParameterError(f"{flag} must be among {', '.join(allowed)}; got {bad or 'no value'}",
                                    value=bad[0] if bad else v)
    return v


def check_scalings(flag: str, v) -> tuple:
    """DEF-SOFTMAX-ROUNDING — scaling modes among :data:`SCALINGS` (InvalidParameterError naming ``flag``)."""
    return _choices(flag, v, SCALINGS)


def check_dtypes(flag: str, v) -> tuple:
    """DEF-ACCUMULATION-GROWTH — accumulator dtypes among :data:`ACCUMULATION_DTYPES`."""
    return _choices(flag, v, ACCUMULATION_DTYPES)


def check_order(flag: str, v) -> str:
    """DEF-ACCUMULATION-GROWTH — the summation order: "random" (per pair) or "natural" (channel order)."""
    if v not in ("random", "natural"):
        raise InvalidParameterError(f"{flag} must be random or natural; got {v!r}", value=v)
    return v


def round_to(x, fmt: str, scaling: str = "none") -> np.ndarray:
    """DEF-SOFTMAX-ROUNDING — ``x`` rounded to an element format, as float64: unscaled and saturating, or one absmax scale."""
    x = np.asarray(x, dtype=np.float64)
    if scaling == "none":
        return dequantize(quantize(x, fmt, saturate=True), fmt)
    check_scalings("scaling", (scaling,))
    return site_format(fmt).quantize_dequantize(x.astype(np.float32), per_channel=False).astype(np.float64)


def attention_probabilities(scores, key_valid) -> np.ndarray:
    """DEF-SOFTMAX-ROUNDING — softmax over the last axis restricted to valid keys (masked keys get 0), in float64.

    A row with no valid key is all zero.
    """
    s = np.where(key_valid, np.asarray(scores, dtype=np.float64), -np.inf)
    m = np.max(s, axis=-1, keepdims=True)
    m = np.where(np.isfinite(m), m, 0.0)
    e = np.where(key_valid, np.exp(s - m), 0.0)
    z = e.sum(axis=-1, keepdims=True)
    return np.divide(e, z, out=np.zeros_like(e), where=z > 0)


def rounded_attention(scores, key_valid, fmt: str, scaling: str, where: str) -> np.ndarray:
    """DEF-SOFTMAX-ROUNDING — P̂: softmax of the rounded scores ("pre") or the rounded probabilities ("post", not renormalized)."""
    if where == "pre":
        return attention_probabilities(round_to(scores, fmt, scaling), key_valid)
    if where == "post":
        return np.where(key_valid, round_to(attention_probabilities(scores, key_valid), fmt, scaling), 0.0)
    raise InvalidParameterError(f"where must be 'pre' or 'post'; got {where!r}", value=where)


def _entropy_bits(p: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(p > 0, -p * np.log2(np.where(p > 0, p, 1.0)), 0.0)
    return t.sum(axis=-1)


def probability_distortion(p, p_hat, key_valid, row_valid) -> dict:
    """DEF-SOFTMAX-ROUNDING — distortion of P̂ against P over the valid rows (masked keys excluded).

    tv: mean ½Σ|P − P̂|; kl: mean KL(P ‖ P̂/ΣP̂) in bits over the rows where it is finite, with
    ``kl_infinite_fraction`` the rows where P̂ is 0 on a key P gives mass (or sums to 0);
    zero_fraction: valid entries with P > 0 and P̂ = 0; mass: mean ΣP̂; entropies in bits (P̂ normalized).
    """
    p, q = np.asarray(p, np.float64), np.asarray(p_hat, np.float64)
    kv = np.broadcast_to(key_valid, p.shape)
    rows = np.broadcast_to(np.asarray(row_valid)[..., None], p.shape)[..., 0]
    if not rows.any():
        raise InvalidParameterError("no valid row to measure", value=0)
    pr, qr, kr = p[rows], q[rows], kv[rows]
    mass = qr.sum(axis=-1)
    qn = np.divide(qr, mass[:, None], out=np.zeros_like(qr), where=mass[:, None] > 0)
    lost = ((pr > 0) & (qn == 0) & kr).any(axis=-1) | (mass == 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where((pr > 0) & (qn > 0), pr * (np.log2(np.where(pr > 0, pr, 1)) - np.log2(np.where(qn > 0, qn, 1))), 0.0)
    kl = terms.sum(axis=-1)
    pos = (pr > 0) & kr
    return {"rows": int(pr.shape[0]), "tv": float(np.mean(0.5 * np.abs(pr - qr).sum(axis=-1))),
            "max_abs": float(np.max(np.abs(pr - qr))),
            "kl_bits": float(np.mean(kl[~lost])) if (~lost).any() else None,
            "kl_infinite_fraction": float(np.mean(lost)),
            "zero_fraction": float(np.count_nonzero(pos & (qr == 0)) / max(np.count_nonzero(pos), 1)),
            "mass": float(np.mean(mass)), "entropy_bits": float(np.mean(_entropy_bits(pr))),
            "entropy_hat_bits": float(np.mean(_entropy_bits(qn)))}


# ------------------------------------------------------------------ attention in a model

def _qkv(module, hidden):
    """(q, k, v) as float64 (batch, heads, positions, head size) from a BERT-style self-attention's input."""
    for attr in ("query", "key", "value", "num_attention_heads", "attention_head_size"):
        if not hasattr(module, attr):
            raise InvalidParameterError(f"attention module has no {attr!r}: not a BERT-style self-attention", value=attr)
    h, d = int(module.num_attention_heads), int(module.attention_head_size)

    def split(t):
        return t.reshape(*t.shape[:-1], h, d).transpose(-3, -2).double()

    return split(module.query(hidden)), split(module.key(hidden)), split(module.value(hidden))


def _key_valid(mask, shape):
    """Boolean key mask broadcast to the scores' shape from the module's attention mask (None, bool or additive)."""
    if mask is None:
        return np.ones(shape, bool)
    m = mask.detach().cpu()
    valid = m.numpy() if str(m.dtype) == "torch.bool" else (m.double() > MASKED_BELOW).numpy()
    return np.broadcast_to(valid, shape)


def _scores(module, q, k):
    scaling = float(getattr(module, "scaling", 1.0 / math.sqrt(q.shape[-1])))
    return (q @ k.transpose(-1, -2) * scaling).cpu().numpy()


def _attention_inputs(args, kwargs):
    hidden = args[0] if args else kwargs.get("hidden_states")
    mask = args[1] if len(args) > 1 else kwargs.get("attention_mask")
    return hidden, mask


def _install(torch, module, probabilities: list):
    """Forward hook replacing the module's output by ``probabilities[b]`` @ V on the b-th call (b = 0, 1, …).

    The module's input is unchanged by the replacement (only this module is replaced), so the
    probabilities computed from the captured scores of batch b are the ones its call would compute.
    """
    calls = [0]

    def hook(mod, args, kwargs, out):
        hidden, _ = _attention_inputs(args, kwargs)
        _, _, v = _qkv(mod, hidden)
        p = probabilities[calls[0]]
        calls[0] += 1
        o = torch.from_numpy(p).to(v.device) @ v
        o = o.transpose(-3, -2).reshape(*hidden.shape[:-1], -1).to(hidden.dtype)
        return (o, *out[1:]) if isinstance(out, tuple) else o

    return module.register_forward_hook(hook, with_kwargs=True)


def _output(mm, out, batch):
    """The compared output: the model's ``output_fn``, else its first tensor."""
    if mm.output_fn is not None:
        return mm.output_fn(out, batch)
    while not hasattr(out, "shape"):
        out = next(iter(out.values())) if hasattr(out, "values") else out[0]
    return out


def _forward(mm, runner, name, b):
    """The compared output of batch ``b``; with a Runner, the modules that end before ``name`` starts are replayed from its cache."""
    batch = mm.batches[b]
    if runner is None:
        return _output(mm, call_model(mm.model, batch), batch).float()
    site = next(s for s in runner.sites if s.module == name)
    with runner.replay(site, b):
        return _output(mm, call_model(mm.model, batch), batch).float()


def _attention_layer(mm, torch, module, name, formats, scalings, references, runner=None) -> dict:
    """All variants of one attention module: probability and attention-output distortion, and the model output's."""
    captured = []

    def grab(mod, args, kwargs, out):
        hidden, mask = _attention_inputs(args, kwargs)
        q, k, v = _qkv(mod, hidden)
        s = _scores(mod, q, k)
        captured.append((s, _key_valid(mask, s.shape), v.cpu().numpy()))

    h = module.register_forward_hook(grab, with_kwargs=True)
    try:
        with torch.no_grad():
            for b in range(len(mm.batches)):
                _forward(mm, runner, name, b)
    finally:
        h.remove()
    row_valid = []
    for b, (s, _, _) in zip(mm.batches, captured):
        rv = np.ones(s.shape[:-1], bool)
        if mm.token_mask is not None:
            tm = mm.token_mask(b).bool().cpu().numpy()
            if tm.shape == (s.shape[0], s.shape[2]):
                rv = np.broadcast_to(tm[:, None, :], s.shape[:-1])
        row_valid.append(rv)

    def output_distortion(probabilities, variant):
        h = _install(torch, module, probabilities)
        mse = dist = n = 0.0
        try:
            with torch.no_grad():
                for b, ref in enumerate(references):
                    out = _forward(mm, runner, name, b)
                    if not bool(torch.isfinite(out).all()):
                        raise NonFiniteInputError(f"{name}: non-finite model output with {variant}", value=str(variant))
                    mse += float(per_sample_distortion("mse", ref, out).sum())
                    dist += float(per_sample_distortion(mm.distortion, ref, out).sum())
                    n += ref.shape[0]
        finally:
            h.remove()
        return mse / n, dist / n

    floor = output_distortion([attention_probabilities(s, kv) for s, kv, _ in captured], None)
    out = {"module": name, "keys_max": int(max(c[0].shape[-1] for c in captured)),
           "floor_output_mse": floor[0], "floor_output_distortion": floor[1], "variants": []}
    for f in formats:
        for sc in scalings:
            for where in ("pre", "post"):
                stats, num, den, hats = [], 0.0, 0.0, []
                for (s, kv, v), rv in zip(captured, row_valid):
                    p = attention_probabilities(s, kv)
                    ph = rounded_attention(s, kv, f, sc, where)
                    hats.append(ph)
                    stats.append(probability_distortion(p, ph, kv, rv))
                    o, oh = p @ v, ph @ v
                    num += float(((oh - o)[rv] ** 2).sum())
                    den += float((o[rv] ** 2).sum())
                w = np.array([st["rows"] for st in stats], float)
                agg = {key: (float(np.average([st[key] for st in stats], weights=w))
                             if all(st[key] is not None for st in stats) else None)
                       for key in ("tv", "kl_bits", "kl_infinite_fraction", "zero_fraction", "mass", "entropy_bits",
                                   "entropy_hat_bits")}
                agg["max_abs"] = max(st["max_abs"] for st in stats)
                omse, odist = output_distortion(hats, (f, sc, where))
                out["variants"].append({"format": f, "scaling": sc, "where": where, **agg,
                                        "attention_rel_mse": num / den if den > 0 else None,
                                        "output_mse": omse, "output_distortion": odist})
    return out


# ------------------------------------------------------------------ accumulation

def _round_dtype(a: np.ndarray, dt: str) -> np.ndarray:
    """``a`` (float64) rounded to nearest-even in ``dt``, back in float64 (float32 by NumPy's cast, 16-bit by the reference)."""
    if dt == "float32":
        with np.errstate(over="ignore"):
            return a.astype(np.float32).astype(np.float64)
    return dequantize(quantize(a, dt), dt)


def growth_exponent(ks, values, k_min: int = 16) -> float | None:
    """DEF-ACCUMULATION-GROWTH — least-squares slope of log(values) on log(k) over k ≥ k_min with values > 0 (None: < 3 points)."""
    ks, values = np.asarray(ks, float), np.asarray(values, float)
    keep = (ks >= k_min) & (values > 0) & np.isfinite(values)
    if np.count_nonzero(keep) < 3:
        return None
    return float(np.polyfit(np.log(ks[keep]), np.log(values[keep]), 1)[0])


def _grid(K: int) -> np.ndarray:
    return np.unique(np.round(np.logspace(0, math.log10(K), 48)).astype(int))


def accumulation_curves(x, w, *, dtypes=ACCUMULATION_DTYPES, modes=ACCUMULATION_MODES, rng=None) -> dict:
    """DEF-ACCUMULATION-GROWTH — RMS signal and error of the prefix dot products Σ_{i≤k} x_i w_i over the pairs (rows of x, w).

    ``x``, ``w``: (pairs, K) float32.  Exact: float64 products (exact for float32 inputs) and
    float64 prefix sums (relative error ≤ K·2⁻⁵³ of Σ|x_i w_i|).  "accumulate": each product
    rounded to the dtype, then s_k = fl(s_{k−1} + p_k) in that dtype (torch; 16-bit adds are formed
    in float32 and rounded once, which is correctly rounded since 24 ≥ 2·11 + 2).  "products": x and
    w rounded to the dtype, products and sum exact.  Returns the k grid, the RMS and the median |·| over
    the pairs of the exact sums, and per (dtype, mode) those of the error.  The growth exponents
    (fit on k ≥ 16) are of the medians: one pair with a huge term (an outlier channel times an
    outlier weight) moves the RMS of all pairs at the k where it enters; ``*_rms`` exponents beside them.
    ``rng`` (a NumPy Generator): each pair's terms are summed in its own random order (a random
    permutation of the K channels), so a prefix of length k is a random k-subset and a few large
    channels do not put a step into every curve at the same k; None: the natural channel order.
    """
    torch = require_torch()
    x64, w64 = np.asarray(x, np.float32).astype(np.float64), np.asarray(w, np.float32).astype(np.float64)
    if x64.shape != w64.shape or x64.ndim != 2 or x64.size == 0:
        raise InvalidParameterError(f"x and w must be equal non-empty 2-D arrays; got {x64.shape} and {w64.shape}",
                                    value=(x64.shape, w64.shape))
    if not (np.isfinite(x64).all() and np.isfinite(w64).all()):
        raise NonFiniteInputError("accumulation inputs hold a non-finite value", value=float("nan"))
    K = x64.shape[1]
    if rng is not None:
        order = np.argsort(rng.random(x64.shape), axis=1)
        x64, w64 = np.take_along_axis(x64, order, 1), np.take_along_axis(w64, order, 1)
    ks = _grid(K)
    exact = np.cumsum(x64 * w64, axis=1)
    signal = np.sqrt(np.mean(exact[:, ks - 1] ** 2, axis=0))
    signal_med = np.median(np.abs(exact[:, ks - 1]), axis=0)
    curves = []
    for dt in dtypes:
        tdt = getattr(torch, dt)
        for mode in modes:
            if mode == "accumulate":
                p = torch.from_numpy(_round_dtype(x64 * w64, dt)).to(tdt)
                s = torch.zeros(p.shape[0], dtype=tdt)
                got = np.empty((p.shape[0], len(ks)))
                j = 0
                for k in range(K):
                    s = s + p[:, k]
                    if k + 1 == ks[j]:
                        got[:, j] = s.double().numpy()
                        j += 1
            elif mode == "products":
                xr, wr = _round_dtype(x64, dt), _round_dtype(w64, dt)
                got = np.cumsum(xr * wr, axis=1)[:, ks - 1]
            else:
                raise InvalidParameterError(f"mode must be one of {ACCUMULATION_MODES}; got {mode!r}", value=mode)
            if not np.isfinite(got).all():
                raise NonFiniteInputError(f"{dt} {mode}: a prefix sum overflowed", value=dt)
            noise = np.sqrt(np.mean((got - exact[:, ks - 1]) ** 2, axis=0))
            noise_med = np.median(np.abs(got - exact[:, ks - 1]), axis=0)
            curves.append({"dtype": dt, "mode": mode, "noise_rms": noise.tolist(), "noise_median": noise_med.tolist(),
                           "exponent_noise": growth_exponent(ks, noise_med), "exponent_noise_rms": growth_exponent(ks, noise),
                           "snr_db_at_K": float(20 * math.log10(signal[-1] / noise[-1])) if noise[-1] > 0 else None})
    prod = x64 * w64
    return {"K": int(K), "pairs": int(x64.shape[0]), "ks": ks.tolist(), "signal_rms": signal.tolist(),
            "signal_median": signal_med.tolist(), "exponent_signal": growth_exponent(ks, signal_med),
            "exponent_signal_rms": growth_exponent(ks, signal),
            "coherence": float(abs(prod.mean()) / prod.std()) if prod.std() > 0 else None, "curves": curves}


# ------------------------------------------------------------------ the study

def _ratio(a, b):
    return a / b if b else math.inf


def _verdicts(attn: list[dict], acc: list[dict]) -> list[dict]:
    claims = []
    ok = [a for a in attn if "variants" in a]
    v = [x for a in ok for x in a["variants"] if x["format"] == "float8_e4m3fn"]
    if v:
        by = {}
        for a in ok:
            for sc in dict.fromkeys(x["scaling"] for x in a["variants"]):
                pre = next((x for x in a["variants"] if x["format"] == "float8_e4m3fn" and x["scaling"] == sc and x["where"] == "pre"), None)
                post = next((x for x in a["variants"] if x["format"] == "float8_e4m3fn" and x["scaling"] == sc and x["where"] == "post"), None)
                if pre and post:
                    by.setdefault(sc, []).append((pre, post))
        worse = sum(pre["tv"] > post["tv"] for lst in by.values() for pre, post in lst)
        n = sum(len(lst) for lst in by.values())
        worse_out = sum(pre["output_mse"] > post["output_mse"] for lst in by.values() for pre, post in lst)
        txt = "; ".join(f"scaling {sc}: TV pre {min(p['tv'] for p, _ in lst):.3g}–{max(p['tv'] for p, _ in lst):.3g} vs post "
                        f"{min(q['tv'] for _, q in lst):.3g}–{max(q['tv'] for _, q in lst):.3g}, output MSE pre/post "
                        f"{min(_ratio(p['output_mse'], q['output_mse']) for p, q in lst):.3g}–"
                        f"{max(_ratio(p['output_mse'], q['output_mse']) for p, q in lst):.3g}" for sc, lst in by.items())
        claims.append(claim_row(
            "C-004-1-1",
            f"float8_e4m3fn on the attention of {len(ok)} layers: rounding the scores before the softmax distorts P more "
            f"than rounding P after it in {worse} of {n} layer × scaling cases (model output in {worse_out}); " + txt,
            "supported" if worse == n and worse_out == n else "refuted" if worse == 0 and worse_out == 0 else "mixed"))
        allv = [x for a in ok for x in a["variants"]]
        parts, spiky_post, flat_pre = [], False, True
        for f in dict.fromkeys(x["format"] for x in allv):
            pre = [x["entropy_bits"] - x["entropy_hat_bits"] for x in allv if x["format"] == f and x["where"] == "pre"]
            post = [x for x in allv if x["format"] == f and x["where"] == "post"]
            dpost = [x["entropy_bits"] - x["entropy_hat_bits"] for x in post]
            zf = [x["zero_fraction"] for x in post]
            parts.append(f"{f}: scores rounded H − Ĥ {min(pre):+.3g}…{max(pre):+.3g} bits; probabilities rounded "
                         f"{min(dpost):+.3g}…{max(dpost):+.3g} bits with {min(zf):.2g}–{max(zf):.2g} of the non-zero entries → 0")
            spiky_post |= max(dpost) > 0.1
            flat_pre &= max(abs(d) for d in pre) < 0.1 or f == "float4_e2m1fn"
        ent = [x["entropy_bits"] for x in allv]
        claims.append(claim_row(
            "C-004-1-2",
            f"row entropy H of P ({min(ent):.3g}–{max(ent):.3g} bits) against Ĥ of P̂ (normalized): " + "; ".join(parts),
            "mixed" if spiky_post and flat_pre else "supported" if spiky_post else "refuted"))
    okacc = [a for a in acc if "curves" in a]
    if okacc:
        sig = [a["exponent_signal"] for a in okacc if a["exponent_signal"] is not None]
        prod = [c["exponent_noise"] for a in okacc for c in a["curves"] if c["mode"] == "products" and c["exponent_noise"] is not None]
        accu = [c["exponent_noise"] for a in okacc for c in a["curves"] if c["mode"] == "accumulate" and c["exponent_noise"] is not None]
        ks = sorted({a["K"] for a in okacc})
        if sig and prod:
            ms, mp = float(np.median(sig)), float(np.median(prod))
            snr = {k: [c["snr_db_at_K"] for a in okacc if a["K"] == k for c in a["curves"]
                       if c["mode"] == "products" and c["snr_db_at_K"] is not None] for k in ks}
            snr_txt = "; ".join(f"K = {k}: {min(v):.0f}–{max(v):.0f} dB" for k, v in snr.items() if v)
            claims.append(claim_row(
                "C-004-2-1",
                f"real activation × weight dot products ({len(okacc)} layers, K = {', '.join(map(str, ks))}, terms in random order): "
                f"error of low-precision inputs into an exact accumulator grows as k^{mp:.2f} (median; {min(prod):.2f}–{max(prod):.2f}), "
                f"the exact sum as k^{ms:.2f} (median; {min(sig):.2f}–{max(sig):.2f}), not k^1: the weights' signs make the signal "
                f"add incoherently too, so the SNR does not grow with N (SNR at K, 16-bit inputs: {snr_txt})",
                "supported" if abs(mp - 0.5) <= 0.1 and abs(ms - 1.0) <= 0.15
                else "mixed" if abs(mp - 0.5) <= 0.1 or abs(ms - 1.0) <= 0.15 else "refuted"))
        if accu:
            snr = [(c["dtype"], c["snr_db_at_K"], a["K"]) for a in okacc for c in a["curves"] if c["mode"] == "accumulate"]
            parts = []
            for dt in dict.fromkeys(d for d, _, _ in snr):
                vals = [s for d, s, _ in snr if d == dt and s is not None]
                if vals:
                    parts.append(f"{dt} SNR at K {min(vals):.1f}–{max(vals):.1f} dB")
            claims.append(claim_row(
                "C-004-2-2",
                f"sequential accumulation in the low-precision dtype itself: error grows as k^{min(accu):.2f}…k^{max(accu):.2f} "
                f"({'; '.join(parts)}) — the √N cancellation needs the wide accumulator the seed assumes",
                "supported" if all(e > 0.6 for e in accu if e is not None) else "mixed"))
    return claims


def softmax_study(mm: MeasuredModel, *, attention_modules=DEFAULT_ATTENTION_MODULES, formats=DEFAULT_SOFTMAX_FORMATS,
                  scalings=SCALINGS, accumulation_modules=DEFAULT_ACCUMULATION_MODULES, dtypes=ACCUMULATION_DTYPES,
                  pairs: int = 1000, order: str = "random", seed: int = 0, progress=False, device=None) -> dict:
    """DEF-SOFTMAX-ROUNDING, DEF-ACCUMULATION-GROWTH — seed 004 on ``mm`` (a failing module goes to ``errors``).

    ``pairs``: (activation row, weight row) pairs drawn per accumulation module (seeded by ``seed``).
    Pass ``accumulation_modules=()`` or ``attention_modules=()`` to skip a part.
    """
    torch = require_torch()
    formats = check_element_formats("--formats", formats)
    scalings = check_scalings("--scalings", scalings)
    dtypes = check_dtypes("--dtypes", dtypes)
    pairs = check_positive_int("--pairs", pairs)
    order = check_order("--order", order)
    seed = int(seed)
    t0 = time.perf_counter()
    dev = place_model(mm, device)
    attn_names = matching_modules(mm.model, attention_modules) if attention_modules else []
    acc_names = matching_modules(mm.model, accumulation_modules) if accumulation_modules else []
    mods = dict(mm.model.named_modules())
    runner = None
    if attn_names:
        try:  # replays each attention module's frozen upstream from a cache (spec/11 DEF-FORWARD-SENSITIVITY)
            runner = Runner(mm, [Site(n, "output", n) for n in attn_names])
        except NatprecError:
            runner = None
    if runner is not None:
        references = runner.reference
    else:
        with torch.no_grad():
            references = [_output(mm, call_model(mm.model, b), b).float() for b in mm.batches]
    timing = {"baseline": time.perf_counter() - t0}
    steps = Steps("softmax", len(attn_names) + len(acc_names), progress)
    errors, attention, accumulation = [], [], []
    t = time.perf_counter()
    for name in attn_names:
        try:
            attention.append(_attention_layer(mm, torch, mods[name], name, formats, scalings, references, runner))
        except NatprecError as exc:
            errors.append({"what": name, "error": str(exc)})
            attention.append({"module": name, "error": str(exc)})
        steps.step(name)
    timing["attention"] = time.perf_counter() - t
    t = time.perf_counter()
    rows = module_rows(mm, acc_names, kind="input") if acc_names else {}
    rng = np.random.default_rng(seed)
    for name in acc_names:
        try:
            x = rows[name]
            w = mods[name].weight.detach().float().cpu().numpy()
            if x.shape[1] != w.shape[1]:
                raise InvalidParameterError(f"{name}: input width {x.shape[1]} ≠ weight width {w.shape[1]}", value=name)
            i, j = rng.integers(0, x.shape[0], pairs), rng.integers(0, w.shape[0], pairs)
            accumulation.append({"module": name, **accumulation_curves(x[i], w[j], dtypes=dtypes,
                                                                         rng=rng if order == "random" else None)})
        except NatprecError as exc:
            errors.append({"what": name, "error": str(exc)})
            accumulation.append({"module": name, "error": str(exc)})
        steps.step(name)
    timing["accumulation"] = time.perf_counter() - t
    return {"study": "softmax", "spec": "DEF-SOFTMAX-ROUNDING", "model": mm.description,
            "settings": {"attention_modules": list(attention_modules), "formats": list(formats), "scalings": list(scalings),
                         "accumulation_modules": list(accumulation_modules), "dtypes": list(dtypes), "pairs": pairs,
                         "order": order, "seed": seed, "device": dev, "distortion": mm.distortion,
                         "upstream_replay": runner is not None and runner.replay_exact},
            "results": {"attention": attention, "accumulation": accumulation},
            "claims": _verdicts(attention, accumulation), "timing": timing, "errors": errors}


def _g(v, spec=".3g"):
    return "—" if v is None else format(v, spec)


def softmax_lines(doc: dict) -> list[str]:
    """DEF-SOFTMAX-ROUNDING, DEF-ACCUMULATION-GROWTH — attention variants per layer, then the growth exponents."""
    out = ["attention: P = softmax(QKᵀ·scaling + mask) vs rounding the scores (pre) or P (post) — per layer",
           f"{'module':<34} {'format':<14} {'scale':<6} {'where':<5} {'TV':>9} {'KL bits':>9} {'KL=∞':>6} {'→0':>6} "
           f"{'H−Ĥ bits':>9} {'attn rel MSE':>12} {'output MSE':>11} {'output ' + doc['settings']['distortion']:>14}"]
    for a in doc["results"]["attention"]:
        if "error" in a:
            out.append(f"{a['module']:<34} error: {a['error']}")
            continue
        out.append(f"{a['module']:<34} {'(exact float64 softmax installed: the floor)':<56} {a['floor_output_mse']:>11.3g} "
                   f"{a['floor_output_distortion']:>14.3g}")
        for v in a["variants"]:
            out.append(f"{'':<34} {v['format']:<14} {v['scaling']:<6} {v['where']:<5} {_g(v['tv']):>9} {_g(v['kl_bits']):>9} "
                       f"{_g(v['kl_infinite_fraction'], '.2f'):>6} {_g(v['zero_fraction'], '.2f'):>6} "
                       f"{_g(v['entropy_bits'] - v['entropy_hat_bits']):>9} {_g(v['attention_rel_mse']):>12} "
                       f"{v['output_mse']:>11.3g} {v['output_distortion']:>14.3g}")
    out += ["", "accumulation: exponent of k of the median |error| of the prefix dot product (fit on k ≥ 16) / SNR at K "
            "(RMS); signal = the exact sum",
            f"{'module':<34} {'K':>5} {'signal exp':>10} " + " ".join(f"{d + ' ' + m[:4]:>16}" for d in doc["settings"]["dtypes"]
                                                                      for m in ACCUMULATION_MODES)]
    for a in doc["results"]["accumulation"]:
        if "error" in a:
            out.append(f"{a['module']:<34} error: {a['error']}")
            continue
        out.append(f"{a['module']:<34} {a['K']:>5} {_g(a['exponent_signal'], '.3f'):>10} "
                   + " ".join(f"{_g(c['exponent_noise'], '.3f') + ' / ' + _g(c['snr_db_at_K'], '.0f') + 'dB':>16}"
                              for c in a["curves"]))
    out.append("")
    out += [f"{c['id']} {c['verdict']}: {c['measured']}" for c in doc["claims"]]
    return out


def softmax_plots(doc: dict, out_dir: Path) -> list[Path]:
    """DEF-SOFTMAX-ROUNDING, DEF-ACCUMULATION-GROWTH — TV of P per layer (pre vs post); error and signal growth vs k."""
    from natprec.model.deps import require_matplotlib

    plt = require_matplotlib()
    paths = []
    ok = [a for a in doc["results"]["attention"] if "variants" in a]
    if ok:
        fig, ax = plt.subplots(figsize=(7, 4))
        for v0 in ok[0]["variants"]:
            key = (v0["format"], v0["scaling"], v0["where"])
            ys = [next(v["tv"] for v in a["variants"] if (v["format"], v["scaling"], v["where"]) == key) for a in ok]
            ax.plot(range(len(ok)), ys, marker="o" if key[2] == "pre" else "s", ls="-" if key[2] == "pre" else "--",
                    label=" ".join(key))
        ax.set_yscale("log")
        ax.set_xticks(range(len(ok)), [str(i) for i in range(len(ok))])
        ax.set_xlabel("attention layer")
        ax.set_ylabel("mean total variation ½Σ|P − P̂|")
        ax.set_title("Rounding scores before vs probabilities after the softmax")
        ax.legend(fontsize=6, ncol=2)
        paths.append(save_figure(plt, fig, out_dir, "softmax_attention.png"))
    acc = [a for a in doc["results"]["accumulation"] if "curves" in a]
    if acc:
        firsts = list({a["K"]: a for a in reversed(acc)}.values())[::-1]
        fig, axes = plt.subplots(1, len(firsts), figsize=(5 * len(firsts), 4), squeeze=False)
        for ax, a in zip(axes[0], firsts):
            ax.loglog(a["ks"], a["signal_median"], "k-", lw=2, label=f"signal (exp {_g(a['exponent_signal'], '.2f')})")
            for c in a["curves"]:
                if any(n > 0 for n in c["noise_median"]):
                    ax.loglog(a["ks"], c["noise_median"], ls="-" if c["mode"] == "accumulate" else ":",
                              label=f"{c['dtype']} {c['mode']} (exp {_g(c['exponent_noise'], '.2f')})")
            ax.set_xlabel("k (terms summed)")
            ax.set_ylabel("median |·| over pairs")
            ax.set_title(f"{a['module']} (K = {a['K']})", fontsize=8)
            ax.legend(fontsize=6)
        fig.suptitle("Growth of dot-product error and signal with length")
        paths.append(save_figure(plt, fig, out_dir, "softmax_accumulation.png"))
    return paths


SOFTMAX_STUDY = Study(
    name="softmax",
    summary="FP8/FP4 before vs after the softmax, and dot-product error growth with K (seed 004, spec/12)",
    spec="DEF-SOFTMAX-ROUNDING",
    run=softmax_study,
    lines=softmax_lines,
    plots=softmax_plots,
    claims=("C-004-1-1", "C-004-1-2", "C-004-2-1", "C-004-2-2"),
    options=(
        Option("attention_modules", "strs", DEFAULT_ATTENTION_MODULES, "glob patterns of the self-attention modules"),
        Option("formats", "strs", DEFAULT_SOFTMAX_FORMATS, "element formats of the scores / probabilities", check_element_formats),
        Option("scalings", "strs", SCALINGS, "none (values as they are) and/or tensor (one absmax scale)", check_scalings),
        Option("accumulation_modules", "strs", DEFAULT_ACCUMULATION_MODULES, "glob patterns of the Linear layers whose dot products are summed"),
        Option("dtypes", "strs", ACCUMULATION_DTYPES, "accumulator / input dtypes", check_dtypes),
        Option("pairs", "int", 1000, "(activation, weight) row pairs per layer", check_positive_int),
        Option("order", "str", "random", "summation order: random (per pair) or natural (channel order)", check_order),
        Option("seed", "int", 0, "seed of the pairs and orders"),
    ),
)
