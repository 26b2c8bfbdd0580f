"""DEF-SUPPORT-VALUE, DEF-SUPPORT-BITS, DEF-NATPREC, DEF-NATPREC-TASK — realized support and natural precision.

Chapter: spec/01-support.md.  The support is found by sorting integer keys
(IEEE totalOrder) and counting key changes — for 16-bit dtypes by a 65536-bin
count — so the result never depends on float comparison quirks, and no float64
copy of the input is made.

``realized_support`` and ``support_size`` execute one prepared :class:`SupportPlan` (spec/00-conventions.md).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ._domain import (
    as_float_array,
    check_nan_policy,
    chunks,
    from_total_order_key,
    layout_of,
    nan_mask,
    raise_on_nan,
    real_parameter,
    total_order_key,
)
from .errors import EmptyInputError, InvalidParameterError, NonFiniteInputError

__all__ = [
    "Support",
    "SupportPlan",
    "prepare_support",
    "execute_realized_support",
    "execute_support_size",
    "realized_support",
    "support_size",
    "natural_precision",
    "TaskQuotient",
    "task_quotient",
    "natural_precision_task",
]


@dataclass(frozen=True)
class Support:
    """DEF-SUPPORT-VALUE / DEF-SUPPORT-BITS — distinct values in IEEE totalOrder, with their counts.

    ``values`` has the input's dtype; ``counts`` (int64) sums to the number of
    elements kept; ``by`` is ``"value"`` or ``"bits"``.
    """

    values: np.ndarray
    counts: np.ndarray
    by: str

    @property
    def size(self) -> int:
        return int(self.values.size)

    def __len__(self) -> int:
        return self.size


def _canonical_bits(arr: np.ndarray, lay, by: str, nan: np.ndarray | None) -> np.ndarray:
    """Integer keys whose equality is the support's equality."""
    key = total_order_key(arr)
    if by == "bits":
        return key
    # By value: −0.0 joins +0.0, and every NaN joins one canonical +NaN.
    sign = lay.uint(lay.sign_mask)
    neg_zero_key = ~sign  # key of the −0.0 bit pattern (sign bit only)
    pos_zero_key = sign
    key = np.where(key == lay.uint(neg_zero_key), lay.uint(pos_zero_key), key)
    if nan is not None and nan.any():
        qnan = lay.uint(lay.inf_bits | (1 << (lay.mbits - 1)))
        key = np.where(nan, qnan | sign, key)
    return key.astype(lay.uint, copy=False)


def _run_starts(s: np.ndarray) -> np.ndarray:
    """Boolean mask of the first element of each run of equal values in a sorted array."""
    flags = np.empty(s.size, dtype=bool)
    if s.size:
        flags[0] = True
        np.not_equal(s[1:], s[:-1], out=flags[1:])
    return flags


def _run_lengths(starts: np.ndarray) -> np.ndarray:
    """Lengths (int64) of the runs whose first elements the boolean ``starts`` marks.

    Formed chunk by chunk, so no index array of the input's length is built: memory is the output.
    """
    out = np.empty(int(np.count_nonzero(starts)), dtype=np.int64)
    k, prev = 0, None
    for sl in chunks(starts.size):
        pos = np.flatnonzero(starts[sl]) + sl.start
        if pos.size == 0:
            continue
        if prev is not None:
            out[k - 1] = pos[0] - prev  # the run open at the previous chunk's end closes here
        out[k:k + pos.size - 1] = np.diff(pos)
        k += pos.size
        prev = int(pos[-1])
    if k:
        out[k - 1] = starts.size - prev
    return out


@dataclass(frozen=True)
class SupportPlan:
    """DEF-SUPPORT-VALUE / DEF-SUPPORT-BITS — a support computation whose checks have all passed.

    ``x``: the flattened input (DEF-DOMAIN) with ``nan_policy`` applied (NaNs dropped under
    ``"omit"``); ``by``: ``"value"`` or ``"bits"``; ``nan``: the NaN mask of x when x keeps
    NaNs (``"propagate"``), else None; ``n_nan``: their number.
    """

    x: np.ndarray
    by: str
    nan: np.ndarray | None
    n_nan: int


