"""DEF-SUPPORT-VALUE, DEF-SUPPORT-BITS, DEF-NATPREC, DEF-NATPREC-TASK, THM-QUOTIENT-MINIMAL, THM-BIJECTION-INVARIANCE."""

import math

import ml_dtypes
import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from natprec.conformance.strategies import finite_floats, float_arrays
from natprec.reference import (
    EmptyInputError,
    InvalidParameterError,
    NaNInputError,
    has_nan,
    nan_mask,
    natural_precision,
    natural_precision_task,
    realized_support,
    support_size,
    task_quotient,
)

BITS = {2: np.uint16, 4: np.uint32, 8: np.uint64}


def _bits(a):
    return np.ascontiguousarray(a).view(BITS[a.dtype.itemsize])


@pytest.mark.spec("DEF-SUPPORT-VALUE")
@given(x=float_arrays())
@example(x=np.array([0.0, -0.0, -0.0], dtype=np.float32))
@example(x=np.array([np.nan, -np.nan, 1.0], dtype=np.float64))
@example(x=np.array([], dtype=np.float16))
@example(x=np.float32(3.0).reshape(()))
def test_support_by_value_matches_python_sets(x):
    flat = x.ravel().astype(np.float64)  # every accepted dtype converts exactly
    nan = np.isnan(flat)
    finite_set = {v + 0.0 for v in flat[~nan].tolist()}  # v + 0.0 turns −0.0 into +0.0
    for policy in ("omit", "propagate"):
        s = realized_support(x, nan_policy=policy)
        want = sorted(finite_set)
        got = s.values.astype(np.float64)
        if policy == "propagate" and nan.any():
            assert np.isnan(got[-1]) and s.counts[-1] == nan.sum()
            got = got[:-1]
        assert got.tolist() == want
        assert not np.any(np.signbit(got[got == 0]))  # zero is reported as +0.0
        assert s.values.dtype == x.dtype
        assert int(s.counts.sum()) == (flat.size if policy == "propagate" else int((~nan).sum()))
    if nan.any():
        with pytest.raises(NaNInputError):
            realized_support(x)
    for by in ("value", "bits"):
        for policy in ("omit", "propagate"):
            assert support_size(x, by=by, nan_policy=policy) == realized_support(x, by=by, nan_policy=policy).size


@pytest.mark.spec("DEF-SUPPORT-BITS")
@given(x=float_arrays())
def test_support_by_bits_matches_bit_pattern_sets(x):
    b = _bits(x).ravel().tolist()
    s = realized_support(x, by="bits", nan_policy="propagate")
    assert sorted(_bits(s.values).tolist()) == sorted(set(b))
    counts = {k: b.count(k) for k in set(b)}
    assert dict(zip(_bits(s.values).tolist(), s.counts.tolist())) == counts


@pytest.mark.spec("DEF-SUPPORT-BITS", "DEF-TOTAL-ORDER")
def test_bits_support_is_in_ieee_total_order():
    x = np.array([np.nan, 1.0, -np.nan, -0.0, 0.0, -np.inf, np.inf, -1.0], dtype=np.float32)
    s = realized_support(x, by="bits", nan_policy="propagate").values
    b = _bits(s).tolist()
    assert b == [0xFFC00000, 0xFF800000, 0xBF800000, 0x80000000, 0x00000000, 0x3F800000, 0x7F800000, 0x7FC00000]


@pytest.mark.spec("DEF-NATPREC")
@given(n=st.integers(1, 2**70))
@example(n=1)
@example(n=2)
@example(n=2**53 + 1)
def test_natural_precision_is_integer_ceil_log2(n):
    b = natural_precision(support_size=n)
    assert 2 ** (b - 1) < n <= 2**b if n > 1 else b == 0


@pytest.mark.spec("DEF-NATPREC")
@given(x=float_arrays(allow_nan=False))
def test_natural_precision_of_arrays(x):
    n = len({v + 0.0 for v in x.ravel().astype(np.float64).tolist()})
    if n == 0:
        with pytest.raises(EmptyInputError):
            natural_precision(x)
    else:
        assert natural_precision(x) == (0 if n == 1 else math.ceil(math.log2(n)) if n & (n - 1) else n.bit_length() - 1)


