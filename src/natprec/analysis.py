"""What ``natprec tensor`` reports on a tensor: support, b*, H_Δ, a GGD fit and, per format, the census and operating point.

:func:`analyze_tensor` analyses one array, :func:`analyze_file` every float tensor of a file (or the
embedded demo tensors).  The results are dataclasses holding the reference's own result objects;
their ``to_dict()`` is the strict-JSON document ``natprec tensor --json`` prints (NaN and ±Inf as
the strings ``"nan"``, ``"inf"``, ``"-inf"``; codes as hex).  Every number is a call into
:mod:`natprec.reference`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from natprec.io import DEMO_SOURCE, load_demo_tensors, load_tensors
from natprec.reference import (
    ElementFormat,
    EntropyInterval,
    InjectivityReport,
    InvalidParameterError,
    NatprecError,
    discretized_histogram,
    entropy_bits_from_counts,
    entropy_bootstrap_interval,
    get_format,
    ggd,
    injectivity_report,
    min_voronoi_margin,
    natural_precision,
    support_size,
)
from natprec.reference import ratedistortion as rd
from natprec.strictjson import json_code, json_number, to_strict

__all__ = [
    "analyze_tensor",
    "analyze_file",
    "TensorAnalysis",
    "FileAnalysis",
    "FormatAnalysis",
    "EntropyEstimate",
    "GGDSummary",
    "DEFAULT_TENSOR_FORMATS",
    "DEFAULT_MAX_COLLISIONS",
    "BOOTSTRAP_RESAMPLES",
    "BOOTSTRAP_SEED",
    "DELTA_STD_DIVISOR",
]

#: Formats analysed when none are given.
DEFAULT_TENSOR_FORMATS = ("nf4", "fp4_bnb", "float8_e4m3fn", "int8", "mxfp4", "nvfp4")
DEFAULT_MAX_COLLISIONS = 3
BOOTSTRAP_RESAMPLES = 2000
BOOTSTRAP_SEED = 0
#: Default bin width Δ = std / DELTA_STD_DIVISOR.
DELTA_STD_DIVISOR = 256

#: How ``format_operating_point`` scales each kind of format (the operating point's quantizer).
_OP_SCALING = {"element": "mse-optimal per-tensor", "block": "block"}


def _kind(f) -> str:
    return "element" if isinstance(f, ElementFormat) else "block"


@dataclass(frozen=True)
class EntropyEstimate:
    """DEF-ENTROPY-DISCRETIZED — H_Δ plug-in and Miller–Madow from one histogram, and its bootstrap interval."""

    delta: float
    delta_rule: str  # "std/256", the fallback when that is not positive finite, or "--delta" when given
    std: float
    plugin_bits: float
    miller_madow_bits: float
    interval: EntropyInterval
    seed: int

    def to_dict(self) -> dict:
        ci = self.interval
        return to_strict({
            "delta": self.delta,
            "delta_rule": self.delta_rule,
            "std": self.std,
            "origin": 0.0,
            "plugin_bits": self.plugin_bits,
            "miller_madow_bits": self.miller_madow_bits,
            "ci_low_bits": ci.low,
            "ci_high_bits": ci.high,
            "ci_confidence": ci.confidence,
            "ci_method": ci.method,
            "ci_note": ci.note,
            "ci_resamples": ci.n_resamples,
            "ci_seed": self.seed,
        })


@dataclass(frozen=True)
class GGDSummary:
    """DEF-RD-GGD-FIT — the ML fit of a generalized Gaussian and its differential entropy (the h of R_SLB), or why none."""

    fit: ggd.GGDFit | None
    differential_entropy_bits: float | None
    error: str | None  # set when the fit failed or ran to the edge of the β range

    def to_dict(self) -> dict:
        if self.error is not None:
            return {"error": self.error}
        fit = self.fit
        return to_strict({
            "beta": fit.beta,
            "alpha": fit.alpha,
            "beta_ci": list(fit.beta_ci) if fit.beta_ci else None,
            "confidence": fit.confidence,
            "differential_entropy_bits": self.differential_entropy_bits,
        })


@dataclass(frozen=True)
class FormatAnalysis:
    """DEF-COLLISION-CENSUS — one format on one tensor: census and δ, min γ (DEF-MARGIN) and the operating point (DEF-RD-OPPOINT)."""

    format: object  # the format object
    injectivity: InjectivityReport
    min_margin: float
    scaling: str  # the operating point's scaling, see _OP_SCALING
    operating_point: rd.OperatingPoint | None
    operating_point_error: str | None

    def to_dict(self) -> dict:
        rep, f = self.injectivity, self.format
        d = rep.delta  # an exact Fraction
        return {
            "format": f.name,
            "kind": _kind(f),
            "codebook_size": rep.codebook_size,
            "cells_used": rep.cells_used,
            "injective": rep.injective,
            "corollary": rep.corollary,
            "colliding_values": rep.colliding_values,
            "delta": json_number(rep.delta_float),
            "delta_exact": f"{d.numerator}/{d.denominator}",
            "min_margin": json_number(self.min_margin),
            "collisions": [_collision_record(c, f) for c in rep.collisions],
            "operating_point": self._operating_point_record(),
        }

    def _operating_point_record(self) -> dict:
        if self.operating_point_error is not None:
            return {"scaling": self.scaling, "error": self.operating_point_error}
        op = self.operating_point
        return {
            "scaling": self.scaling,
            "mse": json_number(op.mse),
            "index_entropy_bits": json_number(op.index_entropy_bits),
            "rate_bits": json_number(op.fixed_rate_bits),
            "scale": None if math.isnan(op.scale) else json_number(op.scale),
            "slb_bits": json_number(op.slb_bits),
            "gap_entropy_to_slb_bits": json_number(op.gap_entropy_to_slb_bits),
        }


@dataclass(frozen=True)
class TensorAnalysis:
    """DEF-NATPREC — one tensor: support by value and by bits, b*, H_Δ, the GGD fit and one :class:`FormatAnalysis` per format."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    elements: int
    nan_omitted: int  # NaNs dropped under nan_policy="omit" (the rest analysed as one flat vector)
    support_size_value: int
    support_size_bits: int
    natural_precision_bits: int
    entropy: EntropyEstimate
    ggd: GGDSummary
    formats: tuple[FormatAnalysis, ...]

    def to_dict(self) -> dict:
        """One entry of ``tensors`` in ``natprec tensor --json``."""
        return {
            "name": self.name,
            "dtype": self.dtype,
            "shape": list(self.shape),
            "elements": self.elements,
            "nan_omitted": self.nan_omitted,
            "support_size_value": self.support_size_value,
            "support_size_bits": self.support_size_bits,
            "natural_precision_bits": self.natural_precision_bits,
            "entropy": self.entropy.to_dict(),
            "ggd": self.ggd.to_dict(),
            "formats": [r.to_dict() for r in self.formats],
        }


