"""DEF-PLAN — the plan as people read it: a table of plans, the domains, the costliest boundaries, and a picture."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from natprec.model.deps import require_matplotlib

__all__ = ["plan_lines", "plan_figure"]


def _g(v, spec=".3g") -> str:
    return "-" if v is None else format(v, spec)


def plan_lines(doc: dict) -> list[str]:
    """DEF-PLAN — the readable summary of a plan document (what ``natprec plan`` prints)."""
    m = doc["measurement"]
    plan = doc["plan"]
    lines = [f"ε = {doc['tolerance']:g} ({doc['distortion']} of the output, {m['calibration_samples']} samples); "
             f"budget {doc['budget']}: each of {sum(1 for e in m['edges'].values() if 'constant' in e)} measured edges searched at "
             f"ε_e = {m['edge_tolerance']:.3g}; {m['evaluations']} model evaluations",
             "", "plans applied at every edge at once (bits: element-weighted mean over weights and one sample's activations):",
             f"  {'plan':28s} {'bits':>6s} {'weights':>8s} {'activ.':>7s} {'D':>10s}  ≤ε  Pareto"]
    for r in doc["comparison"]:
        lines.append(f"  {r['plan']:28s} {_g(r['bits'], '.2f'):>6s} {_g(r['weight_bits'], '.2f'):>8s} "
                     f"{_g(r['activation_bits'], '.2f'):>7s} {_g(r['distortion'], '.3g'):>10s}  "
                     f"{'yes' if r['within_tolerance'] else 'no ':3s} {'yes' if r['pareto'] else 'no'}")
    gauges = Counter(d["gauge"] for d in plan["domains"])
    lines += ["", f"derived plan (rule {plan['rule']}: {plan['rule_text']}): {len(plan['domains'])} domains "
              f"({', '.join(f'{n} {g}' for g, n in sorted(gauges.items()))}), {len(plan['boundaries'])} boundaries"]
    fus = Counter(b["fusion"] for b in plan["boundaries"])
    lines.append("  boundaries: " + ", ".join(f"{n} {k}" for k, n in sorted(fus.items()))
                 + " (fuse: free and element-wise next; reduction: free but needs fresh statistics; "
                   "materialize: free, into a contraction; not free: H_source > b_target)")
    costly = sorted((b for b in plan["boundaries"] if b["cost_j"]), key=lambda b: -b["cost_j"])[:5]
    for b in costly:
        lines.append(f"  {b['from']} → {b['to']}: H = {b['h_source_bits']:.2f} bits into {b['target_gauge']} "
                     f"({b['b_target_bits']:.0f} bits): {b['cost_j_per_element']:.3g} J/element, {b['cost_j']:.3g} J per sample")
    dis = doc.get("disagreements") or []
    n = sum(1 for e in m["edges"].values() if e.get("constant") is False)
    below = sum(1 for d in dis if d["b_star"] is None or d["gap_bits"] < 0)
    lines += ["", f"derived gauge vs b*_v(ε_e): {n - len(dis)} of {n} edges agree; {below} get fewer bits than the task needs, "
              f"{len(dis) - below} more"]
    for d in dis[:3]:
        lines.append(f"  {d['edge']} ({d['source'] or '-'}): {d['gauge']} vs b*_v "
                     + (">8" if d["b_star"] is None else str(d["b_star"])))
    if doc.get("epilogue"):
        e = doc["epilogue"]
        lines += ["", f"epilogue synthesis at {e['site']} ({e['activation']} → {e['format']}, {len(e['channels'])} channels): "
                  f"{e['injective']} injective, {e['impossible']} proved impossible, {e['unresolved']} unresolved"]
    ex = doc.get("export")
    if ex and "error" not in ex:
        lines += ["", f"export to {ex['library']} ({len(ex['modules'])} Linear weights): predicted D = "
                  f"{_g(ex['predicted_distortion'])}, applied D = {_g(ex['applied_distortion'])} (weights only)"]
    elif ex:
        lines += ["", f"export: {ex['error']}"]
    if doc["unsupported"]:
        lines += ["", f"not planned: {len(doc['unsupported'])} node(s), e.g. "
                  + "; ".join(f"{u['node']} ({u['reason']})" for u in doc["unsupported"][:3])]
    return lines


def plan_figure(doc: dict, out_dir) -> list:
    """DEF-PLAN — plan.png: every planned edge in graph order at its gauge's capacity, coloured by domain, with the
    boundaries that are not free drawn and labelled with their cost; beside it, bits vs D of every plan."""
    plt = require_matplotlib()
    plan = doc["plan"]
    names = list(plan["edges"])
    pos = {n: i for i, n in enumerate(names)}
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(15, 5.5), gridspec_kw={"width_ratios": [3, 1.3]})
    cmap = plt.get_cmap("tab20")
    for d in plan["domains"]:
        xs = [pos[n] for n in d["edges"]]
        ax.scatter(xs, [d["capacity_bits"]] * len(xs), s=10, color=cmap(d["id"] % 20))
    for b in plan["boundaries"]:
        if not b["free"] and b["cost_j"]:
            x0, x1 = pos[b["from"]], pos[b["to"]]
            y0 = plan["edges"][b["from"]]["capacity_bits"]
            ax.annotate("", xy=(x1, b["b_target_bits"]), xytext=(x0, y0), arrowprops={"arrowstyle": "->", "color": "0.4", "lw": 0.6})
    top = sorted((b for b in plan["boundaries"] if b["cost_j"]), key=lambda b: -b["cost_j"])[:6]
    for b in top:
        ax.annotate(f"{b['cost_j']:.2g} J", (pos[b["to"]], b["b_target_bits"]), fontsize=7, xytext=(3, 3), textcoords="offset points")
    ax.set_xlabel("edge (graph order)")
    ax.set_ylabel("gauge capacity (bits)")
    ax.set_yscale("log", base=2)
    ax.set_title(f"{doc['model']}: {len(plan['domains'])} domains (colours), costly boundaries (arrows, J per sample)")
    for r in doc["comparison"]:
        if r["bits"] is None or r["distortion"] is None:
            continue
        bx.scatter(r["bits"], r["distortion"], marker="o" if r["pareto"] else "x")
        bx.annotate(r["plan"], (r["bits"], r["distortion"]), fontsize=7, xytext=(3, 2), textcoords="offset points")
    bx.axhline(doc["tolerance"], color="0.5", ls="--", lw=0.8)
    bx.set_yscale("log")
    bx.set_xlabel("bits per element")
    bx.set_ylabel(f"task distortion D ({doc['distortion']})")
    bx.set_title("plans: bits vs D (o: Pareto front; dashed: ε)")
    fig.tight_layout()
    path = Path(out_dir) / "plan.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return [path]
