"""The ``natprec`` command line: ``formats``, ``quantize``, ``tensor`` and ``landauer``.

Every number printed comes from a call into :mod:`natprec.reference`; this module
only parses arguments, reads tensor files and formats results.  Each command
prints an aligned table, or with ``--json`` one JSON document on stdout (strict
JSON: NaN and ±Inf are written as the strings ``"nan"``, ``"inf"``, ``"-inf"``).
Bad input of any kind ends with one line ``natprec: error: ...`` on stderr and
exit status 2.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import struct
import sys
from importlib import resources
from pathlib import Path

import numpy as np
from safetensors import SafetensorError, safe_open

from . import __version__, cli_rd
from .model import cli_report
from .reference import (
    BOLTZMANN_J_PER_K,
    FORMAT_NAMES,
    TIE_RULES,
    AbsmaxBlockFormat,
    ElementFormat,
    InputFileError,
    InvalidDTypeError,
    InvalidParameterError,
    MXFormat,
    NatprecError,
    dequantize,
    discretized_histogram,
    entropy_bits_from_counts,
    entropy_bootstrap_interval,
    get_format,
    ggd,
    injectivity_report,
    landauer_energy_joules,
    min_voronoi_margin,
    natural_precision,
    quantize,
    realized_support,
    voronoi_margin,
)
from .reference import ratedistortion as rd

__all__ = [
    "main",
    "build_parser",
    "DEFAULT_TENSOR_FORMATS",
    "DEMO_RESOURCE",
    "BOOTSTRAP_RESAMPLES",
    "BOOTSTRAP_SEED",
    "DELTA_STD_DIVISOR",
    "ELEMENTARY_CHARGE_C",
]

#: Formats ``natprec tensor`` checks when no ``--format`` is given.
DEFAULT_TENSOR_FORMATS = ("nf4", "fp4_bnb", "float8_e4m3fn", "int8", "mxfp4", "nvfp4")
#: The embedded default tensor file, relative to the ``natprec`` package.
DEMO_RESOURCE = "data/demo.safetensors"
BOOTSTRAP_RESAMPLES = 200
BOOTSTRAP_SEED = 0
#: Default bin width Δ = std / DELTA_STD_DIVISOR.
DELTA_STD_DIVISOR = 256
#: Elementary charge, exact by the 2019 SI definition (J per eV).
ELEMENTARY_CHARGE_C = 1.602176634e-19

#: safetensors dtype strings of the float dtypes the reference accepts.
_SAFETENSORS_FLOATS = ("F16", "BF16", "F32", "F64")
_MAX_CODEBOOK_LISTED = 256
_CI_METHOD_LABEL = {"bca": "BCa", "basic": "basic"}


class _UsageError(Exception):
    """Raised by the parser instead of printing usage and exiting (one-line errors)."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise _UsageError(f"{message} (see '{self.prog} --help')")


# ----------------------------------------------------------------------------- output helpers


def _jnum(x):
    """A float for JSON: finite values as numbers, NaN/±Inf as strings (strict JSON has neither)."""
    if x is None:
        return None
    f = float(x)
    if math.isfinite(f):
        return f
    return "nan" if math.isnan(f) else ("inf" if f > 0 else "-inf")


def _fnum(x, spec: str = ".6g") -> str:
    """A float for tables; ``spec=None`` gives the shortest repr that round-trips."""
    if x is None:
        return "-"
    f = float(x)
    return repr(f) if spec is None else format(f, spec)


def _hex(code: int, nbits: int) -> str:
    return f"0x{int(code):0{max(1, -(-nbits // 4))}x}"


