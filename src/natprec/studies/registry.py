"""DEF-STUDY — what a study is: a function on a model that returns a document, and how it is presented.

Every study is a :class:`Study` in :data:`natprec.studies.STUDIES`; ``natprec study NAME`` is
derived from it (its options become flags, its ``lines`` the table, its ``plots`` the PNGs), so a
Python user calls ``STUDIES[NAME].run(mm, **options)`` and gets what the command shows.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from natprec.reference.errors import InvalidParameterError

__all__ = ["Option", "Study", "Steps", "VERDICTS", "claim_row", "parse_option"]

#: A claim's verdict, as the ledger (spec/claims.md) writes it.
VERDICTS = ("supported", "refuted", "mixed", "proved", "checked", "out of scope")

#: Option kinds: what the CLI parses its string into (the study's function checks the value).
_KINDS = {"float": float, "int": int, "str": str}


@dataclass(frozen=True)
class Option:
    """DEF-STUDY — one keyword of a study's function; its flag is ``--`` + the name with ``-`` for ``_``.

    ``kind``: "float", "int", "str", "floats"/"ints"/"strs" (comma-separated on the command line), or
    "flag" (a bool, false unless the flag is given).
    """

    name: str
    kind: str
    default: object
    help: str
    check: Callable | None = None  # check(flag, value) → value; the study's function calls the same one

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")


def parse_option(opt: Option, text: str):
    """DEF-STUDY — the value of a non-flag ``opt`` from its command-line text (InvalidParameterError naming the flag)."""
    base = opt.kind.rstrip("s") if opt.kind.endswith("s") and opt.kind != "str" else opt.kind
    conv = _KINDS[base]
    parts = [p.strip() for p in text.split(",")] if base != opt.kind else [text.strip()]
    try:
        vals = tuple(conv(p) for p in parts if p)
    except ValueError:
        raise InvalidParameterError(f"{opt.flag}: {text!r} is not {'a list of ' if base != opt.kind else ''}{base}",
                                    value=text) from None
    if not vals:
        raise InvalidParameterError(f"{opt.flag}: no value in {text!r}", value=text)
    value = vals if base != opt.kind else vals[0]
    return value if opt.check is None else opt.check(opt.flag, value)


@dataclass(frozen=True)
class Study:
    """DEF-STUDY — a named experiment: ``run(mm, *, progress, device, **options) → document``.

    ``needs_model``: False for a study that builds its own network (then ``mm`` is None).
    ``claims``: the ledger IDs (spec/claims.md) its documents give a verdict on.
    ``lines(doc)``: the readable table; ``plots(doc, out_dir) → [paths]``: its figures (matplotlib).
    The document is JSON-able and holds ``study``, ``spec``, ``model``, ``settings``, ``results``,
    ``claims`` (rows of :func:`claim_row`) and ``timing``.
    """

    name: str
    summary: str
    spec: str
    run: Callable[..., dict]
    lines: Callable[[dict], list]
    plots: Callable[[dict, Path], list] | None = None
    options: tuple = field(default_factory=tuple)
    needs_model: bool = True
    claims: tuple = field(default_factory=tuple)


_CLAIM_ID = re.compile(r"C-\d{3}-[0-9A-Za-z.-]+")


def claim_row(claim_id: str, measured: str, verdict: str) -> dict:
    """DEF-STUDY — one claim of the ledger (spec/claims.md) as a study measured it: its ID, the numbers, the verdict."""
    if not _CLAIM_ID.fullmatch(claim_id):
        raise InvalidParameterError(f"claim id {claim_id!r} is not C-<seed>-<section>", value=claim_id)
    if verdict not in VERDICTS:
        raise InvalidParameterError(f"verdict {verdict!r} is not one of {', '.join(VERDICTS)}", value=verdict)
    return {"id": claim_id, "measured": measured, "verdict": verdict}


class Steps:
    """DEF-STUDY — progress of a study's long work: ``progress`` False, True (a tqdm bar) or a callable of events.

    Each finished step reports ``{"phase": "step", "study", "done", "total", "what", "elapsed_s", "eta_s"}``.
    """

    def __init__(self, study: str, total: int, progress=False):
        self.study, self.total, self.done = study, int(total), 0
        self.start = time.perf_counter()
        self.callback = progress if callable(progress) else None
        self.bar = None
        if progress is True:
            from tqdm import tqdm

            self.bar = tqdm(total=self.total, desc=study, leave=False)

    def step(self, what: str) -> None:
        self.done += 1
        if self.bar is not None:
            self.bar.update(1)
            if self.done >= self.total:
                self.bar.close()
        if self.callback is not None:
            el = time.perf_counter() - self.start
            self.callback({"phase": "step", "study": self.study, "done": self.done, "total": self.total, "what": what,
                           "elapsed_s": el, "eta_s": el / self.done * max(self.total - self.done, 0)})
