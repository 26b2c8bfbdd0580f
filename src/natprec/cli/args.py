"""The argument parser of every ``natprec`` command: a usage error is one line, not usage text and an exit."""

from __future__ import annotations

import argparse

__all__ = ["UsageError", "Parser"]


class UsageError(Exception):
    """Bad command-line usage; ``natprec.cli.main`` prints it as ``natprec: error: ...`` and exits 2."""


class Parser(argparse.ArgumentParser):
    """An ArgumentParser that raises :class:`UsageError` instead of printing usage and exiting."""

    def error(self, message):
        raise UsageError(f"{message} (see '{self.prog} --help')")
