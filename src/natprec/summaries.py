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


def quantize_summary(values, fmt: str, *, tie: str = "even", saturate: bool | None = None) -> dict:
    """DEF-QUANTIZE, DEF-MARGIN — float64 ``values`` quantized with one format: codes, reconstructions, margins γ.

    Element formats keep NaN where the format has a NaN encoding (``nan_policy="propagate"``);
    a block format takes the values as one vector, blocked along it, and the result lists its
    block scales (γ then is measured on the block-scaled values).
    """
    f = get_format(fmt)
    if not len(values):
        raise EmptyInputError("quantize needs at least one VALUE", value=[])
    x = np.array(values, dtype=np.float64)
    element = isinstance(f, ElementFormat)
    doc = {"format": f.name, "kind": "element" if element else "block", "tie": tie}
    if element:
        # The user typed NaN on purpose: keep it where the format has a NaN encoding.
        codes = quantize(x, f, tie=tie, saturate=saturate, nan_policy="propagate")
        recon = dequantize(codes, f)
        gamma = voronoi_margin(x, f, tie=tie, nan_policy="propagate")  # γ = NaN for NaN inputs
        doc["saturate"] = f.default_saturate if saturate is None else saturate
        blocks = [None] * x.size
        nbits = f.nbits
    else:
        q = quantize(x, f, tie=tie, saturate=saturate)
        codes, recon = q.codes, dequantize(q, f)
        gamma = voronoi_margin(x, f, tie=tie)
        doc["saturate"] = True
        doc["block_size"] = f.block_size
        doc["scales"], doc["tensor_scale"] = _block_scales(f, q)
        blocks = [i // f.block_size for i in range(x.size)]
        nbits = f.element.nbits
    doc["values"] = [
        {"input": json_number(xi), "block": b, "code": json_code(c, nbits), "value": json_number(r), "margin": json_number(g)}
        for xi, b, c, r, g in zip(x, blocks, codes.tolist(), recon, gamma)
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
