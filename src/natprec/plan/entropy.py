"""DEF-IR-ENTROPY — every edge of the captured graph measured on calibration data.

For each planned edge (a node that makes new values: not a layout op) the forward entropy
H_fwd = H(U_Δe(x)) at the edge's own resolution Δ_e(ε) — the coarsest grid step whose uniform
quantizer, applied to this edge alone, keeps the task distortion within ε (the search of
DEF-SITE-RESOLUTION, run on the graph) — with the cells' natural precision b*_Δ; the
backward entropy H_bwd = H(U_Δ←(g)) of the gradient at the coarsest step whose relative error
Σ‖g − U(g)‖²/Σ‖g‖² is within ε_bwd; and b*_v(ε), the fewest integer bits (absmax-scaled:
per output channel for a 2-D or larger parameter, per tensor otherwise) that keep the task
distortion within ε with this edge alone quantized.  Integer edges (ids, masks) carry their
exact support and plug-in entropy.  Layout edges (views, transposes, dropout in eval) carry
their producer's values and its measurement.
"""

from __future__ import annotations

import math
import time

import numpy as np

from natprec.model.deps import require_torch
from natprec.model.distortion import per_sample_distortion
from natprec.model.measure import check_tolerance
from natprec.model.quantize import INT_BITS, site_format
from natprec.model.resolution import UniformStep, grid_step, resolution_entropy, resolution_search, search_window, step_index_above
from natprec.model.runner import MeasuredModel
from natprec.model.sensitivity import PROBE_SEED, monotone_search
from natprec.reference import discretized_histogram, entropy_bits_from_counts, natural_precision, realized_support
from natprec.reference.errors import InvalidParameterError, NaNInputError, NonFiniteInputError

from .capture import IRGraph
from .ir import SEMANTIC_TYPES

__all__ = ["BUDGETS", "GraphRuns", "measure_graph", "planned_edges", "value_source", "input_derived", "SENTINEL", "sentinel_safe"]

#: |v| ≥ 2^100: a mask sentinel (finfo.min or −inf added to masked attention scores), carried exactly by every
#: quantizer of the plan and left out of its scales — it encodes the input's mask, not a value of the model.
SENTINEL = 2.0 ** 100


def sentinel_safe(fn):
    """DEF-IR-ENTROPY — ``fn`` (a numpy quantizer) applied with mask sentinels set to 0 first and restored after."""
    def q(x):
        s = np.abs(x) >= SENTINEL
        if not s.any():
            return fn(x)
        y = fn(np.where(s, np.float32(0), x))
        return np.where(s, x, y).astype(np.float32)
    return q


def value_source(graph: IRGraph, name: str) -> str:
    """DEF-IR-ENTROPY — the edge whose values ``name`` carries: itself, or for a layout op its first input's source."""
    n = graph.nodes[name]
    while n.op_class == "layout" and n.inputs:
        n = graph.nodes[n.inputs[0]]
    return n.name


def planned_edges(graph: IRGraph) -> list:
    """DEF-IR-ENTROPY — the floating edges that make new values (parameters and non-layout ops), in graph order."""
    derived = input_derived(graph)
    return [n for n in (graph.nodes[k] for k in graph.order) if n.floating and n.op_class != "layout" and n.name not in derived]


def input_derived(graph: IRGraph) -> set:
    """DEF-IR-ENTROPY — edges computed from the model's inputs alone (no parameter upstream): ids, masks, positions."""
    out: set = set()
    for name in graph.order:
        n = graph.nodes[name]
        # no inputs at all (arange, zeros): a constant of the graph, as input-derived as anything
        if n.role == "input" or (n.role != "parameter" and all(i in out for i in n.inputs)) \
                or (n.role == "parameter" and not n.floating):
            out.add(name)
    return out


def _semantic(graph: IRGraph, node, values, from_inputs: bool) -> str:
    if not node.floating or from_inputs:
        users = [c for c in graph.consumers(node.name) if c.op == "embedding"]
        if users:
            return "tokens"
        return "mask" if np.isin(values, (0, 1)).all() else "index"
    if node.role == "parameter":
        return "weights"
    if node.role == "output":
        return "output"
    return "probabilities" if node.op in ("softmax", "_softmax") else "activations"


def _to_numpy(t) -> np.ndarray:
    return t.detach().cpu().float().numpy() if t.is_floating_point() else t.detach().cpu().numpy()


