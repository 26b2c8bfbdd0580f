"""DEF-STUDY-ROUNDING, DEF-STUDY-BILLM, DEF-STUDY-GEOMETRY — what the weight-layer studies share.

Picking a model's 2-D Linear weight sites by glob pattern, the calibration inputs a layer sees
(forward pre-hooks, padding positions dropped by the model's token mask), and the task distortion
of the model with one weight replaced (the model's own distortion, spec/11 DEF-TASK-DISTORTION).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from natprec.model.distortion import per_sample_distortion
from natprec.model.runner import MeasuredModel, Runner
from natprec.model.sites import Site, find_sites, module_types_of, select_sites
from natprec.reference.errors import InvalidParameterError

__all__ = ["check_patterns", "check_positive_int", "check_bits", "linear_weight_sites", "layer_runner", "layer_inputs",
           "task_distortion", "relative_output_error", "verdict_lines", "save_figure"]


def check_patterns(flag: str, value):
    """DEF-STUDY — glob patterns of weight-site names: a non-empty string or list of non-empty strings."""
    items = value.split(",") if isinstance(value, str) else list(value) if isinstance(value, (list, tuple)) else None
    if items is None or not [p for p in items if isinstance(p, str) and p.strip()]:
        raise InvalidParameterError(f"{flag}: give site-name patterns (e.g. 'encoder.layer.0.*'); got {value!r}", value=value)
    return tuple(p.strip() for p in items if p.strip())


def check_positive_int(flag: str, value, *, low: int = 1, high: int | None = None) -> int:
    """DEF-STUDY — an integer in [low, high] (InvalidParameterError naming the flag, carrying the value)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low or (high is not None and value > high):
        span = f"in [{low}, {high}]" if high is not None else f">= {low}"
        raise InvalidParameterError(f"{flag} must be an integer {span}; got {value!r}", value=value)
    return int(value)


def check_bits(flag: str, value) -> tuple:
    """DEF-STUDY — integer bit-widths of the intB family, each in 2..8."""
    vals = (value,) if isinstance(value, (int, np.integer)) and not isinstance(value, bool) else tuple(value)
    if not vals:
        raise InvalidParameterError(f"{flag}: no value", value=value)
    return tuple(check_positive_int(flag, b, low=2, high=8) for b in vals)


def linear_weight_sites(mm: MeasuredModel, patterns) -> list[Site]:
    """DEF-STUDY — the 2-D ``nn.Linear`` weight sites of ``mm`` whose names match ``patterns`` (glob)."""
    sites = find_sites(mm.model, kinds=("weight",), module_types=module_types_of("linear"))
    return select_sites(sites, patterns)


def layer_runner(mm: MeasuredModel, sites: list[Site], device=None) -> Runner:
    """DEF-STUDY — a :class:`natprec.model.Runner` over the weight sites and their modules' inputs.

    ``device``: where the model runs (None → the model's current device; a named device moves it).
    """
    if device is not None:
        from natprec.model.runner import resolve_device, to_device

        dev = resolve_device(device)
        mm.model.to(dev)
        mm.batches = [to_device(b, dev) for b in mm.batches]
    inputs = [Site(f"{s.module}:input", "input", s.module, None, s.feature_axis) for s in sites]
    return Runner(mm, list(sites) + list({i.name: i for i in inputs}.values()))


def layer_inputs(runner: Runner, site: Site, max_rows: int | None = None) -> np.ndarray:
    """DEF-STUDY — the calibration inputs of ``site``'s module as rows (float64; padding dropped), at most ``max_rows``."""
    inp = next(s for s in runner.sites if s.kind == "input" and s.module == site.module)
    x = np.concatenate([runner.valid_rows(inp, b) for b in range(len(runner.mm.batches))]).astype(np.float64)
    return x[:max_rows] if max_rows is not None else x


def task_distortion(runner: Runner, site: Site, w_hat: np.ndarray) -> float:
    """DEF-STUDY — the model's task distortion (its ``distortion``) with ``w_hat`` installed at ``site``, mean per sample."""
    torch = runner.torch
    w = runner.site_tensor(site)
    value = torch.from_numpy(np.asarray(w_hat, dtype=np.float32)).to(w.device)
    d, n = 0.0, 0
    for b in range(len(runner.mm.batches)):
        out = runner.run_replaced(site, value, b)
        ref = runner.reference[b]
        d += float(per_sample_distortion(runner.mm.distortion, ref, out, loss_fn=runner.mm.loss_fn,
                                         batch=runner.mm.batches[b]).sum())
        n += ref.shape[0]
    return d / n


def relative_output_error(x: np.ndarray, w: np.ndarray, w_hat: np.ndarray) -> float:
    """DEF-STUDY — the layer's output distortion ‖X(Ŵ − W)ᵀ‖²_F / ‖XWᵀ‖²_F on its calibration inputs X."""
    num = float(np.sum((x @ (np.asarray(w_hat, np.float64) - w).T) ** 2))
    den = float(np.sum((x @ np.asarray(w, np.float64).T) ** 2))
    return num / den if den > 0 else 0.0


def verdict_lines(doc: dict) -> list[str]:
    """DEF-STUDY — the closing lines of a study's table: each claim's verdict with its numbers, then each error."""
    return ["", *[f"{c['id']}: {c['verdict']} — {c['measured']}" for c in doc["claims"]],
            *[f"error: {e['what']}: {e['error']}" for e in doc["errors"]]]


def save_figure(plt, fig, out_dir, name: str) -> Path:
    """DEF-STUDY — write ``fig`` as ``out_dir/name`` (tight layout, 110 dpi), close it, return the path."""
    path = Path(out_dir) / name
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
