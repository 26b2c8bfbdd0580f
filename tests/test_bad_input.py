"""DEF-BAD-INPUT — the catalogue of spec/09-bad-input.md, row by row: exception type and ``.value``.

The table in spec/09 drives the cases: each case names its row (the row's first cell,
verbatim), and test_catalogue_and_cases_agree fails on a row without a case, a case without a
row, or a case whose exception is not one the row names (or that raises where the row says
"accepted").
"""

import ast
import math
import re
import warnings
from pathlib import Path

import ml_dtypes
import numpy as np
import pytest

from natprec.conformance.harness import assert_bits_equal
from natprec.reference import (
    CellPairs,
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
    block_format_names,
    boundary_cost_joules,
    collision_probability,
    dequantize,
    discretized_entropy_bits,
    discretized_histogram,
    double_rounding,
    entropy_bits_from_counts,
    entropy_bootstrap_interval,
    epilogue_order_comparison,
    erased_information,
    finish_census,
    gaussian_discretized_entropy_bits,
    get_format,
    ggd,
    injectivity_report,
    is_free_boundary,
    landauer_energy_joules,
    margin_guarantees_codes,
    min_voronoi_margin,
    natural_precision,
    nearest_index,
    operational_natural_precision_bits,
    prepare_injectivity,
    quantize,
    ratedistortion,
    realized_support,
    sparse_gaussian_discretized_entropy_bits,
    task_merge_check,
    task_quotient,
    uniform_discretized_entropy_bits,
    voronoi_margin,
)

ROOT = Path(__file__).resolve().parents[1]
nan, inf = math.nan, math.inf
ident = lambda z: z[:, None]  # noqa: E731
_F32, _U8 = np.float32, np.uint8


def _catalogue() -> dict[str, set[str]]:
    """spec/09's table: a row's first cell -> the exception classes its result names (none: accepted)."""
    text = (ROOT / "spec" / "09-bad-input.md").read_text()
    lines = text[text.index("| bad input | example call | result |"):].splitlines()[2:]
    rows = {}
    for line in lines[: next(i for i, line in enumerate(lines) if not line.startswith("|"))]:
        first, _, result, _ = (c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1])
        assert first not in rows, f"spec/09 has two rows {first!r}"
        excs = set(re.findall(r"`(\w+Error)`", result))
        assert bool(excs) != ("accepted" in result), f"spec/09 row {first!r}: result names an exception or says accepted"
        rows[first] = excs
    return rows


CATALOGUE = _catalogue()

