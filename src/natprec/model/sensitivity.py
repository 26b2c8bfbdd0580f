"""DEF-FORWARD-SENSITIVITY, DEF-OPERATIONAL-PRECISION-SITE, DEF-BACKWARD-SENSITIVITY, DEF-DUAL-PRECISION,
DEF-JACOBIAN-PROXY, DEF-AMPLIFICATION, THM-MONOTONE-SEARCH — the per-site measurements (spec/11).

Every run quantizes one site and keeps the rest of the network in float32.
"""

from __future__ import annotations

import bisect
import functools
import math
import weakref
from collections.abc import Mapping

import numpy as np

from natprec.reference.errors import InvalidParameterError, NonFiniteInputError

from .deps import require_torch
from .distortion import per_sample_distortion
from .quantize import SiteFormat
from .runner import Runner, call_model
from .sites import Site

__all__ = [
    "forward_point",
    "Scout",
    "scout_point",
    "monotone_search",
    "int_step_law",
    "monotonicity_violations",
    "precision_from_curve",
    "gradients",
    "backward_sensitivity",
    "dual_precision",
    "jacobian_proxy",
    "PROBE_SEED",
]

#: Seed of the random probe directions of the default backward loss.
PROBE_SEED = 0


def _squared_error(zq, z) -> float:
    """Σ (zq − z)² in float64: the values and the sum of ``((zq.double() − z.double()) ** 2).sum()`` with one
    float64 temporary instead of four (a float32 widens exactly; x ** 2 is x · x)."""
    d = zq.double()
    return float(d.sub_(z).mul_(d).sum())


def _quantizer(runner: Runner, site: Site, fmt: SiteFormat, acc: list):
    """The value to install at ``site`` for ``fmt``; ``acc`` collects [Σ (Q(z) − z)², element count]."""
    torch = runner.torch
    if site.kind == "weight":
        w = runner.site_tensor(site)
        wq = torch.from_numpy(fmt.quantize_dequantize(w.cpu().numpy(), per_channel=True)).to(w.device)
        acc[0] += _squared_error(wq, w)
        acc[1] += w.numel()
        return wq

    def q(x):
        xq = torch.from_numpy(fmt.quantize_dequantize(x.detach().cpu().numpy(), per_channel=False,
                                                      feature_axis=site.feature_axis)).to(x.device)
        acc[0] += _squared_error(xq, x.detach())
        acc[1] += x.numel()
        return xq.to(x.dtype)

    return q


class Scout:
    """DEF-FORWARD-SENSITIVITY — one format's run on calibration batch 0 alone (see :func:`scout_point`).

    ``distortion``: the task distortion averaged over batch 0's samples (NaN if its output is not finite), an
    estimate of Δ→_v that places probes.  :func:`forward_point` of the same format continues from this run, once.
    """

    def __init__(self, fmt: SiteFormat, distortion: float, output, value, acc: list):
        self.format = fmt.name
        self.distortion = distortion
        self._state = (output, value, acc)

    def take(self, fmt: SiteFormat):
        """(batch-0 output, installed value, [Σ squared site error, element count]) for ``fmt``'s forward point, once."""
        if fmt.name != self.format:
            raise InvalidParameterError(f"a scout of {self.format} cannot continue as {fmt.name}", value=fmt.name)
        if self._state is None:
            raise InvalidParameterError(f"the scout of {self.format} was already continued", value=self.format)
        state, self._state = self._state, None
        return state


def scout_point(runner: Runner, site: Site, fmt: SiteFormat) -> Scout:
    """DEF-FORWARD-SENSITIVITY — ``fmt`` at ``site`` run on calibration batch 0 only: a fifth of the calibration
    tokens on all-MiniLM-L6-v2 (its sentences are sorted by length), whose Δ estimate places the int search's
    first probe (THM-MONOTONE-SEARCH) and whose run :func:`forward_point` reuses when that format is measured."""
    acc = [0.0, 0]
    value = _quantizer(runner, site, fmt, acc)
    out = runner.run_replaced(site, value, 0)
    ref = runner.reference[0]
    d = math.nan
    if bool(runner.torch.isfinite(out).all()):
        d = float(per_sample_distortion(runner.mm.distortion, ref, out, loss_fn=runner.mm.loss_fn,
                                        batch=runner.mm.batches[0]).sum()) / ref.shape[0]
    return Scout(fmt, d, out, value, acc)


