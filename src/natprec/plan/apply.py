"""DEF-PLAN-APPLY — a plan applied at every edge at once, its bits and task distortion, and the plans it is compared with.

Applying a plan quantizes every planned edge to its gauge in the same forward pass (weights per
output channel, activations per tensor, as ``natprec report`` applies a format), so errors
compound as they would in the deployed model.  Its bits are the element-weighted mean of the
bits each gauge spends (block scales included) over the parameters and the activations of one
calibration sample; float32 edges count 32.
"""

from __future__ import annotations

from natprec.model.resolution import UniformStep
from natprec.reference.errors import InvalidParameterError, NonFiniteInputError

from .derive import derive_plan
from .entropy import GraphRuns
from .ir import FLOAT32, gauge

__all__ = ["UNIFORM_PLANS", "uniform_plan", "resolution_plan", "apply_plan", "compare_plans", "pareto_front", "torchao_config"]

#: The uniform plans every derived plan is compared with: one format at every planned edge.
UNIFORM_PLANS = ("int8", "float8_e4m3fn", "nf4")


def uniform_plan(derived: dict, fmt: str) -> dict:
    """DEF-PLAN-APPLY — ``derived`` with every planned edge in the gauge ``fmt`` (domains and boundaries dropped)."""
    g = gauge(fmt)
    edges = {k: dict(v, gauge=g.format, capacity_bits=g.capacity_bits) for k, v in derived["edges"].items()}
    return {"rule": f"uniform {g.format}", "edges": edges, "domains": None, "boundaries": None}


def resolution_plan(measurement: dict, *, coded: bool) -> dict:
    """DEF-PLAN-APPLY — every planned edge through its own measured quantizer U_Δe (DEF-SITE-RESOLUTION's grid step),
    stored as an index into its realized cells (``coded`` False: b*_Δ bits) or entropy-coded (H_fwd bits).

    Edges whose search found no step keep float32; constant edges cost 0 bits.
    """
    edges = {}
    for name, rec in measurement["edges"].items():
        src = measurement["edges"][rec["value_of"]]
        if "constant" not in src:
            continue
        if src["constant"]:
            edges[name] = {"gauge": "constant", "step_index": None, "bits": 0.0}
        elif src.get("step_index") is None:
            edges[name] = {"gauge": FLOAT32, "step_index": None, "bits": 32.0}
        else:
            edges[name] = {"gauge": "U_Δ", "step_index": src["step_index"],
                           "bits": src["entropy_bits"] if coded else float(src["cells_bits"])}
    return {"rule": "resolution, entropy-coded (H_fwd bits)" if coded else "resolution, fixed-rate (b*_Δ bits)",
            "edges": edges, "domains": None, "boundaries": None}


def _qdq(g: str, per_channel: bool):
    sf = gauge(g).site_format
    return lambda x: sf.quantize_dequantize(x, per_channel=per_channel)


def apply_plan(runs: GraphRuns, measurement: dict, plan: dict, *, weights_only: bool = False) -> dict:
    """DEF-PLAN-APPLY — task distortion with every planned edge quantized to its gauge at once, and the bits spent.

    ``weights_only``: quantize the parameters only (activations stay float32, and count 32 bits).
    """
    edges = measurement["edges"]
    replace, w_bits, w_n, a_bits, a_n = {}, 0.0, 0, 0.0, 0.0
    for name, pe in plan["edges"].items():
        rec = edges[name]
        if rec["op_class"] == "layout":
            continue  # its values are its producer's, quantized there
        is_w = rec["role"] == "parameter"
        shape = runs.values[name][0].shape
        per_channel = is_w and len(shape) >= 2
        if weights_only and not is_w:
            bits = 32.0
        elif "step_index" in pe:  # a resolution plan: the edge's own U_Δ, bits as the plan counts them
            bits = pe["bits"]
            if pe["step_index"] is not None:
                replace[name] = UniformStep(pe["step_index"]).quantize_dequantize
        else:
            g = pe["gauge"]
            sf = gauge(g).site_format
            bits = 32.0 if sf is None else sf.effective_bits(tuple(shape), per_channel)
            if sf is not None:
                replace[name] = _qdq(g, per_channel)
        if is_w:
            w_bits += bits * rec["elements"]
            w_n += rec["elements"]
        else:
            n = rec["elements_per_sample"] or 0.0
            a_bits += bits * n
            a_n += n
    try:
        d = runs.distortion(replace)
        err = None
    except NonFiniteInputError as exc:
        d, err = None, str(exc)
    return {"rule": plan["rule"], "distortion": d, "error": err,
            "weight_bits": w_bits / w_n if w_n else None, "activation_bits": a_bits / a_n if a_n else None,
            "bits": (w_bits + a_bits) / (w_n + a_n) if w_n + a_n else None,
            "weight_elements": w_n, "activation_elements_per_sample": a_n}


