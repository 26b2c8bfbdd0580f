"""DEF-CODEBOOK, DEF-QUANTIZE, DEF-TIE-RULES, DEF-VORONOI-CELLS, THM-QUANTIZE-MONOTONE against exact oracles."""

from fractions import Fraction

import ml_dtypes
import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from natprec.conformance.strategies import codebooks, finite_floats, tie_rules
from natprec.reference import Codebook, CodebookError, from_total_order_key, get_format, nearest_index, thresholds, total_order_key, voronoi_cells
from tests.oracles import nearest_index_brute

NF4 = Codebook(np.array([-1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453,
                         -0.28444138169288635, -0.18477343022823334, -0.09105003625154495, 0.0,
                         0.07958029955625534, 0.16093020141124725, 0.24611230194568634, 0.33791524171829224,
                         0.44070982933044434, 0.5626170039176941, 0.7229568362236023, 1.0], dtype=np.float32))
ONE = Codebook([0.5])
SYM = Codebook([-1.0, 1.0])


def _check(cb, xs, tie, dtype):
    with np.errstate(over="ignore"):  # values beyond the dtype's range become ±Inf, also a case
        x = np.asarray(xs, dtype=np.float64).astype(dtype)
    got = nearest_index(x, cb, tie)
    up = cb.tie_goes_up(tie)
    want = [nearest_index_brute(float(v), cb.values, up) for v in x.astype(np.float64)]
    assert got.tolist() == want, (cb, tie, dtype)


@pytest.mark.spec("DEF-QUANTIZE", "DEF-TIE-RULES")
@given(cb=codebooks(), xs=st.lists(finite_floats(32), min_size=1, max_size=30), tie=tie_rules,
       dtype=st.sampled_from([np.float16, ml_dtypes.bfloat16, np.float32, np.float64]))
@example(cb=NF4, xs=[0.0, -0.0, 1.0, -1.0, 3.4028234663852886e38, 1e-45], tie="even", dtype=np.float32)
@example(cb=ONE, xs=[-1e30, 0.5, 7.0], tie="even", dtype=np.float32)
@example(cb=SYM, xs=[0.0, -0.0], tie="away", dtype=np.float64)
def test_nearest_index_matches_exact_distance(cb, xs, tie, dtype):
    # Add the codebook's own midpoints (exact ties wherever dtype can hold them).
    mids = [float((Fraction(float(a)) + Fraction(float(b))) / 2) for a, b in zip(cb.values[:-1], cb.values[1:])]
    _check(cb, list(xs) + mids, tie, dtype)


@pytest.mark.spec("DEF-QUANTIZE")
@given(cb=codebooks(min_size=2), tie=tie_rules)
def test_infinities_go_to_extreme_codewords(cb, tie):
    got = nearest_index(np.array([-np.inf, np.inf]), cb, tie)
    assert got.tolist() == [0, len(cb) - 1]


@pytest.mark.spec("THM-QUANTIZE-MONOTONE")
@given(cb=codebooks(), xs=st.lists(finite_floats(64), min_size=2, max_size=50), tie=tie_rules)
def test_index_is_monotone(cb, xs, tie):
    x = np.sort(np.array(xs))
    idx = nearest_index(x, cb, tie).astype(np.int64)
    assert np.all(np.diff(idx) >= 0)


@pytest.mark.spec("DEF-QUANTIZE")
@given(cb=codebooks(min_size=2), tie=tie_rules,
       dtype=st.sampled_from([np.float16, ml_dtypes.bfloat16, np.float32, np.float64]))
def test_thresholds_are_the_last_value_kept(cb, tie, dtype):
    """u_i stays in cell i and the next value of the dtype leaves it (when it exists)."""
    u = thresholds(cb, tie, dtype)
    up = cb.tie_goes_up(tie)
    keys = total_order_key(u)
    for i, ui in enumerate(u.astype(np.float64)):
        if np.isfinite(ui):
            assert nearest_index_brute(ui, cb.values, up) <= i
        nxt = float(from_total_order_key(keys[i : i + 1] + keys.dtype.type(1), dtype).astype(np.float64)[0])
        if nxt == ui:  # −0.0 → +0.0: step once more
            nxt = float(from_total_order_key(keys[i : i + 1] + keys.dtype.type(2), dtype).astype(np.float64)[0])
        if np.isfinite(nxt):
            assert nearest_index_brute(nxt, cb.values, up) >= i + 1