def prepare_support(x, *, by: str = "value", nan_policy: str = "raise") -> SupportPlan:
    """DEF-SUPPORT-VALUE / DEF-SUPPORT-BITS — every check of :func:`realized_support` and :func:`support_size`, in their order."""
    if by not in ("value", "bits"):
        raise InvalidParameterError(f"by must be 'value' or 'bits'; got {by!r}", value=by)
    check_nan_policy(nan_policy)
    arr = as_float_array(x).ravel()
    nan = nan_mask(arr)
    n_nan = int(np.count_nonzero(nan))
    if n_nan and nan_policy == "raise":
        raise_on_nan(arr, "x", nan)
    if n_nan and nan_policy == "omit":
        arr, nan, n_nan = arr[~nan], None, 0
    return SupportPlan(arr, by, nan if n_nan else None, n_nan)


def _sorted(plan: SupportPlan):
    """(layout, sorted canonical array, is_key) of a plan.

    16-bit dtypes are not sorted (a 65536-bin count is cheaper); they return their keys unsorted.
    By value for 32/64-bit floats the floats themselves are sorted (NaNs sort last) and runs are
    split by IEEE ==, which is the definition: −0.0 and +0.0 share a run.
    """
    arr = plan.x
    lay = layout_of(arr.dtype)
    if plan.by == "value" and lay.nbits > 16:
        return lay, np.sort(arr), False
    key = _canonical_bits(arr, lay, plan.by, plan.nan)
    return lay, (key if lay.nbits == 16 else np.sort(key)), True


def execute_support_size(plan: SupportPlan) -> int:
    """DEF-SUPPORT-VALUE / DEF-SUPPORT-BITS — the reference executor: |supp| of a prepared plan."""
    lay, s, is_key = _sorted(plan)
    if lay.nbits == 16:
        return int(np.count_nonzero(np.bincount(s)))
    if is_key:
        return int(np.count_nonzero(_run_starts(s)))
    n_nan = plan.n_nan
    return int(np.count_nonzero(_run_starts(s[: s.size - n_nan]))) + (1 if n_nan else 0)


def support_size(x, *, by: str = "value", nan_policy: str = "raise") -> int:
    """DEF-SUPPORT-VALUE / DEF-SUPPORT-BITS — |supp(x)| without materialising the support."""
    return execute_support_size(prepare_support(x, by=by, nan_policy=nan_policy))


def execute_realized_support(plan: SupportPlan) -> Support:
    """DEF-SUPPORT-VALUE / DEF-SUPPORT-BITS — the reference executor: the support of a prepared plan."""
    lay, s, is_key = _sorted(plan)
    n_nan = plan.n_nan
    if lay.nbits == 16:
        counts = np.bincount(s)
        keys = np.flatnonzero(counts).astype(lay.uint)
        vals, cnt = from_total_order_key(keys, lay.dtype), counts[keys].astype(np.int64)
    else:
        body = s if is_key else s[: s.size - n_nan]
        starts = _run_starts(body)
        cnt = _run_lengths(starts)
        vals = body[starts]
        if is_key:
            vals = from_total_order_key(vals, lay.dtype)
        else:
            vals[vals == 0] = 0.0  # the zero run may start with −0.0
            if n_nan:
                vals = np.append(vals, lay.dtype.type(np.nan))
                cnt = np.append(cnt, n_nan)
    vals.flags.writeable = False
    cnt.flags.writeable = False
    return Support(values=vals, counts=cnt, by=plan.by)


def realized_support(x, *, by: str = "value", nan_policy: str = "raise") -> Support:
    """DEF-SUPPORT-VALUE / DEF-SUPPORT-BITS — the realized support of ``x``.

    ``by="value"``: IEEE equality, except that all NaNs form one element (kept
    under ``nan_policy="propagate"``); −0.0 and +0.0 are one element, reported as +0.0.
    ``by="bits"``: distinct bit patterns (−0.0 ≠ +0.0, each NaN payload distinct).
    ``nan_policy``: ``"raise"`` (NaNInputError), ``"omit"`` (drop NaNs) or
    ``"propagate"`` (NaNs are support elements, ordered by totalOrder; by value one +NaN, last).
    """
    return execute_realized_support(prepare_support(x, by=by, nan_policy=nan_policy))


def _ceil_log2(n: int) -> int:
    return (n - 1).bit_length()


