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


#: glibc mallopt parameters (malloc.h): M_TRIM_THRESHOLD, M_MMAP_THRESHOLD.
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3


def _keep_freed_memory() -> bool:
    """Let glibc keep freed blocks of up to 1 GiB for reuse instead of returning them to the system.

    A measurement allocates and frees arrays of tens of MB for every forward point; handed back each time, every
    reuse costs a page fault per 4 KiB: on 13 sites of all-MiniLM-L6-v2, 7.3 s of system time, 1.6 s kept (peak
    RSS 1.15 → 1.24 GB).  Library users get the same with MALLOC_MMAP_THRESHOLD_=1073741824 and
    MALLOC_TRIM_THRESHOLD_=2147483647 in the environment.  Elsewhere than glibc: nothing happens (False).
    """
    import ctypes
    import platform

    if platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL(None)
        return bool(libc.mallopt(_M_MMAP_THRESHOLD, 1 << 30)) and bool(libc.mallopt(_M_TRIM_THRESHOLD, (1 << 31) - 1))  # C ints
    except (OSError, AttributeError):
        return False


def main(argv: list[str] | None = None) -> int:
    """Run the ``natprec`` command line; returns the exit status (0 ok, 2 bad input)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    _keep_freed_memory()
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
