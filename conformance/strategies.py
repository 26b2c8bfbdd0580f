"""Hypothesis strategies derived from the spec's domain clauses (spec/00-conventions.md)."""

from __future__ import annotations

import ml_dtypes
import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from natprec.reference import TIE_RULES, Codebook

__all__ = [
    "FLOAT_DTYPES",
    "float_arrays",
    "finite_floats",
    "codebooks",
    "tie_rules",
    "shapes",
]

FLOAT_DTYPES = (np.dtype(np.float16), np.dtype(ml_dtypes.bfloat16), np.dtype(np.float32), np.dtype(np.float64))

shapes = hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=12)
tie_rules = st.sampled_from(TIE_RULES)


def _bfloat16_arrays(shape, allow_nan, allow_infinity):
    def fix(bits):
        v = bits.view(ml_dtypes.bfloat16)
        a = v.astype(np.float32)
        bad = (np.isnan(a) & (not allow_nan)) | (np.isinf(a) & (not allow_infinity))
        return np.where(bad, np.zeros_like(v), v).astype(ml_dtypes.bfloat16)

    return hnp.arrays(np.uint16, shape, elements=st.integers(0, 0xFFFF)).map(fix)


def float_arrays(dtypes=FLOAT_DTYPES, shape=shapes, *, allow_nan=True, allow_infinity=True, allow_subnormal=True):
    """Arrays of any accepted dtype; elements span the whole domain (±0, subnormals, extremes, NaN/Inf)."""

    @st.composite
    def build(draw):
        dt = np.dtype(draw(st.sampled_from(dtypes)))
        shp = draw(shape) if isinstance(shape, st.SearchStrategy) else shape
        if dt == np.dtype(ml_dtypes.bfloat16):
            return draw(_bfloat16_arrays(shp, allow_nan, allow_infinity))
        el = st.floats(
            width=dt.itemsize * 8,
            allow_nan=allow_nan,
            allow_infinity=allow_infinity,
            allow_subnormal=allow_subnormal,
        )
        return draw(hnp.arrays(dt, shp, elements=el))

    return build()


def finite_floats(width: int = 32, **kw):
    return st.floats(width=width, allow_nan=False, allow_infinity=False, **kw)


@st.composite
def codebooks(draw, min_size: int = 1, max_size: int = 16, width: int = 32):
    """Valid codebooks: distinct finite values (float32-representable by default), sorted, index encodings."""
    vals = draw(st.lists(finite_floats(width), min_size=min_size, max_size=max_size, unique_by=lambda v: v + 0.0))
    vals = sorted({v + 0.0 for v in vals})  # −0.0 and 0.0 are one value
    return Codebook(np.array(vals, dtype=np.float64))
