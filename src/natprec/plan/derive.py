"""DEF-PLAN-DERIVE, DEF-PLAN-BOUNDARY — a precision plan derived from the measured entropies.

Gauge of an edge = the least-capacity gauge of the ladder whose capacity covers the edge's bits
under the plan's rule (no search over formats); domains = maximal connected regions of equal
gauge; boundaries = graph edges between domains, each with its Landauer cost and whether the
conversion can be fused into an epilogue.
"""

from __future__ import annotations

from natprec.reference import boundary_cost_joules, is_free_boundary
from natprec.reference.errors import InvalidParameterError

from .ir import DEFAULT_LADDER, FLOAT32, gauge, smallest_covering

__all__ = ["RULES", "check_rules", "edge_bits", "derive_plan", "disagreements", "FUSABLE_CLASSES", "REDUCTION_CLASSES"]

#: What a plan covers, per edge: the forward entropy (the IR's own rule), the seed's min(H_fwd, H_bwd),
#: the natural precision of the support at the edge's resolution, or the measured b*_v(ε).
RULES = {
    "entropy": "H_fwd: the entropy of the edge at its resolution Δ_e(ε) (the IR's rule)",
    "seed": "min(H_fwd, H_bwd): seed 000 §4.3's effective entropy",
    "support": "b*_Δ = ⌈log2 |supp U_Δe(x)|⌉: the support at the edge's resolution",
    "measured": "b*_v(ε): the fewest int bits measured to keep D within ε, this edge alone quantized",
}
#: Consumers next to which a free boundary is fused (per element: scale, bias, clamp, activation, add, conversion).
FUSABLE_CLASSES = ("elementwise", "layout")
#: Consumers that need fresh statistics of a whole row (layernorm, softmax): a boundary there is not fused.
REDUCTION_CLASSES = ("reduction",)


def check_rules(flag: str, rules) -> tuple:
    """DEF-PLAN-DERIVE — a non-empty list of rule names (comma-separated or iterable), else InvalidParameterError naming ``flag``."""
    names = tuple(r.strip() for r in (rules.split(",") if isinstance(rules, str) else rules) if r.strip())
    bad = [r for r in names if r not in RULES]
    if bad or not names:
        raise InvalidParameterError(f"{flag}: unknown rule(s) {bad or list(names)}; known: {', '.join(RULES)}", value=rules)
    return names


def edge_bits(rec: dict, rule: str) -> float | None:
    """DEF-PLAN-DERIVE — the bits ``rule`` asks the edge's gauge to cover (None: not measured — float32)."""
    if rule not in RULES:
        raise InvalidParameterError(f"--rule must be one of {', '.join(RULES)}; got {rule!r}", value=rule)
    if rec.get("error") or rec.get("constant") is None:
        return None
    if rec["constant"]:
        return 0.0
    h = rec.get("entropy_bits")
    if rule == "entropy":
        return h
    if rule == "seed":
        hb = (rec.get("backward") or {}).get("entropy_bits")
        return h if hb is None or h is None else min(h, hb)
    if rule == "support":
        return rec.get("cells_bits")
    return rec.get("b_star")


def _gauge_of(rec: dict, rule: str, ladder) -> tuple[str, float | None]:
    bits = edge_bits(rec, rule)
    if bits is None:
        return FLOAT32, None
    return smallest_covering(bits, ladder).format, bits


