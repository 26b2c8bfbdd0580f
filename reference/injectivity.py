"""DEF-COLLISION-CENSUS, THM-INJECTIVITY, THM-INJECTIVITY-COROLLARY, DEF-COLLISION-PROBABILITY, DEF-TASK-MERGE.

Chapter: spec/03-injectivity.md.  A *cell* is what the quantizer stores for an
element: the encoding for element formats and codebooks, the pair (block, encoding)
for block formats.  Two realized values collide when they are distinct (by value)
and share a cell.  δ is computed from integer counts as an exact Fraction.

``injectivity_report`` is ``execute_injectivity(prepare_injectivity(...))``.  A tier that
computes the (cell, value) pairs itself hands them, as :class:`CellPairs` batches, to
:func:`finish_census`, which is where δ, the counts, the verdicts and the listing are made.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np

from ._domain import (
    CHUNK_ELEMENTS,
    as_float_array,
    check_nan_policy,
    chunks,
    count_parameter,
    from_total_order_key,
    layout_of,
    nan_mask,
    raise_on_nan,
    total_order_key,
)
from .errors import EmptyInputError, InvalidParameterError, NonFiniteInputError, ProblemTooLargeError
from .formats import (
    BlockInputPlan,
    BlockQuantized,
    ElementFormat,
    QuantizePlan,
    execute_quantize,
    prepare_block_input,
    prepare_quantize,
    resolve_format,
)
from .support import _l2, _run_lengths, _run_starts, support_size

__all__ = [
    "DEFAULT_MAX_LISTED",
    "Collision",
    "InjectivityReport",
    "InjectivityPlan",
    "CellPairs",
    "prepare_injectivity",
    "execute_injectivity",
    "finish_census",
    "injectivity_report",
    "collision_probability",
    "TaskMergeReport",
    "task_merge_check",
]

#: DEF-COLLISION-CENSUS — collisions listed by default: the 16 with the most elements (ties: the lower cell id first).
DEFAULT_MAX_LISTED = 16


@dataclass(frozen=True)
class Collision:
    """One cell holding ≥ 2 distinct realized values (``values`` ascending, ``counts`` aligned; both read-only)."""

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


# ---------------------------------------------------------------------------------------------------------------------
# The plan, the tier's intermediate (CellPairs) and the reference's finish.
# ---------------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class InjectivityPlan:
    """DEF-COLLISION-CENSUS — a census whose checks have all passed.

    ``format``: the resolved format; ``x``: the input as the census reads it (DEF-DOMAIN, its own
    dtype; NaNs raised, or dropped under ``"omit"``, which flattens; non-empty; at least 1-D);
    ``tie``; ``max_listed``: how many collisions are listed (None: all); ``codebook_size``: n_cells
    (THM-INJECTIVITY-COROLLARY).  An element format carries ``element``, its saturating QuantizePlan
    on an empty array of x's dtype (the thresholds for ``tie``); a block format carries
    ``block_input``, the BlockInputPlan of x (float32, finite: every check of its quantization passed).
    """

    format: object
    x: np.ndarray
    tie: str
    max_listed: int | None
    codebook_size: int
    element: QuantizePlan | None
    block_input: BlockInputPlan | None


@dataclass(frozen=True)
class CellPairs:
    """DEF-COLLISION-CENSUS — a batch of distinct (cell, value) pairs and their counts: what a tier hands :func:`finish_census`.

    ``cells``: int64 cell ids — an element format's saturating encoding of the value (−0.0
    quantized as +0.0); a block format's ``(block << element.nbits) + encoding``, block = row ·
    blocks per row + the block's place in its row (rows: x reshaped to (-1, last axis)), the
    encoding of an element equal to 0 taken without its sign bit.  ``values``: the distinct
    values, in x's dtype and by value (0 given as +0.0), ascending within a cell.  ``counts``:
    int64 multiplicities, each ≥ 1.  The pairs of a cell are adjacent, and all in one batch.
    """

    cells: np.ndarray
    values: np.ndarray
    counts: np.ndarray


def prepare_injectivity(x, fmt, *, tie: str = "even", nan_policy: str = "raise",
                        max_listed: int | None = DEFAULT_MAX_LISTED) -> InjectivityPlan:
    """DEF-COLLISION-CENSUS — every check of :func:`injectivity_report`, in its order; the format resolved once."""
    check_nan_policy(nan_policy, ("raise", "omit"))
    if max_listed is not None:
        max_listed = count_parameter("max_listed", max_listed)
    f = resolve_format(fmt)
    arr = _census_input(x, nan_policy, "injectivity")
    if getattr(f, "layout", "last_axis") == "flat":  # DEF-BLOCK-LAYOUT: flat blocks run across rows — one row
        arr = arr.reshape(-1)
    el = f if isinstance(f, ElementFormat) else f.element
    size = len(el.codebook) + (1 if el.signed_zero and el.zero_index >= 0 else 0)  # −0 is a cell of its own
    if isinstance(f, ElementFormat):
        return InjectivityPlan(f, arr, tie, max_listed, size, prepare_quantize(arr[:0], f, tie=tie, saturate=True), None)
    # every block has its own copy of the element's cells
    size *= -(-arr.shape[-1] // f.block_size) * (arr.size // arr.shape[-1])
    return InjectivityPlan(f, arr, tie, max_listed, size, None, prepare_block_input(arr, f, tie=tie))


class _Census:
    """Running totals of a census over CellPairs batches, and the candidates for the listing."""

    def __init__(self, keep: int | None):
        self.keep = keep  # how many collisions to list (None: all); only candidates are copied
        self.num = 0
        self.cells_used = 0
        self.colliding_values = 0
        self.pairs = 0
        self.elements = 0
        self.candidates: list = []  # (−elements, cell id, values, counts) of collisions, the best ``keep`` kept

    def add(self, cells: np.ndarray, values: np.ndarray, counts: np.ndarray) -> None:
        """One batch: pairs grouped by cell (adjacent), every cell complete in it."""
        if cells.size == 0:
            return
        first = np.empty(cells.size, dtype=bool)
        first[0] = True
        np.not_equal(cells[1:], cells[:-1], out=first[1:])
        starts = np.flatnonzero(first)
        per_cell = np.diff(starts, append=cells.size)
        n = int(counts.sum())
        self.num += _delta_numerator(counts, starts, n)
        self.cells_used += int(starts.size)
        self.pairs += int(cells.size)
        self.elements += n
        multi = np.flatnonzero(per_cell > 1)
        self.colliding_values += int(per_cell[multi].sum())
        if multi.size == 0 or self.keep == 0:
            return
        sizes = np.add.reduceat(counts, starts)[multi]
        ids = cells[starts[multi]].astype(np.int64)
        pick = np.lexsort((ids, -sizes))[: self.keep].tolist()  # this batch's best: most elements, then the lower cell id
        worst = self.candidates[-1][:2] if self.keep is not None and len(self.candidates) >= self.keep else None
        for j in pick:
            rank = (-int(sizes[j]), int(ids[j]))
            if worst is not None and rank >= worst:
                break  # pick is in rank order: no later one gets in either
            a, k = int(starts[multi[j]]), int(per_cell[multi[j]])
            self.candidates.append((*rank, values[a:a + k].copy(), counts[a:a + k].astype(np.int64)))
        self.candidates.sort(key=lambda cand: cand[:2])
        if self.keep is not None:
            del self.candidates[self.keep:]


def _check_pairs(batch, dtype) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The arrays of one CellPairs batch from a tier, checked for shape, dtype and counts ≥ 1."""
    if not isinstance(batch, CellPairs):
        raise InvalidParameterError(f"finish_census takes CellPairs batches; got {type(batch).__name__}", value=type(batch).__name__)
    cells, values, counts = np.asarray(batch.cells), np.asarray(batch.values), np.asarray(batch.counts)
    if not (cells.ndim == values.ndim == counts.ndim == 1 and cells.size == values.size == counts.size):
        raise InvalidParameterError("CellPairs arrays must be 1-D of one length", value=(cells.shape, values.shape, counts.shape))
    if cells.dtype.kind not in "iu" or counts.dtype.kind not in "iu" or values.dtype != dtype:
        raise InvalidParameterError(f"CellPairs: integer cells and counts, values of x's dtype {dtype}",
                                    value=(str(cells.dtype), str(values.dtype), str(counts.dtype)))
    if counts.size and counts.min() < 1:
        raise InvalidParameterError("CellPairs counts must be >= 1", value=int(counts.min()))
    return cells.astype(np.int64, copy=False), values, counts.astype(np.int64, copy=False)


