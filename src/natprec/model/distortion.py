"""DEF-TASK-DISTORTION — the task distortion D between the float32 output and a quantized run's output.

Per sample n (first axis of the output tensor):

* ``cosine``: 1 − cos(y_n, ŷ_n) over the flattened sample (embeddings);
* ``mse``: mean over the sample's elements of (y − ŷ)²;
* ``kl``: KL(softmax y ‖ softmax ŷ) over the last axis in nats, averaged over the other
  axes of the sample (classifier / language-model logits);
* ``loss``: loss(ŷ) − loss(y) with the model's labelled loss (needs ``loss_fn``).

Δ is the mean over all calibration samples.
"""

from __future__ import annotations

from natprec.reference.errors import InvalidParameterError

from .deps import require_torch

__all__ = ["DISTORTIONS", "DISTORTION_UNITS", "per_sample_distortion", "check_distortion"]

DISTORTIONS = ("cosine", "mse", "kl", "loss")
#: What a tolerance ε means under each distortion (stated in the report beside ε).
DISTORTION_UNITS = {
    "cosine": "1 − cosine similarity, scale-free",
    "mse": "absolute, in the squared units of the output: choose ε for your model's output scale",
    "kl": "nats per sample",
    "loss": "the loss's own units, per sample",
}


def check_distortion(name: str) -> str:
    """DEF-TASK-DISTORTION — ``name`` if it is a known distortion, else InvalidParameterError."""
    if name not in DISTORTIONS:
        raise InvalidParameterError(f"unknown distortion {name!r}; known: {', '.join(DISTORTIONS)}", value=name)
    return name


def per_sample_distortion(name: str, ref, out, *, loss_fn=None, batch=None):
    """DEF-TASK-DISTORTION — D per sample (float64 tensor of length N) between outputs ``ref`` and ``out``."""
    torch = require_torch()
    check_distortion(name)
    r = ref.detach().double()
    o = out.detach().double()
    if name == "cosine":
        return 1.0 - torch.nn.functional.cosine_similarity(r.flatten(1), o.flatten(1), dim=1, eps=1e-30)
    if name == "mse":
        return ((r - o) ** 2).flatten(1).mean(dim=1)
    if name == "kl":
        lp, lq = torch.log_softmax(r, dim=-1), torch.log_softmax(o, dim=-1)
        kl = (lp.exp() * (lp - lq)).sum(dim=-1)
        return kl.reshape(kl.shape[0], -1).mean(dim=1)
    if loss_fn is None:
        raise InvalidParameterError("distortion 'loss' needs a loss_fn(output, batch) returning per-sample losses", value=name)
    return (loss_fn(out, batch) - loss_fn(ref, batch)).detach().double()