def derive_plan(measurement: dict, *, rule: str = "entropy", ladder=DEFAULT_LADDER, temperature_kelvin: float = 300.0) -> dict:
    """DEF-PLAN-DERIVE — gauges, domains and boundaries from ``measurement`` (natprec.plan.measure_graph's document).

    Integer edges (ids, masks) keep their integer type: they form no domain and cross no
    planned boundary.  Layout edges take the gauge of the values they carry.
    """
    if rule not in RULES:
        raise InvalidParameterError(f"--rule must be one of {', '.join(RULES)}; got {rule!r}", value=rule)
    for name in ladder:
        gauge(name)
    edges = measurement["edges"]
    plan_edges = {}
    for name, rec in edges.items():
        src = edges[rec["value_of"]]
        if src.get("semantic") in (None, "tokens", "mask", "index") or rec["dtype"].startswith(("int", "bool", "uint")):
            continue
        g, bits = _gauge_of(src, rule, ladder)
        plan_edges[name] = {"gauge": g, "capacity_bits": gauge(g).capacity_bits, "bits": bits,
                            "entropy_bits": src.get("entropy_bits"), "value_of": rec["value_of"], "op": rec["op"],
                            "op_class": rec["op_class"], "role": rec["role"]}
    domains = _domains(edges, plan_edges)
    boundaries = _boundaries(edges, plan_edges, domains, temperature_kelvin)
    return {"rule": rule, "rule_text": RULES[rule], "ladder": list(ladder), "edges": plan_edges,
            "domains": domains, "boundaries": boundaries, "temperature_kelvin": temperature_kelvin}


def _domains(edges: dict, plan_edges: dict) -> list:
    """Union–find over producer → consumer pairs of equal gauge."""
    parent = {n: n for n in plan_edges}

    def find(n):
        while parent[n] != n:
            parent[n] = parent[parent[n]]
            n = parent[n]
        return n
    for name in plan_edges:
        for src in edges[name]["inputs"]:
            if src in plan_edges and plan_edges[src]["gauge"] == plan_edges[name]["gauge"]:
                parent[find(src)] = find(name)
    groups: dict = {}
    for name in plan_edges:
        groups.setdefault(find(name), []).append(name)
    out = []
    for i, members in enumerate(sorted(groups.values(), key=lambda m: list(plan_edges).index(m[0]))):
        hs = [plan_edges[m]["bits"] for m in members if plan_edges[m]["bits"] is not None]
        g = plan_edges[members[0]]["gauge"]
        for m in members:
            plan_edges[m]["domain"] = i
        out.append({"id": i, "gauge": g, "capacity_bits": gauge(g).capacity_bits, "edges": members,
                    "max_bits": max(hs) if hs else None})
    return out


def _boundaries(edges: dict, plan_edges: dict, domains: list, temperature: float) -> list:
    out = []
    for name, pe in plan_edges.items():
        for src in edges[name]["inputs"]:
            if src not in plan_edges or plan_edges[src]["domain"] == pe["domain"]:
                continue
            s = plan_edges[src]
            h = s["entropy_bits"] if s["entropy_bits"] is not None else s["bits"]
            b = pe["capacity_bits"]
            free = h is not None and is_free_boundary(h, b)
            cls = pe["op_class"]
            fusion = ("fuse" if cls in FUSABLE_CLASSES else "reduction" if cls in REDUCTION_CLASSES else "materialize") \
                if free else "not free"
            per = None if h is None else boundary_cost_joules(h, b, temperature)
            n = edges[src].get("elements_per_sample") or edges[src]["elements"]
            out.append({"from": src, "to": name, "from_domain": s["domain"], "to_domain": pe["domain"],
                        "source_gauge": s["gauge"], "target_gauge": pe["gauge"], "h_source_bits": h, "b_target_bits": b,
                        "cost_j_per_element": per, "cost_j": None if per is None else per * n,
                        "elements": n, "free": free, "fusion": fusion})
    return out


def disagreements(plan: dict, measurement: dict) -> list:
    """DEF-PLAN-DERIVE — the planned edges (not layout) whose derived gauge's capacity differs from the int bits
    measured to keep D within the edge's ε, b*_v(ε_e) (None: beyond int8), largest gap first."""
    out = []
    for name, pe in plan["edges"].items():
        rec = measurement["edges"][name]
        if rec["op_class"] == "layout" or rec.get("constant") is None or rec.get("constant"):
            continue
        b = rec.get("b_star")
        cap = pe["capacity_bits"]
        if b is None or cap != b:
            out.append({"edge": name, "source": rec.get("source", ""), "gauge": pe["gauge"], "capacity_bits": cap,
                        "b_star": b, "gap_bits": None if b is None else cap - b})
    return sorted(out, key=lambda d: -(abs(d["gap_bits"]) if d["gap_bits"] is not None else 99))
