"""DEF-OPERATIONAL-PRECISION-SITE — the per-site measurement behind ``natprec report``.

For each site: the information measures of the reference tier, the forward curve
Δ→_v(b) over the integer family (bisection with probes placed by the int step law, THM-MONOTONE-SEARCH, or a full sweep),
b*_v(ε), the other candidate formats (only those that could beat int-b*_v in bits,
unless ``all_formats``), the backward curve and b*, the dual b*, the Jacobian proxy and
the amplification ratio at b*_v(ε).  A failure at one site is recorded in that site's
``error`` and the other sites are still measured.
"""

from __future__ import annotations

import math
import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from natprec import __version__
from natprec.reference.errors import InvalidParameterError, NatprecError

from .checkpoint import SiteCheckpoint, fingerprint
from .claim import claim_test
from .deps import require_torch
from .info import format_measures_all, tensor_measures
from .quantize import DEFAULT_FORMATS, parse_formats
from .resolution import (
    STEPS_PER_OCTAVE,
    UniformStep,
    grid_step,
    resolution_entropy,
    resolution_search,
    search_window,
    step_index_above,
)
from .runner import MeasuredModel, Runner, resolve_device, statistics_tier, to_device
from .sensitivity import (
    backward_sensitivity,
    dual_precision,
    forward_point,
    gradients,
    int_step_law,
    jacobian_proxy,
    monotone_search,
    monotonicity_violations,
    precision_from_curve,
    scout_point,
)
from .sites import coverage, find_sites, select_sites
from .summary import summary

__all__ = ["measure", "check_tolerance", "check_tolerances", "DEFAULT_TOLERANCE", "DEFAULT_BACKWARD_TOLERANCE", "MAX_FORMAT_ELEMENTS"]

#: ε for the forward criterion (in the model's distortion; mean cosine distance for embeddings).
DEFAULT_TOLERANCE = 1e-3
#: ε_bwd for the relative backward criterion Σ‖g − Q(g)‖² / Σ‖g‖².
DEFAULT_BACKWARD_TOLERANCE = 1e-2
#: Element cap of the per-format δ and γ measures (a seeded sample above it); support, b*, H are whole-site.
MAX_FORMAT_ELEMENTS = 1 << 15


def check_tolerance(name: str, v) -> float:
    """DEF-OPERATIONAL-PRECISION-SITE — a tolerance ε: finite and > 0 (``name`` is the option it came from)."""
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
        raise InvalidParameterError(f"{name} must be finite and > 0; got {v!r}", value=v)
    return float(v)


def check_tolerances(name: str, values) -> tuple[float, ...]:
    """DEF-OPERATIONAL-PRECISION-SITE — a non-empty list of tolerances (comma-separated string or iterable), each as check_tolerance."""
    items = [v for v in (values.split(",") if isinstance(values, str) else values) if not (isinstance(v, str) and not v.strip())]
    if not items:
        raise InvalidParameterError(f"{name}: no tolerance given", value=values)
    out = []
    for v in items:
        try:
            v = float(v) if isinstance(v, str) else v
        except ValueError:
            raise InvalidParameterError(f"{name}: {v!r} is not a number", value=v) from None
        out.append(check_tolerance(name, v))
    return tuple(dict.fromkeys(out))


class _NoBar:
    def update(self, n: int) -> None:
        pass

    def close(self) -> None:
        pass


def _progress(desc: str, enabled, total: int):
    """A tqdm bar when ``enabled`` is True and tqdm is installed, else an object with the same update/close."""
    if enabled is not True:
        return _NoBar()
    try:
        from tqdm import tqdm
    except ImportError:
        return _NoBar()
    return tqdm(total=total, desc=desc, unit="site", leave=False)


def _report(progress, **event):
    """Send one progress event to a callable ``progress`` (see :func:`measure`)."""
    if callable(progress):
        progress(event)


