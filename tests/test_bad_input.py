"""DEF-BAD-INPUT — the catalogue of spec/09-bad-input.md, row by row: exception type and ``.value``."""

import math

import ml_dtypes
import numpy as np
import pytest

from natprec.reference import (
    Codebook,
    CodebookError,
    EmptyInputError,
    InvalidDTypeError,
    InvalidParameterError,
    NaNInputError,
    NatprecError,
    NonFiniteInputError,
    ProblemTooLargeError,
    UnknownFormatError,
    all_finite_values,
    boundary_cost_joules,
    collision_probability,
    dequantize,
    discretized_entropy_bits,
    discretized_histogram,
    double_rounding,
    entropy_bits_from_counts,
    entropy_bootstrap_interval,
    epilogue_order_comparison,
    gaussian_discretized_entropy_bits,
    get_format,
    injectivity_report,
    is_free_boundary,
    landauer_energy_joules,
    margin_guarantees_codes,
    min_voronoi_margin,
    natural_precision,
    nearest_index,
    operational_natural_precision_bits,
    quantize,
    realized_support,
    task_merge_check,
    task_quotient,
    uniform_discretized_entropy_bits,
    voronoi_margin,
)

nan, inf = math.nan, math.inf
ident = lambda z: z[:, None]  # noqa: E731

