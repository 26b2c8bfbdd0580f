"""`natprec study NAME [MODEL]` — the seeds' experiments on a model (spec/11); `natprec study --list` names them."""

from __future__ import annotations

from natprec.model.measure import check_tolerances
from natprec.model.sites import DEFAULT_MODULE_KINDS, MODULE_KINDS, module_types_of
from natprec.model.studies import DEFAULT_CLAIM_TOLERANCES, STUDIES, claim_study

from .args import UsageError
from .report import add_model_arguments, checkpoint_path, load_model_from_args, progress_for, write_and_print

__all__ = ["add_parser", "run"]


def add_parser(subparsers):
    """Register the ``study`` subcommand and one sub-subcommand per study."""
    p = subparsers.add_parser("study", help="run one of the seeds' experiments on a model (--list names them)",
                              description="Run a study on a torch model (default: all-MiniLM-L6-v2).")
    p.add_argument("--list", action="store_true", help="list the studies and exit")
    sub = p.add_subparsers(dest="study", metavar="NAME")
    c = sub.add_parser("claim", help=STUDIES["claim"][0],
                       description="Information-derived precision b_H(ε) against the measured b*_v(ε) of every site, "
                                   "at several ε: Spearman ρ with a bootstrap interval, a scatter plot, the disagreements.")
    add_model_arguments(c)
    c.add_argument("--tolerances", default=",".join(f"{t:g}" for t in DEFAULT_CLAIM_TOLERANCES), metavar="LIST",
                   help="comma-separated ε, the first is the table's (default %(default)s)")
    c.add_argument("--sites", metavar="PATTERN", help="comma-separated glob patterns of site names (default: all)")
    c.add_argument("--kinds", default="weight,input", metavar="LIST", help="site kinds: weight,input,output")
    c.add_argument("--modules", default=",".join(DEFAULT_MODULE_KINDS), metavar="LIST",
                   help=f"layer kinds measured: {', '.join(MODULE_KINDS)} (default %(default)s)")
    c.add_argument("--full-sweep", action="store_true", help="measure every b of the int family instead of bisecting")
    c.add_argument("--out", default="natprec-study-claim", metavar="DIR", help="output directory (default %(default)s)")
    c.add_argument("--no-plots", action="store_true", help="no PNGs")
    c.add_argument("--json", action="store_true", help="print the document on stdout instead of the table")
    p.set_defaults(run=run)
    return p


def run(args) -> int:
    """Run ``natprec study``."""
    if args.list:
        width = max(map(len, STUDIES))
        for name, (desc, _) in STUDIES.items():
            print(f"{name.ljust(width)}  {desc}")
        return 0
    if args.study is None:
        raise UsageError("study: name a study (natprec study --list names them)")
    tolerances = check_tolerances("--tolerances", args.tolerances)  # before the model loads
    module_types = module_types_of(args.modules)
    mm = load_model_from_args(args)
    doc = claim_study(mm, tolerances=tolerances, sites=args.sites, module_types=module_types,
                      kinds=tuple(k.strip() for k in args.kinds.split(",") if k.strip()),
                      full_sweep=args.full_sweep, progress=progress_for(), checkpoint=checkpoint_path(args),
                      device=args.device)
    return write_and_print(doc, args, plots=not args.no_plots)
