"""DEF-SITE — measurement sites of a torch module: its weights and its modules' input/output activations.

A site is named by module path: ``"<module>.<param>"`` for a weight, ``"<module>:input"``
and ``"<module>:output"`` for the first positional input / the output of a module call.
Each site carries the feature axis of its module's activations, derived once from the
module type: the last axis for Linear (and any other module), the channel axis 1 for
convolutions (their activations are N, C, *spatial).
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass

from natprec.reference.errors import InvalidParameterError

from .deps import require_torch

__all__ = ["Site", "SITE_KINDS", "MODULE_KINDS", "DEFAULT_MODULE_KINDS", "find_sites", "select_sites", "default_module_types",
           "module_types_of", "feature_axis_of", "coverage"]

SITE_KINDS = ("weight", "input", "output")
#: Layer kinds a user selects by name (``--modules``) → torch.nn class names.
MODULE_KINDS = {
    "linear": ("Linear",),
    "conv": ("Conv1d", "Conv2d", "Conv3d"),
    "embedding": ("Embedding",),
}
DEFAULT_MODULE_KINDS = ("linear", "conv", "embedding")


def module_types_of(kinds) -> tuple:
    """DEF-SITE — the torch.nn classes of layer kinds (comma-separated string or list of MODULE_KINDS names)."""
    torch = require_torch()
    names = [k.strip().lower() for k in (kinds.split(",") if isinstance(kinds, str) else kinds) if k.strip()]
    bad = [k for k in names if k not in MODULE_KINDS]
    if bad or not names:
        raise InvalidParameterError(f"--modules: unknown layer kind(s) {bad or names}; known: {', '.join(MODULE_KINDS)}",
                                    value=kinds)
    return tuple(getattr(torch.nn, c) for k in dict.fromkeys(names) for c in MODULE_KINDS[k])


def default_module_types() -> tuple:
    """DEF-SITE — the module classes measured by default: Linear, Conv1d/2d/3d and Embedding."""
    return module_types_of(DEFAULT_MODULE_KINDS)


def feature_axis_of(module) -> int:
    """DEF-SITE — the feature axis of ``module``'s activations: 1 (channels) for a convolution, else −1 (last)."""
    torch = require_torch()
    nn = torch.nn
    convs = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)
    return 1 if isinstance(module, convs) else -1


@dataclass(frozen=True)
class Site:
    """DEF-SITE — one tensor of a model that a quantizer can replace.

    ``kind`` is ``"weight"`` (``param`` names the parameter of ``module``),
    ``"input"`` or ``"output"`` (the activation entering / leaving a call of ``module``).
    ``feature_axis``: the activations' feature axis (−1: last, Linear; 1: channels, convolutions);
    block formats group along it.  Weights ignore it (one row per output channel).
    """

    name: str
    kind: str
    module: str
    param: str | None = None
    feature_axis: int = -1


def find_sites(model, *, kinds=("weight", "input"), module_types=None) -> list[Site]:
    """DEF-SITE — every site of ``model`` of the given kinds, in module order.

    ``module_types``: only modules of these classes (default: :func:`default_module_types`,
    ``torch.nn.Linear``, ``Conv1d``/``Conv2d``/``Conv3d`` and ``Embedding``).
    Weight sites are the module's own parameters with ≥ 2 dimensions (matrices and
    kernels; 1-D gains and biases are not weights here); a parameter shared by several
    modules (tied weights) is one site, at the first module that holds it.  An Embedding's
    input is integer indices, not a site (:func:`coverage` says so).
    """
    torch = require_torch()
    bad = [k for k in kinds if k not in SITE_KINDS]
    if bad:
        raise InvalidParameterError(f"unknown site kind(s) {bad}; known: {', '.join(SITE_KINDS)}", value=bad)
    types = default_module_types() if module_types is None else tuple(module_types)
    seen_params: set[int] = set()
    sites = []
    for path, mod in model.named_modules():
        if not isinstance(mod, types):
            continue
        axis = feature_axis_of(mod)
        for k in kinds:
            if k == "weight":
                for pname, p in mod.named_parameters(recurse=False):
                    if p.ndim >= 2 and id(p) not in seen_params:
                        seen_params.add(id(p))
                        sites.append(Site(f"{path}.{pname}" if path else pname, "weight", path, pname, axis))
            elif not (k == "input" and isinstance(mod, torch.nn.Embedding)):
                sites.append(Site(f"{path}:{k}", k, path, None, axis))
    return sites


def coverage(model, sites: list[Site], module_types=None) -> dict:
    """DEF-SITE — what the weight sites cover of ``model``'s parameters, and what was skipped and why.

    ``skipped``: one line per reason — parameters with ≥ 2 dimensions of modules of other
    classes (by class), 1-D parameters (gains and biases are not sites), parameters of
    selected modules not chosen as sites, and Embedding inputs (integer indices).
    """
    torch = require_torch()
    types = default_module_types() if module_types is None else tuple(module_types)
    chosen = {(s.module, s.param) for s in sites if s.kind == "weight"}
    total = measured = 0
    other: dict[str, list] = {}
    one_d = unchosen = 0
    seen: set[int] = set()
    for path, mod in model.named_modules():
        for pname, p in mod.named_parameters(recurse=False):
            if id(p) in seen:
                continue
            seen.add(id(p))
            total += p.numel()
            if (path, pname) in chosen:
                measured += p.numel()
            elif p.ndim < 2:
                one_d += p.numel()
            elif not isinstance(mod, types):
                other.setdefault(type(mod).__name__, [0, 0])
                other[type(mod).__name__][0] += 1
                other[type(mod).__name__][1] += p.numel()
            else:
                unchosen += p.numel()
    skipped = [f"{n} {cls} parameter tensor(s) ({k:,} parameters): not a selected layer kind"
               for cls, (n, k) in sorted(other.items())]
    if one_d:
        skipped.append(f"{one_d:,} parameters in 1-D gains and biases: not sites")
    if unchosen:
        skipped.append(f"{unchosen:,} parameters of selected layers not among the chosen sites (--sites)")
    emb = [s for s in sites if s.kind == "weight" and isinstance(model.get_submodule(s.module), torch.nn.Embedding)]
    if emb:
        skipped.append(f"{len(emb)} Embedding input(s): integer indices, nothing to quantize")
    return {"parameters": total, "measured_parameters": measured, "skipped": skipped}


def select_sites(sites: list[Site], patterns) -> list[Site]:
    """DEF-SITE — the sites whose name matches any glob pattern (comma-separated string or list).

    A pattern that matches no site raises InvalidParameterError naming it.
    """
    if patterns is None:
        return list(sites)
    pats = [p.strip() for p in (patterns.split(",") if isinstance(patterns, str) else patterns) if p.strip()]
    if not pats:
        raise InvalidParameterError("--sites: empty pattern", value=patterns)
    for p in pats:
        if not any(fnmatch.fnmatchcase(s.name, p) for s in sites):
            raise InvalidParameterError(f"--sites: pattern {p!r} matches no site (e.g. {sites[0].name!r})" if sites
                                        else f"--sites: pattern {p!r}: the model has no sites", value=p)
    return [s for s in sites if any(fnmatch.fnmatchcase(s.name, p) for p in pats)]