def natural_precision(x=None, *, support_size: int | None = None, by: str = "value", nan_policy: str = "raise") -> int:
    """DEF-NATPREC — b* = ⌈log2 |supp(x)|⌉ computed with integers (|supp| = 1 gives 0).

    Pass an array ``x`` (its realized support is measured) or ``support_size``.
    An empty support (empty input, or all-NaN under ``omit``) raises EmptyInputError.
    """
    if (x is None) == (support_size is None):
        raise InvalidParameterError("pass exactly one of x or support_size", value=(x is None, support_size))
    if support_size is None:
        n = execute_support_size(prepare_support(x, by=by, nan_policy=nan_policy))
    else:
        if isinstance(support_size, bool) or not isinstance(support_size, (int, np.integer)):
            raise InvalidParameterError(f"support_size must be an integer; got {support_size!r}", value=support_size)
        n = int(support_size)
        if n < 0:
            raise InvalidParameterError(f"support_size must be >= 0; got {n}", value=n)
    if n == 0:
        raise EmptyInputError("natural precision of an empty support is undefined", value=0)
    return _ceil_log2(n)


@dataclass(frozen=True)
class TaskQuotient:
    """DEF-NATPREC-TASK — the greedy quotient of the sorted support under ~τ.

    ``class_of[i]`` is the class of ``support.values[i]``; ``leaders`` are the
    class representatives (the smallest value of each class); ``bits`` is b*_τ.
    """

    support: Support
    class_of: np.ndarray
    leaders: np.ndarray
    bits: int

    @property
    def num_classes(self) -> int:
        return int(self.leaders.size)


def _l2(a: np.ndarray, b: np.ndarray) -> float:
    d = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    return float(np.sqrt(np.sum(d * d)))


def task_quotient(
    x,
    downstream: Callable[[np.ndarray], np.ndarray],
    tolerance: float,
    *,
    metric: Callable[[np.ndarray, np.ndarray], float] | None = None,
    nan_policy: str = "raise",
) -> TaskQuotient:
    """DEF-NATPREC-TASK — greedy cover of the sorted support by classes of task-equivalent values.

    ``downstream(values)`` maps a 1-D float64 array of support values to outputs
    of shape ``(n, ...)``; ``metric(G(z), G(z'))`` defaults to the Euclidean
    distance.  Scanning the support in ascending order, a value joins the current
    class iff its distance to the class leader's output is ≤ ``tolerance``;
    otherwise it starts a new class.  Every member is within τ of its leader, so
    collapsing a class to its leader respects τ.  When G is monotone and the
    metric is |·|, classes are pairwise equivalent and their number is minimal
    among all partitions into pairwise-equivalent classes (THM-QUOTIENT-MINIMAL).
    """
    tau = real_parameter("tolerance", tolerance, low=0.0)
    check_nan_policy(nan_policy, ("raise", "omit"))  # a NaN cannot be fed to G
    sup = realized_support(x, nan_policy=nan_policy)
    if sup.size == 0:
        raise EmptyInputError("task quotient of an empty support is undefined", value=0)
    z = sup.values.astype(np.float64)
    out = np.asarray(downstream(z))
    if out.shape[:1] != (z.size,):
        raise InvalidParameterError(
            f"downstream must return one output per support value (leading dim {z.size}); got shape {out.shape}",
            value=out.shape,
        )
    if out.dtype.kind not in "fiu":
        raise InvalidParameterError(f"downstream must return real numbers; got dtype {out.dtype}", value=str(out.dtype))
    if not np.all(np.isfinite(out)):
        bad = int(np.flatnonzero(~np.isfinite(out.astype(np.float64)).reshape(z.size, -1).any(axis=1))[0])
        raise NonFiniteInputError(f"downstream output is not finite at support value {z[bad]!r}", value=float(z[bad]))
    dist = metric or _l2
    class_of = np.empty(z.size, dtype=np.int64)
    leaders = [0]
    c = 0
    class_of[0] = 0
    for i in range(1, z.size):
        if dist(out[leaders[-1]], out[i]) <= tau:
            class_of[i] = c
        else:
            c += 1
            leaders.append(i)
            class_of[i] = c
    return TaskQuotient(
        support=sup,
        class_of=class_of,
        leaders=sup.values[np.asarray(leaders)],
        bits=_ceil_log2(len(leaders)),
    )


def natural_precision_task(x, downstream, tolerance, *, metric=None, nan_policy: str = "raise") -> int:
    """DEF-NATPREC-TASK — b*_τ = ⌈log2 |supp/~τ|⌉ with the greedy quotient of :func:`task_quotient`."""
    return task_quotient(x, downstream, tolerance, metric=metric, nan_policy=nan_policy).bits