@pytest.mark.spec("DEF-NATPREC")
def test_natural_precision_arguments():
    with pytest.raises(InvalidParameterError):
        natural_precision()
    with pytest.raises(InvalidParameterError):
        natural_precision(np.zeros(2), support_size=2)
    with pytest.raises(InvalidParameterError):
        natural_precision(support_size=-1)
    with pytest.raises(InvalidParameterError):
        natural_precision(support_size=2.5)
    with pytest.raises(EmptyInputError):
        natural_precision(np.array([np.nan]), nan_policy="omit")


def _min_clique_partition(values, g, tau):
    """Brute force: fewest classes of pairwise-equivalent values (all set partitions)."""
    n = len(values)
    best = n

    def rec(i, classes):
        nonlocal best
        if len(classes) >= best:
            return
        if i == n:
            best = len(classes)
            return
        for c in classes:
            if all(abs(g(values[i]) - g(values[j])) <= tau for j in c):
                c.append(i)
                rec(i + 1, classes)
                c.pop()
        classes.append([i])
        rec(i + 1, classes)
        classes.pop()

    rec(0, [])
    return best


MONOTONE = {
    "tanh": np.tanh,
    "cube": lambda z: z**3,
    "neg_relu": lambda z: -np.maximum(z, 0),
}


@pytest.mark.spec("DEF-NATPREC-TASK", "THM-QUOTIENT-MINIMAL")
@given(
    xs=st.lists(finite_floats(32, min_value=-4, max_value=4), min_size=1, max_size=7),
    tau=st.floats(0, 2),
    g=st.sampled_from(sorted(MONOTONE)),
)
def test_greedy_quotient_is_minimal_for_monotone_g(xs, tau, g):
    f = MONOTONE[g]
    q = task_quotient(np.array(xs, dtype=np.float32), lambda z: f(z)[:, None], tau, metric=lambda a, b: abs(a[0] - b[0]))
    z = q.support.values.astype(np.float64)
    assert q.num_classes == _min_clique_partition(z.tolist(), lambda v: float(f(np.float64(v))), tau)
    # classes are contiguous runs and pairwise equivalent
    assert np.all(np.diff(q.class_of) >= 0)
    for c in range(q.num_classes):
        out = f(z[q.class_of == c])
        assert out.max() - out.min() <= tau
    assert q.bits == natural_precision(support_size=q.num_classes)


@pytest.mark.spec("DEF-NATPREC-TASK")
def test_task_equivalence_is_not_transitive_and_greedy_is_leader_anchored():
    x = np.array([0.0, 1.0, 2.0])
    ident = lambda z: z[:, None]  # noqa: E731
    # 0 ~ 1 and 1 ~ 2 at τ = 1, but 0 ≁ 2: the relation is not transitive.
    q = task_quotient(x, ident, 1.0)
    assert q.class_of.tolist() == [0, 0, 1] and q.leaders.tolist() == [0.0, 2.0]
    assert natural_precision_task(x, ident, 1.0) == 1
    assert natural_precision_task(x, ident, 2.0) == 0
    assert natural_precision_task(x, ident, 0.0) == 2


@pytest.mark.spec("DEF-NATPREC-TASK")
def test_task_quotient_rejects_bad_downstream_and_tolerance():
    x = np.array([0.0, 1.0])
    with pytest.raises(InvalidParameterError):
        task_quotient(x, lambda z: z[:1], 0.1)
    with pytest.raises(InvalidParameterError):
        task_quotient(x, lambda z: z, -1.0)
    with pytest.raises(InvalidParameterError):
        task_quotient(x, lambda z: z, float("nan"))
    from natprec.reference import NonFiniteInputError

    with pytest.raises(NonFiniteInputError), np.errstate(divide="ignore"):
        task_quotient(x, lambda z: 1.0 / z, 0.1)
    with pytest.raises(InvalidParameterError):
        task_quotient(x, lambda z: z, 0.1, nan_policy="propagate")