class GraphRuns:
    """DEF-IR-ENTROPY — the tapped graph on the calibration batches: its float32 outputs and every edge's values
    (one recording pass), then the task distortion with some edges replaced, and gradients through edges."""

    def __init__(self, graph: IRGraph, mm: MeasuredModel):
        self.torch = require_torch()
        self.graph, self.mm = graph, mm
        self.evaluations = 0
        graph.tap.record = {}
        with self.torch.no_grad():
            self.reference = [graph.run(mm, b).detach().float() for b in range(len(mm.batches))]
        for b, r in enumerate(self.reference):
            if r.ndim == 0:
                raise InvalidParameterError(f"calibration batch {b}: the compared output needs a sample axis", value=b)
            if not bool(self.torch.isfinite(r).all()):
                raise NonFiniteInputError(f"calibration batch {b}: the float32 model output is not finite", value=b)
        self.values = graph.tap.record
        graph.tap.record = None

    def distortion(self, replace: dict) -> float:
        """Mean task distortion over the calibration samples with ``replace`` {edge: numpy function} installed;
        +inf when the replacement makes the output (or a later replaced edge) non-finite: it fails every ε."""
        torch = self.torch

        def wrap(fn):
            return lambda x: torch.from_numpy(np.ascontiguousarray(fn(_to_numpy(x)))).to(x.device, x.dtype)

        self.graph.tap.replace = {k: wrap(sentinel_safe(f)) for k, f in replace.items()}
        d, n = 0.0, 0
        self.evaluations += 1
        try:
            with torch.no_grad():
                for b, ref in enumerate(self.reference):
                    try:
                        out = self.graph.run(self.mm, b)
                    except (NaNInputError, NonFiniteInputError):  # a replaced edge overflowed and a later one met it
                        return math.inf
                    if not bool(torch.isfinite(out).all()):
                        return math.inf
                    d += float(per_sample_distortion(self.mm.distortion, ref, out.float(), loss_fn=self.mm.loss_fn,
                                                     batch=self.mm.batches[b]).sum())
                    n += ref.shape[0]
        finally:
            self.graph.tap.replace = {}
        return d / n

    def gradients(self, names: list) -> dict:
        """∂L/∂edge for every edge in ``names`` (L: the model's loss, or the probe loss of DEF-BACKWARD-SENSITIVITY)."""
        torch = self.torch
        grads = {k: [] for k in names}
        params = [p for p in self.graph.module.parameters()]
        flags = [p.requires_grad for p in params]
        for p in params:
            p.requires_grad_(True)
        try:
            for b, batch in enumerate(self.mm.batches):
                self.graph.tap.keep = {}
                with torch.enable_grad():
                    out = self.graph.run(self.mm, b)
                    if self.mm.loss_fn is not None:
                        loss = self.mm.loss_fn(out, batch).sum()
                    else:
                        g = torch.Generator().manual_seed(PROBE_SEED + b)
                        loss = (torch.randn(out.shape, generator=g, dtype=out.dtype).to(out.device) * out).sum()
                    kept = {k: v for k, v in self.graph.tap.keep.items() if k in grads}
                    got = torch.autograd.grad(loss, list(kept.values()), allow_unused=True)
                for k, g in zip(kept, got):
                    if g is not None:
                        grads[k].append(_to_numpy(g))
        finally:
            self.graph.tap.keep = None
            for p, f in zip(params, flags):
                p.requires_grad_(f)
        return grads


def _int_qdq(bits: int, per_channel: bool):
    fmt = site_format(f"int{bits}")
    return lambda x: fmt.quantize_dequantize(x, per_channel=per_channel)


def _backward(grads: list, tolerance: float) -> dict | None:
    """Δ← and H_bwd of the gradient tensors of one edge (None when the gradient is zero or absent)."""
    if not grads:
        return None
    g = np.concatenate([a.ravel() for a in grads]).astype(np.float32)
    den = float(np.sum(g.astype(np.float64) ** 2))
    if den == 0.0:
        return None

    def rel(k):
        q = UniformStep(k).quantize_dequantize(g)
        return float(np.sum((q.astype(np.float64) - g) ** 2)) / den

    window = search_window(g)
    k = resolution_search(rel, step_index_above(math.sqrt(12 * tolerance * den / g.size)), window, tolerance)
    if k is None:
        return None
    e = resolution_entropy(g, k)
    return {"step": grid_step(k), "entropy_bits": e["entropy_bits"], "cells_bits": e["cells_bits"]}


#: How the task tolerance ε is shared: "split" gives each of the N planned edges ε/N (errors of independent
#: small perturbations add to first order), "each" gives every edge ε alone (as ``natprec report`` measures sites).
BUDGETS = ("split", "each")


