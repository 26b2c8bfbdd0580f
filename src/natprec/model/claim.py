"""DEF-CLAIM-TEST — does the information a site holds predict the precision it needs?

For each tolerance ε, over the sites measured without error: the Spearman rank correlation
with the operational b*_v(ε) (DEF-OPERATIONAL-PRECISION-SITE) of the two information-derived
precisions at the site's resolution (DEF-INFORMATION-PRECISION) — the entropy b_H,v(ε) and the
natural precision of the support b*_Δ,v(ε) — each with a seeded percentile-bootstrap interval
over sites and how close its bits come; the same ρ for the task-free measures (whole-site b*,
H at std/256) as a control; ρ per site kind; the sites where ⌈b_H⌉ and b*_v differ by 2 bits or
more; and whether the excess b*_v − b_H is explained by the crest log2(max|x|/std).
"""

from __future__ import annotations

import math

import numpy as np

from natprec.reference.errors import InvalidParameterError

__all__ = [
    "CLAIM_RESAMPLES",
    "CLAIM_SEED",
    "CLAIM_CONFIDENCE",
    "NONE_PASSES_BITS",
    "VERDICT_MIN_SITES",
    "DISAGREEMENT_BITS",
    "spearman",
    "spearman_interval",
    "claim_test",
    "verdict",
]

CLAIM_RESAMPLES = 2000
CLAIM_SEED = 0
CLAIM_CONFIDENCE = 0.95
#: b*_v(ε) when no int ≤ 8 passes (reported ">8"): ranked above every measured b.
NONE_PASSES_BITS = 9
#: Fewer sites than this get no verdict: a bootstrap over 3 or 4 pairs has too few distinct resamples to mean anything.
VERDICT_MIN_SITES = 5
#: |b*_v − ⌈b_H⌉| at or above which a site is listed as a disagreement.
DISAGREEMENT_BITS = 2


