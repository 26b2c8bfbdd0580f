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

from ._domain import CHUNK_ELEMENTS, as_float_array, check_nan_policy, chunks, count_parameter, nan_mask, raise_on_nan, total_order_key
from .errors import EmptyInputError, InvalidParameterError, NonFiniteInputError, ProblemTooLargeError
from .support import _l2, _run_lengths, _run_starts, support_size

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


def _delta_numerator(cell_sorted_counts: np.ndarray, group_starts: np.ndarray, n: int) -> int:
    """Σ_cells [(Σ n_v)² − Σ n_v²] with Python integers (exact at any size); ``n`` = Σ counts."""
    if n < 2**31:  # every square and sum below stays under 2**62: int64 is exact
        c = cell_sorted_counts.astype(np.int64, copy=False)
        per_cell = np.add.reduceat(c, group_starts) if c.size else c
        return int(np.dot(per_cell, per_cell)) - int(np.dot(c, c))
    c = cell_sorted_counts.astype(object)  # Python ints: exact for any N
    per_cell = np.add.reduceat(c, group_starts) if c.size else c
    return int(sum(int(s) * int(s) for s in per_cell)) - int(sum(int(v) * int(v) for v in c))


def _grouped_delta(cell_sorted_counts: np.ndarray, group_starts: np.ndarray, n: int) -> Fraction:
    """Σ_cells [(Σ n_v)² − Σ n_v²] / N² as an exact Fraction."""
    if n == 0:
        raise EmptyInputError("δ of an empty sample is undefined", value=0)
    return Fraction(_delta_numerator(cell_sorted_counts, group_starts, n), n * n)


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


@dataclass
class _Census:
    """Running totals of a census over (cell, value) pairs fed in cell-contiguous batches."""

    keep: int | None = None  # how many collisions to list (None: all); only those are materialised
    num: int = 0
    cells_used: int = 0
    colliding_values: int = 0
    candidates: list = field(default_factory=list)  # (size, cell id, values, counts, codeword) of collisions

    def add(self, cells: np.ndarray, values: np.ndarray, counts: np.ndarray, codeword) -> None:
        """Pairs sorted by (cell, value), each cell one run; ``codeword(i)`` decodes the cell of pair i."""
        if cells.size == 0:
            return
        first = np.empty(cells.size, dtype=bool)
        first[0] = True
        np.not_equal(cells[1:], cells[:-1], out=first[1:])
        starts = np.flatnonzero(first)
        per_cell = np.diff(starts, append=cells.size)
        self.num += _delta_numerator(counts, starts, int(counts.sum()))
        self.cells_used += int(starts.size)
        multi = np.flatnonzero(per_cell > 1)
        if multi.size:
            self.colliding_values += int(per_cell[multi].sum())
            sizes = np.add.reduceat(counts, starts)[multi]
            ids = cells[starts[multi]].astype(np.int64)
            pick = np.lexsort((ids, -sizes))[: self.keep]  # largest first, then by cell: this batch's best
            for j in pick.tolist():
                a, k = int(starts[multi[j]]), int(per_cell[multi[j]])
                self.candidates.append((int(sizes[j]), int(ids[j]), values[a:a + k].copy(), counts[a:a + k].copy(), codeword(a)))
            if self.keep is not None:
                self.candidates = sorted(self.candidates, key=lambda cand: (-cand[0], cand[1]))[: self.keep]


def _element_cells(f, values: np.ndarray, tie: str) -> np.ndarray:
    """DEF-COLLISION-CENSUS — the cell (int64 encoding) of each value under an element format, by value.

    Saturating, and −0.0 is quantized as +0.0, so the value 0 is one cell; negative values that
    round to zero keep the −0 code.  The census and the erasure (DEF-ERASED-INFORMATION) both use it.
    """
    return f.quantize(np.where(values == 0, np.zeros_like(values), values), tie=tie, saturate=True).astype(np.int64)


