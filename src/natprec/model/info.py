"""DEF-SITE — per-site information measures from the reference tier, next to b*_v(ε).

On the whole site (weights: every element; activations: every real position of every
calibration batch): support size and b* (DEF-SUPPORT, DEF-NATURAL-PRECISION), H_Δ at
Δ = std/256 (DEF-ENTROPY-DISCRETIZED), the crest log2(max|x|/std) and, for weights, the ML
GGD shape β (DEF-RD-GGD-FIT).  For each candidate format, the collision probability δ
(DEF-COLLISION-PROBABILITY) and the Voronoi margins γ (DEF-MARGIN) of the values the element
codebook sees, with the scales computed on the full tensor, on a seeded uniform sample of
at most ``max_elements`` elements (``measured_elements`` says how many).  The scales are
reductions of the whole tensor (max|x|, or min and max, per row, tensor, group or block); the
scaled values, codes, cells and margins are computed at the sampled positions only, and
:func:`format_measures_all` shares the view, the sample and the reductions among a site's formats.

Support, histograms, codes and margins come from a tier (``natprec.reference`` by default,
``natprec.accelerated`` when the report runs on a GPU; tiers agree bit for bit); logs, the GGD
fit and δ from the reference.
"""

from __future__ import annotations

import functools
import math

import numpy as np

import natprec.reference
from natprec.analysis import DELTA_STD_DIVISOR
from natprec.reference import AbsmaxBlockFormat, MXFormat, NVFP4Format, collision_probability, ggd, natural_precision
from natprec.reference.errors import EmptyInputError, NaNInputError, NonFiniteInputError

from .quantize import SiteFormat, as_2d

__all__ = ["tensor_measures", "format_measures", "format_measures_all", "MARGIN_BINS", "SAMPLE_SEED"]

SAMPLE_SEED = 0
#: Histogram bin edges of γ in codebook units (log-spaced; γ = 0 counts in the first bin).
MARGIN_BINS = np.concatenate(([0.0], np.logspace(-6, 1, 29)))


@functools.lru_cache(maxsize=8)
def _sample_index(n: int, max_elements: int) -> np.ndarray | None:
    """The seeded sample of element positions: one per (n, max_elements), shared by every format of a site."""
    if n <= max_elements:
        return None
    idx = np.sort(np.random.default_rng(SAMPLE_SEED).choice(n, size=max_elements, replace=False))
    idx.flags.writeable = False
    return idx


def tensor_measures(x: np.ndarray, *, is_weight: bool, tier=natprec.reference) -> dict:
    """DEF-SITE — support size, b*, H_Δ (Δ = std/256), crest and, for weights, the ML GGD shape β of all of ``x``
    (``ggd_beta_at_bound``: the fit stopped at an end of ggd.BETA_FIT_RANGE).

    b* of a float32 site is close to log2 of its element count whenever its values are
    almost all distinct: it bounds what a lossless code needs, not what the task needs.
    """
    v = np.asarray(x, dtype=np.float32).ravel()
    if v.size == 0:
        raise EmptyInputError(f"information measures of an empty tensor {np.shape(x)}", value=tuple(np.shape(x)))
    supp = tier.support_size(v)  # NaN: NaNInputError
    amax = float(np.max(np.abs(v)))
    if not math.isfinite(amax):  # std, H_Δ and the crest have no value: say so rather than report none
        i = int(np.flatnonzero(~np.isfinite(v))[0])
        raise NonFiniteInputError(f"information measures: x has a non-finite value {v[i]!r} at flat index {i}",
                                  value=float(v[i]))
    std = float(np.std(v.astype(np.float64)))
    rec = {
        "elements": int(v.size),
        "support": int(supp),
        "natural_precision_bits": natural_precision(support_size=supp),
        "delta": std / DELTA_STD_DIVISOR if std > 0 else None,
        # H_Δ as the reference's discretized_entropy_bits composes it: the tier's histogram, then its entropy.
        "entropy_bits": tier.entropy_bits_from_counts(tier.discretized_histogram(v, std / DELTA_STD_DIVISOR).counts)
        if std > 0 else 0.0,
        "crest_bits": math.log2(amax / std) if std > 0 else None,
        "ggd_beta": None,
    }
    rec["ggd_beta_at_bound"] = False
    if is_weight and np.count_nonzero(v) >= 2:
        rec["ggd_beta"] = ggd.fit_ml(v, confidence=None).beta  # the report shows β̂, not its interval
        # At an end of the fit's range the data is not GGD-like (atoms, a flat top): say so, not a shape.
        rec["ggd_beta_at_bound"] = any(math.isclose(rec["ggd_beta"], b, rel_tol=1e-3) for b in ggd.BETA_FIT_RANGE)
    return rec