def _table(headers: list[str], rows: list[list], right: set[int] = frozenset()) -> str:
    """Aligned plain-text table; columns in ``right`` are right-aligned (numbers)."""
    cells = [[str(h) for h in headers]] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = []
    for n, r in enumerate(cells):
        parts = [c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths))]
        lines.append("  ".join(parts).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _kv(pairs: list[tuple[str, str]]) -> str:
    w = max(len(k) for k, _ in pairs)
    return "\n".join(f"{k.ljust(w)}  {v}" for k, v in pairs)


def _emit_json(doc) -> None:
    print(json.dumps(doc, indent=2, allow_nan=False, ensure_ascii=False))


def _wrap(items: list[str], width: int = 96, indent: str = "    ") -> str:
    lines, cur = [], indent
    for it in items:
        if len(cur) + len(it) + 1 > width and cur.strip():
            lines.append(cur.rstrip())
            cur = indent
        cur += it + " "
    lines.append(cur.rstrip())
    return "\n".join(lines)


# ----------------------------------------------------------------------------- formats


def _is_element(f) -> bool:
    return isinstance(f, ElementFormat)


def _format_record(name: str) -> dict:
    f = get_format(name)
    if _is_element(f):
        cb = f.codebook
        rec = {
            "name": f.name,
            "kind": "element",
            "nbits": f.nbits,
            "bits_per_element": f.nbits,
            "description": f.description,
            "conventions": f.conventions(),
            "finite_values": len(cb),
            "min": _jnum(cb.values[0]),
            "max": _jnum(cb.values[-1]),
        }
        if len(cb) <= _MAX_CODEBOOK_LISTED:
            rec["values"] = [_jnum(v) for v in cb.values]
            rec["encodings"] = [_hex(c, f.nbits) for c in cb.encodings]
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
        "min": _jnum(el.codebook.values[0]),
        "max": _jnum(el.codebook.values[-1]),
    }


def _cmd_formats(args) -> None:
    recs = [_format_record(n) for n in FORMAT_NAMES]
    if args.json:
        _emit_json({"formats": recs})
        return
    rows = [
        [r["name"], r["kind"], r["nbits"], _fnum(r["bits_per_element"], "g"), r["finite_values"],
         _fnum(r["min"]), _fnum(r["max"]), r["description"]]
        for r in recs
    ]
    print(_table(["format", "kind", "bits", "bits/elem", "values", "min", "max", "description"], rows, {2, 3, 4, 5, 6}))
    print("\nconventions")
    for r in recs:
        print(f"  {r['name']}: " + ", ".join(f"{k}={v}" for k, v in r["conventions"].items()))
    print(f"\ncodebooks (element formats with <= {_MAX_CODEBOOK_LISTED} finite values; value@encoding)")
    for r in recs:
        if "values" in r:
            print(f"  {r['name']} ({r['finite_values']} values)")
            print(_wrap([f"{_fnum(v, None)}@{c}" for v, c in zip(r["values"], r["encodings"])]))


# ----------------------------------------------------------------------------- quantize


def _parse_value(s: str) -> float:
    try:
        return float(s)
    except ValueError:
        raise _UsageError(f"VALUE {s!r} is not a number (nor a known option)") from None


def _block_scales(f, q) -> tuple[list[dict], float | None]:
    """Per-block scale (code and decoded multiplier) and the NVFP4 tensor scale, for a 1-D input."""
    scales = np.asarray(q.scales).ravel()
    out = []
    for b, s in enumerate(scales):
        if isinstance(f, AbsmaxBlockFormat):
            out.append({"block": b, "code": None, "scale": _jnum(s)})
        elif isinstance(f, MXFormat):  # E8M0: 2^(code − 127)
            out.append({"block": b, "code": _hex(s, 8), "scale": _jnum(math.ldexp(1.0, int(s) - 127))})
        else:
            out.append({"block": b, "code": _hex(s, 8), "scale": _jnum(f.scale_format.dequantize(s))})
    ts = None if q.tensor_scale is None else _jnum(q.tensor_scale)
    return out, ts