#: row -> cases (label, call, exception, .value); a .value of ``...``: a composite, only required to be set.
RAISES = {
    "integer array": [("integer array", lambda: realized_support(np.array([1, 2])), InvalidDTypeError, "int64")],
    "Python int / list of ints": [
        ("list of ints", lambda: realized_support([1, 2]), InvalidDTypeError, "int64"),
        ("Python int", lambda: realized_support(3), InvalidDTypeError, "int64"),
    ],
    "complex, bool, object, longdouble": [
        ("complex", lambda: realized_support(np.array([1j])), InvalidDTypeError, "complex128"),
        ("bool", lambda: realized_support(np.array([True])), InvalidDTypeError, "bool"),
        ("object", lambda: realized_support(np.array([1.0], dtype=object)), InvalidDTypeError, "object"),
    ],
    "ml_dtypes 8-bit float as input": [
        ("float8 input", lambda: realized_support(np.array([1.0], ml_dtypes.float8_e4m3fn)), InvalidDTypeError, "float8_e4m3fn"),
    ],
    "empty integer ndarray": [("empty integer ndarray", lambda: realized_support(np.array([], np.int64)), InvalidDTypeError, "int64")],
    "empty support where a value is needed": [("empty support", lambda: natural_precision(np.array([])), EmptyInputError, 0)],
    "all-NaN under omit": [("all-NaN omitted", lambda: natural_precision([nan], nan_policy="omit"), EmptyInputError, 0)],
    "empty input to histogram / entropy": [
        ("empty histogram", lambda: discretized_histogram(np.array([]), 1.0), EmptyInputError, 0),
        ("empty entropy", lambda: discretized_entropy_bits(np.array([]), 1.0), EmptyInputError, 0),
    ],
    "empty input to the census": [
        ("empty census", lambda: injectivity_report(np.array([]), "int4"), EmptyInputError, (0,)),
        ("empty erasure", lambda: erased_information(np.array([]), "int4"), EmptyInputError, (0,)),
    ],
    "empty input to min margin": [("empty min margin", lambda: min_voronoi_margin(np.array([]), "int4"), EmptyInputError, (0,))],
    "empty input to the measurement harnesses": [
        ("empty harness input", lambda: double_rounding(np.array([]), "bfloat16", "nf4"), EmptyInputError, (0,)),
        ("empty epilogue input", lambda: epilogue_order_comparison([], 1.0, 0.0, "relu", "float8_e4m3fn"), EmptyInputError, (0,)),
    ],
    "empty counts": [
        ("empty counts", lambda: entropy_bits_from_counts(np.array([0, 0])), EmptyInputError, 0),
        ("empty counts (delta)", lambda: collision_probability(np.array([], np.int64), np.array([], np.int64)), EmptyInputError, 0),
    ],
    'NaN, `nan_policy="raise"` (default)': [("NaN raise", lambda: natural_precision([1.0, nan]), NaNInputError, 1)],
    'NaN, `"propagate"`, format without a NaN code': [
        ("NaN propagate, no NaN code", lambda: quantize([nan], "float4_e2m1fn", nan_policy="propagate"), NaNInputError, 0),
    ],
    "NaN to a block format": [
        ("NaN to block format", lambda: quantize([1.0, nan], "mxfp4"), NaNInputError, 1),
        ("NaN to block margin", lambda: voronoi_margin([1.0, nan], "mxfp4", nan_policy="propagate"), NaNInputError, 1),
        ("propagate to block quantize", lambda: quantize([1.0, nan], "mxfp4", nan_policy="propagate"), InvalidParameterError, "propagate"),
    ],
    "policy not accepted by the function": [
        ("omit for elementwise", lambda: quantize([1.0], "float8_e4m3fn", nan_policy="omit"), InvalidParameterError, "omit"),
        ("propagate for histogram", lambda: discretized_histogram([1.0], 1.0, nan_policy="propagate"), InvalidParameterError, "propagate"),
        ("propagate for census", lambda: injectivity_report([1.0], "int4", nan_policy="propagate"), InvalidParameterError, "propagate"),
        ("propagate for erasure", lambda: erased_information([1.0], "int4", nan_policy="propagate"), InvalidParameterError, "propagate"),
        ("propagate for quotient", lambda: task_quotient([1.0], ident, 1.0, nan_policy="propagate"), InvalidParameterError, "propagate"),
    ],
    "unknown policy": [
        ("unknown policy", lambda: realized_support([1.0], nan_policy="ignore"), InvalidParameterError, "ignore"),
        ("policy None", lambda: realized_support([1.0], nan_policy=None), InvalidParameterError, None),
    ],
    "NaN / ±Inf in the measurement harnesses": [
        ("NaN in double rounding", lambda: double_rounding([1.0, nan], "bfloat16", "float8_e4m3fn"), NonFiniteInputError, nan),
        ("Inf in epilogue", lambda: epilogue_order_comparison([1.0, inf], 1.0, 0.0, "relu", "float8_e4m3fn"), NonFiniteInputError, inf),
    ],
    "non-finite t = fl32(fl32(acc·scale) + bias)": [
        ("t overflows", lambda: epilogue_order_comparison([3e38], 10.0, 0.0, "relu", "float8_e4m3fn"), NonFiniteInputError, inf),
        ("bias NaN", lambda: epilogue_order_comparison([1.0], 1.0, nan, "relu", "float8_e4m3fn"), NonFiniteInputError, nan),
    ],
    "float64 `acc` beyond the float32 range": [
        ("acc beyond float32", lambda: epilogue_order_comparison(np.array([1e300]), 1.0, 0.0, "relu", "nf4"), NonFiniteInputError, 1e300),
    ],
    "±Inf to a block format": [("Inf to block format", lambda: quantize([1.0, inf], "mxfp4"), NonFiniteInputError, inf)],
    "float64 beyond the float32 range, to a block format": [
        ("float64 beyond float32", lambda: quantize(np.array([1e300]), "mxfp4"), NonFiniteInputError, 1e300),
    ],
    "±Inf to a histogram": [("Inf to histogram", lambda: discretized_histogram([1.0, inf], 1.0), NonFiniteInputError, inf)],
    "non-finite output of G": [
        ("non-finite G", lambda: task_quotient([1.0, 2.0], lambda z: np.where(z == 1, inf, z), 1.0), NonFiniteInputError, 1.0),
    ],
    "empty codebook": [("empty codebook", lambda: Codebook([]), CodebookError, [])],
    "unsorted codebook": [("unsorted codebook", lambda: Codebook([0.0, 2.0, 1.0]), CodebookError, 1.0)],
    "duplicate codewords": [("duplicate codewords", lambda: Codebook([0.0, 1.0, 1.0]), CodebookError, 1.0)],
    "non-finite codeword": [
        ("NaN codeword", lambda: Codebook([0.0, nan]), CodebookError, nan),
        ("Inf codeword", lambda: Codebook([0.0, inf]), CodebookError, inf),
    ],
    "non-1-D codebook": [("2-D codebook", lambda: Codebook([[0.0, 1.0]]), CodebookError, (1, 2))],
    "complex or string codebook": [
        ("complex codebook", lambda: Codebook([1j]), CodebookError, "complex128"),
        ("string codebook", lambda: Codebook(["a"]), CodebookError, "<U1"),
    ],
    "integer codeword not exact in float64": [
        ("integer codeword 2**53+1", lambda: Codebook([0, 2**53 + 1]), CodebookError, 2**53 + 1),
        ("integer codeword 2**53+3", lambda: Codebook([0, 2**53 + 3]), CodebookError, 2**53 + 3),
    ],
    "bad encodings": [
        ("repeated encodings", lambda: Codebook([0.0, 1.0], [1, 1]), CodebookError, [1, 1]),
        ("negative encoding", lambda: Codebook([0.0, 1.0], [0, -1]), CodebookError, -1),
    ],
    "codebook with an encoding ≥ 2¹⁶, used as a format": [
        ("encodings beyond 16 bits", lambda: quantize([0.3], Codebook([0.0, 1.0], [0, 2**20 + 1]), tie="down"), CodebookError, 2**20 + 1),
    ],
    'tie="even" with equal-parity neighbours': [
        ("even tie, same parity", lambda: nearest_index(np.array([0.5]), Codebook([0.0, 1.0, 2.0], [0, 2, 1]), "even"), CodebookError, (0.0, 1.0)),
    ],
    "unknown tie rule": [("unknown tie", lambda: quantize([1.0], "int8", tie="odd"), InvalidParameterError, "odd")],
    "Δ ≤ 0, NaN or non-numeric": [
        ("delta 0", lambda: discretized_histogram([1.0], 0.0), InvalidParameterError, 0.0),
        ("delta < 0", lambda: discretized_histogram([1.0], -1.0), InvalidParameterError, -1.0),
        ("delta NaN", lambda: discretized_histogram([1.0], nan), InvalidParameterError, nan),
        ("delta text", lambda: discretized_histogram([1.0], "a"), InvalidParameterError, "a"),
    ],
    "non-finite origin": [("origin inf", lambda: discretized_histogram([1.0], 1.0, origin=inf), InvalidParameterError, inf)],
    "bin index reaching 2⁵³": [
        ("bin index 2**53", lambda: discretized_histogram([2.0**53], 1.0), InvalidParameterError, 1.0),
        ("delta 1e-300", lambda: discretized_histogram([1.0], 1e-300), InvalidParameterError, 1e-300),
    ],
    "T ≤ 0": [
        ("T = 0", lambda: landauer_energy_joules(1.0, 0.0, 0.0), InvalidParameterError, 0.0),
        ("T < 0", lambda: landauer_energy_joules(1.0, 0.0, -1.0), InvalidParameterError, -1.0),
        ("T = 0 (erasure)", lambda: erased_information([1.0], "int4", temperature_kelvin=0.0), InvalidParameterError, 0.0),
    ],
    "T or H non-finite": [
        ("T inf", lambda: landauer_energy_joules(1.0, 0.0, inf), NonFiniteInputError, inf),
        ("H NaN", lambda: landauer_energy_joules(nan), NonFiniteInputError, nan),
        ("H inf", lambda: boundary_cost_joules(inf, 4), NonFiniteInputError, inf),
        ("T inf (erasure)", lambda: erased_information([1.0], "int4", temperature_kelvin=inf), NonFiniteInputError, inf),
    ],
    "negative entropy": [
        ("negative entropy", lambda: is_free_boundary(-1, 4), InvalidParameterError, -1),
        ("negative entropy (energy)", lambda: landauer_energy_joules(-1.0), InvalidParameterError, -1.0),
    ],
    "τ < 0 or NaN": [
        ("tau < 0", lambda: task_quotient([1.0], ident, -1.0), InvalidParameterError, -1.0),
        ("tau NaN", lambda: task_quotient([1.0], ident, nan), InvalidParameterError, nan),
        ("tau < 0 merge", lambda: task_merge_check([1.0], "int4", ident, -1.0), InvalidParameterError, -1.0),
    ],
    "η < 0 or NaN": [
        ("eta < 0", lambda: margin_guarantees_codes([0.25], "int4", -1.0), InvalidParameterError, -1.0),
        ("eta NaN", lambda: margin_guarantees_codes([0.25], "int4", nan), InvalidParameterError, nan),
    ],
    "ε < 0": [("epsilon < 0", lambda: operational_natural_precision_bits([1.0], 1.0, epsilon=-1), InvalidParameterError, -1)],
    "σ ≤ 0; b ≤ a; s ∉ [0,1]": [
        ("sigma <= 0", lambda: gaussian_discretized_entropy_bits(0.0, 1.0), InvalidParameterError, 0.0),
        ("b <= a", lambda: uniform_discretized_entropy_bits(1.0, 1.0, 0.1), InvalidParameterError, (1.0, 1.0)),
        ("s > 1", lambda: sparse_gaussian_discretized_entropy_bits(1.0, 0.1, 1.5), InvalidParameterError, 1.5),
    ],
    'bootstrap: `method="percentile"`, confidence ∉ (0,1), n_resamples < 2': [
        ("percentile bootstrap", lambda: entropy_bootstrap_interval([1.0], 1.0, method="percentile"), InvalidParameterError, "percentile"),
        ("confidence 1", lambda: entropy_bootstrap_interval([1.0], 1.0, confidence=1.0), InvalidParameterError, 1.0),
        ("one resample", lambda: entropy_bootstrap_interval([1.0], 1.0, n_resamples=1), InvalidParameterError, 1),
    ],
    "bad counts": [
        ("float counts", lambda: entropy_bits_from_counts(np.array([1.0, 2.0])), InvalidParameterError, "float64"),
        ("negative count", lambda: entropy_bits_from_counts(np.array([1, -2])), InvalidParameterError, -2),
        ("float counts (delta)", lambda: collision_probability(np.array([1.0]), np.array([0])), InvalidParameterError, "float64"),
    ],
    "bad `support_size`": [
        ("support_size < 0", lambda: natural_precision(support_size=-1), InvalidParameterError, -1),
        ("support_size bool", lambda: natural_precision(support_size=True), InvalidParameterError, True),
        ("x and support_size", lambda: natural_precision([1.0], support_size=1), InvalidParameterError, (False, 1)),
    ],
    "block size not a positive int": [
        ("block size 0", lambda: get_format("mxfp4", block_size=0), InvalidParameterError, 0),
        ("block size 2.5", lambda: get_format("mxfp4", block_size=2.5), InvalidParameterError, 2.5),
    ],
    "unknown option or `scale_rule`": [
        ("unknown scale rule", lambda: get_format("mxfp4", scale_rule="ceil"), InvalidParameterError, "ceil"),
        ("option on element format", lambda: get_format("int8", block_size=4), InvalidParameterError, ["block_size"]),
        ("scale rule on absmax", lambda: get_format("nf4_absmax64", scale_rule="floor"), InvalidParameterError, "floor"),
    ],
    "`saturate=False` where impossible": [
        ("saturate=False impossible", lambda: quantize([7.0], "float4_e2m1fn", saturate=False), InvalidParameterError, False),
        ("saturate=False block", lambda: quantize([7.0], "mxfp4", saturate=False), InvalidParameterError, False),
    ],
    "unknown format name": [("unknown format", lambda: get_format("fp3"), UnknownFormatError, "fp3")],
    "non-string, non-format object": [
        ("non-string format", lambda: get_format(3), UnknownFormatError, 3),
        ("object as format", lambda: quantize([1.0], object()), UnknownFormatError, ...),
    ],
    "wrong format kind": [
        ("wrong format kind", lambda: double_rounding([1.0], "mxfp4", "int8"), InvalidParameterError, ("mxfp4", "int8")),
        ("block format to epilogue", lambda: epilogue_order_comparison([1.0], 1., 0., "relu", "mxfp4"), InvalidParameterError, ("mxfp4", "bfloat16")),
    ],
    "invalid code to dequantize": [("invalid code", lambda: dequantize(np.array([0x7F], np.uint8), "float4_e2m1fn"), InvalidParameterError, 127)],
    "float codes to dequantize": [("float codes", lambda: dequantize(np.array([1.0]), "int8"), InvalidDTypeError, "float64")],
    "block result with an element format": [
        ("block result, element format", lambda: dequantize(quantize([1.0], "mxfp4"), "int8"), InvalidParameterError, "mxfp4"),
    ],
    "G returns a wrong shape": [("G wrong shape", lambda: task_quotient([1.0, 2.0], lambda z: z[:1], 1.0), InvalidParameterError, (1,))],
    "too many merged pairs": [
        ("too many pairs", lambda: task_merge_check(np.linspace(0, 1, 2000), "binary", ident, 10.0, max_pairs=10), ProblemTooLargeError, 1999000),
    ],
    "unknown activation": [
        ("unknown activation", lambda: epilogue_order_comparison([1.0], 1.0, 0.0, "tanh", "float8_e4m3fn"), InvalidParameterError, "tanh"),
    ],
    "exhaustive enumeration of a non-16-bit dtype": [
        ("non-16-bit enumeration", lambda: all_finite_values(np.float32), InvalidParameterError, "float32"),
    ],
    "tie rule that is not a string": [("tie list", lambda: quantize([1.0], "nf4", tie=["even"]), InvalidParameterError, ["even"])],
    "non-numeric or bool parameter": [
        ("delta True", lambda: discretized_histogram([1.0], True), InvalidParameterError, True),
        ("origin string", lambda: discretized_histogram([1.0], 1.0, origin="a"), InvalidParameterError, "a"),
        ("eta string", lambda: margin_guarantees_codes([0.25], "int4", "x"), InvalidParameterError, "x"),
        ("tau string", lambda: task_quotient([1.0], ident, "x"), InvalidParameterError, "x"),
        ("scale string", lambda: epilogue_order_comparison([1.0], "2", 0.0, "relu", "int8"), InvalidParameterError, "2"),
    ],
    "bad `max_listed`": [
        ("max_listed -1", lambda: injectivity_report([1.0, 2.0], "int4", max_listed=-1), InvalidParameterError, -1),
        ("max_listed string", lambda: injectivity_report([1.0, 2.0], "int4", max_listed="a"), InvalidParameterError, "a"),
    ],
    "census pairs that do not cover x": [
        ("pairs short", lambda: finish_census(prepare_injectivity([0.1, 0.2, 0.2, 1.0], "int4"),
                                              [CellPairs(np.array([0, 0, 1]), np.array([0.1, 0.2, 1.0]), np.array([1, 1, 1]))]),
         InvalidParameterError, 3),
        ("pairs count 0", lambda: finish_census(prepare_injectivity([0.1, 0.2, 0.2, 1.0], "int4"),
                                                [CellPairs(np.array([0, 0, 1]), np.array([0.1, 0.2, 1.0]), np.array([1, 0, 3]))]),
         InvalidParameterError, 0),
        ("pairs dtype", lambda: finish_census(prepare_injectivity([0.1, 0.2, 0.2, 1.0], "int4"),
                                              [CellPairs(np.array([0, 0, 1]), np.array([0.1, 0.2, 1.0], np.float32), np.array([1, 2, 1]))]),
         InvalidParameterError, ("int64", "float32", "int64")),
    ],
    "bad bootstrap seed": [
        ("seed -1", lambda: entropy_bootstrap_interval([1.0, 2.0], 1.0, seed=-1), InvalidParameterError, -1),
        ("seed 1.5", lambda: entropy_bootstrap_interval([1.0, 2.0], 1.0, seed=1.5), InvalidParameterError, 1.5),
        ("seed True", lambda: entropy_bootstrap_interval([1.0, 2.0], 1.0, seed=True), InvalidParameterError, True),
    ],
    "ragged list, or an object NumPy cannot read": [
        ("ragged list", lambda: realized_support([[1.0], [1.0, 2.0]]), InvalidDTypeError, "ragged or non-numeric sequence"),
    ],
    "8-bit float codebook": [
        ("float8 codebook", lambda: Codebook(np.array([1.0, 2.0]).astype(ml_dtypes.float8_e4m3fn)), CodebookError, "float8_e4m3fn"),
    ],
    "codewords further apart than the float64 range, to the margin": [
        ("gap past float64", lambda: voronoi_margin([0.0], Codebook([-1.7e308, 1.7e308])), CodebookError, (-1.7e308, 1.7e308)),
    ],
    "unknown block layout, or a flat layout outside absmax formats": [
        ("layout rows", lambda: get_format("nf4_absmax64", layout="rows"), InvalidParameterError, "rows"),
        ("mxfp4 flat", lambda: get_format("mxfp4", layout="flat"), InvalidParameterError, "flat"),
        ("nvfp4 flat", lambda: get_format("nvfp4", layout="flat"), InvalidParameterError, "flat"),
    ],
    "block codes decoded with another layout": [
        ("flat as last axis", lambda: dequantize(quantize(np.ones((4, 64), _F32), get_format("nf4_absmax64", layout="flat")),
                                                  "nf4_absmax64"), InvalidParameterError, "flat"),
    ],
    "block codes decoded with another block size": [
        ("mxfp4 block 16 as 32", lambda: dequantize(quantize(np.ones(64, _F32), get_format("mxfp4", block_size=16)), "mxfp4"),
         InvalidParameterError, 16),
        ("nvfp4 block 32 as 16", lambda: dequantize(quantize(np.ones(64, _F32), get_format("nvfp4", block_size=32)), "nvfp4"),
         InvalidParameterError, 32),
        ("nf4 block 32 as 64", lambda: dequantize(quantize(np.ones(64, _F32), get_format("nf4_absmax64", block_size=32)),
                                                   "nf4_absmax64"), InvalidParameterError, 32),
    ],
    "GGD closed form past the float64 range": [
        ("kurtosis at 0.001", lambda: ggd.kurtosis(0.001), InvalidParameterError, 0.001),
        ("unit alpha at 0.0005", lambda: ggd.unit_variance_alpha(0.0005), InvalidParameterError, 0.0005),
    ],
    "R(D) grid that misses the source's variance": [
        ("heavy-tailed grid", lambda: ratedistortion.rate_distortion_ggd(0.01, 0.01), InvalidParameterError, ...),
    ],
    "sample magnitudes whose squares leave float64": [
        ("ML fit of huge samples", lambda: ggd.fit_ml([1.7e308, -1.7e308, 1.0]), InvalidParameterError, 1.7e308),
        ("moment fit of subnormals", lambda: ggd.fit_moments([5e-324, -5e-324, 1e-310]), InvalidParameterError, 5e-324),
        ("operating point of huge samples", lambda: ratedistortion.format_operating_point([1e300, 1.0], "nf4"),
         InvalidParameterError, 1e300),
        ("block operating point of huge samples", lambda: ratedistortion.format_operating_point(np.array([1e300, 1.0]), "mxfp4"),
         InvalidParameterError, 1e300),
    ],
    "Landauer bound past the float64 range": [
        ("Landauer overflow", lambda: landauer_energy_joules(1e300, 0.0, 1e40), InvalidParameterError, (1e300, 1e40)),
    ],
}

