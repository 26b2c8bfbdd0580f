"""DEF-CLAIM-TEST — the claim study: does the information a site holds predict the precision it needs?"""

from __future__ import annotations

from pathlib import Path

from natprec.model.measure import DEFAULT_TOLERANCE, check_tolerances, measure
from natprec.model.report import TERMINAL_COLUMNS, claim_lines, format_table, legend_lines, write_report
from natprec.model.runner import MeasuredModel
from natprec.model.sites import DEFAULT_MODULE_KINDS, module_types_of
from natprec.model.summary import summary_lines

from .registry import Option, Study

__all__ = ["DEFAULT_CLAIM_TOLERANCES", "claim_study", "CLAIM_STUDY"]

#: The report's ε first, then a decade on either side.
DEFAULT_CLAIM_TOLERANCES = (DEFAULT_TOLERANCE, DEFAULT_TOLERANCE / 10, DEFAULT_TOLERANCE * 10)


def claim_study(mm: MeasuredModel, *, tolerances=DEFAULT_CLAIM_TOLERANCES, sites=None, kinds=("weight", "input"),
                modules=DEFAULT_MODULE_KINDS, full_sweep: bool = False, progress=False, checkpoint=None, device=None,
                workers=None) -> dict:
    """DEF-CLAIM-TEST — the claim's test at several ε: b*_v(ε) over the int family, Δ_v(ε) and b_H,v(ε) per site.

    The report document of :func:`natprec.model.measure` with the int family only and no Jacobian
    proxy; ``doc["claim"]`` holds one result per ε, the first ε being the document's ``tolerance``.
    ``modules``: layer kinds (names of :data:`natprec.model.sites.MODULE_KINDS`, a list or comma-separated).
    ``workers``: as :func:`~natprec.model.measure`.
    """
    ts = check_tolerances("--tolerances", tolerances)
    doc = measure(mm, sites=sites, kinds=tuple(kinds.split(",")) if isinstance(kinds, str) else kinds,
                  module_types=module_types_of(modules), formats="int", tolerance=ts[0], claim_tolerances=ts[1:],
                  full_sweep=full_sweep, jacobian=False, progress=progress, checkpoint=checkpoint, device=device,
                  workers=workers)
    doc["study"] = "claim"
    doc["errors"] = [{"what": s["site"], "error": s["error"]} for s in doc["sites"] if s.get("error")]
    return doc


def claim_table(doc: dict) -> list[str]:
    """DEF-CLAIM-TEST — the bottom line, the site table with its legend, and the claim's verdict per ε."""
    return [*summary_lines(doc["summary"]), "", format_table(doc), "", *legend_lines(doc, TERMINAL_COLUMNS), "", *claim_lines(doc)]


def claim_plots(doc: dict, out: Path) -> list[Path]:
    """DEF-CLAIM-TEST — the report page (report.html, report.json) and its figures, claim.png among them."""
    paths = write_report(doc, out, plots=True)
    return [paths["json"], paths["html"], *paths["png"]]


CLAIM_STUDY = Study(
    name="claim",
    summary="does the information a site holds predict the precision it needs? (spec/11 DEF-CLAIM-TEST)",
    spec="DEF-CLAIM-TEST",
    run=claim_study,
    lines=claim_table,
    plots=claim_plots,
    claims=("C-000-1-1",),
    options=(
        Option("tolerances", "floats", DEFAULT_CLAIM_TOLERANCES, "ε at which the claim is tested; the first is the table's",
               check_tolerances),
        Option("sites", "str", None, "comma-separated glob patterns of site names (default: all)"),
        Option("kinds", "strs", ("weight", "input"), "site kinds: weight, input, output"),
        Option("modules", "strs", DEFAULT_MODULE_KINDS, "layer kinds measured: linear, conv, embedding",
               lambda flag, v: module_types_of(v) and v),
        Option("full_sweep", "flag", False, "measure every b of the int family instead of bisecting"),
    ),
)
