"""DEF-ERASED-INFORMATION, THM-ERASURE-CONDITIONAL, THM-BOUND-NOT-ERASURE — the erasure of a boundary.

The oracle forms every (cell, value) pair of the whole tensor at once with ``collections.Counter``
(cells from ``quantize`` of the by-value tensor, block index from the element's position) and
takes the entropies with ``scipy.stats.entropy``: no chunks, no grouping by count, no census code.
"""

from __future__ import annotations

import math
from collections import Counter
from fractions import Fraction

import mpmath
import numpy as np
import pytest
import scipy.stats
from hypothesis import example, given
from hypothesis import strategies as st

from natprec.conformance.strategies import codebooks, finite_floats
from natprec.reference import (
    ElementFormat,
    EmptyInputError,
    InvalidParameterError,
    NaNInputError,
    NonFiniteInputError,
    UnknownFormatError,
    bits_per_element,
    block_format_names,
    boundary_cost_joules,
    element_format_names,
    erased_information,
    get_format,
    injectivity_report,
    is_free_boundary,
    landauer_energy_joules,
    quantize,
    realized_support,
)

ELEMENT_FORMATS = list(element_format_names())
BLOCK_FORMATS = list(block_format_names())
small_samples = st.lists(finite_floats(32, min_value=-8, max_value=8), min_size=1, max_size=60)
#: x = 1000 zeros, 1.0 and 2.0 — THM-FREE-BOUNDARY's counterexample 1 (spec/06).
SPARSE = np.concatenate([np.zeros(1000), [1.0, 2.0]])