def pareto_front(points: list) -> list:
    """DEF-PLAN-APPLY — indices of the points no other point dominates in (bits, distortion), both minimized."""
    ok = [i for i, p in enumerate(points) if p.get("distortion") is not None and p.get("bits") is not None]
    front = []
    for i in ok:
        a = points[i]
        dominated = any(points[j]["bits"] <= a["bits"] and points[j]["distortion"] <= a["distortion"]
                        and (points[j]["bits"] < a["bits"] or points[j]["distortion"] < a["distortion"]) for j in ok if j != i)
        if not dominated:
            front.append(i)
    return front


def compare_plans(runs: GraphRuns, measurement: dict, *, rules=("entropy", "seed", "support", "measured"),
                  uniform=UNIFORM_PLANS, ladder=None) -> dict:
    """DEF-PLAN-APPLY — every rule's derived plan and every uniform plan applied; which lie on the Pareto front."""
    kw = {} if ladder is None else {"ladder": ladder}
    plans = {r: derive_plan(measurement, rule=r, **kw) for r in rules}
    if not plans:
        raise InvalidParameterError("compare_plans: no rule given", value=rules)
    first = next(iter(plans.values()))
    plans.update({f"uniform {f}": uniform_plan(first, f) for f in uniform})
    plans.update({"resolution fixed-rate": resolution_plan(measurement, coded=False),
                  "resolution entropy-coded": resolution_plan(measurement, coded=True)})
    results = [dict(apply_plan(runs, measurement, p), plan=name) for name, p in plans.items()]
    front = set(pareto_front(results))
    for i, r in enumerate(results):
        r["pareto"] = i in front
        r["within_tolerance"] = r["distortion"] is not None and r["distortion"] <= measurement["tolerance"]
    return {"plans": plans, "results": results}


def torchao_config(plan: dict, measurement: dict):
    """DEF-PLAN-EXPORT — a torchao ``FqnToConfig`` quantizing the weight of every Linear whose gauge is intB (B ≤ 8):
    ``IntxWeightOnlyConfig(weight_dtype=torch.intB, granularity=PerAxis(0))``.  Returns (config, {module: gauge}).

    torchao's symmetric scale is absmax/((q_max − q_min)/2) (int4: absmax/7.5), not the plan's absmax/(2^(B−1) − 1):
    the distortion of the export is measured, not assumed (spec/13).
    """
    from natprec.model.deps import require_torch

    torch = require_torch()
    try:
        from torchao.quantization import FqnToConfig, IntxWeightOnlyConfig
        from torchao.quantization.granularity import PerAxis
    except ImportError as exc:
        from natprec.reference.errors import MissingDependencyError

        raise MissingDependencyError(f"the torchao export needs torchao (pip install natprec[oracles]): {exc}",
                                     value="torchao") from None
    chosen = {}
    for name, pe in plan["edges"].items():
        rec = measurement["edges"][name]
        src = rec["source"]
        if rec["role"] != "parameter" or not src.endswith(".weight") or not pe["gauge"].startswith("int"):
            continue
        bits = int(pe["gauge"][3:])
        consumers = [e for e in measurement["edges"].values() if name in e["inputs"] and e["op"] == "linear"]
        if bits <= 8 and consumers:
            chosen[src[: -len(".weight")]] = pe["gauge"]
    cfg = FqnToConfig({m: IntxWeightOnlyConfig(weight_dtype=getattr(torch, g), granularity=PerAxis(0)) for m, g in chosen.items()})
    return cfg, chosen
