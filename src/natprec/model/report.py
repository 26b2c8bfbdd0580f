"""DEF-OPERATIONAL-PRECISION-SITE — the report writer: report.json, PNG plots and one self-contained HTML page."""

from __future__ import annotations

import base64
import html
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from natprec import strictjson
from natprec.reference.errors import InputFileError

from .claim import NONE_PASSES_BITS
from .deps import require_matplotlib
from .distortion import DISTORTION_UNITS
from .info import MARGIN_BINS
from .resolution import STEPS_PER_OCTAVE
from .summary import resolution_row, summary_lines

__all__ = ["table_rows", "TABLE_HEADERS", "TABLE_LEGEND", "TERMINAL_COLUMNS", "format_table", "legend_lines", "claim_lines",
           "write_report", "PLOT_FILES"]

TABLE_HEADERS = ["site", "kind", "shape", "support", "b*", "β", "crest", "Δv(ε)", "b_H(ε)", "b*_Δ(ε)", "b*_v(ε)", "best ≤ε (bits)",
                 "bwd b*", "dual b*", "amplif.", "e_task/actual"]
PLOT_FILES = ("precision_bars.png", "sensitivity_curves.png", "margins.png", "claim.png", "bits_vs_tolerance.png")
#: The columns the terminal shows (about 120 characters wide); report.html and report.json have them all.
TERMINAL_COLUMNS = ["site", "kind", "shape", "crest", "b_H(ε)", "b*_Δ(ε)", "b*_v(ε)", "best ≤ε (bits)", "dual b*", "amplif."]
#: One line per table column (terminal and HTML); the spec IDs say where each is defined (spec/11).
TABLE_LEGEND = {
    "site": "a weight (<module>.<param>) or the input activation of a module call (<module>:input) — DEF-SITE",
    "kind": "weight or input (activation)",
    "shape": "weights: the tensor; activations: real positions of all calibration batches × features",
    "support": "distinct values of the whole site (float32: nearly every element) — DEF-SUPPORT",
    "b*": "⌈log2 support⌉: a lossless code of the float32 values, not the task's need — DEF-NATURAL-PRECISION",
    "β": "shape of a generalized Gaussian fitted to the weights (2 Gaussian, 1 Laplace; ≥/≤ marks the fit's range end)",
    "crest": "log2(max|x| / std): how far the largest value sits out, in bits",
    "Δv(ε)": "the coarsest uniform step that keeps D within ε, this site alone quantized — DEF-SITE-RESOLUTION",
    "b_H(ε)": "entropy of the site at Δv(ε): bits per element an ideal code needs — DEF-INFORMATION-PRECISION",
    "b*_Δ(ε)": "⌈log2 (values distinct at Δv(ε))⌉: fixed-rate bits at that resolution — DEF-INFORMATION-PRECISION",
    "b*_v(ε)": "fewest int bits (absmax-scaled) with D within ε; >8: none up to 8 — DEF-OPERATIONAL-PRECISION-SITE",
    "best ≤ε (bits)": "candidate format with the fewest bits spent on this site among those within ε (scalings below)",
    "bwd b*": "fewest int bits with the relative gradient error within the backward ε — DEF-BACKWARD-SENSITIVITY",
    "dual b*": "fewest int bits meeting both the forward and the backward criterion — DEF-DUAL-PRECISION",
    "amplif.": "output MSE / site MSE at int-b*_v: how much the network amplifies this site's error — DEF-AMPLIFICATION",
    "e_task/actual": "first-order (Jacobian) estimate of the output error vs the measured one, at int-b*_v — DEF-JACOBIAN-PROXY",
}



def _g(v, spec=".3g"):
    return "-" if v is None else format(v, spec)


def _beta_cell(info: dict) -> str:
    """β, or ≥/≤ the fit's range end it stopped at (then the weights are not GGD-like)."""
    b = info["ggd_beta"]
    if b is None or not info.get("ggd_beta_at_bound"):
        return _g(b, ".2f")
    return ("≥" if b > 1 else "≤") + format(b, ".2f")


def _bits_cell(b) -> str:
    return ">8" if b is None else str(b)