def _report(plan: InjectivityPlan, census: _Census, supp: int, codeword: Callable[[int], float]) -> InjectivityReport:
    """The InjectivityReport of a finished census; ``codeword(cell id)`` decodes a listed cell."""
    collisions = []
    for _, cid, vals, cnt in census.candidates:
        vals.flags.writeable = False
        cnt.flags.writeable = False
        collisions.append(Collision(cell=(cid,), codeword=codeword(cid), values=vals, counts=cnt))
    injective = census.colliding_values == 0
    n = int(plan.x.size)
    return InjectivityReport(
        format=plan.format.name,
        n_elements=n,
        support_size=supp,
        codebook_size=plan.codebook_size,
        cells_used=census.cells_used,
        injective=injective,
        corollary=bool(plan.codebook_size >= supp and injective),
        collisions=collisions,
        colliding_values=census.colliding_values,
        delta=Fraction(census.num, n * n),
    )


def _element_codeword(f: ElementFormat) -> Callable[[int], float]:
    return lambda code: float(f.dequantize(np.asarray([code], dtype=f.code_dtype))[0])


def _block_codeword(plan: InjectivityPlan, q: BlockQuantized) -> Callable[[int], float]:
    """Decode cell (block << nbits) + code with that block's scale: a one-element BlockQuantized."""
    f = plan.format
    nbits = f.element.nbits
    scales = np.asarray(q.scales).reshape(-1)

    def codeword(cid: int) -> float:
        block, code = cid >> nbits, cid & ((1 << nbits) - 1)
        one = BlockQuantized(f.name, np.asarray([code], dtype=q.codes.dtype), scales[block:block + 1], q.tensor_scale, (1,),
                             f.block_size)
        return float(f.dequantize(one)[0])

    return codeword