def oracle_pairs(x: np.ndarray, fmt) -> Counter:
    """Counter of (cell, value) over every element: −0.0 → +0.0 before quantizing; block cells carry their block."""
    f = get_format(fmt) if isinstance(fmt, str) else fmt
    x = np.atleast_1d(x)
    v = np.where(x == 0, np.zeros_like(x), x)
    if isinstance(f, ElementFormat) or not hasattr(f, "block_size"):
        cells = [(int(c),) for c in quantize(v, f, saturate=True).ravel()]
    else:
        codes = quantize(v, f).codes
        row = np.arange(v.size) // v.shape[-1]
        col = np.arange(v.size) % v.shape[-1]
        cells = [(int(r), int(k) // f.block_size, int(c)) for r, k, c in zip(row, col, codes.ravel())]
    return Counter(zip(cells, v.astype(np.float64).ravel().tolist()))


def oracle(x, fmt):
    """(H(X), H(Q), H(X|Q), K_X, K_Q, K_XQ) from the pair Counter, entropies by scipy in bits."""
    pairs = oracle_pairs(np.asarray(x), fmt)
    values, cells = Counter(), Counter()
    for (c, v), n in pairs.items():
        values[v] += n
        cells[c] += n
    h = lambda cnt: float(scipy.stats.entropy(list(cnt.values()), base=2))  # noqa: E731
    return h(values), h(cells), h(pairs) - h(cells), len(values), len(cells), len(pairs)


@pytest.mark.spec("DEF-ERASED-INFORMATION", "THM-ERASURE-CONDITIONAL")
@given(xs=small_samples, fmt=st.sampled_from(ELEMENT_FORMATS))
@example(xs=[0.0, -0.0, 1e-30, -1e-30], fmt="float8_e4m3fn")
@example(xs=[0.1, 0.2, 0.2, 1.0], fmt="int4")
def test_element_formats_match_counter_oracle(xs, fmt):
    x = np.array(xs, dtype=np.float32)
    r = erased_information(x, fmt)
    hx, hq, e, kx, kq, kxq = oracle(x, fmt)
    assert (r.support_size, r.cells_used, r.pairs) == (kx, kq, kxq) == (realized_support(x).size, kq, kx)
    assert r.n_elements == x.size
    assert math.isclose(r.source_bits, hx, abs_tol=1e-12) and math.isclose(r.cell_bits, hq, abs_tol=1e-12)
    assert math.isclose(r.erased_bits, e, abs_tol=1e-12)
    # element formats: Q is a function of X, so E = H(X) − H(Q) (the formula)
    assert math.isclose(r.erased_bits, r.source_bits - r.cell_bits, abs_tol=1e-12)
    n = x.size
    assert math.isclose(r.erased_bits_miller_madow, e + (kxq - kq) / (2 * n * math.log(2)), abs_tol=1e-12)
    assert math.isclose(r.erased_bits_miller_madow,
                        r.source_bits_miller_madow - r.cell_bits_miller_madow, abs_tol=1e-12)


@pytest.mark.spec("DEF-ERASED-INFORMATION", "THM-ERASURE-CONDITIONAL")
@given(xs=st.lists(finite_floats(32, min_value=-100, max_value=100), min_size=1, max_size=80),
       fmt=st.sampled_from(BLOCK_FORMATS), rows=st.sampled_from([1, 2]))
@example(xs=[0.0, -0.0, 1.0, -1e-9] * 8, fmt="mxfp4", rows=1)
@example(xs=[1.0] * 16 + [100.0] + [1.0] * 15, fmt="nvfp4", rows=2)
def test_block_formats_match_counter_oracle(xs, fmt, rows):
    x = np.array(xs[: len(xs) // rows * rows] or xs[:1], dtype=np.float32)
    x = x.reshape(rows, -1) if x.size % rows == 0 and x.size >= rows else x
    r = erased_information(x, fmt)
    hx, hq, e, kx, kq, kxq = oracle(x, fmt)
    assert (r.support_size, r.cells_used, r.pairs) == (kx, kq, kxq)
    assert math.isclose(r.source_bits, hx, abs_tol=1e-12) and math.isclose(r.cell_bits, hq, abs_tol=1e-12)
    assert math.isclose(r.erased_bits, e, abs_tol=1e-12)
    assert r.bits_per_element == bits_per_element(fmt)


@pytest.mark.spec("THM-ERASURE-CONDITIONAL")
@given(xs=small_samples, fmt=st.sampled_from(ELEMENT_FORMATS + BLOCK_FORMATS))
@example(xs=[0.5] * 7, fmt="nf4")
def test_erasure_properties(xs, fmt):
    x = np.array(xs, dtype=np.float32)
    r = erased_information(x, fmt)
    assert 0.0 <= r.erased_bits <= r.source_bits  # E ≥ 0 and conditioning does not raise entropy
    assert r.erased_bits_miller_madow >= r.erased_bits
    inj = injectivity_report(x, fmt).injective
    assert r.injective == inj == (r.erased_bits == 0.0) == (r.erased_bits_miller_madow == 0.0)
    assert r.injective == (r.pairs == r.cells_used)
    f = get_format(fmt)
    if isinstance(f, ElementFormat):
        assert r.pairs == r.support_size
    else:  # E = H(X|B) − H(code|B) ≤ log2(block size)
        assert r.erased_bits <= math.log2(min(f.block_size, x.size)) + 1e-12


@pytest.mark.spec("THM-ERASURE-CONDITIONAL")
@given(xs=small_samples, cb=codebooks(max_size=8))
def test_codebooks_erase_exactly_when_not_injective(xs, cb):
    x = np.array(xs, dtype=np.float32)
    r = erased_information(x, cb)
    sup = realized_support(x).values
    images = quantize(sup, cb).tolist()
    assert r.injective == (len(set(images)) == len(images)) == (r.erased_bits == 0.0)
    hx, hq, e, *_ = oracle(x, cb)
    assert math.isclose(r.erased_bits, e, abs_tol=1e-12)


@pytest.mark.spec("THM-BOUND-NOT-ERASURE")
@given(xs=small_samples, fmt=st.sampled_from(ELEMENT_FORMATS))
def test_seed_bound_is_a_lower_bound_for_element_formats(xs, fmt):
    r = erased_information(np.array(xs, dtype=np.float32), fmt)
    assert r.cell_bits <= r.bits_per_element  # at most 2**b cells
    assert r.erased_bits >= r.bound_bits - 1e-12  # E = H(X) − H(Q) ≥ H(X) − b
    assert r.free_by_bound == is_free_boundary(r.source_bits, r.bits_per_element) == (r.bound_bits == 0.0)


@pytest.mark.spec("THM-BOUND-NOT-ERASURE", "DEF-ERASED-INFORMATION")
@pytest.mark.parametrize("fmt", ["nf4", "fp4_bnb", "ternary"])
def test_free_by_the_bound_yet_erasing(fmt):
    """The issue's point: H ≤ b, so the seed's bound says 0, but two values share a cell: E = 2/1002 bits."""
    r = erased_information(SPARSE, fmt)
    assert r.free_by_bound and r.bound_bits == 0.0 and r.bound_joules == 0.0
    assert r.source_bits == 0.022774293532446886 and r.bits_per_element == (2 if fmt == "ternary" else 4)
    assert r.erased_bits == 2 / 1002 == 0.001996007984031936  # 2 elements of a 2-element cell, 1 bit each: exact
    assert not r.injective and r.erased_joules > 0
    assert r.erased_joules_per_element == landauer_energy_joules(2 / 1002)
    # N · fl64(2/1002) is 2 bits up to the rounding of E: the total is one ulp from k_B T ln 2 · 2
    assert math.isclose(r.erased_joules, landauer_energy_joules(2.0), rel_tol=2**-52)


@pytest.mark.spec("THM-BOUND-NOT-ERASURE")
def test_gaussian_grid_cast_to_e4m3_erases_under_a_zero_bound():
    g = np.random.default_rng(0).standard_normal(10**6)
    x = (np.round(8 * g) / 8).astype(np.float32)  # Δ = 1/8
    r = erased_information(x, "float8_e4m3fn")
    assert r.free_by_bound and r.source_bits == 5.048902195557684
    assert r.erased_bits == 0.051143009471325926
    assert (r.support_size, r.cells_used) == (76, 52)


@pytest.mark.spec("THM-BOUND-NOT-ERASURE")
def test_block_format_injective_above_the_bound():
    """Block formats: E = 0 while H(X) > b — the bound is no lower bound there (the block position informs)."""
    e2m1 = get_format("float4_e2m1fn").codebook.values
    nonzero = e2m1[e2m1 != 0]  # 14 values; a 32-element block holds each twice, then ±6 twice more
    block = np.concatenate([nonzero, nonzero, [6.0, 6.0, -6.0, -6.0]])
    x = np.concatenate([block * 2.0 ** (4 * k) for k in range(8)]).astype(np.float32)  # disjoint across blocks
    r = erased_information(x, "mxfp4")
    assert r.erased_bits == 0.0 and r.injective and (r.support_size, r.cells_used) == (112, 112)
    assert r.source_bits > r.bits_per_element == 4.25 and r.bound_bits > 0
    hx, hq, e, *_ = oracle(x, "mxfp4")
    assert e == 0.0 and math.isclose(hx, r.source_bits, abs_tol=1e-12)


@pytest.mark.spec("DEF-ERASED-INFORMATION")
@given(xs=small_samples, fmt=st.sampled_from(["nf4", "int4", "mxfp4"]), t=st.floats(1e-3, 1e5))
def test_landauer_cost_of_the_erasure(xs, fmt, t):
    x = np.array(xs, dtype=np.float32)
    r = erased_information(x, fmt, temperature_kelvin=t)
    n = x.size
    assert r.erased_joules_per_element == landauer_energy_joules(r.erased_bits, 0.0, t)
    assert r.erased_joules_per_element_miller_madow == landauer_energy_joules(r.erased_bits_miller_madow, 0.0, t)
    assert r.bound_joules_per_element == boundary_cost_joules(r.source_bits, r.bits_per_element, t)
    with mpmath.workprec(300):
        kt = mpmath.mpf(1380649) / 10**29 * mpmath.mpf(t) * mpmath.log(2)
        for total, bits in ((r.erased_joules, r.erased_bits), (r.erased_joules_miller_madow, r.erased_bits_miller_madow),
                            (r.bound_joules, float(max(Fraction(0), Fraction(r.source_bits) - Fraction(r.bits_per_element))))):
            assert total == float(kt * n * mpmath.mpf(bits))  # N · E formed exactly, rounded once


@pytest.mark.spec("DEF-ERASED-INFORMATION")
def test_signed_zero_nan_omit_and_infinities():
    # −0.0 is +0.0 by value: one value, one cell, nothing erased
    r = erased_information([-0.0, 0.0, -0.0], "float8_e4m3fn")
    assert (r.support_size, r.cells_used, r.erased_bits) == (1, 1, 0.0)
    # a tiny negative value takes the −0 code, its own cell: still nothing erased
    assert erased_information([-0.0, 0.0, -1e-30], "float8_e4m3fn").erased_bits == 0.0
    # omit drops NaNs; raise names the first
    assert erased_information([1.0, math.nan, 2.0], "int4", nan_policy="omit") == erased_information([1.0, 2.0], "int4")
    with pytest.raises(NaNInputError) as e:
        erased_information([1.0, math.nan], "int4")
    assert e.value.value == 1
    # ±Inf are values; an element format stores them saturated in the ±max cell
    r = erased_information([math.inf, 448.0, -math.inf], "float8_e4m3fn")
    assert (r.support_size, r.cells_used) == (3, 2) and r.erased_bits == pytest.approx(2 / 3)
    with pytest.raises(NonFiniteInputError):
        erased_information([1.0, math.inf], "mxfp4")
    # 0-d: one element
    assert erased_information(np.float32(0.3), "nf4").n_elements == 1


@pytest.mark.spec("DEF-ERASED-INFORMATION")
@pytest.mark.parametrize("fmt", ["nf4", "float8_e4m3fn", "nf4_absmax64", "mxfp4", "nvfp4"])
def test_over_several_chunks_equals_all_pairs_at_once(fmt):
    rng = np.random.default_rng(3)
    x = np.round(rng.standard_normal((3, 2**18 + 40)) * 64).astype(np.float32) / 64  # 3 rows, rectangles cut rows
    r = erased_information(x, fmt)
    hx, hq, e, kx, kq, kxq = oracle(x, fmt)
    assert (r.support_size, r.cells_used, r.pairs) == (kx, kq, kxq)
    assert math.isclose(r.erased_bits, e, rel_tol=1e-9, abs_tol=1e-12)
    assert math.isclose(r.cell_bits, hq, rel_tol=1e-12)


@pytest.mark.spec("DEF-ERASED-INFORMATION")
@pytest.mark.parametrize("call, exc, value", [
    (lambda: erased_information([], "int4"), EmptyInputError, (0,)),
    (lambda: erased_information([math.nan], "int4", nan_policy="omit"), EmptyInputError, (0,)),
    (lambda: erased_information([1.0], "int4", nan_policy="propagate"), InvalidParameterError, "propagate"),
    (lambda: erased_information([1.0], "int4", temperature_kelvin=0.0), InvalidParameterError, 0.0),
    (lambda: erased_information([1.0], "int4", temperature_kelvin=math.nan), NonFiniteInputError, math.nan),
    (lambda: erased_information([1.0], "fp3"), UnknownFormatError, "fp3"),
    (lambda: erased_information([1.0], "int4", tie="odd"), InvalidParameterError, "odd"),
], ids=["empty", "all-NaN omitted", "propagate", "T = 0", "T NaN", "unknown format", "unknown tie"])
def test_bad_input(call, exc, value):
    with pytest.raises(exc) as e:
        call()
    v = e.value.value
    assert (isinstance(v, float) and math.isnan(v)) if isinstance(value, float) and math.isnan(value) else v == value
