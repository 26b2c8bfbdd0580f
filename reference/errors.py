"""DEF-BAD-INPUT — the named exceptions of the bad-input catalogue (spec/09-bad-input.md).

Every exception carries the offending value in ``.value`` so a caller can report it
without parsing the message.  Each also subclasses the builtin a caller would
naturally catch (ValueError, TypeError, LookupError, ...).
"""

from __future__ import annotations

__all__ = [
    "NatprecError",
    "InvalidDTypeError",
    "NaNInputError",
    "NonFiniteInputError",
    "EmptyInputError",
    "CodebookError",
    "InvalidParameterError",
    "UnknownFormatError",
    "FlushToZeroError",
    "InputFileError",
    "ProblemTooLargeError",
    "MissingDependencyError",
]


class NatprecError(Exception):
    """Base class; ``value`` is the offending input (or a short description of it)."""

    def __init__(self, message: str, value: object = None):
        super().__init__(message)
        self.value = value


class InvalidDTypeError(NatprecError, TypeError):
    """An array whose dtype the definition does not accept."""


class NaNInputError(NatprecError, ValueError):
    """NaN present under ``nan_policy='raise'``."""


class NonFiniteInputError(NatprecError, ValueError):
    """±Inf (or NaN) where the definition needs finite values."""


class EmptyInputError(NatprecError, ValueError):
    """An empty input (or a support emptied by ``nan_policy='omit'``) where a value is undefined."""


class CodebookError(NatprecError, ValueError):
    """A codebook that is empty, unsorted, has duplicates or non-finite entries, or bad encodings."""


class InvalidParameterError(NatprecError, ValueError):
    """A parameter outside its domain: Δ ≤ 0, T ≤ 0, unknown nan_policy or tie rule, bad block size…"""


class UnknownFormatError(NatprecError, LookupError):
    """A format name that ``get_format`` does not know."""


class FlushToZeroError(NatprecError, FloatingPointError):
    """The process runs with flush-to-zero / denormals-are-zero: float32 subnormals do not survive."""


class InputFileError(NatprecError, OSError):
    """A file that cannot be read as a tensor (missing, unreadable, wrong format, unknown tensor name)."""


class ProblemTooLargeError(NatprecError, ValueError):
    """An exact computation whose cost exceeds the stated cap (e.g. pairwise task checks)."""


class MissingDependencyError(NatprecError, ImportError):
    """An optional dependency is not installed; the message names the extra to install."""