ROWS = [
    ("integer array", lambda: realized_support(np.array([1, 2])), InvalidDTypeError, "int64"),
    ("list of ints", lambda: realized_support([1, 2]), InvalidDTypeError, "int64"),
    ("complex", lambda: realized_support(np.array([1j])), InvalidDTypeError, "complex128"),
    ("bool", lambda: realized_support(np.array([True])), InvalidDTypeError, "bool"),
    ("object", lambda: realized_support(np.array([1.0], dtype=object)), InvalidDTypeError, "object"),
    ("float8 input", lambda: realized_support(np.array([1.0], ml_dtypes.float8_e4m3fn)), InvalidDTypeError, "float8_e4m3fn"),
    ("empty support", lambda: natural_precision(np.array([])), EmptyInputError, 0),
    ("all-NaN omitted", lambda: natural_precision([nan], nan_policy="omit"), EmptyInputError, 0),
    ("empty histogram", lambda: discretized_histogram(np.array([]), 1.0), EmptyInputError, 0),
    ("empty census", lambda: injectivity_report(np.array([]), "int4"), EmptyInputError, (0,)),
    ("empty min margin", lambda: min_voronoi_margin(np.array([]), "int4"), EmptyInputError, (0,)),
    ("empty counts", lambda: entropy_bits_from_counts(np.array([0, 0])), EmptyInputError, 0),
    ("NaN raise", lambda: natural_precision([1.0, nan]), NaNInputError, 1),
    ("NaN propagate, no NaN code", lambda: quantize([nan], "float4_e2m1fn", nan_policy="propagate"), NaNInputError, 0),
    ("NaN to block format", lambda: quantize([1.0, nan], "mxfp4"), NaNInputError, 1),
    ("omit for elementwise", lambda: quantize([1.0], "float8_e4m3fn", nan_policy="omit"), InvalidParameterError, "omit"),
    ("propagate for histogram", lambda: discretized_histogram([1.0], 1.0, nan_policy="propagate"), InvalidParameterError, "propagate"),
    ("unknown policy", lambda: realized_support([1.0], nan_policy="ignore"), InvalidParameterError, "ignore"),
    ("NaN in double rounding", lambda: double_rounding([1.0, nan], "bfloat16", "float8_e4m3fn"), NonFiniteInputError, nan),
    ("Inf to block format", lambda: quantize([1.0, inf], "mxfp4"), NonFiniteInputError, inf),
    ("float64 beyond float32", lambda: quantize(np.array([1e300]), "mxfp4"), NonFiniteInputError, 1e300),
    ("Inf to histogram", lambda: discretized_histogram([1.0, inf], 1.0), NonFiniteInputError, inf),
    ("non-finite G", lambda: task_quotient([1.0, 2.0], lambda z: np.where(z == 1, inf, z), 1.0), NonFiniteInputError, 1.0),
    ("empty codebook", lambda: Codebook([]), CodebookError, []),
    ("unsorted codebook", lambda: Codebook([0.0, 2.0, 1.0]), CodebookError, 1.0),
    ("duplicate codewords", lambda: Codebook([0.0, 1.0, 1.0]), CodebookError, 1.0),
    ("NaN codeword", lambda: Codebook([0.0, nan]), CodebookError, nan),
    ("Inf codeword", lambda: Codebook([0.0, inf]), CodebookError, inf),
    ("2-D codebook", lambda: Codebook([[0.0, 1.0]]), CodebookError, (1, 2)),
    ("integer codeword 2**53+1", lambda: Codebook([0, 2**53 + 1]), CodebookError, 2**53 + 1),
    ("repeated encodings", lambda: Codebook([0.0, 1.0], [1, 1]), CodebookError, [1, 1]),
    ("negative encoding", lambda: Codebook([0.0, 1.0], [0, -1]), CodebookError, -1),
    ("even tie, same parity", lambda: nearest_index(np.array([0.5]), Codebook([0.0, 1.0, 2.0], [0, 2, 1]), "even"), CodebookError, (0.0, 1.0)),
    ("encodings beyond 16 bits", lambda: quantize([0.3], Codebook([0.0, 1.0], [0, 2**20 + 1]), tie="down"), CodebookError, 2**20 + 1),
    ("unknown tie", lambda: quantize([1.0], "int8", tie="odd"), InvalidParameterError, "odd"),
    ("delta 0", lambda: discretized_histogram([1.0], 0.0), InvalidParameterError, 0.0),
    ("delta < 0", lambda: discretized_histogram([1.0], -1.0), InvalidParameterError, -1.0),
    ("delta text", lambda: discretized_histogram([1.0], "a"), InvalidParameterError, "a"),
    ("origin inf", lambda: discretized_histogram([1.0], 1.0, origin=inf), InvalidParameterError, inf),
    ("bin index 2**53", lambda: discretized_histogram([2.0**53], 1.0), InvalidParameterError, 1.0),
    ("T = 0", lambda: landauer_energy_joules(1.0, 0.0, 0.0), InvalidParameterError, 0.0),
    ("T < 0", lambda: landauer_energy_joules(1.0, 0.0, -1.0), InvalidParameterError, -1.0),
    ("T inf", lambda: landauer_energy_joules(1.0, 0.0, inf), NonFiniteInputError, inf),
    ("H inf", lambda: boundary_cost_joules(inf, 4), NonFiniteInputError, inf),
    ("negative entropy", lambda: is_free_boundary(-1, 4), InvalidParameterError, -1),
    ("tau < 0", lambda: task_quotient([1.0], ident, -1.0), InvalidParameterError, -1.0),
    ("tau < 0 merge", lambda: task_merge_check([1.0], "int4", ident, -1.0), InvalidParameterError, -1.0),
    ("eta < 0", lambda: margin_guarantees_codes([0.25], "int4", -1.0), InvalidParameterError, -1.0),
    ("epsilon < 0", lambda: operational_natural_precision_bits([1.0], 1.0, epsilon=-1), InvalidParameterError, -1),
    ("sigma <= 0", lambda: gaussian_discretized_entropy_bits(0.0, 1.0), InvalidParameterError, 0.0),
    ("b <= a", lambda: uniform_discretized_entropy_bits(1.0, 1.0, 0.1), InvalidParameterError, (1.0, 1.0)),
    ("percentile bootstrap", lambda: entropy_bootstrap_interval([1.0], 1.0, method="percentile"), InvalidParameterError, "percentile"),
    ("confidence 1", lambda: entropy_bootstrap_interval([1.0], 1.0, confidence=1.0), InvalidParameterError, 1.0),
    ("one resample", lambda: entropy_bootstrap_interval([1.0], 1.0, n_resamples=1), InvalidParameterError, 1),
    ("float counts", lambda: entropy_bits_from_counts(np.array([1.0, 2.0])), InvalidParameterError, "float64"),
    ("negative count", lambda: entropy_bits_from_counts(np.array([1, -2])), InvalidParameterError, -2),
    ("float counts (delta)", lambda: collision_probability(np.array([1.0]), np.array([0])), InvalidParameterError, "float64"),
    ("support_size < 0", lambda: natural_precision(support_size=-1), InvalidParameterError, -1),
    ("support_size bool", lambda: natural_precision(support_size=True), InvalidParameterError, True),
    ("block size 0", lambda: get_format("mxfp4", block_size=0), InvalidParameterError, 0),
    ("block size 2.5", lambda: get_format("mxfp4", block_size=2.5), InvalidParameterError, 2.5),
    ("unknown scale rule", lambda: get_format("mxfp4", scale_rule="ceil"), InvalidParameterError, "ceil"),
    ("option on element format", lambda: get_format("int8", block_size=4), InvalidParameterError, ["block_size"]),
    ("saturate=False impossible", lambda: quantize([7.0], "float4_e2m1fn", saturate=False), InvalidParameterError, False),
    ("saturate=False block", lambda: quantize([7.0], "mxfp4", saturate=False), InvalidParameterError, False),
    ("unknown format", lambda: get_format("fp3"), UnknownFormatError, "fp3"),
    ("non-string format", lambda: get_format(3), UnknownFormatError, 3),
    ("wrong format kind", lambda: double_rounding([1.0], "mxfp4", "int8"), InvalidParameterError, None),
    ("invalid code", lambda: dequantize(np.array([0x7F], np.uint8), "float4_e2m1fn"), InvalidParameterError, 127),
    ("float codes", lambda: dequantize(np.array([1.0]), "int8"), InvalidDTypeError, "float64"),
    ("block result, element format", lambda: dequantize(quantize([1.0], "mxfp4"), "int8"), InvalidParameterError, "mxfp4"),
    ("G wrong shape", lambda: task_quotient([1.0, 2.0], lambda z: z[:1], 1.0), InvalidParameterError, (1,)),
    ("too many pairs", lambda: task_merge_check(np.linspace(0, 1, 2000), "binary", ident, 10.0, max_pairs=10), ProblemTooLargeError, None),
    ("empty harness input", lambda: double_rounding(np.array([]), "bfloat16", "nf4"), EmptyInputError, (0,)),
    ("acc beyond float32", lambda: epilogue_order_comparison(np.array([1e300]), 1.0, 0.0, "relu", "nf4"), NonFiniteInputError, 1e300),
    ("unknown activation", lambda: epilogue_order_comparison([1.0], 1.0, 0.0, "tanh", "float8_e4m3fn"), InvalidParameterError, "tanh"),
    ("non-16-bit enumeration", lambda: all_finite_values(np.float32), InvalidParameterError, "float32"),
]