@dataclass(frozen=True)
class FileAnalysis:
    """Every float tensor of one file, in file order, and the tensors skipped for their dtype."""

    source: str
    default: bool  # the embedded demo tensors (no file given)
    tensors: tuple[TensorAnalysis, ...]
    skipped: tuple[dict, ...]  # {"name", "dtype", "shape", "reason"}, as natprec.io.load_tensors gives them

    def to_dict(self) -> dict:
        """The document ``natprec tensor --json`` prints."""
        return {"source": self.source, "default": self.default, "tensors": [t.to_dict() for t in self.tensors],
                "skipped": to_strict(list(self.skipped))}


def _collision_record(c, f) -> dict:
    cid = int(c.cell[0])
    if isinstance(f, ElementFormat):
        block, code, nbits = None, cid, f.nbits
    else:  # block-format cells are (block << element bits) + code
        nbits = f.element.nbits
        block, code = cid >> nbits, cid & ((1 << nbits) - 1)
    return {
        "block": block,
        "code": json_code(code, nbits),
        "codeword": json_number(c.codeword),
        "distinct_values": int(c.values.size),
        "elements": int(c.counts.sum()),
        "min_value": json_number(c.values[0]),
        "max_value": json_number(c.values[-1]),
    }


def _ggd_summary(x: np.ndarray) -> GGDSummary:
    try:
        fit = ggd.fit_ml(x.astype(np.float64))
    except NatprecError as exc:  # e.g. constant or non-finite data: say why instead of a number
        return GGDSummary(None, None, str(exc))
    if any(math.isclose(fit.beta, bound, rel_tol=1e-3) for bound in ggd.BETA_FIT_RANGE):
        # ML runs to the edge of the β range on data with atoms (exact zeros, few distinct values):
        # no GGD describes it, so there is no h and no Shannon lower bound to compare with.
        return GGDSummary(fit, None, f"ML fit reached the β range bound {fit.beta:g} (data with atoms or few values is not GGD-like)")
    return GGDSummary(fit, ggd.differential_entropy_bits(fit.beta, fit.alpha), None)


def _format_analysis(x: np.ndarray, f, max_collisions: int, h_bits) -> FormatAnalysis:
    rep = injectivity_report(x, f, max_listed=max_collisions)
    # DEF-RD-OPPOINT at format_operating_point's scaling, named in ``scaling`` (not the census's unscaled values).
    scaling = _OP_SCALING[_kind(f)]
    try:
        op, err = rd.format_operating_point(x, f, h_bits=h_bits), None
    except NatprecError as exc:
        op, err = None, str(exc)
    return FormatAnalysis(f, rep, min_voronoi_margin(x, f), scaling, op, err)


