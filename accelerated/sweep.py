"""DEF-QUANTIZE on all 2**32 float32 patterns, checked on the device by an independent computation.

The element kernel (kernels/quantize.cu) decides with float32 thresholds that the reference
derives (``natprec.reference.thresholds``).  The oracle here shares none of that: from the
format's definition data only (codebook values and encodings, signed zero, sign bit) it takes
the exact float64 midpoints of adjacent codewords (each checked exact with rationals), a
float64 bucketize of the exactly widened float32 input against them, and resolves an input
equal to a midpoint by the tie rule, written out here a second time:

* ``down``: the smaller codeword; ``up``: the larger; ``away``: the larger when the midpoint is
  >= 0, else the smaller; ``even``: the codeword whose encoding is even (the rule is invalid
  when adjacent encodings share parity — then the reference raises and so must the tier).

``oracle_codes`` runs with torch on any device (tests/test_accelerated_sweep.py checks it
against the reference on the CPU); ``sweep_float32`` walks the patterns in chunks generated
on the device, so nothing crosses the bus but a mismatch count per chunk.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np

import natprec.reference as ref

__all__ = ["OracleTable", "oracle_table", "oracle_codes", "sweep_float32", "device_codes_fn"]


class OracleTable:
    """Exact float64 midpoints, tie directions and encodings of one element format under one tie rule."""

    def __init__(self, mids, up, enc, zero_code, sign_code):
        self.mids, self.up, self.enc = mids, up, enc
        self.zero_code, self.sign_code = zero_code, sign_code


def _tie_up(v: list[Fraction], enc: list[int], tie: str) -> list[bool] | None:
    """Whether a tie at each midpoint goes to the larger codeword; None when 'even' is not defined."""
    out = []
    for i in range(len(v) - 1):
        if tie == "down":
            out.append(False)
        elif tie == "up":
            out.append(True)
        elif tie == "away":
            out.append(v[i] + v[i + 1] >= 0)
        elif tie == "even":
            if enc[i] % 2 == enc[i + 1] % 2:
                return None
            out.append(enc[i + 1] % 2 == 0)
        else:
            raise ValueError(tie)
    return out


def oracle_table(fmt, tie: str) -> OracleTable | None:
    """The oracle's table for an element format's saturating codebook; None when the tie rule is undefined for it."""
    f = ref.get_format(fmt) if isinstance(fmt, str) else fmt
    cb = f.codebook
    v = [Fraction(float(a)) for a in cb.values]
    enc = [int(e) for e in cb.encodings]
    up = _tie_up(v, enc, tie)
    if up is None:
        return None
    mids = []
    for a, b in zip(v[:-1], v[1:]):
        m = (a + b) / 2
        if Fraction(float(m)) != m:
            raise ValueError(f"midpoint {m} of {fmt} is not a float64: the float64 oracle does not apply")
        mids.append(float(m))
    zero_code = sign_code = -1
    if f.signed_zero and f.zero_index >= 0 and f.sign_bit is not None:
        zero_code, sign_code = enc[f.zero_index], 1 << f.sign_bit
    return OracleTable(np.array(mids, np.float64), np.array(up, bool), np.array(enc, np.int64), zero_code, sign_code)


def oracle_codes(bits, table: OracleTable, torch):
    """Codes (int64) of float32 patterns ``bits`` (an int32 torch tensor, NaNs excluded by the caller)."""
    dev = bits.device
    mids = torch.as_tensor(table.mids, device=dev)
    up = torch.as_tensor(table.up, device=dev)
    enc = torch.as_tensor(table.enc, device=dev)
    x = bits.view(torch.float32).to(torch.float64)  # exact
    lo = torch.searchsorted(mids, x, right=False)  # number of midpoints < x
    j = lo.clamp(max=mids.numel() - 1)
    tie = (lo < mids.numel()) & (mids[j] == x)
    idx = lo + (tie & up[j]).to(lo.dtype)
    code = enc[idx]
    if table.sign_code >= 0:
        neg = bits < 0  # the sign bit of the input (−0.0 included)
        code = torch.where(neg & (code == table.zero_code), code | table.sign_code, code)
    return code


def sweep_float32(fmt, tie: str, codes_fn, torch, *, device="cuda", chunk: int = 1 << 27, start: int = 0,
                  stop: int = 1 << 32) -> dict:
    """Compare ``codes_fn(bits_int32_tensor) -> codes tensor`` with the oracle on patterns [start, stop), NaNs excluded.

    Returns {'checked': n, 'mismatches': m, 'first': (bits, got, want) or None}.
    """
    table = oracle_table(fmt, tie)
    if table is None:
        raise ValueError(f"tie={tie!r} is undefined for {fmt}")
    checked = mism = 0
    first = None
    for s in range(start, stop, chunk):
        e = min(s + chunk, stop)
        b64 = torch.arange(s, e, dtype=torch.int64, device=device)
        bits = torch.where(b64 >= (1 << 31), b64 - (1 << 32), b64).to(torch.int32)
        del b64
        keep = (bits & 0x7FFFFFFF) <= 0x7F800000
        want = oracle_codes(bits, table, torch)
        got = codes_fn(bits).to(torch.int64)
        bad = (got != want) & keep
        nb = int(bad.sum())
        checked += int(keep.sum())
        if nb and first is None:
            i = int(torch.nonzero(bad)[0, 0])
            first = (int(bits[i]) & 0xFFFFFFFF, int(got[i]), int(want[i]))
        mism += nb
    return {"checked": checked, "mismatches": mism, "first": first}


def device_codes_fn(fmt, tie: str, torch):
    """``codes_fn`` for :func:`sweep_float32`: the element kernel on device-resident int32 patterns (a GPU needed).

    The plan is the reference's (``prepare_quantize`` on an empty float32 array: thresholds,
    codebook, tie rule); the launch is the tier's own (``CudaBackend.launch_quantize``, codes only).
    """
    from .device import current_backend
    from .plans import element_plan

    be = current_backend()
    plan = element_plan(ref.prepare_quantize(np.zeros(0, np.float32), fmt, tie=tie))
    dplan = be.device_plan(plan)

    def codes_fn(bits):
        out = torch.empty(bits.numel(), dtype=torch.int16, device=bits.device)
        be.launch_quantize(2, bits.data_ptr(), bits.numel(), plan, dplan, out.data_ptr())
        return out.to(torch.int64) & 0xFFFF

    return codes_fn