#: row -> cases (label, call, result): an accepted input, and what it gives, bit for bit (dtype included).
ACCEPTED = {
    "Python float / list of floats": [
        ("Python float", lambda: realized_support(3.0).values, np.array([3.0])),
        ("list of floats", lambda: realized_support([2.0, 1.0, 2.0]).values, np.array([1.0, 2.0])),
    ],
    "byte-swapped array": [
        ("byte-swapped support", lambda: realized_support(np.array([1.0, 2.0, 2.0], ">f4")).values, np.array([1.0, 2.0], _F32)),
        ("byte-swapped block", lambda: quantize(np.arange(64, dtype=">f4")[::2], "mxfp4").scales, np.array([130], _U8)),
    ],
    "non-contiguous array": [
        ("strided support", lambda: realized_support(np.arange(10, dtype=np.float32)[::3]).values, np.array([0.0, 3.0, 6.0, 9.0], _F32)),
    ],
    "empty input to `realized_support`": [("empty support size", lambda: realized_support([]).size, 0)],
    "empty input to per-element functions": [
        ("empty margin", lambda: voronoi_margin([], "int4"), np.zeros(0)),
        ("empty block quantize", lambda: quantize(np.zeros(0, np.float32), "mxfp4").codes.shape, (0,)),
    ],
    'NaN, `"omit"`': [("NaN omitted", lambda: discretized_histogram([1.0, nan], 1.0, nan_policy="omit").counts, np.array([1]))],
    'NaN, `"propagate"`, support': [("NaN propagated, support", lambda: natural_precision([1.0, nan, nan], nan_policy="propagate"), 1)],
    'NaN, `"propagate"`, entropy': [
        ("NaN propagated, entropy", lambda: math.isnan(discretized_entropy_bits([1.0, nan], 1.0, nan_policy="propagate")), True),
    ],
    'NaN, `"propagate"`, format with a NaN code': [
        ("NaN codes", lambda: quantize([nan, -nan], "float8_e4m3fn", nan_policy="propagate"), np.array([127, 255], _U8)),
    ],
    'NaN, `"propagate"`, margin': [
        ("NaN margin", lambda: voronoi_margin([nan, 0.25], "int4", nan_policy="propagate"), np.array([nan, 0.5])),
        ("NaN min margin", lambda: math.isnan(min_voronoi_margin([nan, 0.25], "int4", nan_policy="propagate")), True),
    ],
    'NaN, `"omit"`, min margin': [("NaN omitted, min margin", lambda: min_voronoi_margin([nan, 0.25], "int4", nan_policy="omit"), 0.5)],
    "±Inf to an element format": [
        ("Inf to e4m3", lambda: quantize([inf, -inf], "float8_e4m3fn"), np.array([127, 255], _U8)),
        ("Inf to e5m2", lambda: quantize([inf, -inf], "float8_e5m2"), np.array([124, 252], _U8)),
        ("Inf to e2m1", lambda: quantize([inf, -inf], "float4_e2m1fn"), np.array([7, 15], _U8)),
    ],
    "±Inf to the margin": [("Inf margin", lambda: voronoi_margin([inf, -inf], "int4"), np.array([1.0, 1.0]))],
    "absmax block with max\\|x\\| ≤ 2⁻¹²⁸ (fl32(1/s) overflows)": [
        ("tiny absmax block", lambda: get_format("nf4_absmax64").scaled(np.array([2.0**-130, -(2.0**-131), 0.0], np.float32)),
         np.array([1.0, -0.5, 0.0], _F32)),
    ],
    "NaN code with the sign bit to dequantize": [
        ("signed NaN decode", lambda: _nan_signs(dequantize(np.array([0x7F, 0xFF], np.uint8), "float8_e4m3fn")), [1.0, -1.0]),
    ],
    "−0.0 in the census": [("-0.0 census", lambda: injectivity_report([-0.0, 0.0], "float8_e4m3fn").cells_used, 1)],
    "−0.0 in the erasure": [("-0.0 erasure", lambda: (lambda r: (r.support_size, r.cells_used, r.erased_bits))(
        erased_information([-0.0, 0.0], "float8_e4m3fn")), (1, 1, 0.0))],
    "±Inf in the erasure, element format": [("Inf erasure", lambda: (lambda r: (r.cells_used, r.erased_bits))(
        erased_information([inf, 448.0], "float8_e4m3fn")), (1, 1.0))],
    "bootstrap where BCa is undefined (all resamples on one side)": [
        ("BCa undefined", lambda: (lambda ci: (ci.method, ci.note is not None))(
            entropy_bootstrap_interval(np.arange(5000.0), 1.0, method="bca")), ("basic", True)),
    ],
    "block size not dividing the length": [
        ("partial last block", lambda: quantize(np.arange(33, dtype=np.float32), "mxfp4").scales, np.array([129, 130], _U8)),
    ],
    "empty block-format input with a zero-length leading axis": [
        (f"empty (0, 5) {name}", (lambda name: lambda: (lambda x, q: (q.codes.shape, q.scales.shape, dequantize(q, name).shape,
                                                                      voronoi_margin(x, name).shape))(
            np.zeros((0, 5), _F32), quantize(np.zeros((0, 5), _F32), name)))(name), ((0, 5), (0, 1), (0, 5), (0, 5)))
        for name in block_format_names()
    ],
    "double rounding whose MSE passes the float64 range": [
        ("double rounding MSE overflow",
         lambda: double_rounding(np.array([1.7e308, -1.7e308, 0.0]), "bfloat16", "float8_e4m3fn").mse_direct, inf),
    ],
    "block size beyond the input": [
        ("block 2**40", lambda: quantize(np.ones((2, 10), _F32), get_format("mxfp4", block_size=2**40)).scales,
         np.array([[125], [125]], _U8)),
    ],
}

