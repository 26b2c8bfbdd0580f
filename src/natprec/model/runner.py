"""DEF-FORWARD-SENSITIVITY — running a model with one site replaced, the frozen upstream replayed from cache.

The calibration batches are run once in float32.  From that run the runner knows,
for every module, when its (single) call started and ended.  A module whose call ends
before a site is first touched cannot depend on the site, so for that site its output
is replayed from the cache instead of recomputed: the upstream is never recomputed
per format.  Replay is checked once to reproduce the float32 output bit for bit; if
it does not (e.g. a model that mutates cached tensors in place), replay is switched
off and every run recomputes the whole model.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np

from natprec.reference.errors import InvalidParameterError, NonFiniteInputError

from .deps import require_torch
from .distortion import check_distortion
from .sites import Site

__all__ = ["MeasuredModel", "Runner", "call_model", "resolve_device", "statistics_tier", "to_device"]


@dataclass
class MeasuredModel:
    """DEF-TASK-DISTORTION — a model with its calibration batches and how its output is compared.

    ``batches``: list of batches; a Mapping is passed as ``model(**b)``, a tuple/list as
    ``model(*b)``, anything else as ``model(b)``.  ``output_fn(model_output, batch)``
    returns the tensor compared (first axis = samples).  ``token_mask(batch)`` (optional)
    returns a bool mask of the leading axes of an activation that hold real data (not
    padding), used for the information measures.  ``loss_fn(output, batch)`` returns
    per-sample losses for the backward sensitivity and the ``loss`` distortion.
    """

    model: object
    batches: list
    output_fn: object = None
    distortion: str = "mse"
    token_mask: object = None
    loss_fn: object = None
    description: str = "user model"
    notes: list = field(default_factory=list)


def call_model(model, batch):
    """Run ``model`` on one calibration batch (Mapping → kwargs, tuple/list → args)."""
    if isinstance(batch, Mapping):
        return model(**batch)
    if isinstance(batch, (tuple, list)):
        return model(*batch)
    return model(batch)


def resolve_device(device=None) -> str:
    """DEF-FORWARD-SENSITIVITY — where the model runs: ``None`` → "cuda" when torch sees a CUDA device, else "cpu";
    "cpu", "cuda" or "cuda:N" as given, if torch has it (else InvalidParameterError naming ``--device``)."""
    torch = require_torch()
    if device is None:
        return "cuda" if torch.cuda.is_available() else "cpu"
    name = str(device).strip().lower()
    if name == "cpu":
        return name
    if name == "cuda" or (name.startswith("cuda:") and name[5:].isdigit()):
        n = torch.cuda.device_count() if torch.cuda.is_available() else 0
        index = int(name[5:]) if ":" in name else 0
        if index >= n:
            raise InvalidParameterError(f"--device {device}: torch sees {n} CUDA device(s)"
                                        + ("" if n else " (a CPU build of torch, or no GPU)"), value=device)
        return name
    raise InvalidParameterError(f"--device must be cpu, cuda or cuda:N; got {device!r}", value=device)


def statistics_tier(device: str):
    """DEF-SITE — the tier that quantizes and measures a site: ``natprec.accelerated`` when the passes run on a
    CUDA device and that tier has a working GPU backend, else ``natprec.reference`` (the tiers agree bit for bit;
    the accelerated tier hands to the reference what it has no kernel for)."""
    if str(device).startswith("cuda"):
        import natprec.accelerated

        if natprec.accelerated.gpu_available()[0]:
            return natprec.accelerated
    import natprec.reference

    return natprec.reference


def to_device(batch, device: str):
    """A calibration batch with its tensors on ``device`` (a Mapping, tuple/list or tensor; anything else as is)."""
    torch = require_torch()
    if isinstance(batch, torch.Tensor):
        return batch.to(device)
    if isinstance(batch, Mapping):
        return {k: to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, (tuple, list)):
        return type(batch)(to_device(v, device) for v in batch)
    return batch


def _first_tensor(obj):
    torch = require_torch()
    if isinstance(obj, torch.Tensor):
        return obj
    if isinstance(obj, Mapping):
        obj = list(obj.values())
    if isinstance(obj, (tuple, list)) and obj:
        return _first_tensor(obj[0])
    raise InvalidParameterError(f"model output {type(obj).__name__} holds no tensor; give an output_fn", value=type(obj).__name__)


class Runner:
    """DEF-FORWARD-SENSITIVITY — float32 baseline, upstream cache and site-replaced runs of a MeasuredModel."""

    def __init__(self, mm: MeasuredModel, sites: list[Site]):
        torch = require_torch()
        self.torch = torch
        self.mm = mm
        self.model = mm.model
        self.sites = list(sites)
        self.output_fn = mm.output_fn or (lambda out, batch: _first_tensor(out))
        check_distortion(mm.distortion)
        if not mm.batches:
            raise InvalidParameterError("calibration: no batches", value=0)
        self.model.eval()
        self.modules = dict(self.model.named_modules())
        for s in self.sites:
            if s.module not in self.modules:
                raise InvalidParameterError(f"site {s.name}: no module {s.module!r}", value=s.name)
        self._order = self._record_order()
        self.skip = {s.name: self._skip_set(s) for s in self.sites}
        self._cache_baseline()
        self.replay_exact = self._check_replay()

    # ------------------------------------------------------------------ baseline
    def _run(self, b: int):
        return self.output_fn(call_model(self.model, self.mm.batches[b]), self.mm.batches[b])

    def _checked_run(self, b: int, what: str):
        try:
            with self.torch.no_grad():
                out = self._run(b)
        except (RuntimeError, TypeError, ValueError, IndexError) as exc:
            raise InvalidParameterError(f"calibration batch {b}: the model rejected it ({what}): {exc}", value=b) from None
        if not isinstance(out, self.torch.Tensor) or out.ndim == 0:
            raise InvalidParameterError(f"calibration batch {b}: output_fn must return a tensor with a sample axis", value=b)
        if not bool(self.torch.isfinite(out).all()):
            raise NonFiniteInputError(f"calibration batch {b}: the float32 model output is not finite", value=b)
        return out.detach().float()

    def _record_order(self) -> dict:
        """(first start tick, last end tick, calls) of every module on batch 0."""
        tick = [0]
        rec: dict[str, list] = {}
        hooks = []

        def pre(name):
            def f(m, args):
                r = rec.setdefault(name, [tick[0], None, 0])
                r[2] += 1
                tick[0] += 1
            return f

        def post(name):
            def f(m, args, out):
                rec[name][1] = tick[0]
                tick[0] += 1
            return f

        for name, m in self.modules.items():
            hooks.append(m.register_forward_pre_hook(pre(name)))
            hooks.append(m.register_forward_hook(post(name)))
        try:
            self._checked_run(0, "order pass")
        finally:
            for h in hooks:
                h.remove()
        for s in self.sites:
            if s.module not in rec:
                raise InvalidParameterError(f"site {s.name}: module {s.module!r} is never called on the calibration data", value=s.name)
            if s.kind != "weight" and rec[s.module][2] != 1:
                raise InvalidParameterError(f"site {s.name}: module called {rec[s.module][2]} times per forward; "
                                            "an activation site needs a module called once", value=s.name)
        return rec

    def _site_start(self, site: Site) -> int:
        if site.kind != "weight":
            return self._order[site.module][0]
        p = self.modules[site.module].get_parameter(site.param)
        holders = [n for n, m in self.modules.items() if any(q is p for q in m.parameters(recurse=False)) and n in self._order]
        return min(self._order[n][0] for n in holders)

    def _skip_set(self, site: Site) -> tuple:
        """Outermost modules called once whose call ends before the site is first touched."""
        t = self._site_start(site)
        cand = {n for n, (s, e, c) in self._order.items() if n and c == 1 and e is not None and e < t}
        return tuple(sorted(n for n in cand if not any(a in cand for a in _ancestors(n))))

    def _cache_baseline(self):
        need = sorted({n for s in self.skip.values() for n in s})
        act_mods = {(s.module, s.kind) for s in self.sites if s.kind != "weight"}
        self.cache = []
        self.activations: dict[tuple, list] = {k: [] for k in act_mods}
        self.reference = []
        for b in range(len(self.mm.batches)):
            store, hooks = {}, []
            for n in need:
                hooks.append(self.modules[n].register_forward_hook(lambda m, a, o, n=n: store.__setitem__(n, _detach(o))))
            for mod, kind in act_mods:
                if kind == "input":
                    hooks.append(self.modules[mod].register_forward_pre_hook(
                        lambda m, a, mod=mod: self.activations[(mod, "input")].append(_positional(a, mod).detach())))
                else:
                    hooks.append(self.modules[mod].register_forward_hook(
                        lambda m, a, o, mod=mod: self.activations[(mod, "output")].append(_first_tensor(o).detach())))
            try:
                self.reference.append(self._checked_run(b, "float32 pass"))
            finally:
                for h in hooks:
                    h.remove()
            if b and self.reference[b].shape[1:] != self.reference[0].shape[1:]:
                raise InvalidParameterError(
                    f"calibration batch {b}: output shape {tuple(self.reference[b].shape)} does not match batch 0's "
                    f"{tuple(self.reference[0].shape)} in the non-sample axes", value=b)
            self.cache.append(store)

    def _check_replay(self) -> bool:
        deepest = max(self.sites, key=lambda s: len(self.skip[s.name]))
        with self.torch.no_grad(), self.replay(deepest, 0):
            out = self._run(0)
        if self.torch.equal(out.float(), self.reference[0]):
            return True
        self.skip = {s.name: () for s in self.sites}
        self.mm.notes.append("upstream replay did not reproduce the float32 output; every run recomputes the whole model")
        return False

    # ------------------------------------------------------------------ site-replaced runs
    @contextmanager
    def replay(self, site: Site, b: int):
        """Replay the frozen upstream of ``site`` for batch ``b`` from the cache."""
        patched = []
        try:
            for n in self.skip[site.name]:
                out = self.cache[b][n]
                self.modules[n].forward = lambda *a, _o=out, **k: _o
                patched.append(self.modules[n])
            yield
        finally:
            for m in patched:
                del m.forward

    @contextmanager
    def replaced(self, site: Site, value):
        """Install ``value`` at ``site``: a weight tensor, or a function activation → activation."""
        torch = self.torch
        if site.kind == "weight":
            p = self.modules[site.module].get_parameter(site.param)
            saved = p.detach().clone()
            with torch.no_grad():
                p.copy_(value)
            try:
                yield
            finally:
                with torch.no_grad():
                    p.copy_(saved)
            return
        mod = self.modules[site.module]
        if site.kind == "input":
            h = mod.register_forward_pre_hook(lambda m, a: (value(_positional(a, site.module)),) + tuple(a[1:]))
        else:
            h = mod.register_forward_hook(lambda m, a, o: value(o) if isinstance(o, torch.Tensor) else o)
        try:
            yield
        finally:
            h.remove()

    def run_replaced(self, site: Site, value, b: int):
        """Output of batch ``b`` with ``value`` installed at ``site`` (no grad, upstream replayed)."""
        with self.torch.no_grad(), self.replay(site, b), self.replaced(site, value):
            return self._run(b).float()

    def site_tensor(self, site: Site, b: int = 0):
        """The float32 tensor at ``site`` (weights: the parameter; activations: batch ``b``'s)."""
        if site.kind == "weight":
            return self.modules[site.module].get_parameter(site.param).detach()
        return self.activations[(site.module, site.kind)][b]

    def valid_rows(self, site: Site, b: int) -> np.ndarray:
        """The activation of batch ``b`` restricted to real (non-padding) positions, as a 2-D float32 array.

        Rows are positions, columns the site's feature axis (``site.feature_axis``, moved last
        first: channels for a convolution); the token mask covers the leading axes after the move.
        """
        x = self.site_tensor(site, b)
        if x.ndim >= 2:
            ax = site.feature_axis
            if not -x.ndim <= ax < x.ndim:
                raise InvalidParameterError(f"site {site.name}: feature axis {ax} outside its {x.ndim}-D activation", value=site.name)
            if ax % x.ndim != x.ndim - 1:
                x = x.movedim(ax, -1)
        if self.mm.token_mask is not None:
            mask = self.mm.token_mask(self.mm.batches[b])
            if tuple(mask.shape) == tuple(x.shape[: mask.ndim]):
                x = x[mask.bool()]
        x = x.cpu()
        return x.reshape(-1, x.shape[-1]).numpy() if x.ndim else x.reshape(1, 1).numpy()


def _ancestors(name: str):
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def _positional(args, module: str):
    if not args:
        raise InvalidParameterError(f"site {module}:input: the module is called without a positional input", value=module)
    return args[0]


def _detach(o):
    torch = require_torch()
    if isinstance(o, torch.Tensor):
        return o.detach()
    if isinstance(o, tuple) and not hasattr(o, "_fields"):
        return tuple(_detach(v) for v in o)
    return o
