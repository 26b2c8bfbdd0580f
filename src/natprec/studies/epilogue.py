"""DEF-EPILOGUE-REAL — seed 000 §3 on a model's own values: epilogue orders and double rounding on pre-activation outputs.

The values are the outputs of the modules that feed an activation (MiniLM: each layer's
``intermediate.dense``, the FFN's pre-GELU values) at the real positions of the calibration
batches.  On them, per layer and format, :func:`natprec.reference.epilogue_order_comparison`
compares the fused order with the two wrong ones (spec/08 DEF-EPILOGUE-ORDER) and
:func:`natprec.reference.double_rounding` measures direct against double rounding of the
epilogue's float32 output (DEF-DOUBLE-ROUNDING).  ReLU on the same values is the control
(THM-ORDER-NOT-STRICT: its quantize-then-activate order never differs).
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np

from natprec.model.runner import MeasuredModel
from natprec.reference import ACTIVATIONS, double_rounding, epilogue_order_comparison
from natprec.reference.epilogue import activation_f32
from natprec.reference.errors import InvalidParameterError, NatprecError
from natprec.reference.formats import ElementFormat, resolve_format

from .capture import matching_modules, module_rows, place_model
from .plotting import save_figure
from .registry import Option, Steps, Study, claim_row

__all__ = ["DEFAULT_EPILOGUE_FORMATS", "EPILOGUE_STUDY", "activation_minimum", "epilogue_layer", "epilogue_study",
           "epilogue_lines", "epilogue_plots", "check_element_formats", "check_positive_int", "check_activation"]

#: Final formats of the epilogue (element formats, applied unscaled as spec/08 does).
DEFAULT_EPILOGUE_FORMATS = ("float8_e4m3fn", "float8_e5m2", "float4_e2m1fn")
#: Intermediate (store) formats of the double rounding.
DEFAULT_MIDS = ("bfloat16", "float16")
#: MiniLM's pre-GELU values: the FFN's first dense layer of every encoder layer.
DEFAULT_PRE_ACTIVATION = ("*intermediate.dense",)


def check_element_formats(flag: str, names) -> tuple:
    """DEF-EPILOGUE-REAL — element format names (InvalidParameterError naming ``flag`` otherwise)."""
    names = (names,) if isinstance(names, str) else tuple(names)
    if not names:
        raise InvalidParameterError(f"{flag}: no value", value=names)
    for n in names:
        try:
            f = resolve_format(n)
        except NatprecError as exc:
            raise InvalidParameterError(f"{flag}: {exc}", value=n) from None
        if not isinstance(f, ElementFormat):
            raise InvalidParameterError(f"{flag}: {n!r} is not an element format", value=n)
    return names


def check_positive_int(flag: str, v) -> int:
    """DEF-STUDY — an integer ≥ 1 (InvalidParameterError naming ``flag``)."""
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
        raise InvalidParameterError(f"{flag} must be an integer >= 1; got {v!r}", value=v)
    return int(v)


def check_activation(flag: str, name) -> str:
    """DEF-EPILOGUE-REAL — an activation of :data:`natprec.reference.ACTIVATIONS`."""
    if name not in ACTIVATIONS:
        raise InvalidParameterError(f"{flag} must be one of {', '.join(ACTIVATIONS)}; got {name!r}", value=name)
    return name


def activation_minimum(name: str) -> float:
    """DEF-EPILOGUE-REAL — the argmin t* of a non-monotone activation (silu, gelu): it decreases on t < t*; −inf otherwise."""
    check_activation("activation", name)
    if name in ("identity", "relu"):
        return -math.inf
    from scipy.optimize import minimize_scalar

    def f(t):
        return float(activation_f32(np.array([t]), name)[0])

    return float(minimize_scalar(f, bounds=(-4.0, 0.0), method="bounded", options={"xatol": 1e-7}).x)


def _order_row(c) -> dict:
    return {"order": c.order, "n": c.n, "differ": c.differ, "worse": c.worse, "better": c.better,
            "mse_fused": c.mse_fused, "mse_order": c.mse_order,
            "mse_ratio": c.mse_order / c.mse_fused if c.mse_fused > 0 else None,
            "fused_image": c.fused_image, "order_image": c.order_image}


def epilogue_layer(values, *, activation: str = "gelu", formats=DEFAULT_EPILOGUE_FORMATS, store: str = "bfloat16",
                   mids=DEFAULT_MIDS) -> dict:
    """DEF-EPILOGUE-REAL — orders, ReLU control and double rounding of one layer's pre-activation values.

    Per final format: the two wrong orders against the fused one (``activation``), the
    quantize-then-ReLU control's ``differ``, and for each mid format the double rounding of the
    epilogue's float32 output act32(t) through mid to the final format.
    """
    v = np.asarray(values, dtype=np.float32).ravel()
    tmin = activation_minimum(activation)
    out = {"n": int(v.size), "min": float(v.min()) if v.size else None, "max": float(v.max()) if v.size else None,
           "nonmonotone_fraction": float(np.mean(v < tmin)) if v.size else None, "formats": []}
    y = activation_f32(v, activation) if v.size else v
    for f in formats:
        orders = epilogue_order_comparison(v, 1.0, 0.0, activation, f, store=store)
        relu = epilogue_order_comparison(v, 1.0, 0.0, "relu", f, store=store)
        dr = []
        for m in mids:
            d = double_rounding(y, m, f)
            dr.append({"mid": m, "n": d.n, "differ": d.differ, "double_worse": d.double_worse,
                       "double_better": d.double_better, "mse_direct": d.mse_direct, "mse_double": d.mse_double,
                       "direct_image": d.direct_image, "double_image": d.double_image})
        out["formats"].append({"format": f, "orders": [_order_row(c) for c in orders],
                               "relu_control_differ": relu[0].differ, "double_rounding": dr})
    return out


def _verdicts(layers: list[dict], activation: str) -> list[dict]:
    ok = [lay for lay in layers if "formats" in lay]
    rows = [(lay["module"], f["format"], o) for lay in ok for f in lay["formats"] for o in f["orders"]]
    if not rows:
        return []
    relu_differ = sum(f["relu_control_differ"] for lay in ok for f in lay["formats"])
    n_relu = sum(f["orders"][0]["n"] for lay in ok for f in lay["formats"])
    qa = [r for r in rows if r[2]["order"] == "quantize_then_activate"]
    worse_mse = sum(r[2]["mse_order"] > r[2]["mse_fused"] for r in qa)
    better = sum(r[2]["better"] for r in qa)
    worse = sum(r[2]["worse"] for r in qa)
    n = sum(r[2]["n"] for r in qa)
    ratios = [r[2]["mse_ratio"] for r in qa if r[2]["mse_ratio"] is not None]
    nonmono = [lay["nonmonotone_fraction"] for lay in ok]
    claims = [claim_row(
        "C-000-3-1",
        f"ReLU (monotone) on the real pre-activation values: quantize-then-activate differs from the fused order on "
        f"{relu_differ} of {n_relu} values (all layers × formats) — equal distortion, not strictly larger",
        "refuted" if relu_differ == 0 else "mixed")]
    verdict = ("supported" if worse_mse == len(qa) and better == 0 else "mixed" if worse_mse else "refuted")
    claims.append(claim_row(
        "C-000-3-2",
        f"{activation} (not monotone: {min(nonmono):.3g}–{max(nonmono):.3g} of the values lie where it decreases): "
        f"quantize-then-activate has larger MSE than the fused order in {worse_mse} of {len(qa)} layer × format cases "
        f"(MSE ratio {min(ratios):.4g}–{max(ratios):.4g}); per value worse on {worse}, better on {better} of {n}",
        verdict))
    drs = [d for lay in ok for f in lay["formats"] for d in f["double_rounding"]]
    differ, tot = sum(d["differ"] for d in drs), sum(d["n"] for d in drs)
    dbetter = sum(d["double_better"] for d in drs)
    claims.append(claim_row(
        "C-000-3-3",
        f"double rounding of the epilogue output (store in a 16-bit format, reload, round to the final format) changes "
        f"{differ} of {tot} values ({differ / tot:.3g}), better on {dbetter} (THM-DOUBLE-ROUNDING-NEVER-BETTER); "
        f"image sizes equal in {sum(d['direct_image'] == d['double_image'] for d in drs)} of {len(drs)} cases",
        "supported" if differ > 0 and dbetter == 0 else "mixed"))
    return claims


def epilogue_study(mm: MeasuredModel, *, modules=DEFAULT_PRE_ACTIVATION, activation: str = "gelu",
                   formats=DEFAULT_EPILOGUE_FORMATS, store: str = "bfloat16", mids=DEFAULT_MIDS,
                   max_values: int = 200_000, seed: int = 0, progress=False, device=None) -> dict:
    """DEF-EPILOGUE-REAL — seed 000 §3 on ``mm``'s pre-activation values, per layer (one layer's failure goes to ``errors``).

    ``modules``: glob patterns of the modules whose outputs feed ``activation``; ``max_values``:
    at most this many values per layer, a seeded uniform sample without replacement.
    """
    activation = check_activation("--activation", activation)
    formats = check_element_formats("--formats", formats)
    store = check_element_formats("--store", (store,))[0]
    mids = check_element_formats("--mids", mids)
    max_values = check_positive_int("--max-values", max_values)
    seed = int(seed)
    t0 = time.perf_counter()
    dev = place_model(mm, device)
    names = matching_modules(mm.model, modules)
    rows = module_rows(mm, names, kind="output")
    timing = {"capture": time.perf_counter() - t0}
    rng = np.random.default_rng(seed)
    layers, errors = [], []
    steps = Steps("epilogue", len(names), progress)
    t1 = time.perf_counter()
    for name in names:
        v = rows[name].ravel()
        total = int(v.size)
        if v.size > max_values:
            v = v[np.sort(rng.choice(v.size, max_values, replace=False))]
        try:
            layers.append({"module": name, "n_total": total, **epilogue_layer(v, activation=activation, formats=formats,
                                                                              store=store, mids=mids)})
        except NatprecError as exc:
            errors.append({"what": name, "error": str(exc)})
            layers.append({"module": name, "n_total": total, "error": str(exc)})
        steps.step(name)
    timing["measure"] = time.perf_counter() - t1
    return {"study": "epilogue", "spec": "DEF-EPILOGUE-REAL", "model": mm.description,
            "settings": {"modules": list(modules) if not isinstance(modules, str) else [modules], "activation": activation,
                         "formats": list(formats), "store": store, "mids": list(mids), "max_values": max_values,
                         "seed": seed, "device": dev, "scaling": "none (formats applied to the values as they are)"},
            "results": {"activation_minimum": activation_minimum(activation), "layers": layers},
            "claims": _verdicts(layers, activation), "timing": timing, "errors": errors}


def epilogue_lines(doc: dict) -> list[str]:
    """DEF-EPILOGUE-REAL — one line per layer × format: wrong orders against fused, the ReLU control, double rounding."""
    s = doc["settings"]
    out = [f"epilogue orders on the real pre-{s['activation']} values (act decreases below t* = "
           f"{doc['results']['activation_minimum']:.5g}); store {s['store']}; formats unscaled",
           f"{'module':<36} {'format':<14} {'n':>8} {'t<t*':>6} {'Q→act MSE ratio':>15} {'worse':>7} {'better':>7} "
           f"{'store MSE ratio':>15} {'relu≠':>6} " + " ".join(f"{'dbl≠ via ' + m:>16}" for m in s["mids"])]
    for lay in doc["results"]["layers"]:
        if "error" in lay:
            out.append(f"{lay['module']:<36} error: {lay['error']}")
            continue
        for f in lay["formats"]:
            qa, st = f["orders"]
            out.append(f"{lay['module']:<36} {f['format']:<14} {lay['n']:>8} {lay['nonmonotone_fraction']:>6.3f} "
                       f"{qa['mse_ratio'] or float('nan'):>15.6g} {qa['worse']:>7} {qa['better']:>7} "
                       f"{st['mse_ratio'] or float('nan'):>15.6g} {f['relu_control_differ']:>6} "
                       + " ".join(f"{d['differ'] / d['n']:>16.4g}" for d in f["double_rounding"]))
    out.append("")
    out += [f"{c['id']} {c['verdict']}: {c['measured']}" for c in doc["claims"]]
    return out


def epilogue_plots(doc: dict, out_dir: Path) -> list[Path]:
    """DEF-EPILOGUE-REAL — one figure: MSE of quantize-then-activate over fused, per layer and format."""
    from natprec.model.deps import require_matplotlib

    plt = require_matplotlib()
    layers = [lay for lay in doc["results"]["layers"] if "formats" in lay]
    if not layers:
        return []
    fig, ax = plt.subplots(figsize=(7, 4))
    for k, f in enumerate(layers[0]["formats"]):
        ys = [lay["formats"][k]["orders"][0]["mse_ratio"] or float("nan") for lay in layers]
        ax.plot(range(len(layers)), ys, marker="o", label=f["format"])
    ax.axhline(1.0, color="grey", lw=0.8)
    ax.set_xticks(range(len(layers)), [lay["module"].split(".intermediate")[0].split(".")[-1] for lay in layers])
    ax.set_xlabel("layer")
    ax.set_ylabel("MSE(quantize→activate) / MSE(fused)")
    ax.set_title(f"Epilogue order on real pre-{doc['settings']['activation']} values")
    ax.legend()
    return [save_figure(plt, fig, out_dir, "epilogue_order.png")]


EPILOGUE_STUDY = Study(
    name="epilogue",
    summary="epilogue order and double rounding on the model's pre-activation values (seed 000 §3, spec/12)",
    spec="DEF-EPILOGUE-REAL",
    run=epilogue_study,
    lines=epilogue_lines,
    plots=epilogue_plots,
    claims=("C-000-3-1", "C-000-3-2", "C-000-3-3"),
    options=(
        Option("modules", "strs", DEFAULT_PRE_ACTIVATION, "glob patterns of the modules whose output feeds the activation"),
        Option("activation", "str", "gelu", "the activation after them: identity, relu, silu, gelu", check_activation),
        Option("formats", "strs", DEFAULT_EPILOGUE_FORMATS, "final element formats (unscaled)", check_element_formats),
        Option("store", "str", "bfloat16", "store format of the store-and-reload order",
               lambda flag, v: check_element_formats(flag, (v,))[0]),
        Option("mids", "strs", DEFAULT_MIDS, "intermediate formats of the double rounding", check_element_formats),
        Option("max_values", "int", 200_000, "values per layer (a seeded sample)", check_positive_int),
        Option("seed", "int", 0, "seed of the sample"),
    ),
)
