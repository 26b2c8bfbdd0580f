"""DEF-SITE — lazy access to the optional torch dependency of natprec.model.

``import natprec.model`` works without torch; every function that needs it calls
:func:`require_torch`, which raises MissingDependencyError naming the extra.
"""

from __future__ import annotations

import os
import sys

from natprec.reference.errors import MissingDependencyError

__all__ = ["require_torch", "require_matplotlib", "TORCH_EXTRA_HINT"]

TORCH_EXTRA_HINT = "pip install natprec[torch]"


def require_torch():
    """DEF-SITE — the ``torch`` module, or MissingDependencyError naming the extra to install.

    When natprec is first to load torch and ``OMP_WAIT_POLICY`` is unset, it sets PASSIVE: idle
    OpenMP threads sleep instead of spinning.  Measured on this 2-core machine: the default
    ``natprec report`` (torch passes interleaved with NumPy quantization) took 311 s passive and
    380 s spinning on an idle machine; beside one busy process, MiniLM's calibration pass took 0.74 s
    passive and 1.23 s spinning (a pure forward loop on an idle machine is 20–35 % faster spinning).
    """
    if "torch" not in sys.modules:
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
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