def _cmd_quantize(args) -> None:
    f = get_format(args.format)
    if not args.values:
        raise _UsageError("quantize needs at least one VALUE")
    x = np.array(args.values, dtype=np.float64)
    doc = {"format": f.name, "kind": "element" if _is_element(f) else "block", "tie": args.tie}
    if _is_element(f):
        # The user typed NaN on purpose: keep it where the format has a NaN encoding.
        codes = quantize(x, f, tie=args.tie, saturate=args.saturate, nan_policy="propagate")
        recon = dequantize(codes, f)
        gamma = voronoi_margin(x, f, tie=args.tie, nan_policy="propagate")  # γ = NaN for NaN inputs
        doc["saturate"] = f.default_saturate if args.saturate is None else args.saturate
        blocks = [None] * x.size
        nbits = f.nbits
    else:
        q = quantize(x, f, tie=args.tie, saturate=args.saturate)
        codes, recon = q.codes, dequantize(q, f)
        gamma = voronoi_margin(x, f, tie=args.tie)
        doc["saturate"] = True
        doc["block_size"] = f.block_size
        doc["scales"], doc["tensor_scale"] = _block_scales(f, q)
        blocks = [i // f.block_size for i in range(x.size)]
        nbits = f.element.nbits
    doc["values"] = [
        {"input": _jnum(xi), "block": b, "code": _hex(c, nbits), "value": _jnum(r), "margin": _jnum(g)}
        for xi, b, c, r, g in zip(x, blocks, codes.tolist(), recon, gamma)
    ]
    doc["margin_units"] = "codebook" if _is_element(f) else "codebook, of the block-scaled value"
    if args.json:
        _emit_json(doc)
        return
    print(f"format {f.name} ({doc['kind']}), tie={args.tie}, saturate={doc['saturate']}")
    if _is_element(f):
        headers, cols = ["input", "code", "value", "margin γ"], ["input", "code", "value", "margin"]
    else:
        headers, cols = ["input", "block", "code", "value", "margin γ*"], ["input", "block", "code", "value", "margin"]
    rows = [[_fnum(v[c], None) if c in ("input", "value", "margin") else v[c] for c in cols] for v in doc["values"]]
    print(_table(headers, rows, set(range(len(cols))) - {cols.index("code")}))
    if not _is_element(f):
        print("\n* γ of a block format is measured on the block-scaled value, in element-codebook units")
        print("\nblock scales")
        rows = [[s["block"], s["code"] or "-", _fnum(s["scale"], None)] for s in doc["scales"]]
        print(_table(["block", "code", "scale"], rows, {0, 2}))
        if doc["tensor_scale"] is not None:
            print(f"tensor scale (decode): {_fnum(doc['tensor_scale'], None)}")


# ----------------------------------------------------------------------------- tensor files


def _read_safetensors_header(path: Path) -> list[tuple[str, str, list]]:
    """(name, dtype string, shape) of each tensor, in file order (by data offset)."""
    with open(path, "rb") as fh:
        head = fh.read(8)
        if len(head) < 8:
            raise ValueError("file is shorter than a safetensors header")
        n = struct.unpack("<Q", head)[0]
        if n > path.stat().st_size - 8:
            raise ValueError("header length exceeds the file size")
        header = json.loads(fh.read(n))
    if not isinstance(header, dict):
        raise ValueError("header is not a JSON object")
    entries = [(k, v) for k, v in header.items() if k != "__metadata__"]
    entries.sort(key=lambda kv: kv[1]["data_offsets"][0])
    return [(k, v["dtype"], list(v["shape"])) for k, v in entries]


def _load_safetensors(path: Path, name: str | None) -> tuple[list[tuple[str, np.ndarray]], list[dict]]:
    try:
        index = _read_safetensors_header(path)
    except (ValueError, KeyError, TypeError, IndexError) as exc:
        raise InputFileError(f"{path} is neither a .npy nor a readable .safetensors file ({exc})", value=str(path)) from None
    names = [k for k, _, _ in index]
    if name is not None and name not in names:
        raise InputFileError(
            f"no tensor {name!r} in {path}; available: {', '.join(names) or '(none)'}", value=name
        )
    chosen = [e for e in index if name is None or e[0] == name]
    tensors, skipped = [], []
    try:
        # Tensor by tensor, not load_file: load_file fails on the whole file when any
        # tensor has a dtype NumPy lacks (F8_E4M3, ...), and we only want the floats.
        with safe_open(str(path), framework="np") as fh:
            for k, dt, shape in chosen:
                if dt not in _SAFETENSORS_FLOATS:
                    if name is not None:
                        raise InvalidDTypeError(
                            f"tensor {k!r} in {path} has dtype {dt}; accepted: {', '.join(_SAFETENSORS_FLOATS)}",
                            value=dt,
                        )
                    skipped.append({"name": k, "dtype": dt, "shape": shape,
                                    "reason": f"dtype {dt} is not one of {', '.join(_SAFETENSORS_FLOATS)}"})
                    continue
                tensors.append((k, fh.get_tensor(k)))
    except (OSError, SafetensorError) as exc:
        raise InputFileError(f"cannot read {path} as safetensors: {exc}", value=str(path)) from None
    if not tensors:
        raise InvalidDTypeError(
            f"{path} has no tensor of an accepted dtype ({', '.join(_SAFETENSORS_FLOATS)}); "
            + "; ".join(f"{s['name']}: {s['dtype']}" for s in skipped),
            value=[s["dtype"] for s in skipped],
        )
    return tensors, skipped


def _load_tensors(path: Path, name: str | None) -> tuple[list[tuple[str, np.ndarray]], list[dict]]:
    """The tensors to analyse (label, array) and the skipped ones, from a .npy or .safetensors file."""
    try:
        with open(path, "rb") as fh:
            magic = fh.read(6)
    except OSError as exc:
        raise InputFileError(f"cannot read {path}: {exc.strerror or exc}", value=str(path)) from None
    if magic.startswith(b"PK"):
        raise InputFileError(f"{path} is a .npz archive; save the array as .npy or .safetensors", value=str(path))
    if magic == b"\x93NUMPY":
        if name is not None:
            raise InputFileError(f"--name {name!r} given, but {path} is a .npy file holding one array", value=name)
        try:
            arr = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise InputFileError(f"cannot read {path} as .npy: {exc}", value=str(path)) from None
        if arr.dtype.kind == "V":
            raise InvalidDTypeError(
                f"{path} holds dtype {arr.dtype}: .npy cannot record ml_dtypes types such as bfloat16; "
                "save it as .safetensors",
                value=str(arr.dtype),
            )
        return [(path.name, arr)], []
    return _load_safetensors(path, name)


# ----------------------------------------------------------------------------- tensor analysis


def _collision_record(c, f) -> dict:
    cid = int(c.cell[0])
    if _is_element(f):
        block, code, nbits = None, cid, f.nbits
    else:  # block-format cells are (block << element bits) + code
        nbits = f.element.nbits
        block, code = cid >> nbits, cid & ((1 << nbits) - 1)
    return {
        "block": block,
        "code": _hex(code, nbits),
        "codeword": _jnum(c.codeword),
        "distinct_values": int(c.values.size),
        "elements": int(c.counts.sum()),
        "min_value": _jnum(c.values[0]),
        "max_value": _jnum(c.values[-1]),
    }


def _ggd_record(x: np.ndarray) -> dict:
    """ML fit of a generalized Gaussian and its differential entropy (the h of R_SLB below)."""
    try:
        fit = ggd.fit_ml(x.astype(np.float64))
    except NatprecError as exc:  # e.g. constant or non-finite data: say why instead of a number
        return {"error": str(exc)}
    if any(math.isclose(fit.beta, bound, rel_tol=1e-3) for bound in ggd.BETA_FIT_RANGE):
        # ML runs to the edge of the β range on data with atoms (exact zeros, few distinct values):
        # no GGD describes it, so there is no h and no Shannon lower bound to compare with.
        return {"error": f"ML fit reached the β range bound {fit.beta:g} (data with atoms or few values is not GGD-like)"}
    return {
        "beta": _jnum(fit.beta),
        "alpha": _jnum(fit.alpha),
        "beta_ci": [_jnum(v) for v in fit.beta_ci] if fit.beta_ci else None,
        "confidence": fit.confidence,
        "differential_entropy_bits": _jnum(ggd.differential_entropy_bits(fit.beta, fit.alpha)),
    }


#: How ``format_operating_point`` scales each kind of format (the operating point's quantizer).
_OP_SCALING = {"element": "mse-optimal per-tensor", "block": "block"}
_OP_FOOTNOTE = ("* at the operating point's scaling: element formats at the MSE-optimal per-tensor scale; block formats "
                "with their own block scales.\n  cells used, injective, colliding values, δ and min γ are the format's "
                "literal semantics (element formats unscaled).")


def _operating_point(x: np.ndarray, f, h_bits) -> dict:
    """DEF-RD-OPPOINT at ``format_operating_point``'s scaling, named in ``scaling`` (not the census's unscaled values)."""
    scaling = _OP_SCALING["element" if _is_element(f) else "block"]
    try:
        op = rd.format_operating_point(x, f, h_bits=h_bits)
    except NatprecError as exc:
        return {"scaling": scaling, "error": str(exc)}
    return {
        "scaling": scaling,
        "mse": _jnum(op.mse),
        "index_entropy_bits": _jnum(op.index_entropy_bits),
        "rate_bits": _jnum(op.fixed_rate_bits),
        "scale": None if math.isnan(op.scale) else _jnum(op.scale),
        "slb_bits": None if op.slb_bits is None else _jnum(op.slb_bits),
        "gap_entropy_to_slb_bits": None if op.gap_entropy_to_slb_bits is None else _jnum(op.gap_entropy_to_slb_bits),
    }


def _format_analysis(x: np.ndarray, f, max_collisions: int, h_bits=None) -> dict:
    rep = injectivity_report(x, f, max_listed=max_collisions)
    d = rep.delta  # an exact Fraction
    return {
        "format": f.name,
        "kind": "element" if _is_element(f) else "block",
        "codebook_size": rep.codebook_size,
        "cells_used": rep.cells_used,
        "injective": rep.injective,
        "corollary": rep.corollary,
        "colliding_values": rep.colliding_values,
        "delta": _jnum(rep.delta_float),
        "delta_exact": f"{d.numerator}/{d.denominator}",
        "min_margin": _jnum(min_voronoi_margin(x, f)),
        "collisions": [_collision_record(c, f) for c in rep.collisions],
        "operating_point": _operating_point(x, f, h_bits),
    }


def _default_delta(std: float) -> tuple[float, str]:
    """Δ = std/256, or 1 when that is not a positive finite number (constant or non-finite data)."""
    d = std / DELTA_STD_DIVISOR
    if math.isfinite(d) and d > 0:
        return d, f"std/{DELTA_STD_DIVISOR}"
    return 1.0, f"fallback 1: std/{DELTA_STD_DIVISOR} is not a positive finite number"


def _analyse(label: str, arr: np.ndarray, formats: list, delta: float | None, nan_policy: str, max_collisions: int) -> dict:
    rec = {"name": label, "dtype": str(arr.dtype), "shape": list(arr.shape), "elements": int(arr.size)}
    # Support first: it validates the dtype and applies nan_policy='raise' with the reference's message.
    sup_v = realized_support(arr, by="value", nan_policy=nan_policy)
    sup_b = realized_support(arr, by="bits", nan_policy=nan_policy)
    nan = np.isnan(arr)
    rec["nan_omitted"] = int(nan.sum())
    if rec["nan_omitted"]:
        # Every reference call below then sees the same NaN-free, flattened data
        # (what injectivity_report does for 'omit'; block formats need finite input).
        arr = arr[~nan]
    rec["support_size_value"] = sup_v.size
    rec["support_size_bits"] = sup_b.size
    rec["natural_precision_bits"] = natural_precision(support_size=sup_v.size)
    with np.errstate(invalid="ignore", over="ignore"):  # ±Inf data: the histogram reports it below
        std = float(np.std(arr.astype(np.float64)))
    d, rule = _default_delta(std) if delta is None else (delta, "--delta")
    counts = discretized_histogram(arr, d).counts
    ci = entropy_bootstrap_interval(arr, d, n_resamples=BOOTSTRAP_RESAMPLES, seed=BOOTSTRAP_SEED)
    rec["entropy"] = {
        "delta": _jnum(d),
        "delta_rule": rule,
        "std": _jnum(std),
        "origin": 0.0,
        "plugin_bits": _jnum(entropy_bits_from_counts(counts)),
        "miller_madow_bits": _jnum(entropy_bits_from_counts(counts, correction="miller-madow")),
        "ci_low_bits": _jnum(ci.low),
        "ci_high_bits": _jnum(ci.high),
        "ci_confidence": ci.confidence,
        "ci_method": ci.method,
        "ci_note": ci.note,
        "ci_resamples": ci.n_resamples,
        "ci_seed": BOOTSTRAP_SEED,
    }
    rec["ggd"] = _ggd_record(arr)
    h = rec["ggd"].get("differential_entropy_bits")
    rec["formats"] = [_format_analysis(arr, f, max_collisions, h) for f in formats]
    return rec


def _print_tensor(rec: dict, max_collisions: int) -> None:
    e = rec["entropy"]
    print(f"== {rec['name']} ==")
    pairs = [
        ("dtype", rec["dtype"]),
        ("shape", "×".join(map(str, rec["shape"])) or "scalar"),
        ("elements", str(rec["elements"])),
    ]
    if rec["nan_omitted"]:
        pairs.append(("NaNs omitted", f"{rec['nan_omitted']} (the rest analysed as one flat vector)"))
    pairs += [
        ("support size", f"{rec['support_size_value']} by value, {rec['support_size_bits']} by bits"),
        ("b*", f"{rec['natural_precision_bits']} bits (⌈log2 support by value⌉)"),
        ("Δ", f"{_fnum(e['delta'], None)} ({e['delta_rule']}; std = {_fnum(e['std'])})"),
        ("H_Δ", f"{_fnum(e['plugin_bits'], '.4f')} bits plug-in, {_fnum(e['miller_madow_bits'], '.4f')} bits Miller–Madow"),
        (f"{_CI_METHOD_LABEL[e['ci_method']]} {e['ci_confidence']:.0%} CI",
         f"[{_fnum(e['ci_low_bits'], '.4f')}, {_fnum(e['ci_high_bits'], '.4f')}] bits "
         f"({e['ci_resamples']} resamples, seed {e['ci_seed']})"),
    ]
    g = rec["ggd"]
    pairs.append(("GGD fit", g["error"] if "error" in g else
                  f"β = {_fnum(g['beta'], '.4f')} (95% CI [{_fnum(g['beta_ci'][0], '.4f')}, {_fnum(g['beta_ci'][1], '.4f')}]), "
                  f"α = {_fnum(g['alpha'])}, h = {_fnum(g['differential_entropy_bits'], '.4f')} bits"))
    print(_kv(pairs))
    print()

    def op(r, key, spec=None):
        v = r["operating_point"].get(key)
        return "-" if v is None else _fnum(v, spec)

    rows = [
        [r["format"], r["cells_used"], "yes" if r["injective"] else "no", r["colliding_values"],
         _fnum(r["delta"]), _fnum(r["min_margin"]), op(r, "mse", ".4g"), op(r, "rate_bits", ".3g"),
         op(r, "index_entropy_bits", ".3f"), op(r, "gap_entropy_to_slb_bits", ".3f")]
        for r in rec["formats"]
    ]
    print(_table(["format", "cells used", "injective", "colliding values", "δ", "min γ",
                  "MSE*", "rate", "H(codes)*", "H−R_SLB*"], rows, {1, 3, 4, 5, 6, 7, 8, 9}))
    print(_OP_FOOTNOTE)
    if max_collisions and any(r["collisions"] for r in rec["formats"]):
        print(f"\nlargest collisions (up to {max_collisions} per format, by elements)")
        rows = [
            [r["format"], "-" if c["block"] is None else c["block"], c["code"], _fnum(c["codeword"]),
             c["distinct_values"], c["elements"], f"[{_fnum(c['min_value'])}, {_fnum(c['max_value'])}]"]
            for r in rec["formats"] for c in r["collisions"]
        ]
        print(_table(["format", "block", "code", "codeword", "values", "elements", "value range"], rows, {1, 3, 4, 5}))


def _cmd_tensor(args) -> None:
    fmt_names = [n.strip() for group in (args.format or [",".join(DEFAULT_TENSOR_FORMATS)]) for n in group.split(",") if n.strip()]
    formats = [get_format(n) for n in fmt_names]
    if args.delta is not None and not (math.isfinite(args.delta) and args.delta > 0):
        raise InvalidParameterError(f"--delta must be finite and > 0; got {args.delta!r}", value=args.delta)
    if args.max_collisions < 0:
        raise InvalidParameterError(f"--max-collisions must be >= 0; got {args.max_collisions}", value=args.max_collisions)
    if args.file is None:
        with resources.as_file(resources.files("natprec").joinpath(DEMO_RESOURCE)) as p:
            tensors, skipped = _load_tensors(p, args.name)
        source, header = f"natprec/{DEMO_RESOURCE}", f"natprec/{DEMO_RESOURCE} — the embedded default tensors (no FILE given)"
    else:
        path = Path(args.file)
        tensors, skipped = _load_tensors(path, args.name)
        source, header = str(path), str(path)
    recs = []
    for label, arr in tensors:
        try:
            recs.append(_analyse(label, arr, formats, args.delta, args.nan_policy, args.max_collisions))
        except NatprecError as exc:  # name the tensor in the one-line message
            raise type(exc)(f"tensor {label!r}: {exc}", value=exc.value) from None
    if args.json:
        _emit_json({"source": source, "default": args.file is None, "tensors": recs, "skipped": skipped})
        return
    print(f"natprec tensor: {header}")
    print("γ: Voronoi margin in codebook units (block formats: of the block-scaled values); δ: collision probability\n")
    for s in skipped:
        print(f"skipped {s['name']} ({s['dtype']}, shape {s['shape']}): {s['reason']}")
    for i, rec in enumerate(recs):
        if i or skipped:
            print()
        _print_tensor(rec, args.max_collisions)


# ----------------------------------------------------------------------------- landauer


def _cmd_landauer(args) -> None:
    # Check T alone first so the message names the flag that is wrong.
    try:
        landauer_energy_joules(0.0, temperature_kelvin=args.temperature)
    except NatprecError as exc:
        raise type(exc)(f"--temperature: {exc}", value=exc.value) from None
    try:
        e = landauer_energy_joules(args.bits, temperature_kelvin=args.temperature)
    except NatprecError as exc:
        raise type(exc)(f"--bits: {exc}", value=exc.value) from None
    kt = BOLTZMANN_J_PER_K * args.temperature
    doc = {
        "bits": args.bits,
        "temperature_kelvin": args.temperature,
        "energy_joules": e,
        "energy_ev": e / ELEMENTARY_CHARGE_C,
        "energy_kT": e / kt,
    }
    if args.json:
        _emit_json(doc)
        return
    print(_kv([
        ("bits erased", _fnum(args.bits, None)),
        ("temperature", f"{_fnum(args.temperature, None)} K"),
        ("energy", f"{e:.6e} J"),
        ("", f"{doc['energy_ev']:.6e} eV"),
        ("", f"{doc['energy_kT']:.6f} k_B·T  (= bits · ln 2)"),
    ]))


# ----------------------------------------------------------------------------- parser and entry point


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="natprec", description="Measure the information a tensor carries and the precision it implies.")
    p.add_argument("--version", action="version", version=f"natprec {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    s = sub.add_parser("formats", help="list every number format with its conventions and codebook")
    s.add_argument("--json", action="store_true", help="machine-readable JSON on stdout")
    s.set_defaults(run=_cmd_formats)

    # VALUEs are collected from the unparsed extras (see main), so '-0.3', '-inf' and
    # '-1e-3' work without '--' while staying in command-line order.
    s = sub.add_parser(
        "quantize",
        help="quantize VALUEs with one format: codes, reconstructed values, margins",
        usage="natprec quantize --format NAME [--tie {even,down,up,away}] [--saturate | --no-saturate] "
              "[--json] [--] VALUE...",
        description="VALUEs are float64 ('nan', 'inf', '-0.0' and negative numbers are accepted). "
                    "With a block format the VALUEs form one vector, blocked along it.",
    )
    s.add_argument("--format", required=True, metavar="NAME", help="format name (see 'natprec formats')")
    s.add_argument("--tie", choices=TIE_RULES, default="even", help="tie rule at exact midpoints (default even)")
    s.add_argument("--saturate", action=argparse.BooleanOptionalAction, default=None,
                   help="clamp overflow to the largest finite value (default: the format's convention)")
    s.add_argument("--json", action="store_true", help="machine-readable JSON on stdout")
    s.set_defaults(run=_cmd_quantize, values=[])

    s = sub.add_parser("tensor", help="support, b*, entropy and per-format injectivity of a tensor file")
    s.add_argument("file", nargs="?", metavar="FILE",
                   help=".npy or .safetensors file (default: the embedded demo tensors)")
    s.add_argument("--name", help="tensor in a .safetensors file (default: every float tensor, in file order)")
    s.add_argument("--format", action="append", metavar="NAME",
                   help=f"format to check; repeat or comma-separate (default: {','.join(DEFAULT_TENSOR_FORMATS)})")
    s.add_argument("--delta", type=float, metavar="Δ", help=f"entropy bin width (default: std/{DELTA_STD_DIVISOR})")
    s.add_argument("--nan-policy", choices=("raise", "omit"), default="raise", help="NaN handling (default raise)")
    s.add_argument("--max-collisions", type=int, default=3, metavar="K",
                   help="list the K largest colliding cells per format (default 3)")
    s.add_argument("--json", action="store_true", help="machine-readable JSON on stdout")
    s.set_defaults(run=_cmd_tensor)

    cli_rd.add_parser(sub)
    cli_report.add_parser(sub)

    s = sub.add_parser("landauer", help="Landauer bound for erasing B bits at temperature T")
    s.add_argument("--bits", type=float, required=True, metavar="B", help="bits erased (>= 0)")
    s.add_argument("--temperature", type=float, default=300.0, metavar="K", help="kelvin (default 300)")
    s.add_argument("--json", action="store_true", help="machine-readable JSON on stdout")
    s.set_defaults(run=_cmd_landauer)
    return p


def _parse(argv: list[str]) -> argparse.Namespace:
    args, extras = build_parser().parse_known_args(argv)
    if args.command == "quantize":
        args.values = [_parse_value(t) for t in extras if t != "--"]
    elif extras:
        raise _UsageError(f"unrecognized arguments: {' '.join(extras)} (see 'natprec {args.command} --help')")
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the ``natprec`` command line; returns the exit status (0 ok, 2 bad input)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        args = _parse(argv)
        status = args.run(args)
    except SystemExit as exc:  # --help / --version
        return int(exc.code or 0)
    except (_UsageError, NatprecError) as exc:
        print(f"natprec: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # output piped into `head` and the like: stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    return int(status or 0)