def _block_quantized(plan: InjectivityPlan) -> BlockQuantized:
    """The reference's quantization of a block-format plan's input (its checks passed in prepare_injectivity)."""
    return execute_quantize(plan.format._quantize_plan_from(plan.block_input))


def finish_census(plan: InjectivityPlan, batches: Iterable[CellPairs], *, support_size: int | None = None,
                  quantized: BlockQuantized | None = None) -> InjectivityReport:
    """DEF-COLLISION-CENSUS — the report from (cell, value) pairs a tier computed: δ (exact), counts, verdicts, listing.

    ``batches``: CellPairs covering every element of ``plan.x`` once (their counts sum to its
    size).  ``support_size``: |supp(x)| by value; None: the number of pairs for an element format
    (a value has one cell), the reference's :func:`support_size` for a block format.
    ``quantized``: for a block format, the BlockQuantized of x whose scales decode the listed
    cells' codewords (None: the reference quantizes x).  Malformed batches raise InvalidParameterError.
    """
    if not isinstance(plan, InjectivityPlan):
        raise InvalidParameterError(f"finish_census takes an InjectivityPlan; got {type(plan).__name__}", value=type(plan).__name__)
    census = _Census(plan.max_listed)
    for batch in batches:
        census.add(*_check_pairs(batch, plan.x.dtype))
    if census.elements != plan.x.size:
        raise InvalidParameterError(f"the pairs count {census.elements} elements; x has {plan.x.size}", value=census.elements)
    f = plan.format
    if isinstance(f, ElementFormat):
        supp = census.pairs if support_size is None else int(support_size)
        return _report(plan, census, supp, _element_codeword(f))
    supp = _support_of(plan) if support_size is None else int(support_size)
    return _report(plan, census, supp, _block_codeword(plan, _block_quantized(plan) if quantized is None else quantized))


def _support_of(plan: InjectivityPlan) -> int:
    return support_size(plan.x)


