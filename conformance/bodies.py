"""Test bodies shared by every tier: ``body(impl, *args)`` returns what is compared bit for bit.

Each entry of :data:`BODIES` is ``name -> Body(spec_ids, functions, args_strategy, function)``; the
suite in ``test_tiers.py`` runs every body on every tier against the reference, with the body's
spec IDs in its test id, and skips a body on a tier that lacks one of its ``functions``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from hypothesis import strategies as st

from natprec.reference import block_format_names, element_format_names, get_format
from natprec.reference.errors import InvalidParameterError

from .strategies import FLOAT_DTYPES, float_arrays, tie_rules

__all__ = ["Body", "BODIES", "ELEMENT_FORMATS", "BLOCK_FORMATS", "FLAT_FORMATS", "SMALL_ELEMENT_FORMATS"]

#: From the reference's format registry: every element format, and every block format.
ELEMENT_FORMATS = element_format_names()
BLOCK_FORMATS = block_format_names()


def _takes_flat(name: str) -> bool:
    try:
        get_format(name, layout="flat")
    except InvalidParameterError:
        return False
    return True


#: The block formats the reference accepts ``layout="flat"`` for (DEF-BLOCK-LAYOUT: bitsandbytes' blocks of the
#: flattened tensor; the absmax formats).
FLAT_FORMATS = tuple(n for n in BLOCK_FORMATS if _takes_flat(n))
#: Element formats of at most 8 bits (small codebooks: census and margin bodies draw from these).
SMALL_ELEMENT_FORMATS = tuple(n for n in ELEMENT_FORMATS if get_format(n).nbits <= 8)


@dataclass(frozen=True)
class Body:
    """What a body checks (spec IDs), which tier functions it calls, its arguments and itself."""

    spec_ids: tuple[str, ...]
    functions: tuple[str, ...]
    args: st.SearchStrategy
    run: Callable


def _quantize_element(impl, x, fmt, tie, saturate, nan_policy):
    codes = impl.quantize(x, fmt, tie=tie, saturate=saturate, nan_policy=nan_policy)
    return codes, impl.dequantize(codes, fmt)


def _quantize_block(impl, x, fmt, tie):
    q = impl.quantize(x, fmt, tie=tie)
    return q.codes, q.scales, q.tensor_scale, impl.dequantize(q, fmt)


def _quantize_block_flat(impl, x, name, tie):
    return _quantize_block(impl, x, get_format(name, layout="flat"), tie)


def _census_flat(impl, x, name, tie):
    return impl.injectivity_report(x, get_format(name, layout="flat"), tie=tie, nan_policy="omit")  # the whole report


def _support(impl, x, by, nan_policy):
    s = impl.realized_support(x, by=by, nan_policy=nan_policy)
    return s.values, s.counts


def _census(impl, x, fmt):
    r = impl.injectivity_report(x, fmt, nan_policy="omit")
    return r.support_size, r.cells_used, r.injective, r.delta, r.colliding_values


def _census_listed(impl, x, fmt, tie, nan_policy, max_listed):
    return impl.injectivity_report(x, fmt, tie=tie, nan_policy=nan_policy, max_listed=max_listed)  # the whole report


def _margin(impl, x, fmt, tie):
    return impl.voronoi_margin(x, fmt, tie=tie, nan_policy="propagate")


def _histogram_entropy(impl, x, delta):
    h = impl.discretized_histogram(x, delta, nan_policy="omit")
    return h.bins, h.counts, impl.entropy_bits_from_counts(h.counts)


_kernel_arrays = float_arrays(dtypes=(np.float16, np.float32, np.dtype("float64")))
_block_arrays = float_arrays(dtypes=(np.float16, np.float32), allow_nan=False, allow_infinity=False)

BODIES = {
    "quantize_element": Body(
        ("DEF-QUANTIZE", "DEF-FORMAT-ELEMENT"),
        ("quantize", "dequantize"),
        st.tuples(_kernel_arrays, st.sampled_from(ELEMENT_FORMATS), tie_rules, st.sampled_from([True, None]),
                  st.sampled_from(["raise", "propagate"])),
        _quantize_element,
    ),
    "quantize_block": Body(
        ("DEF-FORMAT-BLOCK-ABSMAX", "DEF-FORMAT-MX", "DEF-FORMAT-NVFP4"),
        ("quantize", "dequantize"),
        st.tuples(_block_arrays, st.sampled_from(BLOCK_FORMATS), tie_rules),
        _quantize_block,
    ),
    "quantize_block_flat": Body(
        ("DEF-BLOCK-LAYOUT", "DEF-FORMAT-BLOCK-ABSMAX"),
        ("quantize", "dequantize"),
        st.tuples(float_arrays(dtypes=FLOAT_DTYPES, allow_nan=False, allow_infinity=False),
                  st.sampled_from(FLAT_FORMATS), tie_rules),
        _quantize_block_flat,
    ),
    "realized_support": Body(
        ("DEF-SUPPORT-VALUE", "DEF-SUPPORT-BITS"),
        ("realized_support",),
        st.tuples(_kernel_arrays, st.sampled_from(["value", "bits"]), st.sampled_from(["raise", "omit", "propagate"])),
        _support,
    ),
    "collision_census": Body(
        ("DEF-COLLISION-CENSUS", "DEF-COLLISION-PROBABILITY"),
        ("injectivity_report",),
        st.tuples(float_arrays(dtypes=(np.float16, np.float32), allow_infinity=False),
                  st.sampled_from(SMALL_ELEMENT_FORMATS + ("mxfp4", "nf4_absmax64"))),
        _census,
    ),
    "collision_census_listed": Body(
        ("DEF-COLLISION-CENSUS", "DEF-CENSUS-PAIRS"),
        ("injectivity_report",),
        st.tuples(float_arrays(dtypes=FLOAT_DTYPES[:3]), st.sampled_from(ELEMENT_FORMATS + BLOCK_FORMATS),
                  tie_rules, st.sampled_from(["raise", "omit"]), st.sampled_from([None, 0, 1, 16])),
        _census_listed,
    ),
    "collision_census_flat": Body(
        ("DEF-BLOCK-LAYOUT", "DEF-COLLISION-CENSUS", "DEF-CENSUS-PAIRS"),
        ("injectivity_report",),
        st.tuples(float_arrays(dtypes=FLOAT_DTYPES[:3], allow_infinity=False), st.sampled_from(FLAT_FORMATS), tie_rules),
        _census_flat,
    ),
    "voronoi_margin": Body(
        ("DEF-MARGIN",),
        ("voronoi_margin",),
        st.tuples(_kernel_arrays, st.sampled_from(SMALL_ELEMENT_FORMATS), tie_rules),
        _margin,
    ),
    "histogram_entropy": Body(
        ("DEF-HISTOGRAM", "DEF-ENTROPY-DISCRETIZED"),
        ("discretized_histogram", "entropy_bits_from_counts"),
        st.tuples(float_arrays(dtypes=(np.float16, np.float32), allow_infinity=False), st.floats(1e-3, 10.0)),
        _histogram_entropy,
    ),
}