def table_rows(doc: dict) -> list[list[str]]:
    """One row per site for the terminal table and the HTML page; a failed site shows what it measured."""
    rows = []
    for s in doc["sites"]:
        info, fwd, bwd, jac = s.get("info"), s.get("forward"), s.get("backward"), s.get("jacobian")
        row = [s["site"], s["kind"], "×".join(map(str, s.get("shape", []))) or "-"]
        row += ["-"] * 4 if info is None else [
            str(info["support"]),
            str(info["natural_precision_bits"]),
            _beta_cell(info),
            _g(info["crest_bits"], ".2f"),
        ]
        res = resolution_row(s)
        row.append("-" if res.get("step_index") is None else f"2^({res['step_index']}/{STEPS_PER_OCTAVE})")
        row.append(_g(res.get("entropy_bits"), ".2f"))
        row.append(_g(res.get("cells_bits")))
        row.append("-" if fwd is None else _bits_cell(fwd["b_star"]))
        if "best_format" in s:
            row.append("none" if s["best_format"] is None else f"{s['best_format']} ({s['best_bits']:g})")
        else:
            row.append("-")
        row.append("-" if bwd is None else _bits_cell(bwd["b_star"]))
        row.append(_bits_cell(s["dual_b_star"]) if "dual_b_star" in s else "-")
        row.append(_g(s.get("amplification")))
        row.append("-" if jac is None else f"{jac['e_task']:.3g}/{jac['actual']:.3g}")
        if s.get("error"):
            row.append(f"ERROR {s['error']}")
        rows.append(row)
    return rows


def format_table(doc: dict, columns=None) -> str:
    """The aligned per-site table printed by ``natprec report``: ``columns`` (default TERMINAL_COLUMNS), an error last."""
    keep = [TABLE_HEADERS.index(c) for c in (TERMINAL_COLUMNS if columns is None else columns)]
    cells = [[TABLE_HEADERS[i] for i in keep]] + [[r[i] for i in keep] + r[len(TABLE_HEADERS):] for r in table_rows(doc)]
    widths = [max(len(r[i]) for r in cells) for i in range(len(keep))]
    out = []
    for n, r in enumerate(cells):
        out.append("  ".join(c.ljust(widths[i]) if i < len(widths) else c for i, c in enumerate(r)).rstrip())
        if n == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)


def _interval(iv: dict) -> str:
    if iv["rho"] is None:
        return "ρ undefined"
    ci = "" if iv["low"] is None else f" [{iv['low']:.2f}, {iv['high']:.2f}]"
    return f"ρ = {iv['rho']:.2f}{ci}"


def legend_lines(doc: dict, columns=TABLE_HEADERS) -> list[str]:
    """What each of ``columns`` means, then how each candidate format scales a site (terminal and HTML)."""
    width = max(map(len, TABLE_HEADERS))
    lines = [f"{h.ljust(width)}  {TABLE_LEGEND[h]}" for h in columns]
    lines += [f"{f['name'].ljust(width)}  {f.get('scaling', '')}" for f in doc["formats"]]
    return lines


def claim_lines(doc: dict) -> list[str]:
    """DEF-CLAIM-TEST — the claim's result in sentences, one block per ε (terminal and HTML)."""
    lines = []
    for c in doc["claim"]:
        lines.append(f"ε = {c['tolerance']:g}, {c['sites']} sites — does information predict the need b*_v(ε)?")
        for key, what in (("support", "natural precision of the support at the site's resolution, b*_Δ(ε)"),
                          ("information", "entropy at the site's resolution, b_H(ε)")):
            a = c[key]
            iv = a["interval"]
            line = f"  {what}: Spearman {_interval(iv)} ({iv['confidence']:.0%} bootstrap) — {a['verdict']}"
            if c["sites"]:
                line += (f"; ⌈·⌉ = b*_v on {a['exact_agreement']:.0%} of sites, within 1 bit on {a['within_one_bit']:.0%}, "
                         f"b*_v − it = {a['mean_excess_bits']:+.2f} bits on average")
            lines.append(line + ".")
        if c["sites"]:
            kinds = "; ".join(f"{k}: b*_Δ {_interval(v['support'])}, b_H {_interval(v['information'])} (n = {v['support']['n']})"
                              for k, v in c["by_kind"].items())
            if kinds:
                lines.append(f"  by kind — {kinds}.")
            ctl = c["controls"]
            lines.append(f"  excess b*_v − b_H vs crest log2(max|x|/std): {_interval(c['excess_vs_crest'])}; task-free controls: "
                         f"whole-site b* {_interval(ctl['natural_precision_bits'])}, H at std/256 {_interval(ctl['entropy_bits'])}.")
        if c["disagreements"]:
            worst = ", ".join(f"{d['site']} (b*_v {_bits_cell(None if d['b_star'] == NONE_PASSES_BITS else d['b_star'])}, "
                              f"b_H {d['information_bits']:.2f}, b*_Δ {d['support_bits']}, crest {_g(d['crest_bits'], '.2f')})"
                              for d in c["disagreements"][:5])
            lines.append(f"  {len(c['disagreements'])} site(s) where ⌈b_H⌉ and b*_v differ by ≥ 2 bits, largest first: {worst}.")
        if c["excluded"]:
            lines.append(f"  excluded: {', '.join(e['site'] + ' (' + e['reason'] + ')' for e in c['excluded'][:5])}"
                         + (" …" if len(c["excluded"]) > 5 else "") + ".")
    return lines


