"""`natprec plan [MODEL]` — the information IR's precision plan (spec/13): table, plan.json, plan.png."""

from __future__ import annotations

from pathlib import Path

from natprec import strictjson
from natprec.model.measure import DEFAULT_BACKWARD_TOLERANCE, DEFAULT_TOLERANCE, check_tolerance
from natprec.plan import RULES
from natprec.plan.derive import check_rules
from natprec.plan.entropy import BUDGETS
from natprec.plan.model import DEFAULT_PLAN_CALIBRATION, plan_model
from natprec.plan.present import plan_figure, plan_lines
from natprec.reference.errors import InputFileError

from .render import emit_json
from .report import add_model_arguments, load_model_from_args, progress_for

__all__ = ["add_parser", "run"]


def add_parser(subparsers):
    """Register the ``plan`` subcommand."""
    p = subparsers.add_parser("plan", help="derive a precision plan from measured entropy (the information IR)",
                              description="Capture the model's dataflow graph, measure every edge, derive gauges, domains and "
                                          "Landauer-costed boundaries, apply the plan and compare it with uniform plans.")
    add_model_arguments(p)
    p.set_defaults(calibration_size=DEFAULT_PLAN_CALIBRATION)
    p.add_argument("--tolerance", type=float, default=DEFAULT_TOLERANCE, metavar="EPS",
                   help="task tolerance ε of the whole plan (default %(default)g)")
    p.add_argument("--backward-tolerance", type=float, default=DEFAULT_BACKWARD_TOLERANCE, metavar="EPS",
                   help="relative gradient error for the backward entropy (default %(default)g)")
    p.add_argument("--budget", choices=BUDGETS, default="split",
                   help="split: each edge gets ε/N; each: every edge gets ε alone (default %(default)s)")
    p.add_argument("--rules", default=",".join(RULES), metavar="LIST",
                   help=f"plan rules, the first is the plan: {', '.join(RULES)} (default %(default)s)")
    p.add_argument("--no-export", action="store_true", help="skip the torchao export check")
    p.add_argument("--out", default="natprec-plan", metavar="DIR", help="output directory (default %(default)s)")
    p.add_argument("--no-plots", action="store_true", help="no plan.png")
    p.add_argument("--json", action="store_true", help="print the plan document instead of the table")
    p.set_defaults(run=run)
    return p


def run(args) -> int:
    """Run ``natprec plan``."""
    check_tolerance("--tolerance", args.tolerance)
    check_tolerance("--backward-tolerance", args.backward_tolerance)
    rules = check_rules("--rules", args.rules)
    doc = plan_model(load_model_from_args(args), tolerance=args.tolerance, backward_tolerance=args.backward_tolerance,
                     budget=args.budget, rules=rules, export=not args.no_export, progress=progress_for(), device=args.device)
    out = Path(args.out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputFileError(f"--out {args.out}: cannot create the directory ({exc})", value=args.out) from None
    written = [out / "plan.json"]
    written[0].write_text(strictjson.dumps(doc, indent=1), encoding="utf-8")
    if not args.no_plots:
        written += plan_figure(doc, out)
    if args.json:
        emit_json(doc, indent=1)
    else:
        print(f"natprec plan: {doc['model']}")
        print("\n".join(plan_lines(doc)))
        print("\nwrote " + ", ".join(map(str, written)))
    return 0
