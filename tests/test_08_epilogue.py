"""DEF-DOUBLE-ROUNDING, DEF-EPILOGUE-ORDER, THM-DOUBLE-ROUNDING-NEVER-BETTER, THM-ORDER-NOT-STRICT — exhaustive over float16."""

import ml_dtypes
import numpy as np
import pytest

from natprec.reference import (
    InvalidParameterError,
    NonFiniteInputError,
    all_finite_values,
    double_rounding,
    epilogue_order_comparison,
)

ALL_F16 = all_finite_values(np.float16)

PAIRS = [
    ("bfloat16", "float8_e4m3fn"),
    ("float16", "float8_e5m2"),
    ("float8_e5m2", "float4_e2m1fn"),
    ("float8_e4m3fn", "float6_e2m3fn"),
    ("float16", "nf4"),
]


@pytest.mark.spec("DEF-DOUBLE-ROUNDING", "THM-DOUBLE-ROUNDING-NEVER-BETTER")
@pytest.mark.parametrize("mid, final", PAIRS)
def test_double_rounding_is_never_better_over_all_float16(mid, final):
    r = double_rounding(ALL_F16, mid, final)
    assert r.n == ALL_F16.size == 63488
    assert r.double_better == 0
    assert r.double_worse == r.differ  # every difference is a loss
    assert r.mse_double >= r.mse_direct


@pytest.mark.spec("DEF-DOUBLE-ROUNDING")
def test_double_rounding_erases_information_somewhere():
    r = double_rounding(ALL_F16, "bfloat16", "float8_e4m3fn")
    assert r.differ > 0 and r.mse_double > r.mse_direct
    # A float16 → float16 "double" rounding is the identity on float16 inputs.
    assert double_rounding(ALL_F16, "float16", "float16").differ == 0


@pytest.mark.spec("THM-ORDER-NOT-STRICT", "DEF-EPILOGUE-ORDER")
@pytest.mark.parametrize("fmt", ["float8_e4m3fn", "float4_e2m1fn", "int8", "nf4", "ternary"])
def test_relu_quantize_then_activate_is_exactly_equal(fmt):
    qta = next(c for c in epilogue_order_comparison(ALL_F16, 1.0, 0.0, "relu", fmt) if c.order == "quantize_then_activate")
    assert qta.differ == qta.worse == qta.better == 0
    assert qta.mse_order == qta.mse_fused


@pytest.mark.spec("DEF-EPILOGUE-ORDER")
@pytest.mark.parametrize("act", ["silu", "gelu"])
def test_non_relu_orders_lose_information(act):
    res = {c.order: c for c in epilogue_order_comparison(ALL_F16, 0.5, 0.25, act, "float8_e4m3fn")}
    assert res["quantize_then_activate"].differ > 0
    assert res["store_reload"].worse > 0


@pytest.mark.spec("DEF-EPILOGUE-ORDER", "DEF-DOUBLE-ROUNDING")
def test_epilogue_domain():
    with pytest.raises(InvalidParameterError):
        epilogue_order_comparison(ALL_F16, 1.0, 0.0, "tanh", "nf4")
    with pytest.raises(InvalidParameterError):
        epilogue_order_comparison(ALL_F16, 1.0, 0.0, "relu", "nvfp4")
    with pytest.raises(NonFiniteInputError):
        epilogue_order_comparison(np.array([1.0, np.inf], np.float32), 1.0, 0.0, "relu", "nf4")
    with pytest.raises(NonFiniteInputError):
        epilogue_order_comparison(np.array([3e38], np.float32), 10.0, 0.0, "relu", "nf4")
    with pytest.raises(NonFiniteInputError):
        double_rounding(np.array([np.nan]), "bfloat16", "nf4")
    with pytest.raises(InvalidParameterError):
        all_finite_values(np.float32)
    assert all_finite_values(ml_dtypes.bfloat16).size == 65536 - 2 * 128 + 2 * 1 - 2  # minus NaNs and ±Inf