def _save(fig, path: Path, colorbar=None) -> Path:
    """Lay ``fig`` out tightly once, write it at 110 dpi, close it.

    ``Figure.tight_layout`` leaves a placeholder layout engine behind, and ``savefig`` then draws the whole figure a
    second time before the one it writes; without the engine the figure is drawn once (the same pixels).
    ``colorbar``: (mappable, label) drawn in a strip right of the last axes, 0.9 inch kept free for it.
    """
    width = fig.get_figwidth()
    fig.tight_layout(rect=(0, 0, 1 - 0.9 / width, 1) if colorbar else None)
    fig.set_layout_engine(None)
    if colorbar:
        box = fig.axes[-1].get_position()
        bar = fig.colorbar(colorbar[0], cax=fig.add_axes((box.x1 + 0.15 / width, box.y0, 0.12 / width, box.height)))
        bar.set_label(colorbar[1], fontsize=8)
    fig.savefig(path, dpi=110)
    require_matplotlib().close(fig)
    return path


def _decades(ax, axis: str, lo: int, hi: int) -> None:
    """Fix a log ``axis`` ("x" or "y") of ``ax`` to the whole decades 10^lo … 10^hi, without minor ticks (they
    are most of a log axis's drawing time; at least one labelled decade stays in view)."""
    (ax.set_xlim if axis == "x" else ax.set_ylim)(10.0 ** lo, 10.0 ** hi)
    (ax.xaxis if axis == "x" else ax.yaxis).set_minor_locator(require_matplotlib().NullLocator())


def _plot_bars(doc: dict, ok: list, out: Path) -> Path | None:
    """What each site needs: the bits its best format within ε spends (bar), the int need b*_v (tick)."""
    plt = require_matplotlib()
    names = sorted({s["best_format"] or "none within ε" for s in ok})
    colours = {n: plt.cm.tab20(i % 20) for i, n in enumerate(names)}
    fig, ax = plt.subplots(figsize=(10, max(3.5, 0.2 * len(ok) + 1.5)))
    y = np.arange(len(ok))
    spent = [s["points"][s["best_format"]]["effective_bits"] if s["best_format"] else NONE_PASSES_BITS for s in ok]
    ax.barh(y, spent, color=[colours[s["best_format"] or "none within ε"] for s in ok],
            hatch=["//" if s["best_format"] is None else None for s in ok], edgecolor="white")
    ax.plot([s["forward"]["b_star"] or NONE_PASSES_BITS for s in ok], y, "k|", ms=9, mew=1.5, label="b*_v(ε): int bits needed")
    ax.set_yticks(y, [s["site"] for s in ok], fontsize=7)
    ax.invert_yaxis()
    ax.set_xlim(0, NONE_PASSES_BITS + 0.5)
    ax.set_xticks(range(NONE_PASSES_BITS + 1), [str(b) for b in range(NONE_PASSES_BITS)] + [">8"])
    ax.set_xlabel("bits per element (a block format's scales included)")
    ax.set_title(f"Bits each site needs within ε = {doc['tolerance']:g} ({doc['distortion']}), quantized alone", fontsize=10)
    handles = [plt.Rectangle((0, 0), 1, 1, color=colours[n]) for n in names] + ax.get_legend_handles_labels()[0]
    ax.legend(handles=handles, labels=names + ["b*_v(ε): int bits needed"], title="best format within ε", fontsize=7,
              loc="lower right")
    return _save(fig, out / PLOT_FILES[0])


def _plot_curves(doc: dict, ok: list, out: Path) -> Path | None:
    """Forward sensitivity Δ→_v(b) of every site, coloured by its place in the network; weights and activations apart."""
    plt = require_matplotlib()
    kinds = [k for k in ("weight", "input", "output") if any(s["kind"] == k for s in ok)]
    fig, axes = plt.subplots(1, len(kinds), figsize=(4.9 * len(kinds) + 0.9, 4.2), squeeze=False)
    depth = plt.cm.viridis
    for ax, k in zip(axes[0], kinds):
        ys = [doc["tolerance"]]
        for i, s in enumerate(ok):
            if s["kind"] != k:
                continue
            c = sorted((int(b), max(v, 1e-12)) for b, v in s["forward"]["curve"].items())
            ys += [v for _, v in c]
            ax.plot([b for b, _ in c], [v for _, v in c], "o-", ms=3, lw=0.8, alpha=0.8,
                    color=depth(i / max(1, len(ok) - 1)))
        ax.axhline(doc["tolerance"], color="red", ls="--", lw=1, label=f"ε = {doc['tolerance']:g}")
        ax.set_yscale("log")
        _decades(ax, "y", *_log_range(ys))
        ax.set_xlabel("int bits b (only the points the search measured)")
        ax.set_ylabel(f"task distortion Δ→_v(b) ({doc['distortion']})")
        ax.set_title(f"{k} sites: distortion vs bits, one line per site", fontsize=9)
        ax.legend(fontsize=7)
    # The colour bar placed after the layout, beside it (no tight bounding box: that draws the figure twice).
    return _save(fig, out / PLOT_FILES[1], (plt.cm.ScalarMappable(cmap=depth), "site's place in the network (0 = first, 1 = last)"))


