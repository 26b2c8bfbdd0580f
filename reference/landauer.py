"""DEF-LANDAUER-ENERGY, DEF-BOUNDARY-COST, THM-FREE-BOUNDARY, DEF-ERASED-INFORMATION — Landauer bounds in joules.

Chapter: spec/06-landauer.md.  k_B is the exact SI 2019 value.  Each result is
k_B · T · ln 2 · ΔH evaluated with the inputs as exact rationals and ln 2 at
113 bits, rounded once to float64.  The erased information of a boundary,
H(X | Q(X)), is measured from exact integer counts of (cell, value) pairs, the
cells being those of the collision census (spec/03).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from fractions import Fraction

import mpmath
import numpy as np

from ._domain import check_nan_policy
from .entropy import entropy_bits_from_counts
from .errors import InvalidParameterError, NonFiniteInputError
from .injectivity import _block_pairs, _census_input, _element_cells
from .support import realized_support

__all__ = [
    "BOLTZMANN_J_PER_K",
    "landauer_energy_joules",
    "boundary_cost_joules",
    "is_free_boundary",
    "ErasedInformation",
    "erased_information",
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


#: Working precision (bits) of the erasure's sums, as for the entropies (spec/05).
_PREC = 113


@dataclass(frozen=True)
class ErasedInformation:
    """DEF-ERASED-INFORMATION — what a format erases from a tensor, beside seed 000's bound, with its Landauer cost.

    Entropies are in bits per element of the empirical distribution of the N elements (X their
    value, Q their cell); joules per element, or for all N elements (``*_joules``), at
    ``temperature_kelvin``.
    """

    format: str
    n_elements: int
    support_size: int  # |supp(x)|, by value
    cells_used: int  # distinct cells Q
    pairs: int  # distinct (cell, value) pairs; = support_size for element formats
    bits_per_element: float  # b: the bits the format stores per element (registry; block formats incl. scales)
    source_bits: float  # H(X), plug-in
    source_bits_miller_madow: float
    cell_bits: float  # H(Q), plug-in
    cell_bits_miller_madow: float
    erased_bits: float  # E = H(X | Q), plug-in; = H(X) − H(Q) for element formats
    erased_bits_miller_madow: float  # E + (pairs − cells_used) / (2 N ln 2)
    bound_bits: float  # seed 000 §4.2: max(0, H(X) − b)
    free_by_bound: bool  # H(X) ≤ b (THM-FREE-BOUNDARY)
    injective: bool  # E = 0 ⇔ no cell holds two values (THM-INJECTIVITY)
    temperature_kelvin: float
    erased_joules_per_element: float  # k_B T ln 2 · E
    erased_joules: float  # k_B T ln 2 · N · E
    erased_joules_per_element_miller_madow: float
    erased_joules_miller_madow: float
    bound_joules_per_element: float  # boundary_cost_joules(H(X), b, T)
    bound_joules: float  # N times that, formed exactly

    def to_dict(self) -> dict:
        """The record as a plain dict (Python floats, ints and bools)."""
        return asdict(self)


class _PairSums:
    """Running exact sums over (cell, value) pairs fed in batches whose cells are complete.

    ``terms[(M, m)]`` counts the pairs of count m in a cell of M elements; ``cells[M]`` the cells
    of M elements.  E = Σ terms·(m/N)·log2(M/m) and H(Q) = Σ cells·(M/N)·log2(N/M).
    """

    def __init__(self):
        self.terms: dict[tuple[int, int], int] = {}
        self.cells: dict[int, int] = {}
        self.n_pairs = 0

    def add(self, cells: np.ndarray, counts: np.ndarray) -> None:
        """Pairs sorted by cell, each cell one run, every cell complete in this batch."""
        if cells.size == 0:
            return
        first = np.concatenate(([True], cells[1:] != cells[:-1]))
        starts = np.flatnonzero(first)
        size = np.add.reduceat(counts, starts)  # M of each cell
        per_pair = np.repeat(size, np.diff(starts, append=cells.size))
        for (big, m), k in zip(*_distinct_rows(np.stack((per_pair, counts), axis=1))):
            self.terms[(big, m)] = self.terms.get((big, m), 0) + k
        for (big,), k in zip(*_distinct_rows(size[:, None])):
            self.cells[big] = self.cells.get(big, 0) + k
        self.n_pairs += int(cells.size)

    @property
    def n_cells(self) -> int:
        return sum(self.cells.values())

    def cell_counts(self) -> np.ndarray:
        """One count per cell (int64), for :func:`entropy_bits_from_counts`: grouped, so cells of equal size repeat."""
        return np.repeat(np.fromiter(self.cells, np.int64, len(self.cells)), np.fromiter(self.cells.values(), np.int64, len(self.cells)))

    def erased(self, n: int) -> tuple[float, float]:
        """(E, E_MM) in bits: Σ K·(m/N)·log2(M/m), and + (pairs − cells)/(2 N ln 2), at 113 bits, each rounded once."""
        with mpmath.workprec(_PREC):
            e = mpmath.fsum(mpmath.mpf(k * m) / n * mpmath.log(mpmath.mpf(big) / m, 2)
                            for (big, m), k in self.terms.items() if m != big)
            mm = e + mpmath.mpf(self.n_pairs - self.n_cells) / (2 * n * mpmath.log(2))
            return float(e), float(mm)


def _distinct_rows(a: np.ndarray) -> tuple[list[tuple[int, ...]], list[int]]:
    """The distinct rows of an int64 matrix (as tuples of Python ints) and how often each occurs."""
    rows, k = np.unique(a.astype(np.int64, copy=False), axis=0, return_counts=True)
    return [tuple(int(v) for v in r) for r in rows.tolist()], [int(v) for v in k.tolist()]


def erased_information(x, fmt, *, temperature_kelvin=300.0, tie: str = "even", nan_policy: str = "raise") -> ErasedInformation:
    """DEF-ERASED-INFORMATION — E = H(X | Q(X)) of format ``fmt`` on the realized values of ``x``, beside max(0, H(X) − b).

    X is the value of an element drawn uniformly from x (by value: −0.0 is +0.0), Q its cell in the
    collision census (DEF-COLLISION-CENSUS: the saturating encoding of an element format, the pair
    (block, encoding) of a block format).  Plug-in and Miller–Madow, from exact integer counts
    (113-bit sums, rounded once); b is the format's stored bits per element (``bits_per_element``,
    block formats including their scales); the Landauer cost k_B T ln 2 · E per element and for all
    N elements.  ``nan_policy``: ``"raise"`` or ``"omit"`` (omit flattens x, as the census does).
    """
    from .formats import ElementFormat, resolve_format

    check_nan_policy(nan_policy, ("raise", "omit"))
    f = resolve_format(fmt)
    t = _temperature(temperature_kelvin)
    arr = _census_input(x, nan_policy, "the erasure")
    n = int(arr.size)
    supp = realized_support(arr)
    sums = _PairSums()
    if isinstance(f, ElementFormat):  # a cell is a function of the value: the pairs are the support's values
        codes = _element_cells(f, supp.values, tie)
        order = np.argsort(codes, kind="stable")
        sums.add(codes[order], np.asarray(supp.counts, dtype=np.int64)[order])
    else:  # a cell is (block, encoding): rectangles of whole blocks, each cell complete in its rectangle
        for pairs in _block_pairs(arr, f, f.quantize(arr, tie=tie)):
            sums.add(pairs.cells, pairs.counts)
    h_x = entropy_bits_from_counts(supp.counts)
    h_x_mm = entropy_bits_from_counts(supp.counts, correction="miller-madow")
    cell_counts = sums.cell_counts()
    h_q = entropy_bits_from_counts(cell_counts)
    h_q_mm = entropy_bits_from_counts(cell_counts, correction="miller-madow")
    e, e_mm = sums.erased(n)
    b = f.bits_per_element
    excess = max(Fraction(0), Fraction(h_x) - Fraction(b))
    return ErasedInformation(
        format=f.name,
        n_elements=n,
        support_size=int(supp.size),
        cells_used=sums.n_cells,
        pairs=sums.n_pairs,
        bits_per_element=b,
        source_bits=h_x,
        source_bits_miller_madow=h_x_mm,
        cell_bits=h_q,
        cell_bits_miller_madow=h_q_mm,
        erased_bits=e,
        erased_bits_miller_madow=e_mm,
        bound_bits=float(excess),
        free_by_bound=excess == 0,
        injective=sums.n_pairs == sums.n_cells,
        temperature_kelvin=float(t),
        erased_joules_per_element=_kt_ln2_times(Fraction(e), t),
        erased_joules=_kt_ln2_times(n * Fraction(e), t),
        erased_joules_per_element_miller_madow=_kt_ln2_times(Fraction(e_mm), t),
        erased_joules_miller_madow=_kt_ln2_times(n * Fraction(e_mm), t),
        bound_joules_per_element=_kt_ln2_times(excess, t),
        bound_joules=_kt_ln2_times(n * excess, t),
    )