def forward_point(runner: Runner, site: Site, fmt: SiteFormat, outputs: dict | None = None, scout: Scout | None = None) -> dict:
    """DEF-FORWARD-SENSITIVITY, DEF-AMPLIFICATION — Δ→_v for one format, with output MSE, site MSE and their ratio.

    ``bits`` is the format's nominal bits per element, ``effective_bits`` what it spends on
    this site's rows (block formats on rows shorter than a block, e.g. few conv channels).

    ``distortion`` is the model's task distortion averaged over all calibration samples;
    ``cosine`` and ``output_mse`` are reported alongside.  A non-finite quantized output
    raises NonFiniteInputError naming the site and format.  ``outputs``: a dict that receives
    {batch: model output} (the Jacobian proxy reuses batch 0's as its ``actual``).  ``scout``: this
    format's :func:`scout_point`, whose batch-0 run is taken instead of run again (the same numbers, bit for bit).
    """
    if scout is None:
        acc = [0.0, 0]
        value = _quantizer(runner, site, fmt, acc)
        first = None
    else:
        first, value, acc = scout.take(fmt)
    d = cos = mse = 0.0
    n = 0
    for b in range(len(runner.mm.batches)):
        out = first if b == 0 and first is not None else runner.run_replaced(site, value, b)
        if outputs is not None:
            outputs[b] = out
        if not bool(runner.torch.isfinite(out).all()):
            raise NonFiniteInputError(f"site {site.name}: format {fmt.name}: non-finite model output on batch {b}", value=site.name)
        ref = runner.reference[b]
        batch = runner.mm.batches[b]
        d += float(per_sample_distortion(runner.mm.distortion, ref, out, loss_fn=runner.mm.loss_fn, batch=batch).sum())
        cos += float(per_sample_distortion("cosine", ref, out).sum())
        mse += float(per_sample_distortion("mse", ref, out).sum())
        n += ref.shape[0]
    site_mse = acc[0] / acc[1]
    out_mse = mse / n
    shape = tuple(runner.site_tensor(site, 0).shape)
    return {
        "format": fmt.name,
        "bits": fmt.bits_per_element,
        "effective_bits": fmt.effective_bits(shape, site.kind == "weight", site.feature_axis),
        "distortion": d / n,
        "cosine": cos / n,
        "output_mse": out_mse,
        "site_mse": site_mse,
        "amplification": out_mse / site_mse if site_mse > 0 else None,
    }


def monotone_search(evaluate, bits: list[int], tolerance: float, predict=None, known: dict | None = None,
                    estimate: dict | None = None) -> tuple[int | None, dict]:
    """THM-MONOTONE-SEARCH — min{b ∈ bits : evaluate(b) ≤ tolerance} by bisection, assuming Δ nonincreasing in b.

    ``bits`` ascending.  ``predict(known, tolerance)`` (optional) → the b it expects the answer to be (None: none
    passes); up to two probes after the first then go where they would confirm it — the least b ≥ it, or the one
    below once that is known to pass — instead of the midpoint.  ``estimate``: {b: an estimate of Δ(b)} (e.g. from
    part of the data) that ``predict`` reads while nothing is measured, so that the first probe is placed too.
    Either way the answer is a measured pass next to a measured fail (or an end): on a nonincreasing curve the
    minimum, whatever the predictor and the estimate; only the number of evaluations depends on them:
    ⌈log2(len(bits) + 1)⌉ at most, plus 1 for each placed probe (2, or 3 with an estimate).
    ``known``: {b: Δ(b)} already measured, updated with every new evaluation, so that several ε share points.
    Returns (b*, {b: Δ(b)} of the bit-widths this search consulted); b* is None when even the largest b fails.
    """
    known = {} if known is None else known
    placed = 2 + bool(predict is not None and estimate and not known)
    seen: dict[int, float] = {}
    lo, hi = 0, len(bits)
    guided = 0
    while lo < hi:
        mid = (lo + hi) // 2
        basis = known or estimate
        if predict is not None and basis and guided < placed:
            p = predict(basis, tolerance)
            at = min(max(len(bits) if p is None else bisect.bisect_left(bits, p), lo), hi)  # the least b ≥ p in bits
            mid = hi - 1 if at == hi else at  # hi passes (or is the end): confirm by the one below it
            guided += 1
        b = bits[mid]
        if b not in known:
            known[b] = evaluate(b)
        seen[b] = known[b]
        if seen[b] <= tolerance:
            hi = mid
        else:
            lo = mid + 1
    return (bits[lo] if lo < len(bits) else None), seen