#: Rows whose cases need a set-up of their own (a compiled MXCSR switch, files on disk): the test that holds them.
ELSEWHERE = {
    "missing or unreadable file": "tests/test_cli.py::test_loader_errors_carry_value",
    "`.npz` archive, or bytes that are neither `.npy` nor safetensors": "tests/test_cli.py::test_loader_errors_carry_value",
    "tensor name given for a `.npy` file": "tests/test_cli.py::test_loader_errors_carry_value",
    "flush-to-zero mode": "tests/test_ftz.py::test_guard_fails_loudly_under_ftz_and_daz",
    "denormals-are-zero mode": "tests/test_ftz.py::test_guard_fails_loudly_under_ftz_and_daz",
    "both modes": "tests/test_ftz.py::test_guard_fails_loudly_under_ftz_and_daz",
}


def _nan_signs(x):
    """The sign of each element of ``x``, which must be all NaN."""
    assert np.isnan(x).all()
    return np.copysign(1.0, x).tolist()


def _same(a, b):
    if isinstance(b, float) and math.isnan(b):
        return isinstance(a, float) and math.isnan(a)
    return a == b


def _source(test: str) -> str:
    path, _, name = test.partition("::")
    text = (ROOT / path).read_text()
    node = next((n for n in ast.parse(text).body if isinstance(n, ast.FunctionDef) and n.name == name), None)
    assert node is not None, f"{test} does not exist"
    return ast.get_source_segment(text, node)


