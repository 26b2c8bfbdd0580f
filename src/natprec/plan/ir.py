"""DEF-INFO-BUNDLE, DEF-GAUGE, DEF-GAUGE-CHECK — information bundles, gauges, and the type error between them.

A bundle is what an edge of the dataflow graph carries (logical shape, entropy bound, semantic
type), with no precision or layout; a gauge is the format and layout chosen when it is
materialized.  A gauge's capacity is log2 of the number of distinct values its codebook holds;
it can hold a bundle only if its capacity covers the bundle's entropy (seed 000 §4.1).  That
condition is necessary, not sufficient, for a lossless conversion (spec/06 THM-FREE-BOUNDARY).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache, cached_property

from natprec.model.quantize import SiteFormat, site_format
from natprec.reference.errors import InvalidParameterError, NatprecError

__all__ = ["SemanticType", "SEMANTIC_TYPES", "InformationBundle", "Gauge", "GaugeTypeError", "check_gauge", "gauge",
           "FLOAT32", "DEFAULT_LADDER", "smallest_covering"]

#: float32's finite values: 2 · (2^31 − 2^23) less the duplicate zero.
_FLOAT32_VALUES = 2 * ((1 << 31) - (1 << 23)) - 1
FLOAT32 = "float32"


class GaugeTypeError(NatprecError, TypeError):
    """DEF-GAUGE-CHECK — a gauge whose capacity cannot hold the entropy of the bundle given to it."""


@dataclass(frozen=True)
class SemanticType:
    """DEF-INFO-BUNDLE — what a bundle represents; ``bound_bits`` caps its entropy where the type alone fixes one."""

    name: str
    description: str
    bound_bits: float | None = None


#: The semantic types the capture assigns (token ids and masks have type-fixed bounds; the rest are measured).
SEMANTIC_TYPES = {t.name: t for t in (
    SemanticType("tokens", "integer ids of a vocabulary (bound: log2 of the vocabulary size)"),
    SemanticType("mask", "a 0/1 mask", 1.0),
    SemanticType("index", "other integer tensors (positions, token types)"),
    SemanticType("weights", "a parameter of the model"),
    SemanticType("activations", "an intermediate value of the forward pass"),
    SemanticType("probabilities", "a softmax output: values in [0, 1] summing to 1 along a row"),
    SemanticType("output", "a value the model returns"),
)}


@dataclass(frozen=True)
class InformationBundle:
    """DEF-INFO-BUNDLE — (logical shape, entropy bound in bits per element, semantic type); no precision, no layout."""

    shape: tuple
    entropy_bits: float
    semantic: SemanticType

    def __post_init__(self):
        h = self.entropy_bits
        if isinstance(h, bool) or not isinstance(h, (int, float)) or not math.isfinite(h) or h < 0:
            raise InvalidParameterError(f"a bundle's entropy must be finite and >= 0; got {h!r}", value=h)
        b = self.semantic.bound_bits
        if b is not None and h > b:
            raise InvalidParameterError(f"{self.semantic.name} carry at most {b:g} bits; got H = {h:g}", value=h)


@dataclass(frozen=True)
class Gauge:
    """DEF-GAUGE — a format (a name ``natprec report`` knows, or ``float32``: no conversion) and a memory layout.

    ``capacity_bits`` = log2 |distinct values of the element codebook| (float32: of its finite values);
    ``site_format``: the format as the model measurement applies it (None for float32).
    """

    format: str
    layout: str = "row-major"

    @cached_property
    def site_format(self) -> SiteFormat | None:
        return None if self.format == FLOAT32 else site_format(self.format)

    @cached_property
    def capacity_bits(self) -> float:
        if self.site_format is None:
            return math.log2(_FLOAT32_VALUES)
        cb = self.site_format.codebook_format.codebook
        return math.log2(len(set(float(v) for v in cb.values)))

    @property
    def bits_per_element(self) -> float:
        """Nominal storage bits per element, scales of block formats included (32 for float32)."""
        return 32.0 if self.site_format is None else self.site_format.bits_per_element


@cache
def gauge(name: str, layout: str = "row-major") -> Gauge:
    """DEF-GAUGE — the gauge of a format name (checked now: an unknown name raises UnknownFormatError)."""
    g = Gauge(name.strip().lower() if isinstance(name, str) else name, layout)
    g.capacity_bits  # noqa: B018 — resolve the format now, not at first use
    return g


def check_gauge(bundle: InformationBundle, g: Gauge, where: str = "this operation") -> None:
    """DEF-GAUGE-CHECK — raise GaugeTypeError unless ``g``'s capacity covers the bundle's entropy.

    The message is the seed's: "this operation expects H ≤ 4 but received H = 24".
    """
    if bundle.entropy_bits > g.capacity_bits:
        raise GaugeTypeError(f"{where} expects H ≤ {g.capacity_bits:.4g} ({g.format}) but received "
                             f"H = {bundle.entropy_bits:.4g} ({bundle.semantic.name})", value=bundle.entropy_bits)


#: The gauges a derived plan chooses from, by capacity: the integer family, then float32.
DEFAULT_LADDER = tuple(f"int{b}" for b in range(2, 9)) + ("int12", "int16", FLOAT32)


def smallest_covering(bits: float, ladder=DEFAULT_LADDER) -> Gauge:
    """DEF-GAUGE-CHECK — the gauge of least capacity in ``ladder`` whose capacity is ≥ ``bits`` (float32 if none)."""
    gs = sorted((gauge(n) for n in ladder), key=lambda g: g.capacity_bits)
    return next((g for g in gs if g.capacity_bits >= bits), gauge(FLOAT32))
