"""DEF-LANDAUER-ENERGY, DEF-BOUNDARY-COST, THM-FREE-BOUNDARY — Landauer bounds in joules.

Chapter: spec/06-landauer.md.  k_B is the exact SI 2019 value.  Each result is
k_B · T · ln 2 · ΔH evaluated with the inputs as exact rationals and ln 2 at
113 bits, rounded once to float64.
"""

from __future__ import annotations

from fractions import Fraction

import mpmath
import numpy as np

from .errors import InvalidParameterError, NonFiniteInputError

__all__ = [
    "BOLTZMANN_J_PER_K",
    "landauer_energy_joules",
    "boundary_cost_joules",
    "is_free_boundary",
]

#: Boltzmann constant, exact by the 2019 SI definition.
BOLTZMANN_J_PER_K = 1.380649e-23
_KB_EXACT = Fraction(1380649, 10**29)


def _finite(name: str, v) -> Fraction:
    try:
        f = float(v)
    except (TypeError, ValueError):
        raise InvalidParameterError(f"{name} must be a real number; got {v!r}", value=v) from None
    if not np.isfinite(f):
        raise NonFiniteInputError(f"{name} must be finite; got {v!r}", value=v)
    return Fraction(f)


def _temperature(t) -> Fraction:
    q = _finite("temperature_kelvin", t)
    if q <= 0:
        raise InvalidParameterError(f"temperature_kelvin must be > 0; got {t!r}", value=t)
    return q


def _entropy(name: str, h) -> Fraction:
    q = _finite(name, h)
    if q < 0:
        raise InvalidParameterError(f"{name} is an entropy in bits and must be >= 0; got {h!r}", value=h)
    return q


def _kt_ln2_times(bits: Fraction, t: Fraction) -> float:
    with mpmath.workprec(113):
        exact = _KB_EXACT * t * bits
        joules = float(mpmath.mpf(exact.numerator) / exact.denominator * mpmath.log(2))
    if not np.isfinite(joules):  # a finite bound past float64's range: refuse rather than return ±inf
        raise InvalidParameterError(
            f"k_B·T·ln2·ΔH with T = {float(t)!r} K and ΔH = {float(bits)!r} bits exceeds the float64 range",
            value=(float(bits), float(t)),
        )
    return joules


def landauer_energy_joules(h_in_bits, h_out_bits=0.0, temperature_kelvin=300.0) -> float:
    """DEF-LANDAUER-ENERGY — E_min = k_B T ln 2 (H_in − H_out), joules.

    Signed: a negative value (H_out > H_in) is the generalised bound and means no
    erasure is forced.  ``landauer_energy_joules(b)`` is the cost of erasing b bits.
    """
    return _kt_ln2_times(_entropy("h_in_bits", h_in_bits) - _entropy("h_out_bits", h_out_bits), _temperature(temperature_kelvin))


def boundary_cost_joules(h_source_bits, b_target_bits, temperature_kelvin=300.0) -> float:
    """DEF-BOUNDARY-COST — C = k_B T ln 2 · max(0, H_source − b_target), joules."""
    excess = _entropy("h_source_bits", h_source_bits) - _entropy("b_target_bits", b_target_bits)
    return _kt_ln2_times(max(Fraction(0), excess), _temperature(temperature_kelvin))


def is_free_boundary(h_source_bits, b_target_bits) -> bool:
    """THM-FREE-BOUNDARY — C = 0 ⇔ H_source ≤ b_target (compared exactly).

    Zero Landauer cost by this formula does *not* make a given quantizer lossless;
    see the spec's counterexample.
    """
    return _entropy("h_source_bits", h_source_bits) <= _entropy("b_target_bits", b_target_bits)
