"""DEF-OPERATIONAL-PRECISION-SITE — the bottom line of a report: bits per parameter, model size, the hardest sites.

Each weight site is charged the bits its best format within ε spends on it (block scales
included, DEF-SITE-QUANTIZE's ``effective_bits``) plus its float32 per-channel scales for an
absmax-scaled element format (one per output channel); a site with no format within ε stays
float32.  These are per-site choices, each measured with every other site in float32: the
model with all of them at once was not measured, and its distortion can exceed ε.
"""

from __future__ import annotations

import math

from .claim import NONE_PASSES_BITS

__all__ = ["resolution_row", "FLOAT32_BITS", "SCALE_BITS", "HARDEST_LISTED", "CURVE_TOLERANCES", "summary", "summary_lines", "bits_vs_tolerance"]

FLOAT32_BITS = 32
#: Bits of one per-channel / per-tensor absmax scale (float32).
SCALE_BITS = 32
HARDEST_LISTED = 5


def _weight_bits(site: dict, block_size: dict) -> tuple[float, str]:
    """(bits per parameter with scales, format) of a weight site's best format within ε; float32 without one."""
    if site["best_format"] is None:
        return float(FLOAT32_BITS), "float32"
    bits = site["points"][site["best_format"]]["effective_bits"]
    if block_size[site["best_format"]] is None:  # per-channel absmax: one float32 scale per output channel
        rows = site["shape"][0] if site["shape"] else 1
        bits += SCALE_BITS * rows / math.prod(site["shape"])
    return bits, site["best_format"]


def resolution_row(site: dict) -> dict:
    """The site's resolution row at the report's ε ({} without one)."""
    return (site.get("resolution") or {}).get("by_tolerance", [{}])[0]


def summary(doc: dict) -> dict:
    """DEF-OPERATIONAL-PRECISION-SITE — the report's bottom line from its per-site records (see the module docstring)."""
    # Block formats and grouped ints count their scales in effective_bits already.
    block_size = {f["name"]: f["block_size"] or f.get("group") for f in doc["formats"]}
    ok = [s for s in doc["sites"] if not s.get("error")]
    weights = [s for s in ok if s["kind"] == "weight"]
    params = sum(math.prod(s["shape"]) for s in weights)
    spent = [(s, *_weight_bits(s, block_size)) for s in weights]
    total_bits = sum(math.prod(s["shape"]) * b for s, b, _ in spent)
    acts = [s for s in ok if s["kind"] != "weight"]

    def need(s):
        b = s["forward"]["b_star"]
        return NONE_PASSES_BITS if b is None else b
    hardest = sorted(ok, key=lambda s: (-need(s), -(s.get("amplification") or 0.0)))[:HARDEST_LISTED]
    return {
        "tolerance": doc["tolerance"],
        "failed_sites": len(doc["sites"]) - len(ok),
        "weight_sites": len(weights),
        "weight_parameters": params,
        "mean_bits_per_parameter": total_bits / params if params else None,
        "float32_bytes": params * FLOAT32_BITS // 8,
        "quantized_bytes": total_bits / 8,
        "weights_kept_float32": [s["site"] for s, _, f in spent if f == "float32"],
        "formats_chosen": {f: sum(1 for _, _, g in spent if g == f) for f in sorted({g for _, _, g in spent})},
        "activation_sites": len(acts),
        "mean_activation_bits": (sum(s["best_bits"] if s["best_bits"] is not None else FLOAT32_BITS for s in acts) / len(acts)
                                 if acts else None),
        "hardest": [{"site": s["site"], "kind": s["kind"], "b_star": s["forward"]["b_star"], "best_format": s["best_format"],
                     "crest_bits": s["info"]["crest_bits"], "amplification": s.get("amplification"),
                     "information_bits": resolution_row(s).get("entropy_bits")} for s in hardest],
        "bits_vs_tolerance": bits_vs_tolerance(doc),
        "caveat": "each site was measured alone (every other site float32); all of them quantized at once was not measured",
    }