def _default_delta(std: float) -> tuple[float, str]:
    """Δ = std/256, or 1 when that is not a positive finite number (constant or non-finite data)."""
    d = std / DELTA_STD_DIVISOR
    if math.isfinite(d) and d > 0:
        return d, f"std/{DELTA_STD_DIVISOR}"
    return 1.0, f"fallback 1: std/{DELTA_STD_DIVISOR} is not a positive finite number"


def _prepare(formats, delta, max_collisions) -> list:
    """The format objects, after checking ``delta`` and ``max_collisions`` (named as the CLI's flags)."""
    fmts = [get_format(n) for n in ((formats,) if isinstance(formats, str) else formats)]
    if delta is not None and not (math.isfinite(delta) and delta > 0):
        raise InvalidParameterError(f"--delta must be finite and > 0; got {delta!r}", value=delta)
    if max_collisions < 0:
        raise InvalidParameterError(f"--max-collisions must be >= 0; got {max_collisions}", value=max_collisions)
    return fmts


def _analyse(label: str, arr: np.ndarray, formats: list, delta: float | None, nan_policy: str, max_collisions: int) -> TensorAnalysis:
    # Support first: it validates the dtype and applies nan_policy='raise' with the reference's message.
    n_value = support_size(arr, by="value", nan_policy=nan_policy)  # sizes only: no support is materialised
    n_bits = support_size(arr, by="bits", nan_policy=nan_policy)
    dtype, shape, size = str(arr.dtype), tuple(arr.shape), int(arr.size)
    nan = np.isnan(arr)
    nan_omitted = int(nan.sum())
    if nan_omitted:
        # Every reference call below then sees the same NaN-free, flattened data
        # (what injectivity_report does for 'omit'; block formats need finite input).
        arr = arr[~nan]
    b_star = natural_precision(support_size=n_value)  # before Δ: on empty data, its error is the one reported
    with np.errstate(invalid="ignore", over="ignore"):  # ±Inf data: the histogram reports it
        std = float(np.std(arr.astype(np.float64)))
    d, rule = _default_delta(std) if delta is None else (delta, "--delta")
    counts = discretized_histogram(arr, d).counts
    ci = entropy_bootstrap_interval(arr, d, n_resamples=BOOTSTRAP_RESAMPLES, seed=BOOTSTRAP_SEED)
    entropy = EntropyEstimate(d, rule, std, entropy_bits_from_counts(counts),
                              entropy_bits_from_counts(counts, correction="miller-madow"), ci, BOOTSTRAP_SEED)
    fit = _ggd_summary(arr)
    return TensorAnalysis(
        name=label, dtype=dtype, shape=shape, elements=size, nan_omitted=nan_omitted,
        support_size_value=n_value, support_size_bits=n_bits,
        natural_precision_bits=b_star,
        entropy=entropy, ggd=fit,
        formats=tuple(_format_analysis(arr, f, max_collisions, fit.differential_entropy_bits) for f in formats),
    )


def analyze_tensor(x, formats=DEFAULT_TENSOR_FORMATS, *, delta: float | None = None, nan_policy: str = "raise",
                   max_collisions: int = DEFAULT_MAX_COLLISIONS, name: str = "tensor") -> TensorAnalysis:
    """DEF-NATPREC, DEF-ENTROPY-BOOTSTRAP, DEF-COLLISION-CENSUS, DEF-RD-OPPOINT — ``natprec tensor``'s analysis of one array.

    ``formats``: format names (or one name); ``delta``: the entropy bin width Δ (default std/256,
    or 1 when that is not a positive finite number); ``nan_policy``: "raise" or "omit" (NaNs dropped
    and the rest analysed as one flat vector); ``max_collisions``: the largest colliding cells kept
    per format; ``name``: the label in the result.
    """
    fmts = _prepare(formats, delta, max_collisions)
    return _analyse(name, np.asarray(x), fmts, delta, nan_policy, max_collisions)


def analyze_file(path=None, formats=DEFAULT_TENSOR_FORMATS, *, name: str | None = None, delta: float | None = None,
                 nan_policy: str = "raise", max_collisions: int = DEFAULT_MAX_COLLISIONS) -> FileAnalysis:
    """:func:`analyze_tensor` on every float tensor of a ``.npy``/``.safetensors`` file (``path=None``: the demo tensors).

    ``name`` picks one tensor of a safetensors file.  A named error from one tensor's analysis
    is raised again with the tensor's name in front of its message.
    """
    fmts = _prepare(formats, delta, max_collisions)
    if path is None:
        (tensors, skipped), source = load_demo_tensors(name), DEMO_SOURCE
    else:
        path = Path(path)
        (tensors, skipped), source = load_tensors(path, name), str(path)
    recs = []
    for label, arr in tensors:
        try:
            recs.append(_analyse(label, arr, fmts, delta, nan_policy, max_collisions))
        except NatprecError as exc:  # name the tensor in the one-line message
            raise type(exc)(f"tensor {label!r}: {exc}", value=exc.value) from None
    return FileAnalysis(source, path is None, tuple(recs), tuple(skipped))
