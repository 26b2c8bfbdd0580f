"""``natprec quantize`` — VALUEs quantized with one format: codes, reconstructions, margins (DEF-QUANTIZE, DEF-MARGIN)."""

from __future__ import annotations

import argparse

from natprec.reference import TIE_RULES
from natprec.summaries import quantize_summary

from .args import UsageError
from .render import emit_json, fnum, table

__all__ = ["add_parser", "parse_values", "run"]


def add_parser(subparsers):
    """Register the ``quantize`` subcommand; its VALUEs come from :func:`parse_values`."""
    # VALUEs are collected from the unparsed extras (see natprec.cli), so '-0.3', '-inf' and
    # '-1e-3' work without '--' while staying in command-line order.
    s = subparsers.add_parser(
        "quantize",
        help="quantize VALUEs with one format: codes, reconstructed values, margins",
        usage="natprec quantize --format NAME [--tie {even,down,up,away}] [--saturate | --no-saturate] "
              "[--nan-policy {propagate,omit,raise}] [--json] [--] VALUE...",
        description="VALUEs are float64 ('nan', 'inf', '-0.0' and negative numbers are accepted). "
                    "With a block format the VALUEs form one vector, blocked along it.",
    )
    s.add_argument("--format", required=True, metavar="NAME", help="format name (see 'natprec formats')")
    s.add_argument("--tie", choices=TIE_RULES, default="even", help="tie rule at exact midpoints (default even)")
    s.add_argument("--saturate", action=argparse.BooleanOptionalAction, default=None,
                   help="clamp overflow to the largest finite value (default: the format's convention)")
    s.add_argument("--nan-policy", choices=("propagate", "omit", "raise"), default="propagate",
                   help="NaN VALUEs: keep them (with the format's NaN code, or no code where it has none), "
                        "drop them, or fail (default propagate)")
    s.add_argument("--json", action="store_true", help="machine-readable JSON on stdout")
    s.set_defaults(run=run, values=[])
    return s


def parse_values(tokens: list[str]) -> list[float]:
    """The VALUEs among the arguments argparse left over ('--' dropped)."""
    values = []
    for s in tokens:
        if s == "--":
            continue
        try:
            values.append(float(s))
        except ValueError:
            raise UsageError(f"VALUE {s!r} is not a number (nor a known option)") from None
    return values


def run(args) -> None:
    """Print :func:`natprec.summaries.quantize_summary` as tables, or as JSON."""
    doc = quantize_summary(args.values, args.format, tie=args.tie, saturate=args.saturate, nan_policy=args.nan_policy)
    if args.json:
        emit_json(doc)
        return
    element = doc["kind"] == "element"
    print(f"format {doc['format']} ({doc['kind']}), tie={args.tie}, saturate={doc['saturate']}")
    if element:
        headers, cols = ["input", "code", "value", "margin γ"], ["input", "code", "value", "margin"]
    else:
        headers, cols = ["input", "block", "code", "value", "margin γ*"], ["input", "block", "code", "value", "margin"]
    rows = [[fnum(v[c], None) if c in ("input", "value", "margin") else ("-" if v[c] is None else v[c]) for c in cols]
            for v in doc["values"]]
    print(table(headers, rows, set(range(len(cols))) - {cols.index("code")}))
    print("γ = min over the neighbouring codewords c' of |x − c'| − |x − c|: twice the distance to the nearest rounding "
          "boundary, in codebook units (DEF-MARGIN)")
    for n in doc["notes"]:
        print(f"note: {n}")
    if not element:
        print("\n* γ of a block format is measured on the block-scaled value, in element-codebook units")
        print("\nblock scales")
        rows = [[s["block"], s["code"] or "-", fnum(s["scale"], None)] for s in doc["scales"]]
        print(table(["block", "code", "scale"], rows, {0, 2}))
        if doc["tensor_scale"] is not None:
            print(f"tensor scale (decode): {fnum(doc['tensor_scale'], None)}")