def int_step_law(known: dict, tolerance: float) -> int | None:
    """THM-MONOTONE-SEARCH — a ``predict`` for the int family: the least b ∈ 2…16 at which a distortion growing
    as the square of the int step s_b = max|v|/(2^(b−1) − 1) meets ε, scaled from the measured point nearest ε
    (in log); None when not even int16 would.  It places probes; it decides nothing."""
    b0 = min(known, key=lambda b: abs(math.log(max(known[b], 1e-300)) - math.log(max(tolerance, 1e-300))))
    for b in range(2, 17):
        if known[b0] * (((1 << (b0 - 1)) - 1) / ((1 << (b - 1)) - 1)) ** 2 <= tolerance:
            return b
    return None


def monotonicity_violations(curve: dict) -> list[dict]:
    """THM-MONOTONE-SEARCH — pairs of measured bit-widths b < b' with Δ(b') > Δ(b) (empty on a monotone curve)."""
    bs = sorted(curve)
    return [{"bits": b, "next_bits": c, "delta": curve[b], "next_delta": curve[c]}
            for i, b in enumerate(bs) for c in bs[i + 1:] if curve[c] > curve[b]]


def precision_from_curve(curve: dict, tolerance: float) -> int | None:
    """DEF-OPERATIONAL-PRECISION-SITE — b*_v(ε) = min{b : Δ(b) ≤ ε} on a fully measured curve (None: no b passes)."""
    ok = [b for b in sorted(curve) if curve[b] <= tolerance]
    return ok[0] if ok else None


def gradients(runner: Runner) -> dict:
    """DEF-BACKWARD-SENSITIVITY — ∇L at every site of ``runner``: weights summed over batches, activations per batch.

    L is the model's ``loss_fn`` summed over samples, or without one the probe loss
    Σ_n ⟨r_n, y_n⟩ with fixed Gaussian directions r (seed PROBE_SEED + batch index).
    """
    torch = runner.torch
    model = runner.model
    grads: dict[str, list] = {s.name: [] for s in runner.sites}
    params = {s.name: runner.modules[s.module].get_parameter(s.param) for s in runner.sites if s.kind == "weight"}
    saved_flags = {n: p.requires_grad for n, p in params.items()}
    saved_grads = [(p, p.grad) for p in model.parameters()]  # leave the model's .grad as we found it
    for p in params.values():
        p.requires_grad_(True)
        p.grad = None
    try:
        for b, batch in enumerate(runner.mm.batches):
            hooks = []
            for s in runner.sites:
                if s.kind == "weight":
                    continue

                def tap(t, sink=grads[s.name]):
                    # A fresh node per consumer: its gradient is the one flowing through this site only.
                    t = t.view_as(t) if t.requires_grad else t.detach().requires_grad_(True)
                    t.register_hook(lambda g: sink.append(g.detach().clone()))
                    return t
                m = runner.modules[s.module]
                if s.kind == "input":
                    hooks.append(m.register_forward_pre_hook(lambda mod, a, tap=tap: (tap(a[0]),) + tuple(a[1:])))
                else:
                    hooks.append(m.register_forward_hook(lambda mod, a, o, tap=tap: tap(o)))
            try:
                with torch.enable_grad():
                    out = runner.output_fn(call_model(model, batch), batch)
                    if runner.mm.loss_fn is not None:
                        loss = runner.mm.loss_fn(out, batch).sum()
                    else:
                        g = torch.Generator().manual_seed(PROBE_SEED + b)
                        r = torch.randn(out.shape, generator=g, dtype=out.dtype).to(out.device)  # drawn on the CPU: one r on every device
                        loss = (r * out).sum()
                    loss.backward()
            finally:
                for h in hooks:
                    h.remove()
        for name, p in params.items():
            grads[name] = [p.grad.detach().clone()]
    finally:
        for p, g in saved_grads:
            p.grad = g
        for n, p in params.items():
            p.requires_grad_(saved_flags[n])
    return grads