def format_measures(x: np.ndarray, fmt: SiteFormat, *, per_channel: bool, max_elements: int,
                    feature_axis: int = -1) -> dict:
    """DEF-SITE — δ and γ statistics of ``fmt`` on ``x`` (2-D view, full-tensor scales, sampled elements; codes and
    margins by ``fmt.tier``).

    Cells are (scale group, encoding) as in the reference's census (DEF-COLLISION-CENSUS): two values
    collide when they share a group and an encoding — so −0 and +0, distinct encodings of formats
    with a signed zero, never collide.  The scales are reductions of the whole tensor; the values the
    codebook sees, their codes, cells and margins are computed at the sampled positions only (the
    same numbers as scaling every element and sampling afterwards).  ``feature_axis``: an activation's
    feature axis (:func:`natprec.model.quantize.as_2d`).  NaN → NaNInputError, ±Inf →
    NonFiniteInputError, no element → EmptyInputError.
    """
    return _SampledSite(x, per_channel, max_elements, feature_axis).measures(fmt)


def format_measures_all(x: np.ndarray, fmts, *, per_channel: bool, max_elements: int,
                        feature_axis: int = -1) -> list[dict]:
    """DEF-SITE — :func:`format_measures` of every format in ``fmts`` on one site, in order: the 2-D view, the
    sample and the full-tensor reductions (max|x| per row, per tensor, per block …) are made once and shared."""
    site = _SampledSite(x, per_channel, max_elements, feature_axis)
    # The block and group maxima smallest first, so that larger blocks reduce them further (nvfp4's 16 → mxfp4's 32 …).
    for size in sorted({f.block.block_size if f.element is None else f.group for f in fmts
                        if (f.element is None and site.pair_scaled(f)) or (f.group and not f.asymmetric)}):
        site.absmax(size)
    return [site.measures(f) for f in fmts]


#: Block formats whose scaled value of an element depends only on the element, its block's max|x| and the tensor's
#: max|x| (DEF-FORMAT-BLOCK-ABSMAX with blocks along the last axis, DEF-FORMAT-MX, DEF-FORMAT-NVFP4).
_PAIR_SCALED = (AbsmaxBlockFormat, MXFormat, NVFP4Format)
_ABS = np.uint32(0x7FFFFFFF)
_MAX_FINITE_BITS = np.uint32(0x7F7FFFFF)  # float32 bits above this (cleared sign) are ±Inf or NaN


def _by_groups(a2: np.ndarray, size: int, op) -> np.ndarray:
    """``op`` over each run of ``size`` columns of every row of ``a2`` (the last run of a row partial): (rows, ⌈n/size⌉)."""
    return op.reduceat(a2, np.arange(0, a2.shape[1], size), axis=1)