def _plot_margins(doc: dict, ok: list, out: Path) -> Path | None:
    """Voronoi margin histograms per format, pooled over the sites."""
    plt = require_matplotlib()
    fmts = [f["name"] for f in doc["formats"]]
    cols = min(4, len(fmts))
    rows_n = -(-len(fmts) // cols)
    fig, axes = plt.subplots(rows_n, cols, figsize=(3.2 * cols, 2.4 * rows_n), squeeze=False)
    centers = np.sqrt(np.maximum(MARGIN_BINS[:-1], 1e-7) * MARGIN_BINS[1:])
    edges = np.arange(len(MARGIN_BINS)) - 0.5  # bin i drawn over i ± 0.5
    for ax, name in zip(axes.ravel(), fmts):
        h = np.zeros(len(MARGIN_BINS) - 1)
        for s in ok:
            for fi in s["format_info"]:
                if fi["format"] == name:
                    h += fi["margin_histogram"]
        lo, hi = _log_range(h)  # counts: an empty bin sits on the floor 10^lo ≤ the smallest count
        ax.set_yscale("log")
        _decades(ax, "y", lo, hi)
        ax.stairs(np.maximum(h, 10.0 ** lo), edges, baseline=10.0 ** lo, fill=True, color="C0")  # one artist, not a bar per bin
        ticks = np.arange(0, h.size, 7)
        ax.set_xticks(ticks, [f"{centers[i]:.0e}" for i in ticks], fontsize=6)
        ax.set_title(name, fontsize=8)
    for ax in axes.ravel()[len(fmts):]:
        ax.axis("off")
    for ax in axes[:, 0]:
        ax.set_ylabel("elements (sampled, all sites)", fontsize=7)
    for ax in axes[-1]:
        ax.set_xlabel("margin γ (codebook units)", fontsize=7)
    fig.suptitle("How close values sit to a rounding boundary: Voronoi margin γ per format, all sites pooled", fontsize=9)
    return _save(fig, out / PLOT_FILES[2])


def _plot_claim(doc: dict, ok: list, out: Path) -> Path | None:
    """The claim: the two information-derived precisions against the measured need, one column per ε."""
    plt = require_matplotlib()
    claims = [c for c in doc["claim"] if c["pairs"]]
    if not claims:
        return None
    fig, axes = plt.subplots(2, len(claims), figsize=(4.6 * len(claims), 8.4), squeeze=False)
    top = NONE_PASSES_BITS + 0.5
    for col, c in enumerate(claims):
        for row, (key, field, label) in enumerate((
                ("support", "support_bits", "b*_Δ(ε): ⌈log2 |support|⌉ at the site's resolution Δv(ε)"),
                ("information", "information_bits", "b_H(ε): entropy at the site's resolution Δv(ε) (bits)"))):
            ax = axes[row][col]
            for kind, marker in (("weight", "o"), ("input", "s"), ("output", "^")):
                pts = [p for p in c["pairs"] if p["kind"] == kind]
                if pts:
                    # Spread equal values a little so stacked sites stay visible; both sides of a support point are integers.
                    jitter = np.linspace(-0.15, 0.15, len(pts)) if len(pts) > 1 else np.zeros(1)
                    xj = jitter[::-1] if key == "support" else 0.0
                    ax.scatter(np.array([p[field] for p in pts]) + xj, np.array([p["b_star"] for p in pts]) + jitter,
                               marker=marker, s=16, alpha=0.7, label=f"{kind} sites")
            ax.plot([0, top], [0, top], color="grey", lw=0.8, ls="--", label="equal bits")
            ax.set_xlim(0, max(top, max(p[field] for p in c["pairs"]) + 0.5))
            ax.set_ylim(0.5, top)
            ax.set_yticks(range(1, NONE_PASSES_BITS + 1), [str(b) for b in range(1, NONE_PASSES_BITS)] + [">8"])
            ax.set_xlabel(label, fontsize=8)
            ax.set_ylabel("b*_v(ε): fewest int bits within ε", fontsize=8)
            ax.set_title(f"ε = {c['tolerance']:g}: {_interval(c[key]['interval'])}", fontsize=9)
            ax.legend(fontsize=7, loc="lower right")
    return _save(fig, out / PLOT_FILES[3])


def _plot_bits(doc: dict, ok: list, out: Path) -> Path | None:
    """The whole model: int bits per weight parameter against ε, as the band the measured points allow."""
    plt = require_matplotlib()
    curve = doc.get("summary", {}).get("bits_vs_tolerance", [])
    if not curve:
        return None
    fig, ax = plt.subplots(figsize=(6.5, 4))
    t = [c["tolerance"] for c in curve]
    ax.fill_between(t, [c["low_bits"] for c in curve], [c["high_bits"] for c in curve], alpha=0.35,
                    label="b*_v(ε) between its measured bounds")
    ax.plot(t, [c["high_bits"] for c in curve], "o-", ms=3, label="upper bound (a width measured within ε)")
    for c in doc["claim"]:
        ax.axvline(c["tolerance"], color="grey", lw=0.6, ls=":")
    ax.set_xscale("log")
    ax.set_xlabel(f"tolerance ε ({doc['distortion']})")
    ax.set_ylabel("int bits per weight parameter (9 = beyond int8)")
    ax.set_title("Whole model: bits needed against tolerance (each site within ε alone)", fontsize=9)
    ax.legend(fontsize=7)
    return _save(fig, out / PLOT_FILES[4])


#: The report's figures in PLOT_FILES order: each draws one file, or None where its data are missing.
_FIGURES = (_plot_bars, _plot_curves, _plot_margins, _plot_claim, _plot_bits)


def _plots(doc: dict, out: Path, which=None) -> list[Path]:
    """The figures ``which`` (indices into PLOT_FILES, default all) that have data, drawn into ``out``."""
    ok = [s for s in doc["sites"] if not s.get("error")]
    if not ok:
        return []  # nothing measured completely: the table and the errors are the report
    drawn = (_FIGURES[i](doc, ok, out) for i in (range(len(_FIGURES)) if which is None else which))
    return [p for p in drawn if p is not None]


def _hex(i: int) -> str:
    """The i-th tab20 colour as #rrggbb (the margin lines' colours)."""
    plt = require_matplotlib()
    return "#" + "".join(f"{round(255 * c):02x}" for c in plt.cm.tab20(i % 20)[:3])


_SUP = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")
#: The drill-down's canvas (SVG user units = CSS pixels) and its three panels' plotting boxes.
_SVG_W, _SVG_H = 900, 226
_PANEL_X, _PANEL_W, _PANEL_TOP, _PANEL_BOTTOM = (64, 364, 664), 222, 48, 176


def _decade(k: int) -> str:
    return "1" if k == 0 else "10" if k == 1 else "10" + str(k).translate(_SUP)


def _log_range(values) -> tuple[int, int]:
    """Whole decades around the positive finite ``values`` (one decade at least)."""
    e = [np.log10(v) for v in values if v > 0 and np.isfinite(v)]
    if not e:
        return 0, 1
    lo, hi = int(np.floor(min(e))), int(np.ceil(max(e)))
    return lo, max(hi, lo + 1)


class _Panel:
    """One plotting box of a drill-down: maps data to SVG coordinates and writes its elements."""

    def __init__(self, n: int, x_range, y_range, x_log: bool, y_log: bool):
        self.x0, self.parts = _PANEL_X[n], []
        self.xr, self.yr, self.xl, self.yl = x_range, y_range, x_log, y_log

    def x(self, v) -> float:
        t = np.log10(v) if self.xl else v
        return self.x0 + _PANEL_W * (t - self.xr[0]) / (self.xr[1] - self.xr[0])

    def y(self, v) -> float:
        t = np.log10(v) if self.yl else v
        return _PANEL_BOTTOM - (_PANEL_BOTTOM - _PANEL_TOP) * (t - self.yr[0]) / (self.yr[1] - self.yr[0])

    def add(self, s: str) -> None:
        self.parts.append(s)

    def frame(self, title: str, xlabel: str, ylabel: str, xticks, yticks) -> None:
        """The box, the ticks with their labels (``[(value, label)]``, label "" for a bare tick) and the texts."""
        esc, x1, cy = html.escape, self.x0 + _PANEL_W, (_PANEL_TOP + _PANEL_BOTTOM) / 2
        self.add(f'<rect x="{self.x0}" y="{_PANEL_TOP}" width="{_PANEL_W}" height="{_PANEL_BOTTOM - _PANEL_TOP}" '
                 'fill="none" stroke="#000" stroke-width="0.8"/>')
        for v, label in xticks:
            px = self.x(v)
            self.add(f'<path d="M{px:.1f} {_PANEL_BOTTOM}v4" stroke="#000" stroke-width="0.8"/>')
            if label:
                self.add(f'<text x="{px:.1f}" y="{_PANEL_BOTTOM + 14}" text-anchor="middle">{esc(label)}</text>')
        for v, label in yticks:
            py = self.y(v)
            self.add(f'<path d="M{self.x0} {py:.1f}h-4" stroke="#000" stroke-width="0.8"/>')
            if label:
                self.add(f'<text x="{self.x0 - 6}" y="{py + 3.5:.1f}" text-anchor="end">{esc(label)}</text>')
        self.add(f'<text x="{(self.x0 + x1) / 2}" y="{_PANEL_TOP - 8}" text-anchor="middle" font-size="11">{esc(title)}</text>')
        self.add(f'<text x="{(self.x0 + x1) / 2}" y="{_PANEL_BOTTOM + 30}" text-anchor="middle">{esc(xlabel)}</text>')
        self.add(f'<text transform="translate({self.x0 - 44} {cy}) rotate(-90)" text-anchor="middle">{esc(ylabel)}</text>')

    def hline(self, v, colour: str, dash: str = "") -> None:
        d = f' stroke-dasharray="{dash}"' if dash else ""
        self.add(f'<path d="M{self.x0} {self.y(v):.1f}h{_PANEL_W}" stroke="{colour}" stroke-width="1"{d}/>')

    def vline(self, v, colour: str) -> None:
        self.add(f'<path d="M{self.x(v):.1f} {_PANEL_TOP}V{_PANEL_BOTTOM}" stroke="{colour}" stroke-width="0.8"/>')

    def curve(self, pts, colour: str, marker: str) -> None:
        """A line through ``pts`` with a circle ("o") or square ("s") at each point."""
        xy = [(self.x(a), self.y(b)) for a, b in pts]
        self.add(f'<polyline points="{" ".join(f"{a:.1f},{b:.1f}" for a, b in xy)}" fill="none" stroke="{colour}" '
                 'stroke-width="1.5"/>')
        for a, b in xy:
            self.add(f'<circle cx="{a:.1f}" cy="{b:.1f}" r="3" fill="{colour}"/>' if marker == "o" else
                     f'<rect x="{a - 3:.1f}" y="{b - 3:.1f}" width="6" height="6" fill="{colour}"/>')


def _log_ticks(lo: int, hi: int) -> list[tuple[float, str]]:
    step = -(-(hi - lo) // 6)  # at most about six labelled decades
    return [(10.0 ** k, _decade(k) if (k - lo) % step == 0 else "") for k in range(lo, hi + 1)]


def _site_svg(doc: dict, s: dict, colours: dict[str, str]) -> str:
    """DEF-OPERATIONAL-PRECISION-SITE — one site's drill-down as an SVG document: its int curve with ε, its
    uniform-step curve with Δv, its margins per format (``colours[name]`` the line of format ``name``).

    Written directly (no matplotlib): log axes span whole decades around the data and ε; non-finite points are left out.
    """
    tol, panels = doc["tolerance"], []
    c = [(int(b), max(v, 1e-12)) for b, v in sorted((int(b), v) for b, v in s["forward"]["curve"].items()) if np.isfinite(v)]
    bits = [b for b, _ in c] or [0]
    p = _Panel(0, (min(bits) - 0.5, max(bits) + 0.5), _log_range([v for _, v in c] + [tol]), False, True)
    p.frame(f"need: b*_v = {_bits_cell(s['forward']['b_star'])}", "int bits b", f"Δ→_v(b) ({doc['distortion']})",
            [(b, str(b)) for b in range(min(bits), max(bits) + 1)], _log_ticks(*p.yr))
    p.hline(tol, "red", "4 3")
    if c:
        p.curve(c, "#1f77b4", "o")
    panels.append(p)
    res = s.get("resolution")
    if res:
        r = [(2 ** (int(k) / STEPS_PER_OCTAVE), max(v, 1e-12)) for k, v in sorted((int(k), v) for k, v in res["curve"].items())
             if np.isfinite(v)]
        row = res["by_tolerance"][0]
        xs = [a for a, _ in r] + ([row["step"]] if row["step"] is not None else [])
        p = _Panel(1, _log_range(xs), _log_range([v for _, v in r] + [tol]), True, True)
        p.frame(f"resolution Δv = {_g(row['step'])}, b_H = {_g(row['entropy_bits'], '.2f')}", "uniform step Δ", "D",
                _log_ticks(*p.xr), _log_ticks(*p.yr))
        p.hline(tol, "red", "4 3")
        if row["step"] is not None:
            p.vline(row["step"], "grey")
        if r:
            p.curve(r, "#1f77b4", "s")
        panels.append(p)
    hists = [np.asarray(fi["margin_histogram"], dtype=float) + 0.5 for fi in s["format_info"]]
    n = len(MARGIN_BINS) - 1
    p = _Panel(2, (-0.5, n - 0.5), _log_range([h.max() for h in hists] + [0.5]), False, True)
    # Bin i spans MARGIN_BINS[i] … MARGIN_BINS[i + 1]: edge j sits at j − 0.5; the decade edges are ticked.
    edges = [(j - 0.5, int(round(np.log10(e)))) for j, e in enumerate(MARGIN_BINS) if e > 0 and
             abs(np.log10(e) - round(np.log10(e))) < 1e-9]
    p.frame("margins per format", "margin γ (codebook units; bin 0 from 0)", "elements (sampled)",
            [(-0.5, "")] + [(x, _decade(k) if k % 2 == 0 else "") for x, k in edges], _log_ticks(*p.yr))
    for fi, h in zip(s["format_info"], hists):
        d = "".join(f"H{p.x(j + 0.5):.1f}" + (f"V{p.y(h[j + 1]):.1f}" if j + 1 < n else "") for j in range(n))
        p.add(f'<path d="M{p.x(-0.5):.1f} {p.y(h[0]):.1f}{d}" fill="none" stroke="{colours[fi["format"]]}" '
              'stroke-width="0.9"/>')
    panels.append(p)
    body = "".join(part for q in panels for part in q.parts)
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{_SVG_W}" height="{_SVG_H}" viewBox="0 0 {_SVG_W} {_SVG_H}" '
            f'font-family="sans-serif" font-size="10"><rect width="100%" height="100%" fill="#fff"/>'
            f'<text x="{_SVG_W / 2}" y="16" text-anchor="middle" font-size="12">{html.escape(s["site"])}</text>{body}</svg>')


def _site_svgs(doc: dict, sites: list) -> dict[str, str]:
    """DEF-OPERATIONAL-PRECISION-SITE — one drill-down per site of ``sites`` (base64 SVG), coloured as the page's swatches."""
    colours = {f["name"]: _hex(i) for i, f in enumerate(doc["formats"])}
    return {s["site"]: base64.b64encode(_site_svg(doc, s, colours).encode()).decode() for s in sites}


def _html(doc: dict, pngs: list[Path], site_pngs: dict[str, str]) -> str:
    esc = html.escape
    head = "".join(f"<th>{esc(h)}</th>" for h in TABLE_HEADERS)
    anchor = {s["site"]: f"site-{i}" for i, s in enumerate(doc["sites"])}

    def cell(i, c, r):
        if i == 0 and r[0] in site_pngs:  # the site's name links to its drill-down
            return f'<td><a href="#{anchor[r[0]]}">{esc(c)}</a></td>'
        return f"<td>{esc(c)}</td>"
    body = "".join("<tr>" + "".join(cell(i, c, r) for i, c in enumerate(r)) + "</tr>" for r in table_rows(doc))
    drill = "".join(f'<h3 id="{anchor[name]}">{esc(name)}</h3><img alt="{esc(name)}" src="data:image/svg+xml;base64,{b64}">'
                    for name, b64 in site_pngs.items())
    if drill:  # the margin lines' colours, once for every site (a legend per figure doubles the drawing time)
        swatches = " ".join(f'<span style="color:{_hex(i)}">■ {esc(f["name"])}</span>' for i, f in enumerate(doc["formats"]))
        drill = f"<p>Per site: the int curve with ε, the uniform-step curve with Δv, the margins per format: {swatches}</p>" + drill
    imgs = "".join(f'<h2>{esc(p.stem.replace("_", " "))}</h2><img alt="{esc(p.stem)}" '
                   f'src="data:image/png;base64,{base64.b64encode(p.read_bytes()).decode()}">' for p in pngs)
    failed = [s for s in doc["sites"] if s.get("error")]
    extra = [f"{len(failed)} of {len(doc['sites'])} site(s) failed; each shows what it measured before its error."] if failed else []
    if not pngs and len(failed) == len(doc["sites"]):
        extra.append("No plots: no site was measured completely.")
    notes = "".join(f"<li>{esc(n)}</li>" for n in list(doc["notes"]) + extra)
    claim = "".join(f"<li>{esc(line.strip())}</li>" for line in claim_lines(doc))
    bottom = "".join(f"<li>{esc(line)}</li>" for line in summary_lines(doc["summary"]))
    legend = "".join(f"<dt>{esc(h)}</dt><dd>{esc(TABLE_LEGEND[h])}</dd>" for h in TABLE_HEADERS)
    legend += "".join(f"<dt>{esc(f['name'])}</dt><dd>{esc(f.get('scaling', ''))}</dd>" for f in doc["formats"])
    t = doc["timing"]
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>natprec report — {esc(doc['model'])}</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse;font-size:12px}}
td,th{{border:1px solid #ccc;padding:2px 6px;text-align:right}}td:first-child{{text-align:left}}img{{max-width:100%}}</style>
</head><body>
<h1>natprec report</h1>
<p>Model: <b>{esc(doc['model'])}</b>. Distortion D: <b>{esc(doc['distortion'])}</b> of the model output
(mean over {doc['calibration_samples']} calibration samples in {doc['calibration_batches']} batches);
ε = {doc['tolerance']:g} ({esc(DISTORTION_UNITS[doc['distortion']])}); backward ε = {doc['backward_tolerance']:g}
(relative, {esc(doc['backward_loss'])}).
Each site is quantized alone, the rest of the network in float32. b*_v(ε) = min b of the int family with Δ→_v(b) ≤ ε
({'full sweep' if doc['sites'] and doc['sites'][0].get('forward', {}).get('search') == 'sweep' else 'bisection, assuming Δ nonincreasing in b'}).
Support, b*, β and crest are measured on every value of the site; δ and γ on a seeded sample of at most
{doc['max_format_elements']} elements per format.
Measured in {doc.get('wall_s', sum(t.values())):.1f} s ({doc.get('workers', 1)} worker process(es) × {doc['torch_threads']} torch thread(s)).</p>
<h2>Bottom line</h2>
<ul>{bottom}</ul>
<ul>{notes}</ul>
<h2>Does information predict the precision a site needs?</h2>
<p>For each site, Δv(ε) is the coarsest uniform step 2^(k/{STEPS_PER_OCTAVE}) that keeps D within ε with only that site
quantized. At that resolution, b*_Δ(ε) = ⌈log2 |support|⌉ is the natural precision of the values the task must tell
apart, and b_H(ε) their entropy: the bits per element an ideal code needs. b*_v(ε) is the fewest bits of the int
family within ε. The claim holds to the extent that information ranks the sites as the need does.</p>
<ul>{claim}</ul>
<table><tr>{head}</tr>{body}</table>
<h2>Legend</h2>
<dl>{legend}</dl>
{imgs}
{"<h2>Each site</h2>" + drill if drill else ""}
</body></html>
"""


def write_report(doc: dict, out_dir, *, plots: bool = True, workers: int | None = None) -> dict:
    """Write report.json, the PNG plots and report.html into ``out_dir``; returns {kind: path}.

    With ``plots``, the page also holds a drill-down per measured site (its int curve, its
    resolution curve, its margins per format), linked from the site's name in the table.
    ``workers``: processes drawing the figures (default: the measurement's ``doc["workers"]``).
    """
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputFileError(f"--out {out_dir}: cannot create the directory ({exc})", value=str(out_dir)) from None
    paths = {"json": out / "report.json"}
    paths["json"].write_text(strictjson.dumps(doc, indent=1), encoding="utf-8")
    pngs, site_pngs = _draw(doc, out, workers) if plots else ([], {})
    paths["png"] = pngs
    paths["html"] = out / "report.html"
    paths["html"].write_text(_html(doc, pngs, site_pngs), encoding="utf-8")
    return paths


#: The figures in the order they are dealt to the drawing processes, back and forth: costliest first (drawn on
#: MiniLM's 75 sites and 12 formats: bars 0.7 s, margins 0.6 s, curves 0.3 s, bits 0.2 s, claim 0.2 s).
_DEAL = (0, 2, 1, 4, 3)


def _draw(doc: dict, out: Path, workers: int | None) -> tuple[list[Path], dict[str, str]]:
    """The per-site drill-downs, then the report's figures shared among ``workers`` processes (default the run's):
    this one and forks of it."""
    workers = doc.get("workers", 1) if workers is None else workers
    sites = [s for s in doc["sites"] if not s.get("error")]
    svgs = _site_svgs(doc, sites)  # a few ms per site; it loads matplotlib here, once for every fork
    n = min(workers, len(PLOT_FILES))
    if n <= 1 or not sites or "fork" not in multiprocessing.get_all_start_methods():
        return _plots(doc, out), svgs
    shares = [[] for _ in range(n)]
    for k, i in enumerate(_DEAL):
        r = k % (2 * n)
        shares[r if r < n else 2 * n - 1 - r].append(i)
    with ProcessPoolExecutor(max_workers=n - 1, mp_context=multiprocessing.get_context("fork")) as pool:
        forks = [pool.submit(_plots, doc, out, share) for share in shares[1:]]
        drawn = set(_plots(doc, out, shares[0])).union(*(f.result() for f in forks))
    return [out / name for name in PLOT_FILES if out / name in drawn], svgs