def backward_sensitivity(grads: list, fmt: SiteFormat, per_channel: bool, feature_axis: int = -1) -> float:
    """DEF-BACKWARD-SENSITIVITY — Δ←_v(b) = Σ‖g − Q_b(g)‖² / Σ‖g‖² over the site's gradient tensors (relative).

    ``feature_axis``: an activation site's feature axis (``Site.feature_axis``); it matters for
    block formats only — the integer family's activation scale is per tensor.
    """
    num = den = 0.0
    for g in grads:
        a = g.cpu().numpy().astype(np.float32)
        q = fmt.quantize_dequantize(a, per_channel=per_channel, feature_axis=feature_axis)
        num += float(np.sum((q.astype(np.float64) - a) ** 2))
        den += float(np.sum(a.astype(np.float64) ** 2))
    return num / den if den > 0 else 0.0


def dual_precision(forward_curve: dict, backward_curve: dict, tol_fwd: float, tol_bwd: float,
                   b_fwd: int | None, b_bwd: int | None) -> int | None:
    """DEF-DUAL-PRECISION — min{b : Δ→(b) ≤ ε_fwd and Δ←(b) ≤ ε_bwd}.

    Read off the curves where both are measured at every b; otherwise (forward curve
    from bisection) max(b*_fwd, b*_bwd), which equals it when both curves are monotone.
    """
    if set(forward_curve) >= set(backward_curve):
        ok = [b for b in sorted(backward_curve) if forward_curve[b] <= tol_fwd and backward_curve[b] <= tol_bwd]
        return ok[0] if ok else None
    return None if b_fwd is None or b_bwd is None else max(b_fwd, b_bwd)


def jacobian_proxy(runner: Runner, site: Site, fmt: SiteFormat, b: int = 0, actual=None) -> dict:
    """DEF-JACOBIAN-PROXY — mean over the samples of batch ``b`` of e_task = ‖J_G(z)(Q(z) − z)‖₂ (forward-mode AD).

    G maps the site tensor z to the model output with the rest frozen in float32;
    ``actual`` is the mean ‖G(Q(z)) − G(z)‖₂ of the same samples, for comparison.  Pass
    ``actual``, the model output of batch ``b`` with Q(z) installed (``forward_point``'s
    ``outputs``), when it is already computed: it is not run again.
    """
    torch = runner.torch
    import torch.autograd.forward_ad as fwad
    from torch.func import functional_call

    batch = runner.mm.batches[b]
    z = runner.site_tensor(site, b).float()
    zq = torch.from_numpy(fmt.quantize_dequantize(z.cpu().numpy(), per_channel=site.kind == "weight",
                                                 feature_axis=site.feature_axis)).to(z.device)
    primals = _linear_primals(runner, b)  # before the upstream is replayed: every linear call of the batch
    with torch.no_grad(), runner.replay(site, b), fwad.dual_level(), _one_tangent_linear()(primals):
        dual = fwad.make_dual(z, zq - z)
        if site.kind == "weight":
            pname = f"{site.module}.{site.param}" if site.module else site.param
            if isinstance(batch, Mapping):  # as call_model: a Mapping is keyword arguments
                out = functional_call(runner.model, {pname: dual}, args=(), kwargs=dict(batch))
            else:
                out = functional_call(runner.model, {pname: dual}, tuple(batch) if isinstance(batch, (tuple, list)) else (batch,))
            value = zq
        else:
            with runner.replaced(site, lambda _x: dual):
                out = call_model(runner.model, batch)
            value = lambda _x: zq  # noqa: E731
        y, t = fwad.unpack_dual(runner.output_fn(out, batch))
    if actual is None:
        actual = runner.run_replaced(site, value, b)
    e = torch.zeros(y.shape[0], dtype=torch.float64) if t is None else t.detach().double().flatten(1).norm(dim=1)
    a = (actual.double() - runner.reference[b].double()).flatten(1).norm(dim=1)
    return {"format": fmt.name, "batch": b, "samples": int(e.shape[0]),
            "e_task": float(e.mean()), "actual": float(a.mean()),
            "ratio": float(e.mean() / a.mean()) if float(a.mean()) > 0 else math.nan}


