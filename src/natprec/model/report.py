"""DEF-OPERATIONAL-PRECISION-SITE — the report writer: report.json, PNG plots and one self-contained HTML page."""

from __future__ import annotations

import base64
import html
from pathlib import Path

import numpy as np

from natprec import strictjson
from natprec.reference.errors import InputFileError

from .deps import require_matplotlib
from .info import MARGIN_BINS

__all__ = ["table_rows", "TABLE_HEADERS", "format_table", "write_report", "PLOT_FILES"]

TABLE_HEADERS = ["site", "kind", "shape", "support", "b*", "H_Δ", "β", "best ≤ε (bits)", "b*_v(ε)",
                 "bwd b*", "dual b*", "amplif.", "e_task/actual"]
PLOT_FILES = ("precision_bars.png", "sensitivity_curves.png", "margins.png")


def _g(v, spec=".3g"):
    return "-" if v is None else format(v, spec)


def _bits_cell(b) -> str:
    return ">8" if b is None else str(b)


def table_rows(doc: dict) -> list[list[str]]:
    """One row per site for the terminal table and the HTML page; a failed site shows what it measured."""
    rows = []
    for s in doc["sites"]:
        info, fwd, bwd, jac = s.get("info"), s.get("forward"), s.get("backward"), s.get("jacobian")
        row = [s["site"], s["kind"], "×".join(map(str, s.get("shape", []))) or "-"]
        row += ["-"] * 4 if info is None else [
            str(info["support"]) + ("*" if info["sampled"] else ""),
            str(info["natural_precision_bits"]),
            _g(info["entropy_bits"], ".2f"),
            _g(info["ggd_beta"], ".2f"),
        ]
        if "best_format" in s:
            row.append("none" if s["best_format"] is None else f"{s['best_format']} ({s['best_bits']:g})")
        else:
            row.append("-")
        row.append("-" if fwd is None else _bits_cell(fwd["b_star"]))
        row.append("-" if bwd is None else _bits_cell(bwd["b_star"]))
        row.append(_bits_cell(s["dual_b_star"]) if "dual_b_star" in s else "-")
        row.append(_g(s.get("amplification")))
        row.append("-" if jac is None else f"{jac['e_task']:.3g}/{jac['actual']:.3g}")
        if s.get("error"):
            row.append(f"ERROR {s['error']}")
        rows.append(row)
    return rows


def format_table(doc: dict) -> str:
    """The aligned per-site table printed by ``natprec report``."""
    rows = table_rows(doc)
    cells = [TABLE_HEADERS] + rows
    widths = [max(len(r[i]) for r in cells if i < len(r)) for i in range(len(TABLE_HEADERS))]
    out = []
    for n, r in enumerate(cells):
        out.append("  ".join(c.ljust(widths[i]) if i < len(widths) else c for i, c in enumerate(r)).rstrip())
        if n == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)


