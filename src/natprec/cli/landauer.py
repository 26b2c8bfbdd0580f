"""``natprec landauer`` — the Landauer bound for erasing B bits (DEF-LANDAUER-ENERGY), or what a format erases
from a tensor, beside seed 000's bound, and its Landauer cost (DEF-ERASED-INFORMATION)."""

from __future__ import annotations

from natprec.reference import NatprecError, landauer_energy_joules
from natprec.summaries import erasure_summary, landauer_summary

from .args import UsageError
from .render import emit_json, fnum, kv

__all__ = ["add_parser", "run"]


def add_parser(subparsers):
    """Register the ``landauer`` subcommand; its VALUEs come from :func:`natprec.cli.quantize.parse_values`."""
    s = subparsers.add_parser(
        "landauer",
        help="Landauer bound for erasing B bits, or what a format erases from a tensor and its cost",
        usage="natprec landauer --bits B [--temperature K] [--json]\n"
              "       natprec landauer --format NAME (--file FILE [--name T] | [--] VALUE...) "
              "[--nan-policy {raise,omit}] [--tie {even,down,up,away}] [--temperature K] [--json]",
        description="With --bits: k_B·T·ln 2 per bit erased. With --format: the information the format erases "
                    "from the tensor, E = H(X | Q(X)) in bits per element (plug-in and Miller–Madow; X = the "
                    "values, Q = the cells of the collision census), beside seed 000's bound max(0, H(X) − b) "
                    "with b the bits the format stores per element, and the Landauer cost of each.",
    )
    s.add_argument("--bits", type=float, metavar="B", help="bits erased (>= 0)")
    s.add_argument("--format", metavar="NAME", help="format whose erasure to measure (see 'natprec formats')")
    s.add_argument("--file", metavar="FILE", help="with --format: a .npy or .safetensors tensor file")
    s.add_argument("--name", help="with --file: one tensor of a .safetensors file (default: every float tensor)")
    s.add_argument("--nan-policy", choices=("raise", "omit"), default="raise", help="NaN handling (default raise)")
    s.add_argument("--tie", choices=("even", "down", "up", "away"), default="even",
                   help="tie rule at exact midpoints (default even)")
    s.add_argument("--temperature", type=float, default=300.0, metavar="K", help="kelvin (default 300)")
    s.add_argument("--json", action="store_true", help="machine-readable JSON on stdout")
    s.set_defaults(run=run, values=[])
    return s


def _check_mode(args) -> None:
    """--bits alone, or --format with exactly one of --file and VALUEs."""
    if args.bits is not None:
        extra = [flag for flag, on in (("--format", args.format), ("--file", args.file), ("--name", args.name),
                                       ("VALUE", args.values)) if on]
        if extra:
            raise UsageError(f"--bits takes no {', '.join(extra)} (measure a tensor with --format instead)")
        return
    if args.format is None:
        raise UsageError("give --bits B, or --format NAME with --file FILE or VALUEs")
    if args.file is None and not args.values:
        raise UsageError(f"--format {args.format}: give --file FILE or VALUEs to measure")
    if args.file is not None and args.values:
        raise UsageError("give --file or VALUEs, not both")
    if args.name is not None and args.file is None:
        raise UsageError("--name picks a tensor of --file")


def _print_erasure(doc: dict) -> None:
    print(f"format {doc['format']}, T = {fnum(doc['temperature_kelvin'], None)} K; "
          "X = the values (by value), Q = the cells of the collision census")
    for r in doc["tensors"]:
        print()
        print(f"== {r['name']} ==")
        free = "free by the bound (H(X) ≤ b)" if r["free_by_bound"] else "not free by the bound (H(X) > b)"
        print(kv([
            ("dtype, shape", f"{r['dtype']}, {'×'.join(map(str, r['shape'])) or 'scalar'}"),
            ("elements", str(r["n_elements"])),
            ("support, cells used", f"{r['support_size']} values, {r['cells_used']} cells"
                                    + ("" if r["pairs"] == r["support_size"] else f", {r['pairs']} (cell, value) pairs")),
            ("H(X)", f"{fnum(r['source_bits'], '.6g')} bits plug-in, {fnum(r['source_bits_miller_madow'], '.6g')} Miller–Madow"),
            ("H(Q)", f"{fnum(r['cell_bits'], '.6g')} bits plug-in, {fnum(r['cell_bits_miller_madow'], '.6g')} Miller–Madow"),
            ("b (bits stored)", f"{fnum(r['bits_per_element'], 'g')} per element"),
            ("erased E = H(X|Q)", f"{fnum(r['erased_bits'], '.6g')} bits/element plug-in, "
                                  f"{fnum(r['erased_bits_miller_madow'], '.6g')} Miller–Madow"
                                  + (" (injective: nothing erased)" if r["injective"] else "")),
            ("seed bound", f"max(0, H(X) − b) = {fnum(r['bound_bits'], '.6g')} bits/element: {free}"),
            ("cost of E", f"{r['erased_joules_per_element']:.6e} J/element, {r['erased_joules']:.6e} J in all "
                          f"(Miller–Madow {r['erased_joules_miller_madow']:.6e} J)"),
            ("cost by the bound", f"{r['bound_joules_per_element']:.6e} J/element, {r['bound_joules']:.6e} J in all"),
        ]))
    for s in doc["skipped"]:
        print(f"\nskipped {s['name']} ({s['dtype']}, shape {s['shape']}): {s['reason']}")


def run(args) -> None:
    """Print :func:`natprec.summaries.landauer_summary` or :func:`natprec.summaries.erasure_summary`."""
    _check_mode(args)
    # Check T alone first so the message names the flag that is wrong.
    try:
        landauer_energy_joules(0.0, temperature_kelvin=args.temperature)
    except NatprecError as exc:
        raise type(exc)(f"--temperature: {exc}", value=exc.value) from None
    if args.bits is None:
        doc = erasure_summary(args.format, values=args.values or None, path=args.file, name=args.name,
                              temperature_kelvin=args.temperature, nan_policy=args.nan_policy, tie=args.tie)
        if args.json:
            emit_json(doc)
        else:
            _print_erasure(doc)
        return
    try:
        doc = landauer_summary(args.bits, temperature_kelvin=args.temperature)
    except NatprecError as exc:
        raise type(exc)(f"--bits: {exc}", value=exc.value) from None
    if args.json:
        emit_json(doc)
        return
    print(kv([
        ("bits erased", fnum(args.bits, None)),
        ("temperature", f"{fnum(args.temperature, None)} K"),
        ("energy", f"{doc['energy_joules']:.6e} J"),
        ("", f"{doc['energy_ev']:.6e} eV"),
        ("", f"{doc['energy_kT']:.6f} k_B·T  (= bits · ln 2)"),
    ]))