#: Runner → {batch: {(weight, bias) storage: [(input, output) of each linear call of that batch's float32 run]}}.
_PRIMALS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _linear_primals(runner: Runner, b: int) -> dict:
    """The inputs and outputs of every ``nn.Linear`` call in batch ``b``'s float32 run (recorded once per runner and
    batch): a tangent pass through the float32 rest of the model computes these primals again, bit for bit."""
    torch = runner.torch
    per_batch = _PRIMALS.setdefault(runner, {})
    if b not in per_batch:
        calls: dict = {}

        def keep(m, args, out):
            calls.setdefault(_linear_key(m.weight, m.bias), []).append((args[0].detach().clone(), out.detach().clone()))
        hooks = [m.register_forward_hook(keep) for m in runner.model.modules() if isinstance(m, torch.nn.Linear)]
        try:
            with torch.no_grad():
                call_model(runner.model, runner.mm.batches[b])
        finally:
            for h in hooks:
                h.remove()
        per_batch[b] = calls
    return per_batch[b]


def _linear_key(weight, bias) -> tuple:
    return (weight.data_ptr(), tuple(weight.shape), None if bias is None else bias.data_ptr())


@functools.cache
def _one_tangent_linear():
    """The class of a torch function mode in which a linear or convolution layer whose input or weight alone
    carries a tangent computes only that product.  torch's forward-AD rule also multiplies the other operand by
    its (zero) tangent at full cost: a third of the proxy's time on all-MiniLM-L6-v2.  A linear layer whose primal
    input is one of ``primals``' float32 inputs for its weight (compared element for element) takes that call's
    output as its primal instead of computing it again.  The tangent values are torch's own (tests compare them)."""
    torch = require_torch()
    import torch.autograd.forward_ad as fwad
    from torch.overrides import TorchFunctionMode

    fn = torch.nn.functional
    conv = ("input", "weight", "bias", "stride", "padding", "dilation", "groups")
    params = {fn.linear: ("input", "weight", "bias"), fn.conv1d: conv, fn.conv2d: conv, fn.conv3d: conv}

    class OneTangentLinear(TorchFunctionMode):
        def __init__(self, primals: dict | None = None):
            super().__init__()
            self.primals = {} if primals is None else primals

        def __torch_function__(self, func, types, args=(), kwargs=None):
            kwargs = kwargs or {}
            if func in params:
                a = dict(zip(params[func], args)) | kwargs
                xp, xt = fwad.unpack_dual(a["input"])
                wp, wt = fwad.unpack_dual(a["weight"])
                bp, bt = (None, None) if a.get("bias") is None else fwad.unpack_dual(a["bias"])
                if bt is None and (xt is None) != (wt is None):
                    tangent = func(**(a | {"input": xp if xt is None else xt, "weight": wp if wt is None else wt, "bias": None}))
                    primal = None
                    if func is fn.linear and wt is None:
                        primal = next((out for x0, out in self.primals.get(_linear_key(wp, bp), ())
                                       if x0.shape == xp.shape and torch.equal(x0, xp)), None)
                    if primal is None:
                        primal = func(**(a | {"input": xp, "weight": wp, "bias": bp}))
                    return fwad.make_dual(primal, tangent)
            return func(*args, **kwargs)

    return OneTangentLinear
