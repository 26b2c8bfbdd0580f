"""DEF-STUDY — what the studies of spec/12 read from a model: named modules' activations on the calibration batches.

A study names modules by glob patterns; :func:`matching_modules` resolves them (a pattern that
matches nothing is an error naming it) and :func:`module_rows` runs the calibration batches once
with forward hooks and returns each module's input or output at the real (non-padding) positions.
"""

from __future__ import annotations

import fnmatch

import numpy as np

from natprec.model.deps import require_torch
from natprec.model.runner import MeasuredModel, call_model, resolve_device, to_device
from natprec.reference.errors import InvalidParameterError

__all__ = ["matching_modules", "module_rows", "place_model", "real_positions"]


def matching_modules(model, patterns, *, types=None) -> list[str]:
    """DEF-STUDY — names of ``model``'s modules matching any glob pattern (a list or comma-separated), in module order.

    ``types``: only modules of these classes.  A pattern that matches no module raises
    InvalidParameterError naming it (``value`` = the pattern).
    """
    pats = [p.strip() for p in (patterns.split(",") if isinstance(patterns, str) else patterns) if str(p).strip()]
    if not pats:
        raise InvalidParameterError("modules: empty pattern", value=patterns)
    names = [n for n, m in model.named_modules() if n and (types is None or isinstance(m, types))]
    for p in pats:
        if not any(fnmatch.fnmatchcase(n, p) for n in names):
            raise InvalidParameterError(f"modules: pattern {p!r} matches no module"
                                        + (f" (e.g. {names[0]!r})" if names else ""), value=p)
    return [n for n in names if any(fnmatch.fnmatchcase(n, p) for p in pats)]


def place_model(mm: MeasuredModel, device=None) -> str:
    """DEF-STUDY — move the model and its calibration batches to ``device`` (:func:`resolve_device`); the device used."""
    dev = resolve_device(device)
    mm.model.to(dev)
    mm.batches = [to_device(b, dev) for b in mm.batches]
    mm.model.eval()
    return dev


def real_positions(mm: MeasuredModel, batch, x):
    """DEF-STUDY — ``x`` (leading axes: sample, position …) at the real positions of ``batch``: 2-D, one row per position.

    The model's ``token_mask`` selects the rows when its shape matches ``x``'s leading axes; else every row counts.
    """
    if mm.token_mask is not None and x.ndim >= 2:
        mask = mm.token_mask(batch)
        if tuple(mask.shape) == tuple(x.shape[: mask.ndim]):
            x = x[mask.bool().to(x.device)]
    return x.reshape(-1, x.shape[-1]) if x.ndim else x.reshape(1, 1)


def module_rows(mm: MeasuredModel, modules, *, kind: str = "output") -> dict[str, np.ndarray]:
    """DEF-STUDY — each module's ``kind`` ("input": first positional argument, or "output") on all calibration batches.

    Rows are the real positions (:func:`real_positions`), float32, the batches stacked.
    """
    torch = require_torch()
    if kind not in ("input", "output"):
        raise InvalidParameterError(f"kind must be 'input' or 'output'; got {kind!r}", value=kind)
    mods = dict(mm.model.named_modules())
    got: dict[str, list] = {n: [] for n in modules}
    for b, batch in enumerate(mm.batches):
        seen, hooks = {}, []
        for n in modules:
            if kind == "input":
                hooks.append(mods[n].register_forward_pre_hook(lambda m, a, n=n: seen.__setitem__(n, a[0].detach())))
            else:
                hooks.append(mods[n].register_forward_hook(
                    lambda m, a, o, n=n: seen.__setitem__(n, (o[0] if isinstance(o, tuple) else o).detach())))
        try:
            with torch.no_grad():
                call_model(mm.model, batch)
        finally:
            for h in hooks:
                h.remove()
        for n in modules:
            if n not in seen:
                raise InvalidParameterError(f"module {n!r} is not called on calibration batch {b}", value=n)
            got[n].append(real_positions(mm, batch, seen[n]).float().cpu().numpy())
    return {n: np.concatenate(v, axis=0) for n, v in got.items()}