def _plots(doc: dict, out: Path) -> list[Path]:
    ok = [s for s in doc["sites"] if not s.get("error")]
    if not ok:
        return []  # nothing measured completely: the table and the errors are the report
    plt = require_matplotlib()
    paths = []
    # 1. b*_v(ε) per site, coloured by the best format within ε.
    names = sorted({s["best_format"] or "none" for s in ok})
    colours = {n: plt.cm.tab20(i % 20) for i, n in enumerate(names)}
    fig, ax = plt.subplots(figsize=(9, max(3, 0.22 * len(ok) + 1)))
    y = np.arange(len(ok))
    vals = [s["forward"]["b_star"] or 9 for s in ok]
    ax.barh(y, vals, color=[colours[s["best_format"] or "none"] for s in ok],
            hatch=None, edgecolor=["black" if s["forward"]["b_star"] is None else "none" for s in ok])
    ax.set_yticks(y, [s["site"] for s in ok], fontsize=6)
    ax.invert_yaxis()
    ax.set_xlabel(f"b*_v(ε) in bits (int family; 9 = none ≤ 8 passes), ε = {doc['tolerance']:g} {doc['distortion']}")
    ax.legend(handles=[plt.Rectangle((0, 0), 1, 1, color=colours[n]) for n in names], labels=names,
              title="best format ≤ ε", fontsize=7, loc="lower right")
    fig.tight_layout()
    paths.append(out / PLOT_FILES[0])
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)
    # 2. Forward sensitivity curves Δ→_v(b), weights and activations apart.
    kinds = [k for k in ("weight", "input", "output") if any(s["kind"] == k for s in ok)]
    fig, axes = plt.subplots(1, len(kinds), figsize=(5.5 * len(kinds), 4), squeeze=False)
    for ax, k in zip(axes[0], kinds):
        for s in ok:
            if s["kind"] != k:
                continue
            c = sorted((int(b), v) for b, v in s["forward"]["curve"].items())
            ax.plot([b for b, _ in c], [max(v, 1e-12) for _, v in c], "o-", ms=3, lw=0.8, alpha=0.7)
        ax.axhline(doc["tolerance"], color="red", ls="--", lw=1, label="ε")
        ax.set_yscale("log")
        ax.set_xlabel("bits b (int family; points measured)")
        ax.set_ylabel(f"Δ→_v(b) ({doc['distortion']})")
        ax.set_title(f"{k} sites")
        ax.legend(fontsize=7)
    fig.tight_layout()
    paths.append(out / PLOT_FILES[1])
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)
    # 3. Voronoi margin histograms per format, pooled over the sites.
    fmts = [f["name"] for f in doc["formats"]]
    cols = min(4, len(fmts))
    rows_n = -(-len(fmts) // cols)
    fig, axes = plt.subplots(rows_n, cols, figsize=(3.2 * cols, 2.4 * rows_n), squeeze=False)
    centers = np.sqrt(np.maximum(MARGIN_BINS[:-1], 1e-7) * MARGIN_BINS[1:])
    for ax, name in zip(axes.ravel(), fmts):
        h = np.zeros(len(MARGIN_BINS) - 1)
        for s in ok:
            for fi in s["format_info"]:
                if fi["format"] == name:
                    h += fi["margin_histogram"]
        ax.bar(np.arange(h.size), h, width=1.0)
        ticks = np.arange(0, h.size, 7)
        ax.set_xticks(ticks, [f"{centers[i]:.0e}" for i in ticks], fontsize=6)
        ax.set_title(name, fontsize=8)
        ax.set_yscale("log")
    for ax in axes.ravel()[len(fmts):]:
        ax.axis("off")
    fig.suptitle("Voronoi margin γ (codebook units) of sampled elements, all sites", fontsize=9)
    fig.tight_layout()
    paths.append(out / PLOT_FILES[2])
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)
    return paths


def _html(doc: dict, pngs: list[Path]) -> str:
    esc = html.escape
    head = "".join(f"<th>{esc(h)}</th>" for h in TABLE_HEADERS)
    body = "".join("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in r) + "</tr>" for r in table_rows(doc))
    imgs = "".join(f'<h2>{esc(p.stem.replace("_", " "))}</h2><img alt="{esc(p.stem)}" '
                   f'src="data:image/png;base64,{base64.b64encode(p.read_bytes()).decode()}">' for p in pngs)
    failed = [s for s in doc["sites"] if s.get("error")]
    extra = [f"{len(failed)} of {len(doc['sites'])} site(s) failed; each shows what it measured before its error."] if failed else []
    if not pngs and len(failed) == len(doc["sites"]):
        extra.append("No plots: no site was measured completely.")
    notes = "".join(f"<li>{esc(n)}</li>" for n in list(doc["notes"]) + extra)
    t = doc["timing"]
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>natprec report — {esc(doc['model'])}</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse;font-size:12px}}
td,th{{border:1px solid #ccc;padding:2px 6px;text-align:right}}td:first-child{{text-align:left}}img{{max-width:100%}}</style>
</head><body>
<h1>natprec report</h1>
<p>Model: <b>{esc(doc['model'])}</b>. Distortion D: <b>{esc(doc['distortion'])}</b> of the model output
(mean over {doc['calibration_samples']} calibration samples in {doc['calibration_batches']} batches);
ε = {doc['tolerance']:g}; backward ε = {doc['backward_tolerance']:g} (relative, {esc(doc['backward_loss'])}).
Each site is quantized alone, the rest of the network in float32. b*_v(ε) = min b of the int family with Δ→_v(b) ≤ ε
({'full sweep' if doc['sites'] and doc['sites'][0].get('forward', {}).get('search') == 'sweep' else 'bisection, assuming Δ nonincreasing in b'}).
Support marked * was measured on a seeded sample of {doc['max_tensor_elements']} elements.
Total {sum(t.values()):.1f} s.</p>
<ul>{notes}</ul>
<table><tr>{head}</tr>{body}</table>
{imgs}
</body></html>
"""


def write_report(doc: dict, out_dir, *, plots: bool = True) -> dict:
    """Write report.json, the PNG plots and report.html into ``out_dir``; returns {kind: path}."""
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputFileError(f"--out {out_dir}: cannot create the directory ({exc})", value=str(out_dir)) from None
    paths = {"json": out / "report.json"}
    paths["json"].write_text(strictjson.dumps(doc, indent=1), encoding="utf-8")
    pngs = _plots(doc, out) if plots else []
    paths["png"] = pngs
    paths["html"] = out / "report.html"
    paths["html"].write_text(_html(doc, pngs), encoding="utf-8")
    return paths
