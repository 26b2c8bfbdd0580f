"""DEF-FORMAT-MX, DEF-FORMAT-NVFP4: the reference against torchao's own CPU functions (an oracle
suite; it skips when torchao is not installed — ``pip install natprec[oracles]`` installs the version
spec/07 states, torchao 0.18.0).

torchao's eager CPU paths are called directly: ``mx_tensor.to_mx`` / ``to_dtype`` (MX, floor and
RCEIL scale rules) and ``nvfp4_tensor.nvfp4_quantize`` with ``per_tensor_amax_to_scale`` (two-level
NVFP4), ``NVFP4Tensor.dequantize``. Where the conventions match, codes, scales and decoded values are
compared bit for bit; every difference spec/07 ("Where we differ from implementations") states about
torchao is pinned by a test that builds the input and asserts that difference, so a torchao release
that changes it fails here and the chapter must be revised.
"""

from __future__ import annotations

import ml_dtypes as md
import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="the torchao oracle needs torch")
pytest.importorskip("torchao", reason="oracle suite: torchao is not installed (pip install natprec[oracles])")

from torchao.prototype.mx_formats.config import ScaleCalculationMode  # noqa: E402
from torchao.prototype.mx_formats.kernels import unpack_uint4  # noqa: E402
from torchao.prototype.mx_formats.mx_tensor import to_dtype, to_mx  # noqa: E402
from torchao.prototype.mx_formats.nvfp4_tensor import NVFP4Tensor, nvfp4_quantize, per_tensor_amax_to_scale  # noqa: E402

from natprec.reference import dequantize, get_format, quantize  # noqa: E402

F32 = np.float32

#: natprec MX format → (torchao element dtype, natprec element format, max_elem, emax_elem)
MX = {
    "mxfp8_e4m3": (torch.float8_e4m3fn, "float8_e4m3fn", 448.0, 8),
    "mxfp8_e5m2": (torch.float8_e5m2, "float8_e5m2", 57344.0, 15),
    "mxfp6_e2m3": ("fp6_e2m3", "float6_e2m3fn", 7.5, 2),
    "mxfp6_e3m2": ("fp6_e3m2", "float6_e3m2fn", 28.0, 4),
    "mxfp4": (torch.float4_e2m1fn_x2, "float4_e2m1fn", 6.0, 2),
}
RULES = {"floor": ScaleCalculationMode.FLOOR, "rceil": ScaleCalculationMode.RCEIL}


def _f32(bits: int) -> F32:
    return np.array([bits], dtype=np.uint32).view(F32)[0]


def _torchao_mx(x: np.ndarray, name: str, rule: str):
    """torchao 0.18 ``to_mx`` (block 32) → (E8M0 scale codes, element codes in natprec's layout, decoded float32)."""
    elem = MX[name][0]
    scale, data = to_mx(torch.from_numpy(np.ascontiguousarray(x, F32)), elem, 32, RULES[rule])
    decoded = to_dtype(data, scale, elem, 32, torch.float32).numpy()
    codes = unpack_uint4(data.contiguous()).numpy() if name == "mxfp4" else data.view(torch.uint8).numpy()
    return scale.view(torch.uint8).numpy(), codes.reshape(x.shape), decoded


def _ours_mx(x: np.ndarray, name: str, rule: str):
    fmt = get_format(name, scale_rule=rule)
    q = quantize(x, fmt)
    return q.scales, q.codes, dequantize(q, fmt)


def _mx_blocks(seed: int, nblocks: int, j_lo: int, j_hi: int) -> np.ndarray:
    """(nblocks, 32) float32: per block a power of two 2**j, then per element a random significand
    (spread over 12 binades below), a half-integer on the grid (exact ties after scaling), its
    negative, or a signed zero."""
    rng = np.random.default_rng(seed)
    j = rng.integers(j_lo, j_hi, (nblocks, 1))
    sig = rng.uniform(1, 2, (nblocks, 32)) * 2.0 ** rng.integers(-12, 1, (nblocks, 32))
    grid = rng.integers(-16, 17, (nblocks, 32)) / 2
    kind = rng.integers(0, 5, (nblocks, 32))
    zero = np.where(rng.integers(0, 2, (nblocks, 32)) == 1, -0.0, 0.0)
    x = np.select([kind == 0, kind == 1, kind == 2, kind == 3], [sig, grid, -sig, zero], grid * 2.0**-3) * 2.0**j
    x = x.astype(F32)
    assert np.isfinite(x).all()
    return x


def _bits(a) -> np.ndarray:
    return np.asarray(a, np.float32).view(np.uint32)


# --------------------------------------------------------------------------------------------
# MX: equal where no block clamps at e = -127 and (RCEIL) no amax lies just above max_elem * 2**t.
# --------------------------------------------------------------------------------------------


