"""DEF-SITE-RESOLUTION, DEF-INFORMATION-PRECISION — the resolution a site needs and the information it holds there.

Δ_v(ε) is the coarsest step of the uniform grid G = {2^(k/4)} whose uniform quantizer U_Δ, applied
to site v alone, keeps the task distortion within ε.  b_H,v(ε) is the entropy of U_Δv(ε)(v): the
bits per element an ideal lossless code of the site needs at the resolution the task requires.
U_Δ's cells are exactly the bins of the reference histogram with origin −Δ/2, so the quantizer the
task judges and the entropy that is reported partition the values the same way.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

import natprec.reference
from natprec.reference import entropy_bits_from_counts, histogram_bins, natural_precision
from natprec.reference.errors import InvalidParameterError

__all__ = [
    "STEPS_PER_OCTAVE",
    "SEARCH_OCTAVES",
    "UniformStep",
    "grid_step",
    "step_index_above",
    "search_window",
    "resolution_search",
    "resolution_entropy",
]

#: Grid points per factor of 2 in Δ: a quarter octave is ¼ bit of entropy at fine resolution.
STEPS_PER_OCTAVE = 4
#: Octaves searched below the coarsest useful step (2·max|v|): finer than float32 resolves.
SEARCH_OCTAVES = 24
#: fl64(2^(j/4)), j = 0…3: the grid's mantissas; Δ_k = ldexp(_ROOTS[k mod 4], ⌊k/4⌋) exactly.
_ROOTS = tuple(2.0 ** (j / STEPS_PER_OCTAVE) for j in range(STEPS_PER_OCTAVE))


def grid_step(k: int) -> float:
    """DEF-SITE-RESOLUTION — Δ_k = fl64(2^(k mod 4 / 4)) · 2^⌊k/4⌋ (exact scaling by a power of two)."""
    return math.ldexp(_ROOTS[k % STEPS_PER_OCTAVE], k // STEPS_PER_OCTAVE)


def step_index_above(a: float) -> int:
    """DEF-SITE-RESOLUTION — the least k with Δ_k > a (a > 0 finite)."""
    if not (isinstance(a, (int, float)) and math.isfinite(a) and a > 0):
        raise InvalidParameterError(f"step_index_above needs a finite a > 0; got {a!r}", value=a)
    k = math.floor(STEPS_PER_OCTAVE * math.log2(a)) - 1
    while grid_step(k) <= a:  # log2 is rounded: settle on the grid itself
        k += 1
    while grid_step(k - 1) > a:
        k -= 1
    return k


def search_window(x: np.ndarray) -> tuple[int, int]:
    """DEF-SITE-RESOLUTION — (k_lo, k_hi): k_hi is the least k with Δ_k > 2·max|x| (U_Δ maps everything to 0),
    k_lo = k_hi − 4·24.  An all-zero site has no window (InvalidParameterError)."""
    amax = float(np.max(np.abs(x))) if np.size(x) else 0.0
    if amax == 0.0:
        raise InvalidParameterError("an all-zero site has no resolution: every step reproduces it", value=0.0)
    hi = step_index_above(2 * amax)
    return hi - STEPS_PER_OCTAVE * SEARCH_OCTAVES, hi


@dataclass(frozen=True)
class UniformStep:
    """DEF-SITE-RESOLUTION — U_Δ(x) = fl32(fl64(k·Δ)), k = ⌊(x + Δ/2)/Δ⌋ exactly, Δ = Δ_k of the grid.

    One step for the whole site (no per-channel scale, no clipping, no rate limit); a value on a
    cell edge goes to the upper cell, as in the reference histogram.  ``per_channel`` and
    ``feature_axis`` are accepted and ignored (one step, element-wise) so that it runs wherever a
    site format does.
    """

    step_index: int

    @property
    def step(self) -> float:
        return grid_step(self.step_index)

    @property
    def name(self) -> str:
        return f"uniform(2^({self.step_index}/{STEPS_PER_OCTAVE}))"

    @property
    def bits_per_element(self) -> None:
        return None  # a uniform grid has no fixed rate: its information is what the entropy measures

    def effective_bits(self, shape, per_channel: bool, feature_axis: int = -1) -> None:
        return None

    def quantize_dequantize(self, x: np.ndarray, per_channel: bool = False, feature_axis: int = -1) -> np.ndarray:
        x32 = np.asarray(x, dtype=np.float32)
        d = self.step
        k = histogram_bins(x32, d, origin=-d / 2)
        return (k * d).astype(np.float32)


def _law_guess(k: int, d: float, tolerance: float) -> int:
    """The k where a distortion growing as Δ² (2^(k/2)) would reach ε, from one measured point (k, d)."""
    if d <= 0:
        return k + STEPS_PER_OCTAVE  # exact at this step: try an octave coarser
    return k + math.floor(2 * (math.log2(tolerance) - math.log2(d)))  # logs apart: no overflow for tiny d


def resolution_search(evaluate, start: int, window: tuple[int, int], tolerance: float, known: dict | None = None) -> int | None:
    """DEF-SITE-RESOLUTION — max{k in window : evaluate(k) ≤ ε}, assuming evaluate nondecreasing in k.

    ``known``: {k: value} already measured, updated with every new evaluation, so that several ε
    share their points.  Each probe is placed where a distortion growing as Δ²
    would meet ε — a guess that only saves evaluations: the answer is the bracket's, found
    by evaluating k and k + 1 (or the window's edge).  None when even the finest step fails.
    """
    lo, hi = window
    known = {} if known is None else known

    def value(k):
        if k not in known:
            known[k] = evaluate(k)
        return known[k]
    k = min(max(start, lo), hi)
    while True:
        d = value(k)
        inside = [j for j in known if lo <= j <= hi]
        ok = max((j for j in inside if known[j] <= tolerance), default=None)
        bad = min((j for j in inside if known[j] > tolerance and (ok is None or j > ok)), default=None)
        if ok is not None and (ok == hi or bad == ok + 1):
            return ok
        if ok is None and bad == lo:
            return None
        g = _law_guess(k, d, tolerance)
        left = lo if ok is None else ok + 1
        right = hi if bad is None else bad - 1
        if ok is not None and bad is not None:
            k = g if left <= g <= right and g != k else (ok + bad) // 2
            if k in known:
                k = (ok + bad) // 2
        else:
            k = min(max(g, left), right)
            if k in known:  # the guess points back at a measured step: walk one octave toward the bracket
                k = min(ok + STEPS_PER_OCTAVE, hi) if ok is not None else max(bad - STEPS_PER_OCTAVE, lo)


def resolution_entropy(x: np.ndarray, step_index: int, tier=natprec.reference) -> dict:
    """DEF-INFORMATION-PRECISION — H (plug-in and Miller–Madow, bits/element), support and its b* of U_Δ(x)
    (the histogram by ``tier``'s ``discretized_histogram``)."""
    d = grid_step(step_index)
    h = tier.discretized_histogram(np.asarray(x, dtype=np.float32), d, origin=-d / 2)
    return {
        "entropy_bits": entropy_bits_from_counts(h.counts),
        "entropy_bits_mm": entropy_bits_from_counts(h.counts, correction="miller-madow"),
        "cells": int(h.counts.size),
        "cells_bits": natural_precision(support_size=int(h.counts.size)),
    }
