"""``natprec formats`` — every number format with its conventions and codebook (spec/07-formats.md)."""

from __future__ import annotations

from natprec.summaries import MAX_CODEBOOK_LISTED, format_summaries

from .render import emit_json, fnum, table, wrap

__all__ = ["add_parser", "run"]


def add_parser(subparsers):
    """Register the ``formats`` subcommand."""
    s = subparsers.add_parser("formats", help="list every number format with its conventions and codebook")
    s.add_argument("--json", action="store_true", help="machine-readable JSON on stdout")
    s.set_defaults(run=run)
    return s


def run(args) -> None:
    """Print :func:`natprec.summaries.format_summaries` as tables, or as JSON."""
    recs = format_summaries()
    if args.json:
        emit_json({"formats": recs})
        return
    rows = [
        [r["name"], r["kind"], r["nbits"], fnum(r["bits_per_element"], "g"), r["finite_values"],
         fnum(r["min"]), fnum(r["max"]), r["description"]]
        for r in recs
    ]
    print(table(["format", "kind", "bits", "bits/elem", "values", "min", "max", "description"], rows, {2, 3, 4, 5, 6}))
    print("\nconventions")
    for r in recs:
        print(f"  {r['name']}: " + ", ".join(f"{k}={v}" for k, v in r["conventions"].items()))
    print(f"\ncodebooks (element formats with <= {MAX_CODEBOOK_LISTED} finite values; value@encoding)")
    for r in recs:
        if "values" in r:
            print(f"  {r['name']} ({r['finite_values']} values)")
            print(wrap([f"{fnum(v, None)}@{c}" for v, c in zip(r["values"], r["encodings"])]))
