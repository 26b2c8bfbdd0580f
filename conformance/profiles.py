"""Hypothesis profiles: ``dev`` (default, quick), ``ci`` (every CI run), ``thorough`` (GPU/nightly runs).

Select with the environment variable ``NATPREC_HYPOTHESIS_PROFILE``.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

__all__ = ["PROFILES", "load_profile"]

PROFILES = {
    "dev": dict(max_examples=40),
    "ci": dict(max_examples=150, derandomize=True, print_blob=True),
    "thorough": dict(max_examples=10_000, print_blob=True),
}

for _name, _kw in PROFILES.items():
    settings.register_profile(
        _name, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large], **_kw
    )


def load_profile() -> str:
    name = os.environ.get("NATPREC_HYPOTHESIS_PROFILE", "dev")
    if name not in PROFILES:
        raise ValueError(f"NATPREC_HYPOTHESIS_PROFILE={name!r}; expected one of {sorted(PROFILES)}")
    settings.load_profile(name)
    return name
