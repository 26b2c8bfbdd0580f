"""Turn bench/bench_accelerated.py's JSON into the Markdown table of accelerated/RESULTS.md.

    python bench/results_table.py OUT/bench_accelerated.json > table.md

One row per (group, tier): time, elements, GB/s moved, the percentage of the device copy's
bandwidth measured in the same run, and the speed per element relative to the torch baseline and
to the reference (ratios > 1: this row is faster).  Header: device, versions, date, commit.
"""

from __future__ import annotations

import json
import sys

__all__ = ["table", "main"]


def _fmt_time(s: float) -> str:
    return f"{s * 1e3:.3f} ms" if s < 1 else f"{s:.2f} s"


def table(doc: dict) -> str:
    """The Markdown table (with its header lines) of one bench JSON document."""
    rows = doc["results"]
    by = {(r["group"], r["tier"]): r for r in rows}
    copy = by.get(("copy", "device copy"))
    v = doc.get("versions", {})
    out = [f"Device: {doc['device']}; CPU (reference): {doc.get('cpu') or 'unknown'}; date {doc['date']}.",
           "Versions: " + ", ".join(f"{k} {val}" for k, val in sorted(v.items())) + ".",
           f"GPU rows on {doc['n_gpu']:,} elements (CUDA events, minimum of repeats); reference rows on "
           f"{doc['n_reference']:,} elements (perf_counter, minimum of 3). Ratios compare time per element.",
           "",
           "| group | tier | elements | time | GB/s moved | % of device copy | × vs torch | × vs reference | note |",
           "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        g, t = r["group"], r["tier"]
        gbs = r.get("GB_per_s")
        pct = f"{100 * gbs / copy['GB_per_s']:.1f} %" if (gbs and copy and g != "copy") else ""
        tv = by.get((g, "torch"))
        rf = by.get((g, "reference"))
        vs_t = f"{tv['ns_per_element'] / r['ns_per_element']:.2f}" if (tv and t != "torch") else ""
        vs_r = f"{rf['ns_per_element'] / r['ns_per_element']:.1f}" if (rf and t != "reference") else ""
        out.append(f"| {g} | {t} | {r['n']:,} | {_fmt_time(r['seconds'])} | {gbs:.3g} | {pct} | {vs_t} | {vs_r} | "
                   f"{r.get('note', '')} |" if gbs else
                   f"| {g} | {t} | {r['n']:,} | {_fmt_time(r['seconds'])} |  | {pct} | {vs_t} | {vs_r} | {r.get('note', '')} |")
    return "\n".join(out) + "\n"


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python bench/results_table.py BENCH_JSON", file=sys.stderr)
        return 2
    with open(argv[0]) as fh:
        sys.stdout.write(table(json.load(fh)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
