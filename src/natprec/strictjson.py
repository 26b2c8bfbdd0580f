"""Strict JSON for natprec's documents: NaN and ±Inf as the strings ``"nan"``, ``"inf"``, ``"-inf"``.

JSON has no non-finite numbers, and ``json.dumps`` would otherwise write the non-standard
``NaN``/``Infinity``; every natprec document (the CLI's ``--json``, ``to_dict()`` of the library
results) goes through :func:`to_strict`, and every one that is written goes through :func:`dumps`.
"""

from __future__ import annotations

import json
import math

import numpy as np

__all__ = ["json_number", "json_code", "to_strict", "dumps"]


def json_number(x):
    """A float for JSON: finite values as numbers, NaN/±Inf as strings, ``None`` as ``None``."""
    if x is None:
        return None
    f = float(x)
    if math.isfinite(f):
        return f
    return "nan" if math.isnan(f) else ("inf" if f > 0 else "-inf")


def json_code(code: int, nbits: int) -> str:
    """An ``nbits``-bit code as hex, one digit per 4 bits: 15 is ``0xf`` in 4 bits, ``0x0f`` in 8."""
    return f"0x{int(code):0{max(1, -(-nbits // 4))}x}"


def to_strict(x):
    """A strict-JSON copy of ``x``: every float by :func:`json_number`, NumPy scalars as Python, keys as strings."""
    if isinstance(x, dict):
        return {str(k): to_strict(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [to_strict(v) for v in x]
    if isinstance(x, np.integer):
        return int(x)
    if isinstance(x, (float, np.floating)):
        return json_number(x)
    return x


def dumps(doc, *, indent: int | None = 2) -> str:
    """``doc`` as strict JSON text (UTF-8 characters kept, not escaped); ``indent=None``: one line."""
    return json.dumps(to_strict(doc), indent=indent, allow_nan=False, ensure_ascii=False)