def _rank_corr(ra: np.ndarray, rb: np.ndarray) -> np.ndarray:
    """Pearson correlation of rank rows (last axis); NaN where either row is constant."""
    a = ra - ra.mean(axis=-1, keepdims=True)
    b = rb - rb.mean(axis=-1, keepdims=True)
    den = np.sqrt((a * a).sum(axis=-1) * (b * b).sum(axis=-1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, (a * b).sum(axis=-1) / np.where(den > 0, den, 1.0), np.nan)


def spearman(a, b) -> float | None:
    """DEF-CLAIM-TEST — Spearman ρ (average ranks for ties); None when either side is constant or n < 3."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise InvalidParameterError(f"spearman needs two 1-D arrays of one length; got {a.shape} and {b.shape}", value=(a.shape, b.shape))
    if a.size < 3 or not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        return None
    from scipy.stats import rankdata  # here, not at import: scipy.stats costs ~1 s to import

    r = float(_rank_corr(rankdata(a), rankdata(b)))
    return None if math.isnan(r) else r


def spearman_interval(a, b, *, resamples: int = CLAIM_RESAMPLES, confidence: float = CLAIM_CONFIDENCE,
                      seed: int = CLAIM_SEED) -> dict:
    """DEF-CLAIM-TEST — ρ and its percentile-bootstrap interval over pairs resampled with replacement.

    Resamples in which either side is constant have no ρ: they are dropped and counted in ``degenerate``.
    """
    rho = spearman(a, b)
    out = {"n": int(np.size(a)), "rho": rho, "low": None, "high": None, "confidence": confidence,
           "resamples": resamples, "degenerate": None}
    if rho is None:
        return out
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    idx = np.random.default_rng(seed).integers(0, a.size, size=(resamples, a.size))
    from scipy.stats import rankdata

    r = _rank_corr(rankdata(a[idx], axis=1), rankdata(b[idx], axis=1))
    ok = r[~np.isnan(r)]
    out["degenerate"] = int(r.size - ok.size)
    if ok.size:
        tail = (1 - confidence) / 2
        out["low"], out["high"] = (float(v) for v in np.quantile(ok, [tail, 1 - tail]))
    return out


def verdict(interval: dict) -> str:
    """DEF-CLAIM-TEST — the reading of a ρ interval: predicts (interval above 0), inverse (below 0), or no evidence."""
    if interval["n"] < VERDICT_MIN_SITES:
        return f"undetermined (fewer than {VERDICT_MIN_SITES} sites)"
    if interval["rho"] is None or interval["low"] is None:
        return "undetermined (one side constant)"
    if interval["low"] > 0:
        return "predicts the ranking (ρ > 0 at {:.0%})".format(interval["confidence"])
    if interval["high"] < 0:
        return "inverts the ranking (ρ < 0 at {:.0%})".format(interval["confidence"])
    return "no evidence of a rank relation at {:.0%}".format(interval["confidence"])


def _agreement(pred: np.ndarray, b: np.ndarray) -> dict:
    """ρ of a precision predictor against b*_v, its verdict, and how close the bits come (pred already in bits)."""
    iv = spearman_interval(pred, b)
    whole = np.ceil(pred)
    return {
        "interval": iv,
        "verdict": verdict(iv),
        "exact_agreement": float(np.mean(whole == b)) if b.size else None,
        "within_one_bit": float(np.mean(np.abs(whole - b) <= 1)) if b.size else None,
        "mean_excess_bits": float(np.mean(b - pred)) if b.size else None,
    }


def claim_test(sites: list[dict], tolerances) -> list[dict]:
    """DEF-CLAIM-TEST — one result per tolerance from the per-site records of ``measure``."""
    results = []
    for t in tolerances:
        used, excluded = [], []
        for s in sites:
            row = None
            if not s.get("error") and s.get("resolution"):
                row = next((r for r in s["resolution"]["by_tolerance"] if r["tolerance"] == t), None)
            if row is None or row["step_index"] is None:
                why = ("failed" if s.get("error") else "all-zero site" if "resolution" in s and s["resolution"] is None
                       else "no step of the grid meets ε" if row is not None else "not measured")
                excluded.append({"site": s["site"], "reason": why})
                continue
            b = row["b_star"] if row["b_star"] is not None else NONE_PASSES_BITS
            used.append((s, b, row["entropy_bits"], row["cells_bits"]))
        b = np.array([u[1] for u in used], dtype=np.float64)
        h = np.array([u[2] for u in used], dtype=np.float64)
        c = np.array([u[3] for u in used], dtype=np.float64)
        res = {"tolerance": t, "sites": len(used), "excluded": excluded}
        res["information"] = _agreement(h, b)
        res["support"] = _agreement(c, b)
        res["controls"] = {
            key: spearman_interval(np.array([u[0]["info"][key] if u[0]["info"][key] is not None else np.nan for u in used]), b)
            for key in ("natural_precision_bits", "entropy_bits")
        }
        res["by_kind"] = {k: {"information": spearman_interval(h[m], b[m]), "support": spearman_interval(c[m], b[m])}
                          for k in sorted({u[0]["kind"] for u in used})
                          if (m := np.array([u[0]["kind"] == k for u in used])).sum() >= 3}
        crest = np.array([u[0]["info"]["crest_bits"] for u in used], dtype=np.float64)
        res["excess_vs_crest"] = spearman_interval(b - h, crest)
        res["disagreements"] = sorted(
            ({"site": u[0]["site"], "kind": u[0]["kind"], "b_star": u[1], "information_bits": u[2], "support_bits": u[3],
              "excess_bits": u[1] - u[2], "crest_bits": u[0]["info"]["crest_bits"], "ggd_beta": u[0]["info"]["ggd_beta"]}
             for u in used if abs(u[1] - math.ceil(u[2])) >= DISAGREEMENT_BITS),
            key=lambda d: -abs(d["excess_bits"]))
        res["pairs"] = [{"site": u[0]["site"], "kind": u[0]["kind"], "b_star": u[1], "information_bits": u[2],
                         "support_bits": u[3]} for u in used]
        results.append(res)
    return results