@pytest.mark.spec("DEF-TIE-RULES")
def test_even_means_even_encoding_not_even_index():
    # E2M1: ±5 lie midway between 4 (code 0b0110, index 13) and 6 (0b0111, index 14),
    # −5 between −6 (0b1111, index 0) and −4 (0b1110, index 1).  RNE picks ±4.
    fp4 = get_format("float4_e2m1fn").codebook
    x = np.array([-5.0, 5.0])
    assert fp4.values[nearest_index(x, fp4, "even")].tolist() == [-4.0, 4.0]
    by_index = Codebook(fp4.values)
    assert by_index.values[nearest_index(x, by_index, "even")].tolist() == [-6.0, 6.0]


@pytest.mark.spec("DEF-TIE-RULES")
def test_directed_tie_rules():
    cb = Codebook([-2.0, -1.0, 0.0, 1.0, 2.0])
    x = np.array([-1.5, -0.5, 0.5, 1.5])
    assert nearest_index(x, cb, "down").tolist() == [0, 1, 2, 3]
    assert nearest_index(x, cb, "up").tolist() == [1, 2, 3, 4]
    assert nearest_index(x, cb, "away").tolist() == [0, 1, 3, 4]
    assert nearest_index(np.array([0.0]), SYM, "away").tolist() == [1]  # midpoint 0 goes up


@pytest.mark.spec("DEF-TIE-RULES", "DEF-CODEBOOK")
def test_even_rule_rejects_equal_parity_neighbours():
    cb = Codebook([0.0, 1.0], [2, 4])
    with pytest.raises(CodebookError) as e:
        nearest_index(np.array([0.5]), cb, "even")
    assert e.value.value == (0.0, 1.0)
    assert nearest_index(np.array([0.5]), cb, "down").tolist() == [0]


@pytest.mark.spec("DEF-CODEBOOK")
@pytest.mark.parametrize(
    "values, encodings, fragment",
    [
        ([], None, "empty"),
        ([1.0, 0.0], None, "not sorted"),
        ([0.0, -0.0], None, "duplicate"),
        ([0.0, np.nan], None, "not finite"),
        ([0.0, np.inf], None, "not finite"),
        ([[0.0, 1.0]], None, "1-D"),
        ([0.0, 1.0], [1, 1], "not distinct"),
        ([0.0, 1.0], [0, -1], "non-negative"),
        (["a", "b"], None, "floating"),
    ],
)
def test_bad_codebooks(values, encodings, fragment):
    with pytest.raises(CodebookError) as e:
        Codebook(values, encodings)
    assert fragment in str(e.value)


@pytest.mark.spec("DEF-VORONOI-CELLS")
@given(cb=codebooks(), xs=st.lists(finite_floats(32), min_size=1, max_size=20), tie=tie_rules)
def test_cells_partition_the_line_and_agree_with_quantize(cb, xs, tie):
    cells = voronoi_cells(cb, tie)
    idx = nearest_index(np.array(xs, dtype=np.float32), cb, tie)
    for x, i in zip(xs, idx):
        owners = [c.index for c in cells if c.contains(float(np.float32(x)))]
        assert owners == [int(i)]
    for a, b in zip(cells[:-1], cells[1:]):
        assert a.upper == b.lower and a.upper_closed != b.lower_closed


@pytest.mark.spec("DEF-QUANTIZE", "DEF-DOMAIN")
@pytest.mark.parametrize("dtype", [np.float16, ml_dtypes.bfloat16, np.float32, np.float64])
@pytest.mark.parametrize("fmt", ["int4", "float8_e4m3fn", "nf4", "float16"])
def test_zero_d_input_gives_zero_d_output(dtype, fmt):
    from natprec.reference import dequantize, quantize, voronoi_margin

    x = np.array(-0.3, dtype=dtype)
    q = quantize(x, fmt)
    assert isinstance(q, np.ndarray) and q.shape == ()
    assert dequantize(q, fmt).shape == () and voronoi_margin(x, fmt).shape == ()
    assert nearest_index(x, get_format("nf4").codebook).shape == ()