@pytest.mark.spec("DEF-FORMAT-MX")
@pytest.mark.parametrize("rule", ["floor", "rceil"])
@pytest.mark.parametrize("name", list(MX))
def test_torchao_mx_equal_bit_for_bit(name, rule, spec_ids):
    """4000 blocks at 2**j, j in [-100, 100), (signed zeros and exact ties included): torchao 0.18's scale
    codes, element codes and decoded values equal ours bit for bit (ties to even on both sides)."""
    x = _mx_blocks(seed=7, nblocks=4000, j_lo=-100, j_hi=100)
    s_ao, c_ao, d_ao = _torchao_mx(x, name, rule)
    s, c, d = _ours_mx(x, name, rule)
    assert (s > 0).all()  # no block at e = -127 (those differ: test_torchao_mx_e_minus_127_blocks)
    np.testing.assert_array_equal(s_ao, s)
    np.testing.assert_array_equal(c_ao, c)
    np.testing.assert_array_equal(_bits(d_ao), _bits(d.astype(F32)))


@pytest.mark.spec("DEF-FORMAT-MX")
@pytest.mark.parametrize("name", list(MX))
def test_torchao_rceil_float32_log2_one_below(name, spec_ids):
    """torchao's RCEIL is ⌈log2 fl32(amax / max_elem)⌉ with a float32 log2. For amax = the float32 next
    above max_elem·2**t, log2 rounds to t exactly once the result's binade is [4, 8) or above, i.e. for t ≥ 4
    and t ≤ -5: torchao's e is t, one below ours (t+1), and the amax element saturates to max_elem·2**t.
    For -4 ≤ t ≤ 3 (and at amax = max_elem·2**t) they agree;
    torchao is never above ours nor more than one below."""
    _, _, mx, _ = MX[name]
    ts, amax, above = [], [], []
    for t in range(-127, 128):
        with np.errstate(over="ignore"):
            base = F32(mx * 2.0**t)
            nxt = np.nextafter(base, F32(np.inf))
        if not np.isfinite(nxt):
            break
        for k, a in ((0, base), (1, nxt)):
            ts.append(t)
            amax.append(a)
            above.append(k)
    ts, above = np.array(ts), np.array(above)
    x = np.zeros((len(amax), 32), F32)
    x[:, 0] = amax
    s_ao, c_ao, d_ao = _torchao_mx(x, name, "rceil")
    s, c, _ = _ours_mx(x, name, "rceil")
    diff = s_ao[:, 0].astype(int) - s[:, 0].astype(int)
    assert set(diff.tolist()) <= {0, -1}
    np.testing.assert_array_equal(diff[above == 0], 0)
    np.testing.assert_array_equal(diff[(above == 1) & (ts >= -4) & (ts <= 3)], 0)
    one_below = (above == 1) & ((ts >= 4) | (ts <= -5))
    assert one_below.sum() > 200
    np.testing.assert_array_equal(diff[one_below], -1)
    # the amax element saturates to max_elem·2**t: decoded below the input (t = -127: e = -127, where torchao
    # scales by 1.0 and the element decodes to 0 — test_torchao_mx_e_minus_127_blocks)
    one_below &= ts > -127
    np.testing.assert_array_equal(d_ao[one_below, 0], (mx * 2.0 ** ts[one_below]).astype(F32))
    assert (d_ao[one_below, 0] < x[one_below, 0]).all()


