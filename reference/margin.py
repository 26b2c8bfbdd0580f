"""DEF-MARGIN, THM-MARGIN-ROBUST — Voronoi margin γ(x) = min_{c'≠c} |x−c'| − |x−c|.

Chapter: spec/04-margin.md.  In one dimension the minimum is attained at a
neighbour of the nearest codeword c.  For a neighbour c' on the far side of x
from c the difference is the constant gap |c' − c|; otherwise it is
(c' − x) − (x − c) up to sign.  Every γ is the float64 value nearest the exact
real γ (round-half-even): error-free transforms decide when float64 is exact,
rationals handle the rest.

``voronoi_margin`` and ``min_voronoi_margin`` are ``execute_*(prepare_*(...))`` (spec/00-conventions.md).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from ._domain import as_float_array, check_nan_policy, chunks, layout_of, map_chunks, nan_mask, raise_on_nan, real_parameter, require_nonempty
from .codebook import Codebook, exact_gaps, nearest_index, thresholds
from .formats import AbsmaxBlockFormat, ElementFormat, MXFormat, NVFP4Format, resolve_format

__all__ = [
    "MarginPlan",
    "prepare_voronoi_margin",
    "execute_voronoi_margin",
    "voronoi_margin",
    "MinMarginPlan",
    "prepare_min_voronoi_margin",
    "execute_min_voronoi_margin",
    "cell_extremes",
    "min_voronoi_margin",
    "margin_guarantees_codes",
    "element_codebook",
]


def element_codebook(fmt) -> Codebook:
    """DEF-MARGIN — the codebook whose cells define margins for a format name, format object or Codebook."""
    f = resolve_format(fmt)
    return f.codebook if hasattr(f, "codebook") else f.element.codebook


def _two_diff(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """a − b = hi + lo exactly (Knuth TwoSum on a and −b)."""
    s = a - b
    bb = s - a
    lo = (a - (s - bb)) + (-b - bb)
    return s, lo


def _side(x, c, cn, gap, toward_up: bool):
    """γ contribution of neighbour cn of c; ``toward_up``: cn > c."""
    far = (x <= c) if toward_up else (x >= c)
    if toward_up:
        a_hi, a_lo = _two_diff(cn, x)  # cn − x
        b_hi, b_lo = _two_diff(x, c)  # x − c
    else:
        a_hi, a_lo = _two_diff(x, cn)  # x − cn
        b_hi, b_lo = _two_diff(c, x)  # c − x
    with np.errstate(invalid="ignore", over="ignore"):
        near = a_hi - b_hi
    exact = (a_lo == 0) & (b_lo == 0) & np.isfinite(a_hi) & np.isfinite(b_hi)
    out = np.where(far, gap, near)
    slow = np.flatnonzero(~far & ~exact)
    for i in slow:
        xq, cq, nq = Fraction(float(x[i])), Fraction(float(c[i])), Fraction(float(cn[i]))
        out[i] = float((nq - xq) - (xq - cq)) if toward_up else float((xq - nq) - (cq - xq))
    return out


@dataclass(frozen=True)
class MarginPlan:
    """DEF-MARGIN — a margin computation whose checks have all passed.

    ``x``: the values measured, in the element codebook's units (the input for element
    formats and codebooks, its block-scaled values for block formats), NaN mask ``nan``;
    ``codebook`` with its ``thresholds`` in x's dtype for ``tie`` and its ``gaps``
    (:func:`~natprec.reference.codebook.exact_gaps`).
    """

    format: ElementFormat | AbsmaxBlockFormat | MXFormat | NVFP4Format
    x: np.ndarray
    codebook: Codebook
    tie: str
    nan: np.ndarray
    thresholds: np.ndarray
    gaps: np.ndarray


def prepare_voronoi_margin(x, fmt, *, tie: str = "even", nan_policy: str = "raise") -> MarginPlan:
    """DEF-MARGIN — every check of :func:`voronoi_margin`, in its order."""
    check_nan_policy(nan_policy, ("raise", "propagate"))
    f = resolve_format(fmt)
    if isinstance(f, ElementFormat):
        arr = as_float_array(x)
        cb = f.codebook
    else:
        arr = f.scaled(x)  # block formats: element-domain values (finite by construction)
        cb = f.element.codebook
    nan = nan_mask(arr)
    if nan_policy == "raise":
        raise_on_nan(arr, "x", nan)
    return MarginPlan(f, arr, cb, tie, nan, thresholds(cb, tie, arr.dtype), exact_gaps(cb))  # tie errors here


def _margin_chunk(plan: MarginPlan, sl: slice) -> np.ndarray:
    """γ of the elements ``sl`` of the flattened plan (element-wise, so chunks compose to the whole)."""
    cb = plan.codebook
    idx = nearest_index(plan.x.reshape(-1)[sl], cb, plan.tie).astype(np.intp)
    with np.errstate(invalid="ignore"):  # NaN elements convert to NaN; they are masked below
        x64 = plan.x.reshape(-1)[sl].astype(np.float64)
    v = cb.values
    k = v.size
    gamma = np.full(x64.shape, np.inf)
    ok = ~plan.nan.reshape(-1)[sl]
    if k > 1:
        gaps = plan.gaps
        c = v[idx]
        up = np.flatnonzero(ok & (idx < k - 1))
        dn = np.flatnonzero(ok & (idx > 0))
        with np.errstate(invalid="ignore", over="ignore"):  # ±Inf rows take the far-side gap
            gamma[up] = _side(x64[up], c[up], v[idx[up] + 1], gaps[idx[up]], True)
            g_dn = _side(x64[dn], c[dn], v[idx[dn] - 1], gaps[idx[dn] - 1], False)
        gamma[dn] = np.minimum(gamma[dn], g_dn)
    gamma[~ok] = np.nan
    return gamma


def execute_voronoi_margin(plan: MarginPlan) -> np.ndarray:
    """DEF-MARGIN — the reference executor: γ of every element of a prepared plan (float64, x's shape)."""
    gamma = np.empty(plan.x.size)
    for sl in chunks(plan.x.size):
        gamma[sl] = _margin_chunk(plan, sl)
    return gamma.reshape(plan.x.shape)


def voronoi_margin(x, fmt, *, tie: str = "even", nan_policy: str = "raise") -> np.ndarray:
    """DEF-MARGIN — per-element margin γ(x) ≥ 0 as float64, x's shape.

    ``fmt``: a Codebook, an element format or a block format.  For a block format γ
    is measured on the block-scaled values in the element codebook's units.
    ±Inf get the limit of γ (the gap between the two extreme codewords); a
    one-codeword codebook gives +Inf.  NaN: ``nan_policy`` ``"raise"`` or ``"propagate"`` (γ = NaN).
    """
    return execute_voronoi_margin(prepare_voronoi_margin(x, fmt, tie=tie, nan_policy=nan_policy))


@dataclass(frozen=True)
class MinMarginPlan:
    """DEF-MARGIN — a min-margin computation whose checks have passed: the margin plan of the elements
    kept (never empty), or ``None`` when ``nan_policy="propagate"`` met a NaN (the minimum is NaN)."""

    margin: MarginPlan | None


def prepare_min_voronoi_margin(x, fmt, *, tie: str = "even", nan_policy: str = "raise") -> MinMarginPlan:
    """DEF-MARGIN — every check of :func:`min_voronoi_margin`, in its order."""
    check_nan_policy(nan_policy)
    arr = as_float_array(x)
    nan = nan_mask(arr)
    if nan_policy == "omit":
        arr = arr[~nan]  # always flattens, so block formats block the same way with or without NaNs
    elif nan.any() and nan_policy == "propagate":
        return MinMarginPlan(None)
    require_nonempty(arr, "x")
    return MinMarginPlan(prepare_voronoi_margin(arr, fmt, tie=tie))


def cell_extremes(plan: MarginPlan) -> tuple[np.ndarray, np.ndarray]:
    """DEF-MARGIN — the smallest and largest element of each Voronoi cell, in x's dtype (THM-MIN-MARGIN-EXTREMES).

    Returns (lo, hi), one entry per codeword; an empty cell has lo = +Inf and hi = −Inf, so lo > hi.
    Only comparisons: no arithmetic, no float64 copy.  Chunks run on every core (:func:`map_chunks`);
    min and max do not depend on the order in which they are merged.  NaN elements are skipped
    (``plan.nan``).
    """
    x = plan.x.reshape(-1)
    nan = plan.nan.reshape(-1)
    k = len(plan.codebook)
    lay = layout_of(x.dtype)
    if lay.nbits == 16 and x.size > 1 << 16:  # 16-bit input: the distinct bit patterns present stand for the elements
        seen = np.zeros(1 << 16, dtype=bool)
        for sl in chunks(x.size):
            seen[np.ascontiguousarray(x[sl]).view(np.uint16)] = True
        pats = np.flatnonzero(seen).astype(np.uint16).view(lay.dtype)
        x, nan = pats, nan_mask(pats)
    lo = np.full(k, np.inf, dtype=x.dtype)
    hi = np.full(k, -np.inf, dtype=x.dtype)
    any_nan = bool(nan.any())
    lock = threading.Lock()

    def run(sl):
        xs = x[sl]
        if any_nan:
            xs = xs[~nan[sl]]
        idx = nearest_index(xs, plan.codebook, plan.tie)
        part_lo = np.full(k, np.inf, dtype=x.dtype)
        part_hi = np.full(k, -np.inf, dtype=x.dtype)
        np.minimum.at(part_lo, idx, xs)
        np.maximum.at(part_hi, idx, xs)
        with lock:  # min and max are order-free: the same result in any order of the chunks
            np.minimum(lo, part_lo, out=lo)
            np.maximum(hi, part_hi, out=hi)
    map_chunks(run, x.size)
    return lo, hi


def execute_min_voronoi_margin(plan: MinMarginPlan) -> float:
    """DEF-MARGIN — the reference executor: the smallest γ of a prepared plan.

    γ is computed only for the smallest and largest element of each cell (:func:`cell_extremes`):
    THM-MIN-MARGIN-EXTREMES shows that the minimum over every element is among them.
    """
    if plan.margin is None:
        return float("nan")
    m = plan.margin
    lo, hi = cell_extremes(m)
    occupied = lo <= hi
    cand = np.concatenate((lo[occupied], hi[occupied]))
    sub = MarginPlan(m.format, cand, m.codebook, m.tie, np.zeros(cand.size, dtype=bool), m.thresholds, m.gaps)
    return float(_margin_chunk(sub, slice(0, cand.size)).min())


def min_voronoi_margin(x, fmt, *, tie: str = "even", nan_policy: str = "raise") -> float:
    """DEF-MARGIN — min over elements of γ; ``nan_policy`` may also be ``"omit"`` (drops NaNs, flattening).

    Empty input (after omitting) raises EmptyInputError.
    """
    return execute_min_voronoi_margin(prepare_min_voronoi_margin(x, fmt, tie=tie, nan_policy=nan_policy))


def margin_guarantees_codes(x, fmt, eta: float, *, tie: str = "even") -> bool:
    """THM-MARGIN-ROBUST — True iff every γ(x) > η, which guarantees Q(x + δ) = Q(x) for all |δ| ≤ η/2."""
    eta = real_parameter("eta", eta, low=0.0)
    return bool(np.all(voronoi_margin(x, fmt, tie=tie) > eta))