def summary_lines(s: dict) -> list[str]:
    """The bottom line in sentences (terminal and HTML)."""
    lines = []
    if s["weight_parameters"]:
        lines.append(f"weights: {s['weight_parameters']:,} parameters in {s['weight_sites']} sites at "
                     f"{s['mean_bits_per_parameter']:.2f} bits per parameter (scales included) with each site's best format "
                     f"within ε = {s['tolerance']:g}: {s['quantized_bytes'] / 2**20:.1f} MiB instead of "
                     f"{s['float32_bytes'] / 2**20:.1f} MiB in float32 ({s['float32_bytes'] / s['quantized_bytes']:.1f}× smaller).")
        chosen = ", ".join(f"{f} × {n}" for f, n in s["formats_chosen"].items())
        lines.append(f"formats chosen for the weights: {chosen}" + (
            f"; kept float32 (nothing within ε): {', '.join(s['weights_kept_float32'])}" if s["weights_kept_float32"] else "") + ".")
    if s["activation_sites"]:
        lines.append(f"activations: {s['activation_sites']} sites at {s['mean_activation_bits']:.2f} bits per value on average "
                     "(the best format within ε per site; 32 where none is).")
    hard = "; ".join(
        f"{h['site']} (b*_v {'>8' if h['b_star'] is None else h['b_star']}, crest {h['crest_bits']:.2f} bits"
        + (f", amplification {h['amplification']:.3g}" if h["amplification"] is not None else "")
        + (f", {h['information_bits']:.2f} bits of information at its resolution" if h["information_bits"] is not None else "")
        + ")" for h in s["hardest"])
    if hard:
        lines.append(f"most demanding sites: {hard}.")
    decades = [c for c in s.get("bits_vs_tolerance", []) if math.log10(c["tolerance"]).is_integer()]
    if decades:
        lines.append("int bits per weight parameter to keep every site within ε (sites one at a time): " + ", ".join(
            f"ε = {c['tolerance']:g}: {c['low_bits']:.2f}" + (f"–{c['high_bits']:.2f}" if c["high_bits"] > c["low_bits"] else "")
            for c in decades) + " (a range where the search did not measure the neighbouring widths; 9 = beyond int8).")
    if s["failed_sites"]:
        lines.append(f"{s['failed_sites']} site(s) failed and are not counted.")
    lines.append(f"caveat: {s['caveat']}.")
    return lines


#: ε grid of the whole-model curve: three per decade from 1e-6 to 1.
CURVE_TOLERANCES = tuple(float(f"{10 ** (k / 3):.3g}") for k in range(-18, 1))


def _bits_bounds(curve: dict, tolerance: float, bits: list[int]) -> tuple[int, int]:
    """[low, high] of b*_v(ε) from a site's measured int points, assuming Δ nonincreasing in b (9 = none ≤ 8 passes)."""
    passing = [b for b, d in curve.items() if d <= tolerance]
    failing = [b for b, d in curve.items() if d > tolerance]
    high = min(passing) if passing else NONE_PASSES_BITS
    low = max(failing) + 1 if failing else min(bits)
    if low > max(bits):
        low = NONE_PASSES_BITS
    return min(low, high), high


def bits_vs_tolerance(doc: dict, tolerances=CURVE_TOLERANCES) -> list[dict]:
    """DEF-OPERATIONAL-PRECISION-SITE — int bits per weight parameter needed at each ε, as a band, from the points measured.

    For each weight site and ε, b*_v(ε) lies in [low, high]: high = the fewest measured bits within ε, low = one more
    than the most measured bits beyond it (assuming Δ nonincreasing in b; 9 stands for "none ≤ 8").  The band is the
    parameter-weighted mean of both; it narrows to a line where the search measured the neighbouring widths.
    """
    weights = [s for s in doc["sites"] if not s.get("error") and s["kind"] == "weight"]
    params = [math.prod(s["shape"]) for s in weights]
    total = sum(params)
    if not total:
        return []
    out = []
    for t in tolerances:
        lows = highs = 0.0
        for s, n in zip(weights, params):
            curve = {int(b): d for b, d in s["forward"]["curve"].items()}
            lo, hi = _bits_bounds(curve, t, sorted(f["int_bits"] for f in doc["formats"] if f["int_bits"] is not None))
            lows += n * lo
            highs += n * hi
        out.append({"tolerance": t, "low_bits": lows / total, "high_bits": highs / total})
    return out