def _same(a, b):
    if isinstance(b, float) and math.isnan(b):
        return isinstance(a, float) and math.isnan(a)
    return a == b


@pytest.mark.spec("DEF-BAD-INPUT")
@pytest.mark.parametrize("label, call, exc, value", ROWS, ids=[r[0] for r in ROWS])
def test_catalogue_row(label, call, exc, value):
    with pytest.raises(exc) as e:
        call()
    assert isinstance(e.value, NatprecError)
    if value is None:  # rows whose .value is a composite: only require that one is set
        assert e.value.value is not None
    else:
        assert _same(e.value.value, value), (e.value.value, value)
    assert str(e.value)  # a message, not just a type


@pytest.mark.spec("DEF-BAD-INPUT", "DEF-DOMAIN")
def test_accepted_unusual_inputs():
    assert realized_support(np.array([1.0, 2.0, 2.0], ">f4")).values.tolist() == [1.0, 2.0]
    assert realized_support(np.arange(10, dtype=np.float32)[::3]).values.tolist() == [0.0, 3.0, 6.0, 9.0]
    assert realized_support([]).size == 0
    assert voronoi_margin(np.zeros(0), "int4").shape == (0,)
    assert quantize(np.arange(33, dtype=np.float32), "mxfp4").scales.tolist() == [129, 130]
    assert quantize([inf, -inf], "float8_e4m3fn").tolist() == [127, 255]
    assert np.isnan(discretized_entropy_bits([1.0, nan], 1.0, nan_policy="propagate"))
    assert quantize(np.arange(64, dtype=">f4")[::2], "mxfp4").scales.tolist() == [130]


@pytest.mark.spec("DEF-BAD-INPUT", "DEF-ENTROPY-DISCRETIZED", "DEF-CODEBOOK", "DEF-NATPREC-TASK")
def test_review_edge_cases():
    # counts summing past 2**63 stay exact
    assert entropy_bits_from_counts(np.array([2**62, 2**62], dtype=np.uint64)) == 1.0
    assert entropy_bits_from_counts(np.array([2**62] * 4, dtype=np.uint64)) == 2.0
    # downstream returning booleans is a parameter error, not an IndexError
    with pytest.raises(InvalidParameterError):
        task_quotient([0.0, 1.0, 2.0], lambda z: z > 0.5, 0.5)
    # byte-swapped codebook values are accepted like every other byte-swapped input
    assert Codebook(np.array([0.0, 1.0], ">f8")).values.tolist() == [0.0, 1.0]
    with pytest.raises(InvalidParameterError):
        uniform_discretized_entropy_bits("a", 1.0, 0.5)
    # omit always flattens: the same blocks with or without a NaN present
    a = np.array([[1.0, 0.35], [100.0, 30.0]], dtype=np.float32)
    b = a.copy()
    b[1, 1] = np.nan
    assert injectivity_report(a, "nf4_absmax64", nan_policy="omit").codebook_size == 16
    assert injectivity_report(b, "nf4_absmax64", nan_policy="omit").codebook_size == 16
