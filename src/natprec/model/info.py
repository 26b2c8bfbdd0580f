"""DEF-SITE — per-site information measures from the reference tier, next to b*_v(ε).

On the whole site (weights: every element; activations: every real position of every
calibration batch): support size and b* (DEF-SUPPORT, DEF-NATURAL-PRECISION), H_Δ at
Δ = std/256 (DEF-ENTROPY-DISCRETIZED), the crest log2(max|x|/std) and, for weights, the ML
GGD shape β (DEF-RD-GGD-FIT).  For each candidate format, the collision probability δ
(DEF-COLLISION-PROBABILITY) and the Voronoi margins γ (DEF-MARGIN) of the values the element
codebook sees, with the scales computed on the full tensor, on a seeded uniform sample of
at most ``max_elements`` elements (``measured_elements`` says how many).

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
from natprec.reference import collision_probability, ggd, natural_precision

from .quantize import SiteFormat

__all__ = ["tensor_measures", "format_measures", "MARGIN_BINS", "SAMPLE_SEED"]

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
    supp = tier.support_size(v)
    std = float(np.std(v.astype(np.float64)))
    amax = float(np.max(np.abs(v)))
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


def format_measures(x: np.ndarray, fmt: SiteFormat, *, per_channel: bool, max_elements: int) -> dict:
    """DEF-SITE — δ and γ statistics of ``fmt`` on ``x`` (2-D view, full-tensor scales, sampled elements; codes and
    margins by ``fmt.tier``).

    Cells are (scale group, encoding) as in the reference's census (DEF-COLLISION-CENSUS): two values
    collide when they share a group and an encoding — so −0 and +0, distinct encodings of formats
    with a signed zero, never collide.
    """
    x32 = np.asarray(x, dtype=np.float32)
    x32 = np.where(x32 == 0, np.float32(0), x32)  # the census is by value: −0.0 is +0.0 before quantizing, as in the reference
    y, group = fmt.element_view(x32, per_channel)
    xs = x32.reshape(y.shape).ravel()
    y, group = y.ravel(), group.ravel()
    idx = _sample_index(y.size, max_elements)
    if idx is not None:
        xs, y, group = xs[idx], y[idx], group[idx]
    el = fmt.codebook_format
    cb = el.codebook
    code = fmt.tier.quantize(y, el, saturate=True).astype(np.int64)
    cell = group * (1 << el.nbits) + code
    if cell.size and int(cell.max()) >= 1 << 31:  # relabel the cells densely (δ does not depend on their labels)
        cell = np.unique(cell, return_inverse=True)[1].astype(np.int64)
    # Distinct (cell, value) pairs as one int64 key: the cell above the float32 bit pattern (−0 is +0 already).
    pairs, counts = np.unique((cell << 32) | xs.view(np.uint32).astype(np.int64), return_counts=True)
    delta = collision_probability(counts.astype(np.int64), pairs >> 32)
    gamma = fmt.tier.voronoi_margin(y, cb)
    hist, _ = np.histogram(np.clip(gamma, 0, MARGIN_BINS[-1]), bins=MARGIN_BINS)
    return {
        "format": fmt.name,
        "collision_probability": float(delta),
        "min_margin": float(gamma.min()),
        "median_margin": float(np.median(gamma)),
        "measured_elements": int(y.size),
        "margin_histogram": hist.tolist(),
    }