def execute_injectivity(plan: InjectivityPlan) -> InjectivityReport:
    """DEF-COLLISION-CENSUS — the reference executor: the report of a prepared plan.

    Element formats: one chunked pass over the sorted input (a cell is a range of it; only the
    listed cells form values).  Block formats: the blocks sorted in place by (encoding, value),
    rectangles of whole blocks at a time, as CellPairs batches into :func:`finish_census`.
    """
    if isinstance(plan.format, ElementFormat):
        census, supp = _element_census(plan)
        return _report(plan, census, supp, _element_codeword(plan.format))
    supp = _support_of(plan)  # first: its sorted copy is freed before the quantization's temporaries
    q = _block_quantized(plan)
    census = _Census(plan.max_listed)
    for batch in _block_pairs(plan.x, plan.format, q):
        census.add(batch.cells, batch.values, batch.counts)
    return _report(plan, census, supp, _block_codeword(plan, q))


def injectivity_report(x, fmt, *, tie: str = "even", nan_policy: str = "raise",
                       max_listed: int | None = DEFAULT_MAX_LISTED) -> InjectivityReport:
    """DEF-COLLISION-CENSUS — collisions of ``fmt`` on the realized support of ``x`` (by value).

    Element formats are applied saturating (overflow would map distinct values to
    one ±Inf/NaN code, which the census then counts like any other cell).
    ``nan_policy``: ``"raise"`` or ``"omit"``.  ``max_listed`` (default DEFAULT_MAX_LISTED = 16)
    caps the listed collisions: the cells with the most elements, ties by the lower cell id;
    None lists them all.  The counts, δ and the verdicts are always complete.
    """
    return execute_injectivity(prepare_injectivity(x, fmt, tie=tie, nan_policy=nan_policy, max_listed=max_listed))


# ---------------------------------------------------------------------------------------------------------------------
# The reference's own (cell, value) computations, shared with the erasure (DEF-ERASED-INFORMATION).
# ---------------------------------------------------------------------------------------------------------------------


def _element_cells(f, values: np.ndarray, tie: str) -> np.ndarray:
    """DEF-COLLISION-CENSUS — the cell (int64 encoding) of each value under an element format, by value.

    Saturating, and −0.0 is quantized as +0.0, so the value 0 is one cell; negative values that
    round to zero keep the −0 code.  The census and the erasure (DEF-ERASED-INFORMATION) both use it.
    """
    return f.quantize(np.where(values == 0, np.zeros_like(values), values), tie=tie, saturate=True).astype(np.int64)


