"""DEF-EPILOGUE-SYNTHESIS — per-channel scale and bias that make scale → bias → activation → round injective.

For each channel's realized post-accumulator support S and a target codebook C, find (a, b)
such that s ↦ Q_C(f(fl32(fl32(a·s) + b))) is injective on S with the largest minimum Voronoi
margin (spec/04 DEF-MARGIN), or prove it impossible — |S| larger than the number of cells the
activation's range reaches (pigeonhole, spec/03) — and
return the solution with the fewest collisions.  The search is a grid over (log a, b) refined
around the best point; when it finds no injective map and |S| ≤ |C|, that is a search result,
not a proof, and the result says so.
"""

from __future__ import annotations

import math

import numpy as np

from natprec.reference import quantize, resolve_format, voronoi_margin
from natprec.reference.epilogue import ACTIVATIONS, activation_f32
from natprec.reference.errors import EmptyInputError, InvalidParameterError, NonFiniteInputError

__all__ = ["synthesize_epilogue", "epilogue_channel", "GRID", "REFINE_ROUNDS"]

#: Grid points per axis (log a and b), and the rounds of refinement around the best point.
GRID = 48
REFINE_ROUNDS = 4
_F32 = np.float32


#: Where each activation starts to increase (its monotone branch): preimages of cell boundaries are taken there.
_BRANCH = {"identity": -math.inf, "relu": 0.0, "gelu": -0.7517915246935, "silu": -1.2784645427610738}


def _scores(s: np.ndarray, a: float, bs: np.ndarray, act: str, fmt) -> tuple[np.ndarray, np.ndarray]:
    """(collisions, min margin) of s ↦ Q(f(fl32(fl32(a·s) + b))) for every b of ``bs`` at once."""
    t = np.add(np.multiply(s, _F32(a), dtype=_F32)[None, :], bs.astype(_F32)[:, None], dtype=_F32)
    y = activation_f32(t, act)
    ok = np.all(np.isfinite(y), axis=1)
    y = np.where(np.isfinite(y), y, _F32(0))
    codes = np.sort(quantize(y, fmt, saturate=True).astype(np.int64), axis=1)
    distinct = 1 + np.count_nonzero(np.diff(codes, axis=1), axis=1)
    margin = np.min(voronoi_margin(y, fmt), axis=1)
    return np.where(ok, s.size - distinct, s.size), np.where(ok, margin, 0.0)


def _preimages(beta: np.ndarray, act: str) -> np.ndarray:
    """t on the activation's increasing branch with f(t) = β (bisection in float64; β below the branch: dropped)."""
    lo = _BRANCH[act]
    if act == "identity":
        return beta
    f_lo = 0.0 if act == "relu" else float(activation_f32(np.array([lo]), act)[0])
    beta = beta[beta > f_lo]
    if act == "relu":
        return beta
    a, b = np.full(beta.shape, lo), np.maximum(beta, 0.0) + 2.0
    for _ in range(80):
        m = (a + b) / 2
        up = np.asarray(activation_f32(m, act), dtype=np.float64) >= beta
        a, b = np.where(up, a, m), np.where(up, m, b)
    return (a + b) / 2