class _SampledSite:
    """One site's 2-D view, its sampled positions and the full-tensor reductions its formats' scales need (cached
    here, per object: a call of :func:`format_measures` or :func:`format_measures_all` makes its own)."""

    def __init__(self, x, per_channel: bool, max_elements: int, feature_axis: int):
        x32 = np.asarray(x, dtype=np.float32)
        self.per_channel = per_channel
        self.x2 = as_2d(x32, per_channel, feature_axis)
        self.rows, self.n = self.x2.shape
        if self.x2.size == 0:
            raise EmptyInputError(f"format measures of an empty tensor {x32.shape}", value=tuple(x32.shape))
        # |x| as float32 bits: non-negative floats order as their bits; NaN and ±Inf are the bits above FLT_MAX's.
        self.abs_bits = np.bitwise_and(self.x2.view(np.uint32), _ABS)
        self.row_amax_bits = self.abs_bits.max(axis=1)
        if self.row_amax_bits.max() > _MAX_FINITE_BITS:
            flat = x32.ravel()
            nan = np.flatnonzero(np.isnan(flat))
            if nan.size:
                raise NaNInputError(f"format measures: x contains NaN at flat index {nan[0]}", value=int(nan[0]))
            i = int(np.flatnonzero(~np.isfinite(flat))[0])
            raise NonFiniteInputError(f"format measures: x has a non-finite value {flat[i]!r} at flat index {i}",
                                      value=float(flat[i]))
        idx = _sample_index(self.x2.size, max_elements)
        self.pos = np.arange(self.x2.size) if idx is None else idx
        self.r, self.c = np.divmod(self.pos, self.n)
        xs = self.x2[self.r, self.c]
        # The census is by value: −0.0 is +0.0 before quantizing, as in the reference.
        self.xs = np.where(xs == 0, np.float32(0), xs)
        self._cache: dict = {}

    def _cached(self, key, make):
        if key not in self._cache:
            self._cache[key] = make()
        return self._cache[key]

    def absmax(self, size: int | None) -> np.ndarray:
        """float32 max|x| of each scale group, indexed by group id: per row (per_channel) or the tensor (size None),
        or per ``size`` elements of a row."""
        if size is not None:
            bits = self._cached(("absmax", size), lambda: self._absmax_bits(size))
        elif self.per_channel:
            bits = self.row_amax_bits
        else:
            bits = self._cached(("absmax", None), lambda: self.row_amax_bits.max(keepdims=True))
        return bits.view(np.float32)

    def _absmax_bits(self, size: int) -> np.ndarray:
        """The bits of max|x| per ``size`` elements of a row: from a cached reduction over a divisor of ``size`` where
        there is one (its groups tile each group of ``size``, partial last groups included; max is associative)."""
        base = max((k[1] for k in self._cache if k[0] == "absmax" and k[1] and k[1] < size and size % k[1] == 0), default=None)
        if base is None:
            return _by_groups(self.abs_bits, size, np.maximum).ravel()
        return _by_groups(self._cache[("absmax", base)].reshape(self.rows, -1), size // base, np.maximum).ravel()

    def _range(self, size: int | None) -> tuple[np.ndarray, np.ndarray]:
        """float32 (min, max) of each scale group, indexed by group id (a −0.0 reported as +0.0, as the census reads it)."""
        def make():
            if size is not None:
                lo, hi = (_by_groups(self.x2, size, op).ravel() for op in (np.minimum, np.maximum))
            elif self.per_channel:
                lo, hi = self.x2.min(axis=1), self.x2.max(axis=1)
            else:
                lo, hi = self.x2.min(keepdims=True).ravel(), self.x2.max(keepdims=True).ravel()
            return lo + np.float32(0), hi + np.float32(0)  # −0.0 + 0.0 = +0.0; every other value unchanged
        return self._cached(("range", size), make)

    def _groups(self, size: int | None) -> np.ndarray:
        """The scale group id of every sampled element, numbered as SiteFormat.element_view numbers them."""
        if size is not None:
            return self.r * -(-self.n // size) + self.c // size
        return self.r if self.per_channel else np.zeros(self.pos.size, np.int64)

    def _pairs(self, size: int | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(pair, counts, pair_group) of the sample's distinct (scale group, value) pairs: each element's pair, how
        often each pair occurs and its group.  Shared by every format with these scale groups: a value
        has one code in its group, so these pairs are the census's distinct (cell, value) pairs, with their counts."""
        def make():
            g = self._groups(size)
            gk = g if int(g.max()) < 1 << 31 else np.unique(g, return_inverse=True)[1].astype(np.int64)
            keys = (gk << 32) | self.xs.view(np.uint32).astype(np.int64)  # −0 is +0 already: pairs by value
            _, pair, counts = np.unique(keys, return_inverse=True, return_counts=True)
            pair_group = np.empty(counts.size, np.int64)
            pair_group[pair] = g
            return pair, counts.astype(np.int64), pair_group
        return self._cached(("pairs", size), make)

    def pair_scaled(self, fmt: SiteFormat) -> bool:
        """Whether an element's scaled value is a function of its value and its block (the block format has one of the
        scalings of _PAIR_SCALED, blocks along the rows)."""
        block = fmt.block
        return type(block) in _PAIR_SCALED and getattr(block, "layout", "last_axis") == "last_axis" and block.block_size >= 2

    def view(self, fmt: SiteFormat) -> np.ndarray:
        """y of SiteFormat.element_view at the sampled positions, scales from the whole tensor."""
        if fmt.element is not None:
            g = self._groups(fmt.group)
            if fmt.asymmetric:
                s, z = fmt.group_zero_points(*self._range(fmt.group))
                return np.divide(self.xs, s[g], dtype=np.float32).astype(np.float64) + z[g]
            return np.divide(self.xs, fmt.group_scales(self.absmax(fmt.group))[g], dtype=np.float32)
        if self.pair_scaled(fmt):
            # Each sampled element beside its block's max|x| is a block of two with that block's scale; a last row
            # of the tensor's max|x| twice gives the tensor-level constants (NVFP4's S_enc) of the whole tensor.
            size = fmt.block.block_size
            g = self._groups(size)
            pairs = np.empty((g.size + 1, 2), np.float32)
            pairs[:-1, 0], pairs[:-1, 1] = self.xs, self.absmax(size)[g]
            pairs[-1] = self.row_amax_bits.max().view(np.float32)
            return np.asarray(fmt.block.scaled(pairs))[:-1, 0]
        # Any other block format: scale every element, then sample.
        return fmt.element_view(np.where(self.x2 == 0, np.float32(0), self.x2), True)[0].ravel()[self.pos]

    def measures(self, fmt: SiteFormat) -> dict:
        y = self.view(fmt)
        el = fmt.codebook_format
        code = fmt.tier.quantize(y, el, saturate=True).astype(np.int64)
        if fmt.element is not None or self.pair_scaled(fmt):
            pair, counts, pair_group = self._pairs(fmt.group if fmt.element is not None else fmt.block.block_size)
            pair_code = np.empty(counts.size, np.int64)
            pair_code[pair] = code  # every element of a pair has its code
            cells = pair_group * (1 << el.nbits) + pair_code  # cell = (scale group, encoding)
            if pair_group[0] == pair_group[-1] and el.nbits <= 16:
                # One scale group: the pairs in cell order (a radix sort of 16-bit codes), which the census's stable
                # sort by cell then finds in order.  δ sums over cells: the pairs' order does not change it.
                order = np.argsort(pair_code.astype(np.uint16), kind="stable")
                counts, cells = counts[order], cells[order]
        else:  # a scaling that need not be one per group: the distinct (cell, value) pairs of the sample themselves
            cell = np.unique(self._groups(fmt.block.block_size) * (1 << el.nbits) + code, return_inverse=True)[1]
            keys, counts = np.unique((cell.astype(np.int64) << 32) | self.xs.view(np.uint32).astype(np.int64),
                                     return_counts=True)
            counts, cells = counts.astype(np.int64), keys >> 32  # cells relabelled densely: δ does not depend on labels
        delta = collision_probability(counts, cells)
        gamma = fmt.tier.voronoi_margin(y, el.codebook)
        # np.histogram of γ clipped to [0, last edge]: bins [e_i, e_i+1), the last one closed, from the counts ≥ e_i.
        clipped = np.clip(gamma, 0, MARGIN_BINS[-1])
        at_least = np.array([np.count_nonzero(clipped >= e) for e in MARGIN_BINS[:-1]], np.int64)
        hist = at_least - np.append(at_least[1:], 0)
        return {
            "format": fmt.name,
            "collision_probability": float(delta),
            "min_margin": float(gamma.min()),
            "median_margin": float(np.median(gamma)),
            "measured_elements": int(y.size),
            "margin_histogram": hist.tolist(),
        }