@pytest.mark.spec("THM-BIJECTION-INVARIANCE")
@given(x=float_arrays(dtypes=(np.float32,), allow_nan=False, allow_infinity=False, allow_subnormal=False))
def test_injective_maps_preserve_support_size_and_bstar(x):
    x = x[np.abs(x) < 1e30]
    if x.size == 0:
        return
    # Exact power-of-two scaling in float64 is injective on float32 values; so is negation.
    for f in (lambda v: v.astype(np.float64) * 4.0, lambda v: -v, lambda v: v.astype(np.float64) ** 3):
        y = f(x)
        if len({float(t) for t in y.ravel()}) == len({float(t) for t in x.ravel()}):  # injective here
            assert realized_support(y).size == realized_support(x).size
            assert natural_precision(y) == natural_precision(x)


@pytest.mark.spec("DEF-SUPPORT-VALUE", "DEF-DOMAIN")
def test_layouts_do_not_change_the_support():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 33)).astype(np.float32).round(1)
    ref = realized_support(x)
    for y in (x.T, x[::2, ::3], x.astype(x.dtype.newbyteorder(">")), np.asfortranarray(x)):
        s = realized_support(y)
        want = realized_support(np.ascontiguousarray(y).astype(np.float32))
        assert s.values.tolist() == want.values.tolist() and s.counts.tolist() == want.counts.tolist()
    assert realized_support(x.astype(x.dtype.newbyteorder(">"))).values.dtype == np.float32
    assert realized_support(x.T).size == ref.size


@pytest.mark.spec("DEF-SUPPORT-VALUE")
def test_sixteen_bit_types_count_all_patterns():
    allbits = np.arange(1 << 16, dtype=np.uint32).astype(np.uint16)
    for dt in (np.float16, ml_dtypes.bfloat16):
        x = allbits.view(dt)
        s = realized_support(x, by="bits", nan_policy="propagate")
        assert s.size == 1 << 16 and (s.counts == 1).all()
        nans = int(nan_mask(x).sum())
        v = realized_support(x, nan_policy="omit")
        assert v.size == (1 << 16) - nans - 1  # −0 joins +0
        assert realized_support(x, nan_policy="propagate").size == v.size + 1


@pytest.mark.spec("DEF-DOMAIN")
def test_has_nan_is_any_of_the_mask():
    """has_nan (no mask of the input's size) = nan_mask(x).any() for every accepted dtype: every 16-bit pattern, each
    NaN pattern alone in a chunked array (first, last and across a chunk boundary), ±Inf, 0-d, empty, strided."""
    allbits = np.arange(1 << 16, dtype=np.uint32).astype(np.uint16)
    for dt in (np.float16, ml_dtypes.bfloat16):
        x = allbits.view(dt)
        nan = nan_mask(x)
        assert has_nan(x) and not has_nan(x[~nan])
        for i in np.flatnonzero(nan)[::97]:
            assert has_nan(x[i:i + 1]) and has_nan(np.asarray(x[i]))  # a 1-element and a 0-d array
    n = (1 << 18) + 8  # more than one chunk of the bit test
    for dt, uint in ((np.float32, np.uint32), (np.float64, np.uint64), (ml_dtypes.bfloat16, np.uint16)):
        inf = np.array([np.inf], dtype=dt)
        x = np.zeros(n, dtype=dt)
        x[::3] = inf
        x[1::3] = -inf
        assert not has_nan(x) and not has_nan(x[::2]) and not has_nan(np.zeros(0, dt))
        quiet = np.abs(np.array([np.nan], dtype=dt)).view(uint)[0]
        sign = uint(1) << uint(8 * np.dtype(uint).itemsize - 1)
        for pattern in (quiet, inf.view(uint)[0] | uint(1), quiet | sign):  # quiet, signalling, negative
            for i in (0, n - 1, 1 << 18, (1 << 18) - 1):
                y = x.copy()
                y.view(uint)[i] = pattern
                assert has_nan(y) == bool(nan_mask(y).any()) is True, (dt, hex(int(pattern)), i)
                assert has_nan(y.reshape(8, -1)[:, ::-1]) is True
