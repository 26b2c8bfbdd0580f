"""The documents ``natprec formats``, ``natprec quantize`` and ``natprec landauer`` print, as library functions.

Each function returns the strict-JSON document of its command's ``--json`` (NaN and ±Inf as the
strings ``"nan"``, ``"inf"``, ``"-inf"``; codes and encodings as hex); every number in it is a call
into :mod:`natprec.reference`.
"""

from __future__ import annotations

import math

import numpy as np

from natprec.io import load_tensors
from natprec.reference import (
    FORMAT_NAMES,
    AbsmaxBlockFormat,
    ElementFormat,
    EmptyInputError,
    InvalidParameterError,
    MXFormat,
    dequantize,
    erased_information,
    get_format,
    landauer_energy_joules,
    quantize,
    resolve_format,
    voronoi_margin,
)
from natprec.strictjson import json_code, json_number, to_strict

__all__ = [
    "format_summary",
    "format_summaries",
    "quantize_summary",
    "landauer_summary",
    "erasure_summary",
    "MAX_CODEBOOK_LISTED",
    "ELEMENTARY_CHARGE_C",
]

#: Element formats with at most this many finite values list their codebook (values and encodings).
MAX_CODEBOOK_LISTED = 256
#: Elementary charge, exact by the 2019 SI definition (J per eV).
ELEMENTARY_CHARGE_C = 1.602176634e-19


def format_summary(name: str) -> dict:
    """DEF-FORMAT-ELEMENT — one format: kind, bits, bits per element, conventions, range and (if small) its codebook."""
    f = get_format(name)
    if isinstance(f, ElementFormat):
        cb = f.codebook
        rec = {
            "name": f.name,
            "kind": "element",
            "nbits": f.nbits,
            "bits_per_element": f.nbits,
            "description": f.description,
            "conventions": f.conventions(),
            "finite_values": len(cb),
            "min": json_number(cb.values[0]),
            "max": json_number(cb.values[-1]),
        }
        if len(cb) <= MAX_CODEBOOK_LISTED:
            rec["values"] = [json_number(v) for v in cb.values]
            rec["encodings"] = [json_code(c, f.nbits) for c in cb.encodings]
        return rec
    el = f.element
    return {
        "name": f.name,
        "kind": "block",
        "nbits": el.nbits,
        "bits_per_element": f.conventions()["bits_per_element"],  # element bits + amortised scale bits
        "description": f.description,
        "conventions": f.conventions(),
        "element": el.name,
        "block_size": f.block_size,
        "finite_values": len(el.codebook),
        "min": json_number(el.codebook.values[0]),
        "max": json_number(el.codebook.values[-1]),
    }


def format_summaries() -> list[dict]:
    """DEF-FORMAT-ELEMENT — :func:`format_summary` of every format, in ``FORMAT_NAMES`` order."""
    return [format_summary(n) for n in FORMAT_NAMES]


def _block_scales(f, q) -> tuple[list[dict], float | None]:
    """Per-block scale (code and decoded multiplier) and the NVFP4 tensor scale, for a 1-D input."""
    scales = np.asarray(q.scales).ravel()
    out = []
    for b, s in enumerate(scales):
        if isinstance(f, AbsmaxBlockFormat):
            out.append({"block": b, "code": None, "scale": json_number(s)})
        elif isinstance(f, MXFormat):  # E8M0: 2^(code − 127)
            out.append({"block": b, "code": json_code(s, 8), "scale": json_number(math.ldexp(1.0, int(s) - 127))})
        else:
            out.append({"block": b, "code": json_code(s, 8), "scale": json_number(f.scale_format.dequantize(s))})
    ts = None if q.tensor_scale is None else json_number(q.tensor_scale)
    return out, ts