def measure(mm: MeasuredModel, *, sites=None, kinds=("weight", "input"), module_types=None, formats=DEFAULT_FORMATS,
            tolerance: float = DEFAULT_TOLERANCE, backward_tolerance: float = DEFAULT_BACKWARD_TOLERANCE,
            claim_tolerances=(), full_sweep: bool = False, all_formats: bool = False, jacobian: bool = True,
            progress=False, checkpoint=None, device=None, tier=None, workers=None) -> dict:
    """DEF-OPERATIONAL-PRECISION-SITE — measure every selected site of ``mm``; returns the report document.

    ``claim_tolerances``: further ε at which b*_v(ε), Δ_v(ε) and b_H,v(ε) are measured for the
    claim's test (DEF-CLAIM-TEST); ``tolerance`` is always the first.
    ``progress``: False; True for a tqdm bar; or a callable taking one event dict per phase
    (``{"phase": "baseline" | "gradients", "elapsed_s"}``) and per measured site
    (``{"phase": "site", "done", "total", "site", "resumed", "b_star", "error", "elapsed_s", "eta_s"}``, the
    estimate from the mean time per site so far) — for logs, where a bar cannot draw.
    ``checkpoint``: a file (:class:`~natprec.model.checkpoint.SiteCheckpoint`) that keeps each finished
    site; a rerun with the same settings, model and calibration outputs reuses them.
    ``device``: where the forward and backward passes run (:func:`~natprec.model.runner.resolve_device`; the
    model and its batches are moved there).
    ``tier``: the module that quantizes and computes the statistics (``natprec.reference`` or
    ``natprec.accelerated``); default :func:`~natprec.model.runner.statistics_tier` of the device — the
    accelerated tier on a GPU where it has a kernel.  The tiers agree bit for bit, so the document does too;
    ``statistics_tier`` names the one used.
    ``workers``: processes measuring sites in parallel (forked after the baseline, so they share it), each with
    ``torch.get_num_threads() // workers`` torch threads; the baseline runs on as many.  Default: one process per
    torch thread on the CPU (small per-site GEMMs scale better across processes than across threads), one on a GPU.
    The document does not depend on ``workers`` at a given per-process thread count (sites are measured independently).
    """
    torch = require_torch()
    tolerance = check_tolerance("--tolerance", tolerance)
    backward_tolerance = check_tolerance("--backward-tolerance", backward_tolerance)
    tolerances = (tolerance,) + tuple(t for t in (check_tolerances("--claim-tolerances", claim_tolerances)
                                                  if len(claim_tolerances) else ()) if t != tolerance)
    fmts = parse_formats(formats)
    if not any(f.int_bits is not None for f in fmts):
        raise InvalidParameterError("--formats: b*_v(ε) is searched over the int family; give at least one intB", value=formats)
    dev = resolve_device(device)
    tier = statistics_tier(dev) if tier is None else tier
    fmts = [f.on(tier) for f in fmts]
    int_fmts = sorted((f for f in fmts if f.int_bits is not None), key=lambda f: f.int_bits)
    other = [f for f in fmts if f.int_bits is None]
    by_bits = {f.int_bits: f for f in int_fmts}
    mm.model.to(dev)
    mm.batches = [to_device(b, dev) for b in mm.batches]
    chosen = select_sites(find_sites(mm.model, kinds=kinds, module_types=module_types), sites)
    if not chosen:
        raise InvalidParameterError("the model has no sites of the selected kinds", value=kinds)
    n_workers, threads_each = _workers(workers, dev, torch.get_num_threads())
    with _torch_threads(torch, threads_each):  # the baseline too: every output of the run under one thread count
        timing = {}
        start = t0 = time.perf_counter()
        runner = Runner(mm, chosen)
        timing["baseline_s"] = time.perf_counter() - t0
        _report(progress, phase="baseline", elapsed_s=time.perf_counter() - start)
        t0 = time.perf_counter()
        grads = gradients(runner)
        timing["gradients_s"] = time.perf_counter() - t0
        _report(progress, phase="gradients", elapsed_s=time.perf_counter() - start)
        sites_start = time.perf_counter()
        notes = list(mm.notes)
        keep = None
        if checkpoint is not None:
            keep = SiteCheckpoint(checkpoint, {
                "natprec": __version__, "model": mm.description, "distortion": mm.distortion,
                "fingerprint": fingerprint(mm.model, runner.reference), "tolerances": list(tolerances),
                "backward_tolerance": backward_tolerance, "formats": [f.name for f in fmts], "full_sweep": full_sweep,
                "all_formats": all_formats, "jacobian": jacobian, "loss": mm.loss_fn is not None, "device": dev})
            reused = [s.name for s in chosen if s.name in keep.records]
            if reused:
                notes.append(f"{len(reused)} site(s) reused from {keep.path} (same settings, model and calibration outputs)")
            elif keep.discarded:
                notes.append(f"{keep.path} was from a different run (settings, model or calibration changed): started afresh")
        cover = coverage(mm.model, chosen, module_types)
        notes.append(f"weight sites cover {cover['measured_parameters']:,} of {cover['parameters']:,} parameters; skipped: "
                     + ("; ".join(cover["skipped"]) if cover["skipped"] else "nothing"))
        timing.update(info_s=0.0, forward_s=0.0, resolution_s=0.0, backward_s=0.0, jacobian_s=0.0)
        ctx = _SiteContext(runner=runner, grads=grads, fmts=fmts, int_fmts=int_fmts, other=other, by_bits=by_bits,
                           tolerances=tolerances, backward_tolerance=backward_tolerance, full_sweep=full_sweep,
                           all_formats=all_formats, jacobian=jacobian, tier=tier, jacobian_failed=[])
        records: list = [None] * len(chosen)
        todo = []
        for i, site in enumerate(chosen):
            if keep is not None and site.name in keep.records:
                records[i] = keep.records[site.name]
                _report(progress, phase="site", done=sum(r is not None for r in records), total=len(chosen), site=site.name,
                        resumed=True, b_star=records[i]["forward"]["b_star"], error=None,
                        elapsed_s=time.perf_counter() - start, eta_s=0.0)
            else:
                todo.append(i)
        measured = 0
        for i, rec, spent in _measure_sites(ctx, chosen, todo, n_workers, threads_each, progress):
            records[i] = rec
            for k, v in spent.items():
                timing[k] += v
            if keep is not None and rec["error"] is None:
                keep.append(rec)
            measured += 1
            done = sum(r is not None for r in records)
            per_site = (time.perf_counter() - sites_start) / measured
            _report(progress, phase="site", done=done, total=len(chosen), site=rec["site"], resumed=False,
                    b_star=(rec.get("forward") or {}).get("b_star"), error=rec["error"],
                    elapsed_s=time.perf_counter() - start, eta_s=per_site * (len(chosen) - done))  # wall time per finished site, workers included
        # The proxy needs forward-mode AD of everything downstream of a site: unavailable at one site, reported at none.
        jac_missing = next((r["jacobian_unavailable"] for r in records if r.get("jacobian_unavailable")), None)
        if jac_missing is not None:
            notes.append(f"Jacobian proxy unavailable for this model (forward-mode AD): {jac_missing}")
            records = [{k: v for k, v in r.items() if k != "jacobian"} for r in records]
        records = [{k: v for k, v in r.items() if k != "jacobian_unavailable"} for r in records]
        doc = {
            "model": mm.description,
            "distortion": mm.distortion,
            "tolerance": tolerance,
            "tolerances": list(tolerances),
            "backward_tolerance": backward_tolerance,
            "backward_loss": "model loss_fn" if mm.loss_fn is not None else "probe loss Σ⟨r, y⟩, r ~ N(0, I) seeded",
            "formats": [{"name": f.name, "bits_per_element": f.bits_per_element, "int_bits": f.int_bits,
                         "block_size": None if f.block is None else f.block.block_size, "group": f.group, "scaling": f.scaling}
                        for f in fmts],
            "calibration_batches": len(mm.batches),
            "calibration_samples": int(sum(r.shape[0] for r in runner.reference)),
            "replay_exact": runner.replay_exact,
            "jacobian_batch": 0,
            "torch_threads": threads_each,
            "workers": n_workers,
            "device": dev,
            "statistics_tier": tier.__name__,
            "max_format_elements": MAX_FORMAT_ELEMENTS,
            "notes": notes,
            "coverage": cover,
            "timing": timing,  # seconds per phase, summed over the workers
            "wall_s": time.perf_counter() - start,
            "sites": records,
            "claim": claim_test(records, tolerances),
        }
        doc["summary"] = summary(doc)
        return doc


