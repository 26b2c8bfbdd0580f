"""``natprec landauer`` — the Landauer bound for erasing B bits at temperature T (DEF-LANDAUER-ENERGY)."""

from __future__ import annotations

from natprec.reference import NatprecError, landauer_energy_joules
from natprec.summaries import landauer_summary

from .render import emit_json, fnum, kv

__all__ = ["add_parser", "run"]


def add_parser(subparsers):
    """Register the ``landauer`` subcommand."""
    s = subparsers.add_parser("landauer", help="Landauer bound for erasing B bits at temperature T")
    s.add_argument("--bits", type=float, required=True, metavar="B", help="bits erased (>= 0)")
    s.add_argument("--temperature", type=float, default=300.0, metavar="K", help="kelvin (default 300)")
    s.add_argument("--json", action="store_true", help="machine-readable JSON on stdout")
    s.set_defaults(run=run)
    return s


def run(args) -> None:
    """Print :func:`natprec.summaries.landauer_summary`; an error names the flag that is wrong."""
    # Check T alone first so the message names the flag that is wrong.
    try:
        landauer_energy_joules(0.0, temperature_kelvin=args.temperature)
    except NatprecError as exc:
        raise type(exc)(f"--temperature: {exc}", value=exc.value) from None
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