def quantize_summary(values, fmt: str, *, tie: str = "even", saturate: bool | None = None,
                     nan_policy: str = "propagate") -> dict:
    """DEF-QUANTIZE, DEF-MARGIN — float64 ``values`` quantized with one format: codes, reconstructions, margins γ.

    A block format takes the values as one vector, blocked along it, and the result lists its
    block scales (γ then is measured on the block-scaled values).  NaN inputs (SciPy's
    convention): ``"propagate"`` keeps each NaN — with the format's NaN code where it has one,
    else with no code (``code`` null, value and γ NaN: the other values are quantized without
    it, so a block format blocks the non-NaN values); ``"omit"`` drops them; ``"raise"`` raises
    NaNInputError.  ``notes`` says what was done.
    """
    if nan_policy not in ("propagate", "omit", "raise"):
        raise InvalidParameterError(f"nan_policy must be 'propagate', 'omit' or 'raise'; got {nan_policy!r}", value=nan_policy)
    f = get_format(fmt)
    if not len(values):
        raise EmptyInputError("quantize needs at least one VALUE", value=[])
    x = np.array(values, dtype=np.float64)
    nan = np.isnan(x)
    element = isinstance(f, ElementFormat)
    doc = {"format": f.name, "kind": "element" if element else "block", "tie": tie, "nan_policy": nan_policy, "notes": []}
    if nan_policy == "omit" and nan.any():
        x, nan = x[~nan], nan[~nan]
        doc["notes"].append(f"{int(np.count_nonzero(np.isnan(np.array(values, dtype=np.float64))))} NaN VALUE(s) omitted")
        if not x.size:
            raise EmptyInputError("quantize: every VALUE is NaN and nan_policy='omit'", value=list(values))
    own_nan = element and nan_policy == "propagate" and f.nan_code is not None
    keep = np.ones(x.size, bool) if (own_nan or nan_policy == "raise") else ~nan
    if nan.any() and not own_nan and nan_policy == "propagate":
        doc["notes"].append(f"{f.name} has no NaN encoding: each NaN VALUE is kept without a code"
                            + ("" if element else ", and the blocks are formed by the other VALUEs"))
    xs = x[keep]
    codes = [None] * x.size
    recon = np.full(x.size, np.nan)
    gamma = np.full(x.size, np.nan)
    blocks = [None] * x.size
    if element:
        doc["saturate"] = f.default_saturate if saturate is None else saturate
        nbits = f.nbits
        if xs.size:
            policy = "raise" if nan_policy == "raise" else "propagate"
            c = quantize(xs, f, tie=tie, saturate=saturate, nan_policy=policy)
            recon[keep] = dequantize(c, f)
            gamma[keep] = voronoi_margin(xs, f, tie=tie, nan_policy=policy)  # γ = NaN for a NaN kept with its code
            for i, ci in zip(np.flatnonzero(keep), c.tolist()):
                codes[i] = ci
    else:
        doc["saturate"] = True
        doc["block_size"] = f.block_size
        nbits = f.element.nbits
        doc["scales"], doc["tensor_scale"] = [], None
        if xs.size:
            q = quantize(xs, f, tie=tie, saturate=saturate)
            recon[keep] = dequantize(q, f)
            gamma[keep] = voronoi_margin(xs, f, tie=tie)
            doc["scales"], doc["tensor_scale"] = _block_scales(f, q)
            for j, (i, ci) in enumerate(zip(np.flatnonzero(keep), q.codes.tolist())):
                codes[i], blocks[i] = ci, j // f.block_size
    doc["values"] = [
        {"input": json_number(xi), "block": b, "code": None if c is None else json_code(c, nbits), "value": json_number(r),
         "margin": json_number(g)}
        for xi, b, c, r, g in zip(x, blocks, codes, recon, gamma)
    ]
    doc["margin_units"] = "codebook" if element else "codebook, of the block-scaled value"
    return doc


def landauer_summary(bits: float, temperature_kelvin: float = 300.0) -> dict:
    """DEF-LANDAUER-ENERGY — the Landauer bound for erasing ``bits`` bits at ``temperature_kelvin``, in J, eV and k_B·T."""
    e = landauer_energy_joules(bits, temperature_kelvin=temperature_kelvin)
    ev = e / ELEMENTARY_CHARGE_C
    if not math.isfinite(ev):
        raise InvalidParameterError(f"{e!r} J is past the float64 range in eV", value=(bits, temperature_kelvin))
    return to_strict({
        "bits": bits,
        "temperature_kelvin": temperature_kelvin,
        "energy_joules": e,
        "energy_ev": ev,
        # E / (k_B T) is bits · ln 2 by definition; computed so, it survives T whose k_B·T underflows.
        "energy_kT": float(bits) * math.log(2),
    })


def erasure_summary(fmt, *, values=None, path=None, name: str | None = None, temperature_kelvin: float = 300.0,
                    nan_policy: str = "raise", tie: str = "even") -> dict:
    """DEF-ERASED-INFORMATION — what ``fmt`` erases from inline ``values`` (float64) or the tensors of a file.

    Exactly one of ``values`` and ``path`` (a ``.npy`` or ``.safetensors`` file, read by
    :func:`natprec.io.load_tensors`; ``name`` picks one tensor).  Each tensor's record is
    :func:`natprec.reference.erased_information`'s, as a strict-JSON dict with the tensor's name,
    dtype and shape; ``skipped`` lists a file's tensors of other dtypes.
    """
    if (values is None) == (path is None):
        raise InvalidParameterError("give exactly one of values and path", value=(values is not None, path is not None))
    if values is not None:
        if not len(values):
            raise EmptyInputError("the erasure needs at least one VALUE", value=[])
        tensors, skipped, source = [("values", np.array(values, dtype=np.float64))], [], "values"
    else:
        tensors, skipped = load_tensors(path, name)
        source = str(path)
    records = []
    for label, arr in tensors:
        rec = erased_information(arr, fmt, temperature_kelvin=temperature_kelvin, nan_policy=nan_policy, tie=tie).to_dict()
        records.append({"name": label, "dtype": str(arr.dtype), "shape": list(arr.shape), **rec})
    return to_strict({
        "source": source,
        "format": resolve_format(fmt).name,
        "temperature_kelvin": float(temperature_kelvin),
        "nan_policy": nan_policy,
        "tie": tie,
        "tensors": records,
        "skipped": skipped,
    })
