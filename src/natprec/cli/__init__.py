"""The ``natprec`` command line: ``formats``, ``quantize``, ``tensor``, ``scan``, ``rd``, ``report``, ``study``, ``plan`` and ``landauer``.

The CLI only presents: each command (one module here) parses its arguments, calls the library
function that computes its document (:mod:`natprec.summaries`, :mod:`natprec.analysis`,
:mod:`natprec.rdtables`, :mod:`natprec.model`) and prints it through :mod:`natprec.cli.render`:
an aligned table, or with ``--json`` one JSON document on stdout (strict JSON: NaN and ±Inf are
written as the strings ``"nan"``, ``"inf"``, ``"-inf"``).  Bad input of any kind ends with one
line ``natprec: error: ...`` on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import os
import sys

from natprec import __version__
from natprec.reference import NatprecError

from . import formats, landauer, plan, quantize, rd, report, scan, study, tensor
from .args import Parser, UsageError

__all__ = ["main", "build_parser"]


def build_parser() -> argparse.ArgumentParser:
    """The ``natprec`` parser with every subcommand; each sets ``run`` to its command's entry point."""
    p = Parser(prog="natprec", description="Measure the information a tensor carries and the precision it implies.")
    p.add_argument("--version", action="version", version=f"natprec {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in (formats, quantize, tensor, scan, rd, report, study, plan, landauer):  # the order of --help
        command.add_parser(sub)
    return p


def _parse(argv: list[str]) -> argparse.Namespace:
    args, extras = build_parser().parse_known_args(argv)
    if args.command in ("quantize", "landauer"):
        args.values = quantize.parse_values(extras)
    elif extras:
        raise UsageError(f"unrecognized arguments: {' '.join(extras)} (see 'natprec {args.command} --help')")
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the ``natprec`` command line; returns the exit status (0 ok, 2 bad input)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        args = _parse(argv)
        status = args.run(args)
    except SystemExit as exc:  # --help / --version
        return int(exc.code or 0)
    except (UsageError, NatprecError) as exc:
        print(f"natprec: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # output piped into `head` and the like: stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    return int(status or 0)
