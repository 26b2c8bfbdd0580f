"""Tier registry: which implementations the conformance suites run against the reference.

* ``reference`` — always (``natprec.reference``; it is the oracle, never compared with itself).
* ``accelerated`` — when ``natprec.accelerated`` reports a usable GPU.
* third-party tiers — entry points in the group ``natprec.tiers`` (value ``module`` or
  ``module:attribute``), or the environment variable ``NATPREC_TIERS`` holding a
  comma-separated list of ``name=module[:attribute]``.  A tier object exposes any
  subset of the reference's public functions under the same names; suites skip
  the functions a tier does not provide.
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass
from importlib.metadata import entry_points

__all__ = ["Tier", "reference_tier", "candidate_tiers", "load_tier"]

ENV_VAR = "NATPREC_TIERS"
ENTRY_POINT_GROUP = "natprec.tiers"


@dataclass(frozen=True)
class Tier:
    """A named implementation of (part of) the reference API."""

    name: str
    impl: object
    skip_reason: str | None = None

    def provides(self, function: str) -> bool:
        return callable(getattr(self.impl, function, None))


def load_tier(name: str, target: str) -> Tier:
    """Import ``module`` or ``module:attribute``; a failure becomes a skipped tier with the reason."""
    mod_name, _, attr = target.partition(":")
    try:
        obj = importlib.import_module(mod_name)
        if attr:
            obj = getattr(obj, attr)
    except Exception as exc:  # any import failure must surface as a visible skip, not a crash
        return Tier(name, None, f"cannot load tier {name!r} from {target!r}: {type(exc).__name__}: {exc}")
    return Tier(name, obj)


def reference_tier() -> Tier:
    import natprec.reference

    return Tier("reference", natprec.reference)


def _accelerated() -> Tier:
    try:
        import natprec.accelerated as acc
    except Exception as exc:
        return Tier("accelerated", None, f"natprec.accelerated failed to import: {exc}")
    probe = getattr(acc, "gpu_available", None)
    if probe is None:
        return Tier("accelerated", None, "natprec.accelerated has no kernels yet (issue: accelerated tier)")
    ok, why = probe()
    return Tier("accelerated", acc if ok else None, None if ok else why)


def candidate_tiers() -> list[Tier]:
    """Every non-reference tier, each either usable or carrying the reason it is skipped."""
    tiers = [_accelerated()]
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        tiers.append(load_tier(ep.name, ep.value))
    for item in filter(None, (s.strip() for s in os.environ.get(ENV_VAR, "").split(","))):
        name, sep, target = item.partition("=")
        tiers.append(load_tier(name, target) if sep else load_tier(item, item))
    return tiers
