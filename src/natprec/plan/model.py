"""DEF-PLAN — ``natprec plan``: capture, measure every edge, derive the plan, apply it and the plans it is compared with."""

from __future__ import annotations

import copy
import time

import numpy as np

from natprec.model.distortion import per_sample_distortion
from natprec.model.measure import DEFAULT_BACKWARD_TOLERANCE, DEFAULT_TOLERANCE, check_tolerance
from natprec.model.runner import MeasuredModel, resolve_device, to_device
from natprec.reference.errors import MissingDependencyError
from natprec.studies import Steps

from .apply import UNIFORM_PLANS, apply_plan, compare_plans, torchao_config
from .capture import capture, compared_output
from .derive import RULES, check_rules, disagreements
from .entropy import GraphRuns, measure_graph, planned_edges
from .epilogue import synthesize_epilogue

__all__ = ["plan_model", "epilogue_at", "DEFAULT_PLAN_RULE", "DEFAULT_PLAN_CALIBRATION", "EPILOGUE_CHANNELS"]

#: Calibration sentences of ``natprec plan`` (each edge costs ~6 model evaluations: keep them short).
DEFAULT_PLAN_CALIBRATION = 8
#: Channels of the first pre-activation accumulator given to the epilogue synthesis in the plan document.
EPILOGUE_CHANNELS = 8

#: The IR's rule: gauges cover the forward entropy at each edge's resolution.
DEFAULT_PLAN_RULE = "entropy"


def plan_model(mm: MeasuredModel, *, tolerance: float = DEFAULT_TOLERANCE, backward_tolerance: float = DEFAULT_BACKWARD_TOLERANCE,
               budget: str = "split", rules=tuple(RULES), uniform=UNIFORM_PLANS, export: bool = True, progress=False,
               device=None) -> dict:
    """DEF-PLAN — the plan document of ``mm`` at ``tolerance``: edges measured, a plan per rule, every plan applied.

    ``budget``: how ε is shared among the edges (:data:`natprec.plan.entropy.BUDGETS`).
    ``doc["plan"]`` is the plan of the first rule (the IR's, by default); ``doc["comparison"]`` holds
    each plan's bits and distortion and whether it lies on the Pareto front; ``doc["export"]``, the
    torchao configuration of the plan's integer weight gauges and the distortion applying it gives
    (when torchao is installed and ``export``).
    """
    tolerance = check_tolerance("--tolerance", tolerance)
    backward_tolerance = check_tolerance("--backward-tolerance", backward_tolerance)
    rules = check_rules("--rules", rules)
    dev = resolve_device(device)
    mm.model.to(dev)
    mm.batches = [to_device(b, dev) for b in mm.batches]
    timing = {}
    t0 = time.perf_counter()
    graph = capture(mm)
    runs = GraphRuns(graph, mm)
    timing["capture_s"] = time.perf_counter() - t0
    steps = Steps("plan", len(planned_edges(graph)), progress)
    t0 = time.perf_counter()
    measurement = measure_graph(runs, tolerance=tolerance, backward_tolerance=backward_tolerance, budget=budget,
                                progress=steps.step)
    timing["measure_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    comparison = compare_plans(runs, measurement, rules=rules, uniform=uniform)
    timing["apply_s"] = time.perf_counter() - t0
    plan = comparison["plans"][rules[0]]
    doc = {"model": mm.description, "distortion": mm.distortion, "tolerance": tolerance, "budget": budget,
           "backward_tolerance": backward_tolerance, "device": dev, "rules": list(rules),
           "unsupported": graph.unsupported, "measurement": measurement, "plan": plan,
           "comparison": comparison["results"], "plans": {k: v for k, v in comparison["plans"].items() if k != rules[0]},
           "timing": timing}
    doc["disagreements"] = disagreements(plan, measurement)
    t0 = time.perf_counter()
    doc["epilogue"] = epilogue_at(runs, measurement)
    timing["epilogue_s"] = time.perf_counter() - t0
    doc["export"] = _export(runs, measurement, plan, mm) if export else None
    doc["timing"]["export_s"] = doc["export"]["seconds"] if doc["export"] else 0.0
    return doc


def epilogue_at(runs: GraphRuns, measurement: dict, *, fmt: str = "int8", channels: int = EPILOGUE_CHANNELS) -> dict | None:
    """DEF-EPILOGUE-SYNTHESIS on the model: the first contraction whose output feeds an activation (gelu, relu,
    silu), its first ``channels`` output channels over the calibration positions, into ``fmt`` (None: no such edge)."""
    acts = {"gelu", "relu", "silu"}
    for name, rec in measurement["edges"].items():
        if rec["op_class"] != "contraction" or rec["role"] == "parameter":
            continue
        users = [e for e in measurement["edges"].values() if name in e["inputs"] and e["op"] in acts]
        if users:
            x = np.concatenate([v.detach().cpu().float().numpy().reshape(-1, v.shape[-1]) for v in runs.values[name]])
            out = synthesize_epilogue(x[:, :channels], fmt, users[0]["op"])
            out["site"] = f"{rec['source'] or name} ({name})"
            return out
    return None


def _export(runs: GraphRuns, measurement: dict, plan: dict, mm: MeasuredModel) -> dict:
    """The plan's weight gauges through torchao on a copy of the model, against the plan's own weights-only prediction."""
    t0 = time.perf_counter()
    try:
        cfg, chosen = torchao_config(plan, measurement)
    except MissingDependencyError as exc:
        return {"error": str(exc), "seconds": time.perf_counter() - t0}
    predicted = apply_plan(runs, measurement, {"rule": plan["rule"], "edges": {
        k: v for k, v in plan["edges"].items()
        if measurement["edges"][k]["source"][: -len(".weight")] in chosen and measurement["edges"][k]["role"] == "parameter"}},
        weights_only=True)
    from torchao.quantization import quantize_

    model = copy.deepcopy(mm.model)
    quantize_(model, cfg, filter_fn=None)
    torch = runs.torch
    d, n = 0.0, 0
    with torch.no_grad():
        for b, ref in enumerate(runs.reference):
            batch = mm.batches[b]
            out = compared_output(mm, model, batch)
            d += float(per_sample_distortion(mm.distortion, ref, out.float(), loss_fn=mm.loss_fn, batch=batch).sum())
            n += ref.shape[0]
    return {"library": "torchao", "modules": chosen, "predicted_distortion": predicted["distortion"],
            "applied_distortion": d / n, "seconds": time.perf_counter() - t0,
            "config": {m: f"IntxWeightOnlyConfig(weight_dtype=torch.{g}, granularity=PerAxis(0))" for m, g in chosen.items()}}
