"""DEF-COLLISION-CENSUS, THM-INJECTIVITY, THM-INJECTIVITY-COROLLARY, DEF-COLLISION-PROBABILITY, DEF-TASK-MERGE.

Chapter: spec/03-injectivity.md.  A *cell* is what the quantizer stores for an
element: the encoding for element formats and codebooks, the pair (block, encoding)
for block formats.  Two realized values collide when they are distinct (by value)
and share a cell.  δ is computed from integer counts as an exact Fraction.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np

from ._domain import as_float_array, check_nan_policy, count_parameter, nan_mask, raise_on_nan, total_order_key
from .errors import EmptyInputError, InvalidParameterError, NonFiniteInputError, ProblemTooLargeError
from .support import _l2, realized_support

__all__ = [
    "Collision",
    "InjectivityReport",
    "injectivity_report",
    "collision_probability",
    "TaskMergeReport",
    "task_merge_check",
]


@dataclass(frozen=True)
class Collision:
    """One cell holding ≥ 2 distinct realized values (``values`` ascending, ``counts`` aligned)."""

    cell: tuple
    codeword: float
    values: np.ndarray
    counts: np.ndarray


@dataclass(frozen=True)
class InjectivityReport:
    """DEF-COLLISION-CENSUS — the census, the injectivity verdicts and δ of one format on one tensor."""

    format: str
    n_elements: int
    support_size: int
    codebook_size: int  # cells available: |C| (+1 for a separate −0 code), times the blocks for block formats
    cells_used: int
    injective: bool  # THM-INJECTIVITY: Q restricted to the support is one-to-one
    corollary: bool  # THM-INJECTIVITY-COROLLARY: |C| >= |supp| and every cell holds <= 1 value
    collisions: list = field(repr=False)
    colliding_values: int
    delta: Fraction  # DEF-COLLISION-PROBABILITY

    @property
    def delta_float(self) -> float:
        return float(self.delta)


def _grouped_delta(cell_sorted_counts: np.ndarray, group_starts: np.ndarray, n: int) -> Fraction:
    """Σ_cells [(Σ n_v)² − Σ n_v²] / N² with Python integers (exact at any size)."""
    if n == 0:
        raise EmptyInputError("δ of an empty sample is undefined", value=0)
    if n < 2**31:  # every square and sum below stays under 2**62: int64 is exact
        c = cell_sorted_counts.astype(np.int64)
        per_cell = np.add.reduceat(c, group_starts) if c.size else c
        num = int(np.dot(per_cell, per_cell)) - int(np.dot(c, c))
    else:
        c = cell_sorted_counts.astype(object)  # Python ints: exact for any N
        per_cell = np.add.reduceat(c, group_starts) if c.size else c
        num = int(sum(int(s) * int(s) for s in per_cell)) - int(sum(int(v) * int(v) for v in c))
    return Fraction(num, n * n)


def collision_probability(counts, cells) -> Fraction:
    """DEF-COLLISION-PROBABILITY — δ = Pr[cell(X1) = cell(X2), X1 ≠ X2], X1, X2 i.i.d. empirical.

    ``counts[i]`` is how often distinct value i occurs, ``cells[i]`` its cell (any integers).
    """
    counts = np.asarray(counts)
    cells = np.asarray(cells)
    if counts.shape != cells.shape or counts.ndim != 1:
        raise InvalidParameterError("counts and cells must be 1-D of equal length", value=(counts.shape, cells.shape))
    if counts.dtype.kind not in "iu" or (counts < 0).any():
        raise InvalidParameterError("counts must be non-negative integers", value=str(counts.dtype))
    order = np.argsort(cells, kind="stable")
    cs = cells[order]
    starts = np.flatnonzero(np.concatenate(([True], cs[1:] != cs[:-1]))) if cs.size else np.zeros(0, np.intp)
    return _grouped_delta(counts[order], starts, int(counts.sum(dtype=object)) if counts.size else 0)


def _cells_of_elements(arr, f, tie):
    """Cell id (int64) and reconstructed value (float64) of every element, flattened."""
    from .formats import ElementFormat

    if isinstance(f, ElementFormat):
        codes = f.quantize(arr, tie=tie, saturate=True).ravel()
        return codes.astype(np.int64), f.dequantize(codes)
    q = f.quantize(arr, tie=tie)
    length = q.codes.shape[-1]
    rows = q.codes.size // length
    block_id = np.arange(rows, dtype=np.int64)[:, None] * q.scales.shape[-1] + np.arange(length, dtype=np.int64) // f.block_size
    cell = (block_id << f.element.nbits) + q.codes.reshape(rows, length).astype(np.int64)
    return cell.ravel(), f.dequantize(q).ravel()


def injectivity_report(x, fmt, *, tie: str = "even", nan_policy: str = "raise", max_listed: int | None = None) -> InjectivityReport:
    """DEF-COLLISION-CENSUS — collisions of ``fmt`` on the realized support of ``x`` (by value).

    Element formats are applied saturating (overflow would map distinct values to
    one ±Inf/NaN code, which the census then counts like any other cell).
    ``nan_policy``: ``"raise"`` or ``"omit"``.  ``max_listed`` caps the listed
    collisions (largest first by element count); the counts are always complete.
    """
    from .formats import ElementFormat, resolve_format

    check_nan_policy(nan_policy, ("raise", "omit"))
    if max_listed is not None:
        max_listed = count_parameter("max_listed", max_listed)
    f = resolve_format(fmt)
    arr = as_float_array(x)
    nan = nan_mask(arr)
    if nan_policy == "raise":
        raise_on_nan(arr, "x", nan)
    else:
        arr = arr[~nan]  # omit always flattens, so block formats block the same way with or without NaNs
    if arr.size == 0:
        raise EmptyInputError("injectivity of an empty tensor is undefined", value=arr.shape)
    if arr.ndim == 0:
        arr = arr.reshape(1)
    # The support is by value, so −0.0 is +0.0 here too (else a signed-zero format would
    # put one realized value in two cells).
    arr = np.where(arr == 0, np.zeros_like(arr), arr)
    cell, recon = _cells_of_elements(arr, f, tie)
    flat = arr.ravel()
    key = total_order_key(flat).astype(np.uint64)
    order = np.lexsort((key, cell))
    cs, ks = cell[order], key[order]
    new_pair = np.concatenate(([True], (cs[1:] != cs[:-1]) | (ks[1:] != ks[:-1])))
    pair_starts = np.flatnonzero(new_pair)
    pair_counts = np.diff(np.append(pair_starts, cs.size)).astype(np.int64)
    pair_cells = cs[pair_starts]
    pair_vals = flat[order][pair_starts]
    pair_recon = recon[order][pair_starts]
    cell_new = np.concatenate(([True], pair_cells[1:] != pair_cells[:-1]))
    cell_starts = np.flatnonzero(cell_new)
    values_per_cell = np.diff(np.append(cell_starts, pair_cells.size))
    delta = _grouped_delta(pair_counts, cell_starts, int(flat.size))
    multi = np.flatnonzero(values_per_cell > 1)
    sizes = np.add.reduceat(pair_counts, cell_starts)[multi] if multi.size else np.zeros(0, np.int64)
    listing = multi[np.argsort(-sizes, kind="stable")]
    if max_listed is not None:
        listing = listing[:max_listed]
    collisions = []
    for ci in listing:
        a, b = cell_starts[ci], cell_starts[ci] + values_per_cell[ci]
        cid = int(pair_cells[a])
        collisions.append(
            Collision(
                cell=(cid,),
                codeword=float(pair_recon[a]),
                values=pair_vals[a:b].copy(),
                counts=pair_counts[a:b].copy(),
            )
        )
    support = realized_support(arr, nan_policy="raise")
    el = f if isinstance(f, ElementFormat) else f.element
    size = len(el.codebook) + (1 if el.signed_zero and el.zero_index >= 0 else 0)  # −0 is a cell of its own
    if not isinstance(f, ElementFormat):  # every block has its own copy of the element's cells
        size *= int(np.ceil(arr.shape[-1] / f.block_size)) * (arr.size // arr.shape[-1])
    injective = bool(multi.size == 0)
    return InjectivityReport(
        format=f.name,
        n_elements=int(flat.size),
        support_size=support.size,
        codebook_size=size,
        cells_used=int(cell_starts.size),
        injective=injective,
        corollary=bool(size >= support.size and multi.size == 0),
        collisions=collisions,
        colliding_values=int(values_per_cell[multi].sum()) if multi.size else 0,
        delta=delta,
    )


@dataclass(frozen=True)
class TaskMergeReport:
    """DEF-TASK-MERGE — whether every merge made by Q is task-equivalent at tolerance τ."""

    ok: bool
    pairs_checked: int
    worst_distance: float
    worst_pair: tuple | None


def task_merge_check(
    x,
    fmt,
    downstream: Callable[[np.ndarray], np.ndarray],
    tolerance: float,
    *,
    metric: Callable | None = None,
    tie: str = "even",
    assume_monotone: bool = False,
    max_pairs: int = 10_000_000,
) -> TaskMergeReport:
    """DEF-TASK-MERGE — Prop. 3(2): Q merges only pairs with ℓ(G(z1), G(z2)) ≤ τ.

    Checks every pair of distinct realized values sharing a cell.  With
    ``assume_monotone=True`` (G monotone, ℓ = |·|) only each cell's extreme pair is
    checked, which is equivalent.  More than ``max_pairs`` pairs raises
    ProblemTooLargeError instead of running for hours.
    """
    tau = float(tolerance)
    if not np.isfinite(tau) or tau < 0:
        raise InvalidParameterError(f"tolerance must be finite and >= 0; got {tolerance!r}", value=tolerance)
    rep = injectivity_report(x, fmt, tie=tie)
    dist = metric or _l2
    if assume_monotone:
        groups = [c.values[[0, -1]] for c in rep.collisions]
        npairs = len(groups)
    else:
        groups = [c.values for c in rep.collisions]
        npairs = sum(len(g) * (len(g) - 1) // 2 for g in groups)
    if npairs > max_pairs:
        raise ProblemTooLargeError(
            f"{npairs} merged pairs exceed max_pairs={max_pairs}; pass assume_monotone=True if G is monotone",
            value=npairs,
        )
    worst, worst_pair, checked = 0.0, None, 0
    for g in groups:
        z = g.astype(np.float64)
        out = np.asarray(downstream(z))
        if out.shape[:1] != (z.size,) or not np.all(np.isfinite(out)):
            raise NonFiniteInputError(f"downstream output for values {z.tolist()[:4]}… is malformed or non-finite", value=z[0])
        for i in range(z.size):
            for j in range(i + 1, z.size):
                d = dist(out[i], out[j])
                checked += 1
                if d > worst or worst_pair is None:
                    worst, worst_pair = d, (float(z[i]), float(z[j]))
    return TaskMergeReport(ok=bool(worst <= tau), pairs_checked=checked, worst_distance=float(worst), worst_pair=worst_pair)