def _sorted_segments(v: np.ndarray, c: np.ndarray, block_ids: np.ndarray, nbits: int) -> CellPairs:
    """CellPairs of segments (rows of ``v``, each one block; 0 as +0.0 already) with codes ``c`` and global ``block_ids``.

    Each row is sorted by (encoding, value): for values of at most 32 bits as one uint64 key
    (encoding << 32 | value's total-order key), sorted in place; wider values by a row-wise lexsort.
    """
    lay = layout_of(v.dtype)
    segs, width = v.shape
    key = total_order_key(v)
    if lay.nbits <= 32:
        k = c.astype(np.uint64)
        k <<= np.uint64(32)
        k |= key
        k.sort(axis=-1)
        new = np.empty((segs, width), dtype=bool)
        new[:, 0] = True
        np.not_equal(k[:, 1:], k[:, :-1], out=new[:, 1:])
        at = np.flatnonzero(new)
        kp = k.reshape(-1)[at]
        codes = (kp >> np.uint64(32)).astype(np.int64)
        vkeys = (kp & np.uint64(0xFFFFFFFF)).astype(lay.uint)
    else:
        order = np.lexsort((key, c), axis=-1)
        ks = np.take_along_axis(key, order, axis=-1)
        cs = np.take_along_axis(c, order, axis=-1)
        new = np.empty((segs, width), dtype=bool)
        new[:, 0] = True
        new[:, 1:] = (ks[:, 1:] != ks[:, :-1]) | (cs[:, 1:] != cs[:, :-1])
        at = np.flatnonzero(new)
        codes = cs.reshape(-1)[at].astype(np.int64)
        vkeys = ks.reshape(-1)[at]
    counts = np.diff(at, append=segs * width).astype(np.int64)
    cells = block_ids[at // width] << nbits
    cells += codes
    return CellPairs(cells, from_total_order_key(vkeys, lay.dtype), counts)


def _block_pairs(arr: np.ndarray, f, q: BlockQuantized):
    """DEF-COLLISION-CENSUS — CellPairs of a block format, rectangles of whole blocks at a time (a cell never spans two).

    ``arr``: the census input (at least 1-D); ``q``: its quantization.  Memory: the rectangle's keys.
    """
    length = arr.shape[-1]
    rows = arr.size // length
    nb = -(-length // f.block_size)
    codes, values = q.codes.reshape(rows, length), arr.reshape(rows, length)
    el = f.element
    sign = el.code_dtype(1 << el.sign_bit) if el.signed_zero and el.zero_index >= 0 else None
    bs = f.block_size
    width = max(bs, CHUNK_ELEMENTS // bs * bs)  # whole blocks: a cell never spans two rectangles
    for c0 in range(0, length, width):
        c1 = min(length, c0 + width)
        step = max(1, CHUNK_ELEMENTS // (c1 - c0))
        full, tail = divmod(c1 - c0, bs)
        for r0 in range(0, rows, step):
            r1 = min(rows, r0 + step)
            rv = values[r0:r1, c0:c1]
            zero = rv == 0
            v = np.where(zero, np.zeros_like(rv), rv)  # by value: −0.0 is +0.0, so it takes +0's encoding
            rc = codes[r0:r1, c0:c1]
            c = rc if sign is None else np.where(zero, rc & ~sign, rc)
            first = np.arange(r0, r1, dtype=np.int64)[:, None] * nb + c0 // bs  # each row's first block here
            if full:
                ids = (first + np.arange(full, dtype=np.int64)).reshape(-1)
                yield _sorted_segments(v[:, :full * bs].reshape(-1, bs), c[:, :full * bs].reshape(-1, bs), ids, el.nbits)
            if tail:
                yield _sorted_segments(np.ascontiguousarray(v[:, full * bs:]), np.ascontiguousarray(c[:, full * bs:]),
                                       (first + full).reshape(-1), el.nbits)


def _element_census(plan: InjectivityPlan) -> tuple[_Census, int]:
    """Element formats: the quantizer is monotone, so a cell is a contiguous range of the sorted input.

    One pass over the sorted copy, a chunk at a time, sums each cell; only the listed cells' values and
    counts are formed, at the end, from their ranges.  When the listed cells hold at least half the
    distinct values, their values are compacted into the front of the sorted copy and listed as
    read-only views of it (no second copy of most of the support).
    """
    s = np.sort(plan.x.ravel())  # by value: −0.0 and +0.0 are one value, adjacent here
    census, support, chosen = _element_pass(plan, s)
    views = 2 * sum(d for *_, d in chosen) >= support  # most of the support is listed: share the sorted copy
    w = 0  # the compacted values end here; w <= the next listed cell's first index (each cell has count >= distinct)
    out = {}
    for neg_count, code, first, distinct in sorted(chosen, key=lambda c: c[2]):
        part = s[first:first - neg_count]
        starts = _run_starts(part)
        counts = _run_lengths(starts)
        vals = s[w:w + distinct] if views else np.empty(distinct, dtype=s.dtype)
        k = 0
        for sl in chunks(part.size):  # a chunk at a time; compacting in place only overwrites what was read
            v = part[sl][starts[sl]]
            v[v == 0] = 0  # the zero run is reported as +0.0
            vals[k:k + v.size] = v
            k += v.size
        if views:
            w += distinct
        out[code] = (vals, counts)
        starts = v = None  # before the next cell's temporaries
    census.candidates = [(neg_count, code, *out[code]) for neg_count, code, _, _ in chosen]
    return census, support


def _element_pass(plan: InjectivityPlan, s: np.ndarray) -> tuple[_Census, int, list]:
    """The chunked pass of :func:`_element_census` over the sorted input ``s``: the totals, |supp| and the
    listed cells as (−elements, code, first index in s, distinct values), best first."""
    f, tie, keep = plan.format, plan.tie, plan.max_listed
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
        listed += list(zip((-count[multi]).tolist(), code[multi].tolist(), first[multi].tolist(), distinct[multi].tolist()))
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
    return census, support, sorted(listed)[:keep]


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
    rep = injectivity_report(x, fmt, tie=tie, max_listed=None)  # every merge is checked: every collision listed
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