def measure_graph(runs: GraphRuns, *, tolerance: float, backward_tolerance: float, budget: str = "split",
                  progress=None) -> dict:
    """DEF-IR-ENTROPY — {edge name: record} for every edge of the graph; planned edges measured, layout edges pointing
    at their source, each searched at its share of ε (``budget``).  ``progress(what)``: called after each planned edge."""
    tolerance = check_tolerance("--tolerance", tolerance)
    backward_tolerance = check_tolerance("--backward-tolerance", backward_tolerance)
    if budget not in BUDGETS:
        raise InvalidParameterError(f"--budget must be one of {', '.join(BUDGETS)}; got {budget!r}", value=budget)
    graph = runs.graph
    share = tolerance / len(planned_edges(graph)) if budget == "split" else tolerance
    edges = planned_edges(graph)
    t0 = time.perf_counter()
    grads = runs.gradients([e.name for e in edges])
    timing = {"gradients_s": time.perf_counter() - t0, "forward_s": 0.0}
    records = {}
    derived = input_derived(graph)
    for name in graph.order:
        node = graph.nodes[name]
        vals = runs.values.get(name, [])
        rec = {"node": name, "op": node.op, "op_class": node.op_class, "role": node.role, "source": node.source,
               "inputs": list(node.inputs), "dtype": node.dtype, "value_of": value_source(graph, name), "error": None,
               "elements_per_sample": None, "elements": int(sum(v.numel() for v in vals))}
        if vals and vals[0].ndim and node.role != "parameter":
            rec["elements_per_sample"] = rec["elements"] / sum(r.shape[0] for r in runs.reference)
        records[name] = rec
        if not vals or (node.floating and node.op_class == "layout"):
            continue
        x = np.concatenate([_to_numpy(v).ravel() for v in (vals[:1] if node.role == "parameter" else vals)])
        rec["semantic"] = _semantic(graph, node, x, name in derived)
        if not node.floating or name in derived:
            supp = realized_support(x.astype(np.float64))
            rec.update(support=int(supp.size), entropy_bits=entropy_bits_from_counts(supp.counts),
                       cells_bits=natural_precision(support_size=int(supp.size)))
            if rec["semantic"] == "tokens":
                rows = [graph.nodes[c.inputs[0]] for c in graph.consumers(name) if c.op == "embedding"]
                rec["bound_bits"] = math.log2(runs.values[rows[0].name][0].shape[0]) if rows else None
            else:
                rec["bound_bits"] = SEMANTIC_TYPES[rec["semantic"]].bound_bits
            continue
        t0 = time.perf_counter()
        try:
            rec.update(_forward(runs, name, node, vals, x, share))
        except (NonFiniteInputError, ValueError, RuntimeError) as exc:
            rec["error"] = f"{type(exc).__name__}: {exc}"
        timing["forward_s"] += time.perf_counter() - t0
        rec["backward"] = _backward(grads.get(name, []), backward_tolerance)
        if progress is not None:
            progress(name)
    return {"tolerance": tolerance, "backward_tolerance": backward_tolerance, "budget": budget, "edge_tolerance": share,
            "edges": records, "timing": timing,
            "evaluations": runs.evaluations,
            "calibration_samples": int(sum(r.shape[0] for r in runs.reference))}


def _cell_entropy(x: np.ndarray, v: np.ndarray, k: int) -> tuple[float, int]:
    """H and b* of U_Δk(x): the model's values v in the grid's cells, each distinct sentinel a cell of its own."""
    d = grid_step(k)
    counts = discretized_histogram(v.astype(np.float32), d, origin=-d / 2).counts
    if v.size < x.size:
        counts = np.concatenate([counts, np.unique(x[np.abs(x) >= SENTINEL], return_counts=True)[1]])
    return entropy_bits_from_counts(counts), natural_precision(support_size=int(counts.size))


def _forward(runs: GraphRuns, name: str, node, vals: list, x: np.ndarray, tolerance: float) -> dict:
    """Δ_e(ε), H_fwd, b*_Δ and b*_v(ε) of one floating edge."""
    per_channel = node.role == "parameter" and vals[0].ndim >= 2
    v = x[np.abs(x) < SENTINEL]  # the model's values; mask sentinels are carried exactly (SENTINEL)
    if not np.any(v):
        return {"constant": True, "step": None, "step_index": None, "entropy_bits": 0.0, "cells_bits": 0, "b_star": min(INT_BITS),
                "int_curve": {}, "sentinels": int(x.size - v.size)}
    amax = float(np.max(np.abs(v)))
    std = float(np.std(v.astype(np.float64)))
    start = step_index_above(max(std, amax * 2.0 ** -20) / 16)
    k = resolution_search(lambda j: runs.distortion({name: UniformStep(j).quantize_dequantize}), start,
                          search_window(v), tolerance)
    b_star, curve = monotone_search(lambda b: runs.distortion({name: _int_qdq(b, per_channel)}), list(INT_BITS), tolerance)
    out = {"constant": False, "b_star": b_star, "int_curve": {str(b): d for b, d in sorted(curve.items())},
           "per_channel": per_channel, "crest_bits": math.log2(amax / std) if std > 0 else None,
           "sentinels": int(x.size - v.size)}
    if k is None:
        out.update(step=None, step_index=None, entropy_bits=None, cells_bits=None)
    else:
        h, cells = _cell_entropy(x, v, k)
        out.update(step=grid_step(k), step_index=k, entropy_bits=h, cells_bits=cells)
    return out