def _block_cell_pairs(arr: np.ndarray, f, tie: str):
    """DEF-COLLISION-CENSUS — the (cell, value) pairs of a block format, one rectangle of whole blocks at a time.

    Yields ``(cells, values, counts, context)`` per rectangle: the distinct (cell, value) pairs sorted
    by (cell, value), a cell the integer (block << element nbits) + encoding, each value by value
    (−0.0 as +0.0, which takes +0's encoding), ``counts`` their int64 multiplicities.  A cell never
    spans two rectangles.  ``context`` = (q, codes, scales, at): what decodes pair i's codeword.
    """
    q = f.quantize(arr, tie=tie)
    length = q.codes.shape[-1]
    rows = q.codes.size // length
    nb = q.scales.shape[-1]
    codes, values, scales = q.codes.reshape(rows, length), arr.reshape(rows, length), q.scales.reshape(rows, nb)
    el = f.element
    sign = el.code_dtype(1 << el.sign_bit) if el.signed_zero and el.zero_index >= 0 else None
    bs = f.block_size
    width = max(bs, CHUNK_ELEMENTS // bs * bs)  # whole blocks: a cell never spans two chunks
    for c0 in range(0, length, width):
        c1 = min(length, c0 + width)
        step = max(1, CHUNK_ELEMENTS // (c1 - c0))
        for r0 in range(0, rows, step):
            r1 = min(rows, r0 + step)
            block = np.arange(r0, r1, dtype=np.int64)[:, None] * nb + np.arange(c0, c1, dtype=np.int64) // bs
            rv = values[r0:r1, c0:c1]
            zero = rv == 0
            v = np.where(zero, np.zeros_like(rv), rv)  # by value: −0.0 is +0.0, so it takes +0's encoding
            rc = codes[r0:r1, c0:c1]
            c = rc if sign is None else np.where(zero, rc & ~sign, rc)
            cell = ((block << el.nbits) + c.astype(np.int64)).ravel()
            flat = v.ravel()
            key = total_order_key(flat)
            order = np.lexsort((key, cell))
            cs, ks = cell[order], key[order]
            pairs = np.flatnonzero(np.concatenate(([True], (cs[1:] != cs[:-1]) | (ks[1:] != ks[:-1]))))
            counts = np.diff(pairs, append=cs.size).astype(np.int64)
            at = order[pairs]
            yield cs[pairs], flat[at], counts, (q, c, scales[r0:r1, c0 // bs:-(-c1 // bs)], at)


def _element_census(arr: np.ndarray, f, tie: str, keep: int | None) -> tuple[_Census, int]:
    """Element formats: the quantizer is monotone, so a cell is a contiguous range of the sorted input.
    One pass over the sorted copy, a chunk at a time, sums each cell; only the listed cells' values and
    counts are formed, at the end, from their ranges."""
    s = np.sort(arr.ravel())  # by value: −0.0 and +0.0 are one value, adjacent here
    exact64 = s.size < 2**31  # then every count, square and sum below fits int64
    census = _Census(keep)
    listed = []  # (count, code, first index) of colliding cells that may be listed
    open_cell = None  # [code, first index, count, Σ n_v², distinct values] of the cell the pass is in
    carry = None  # [value, length] of the run the pass is in
    support = 0
    pos = 0  # index in s where the next finished run starts

    def finish(cells):
        nonlocal listed
        code, first, count, squares, distinct = (np.asarray(c) for c in cells)
        if exact64:
            census.num += int(np.dot(count, count)) - int(squares.sum())
        else:
            census.num += sum(int(c) * int(c) for c in count.tolist()) - sum(int(q) for q in squares.tolist())
        census.cells_used += int(count.size)
        multi = distinct > 1
        census.colliding_values += int(distinct[multi].sum())
        listed += list(zip((-count[multi]).tolist(), code[multi].tolist(), first[multi].tolist()))
        if keep is not None and len(listed) > 4 * keep + 64:
            listed = sorted(listed)[:keep]

    def runs(values, lengths):
        # Finished runs, in order: their codes split them into cells; the last cell stays open.
        nonlocal open_cell, pos
        codes = _element_cells(f, values, tie)
        lengths = lengths.astype(np.int64) if exact64 else lengths.astype(object)
        new = np.concatenate(([True], codes[1:] != codes[:-1]))
        g = np.flatnonzero(new)
        firsts = pos + np.concatenate(([0], np.cumsum(lengths)[:-1]))[g]
        cells = [codes[g], firsts, np.add.reduceat(lengths, g), np.add.reduceat(lengths * lengths, g),
                 np.diff(g, append=codes.size)]
        if open_cell is not None and open_cell[0] == cells[0][0]:  # the open cell goes on
            cells[1][0] = open_cell[1]
            for k in (2, 3, 4):
                cells[k][0] += open_cell[k]
        elif open_cell is not None:
            finish([[v] for v in open_cell])
        finish([c[:-1] for c in cells])
        open_cell = [c[-1] for c in cells]
        pos += int(lengths.sum())

    for sl in chunks(s.size):
        part = s[sl]
        if part.size == 0:
            continue
        first = np.empty(part.size, dtype=bool)
        first[0] = carry is None or part[0] != carry[0]
        np.not_equal(part[1:], part[:-1], out=first[1:])
        starts = np.flatnonzero(first)
        if carry is not None and not first[0]:  # the open run continues into this chunk
            carry[1] += int(starts[0]) if starts.size else part.size
        if starts.size == 0:
            continue
        lengths = np.diff(starts, append=part.size)
        if carry is not None:
            values = np.concatenate(([carry[0]], part[starts[:-1]]))
            done = np.concatenate(([carry[1]], lengths[:-1]))
        else:
            values, done = part[starts[:-1]], lengths[:-1]
        if values.size:
            runs(values, done)
        carry = [part[starts[-1]], int(lengths[-1])]
        support += int(starts.size)
    if carry is not None:
        runs(np.asarray([carry[0]], dtype=s.dtype), np.asarray([carry[1]]))
        finish([[v] for v in open_cell])
    for neg_count, code, first in sorted(listed)[:keep]:
        part = s[first:first - neg_count]
        starts = _run_starts(part)
        vals = part[starts]
        vals[vals == 0] = 0  # the zero run is reported as +0.0
        cw = float(f.dequantize(np.asarray([code], dtype=f.code_dtype))[0])
        census.candidates.append((-neg_count, code, vals, _run_lengths(starts), cw))
    return census, support


def _block_census(arr: np.ndarray, f, tie: str, keep: int | None) -> tuple[_Census, int]:
    """Block formats: cells are (block, encoding) and never span blocks, so rectangles of whole blocks go in chunks."""
    from .formats import BlockQuantized

    census = _Census(keep)
    for cells, values, counts, (q, c, scales, at) in _block_cell_pairs(arr, f, tie):
        decoded = []  # this rectangle's reconstructions, decoded once and only if a listed collision needs one

        def codeword(i, q=q, c=c, scales=scales, at=at, decoded=decoded):
            if not decoded:
                decoded.append(f.dequantize(BlockQuantized(f.name, c, scales, q.tensor_scale, c.shape, f.block_size)).ravel())
            return float(decoded[0][at[i]])

        census.add(cells, values, counts, codeword)
    return census, support_size(arr)


def _census_input(x, nan_policy: str, what: str) -> np.ndarray:
    """x as the census reads it (``nan_policy`` already checked): NaNs raised or omitted, non-empty, at least 1-D."""
    arr = as_float_array(x)
    nan = nan_mask(arr)
    if nan_policy == "raise":
        raise_on_nan(arr, "x", nan)
    else:
        arr = arr[~nan]  # omit always flattens, so block formats block the same way with or without NaNs
    if arr.size == 0:
        raise EmptyInputError(f"{what} of an empty tensor is undefined", value=arr.shape)
    return arr.reshape(1) if arr.ndim == 0 else arr


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
    arr = _census_input(x, nan_policy, "injectivity")
    # The support is by value, so −0.0 is +0.0 here too (else a signed-zero format would
    # put one realized value in two cells); each census quantizes with that in mind.
    census, supp = (_element_census if isinstance(f, ElementFormat) else _block_census)(arr, f, tie, max_listed)
    listed = sorted(census.candidates, key=lambda cand: (-cand[0], cand[1]))  # largest first, then by cell
    collisions = [Collision(cell=(cid,), codeword=cw, values=vals, counts=cnt) for _, cid, vals, cnt, cw in listed]
    el = f if isinstance(f, ElementFormat) else f.element
    size = len(el.codebook) + (1 if el.signed_zero and el.zero_index >= 0 else 0)  # −0 is a cell of its own
    if not isinstance(f, ElementFormat):  # every block has its own copy of the element's cells
        size *= int(np.ceil(arr.shape[-1] / f.block_size)) * (arr.size // arr.shape[-1])
    injective = census.colliding_values == 0
    n = int(arr.size)
    return InjectivityReport(
        format=f.name,
        n_elements=n,
        support_size=supp,
        codebook_size=size,
        cells_used=census.cells_used,
        injective=injective,
        corollary=bool(size >= supp and injective),
        collisions=collisions,
        colliding_values=census.colliding_values,
        delta=Fraction(census.num, n * n),
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
