"""`natprec study NAME [MODEL]` — the seeds' experiments on a model (spec/12); `natprec study --list` names them.

Each sub-command is derived from its :class:`natprec.studies.Study`: the model arguments when it
needs a model, one flag per option, ``--out``, ``--json``, ``--no-plots``.
"""

from __future__ import annotations

import inspect
from pathlib import Path

from natprec import strictjson
from natprec.reference.errors import InputFileError
from natprec.studies import STUDIES, parse_option

from .args import UsageError
from .render import emit_json
from .report import SiteMeasurementError, add_model_arguments, checkpoint_path, load_model_from_args, progress_for

__all__ = ["add_parser", "run"]


def add_parser(subparsers):
    """Register the ``study`` subcommand and one sub-subcommand per study of STUDIES."""
    p = subparsers.add_parser("study", help="run one of the seeds' experiments on a model (--list names them)",
                              description="Run a study on a torch model (default: all-MiniLM-L6-v2).")
    p.add_argument("--list", action="store_true", help="list the studies and exit")
    sub = p.add_subparsers(dest="study", metavar="NAME")
    for st in STUDIES.values():
        c = sub.add_parser(st.name, help=st.summary, description=f"{st.summary} ({st.spec})")
        if st.needs_model:
            add_model_arguments(c)
        for opt in st.options:
            if opt.kind == "flag":
                c.add_argument(opt.flag, action="store_true", help=opt.help)
            else:
                shown = ",".join(map(str, opt.default)) if isinstance(opt.default, tuple) else opt.default
                c.add_argument(opt.flag, metavar=opt.kind.upper(), help=f"{opt.help} (default: {shown})")
        c.add_argument("--out", default=f"natprec-study-{st.name}", metavar="DIR", help="output directory (default %(default)s)")
        c.add_argument("--no-plots", action="store_true", help="no figures")
        c.add_argument("--json", action="store_true", help="print the document on stdout instead of the table")
    p.set_defaults(run=run)
    return p


def run(args) -> int:
    """Run ``natprec study``: 0 when every part was measured (a failed part raises after the results are written)."""
    if args.list:
        width = max(map(len, STUDIES))
        for name, st in STUDIES.items():
            print(f"{name.ljust(width)}  {st.summary}")
        return 0
    if args.study is None:
        raise UsageError("study: name a study (natprec study --list names them)")
    st = STUDIES[args.study]
    options = {o.name: (getattr(args, o.name) if o.kind == "flag" else parse_option(o, getattr(args, o.name)))
               for o in st.options if getattr(args, o.name) not in (None, False)}  # before the model loads
    accepts = inspect.signature(st.run).parameters
    extra = {"progress": progress_for()}
    if "checkpoint" in accepts:
        extra["checkpoint"] = checkpoint_path(args)
    if st.needs_model:
        extra["device"] = args.device
    if "workers" in accepts:
        extra["workers"] = args.workers
    doc = st.run(load_model_from_args(args) if st.needs_model else None, **options, **extra)
    out = Path(args.out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputFileError(f"--out {args.out}: cannot create the directory ({exc})", value=args.out) from None
    written = [out / f"{st.name}.json"]
    written[0].write_text(strictjson.dumps(doc, indent=1), encoding="utf-8")
    if not args.no_plots and st.plots is not None:
        written += st.plots(doc, out)
    if args.json:
        emit_json(doc, indent=1)
    else:
        print(f"natprec study {st.name}: {doc.get('model', '')}")
        print("\n".join(st.lines(doc)))
        print("\nwrote " + ", ".join(map(str, written)))
    errors = doc.get("errors") or []
    if errors:
        raise SiteMeasurementError(f"{len(errors)} part(s) failed (the others are in {written[0]}): "
                                   + "; ".join(f"{e['what']}: {e['error']}" for e in errors[:5]), value=[e["what"] for e in errors])
    return 0
