"""Slow, obviously-correct oracles (exact rationals) that the reference is checked against."""

from __future__ import annotations

from fractions import Fraction

import numpy as np

__all__ = ["nearest_index_brute", "margin_brute", "delta_brute"]


def nearest_index_brute(x: float, values, tie_up) -> int:
    """Nearest codeword by exact distance; on an exact tie between i and i+1, ``tie_up[i]`` decides."""
    if np.isinf(x):
        return 0 if x < 0 else len(values) - 1
    q = Fraction(float(x))
    d = [abs(q - Fraction(float(c))) for c in values]
    m = min(d)
    best = [i for i, di in enumerate(d) if di == m]
    if len(best) == 1:
        return best[0]
    i, _ = best
    return i + 1 if tie_up[i] else i


def margin_brute(x: float, values, index: int) -> float:
    """γ(x) = min over c' ≠ c of |x − c'| − |x − c|, exactly, rounded once to float64."""
    if len(values) == 1:
        return float("inf")
    c = Fraction(float(values[index]))
    if np.isinf(x):  # the limit as x → ±∞
        others = [Fraction(float(v)) for j, v in enumerate(values) if j != index]
        return float(min(abs(c - o) for o in others))
    q = Fraction(float(x))
    return float(min(abs(q - Fraction(float(v))) - abs(q - c) for j, v in enumerate(values) if j != index))


def delta_brute(samples, cells) -> Fraction:
    """δ by enumerating all ordered pairs (i, j): same cell, different value."""
    n = len(samples)
    hits = 0
    for i in range(n):
        for j in range(n):
            if cells[i] == cells[j] and samples[i] != samples[j]:
                hits += 1
    return Fraction(hits, n * n)