def epilogue_channel(values, fmt, activation: str = "identity") -> dict:
    """DEF-EPILOGUE-SYNTHESIS — (a, b) for one channel's values (any shape; their distinct values are S).

    For each a of a log grid, the candidate biases place a cell boundary midway between two
    neighbouring realized values (the boundary's preimage under the activation's increasing
    branch), plus a uniform grid; the best (fewest collisions, then largest minimum margin) is
    refined on a narrower grid of a.
    """
    if activation not in ACTIVATIONS:
        raise InvalidParameterError(f"activation must be one of {ACTIVATIONS}; got {activation!r}", value=activation)
    el = resolve_format(fmt)
    v = np.asarray(values, dtype=np.float64).ravel()
    if v.size == 0:
        raise EmptyInputError("epilogue synthesis: a channel with no values", value=0)
    if not np.all(np.isfinite(v)):
        raise NonFiniteInputError("epilogue synthesis: post-accumulator values must be finite", value=v[~np.isfinite(v)][0])
    s = np.unique(v.astype(_F32))
    cvals = np.unique(np.asarray(el.codebook.values, dtype=np.float64))
    n_c = int(cvals.size)
    # Cells the activation can reach: those whose upper boundary lies at or above the activation's minimum.
    f_min = -math.inf if activation == "identity" else float(activation_f32(np.array([_BRANCH[activation]]), activation)[0])
    upper = np.append((cvals[1:] + cvals[:-1]) / 2, math.inf)
    reach = int(np.count_nonzero(upper >= f_min))
    proof = None
    if s.size > reach:
        proof = (f"pigeonhole: |S| = {s.size} realized values > {reach} cells of the {n_c}-codeword codebook that "
                 f"{activation} can reach (its outputs are ≥ {f_min:.6g}), so some two share a cell (spec/03 THM-INJECTIVITY)")
    lo_c, hi_c = float(cvals[0]), float(cvals[-1])
    s64 = s.astype(np.float64)
    if s.size == 1:
        col, margin = _scores(s, 1.0, np.array([0.0]), activation, el)
        best = (int(col[0]), float(margin[0]), 1.0, 0.0)
    else:
        mids = (s64[1:] + s64[:-1]) / 2
        pre = _preimages((cvals[1:] + cvals[:-1]) / 2, activation)
        cap = max(8, min(64, 2048 // s.size))  # candidates per a: cap² boundary placements, fewer for large supports
        pre = pre[np.linspace(0, pre.size - 1, min(pre.size, cap)).astype(int)] if pre.size else pre
        mids = mids[np.linspace(0, mids.size - 1, min(mids.size, cap)).astype(int)]
        span = float(s64[-1] - s64[0])
        la = math.log2((hi_c - lo_c) / span / 16)
        lb = math.log2(min(max(2.0 ** (la + 5), (hi_c - lo_c) / float(np.diff(s64).min()) * 4), 2.0 ** 100))
        best = None
        for _ in range(REFINE_ROUNDS):
            for lga in np.linspace(la, lb, GRID):
                a = 2.0 ** lga
                centre = (lo_c + hi_c) / 2 - a * (s64[0] + s64[-1]) / 2
                bs = np.concatenate([(pre[:, None] - a * mids[None, :]).ravel(),
                                     np.linspace(centre - (hi_c - lo_c), centre + (hi_c - lo_c), GRID)])
                col, m = _scores(s, a, bs, activation, el)
                i = np.lexsort((-m, col))[0]
                if best is None or (col[i], -m[i]) < (best[0], -best[1]):
                    best = (int(col[i]), float(m[i]), a, float(bs[i]))
            step = (lb - la) / (GRID - 1)  # refine: a narrower window of a around the best
            la, lb = math.log2(best[2]) - 2 * step, math.log2(best[2]) + 2 * step
    col, margin, a, b = best
    return {"support": int(s.size), "codewords": n_c, "reachable_cells": reach, "scale": float(_F32(a)), "bias": float(_F32(b)),
            "injective": col == 0, "collisions": int(col), "min_margin": float(margin),
            "impossible": proof, "proved": proof is not None or col == 0}


def synthesize_epilogue(values, fmt, activation: str = "identity", *, channel_axis: int = -1) -> dict:
    """DEF-EPILOGUE-SYNTHESIS — :func:`epilogue_channel` for every channel of ``values`` (channels along
    ``channel_axis``), with a summary: how many channels are injective, proved impossible, or neither."""
    x = np.asarray(values)
    if x.ndim == 0:
        raise InvalidParameterError("epilogue synthesis: values need a channel axis", value=x.shape)
    x = np.moveaxis(x, channel_axis, -1).reshape(-1, x.shape[channel_axis])
    channels = [epilogue_channel(x[:, c], fmt, activation) for c in range(x.shape[1])]
    return {"format": resolve_format(fmt).name, "activation": activation, "channels": channels,
            "injective": sum(c["injective"] for c in channels),
            "impossible": sum(c["impossible"] is not None for c in channels),
            "unresolved": sum(not c["proved"] for c in channels)}
