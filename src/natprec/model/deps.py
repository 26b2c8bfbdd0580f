"""DEF-SITE — lazy access to the optional torch dependency of natprec.model.

``import natprec.model`` works without torch; every function that needs it calls
:func:`require_torch`, which raises MissingDependencyError naming the extra.
"""

from __future__ import annotations

import os
import sys

from natprec.reference.errors import MissingDependencyError

__all__ = ["require_torch", "require_matplotlib", "busy_wait_policy", "TORCH_EXTRA_HINT"]

TORCH_EXTRA_HINT = "pip install natprec[torch]"


def busy_wait_policy(load: float) -> str | None:
    """DEF-SITE — OpenMP's wait policy for torch given the 1-minute load average before natprec starts work:
    "PASSIVE" (idle threads sleep) when something else already uses a core (load ≥ 0.5), else None (torch's
    default: threads spin briefly, the fastest on an otherwise idle machine).

    Measured on 2 cores, MiniLM's calibration pass on 2 threads: idle, spinning 0.42–0.50 s and passive 0.49–0.68 s;
    beside one busy process, spinning 1.23 s and passive 0.74 s (200 small matmul+GELU steps: 0.69–1.68 s vs 0.25 s).
    """
    return "PASSIVE" if load >= 0.5 else None


def require_torch():
    """DEF-SITE — the ``torch`` module, or MissingDependencyError naming the extra to install.

    When natprec is first to load torch and ``OMP_WAIT_POLICY`` is unset, it is set by
    :func:`busy_wait_policy` from the load average, so that torch's threads do not spin against
    another process.
    """
    if "torch" not in sys.modules and "OMP_WAIT_POLICY" not in os.environ and hasattr(os, "getloadavg"):
        policy = busy_wait_policy(os.getloadavg()[0])
        if policy is not None:
            os.environ["OMP_WAIT_POLICY"] = policy
    try:
        import torch
    except ImportError:
        raise MissingDependencyError(f"model measurement needs torch: {TORCH_EXTRA_HINT}", "torch") from None
    return torch


def require_matplotlib():
    """DEF-SITE — matplotlib (Agg backend) for the report plots, or MissingDependencyError."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise MissingDependencyError(f"report plots need matplotlib: {TORCH_EXTRA_HINT}", "matplotlib") from None
    return plt