@pytest.mark.spec("DEF-FORMAT-MX")
@pytest.mark.parametrize("name", list(MX))
def test_torchao_mx_e_minus_127_blocks(name, spec_ids):
    """Blocks whose exponent is -127 (scale code 0 on both sides). Floor: torchao clamps the float32 scale
    2**-127 to the smallest normal 2**-126 before dividing, so its element codes are those of y/2, where
    ours are those of y = x·2**127. RCEIL: torchao multiplies by 1.0 where the code is 0 (not by
    2**127), so every element code is a zero code."""
    _, elem, mx, emax = MX[name]
    pattern = np.array([1.0, -0.75, 0.5, 0.3, -0.2, 0.125, 0.0, -0.0] * 4)
    # floor: amax = 2**(emax-127) gives e = emax - 127 - emax = -127 exactly, y = x·2**127 = pattern·2**emax
    x = (pattern * 2.0 ** (emax - 127)).astype(F32).reshape(1, 32)
    s_ao, c_ao, d_ao = _torchao_mx(x, name, "floor")
    s, c, d = _ours_mx(x, name, "floor")
    assert s_ao[0, 0] == s[0, 0] == 0
    y = pattern * 2.0**emax
    np.testing.assert_array_equal(c, quantize(y, elem, saturate=True).reshape(1, 32))
    np.testing.assert_array_equal(c_ao, quantize(y / 2, elem, saturate=True).reshape(1, 32))
    assert (c_ao != c).sum() >= 5
    # torchao decodes its codes with 2**-127, so the block comes back at about half its size
    np.testing.assert_array_equal(d_ao, (dequantize(c_ao.ravel(), elem) * 2.0**-127).astype(F32).reshape(1, 32))
    assert d_ao[0, 0] == x[0, 0] / 2 and d[0, 0] == x[0, 0]
    # rceil: amax = max_elem·2**-127 gives e = -127
    x = (pattern * mx * 2.0**-127).astype(F32).reshape(1, 32)
    s_ao, c_ao, d_ao = _torchao_mx(x, name, "rceil")
    s, c, d = _ours_mx(x, name, "rceil")
    assert s_ao[0, 0] == s[0, 0] == 0
    sign = {"mxfp8_e4m3": 0x80, "mxfp8_e5m2": 0x80, "mxfp6_e2m3": 0x20, "mxfp6_e3m2": 0x20, "mxfp4": 0x8}[name]
    np.testing.assert_array_equal(c_ao & ~np.uint8(sign), 0)
    np.testing.assert_array_equal(d_ao, 0.0)
    np.testing.assert_array_equal(c, quantize(pattern * mx, elem, saturate=True).reshape(1, 32))  # y = x·2**127
    assert (d != 0).sum() >= 24
    # one binade up the floor rule gives e = -126, and the two agree again
    x = (pattern * 2.0 ** (emax - 126)).astype(F32).reshape(1, 32)
    s_ao, c_ao, d_ao = _torchao_mx(x, name, "floor")
    s, c, d = _ours_mx(x, name, "floor")
    assert s_ao[0, 0] == s[0, 0] == 1
    np.testing.assert_array_equal(c_ao, c)
    np.testing.assert_array_equal(_bits(d_ao), _bits(d.astype(F32)))


# --------------------------------------------------------------------------------------------
# NVFP4 (two-level: per-tensor scale from per_tensor_amax_to_scale, then e4m3 block scales).
# --------------------------------------------------------------------------------------------


def _torchao_nvfp4(x: np.ndarray):
    """torchao 0.18 two-level NVFP4 → (scale codes, element codes, per-tensor scale P, decoded float32)."""
    t = torch.from_numpy(np.ascontiguousarray(x, F32))
    p = per_tensor_amax_to_scale(t.abs().max())
    scales, data = nvfp4_quantize(t, 16, p)
    codes = unpack_uint4(data.contiguous()).numpy().reshape(x.shape)
    decoded = NVFP4Tensor.to_nvfp4(t, 16, p).dequantize(torch.float32).numpy()
    return scales.view(torch.uint8).numpy(), codes, F32(p.item()), decoded


def _e4m3(v) -> np.ndarray:
    return np.asarray(v, F32).astype(md.float8_e4m3fn).view(np.uint8)


def _e2m1(v) -> np.ndarray:
    return np.clip(np.asarray(v, F32), -6, 6).astype(md.float4_e2m1fn).view(np.uint8) & 0xF


def _nvfp4_random(seed: int, sigma: float):
    """20 tensors of 64 x 1024 (65 536 elements): standard normal times a lognormal(0, sigma) per row."""
    rng = np.random.default_rng(seed)
    return [(rng.standard_normal((64, 1024)) * rng.lognormal(0, sigma, (64, 1))).astype(F32) for _ in range(20)]


@pytest.mark.spec("DEF-FORMAT-NVFP4")
@pytest.mark.parametrize(("sigma", "scale_diff", "code_diff", "tensor_scale_diff", "decoded_diff"), [(0.5, 0, 0, 7, 18), (1.0, 1, 3, 6, 20)])
def test_torchao_nvfp4_random_tensors(sigma, scale_diff, code_diff, tensor_scale_diff, decoded_diff, spec_ids):
    """20 random tensors (seed 1): codes agree on lognormal(0, 0.5) rows, but not always — with
    lognormal(0, 1) rows one of 81 920 block scales and 3 of 1 310 720 element codes differ (the
    operation order, test_torchao_nvfp4_scale_operation_order). The per-tensor decode scales
    fl32(A/2688) ≠ fl32(1/fl32(2688/A)) in some tensors, and the decoded values (torchao:
    fl32(c·fl32(P·s)), ours fl32(fl32(c·s)·S_dec)) differ somewhere in most. No block here is small
    enough for torchao's 2**-6 scale clamp (test_torchao_nvfp4_scale_clamp)."""
    got = [0, 0, 0, 0]
    for x in _nvfp4_random(1, sigma):
        s_ao, c_ao, p, d_ao = _torchao_nvfp4(x)
        q = quantize(x, "nvfp4")
        assert (q.scales >= 8).all()
        got[0] += int((s_ao != q.scales).sum())
        got[1] += int((c_ao != q.codes).sum())
        got[2] += int(p != q.tensor_scale)
        got[3] += int((d_ao != dequantize(q, "nvfp4")).any())
        assert p == np.abs(x).max() / F32(2688)
        # torchao decodes c · fl32(P·s), in float32
        scale = np.repeat(p * _e4m3_decode(s_ao), 16, axis=-1)
        np.testing.assert_array_equal(_bits(d_ao), _bits(dequantize(c_ao, "float4_e2m1fn").astype(F32) * scale))
    assert got == [scale_diff, code_diff, tensor_scale_diff, decoded_diff]


