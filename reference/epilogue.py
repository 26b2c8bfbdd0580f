"""DEF-DOUBLE-ROUNDING, DEF-EPILOGUE-ORDER, THM-DOUBLE-ROUNDING-NEVER-BETTER, THM-ORDER-NOT-STRICT.

Chapter: spec/08-epilogue.md.  Seed 000 §3.3 claims the wrong epilogue order
"strictly increases distortion for monotone activations".  These functions
measure it instead: per input, which order lands nearer the exact result.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._domain import as_float_array, layout_of, real_parameter
from .errors import EmptyInputError, InvalidParameterError, NonFiniteInputError

__all__ = [
    "ACTIVATIONS",
    "all_finite_values",
    "activation_f32",
    "DoubleRounding",
    "double_rounding",
    "OrderComparison",
    "epilogue_order_comparison",
]

ACTIVATIONS = ("identity", "relu", "silu", "gelu")
_F32 = np.float32


def all_finite_values(dtype) -> np.ndarray:
    """Every finite value of a 16-bit dtype (float16 or bfloat16), −0.0 included, ascending by bits."""
    lay = layout_of(dtype)
    if lay.nbits != 16:
        raise InvalidParameterError(f"exhaustive enumeration is for 16-bit dtypes; got {lay.dtype}", value=str(lay.dtype))
    v = np.arange(1 << 16, dtype=np.uint32).astype(np.uint16).view(lay.dtype)
    return v[np.isfinite(v.astype(np.float32))]


def _act64(t: np.ndarray, name: str) -> np.ndarray:
    if name == "identity":
        return t
    if name == "relu":
        return np.where(t > 0, t, 0.0)
    if name == "silu":
        with np.errstate(over="ignore"):
            return t / (1.0 + np.exp(-t))
    if name == "gelu":
        from scipy.special import erf

        return 0.5 * t * (1.0 + erf(t / np.sqrt(2.0)))
    raise InvalidParameterError(f"activation must be one of {ACTIVATIONS}; got {name!r}", value=name)


def activation_f32(t32: np.ndarray, name: str) -> np.ndarray:
    """DEF-EPILOGUE-ORDER — activation on float32: evaluated in float64, rounded once to float32.

    identity and relu are exact (relu(t) = t for t > 0, else +0.0); silu/gelu use the
    platform's float64 exp/erf, so they may differ by one float32 ulp across platforms.
    """
    with np.errstate(over="ignore"):
        return _act64(np.asarray(t32, dtype=np.float64), name).astype(_F32)


def _require_finite(v: np.ndarray, name: str) -> None:
    """Non-empty and finite (the harnesses measure averages over real inputs)."""
    if v.size == 0:
        raise EmptyInputError(f"{name} is empty", value=v.shape)
    bad = ~np.isfinite(v)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise NonFiniteInputError(f"{name} has a non-finite value {v[i]!r} at flat index {i}", value=float(v[i]))


@dataclass(frozen=True)
class DoubleRounding:
    """DEF-DOUBLE-ROUNDING — direct Q_final(x) vs Q_final(Q_mid(x)) over a set of inputs."""

    n: int
    differ: int  # inputs whose two results differ
    double_worse: int  # |double − x| > |direct − x|
    double_better: int  # never > 0 for a nearest quantizer (THM-DOUBLE-ROUNDING-NEVER-BETTER)
    mse_direct: float
    mse_double: float
    direct_image: int  # distinct outputs
    double_image: int


def _mean_square(e: np.ndarray) -> float:
    """mean(e²); past the float64 range it is +Inf, the correctly rounded value (no warning)."""
    with np.errstate(over="ignore"):
        return float(np.mean(e * e))


def double_rounding(x, mid, final, *, tie: str = "even") -> DoubleRounding:
    """DEF-DOUBLE-ROUNDING — compare rounding x once to ``final`` with rounding via ``mid`` first.

    ``mid``/``final`` are element formats (names or objects), both applied saturating.
    Errors are float64 distances to x (exact inputs), compared exactly where they differ in sign of the difference.
    """
    from .formats import ElementFormat, resolve_format

    fm, ff = resolve_format(mid), resolve_format(final)
    if not (isinstance(fm, ElementFormat) and isinstance(ff, ElementFormat)):
        raise InvalidParameterError("double_rounding takes element formats", value=(getattr(fm, "name", fm), getattr(ff, "name", ff)))
    arr = as_float_array(x).ravel()
    x64 = arr.astype(np.float64)
    _require_finite(x64, "x")
    direct = ff.dequantize(ff.quantize(arr, tie=tie, saturate=True))
    via = fm.dequantize(fm.quantize(arr, tie=tie, saturate=True))
    double = ff.dequantize(ff.quantize(via, tie=tie, saturate=True))
    e_d, e_2 = np.abs(direct - x64), np.abs(double - x64)
    return DoubleRounding(
        n=int(x64.size),
        differ=int(np.count_nonzero(direct != double)),
        double_worse=int(np.count_nonzero(e_2 > e_d)),
        double_better=int(np.count_nonzero(e_2 < e_d)),
        mse_direct=_mean_square(e_d),
        mse_double=_mean_square(e_2),
        direct_image=int(np.unique(direct).size),
        double_image=int(np.unique(double).size),
    )


@dataclass(frozen=True)
class OrderComparison:
    """DEF-EPILOGUE-ORDER — one wrong order against the fused (correct) order, per input."""

    order: str
    n: int
    differ: int  # outputs that differ from the fused order's
    worse: int  # error strictly larger than the fused order's
    better: int  # error strictly smaller than the fused order's
    mse_fused: float
    mse_order: float
    fused_image: int
    order_image: int


def epilogue_order_comparison(acc, scale: float, bias: float, activation: str, fmt, *, store="bfloat16", tie: str = "even") -> list[OrderComparison]:
    """DEF-EPILOGUE-ORDER — fused vs wrong epilogue orders on float32 accumulator values ``acc``.

    t = fl32(fl32(acc · scale) + bias).  Orders (Q = quantize to ``fmt`` saturating, D = dequantize):
    fused: Q(act(t)); ``quantize_then_activate``: Q(act(D(Q(t)))); ``store_reload``: Q(act(D(S(t))))
    with S the ``store`` format.  Error is |D(output) − r| with r = act(acc·scale + bias) in float64.
    """
    from .formats import ElementFormat, resolve_format

    f, s = resolve_format(fmt), resolve_format(store)
    if not (isinstance(f, ElementFormat) and isinstance(s, ElementFormat)):
        raise InvalidParameterError("epilogue orders take element formats", value=(fmt, store))
    if activation not in ACTIVATIONS:
        raise InvalidParameterError(f"activation must be one of {ACTIVATIONS}; got {activation!r}", value=activation)
    acc_in = as_float_array(acc).ravel()
    _require_finite(acc_in.astype(np.float64), "acc")
    with np.errstate(over="ignore"):
        a = acc_in.astype(_F32)
    over = np.flatnonzero(~np.isfinite(a))
    if over.size:
        v = float(acc_in[over[0]])
        raise NonFiniteInputError(f"acc value {v!r} at flat index {int(over[0])} overflows float32", value=v)
    sc, bi = _F32(real_parameter("scale", scale, finite=False)), _F32(real_parameter("bias", bias, finite=False))
    with np.errstate(over="ignore", invalid="ignore"):
        t = np.add(np.multiply(a, sc, dtype=_F32), bi, dtype=_F32)
        r = _act64(a.astype(np.float64) * float(sc) + float(bi), activation)
    _require_finite(t, "fl32(fl32(acc·scale) + bias)")

    def q(v):
        return f.dequantize(f.quantize(v, tie=tie, saturate=True))

    fused = q(activation_f32(t, activation))
    orders = {
        "quantize_then_activate": q(activation_f32(q(t).astype(_F32), activation)),
        "store_reload": q(activation_f32(s.dequantize(s.quantize(t, tie=tie, saturate=True)).astype(_F32), activation)),
    }
    e_f = np.abs(fused - r)
    out = []
    for name, o in orders.items():
        e_o = np.abs(o - r)
        out.append(
            OrderComparison(
                order=name,
                n=int(t.size),
                differ=int(np.count_nonzero(o != fused)),
                worse=int(np.count_nonzero(e_o > e_f)),
                better=int(np.count_nonzero(e_o < e_f)),
                mse_fused=float(np.mean(e_f * e_f)),
                mse_order=float(np.mean(e_o * e_o)),
                fused_image=int(np.unique(fused).size),
                order_image=int(np.unique(o).size),
            )
        )
    return out
