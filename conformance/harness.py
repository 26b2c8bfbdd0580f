"""One test body, every tier: run a body on a tier and on the reference, compare bit for bit.

Comparison order: exception type (exact class), then for results: Python type,
ndarray dtype, shape, then the raw bits (``view`` as unsigned integers) — NaN
payloads and the sign of zero included.  Dataclasses, tuples, lists and dicts are
compared field by field.
"""

from __future__ import annotations

import dataclasses
import struct
from fractions import Fraction

import numpy as np

__all__ = ["Mismatch", "outcome", "assert_same_outcome", "assert_bits_equal"]


class Mismatch(AssertionError):
    """A tier disagrees with the reference; the message says where (a path into the result)."""


def outcome(body, impl, *args):
    """Run ``body(impl, *args)``; return ("ok", value) or ("raised", exception)."""
    try:
        return "ok", body(impl, *args)
    except Exception as exc:  # the exception type is part of what is compared
        return "raised", exc


def _bits(a: np.ndarray) -> np.ndarray:
    a = np.ascontiguousarray(a)
    if a.dtype.kind in "biu":
        return a
    return a.view({1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}[a.dtype.itemsize])


def assert_bits_equal(got, want, path: str = "result") -> None:
    """Recursive bit-level equality; raises :class:`Mismatch` naming the first difference."""
    if isinstance(want, np.ndarray) or isinstance(got, np.ndarray):
        if not (isinstance(want, np.ndarray) and isinstance(got, np.ndarray)):
            raise Mismatch(f"{path}: type {type(got).__name__} != {type(want).__name__}")
        if got.dtype != want.dtype:
            raise Mismatch(f"{path}: dtype {got.dtype} != {want.dtype}")
        if got.shape != want.shape:
            raise Mismatch(f"{path}: shape {got.shape} != {want.shape}")
        if want.dtype.kind == "O":
            for i, (g, w) in enumerate(zip(got.ravel(), want.ravel())):
                assert_bits_equal(g, w, f"{path}[{i}]")
            return
        gb, wb = _bits(got), _bits(want)
        diff = np.flatnonzero(gb.ravel() != wb.ravel())
        if diff.size:
            i = int(diff[0])
            raise Mismatch(
                f"{path}: {diff.size} element(s) differ; first at flat index {i}: "
                f"{got.ravel()[i]!r} (bits {int(gb.ravel()[i]):#x}) != {want.ravel()[i]!r} (bits {int(wb.ravel()[i]):#x})"
            )
        return
    if type(got) is not type(want):
        raise Mismatch(f"{path}: type {type(got).__name__} != {type(want).__name__}")
    if dataclasses.is_dataclass(want):
        for f in dataclasses.fields(want):
            assert_bits_equal(getattr(got, f.name), getattr(want, f.name), f"{path}.{f.name}")
    elif isinstance(want, (list, tuple)):
        if len(got) != len(want):
            raise Mismatch(f"{path}: length {len(got)} != {len(want)}")
        for i, (g, w) in enumerate(zip(got, want)):
            assert_bits_equal(g, w, f"{path}[{i}]")
    elif isinstance(want, dict):
        if got.keys() != want.keys():
            raise Mismatch(f"{path}: keys {sorted(got)} != {sorted(want)}")
        for k in want:
            assert_bits_equal(got[k], want[k], f"{path}[{k!r}]")
    elif isinstance(want, float):
        if struct.pack("<d", got) != struct.pack("<d", want):
            raise Mismatch(f"{path}: {got!r} != {want!r} (bitwise)")
    elif isinstance(want, np.generic):
        assert_bits_equal(np.asarray(got), np.asarray(want), path)
    elif isinstance(want, (int, bool, str, bytes, Fraction, type(None))):
        if got != want:
            raise Mismatch(f"{path}: {got!r} != {want!r}")
    else:
        raise Mismatch(f"{path}: cannot compare values of type {type(want).__name__}")


def assert_same_outcome(body, impl, reference, *args, path: str = "result") -> str:
    """The harness: same exception type, or results equal bit for bit.  Returns the outcome ("ok" or "raised");
    ``path`` names the case in a Mismatch."""
    kind_r, ref = outcome(body, reference, *args)
    kind_t, got = outcome(body, impl, *args)
    if kind_r != kind_t:
        what = ref if kind_r == "raised" else got
        raise Mismatch(f"{path}: reference {kind_r} but tier {kind_t}: {type(what).__name__}: {what}")
    if kind_r == "raised":
        if type(got) is not type(ref):
            raise Mismatch(f"{path}: exception type {type(got).__name__} != reference's {type(ref).__name__} ({ref})")
        return kind_r
    assert_bits_equal(got, ref, path)
    return kind_r