@contextmanager
def _torch_threads(torch, n: int):
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _workers(workers, dev: str, threads: int) -> tuple[int, int]:
    """DEF-OPERATIONAL-PRECISION-SITE — (worker processes, torch threads per process) for ``workers`` on ``dev``."""
    if workers is None:
        workers = threads if dev == "cpu" and _can_fork() else 1
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise InvalidParameterError(f"--workers must be an integer >= 1; got {workers!r}", value=workers)
    if workers > 1 and dev != "cpu":
        raise InvalidParameterError(f"--workers {workers}: parallel site workers run on the CPU only (device {dev})", value=workers)
    if workers > 1 and not _can_fork():
        raise InvalidParameterError(f"--workers {workers}: this platform cannot fork worker processes", value=workers)
    return workers, max(1, threads // workers)


def _can_fork() -> bool:
    return "fork" in multiprocessing.get_all_start_methods()


@dataclass(frozen=True)
class _SiteContext:
    runner: Runner
    grads: dict
    fmts: list
    int_fmts: list
    other: list
    by_bits: dict
    tolerances: tuple
    backward_tolerance: float
    full_sweep: bool
    all_formats: bool
    jacobian: bool
    tier: object
    jacobian_failed: list  # per process: after one NotImplementedError the proxy is not tried again


#: The context forked workers inherit (set in the parent just before the pool forks; never pickled).
_FORKED: _SiteContext | None = None


def _measure_sites(ctx: _SiteContext, chosen: list, todo: list, n_workers: int, threads_each: int, progress):
    """Yield (index, record, seconds per phase) for each site index in ``todo``: in order, or as forked workers finish."""
    bar = _progress("sites", progress, len(todo))
    try:
        if n_workers <= 1 or len(todo) <= 1:
            for i in todo:
                yield (i, *_measure_site(ctx, chosen[i]))
                bar.update(1)
            return
        global _FORKED
        _FORKED = ctx  # the children copy it when they fork, at the first submit
        pool = ProcessPoolExecutor(max_workers=min(n_workers, len(todo)), mp_context=multiprocessing.get_context("fork"),
                                   initializer=_worker_init, initargs=(threads_each,))
        with pool:
            try:
                futures = {pool.submit(_worker_site, chosen[i]): i for i in todo}
            finally:
                _FORKED = None
            try:
                for fut in as_completed(futures):
                    yield (futures[fut], *fut.result())
                    bar.update(1)
            except BrokenProcessPool:
                raise NatprecError("a site worker process died (out of memory?); rerun with --workers 1", value=n_workers) from None
            finally:
                for fut in futures:
                    fut.cancel()
    finally:
        bar.close()


def _worker_init(threads: int) -> None:
    torch = require_torch()
    torch.set_num_threads(threads)


def _worker_site(site):
    return _measure_site(_FORKED, site)


def _measure_site(ctx: _SiteContext, site) -> tuple[dict, dict]:
    """DEF-OPERATIONAL-PRECISION-SITE — one site's record and the seconds it spent per phase (a failure goes in ``error``)."""
    runner, tier, tolerances = ctx.runner, ctx.tier, ctx.tolerances
    tolerance = tolerances[0]
    spent_s = dict(info_s=0.0, forward_s=0.0, resolution_s=0.0, backward_s=0.0, jacobian_s=0.0)
    rec = {"site": site.name, "kind": site.kind, "module": site.module, "error": None}
    try:
        is_w = site.kind == "weight"
        x = runner.site_tensor(site).cpu().numpy() if is_w else np.concatenate(
            [runner.valid_rows(site, b) for b in range(len(runner.mm.batches))])
        rec["shape"] = list(x.shape)  # activations: real positions of all batches × features
        rec["upstream_replayed"] = list(runner.skip[site.name])
        t0 = time.perf_counter()
        rec["info"] = tensor_measures(x, is_weight=is_w, tier=tier)
        rec["format_info"] = format_measures_all(x, ctx.fmts, per_channel=is_w, max_elements=MAX_FORMAT_ELEMENTS)
        spent_s["info_s"] += time.perf_counter() - t0

        t0 = time.perf_counter()
        points, batch0 = {}, {}  # batch0: int point → its batch-0 output, the Jacobian proxy's "actual"
        bits = sorted(ctx.by_bits)
        first = bits[len(bits) // 2]  # bisection's first probe: a scout runs it on batch 0 alone, its Δ places it
        scout = None if ctx.full_sweep else scout_point(runner, site, ctx.by_bits[first])

        def delta_at(b):
            outputs = {}
            points[f"int{b}"] = forward_point(runner, site, ctx.by_bits[b], outputs, scout=scout if b == first else None)
            batch0[b] = outputs[0]
            return points[f"int{b}"]["distortion"]
        if ctx.full_sweep:
            full = {b: delta_at(b) for b in bits}
            b_stars = {t: precision_from_curve(full, t) for t in tolerances}
            b_search = monotone_search(full.__getitem__, bits, tolerance, predict=int_step_law)[0]  # the search's answer alone
        else:
            known = {}  # the claim's other tolerances reuse every point already measured
            estimate = {first: scout.distortion} if math.isfinite(scout.distortion) else None
            b_stars = {t: monotone_search(delta_at, bits, t, predict=int_step_law, known=known, estimate=estimate)[0]
                       for t in tolerances}
            b_search = b_stars[tolerance]
        b_star = b_stars[tolerance]
        curve = {int(k[3:]): v["distortion"] for k, v in points.items()}
        rec["forward"] = {
            "search": "sweep" if ctx.full_sweep else "bisection",
            "curve": {str(b): curve[b] for b in sorted(curve)},
            "b_star": b_star,
            "b_star_bisection": b_search,
            "monotonicity_violations": monotonicity_violations(curve),
        }
        best = (f"int{b_star}", float(b_star)) if b_star is not None else (None, math.inf)
        # Ranked by the bits spent on this site's shape: a block format on rows shorter than a block pays more.
        shape = tuple(runner.site_tensor(site, 0).shape)
        spent = {f.name: f.effective_bits(shape, is_w, site.feature_axis) for f in ctx.other}
        for f in sorted(ctx.other, key=lambda f: spent[f.name]):
            if not ctx.all_formats and spent[f.name] >= best[1]:
                continue  # cannot use fewer bits than the best format already within ε
            points[f.name] = forward_point(runner, site, f)
            if points[f.name]["distortion"] <= tolerance and spent[f.name] < best[1]:
                best = (f.name, spent[f.name])
        rec["points"] = points
        rec["best_format"] = best[0]
        rec["best_bits"] = None if best[0] is None else best[1]
        rec["amplification"] = points[f"int{b_star}"]["amplification"] if b_star is not None else None
        spent_s["forward_s"] += time.perf_counter() - t0

        t0 = time.perf_counter()
        site_mse = {int(k[3:]): v["site_mse"] for k, v in points.items() if k.startswith("int")}
        rec["resolution"] = _resolution(runner, site, x, tolerances, b_stars, curve, site_mse, tier)
        spent_s["resolution_s"] += time.perf_counter() - t0

        t0 = time.perf_counter()
        bcurve = {f.int_bits: backward_sensitivity(ctx.grads[site.name], f, per_channel=is_w) for f in ctx.int_fmts}
        b_bwd = precision_from_curve(bcurve, ctx.backward_tolerance)
        rec["backward"] = {"curve": {str(b): v for b, v in bcurve.items()}, "b_star": b_bwd}
        rec["dual_b_star"] = dual_precision(curve, bcurve, tolerance, ctx.backward_tolerance, b_star, b_bwd)
        spent_s["backward_s"] += time.perf_counter() - t0

        if ctx.jacobian and not ctx.jacobian_failed:
            t0 = time.perf_counter()
            jf = ctx.by_bits[b_star] if b_star is not None else ctx.int_fmts[-1]
            try:
                rec["jacobian"] = jacobian_proxy(runner, site, jf, actual=batch0.get(jf.int_bits))
            except NotImplementedError as exc:  # an op without forward-mode AD: a model property, not a site failure
                rec["jacobian_unavailable"] = str(exc).splitlines()[0]
                ctx.jacobian_failed.append(site.name)
            spent_s["jacobian_s"] += time.perf_counter() - t0
    except (NatprecError, RuntimeError, ValueError, TypeError) as exc:
        rec["error"] = f"{type(exc).__name__}: {exc}"
    return rec, spent_s


def _resolution(runner: Runner, site, x: np.ndarray, tolerances, b_stars: dict, int_curve: dict, int_site_mse: dict,
                tier) -> dict | None:
    """DEF-SITE-RESOLUTION, DEF-INFORMATION-PRECISION — Δ_v(ε) and b_H,v(ε) for each ε (None: an all-zero site).

    ``int_site_mse``: {b: the site's MSE under int-b}, which places the first probe."""
    if not np.any(x):
        return None
    window = search_window(x)
    amax = float(np.max(np.abs(x)))
    seen: dict[int, float] = {}
    entropy: dict[int, dict] = {}  # ε's that land on one step share its histogram

    def delta_at(k):
        return forward_point(runner, site, UniformStep(k))["distortion"]
    rows = []
    for t in tolerances:
        # First guess: the step whose rounding error (Δ²/12 per element) is the site MSE at which the distortion meets
        # ε — interpolated in logs between int-b*_v and int-(b*_v − 1) when both were measured (they bracket ε),
        # else scaled from int-b*_v as a distortion growing with that error would.  Per-channel int scales make the
        # int step itself a poor guess for weights; their measured error is not.
        b = b_stars[t] if b_stars[t] is not None else max(int_curve)
        if int_curve[b] > 0 and int_site_mse[b] > 0:
            slope = 1.0  # log MSE per log D: 1 where D grows as the error
            if b - 1 in int_curve and int_curve[b - 1] > int_curve[b] and int_site_mse[b - 1] > int_site_mse[b]:
                slope = ((math.log2(int_site_mse[b - 1]) - math.log2(int_site_mse[b]))
                         / (math.log2(int_curve[b - 1]) - math.log2(int_curve[b])))
            log2_mse = math.log2(int_site_mse[b]) + slope * (math.log2(t) - math.log2(int_curve[b]))  # logs: no overflow
            start = round(STEPS_PER_OCTAVE * (math.log2(12) + log2_mse) / 2)  # the nearest grid step; the search clamps it
        else:
            start = step_index_above(amax / ((1 << (b - 1)) - 1)) - 1
        k = resolution_search(delta_at, start, window, t, seen)
        row = {"tolerance": t, "b_star": b_stars[t], "step_index": k, "step": None if k is None else grid_step(k)}
        if k is not None and k not in entropy:
            entropy[k] = resolution_entropy(x, k, tier)
        row.update(entropy[k] if k is not None else
                   {"entropy_bits": None, "entropy_bits_mm": None, "cells": None, "cells_bits": None})
        rows.append(row)
    ks = sorted(seen)
    return {
        "window": list(window),
        "curve": {str(k): seen[k] for k in ks},
        # A finer step (smaller k) with a larger distortion than a coarser one breaks the search's assumption.
        "monotonicity_violations": [{"step_index": a, "coarser_step_index": c, "delta": seen[a], "coarser_delta": seen[c]}
                                    for i, a in enumerate(ks) for c in ks[i + 1:] if seen[a] > seen[c]],
        "by_tolerance": rows,
    }
