"""The all-float32 sweep's oracle (accelerated/sweep.py) against the reference, on the CPU.

On the GPU machine the sweep compares the element kernel with this oracle on all 2**32
float32 patterns; here the oracle itself is checked against natprec.reference on every
midpoint's float32 neighbourhood, special values and random patterns, for every tie rule, and
the sweep's chunking runs on a sub-range with the host build of the kernels' header.
"""

import shutil

import numpy as np
import pytest

import natprec.accelerated as acc
import natprec.reference as ref
from natprec.accelerated.sweep import oracle_codes, oracle_table, sweep_float32

torch = pytest.importorskip("torch")

FORMATS = ["nf4", "float4_e2m1fn", "fp4_bnb", "int4"]


def _probe_bits(fmt) -> np.ndarray:
    """float32 patterns around every midpoint (±4 ulp), special values, and 2**16 random patterns."""
    v = ref.get_format(fmt).codebook.values
    mids = ((v[:-1] + v[1:]) / 2).astype(np.float32)
    xs = [mids]
    lo = hi = mids
    for _ in range(4):
        lo = np.nextafter(lo, np.float32(-np.inf))
        hi = np.nextafter(hi, np.float32(np.inf))
        xs += [lo, hi]
    xs.append(v.astype(np.float32))
    xs.append(np.array([0.0, -0.0, np.inf, -np.inf, 1e-45, -1e-45, 3.4e38, -3.4e38], np.float32))
    rng = np.random.default_rng(12)
    xs.append(rng.integers(0, 1 << 32, 1 << 16, dtype=np.uint64).astype(np.uint32).view(np.float32))
    x = np.concatenate(xs)
    return x[~np.isnan(x)]


@pytest.mark.spec("DEF-QUANTIZE", "DEF-TIE-RULES", "DEF-FORMAT-ELEMENT")
@pytest.mark.parametrize("tie", ref.TIE_RULES)
@pytest.mark.parametrize("fmt", FORMATS)
def test_oracle_is_the_reference(fmt, tie):
    x = _probe_bits(fmt)
    try:
        want = ref.quantize(x, fmt, tie=tie)
    except ref.errors.NatprecError:
        assert oracle_table(fmt, tie) is None  # the oracle's own parity check agrees: 'even' undefined
        return
    table = oracle_table(fmt, tie)
    got = oracle_codes(torch.from_numpy(x.view(np.int32).copy()), table, torch).numpy()
    bad = np.flatnonzero(got != want.astype(np.int64))
    assert bad.size == 0, f"{fmt}/{tie}: x={x[bad[0]]!r} oracle {got[bad[0]]} reference {want[bad[0]]}"


@pytest.fixture(scope="module")
def host(tmp_path_factory):
    if shutil.which("g++") is None:
        pytest.skip("g++ is not installed")
    return acc.HostBackend(acc.build_host_library(tmp_path_factory.mktemp("natprec_host_sweep")))


def _host_codes_fn(host, fmt, tie, flip_at=None):
    plan = acc.element_plan(ref.prepare_quantize(np.zeros(0, np.float32), fmt, tie=tie))

    def codes_fn(bits):
        c, _, _, _ = host.quantize(2, bits.numpy().view(np.uint32), plan, codes=True)
        c = c.astype(np.int64)
        if flip_at is not None:
            hit = np.flatnonzero(bits.numpy().view(np.uint32) == np.uint32(flip_at))
            c[hit] ^= 1
        return torch.from_numpy(c)

    return codes_fn


@pytest.mark.spec("DEF-QUANTIZE", "DEF-TIE-RULES")
@pytest.mark.parametrize("tie", ["even", "away"])
@pytest.mark.parametrize("fmt", ["nf4", "float4_e2m1fn"])
def test_sweep_on_a_subrange_with_the_host_build(host, fmt, tie):
    # Patterns 0x3e800000.. (0.25 and up: NF4's and E2M1's middle cells) and the same range negated.
    n = 1 << 18
    for s in (0x3E800000, 0xBE800000, 0x7F7C0000):  # the last range runs into +Inf and the first NaNs
        r = sweep_float32(fmt, tie, _host_codes_fn(host, fmt, tie), torch, device="cpu", chunk=1 << 16,
                          start=s, stop=s + n)
        assert r["mismatches"] == 0 and r["checked"] > 0, r
    # The sweep can fail: one wrong code is found and located.
    flip = 0x3E800000 + 12345
    r = sweep_float32(fmt, tie, _host_codes_fn(host, fmt, tie, flip_at=flip), torch, device="cpu", chunk=1 << 16,
                      start=0x3E800000, stop=0x3E800000 + n)
    assert r["mismatches"] == 1 and r["first"][0] == flip
