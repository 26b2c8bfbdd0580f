"""``natprec tensor`` — support, b*, entropy and per-format injectivity of a tensor file (:mod:`natprec.analysis`)."""

from __future__ import annotations

from natprec.analysis import DEFAULT_MAX_COLLISIONS, DEFAULT_TENSOR_FORMATS, DELTA_STD_DIVISOR, analyze_file

from .render import emit_json, fnum, kv, table

__all__ = ["add_parser", "run"]

_CI_METHOD_LABEL = {"bca": "BCa", "basic": "basic"}
_OP_FOOTNOTE = ("* at the operating point's scaling: element formats at the MSE-optimal per-tensor scale; block formats "
                "with their own block scales.\n  cells used, injective, colliding values, δ and min γ are the format's "
                "literal semantics (element formats unscaled).\n  A cell is (block, code) for a block format, so colliding values "
                "counts (cell, value) pairs: one value colliding in several blocks counts once per block, and the count can "
                "exceed the tensor's distinct values (DEF-COLLISION-CENSUS).")


def add_parser(subparsers):
    """Register the ``tensor`` subcommand."""
    s = subparsers.add_parser("tensor", help="support, b*, entropy and per-format injectivity of a tensor file")
    s.add_argument("file", nargs="?", metavar="FILE",
                   help=".npy or .safetensors file (default: the embedded demo tensors)")
    s.add_argument("--name", help="tensor in a .safetensors file (default: every float tensor, in file order)")
    s.add_argument("--format", action="append", metavar="NAME",
                   help=f"format to check; repeat or comma-separate (default: {','.join(DEFAULT_TENSOR_FORMATS)})")
    s.add_argument("--delta", type=float, metavar="Δ", help=f"entropy bin width (default: std/{DELTA_STD_DIVISOR})")
    s.add_argument("--nan-policy", choices=("raise", "omit"), default="raise", help="NaN handling (default raise)")
    s.add_argument("--max-collisions", type=int, default=DEFAULT_MAX_COLLISIONS, metavar="K",
                   help=f"list the K largest colliding cells per format (default {DEFAULT_MAX_COLLISIONS})")
    s.add_argument("--json", action="store_true", help="machine-readable JSON on stdout")
    s.set_defaults(run=run)
    return s


def _print_tensor(rec: dict, max_collisions: int) -> None:
    e = rec["entropy"]
    print(f"== {rec['name']} ==")
    pairs = [
        ("dtype", rec["dtype"]),
        ("shape", "×".join(map(str, rec["shape"])) or "scalar"),
        ("elements", str(rec["elements"])),
    ]
    if rec["nan_omitted"]:
        pairs.append(("NaNs omitted", f"{rec['nan_omitted']} (the rest analysed as one flat vector)"))
    pairs += [
        ("support size", f"{rec['support_size_value']} by value, {rec['support_size_bits']} by bits"),
        ("b*", f"{rec['natural_precision_bits']} bits (⌈log2 support by value⌉)"),
        ("Δ", f"{fnum(e['delta'], None)} ({e['delta_rule']}; std = {fnum(e['std'])})"),
        ("H_Δ", f"{fnum(e['plugin_bits'], '.4f')} bits plug-in, {fnum(e['miller_madow_bits'], '.4f')} bits Miller–Madow"),
        (f"{_CI_METHOD_LABEL[e['ci_method']]} {e['ci_confidence']:.0%} CI",
         f"[{fnum(e['ci_low_bits'], '.4f')}, {fnum(e['ci_high_bits'], '.4f')}] bits "
         f"({e['ci_resamples']} resamples, seed {e['ci_seed']})"),
    ]
    g = rec["ggd"]
    pairs.append(("GGD fit", g["error"] if "error" in g else
                  f"β = {fnum(g['beta'], '.4f')} (95% CI [{fnum(g['beta_ci'][0], '.4f')}, {fnum(g['beta_ci'][1], '.4f')}]), "
                  f"α = {fnum(g['alpha'])}, h = {fnum(g['differential_entropy_bits'], '.4f')} bits"))
    print(kv(pairs))
    print()

    def op(r, key, spec=None):
        v = r["operating_point"].get(key)
        return "-" if v is None else fnum(v, spec)

    rows = [
        [r["format"], r["cells_used"], "yes" if r["injective"] else "no", r["colliding_values"],
         fnum(r["delta"]), fnum(r["min_margin"]), op(r, "mse", ".4g"), op(r, "rate_bits", ".3g"),
         op(r, "index_entropy_bits", ".3f"), op(r, "gap_entropy_to_slb_bits", ".3f")]
        for r in rec["formats"]
    ]
    print(table(["format", "cells used", "injective", "colliding values", "δ", "min γ",
                 "MSE*", "rate", "H(codes)*", "H−R_SLB*"], rows, {1, 3, 4, 5, 6, 7, 8, 9}))
    print(_OP_FOOTNOTE)
    if max_collisions and any(r["collisions"] for r in rec["formats"]):
        print(f"\nlargest collisions (up to {max_collisions} per format, by elements)")
        rows = [
            [r["format"], "-" if c["block"] is None else c["block"], c["code"], fnum(c["codeword"]),
             c["distinct_values"], c["elements"], f"[{fnum(c['min_value'])}, {fnum(c['max_value'])}]"]
            for r in rec["formats"] for c in r["collisions"]
        ]
        print(table(["format", "block", "code", "codeword", "values", "elements", "value range"], rows, {1, 3, 4, 5}))


def run(args) -> None:
    """Print :func:`natprec.analysis.analyze_file` as tables, or as JSON."""
    fmt_names = [n.strip() for group in (args.format or [",".join(DEFAULT_TENSOR_FORMATS)]) for n in group.split(",") if n.strip()]
    res = analyze_file(args.file, fmt_names, name=args.name, delta=args.delta, nan_policy=args.nan_policy,
                       max_collisions=args.max_collisions)
    doc = res.to_dict()
    if args.json:
        emit_json(doc)
        return
    print(f"natprec tensor: {res.source}" + (" — the embedded default tensors (no FILE given)" if res.default else ""))
    print("γ: Voronoi margin in codebook units (block formats: of the block-scaled values); δ: collision probability\n")
    for s in doc["skipped"]:
        print(f"skipped {s['name']} ({s['dtype']}, shape {s['shape']}): {s['reason']}")
    for i, rec in enumerate(doc["tensors"]):
        if i or doc["skipped"]:
            print()
        _print_tensor(rec, args.max_collisions)
