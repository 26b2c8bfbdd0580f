"""``natprec scan`` — a checkpoint's tensors measured chunk by chunk on Dask, merged exactly (:mod:`natprec.scan`)."""

from __future__ import annotations

import sys
from pathlib import Path

from natprec.analysis import BOOTSTRAP_RESAMPLES, DEFAULT_MAX_COLLISIONS
from natprec.scan import DEFAULT_CHUNK_ELEMENTS, DEFAULT_SCAN_FORMATS, scan_checkpoint
from natprec.strictjson import dumps

from .render import emit_json, fnum, table

__all__ = ["add_parser", "run"]


def add_parser(subparsers):
    """Register the ``scan`` subcommand."""
    s = subparsers.add_parser("scan", help="measure every tensor of a (sharded) safetensors checkpoint on Dask, merged exactly")
    s.add_argument("checkpoint", metavar="CHECKPOINT", help=".safetensors file, folder of shards, or model.safetensors.index.json")
    s.add_argument("--formats", action="append", metavar="NAME",
                   help=f"element formats; repeat or comma-separate (default: {','.join(DEFAULT_SCAN_FORMATS)})")
    s.add_argument("--scheduler", default="threads", metavar="threads|processes|ADDRESS",
                   help="Dask's local threads or processes scheduler, or tcp://HOST:PORT of a dask.distributed cluster (default threads)")
    s.add_argument("--chunk-elements", type=int, default=DEFAULT_CHUNK_ELEMENTS, metavar="N",
                   help=f"elements per chunk task (default {DEFAULT_CHUNK_ELEMENTS})")
    s.add_argument("--tensors", action="append", metavar="PATTERN", help="only tensors whose name matches a shell pattern (repeatable)")
    s.add_argument("--nan-policy", choices=("raise", "omit"), default="raise", help="NaN handling (default raise: the tensor fails)")
    s.add_argument("--resamples", type=int, default=BOOTSTRAP_RESAMPLES, help=f"bootstrap resamples (default {BOOTSTRAP_RESAMPLES})")
    s.add_argument("--max-collisions", type=int, default=DEFAULT_MAX_COLLISIONS, metavar="K",
                   help=f"largest colliding cells kept per format (default {DEFAULT_MAX_COLLISIONS})")
    s.add_argument("--json", action="store_true", help="the scan as JSON on stdout")
    s.add_argument("--out", metavar="DIR", help="also write scan.json into DIR")
    s.add_argument("--no-progress", action="store_true", help="no progress line on stderr")
    s.set_defaults(run=run)
    return s


def _progress(done: int, total: int) -> None:
    print(f"\rscan: {done}/{total} tasks", end="" if done < total else "\n", file=sys.stderr, flush=True)


def run(args) -> int:
    """Print :func:`natprec.scan.scan_checkpoint`; exit status 1 when a shard or tensor failed (the rest is reported)."""
    names = [n.strip() for g in (args.formats or [",".join(DEFAULT_SCAN_FORMATS)]) for n in g.split(",") if n.strip()]
    res = scan_checkpoint(args.checkpoint, names, scheduler=args.scheduler, chunk_elements=args.chunk_elements,
                          nan_policy=args.nan_policy, n_resamples=args.resamples, max_collisions=args.max_collisions,
                          tensors=args.tensors, progress=None if args.no_progress else _progress)
    doc = res.to_dict()
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "scan.json").write_text(dumps(doc, indent=2) + "\n")
    if args.json:
        emit_json(doc)
        return 0 if res.ok else 1
    print(f"natprec scan: {doc['source']} ({len(doc['shards'])} shards, scheduler {doc['scheduler']}, "
          f"chunks of {doc['chunk_elements']} elements)")
    for e in doc["shard_errors"]:
        print(f"shard {e['shard']} FAILED: {e['error']}")
    for s in doc["skipped"]:
        print(f"skipped {s['name']} ({s['dtype']}): {s['reason']}")
    rows = []
    for t in doc["tensors"]:
        if "error" in t:
            rows.append([t["name"], t["shard"], t["dtype"], "-", "-", "-", "-", "-", "ERROR: " + t["error"]])
            continue
        g = t["ggd"]
        inj = " ".join(f"{f['format']}:{'inj' if f['injective'] else f['colliding_values']}" for f in t["formats"])
        rows.append([t["name"], t["shard"], t["dtype"], t["elements"], t["support_size_value"], t["natural_precision_bits"],
                     fnum(t["entropy"]["plugin_bits"], ".4f"), "-" if "error" in g else fnum(g["beta"], ".3f"), inj])
    print(table(["tensor", "shard", "dtype", "elements", "support", "b*", "H_Δ", "GGD β", "per format: injective or colliding values"],
                rows, {3, 4, 5, 6, 7}))
    sm = doc["summary"]
    print(f"\nmodel: {sm['tensors_measured']} tensors measured, {sm['tensors_failed']} failed, {sm['elements']} elements")
    if sm.get("formats"):
        print(f"max b* {sm['max_natural_precision_bits']} bits; element-weighted mean H_Δ {fnum(sm['mean_plugin_bits'], '.4f')} bits")
        print(table(["format", "injective tensors", "colliding values", "min γ"],
                    [[k, v["injective_tensors"], v["colliding_values"], fnum(v["min_margin"])] for k, v in sm["formats"].items()],
                    {1, 2, 3}))
    if not res.ok:
        print("natprec scan: some shards or tensors failed (listed above); the rest was measured", file=sys.stderr)
    return 0 if res.ok else 1