def _e4m3_decode(codes) -> np.ndarray:
    return np.asarray(codes, np.uint8).view(md.float8_e4m3fn).astype(F32)


# A tensor maximum A and a block maximum a (bit patterns) found by a search over e4m3 rounding midpoints.
ORDER_A, ORDER_a = 1097835546, 1032945424  # A ≈ 14.977564, a ≈ 0.071043134


@pytest.mark.spec("DEF-FORMAT-NVFP4")
def test_torchao_nvfp4_scale_operation_order(spec_ids):
    """torchao's block scale is e4m3(fl32(fl32(a/6) / fl32(A/2688))), ours (TE's) e4m3(fl32(a·fl32(fl32(2688/A)·fl32(1/6)))):
    the same real number, rounded in another order, and here on either side of an e4m3 midpoint
    — torchao code 64 (2.0), ours 65 (2.25)."""
    A, a = _f32(ORDER_A), _f32(ORDER_a)
    x = np.zeros((1, 32), F32)
    x[0, 0], x[0, 16] = A, a
    s_ao, _, _, _ = _torchao_nvfp4(x)
    q = quantize(x, "nvfp4")
    assert s_ao[0].tolist() == [126, 64]
    assert q.scales[0].tolist() == [126, 65]
    assert _e4m3((a / F32(6)) / (A / F32(2688))) == 64
    assert _e4m3(a * ((F32(2688) / A) * (F32(1) / F32(6)))) == 65


# A tensor maximum A and an element x in its block (bit patterns): both sides give block scale 448.
STEP_A, STEP_x = 1078985505, 1064480337  # A ≈ 3.250191, x ≈ 0.94797236


@pytest.mark.spec("DEF-FORMAT-NVFP4")
def test_torchao_nvfp4_element_step_multiplies(spec_ids):
    """torchao 0.18 forms the element as fl32(x · fl32(fl32(1/P)/s)), P = fl32(A/2688) — a multiplication,
    not the division x / fl32(P·s) of its earlier releases; ours (TE's) is fl32(x · fl32(1/fl32(s·S_dec))).
    Here x·k lands on either side of the e2m1 midpoint 1.75: torchao code 4 (2.0), ours and the division 3 (1.5)."""
    A, xv = _f32(STEP_A), _f32(STEP_x)
    x = np.zeros((1, 16), F32)
    x[0, 0], x[0, 1] = A, xv
    s_ao, c_ao, p, _ = _torchao_nvfp4(x)
    q = quantize(x, "nvfp4")
    assert s_ao[0, 0] == q.scales[0, 0] == 126  # 448
    s = F32(448)
    assert p == A / F32(2688)
    assert c_ao[0, 1] == 4 == _e2m1(xv * ((F32(1) / p) / s))
    assert q.codes[0, 1] == 3 == _e2m1(xv * (F32(1) / (s * q.tensor_scale)))
    assert _e2m1(xv / (p * s)) == 3


@pytest.mark.spec("DEF-FORMAT-NVFP4")
def test_torchao_nvfp4_scale_clamp(spec_ids):
    """torchao clamps the block scale to ≥ 2**-6 (e4m3 code 8): an all-zero block gets code 8 (ours 0), and so
    does a block whose scale would be an e4m3 subnormal (ours: codes 1…7). An all-zero tensor has P = 0, so
    torchao's scales are 0/0 = NaN (code 255) and it decodes to NaN; ours has S_enc = 1, codes 0, decodes to 0."""
    x = np.zeros((1, 48), F32)
    x[0, 0] = 1000.0
    x[0, 32] = 1e-2  # a·S_enc/6 = 1e-2·2.688/6 ≈ 0.0045: e4m3 subnormal 2**-8 (code 2)
    s_ao, _, _, _ = _torchao_nvfp4(x)
    q = quantize(x, "nvfp4")
    assert s_ao[0].tolist() == [126, 8, 8]
    assert q.scales[0].tolist() == [126, 0, 2]
    z = np.zeros((1, 16), F32)
    s_ao, _, p, d_ao = _torchao_nvfp4(z)
    assert p == 0 and s_ao[0, 0] == 255 and np.isnan(d_ao).all()
    q = quantize(z, "nvfp4")
    assert q.scales[0, 0] == 0 and q.tensor_scale == 1 and (dequantize(q, "nvfp4") == 0).all()