def test_catalogue_and_cases_agree():
    cases = {**{row: {exc.__name__ for _, _, exc, _ in cs} for row, cs in RAISES.items()},
             **{row: set() for row in ACCEPTED}}
    assert len(cases) == len(RAISES) + len(ACCEPTED), set(RAISES) & set(ACCEPTED)
    for row, test in ELSEWHERE.items():
        assert row not in cases, f"{row!r} has cases here and in {test}"
        cases[row] = {exc for exc in CATALOGUE.get(row, ()) if exc in _source(test)}
    assert not set(cases) - set(CATALOGUE), f"cases for rows spec/09 does not have: {sorted(set(cases) - set(CATALOGUE))}"
    assert not set(CATALOGUE) - set(cases), f"spec/09 rows without a case: {sorted(set(CATALOGUE) - set(cases))}"
    for row, excs in CATALOGUE.items():
        assert cases[row] == excs, f"spec/09 row {row!r} names {sorted(excs) or 'accepted'}; its cases raise {sorted(cases[row]) or 'nothing'}"


@pytest.mark.spec("DEF-BAD-INPUT")
@pytest.mark.parametrize("label, call, exc, value", [c for cs in RAISES.values() for c in cs], ids=[c[0] for cs in RAISES.values() for c in cs])
def test_catalogue_row(label, call, exc, value):
    with pytest.raises(exc) as e:
        call()
    assert isinstance(e.value, NatprecError)
    if value is ...:  # rows whose .value is a composite: only require that one is set
        assert e.value.value is not None
    else:
        assert _same(e.value.value, value), (e.value.value, value)
    assert str(e.value)  # a message, not just a type


@pytest.mark.spec("DEF-BAD-INPUT", "DEF-DOMAIN")
@pytest.mark.parametrize("label, call, result", [c for cs in ACCEPTED.values() for c in cs], ids=[c[0] for cs in ACCEPTED.values() for c in cs])
def test_accepted_row(label, call, result):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # accepted means no exception and no warning
        assert_bits_equal(call(), result, label)


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
