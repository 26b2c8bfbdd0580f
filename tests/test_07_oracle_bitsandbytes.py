"""DEF-FORMAT-BLOCK-ABSMAX, DEF-FORMAT-ELEMENT: the reference against bitsandbytes' own CPU functions
(an oracle suite; it skips when bitsandbytes is not installed — ``pip install natprec[oracles]``
installs the version spec/07 states, bitsandbytes 0.50.2).

``bitsandbytes.functional.quantize_4bit`` / ``dequantize_4bit`` on CPU tensors (blocksize 64, nf4 and
fp4) against ``nf4_absmax64`` / ``fp4_bnb_absmax64``. bnb's CPU quantizer scales a block by
fl32(1/max(absmax, 1e-38)), clamps to [-1, 1] and buckets against float32 midpoints of its float32
code table (a value on a midpoint goes to the lower code), so ours is compared with ``tie="down"``.
Where the conventions match, codes, absmax and decoded values are equal bit for bit; every CPU
difference spec/07 states is pinned here, so a release that changes it fails and the chapter must
be revised.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="the bitsandbytes oracle needs torch")
pytest.importorskip("bitsandbytes", reason="oracle suite: bitsandbytes is not installed (pip install natprec[oracles])")

import bitsandbytes.functional as bnbf  # noqa: E402

from natprec.reference import dequantize, get_format, quantize  # noqa: E402

F32 = np.float32
FORMATS = {"nf4": "nf4_absmax64", "fp4": "fp4_bnb_absmax64"}
ELEMENT = {"nf4": "nf4", "fp4": "fp4_bnb"}
#: fl32(1e-38), bnb's absmax floor (a float32 subnormal, just below 2**-126)
CLAMP = F32(1e-38)


def _bnb(x: np.ndarray, qt: str):
    """bnb CPU quantize_4bit (blocksize 64) on the flattened x → (codes, absmax, decoded float32)."""
    t = torch.from_numpy(np.ascontiguousarray(x, F32).ravel().copy())
    packed, state = bnbf.quantize_4bit(t, blocksize=64, quant_type=qt)
    p = packed.numpy().ravel()
    codes = np.empty(2 * p.size, np.uint8)
    codes[0::2], codes[1::2] = p >> 4, p & 0xF
    decoded = bnbf.dequantize_4bit(packed, state).numpy().ravel()
    return codes[: t.numel()], state.absmax.numpy(), decoded


def _bits(a) -> np.ndarray:
    return np.asarray(a, F32).view(np.uint32)


def _random_blocks(seed: int = 0, nblocks: int = 512) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((nblocks, 64)) * rng.lognormal(0, 3, (nblocks, 1))).astype(F32)


@pytest.mark.spec("DEF-FORMAT-BLOCK-ABSMAX")
def test_bnb_cpu_nf4_equal_bit_for_bit(spec_ids):
    """512 random blocks: NF4 codes, absmax and decoded values equal ours (tie="down") bit for bit."""
    x = _random_blocks()
    c, am, d = _bnb(x, "nf4")
    q = quantize(x, "nf4_absmax64", tie="down")
    np.testing.assert_array_equal(c, q.codes.ravel())
    np.testing.assert_array_equal(_bits(am), _bits(q.scales.ravel()))
    np.testing.assert_array_equal(_bits(d), _bits(dequantize(q, "nf4_absmax64").astype(F32).ravel()))


@pytest.mark.spec("DEF-FORMAT-BLOCK-ABSMAX", "DEF-FORMAT-ELEMENT")
def test_bnb_cpu_fp4_zero_cell_sign(spec_ids):
    """FP4 on random blocks: equal to ours except in the zero cell, -0.0026041667 < y ≤ 0.0026041667 (y = x/absmax).
    There bnb's CPU path gives positive y the code 8 (our -0 code) and negative y, +0.0 and -0.0 the
    code 0 — the opposite of ours (0 for +0.0 and positive, 8 for -0.0 and negative). bnb's CPU code
    table has +0.0 at code 8, so every zero decodes to +0.0."""
    x = _random_blocks()
    x[0, 1], x[0, 2] = 0.0, -0.0
    c, am, d = _bnb(x, "fp4")
    q = quantize(x, "fp4_bnb_absmax64", tie="down")
    ours = q.codes.ravel()
    y = get_format("fp4_bnb_absmax64").scaled(x).ravel()
    zero_cell = np.isin(ours, (0, 8))
    assert zero_cell.sum() > 100
    np.testing.assert_array_equal(c[~zero_cell], ours[~zero_cell])
    np.testing.assert_array_equal(c[zero_cell], np.where(y[zero_cell] > 0, 8, 0))
    np.testing.assert_array_equal(ours[zero_cell], np.where(np.signbit(y[zero_cell]), 8, 0))
    assert c[1] == c[2] == 0 and ours[1] == 0 and ours[2] == 8
    np.testing.assert_array_equal(_bits(am), _bits(q.scales.ravel()))
    ref = dequantize(q, "fp4_bnb_absmax64").astype(F32).ravel()
    np.testing.assert_array_equal(d, ref)  # equal as numbers
    assert not np.signbit(d[zero_cell]).any() and np.signbit(ref[zero_cell]).any()


def _feed(y: np.ndarray, qt: str) -> np.ndarray:
    """bnb CPU codes of float32 y in [-1, 1], each in a block whose absmax is 1 (so bnb's y is y exactly)."""
    per = 63
    nb = -(-y.size // per)
    body = np.zeros(nb * per, F32)
    body[: y.size] = y
    blocks = np.concatenate([np.ones((nb, 1), F32), body.reshape(nb, per)], axis=1)
    return _bnb(blocks, qt)[0].reshape(nb, 64)[:, 1:].ravel()[: y.size]


def _threshold_differences(qt: str, tie: str) -> list[float]:
    """Every float32 y in [-1, 1] whose code value differs between bnb's CPU path and ours.

    Both are monotone step functions of y with one threshold per pair of adjacent codewords: ours at
    the exact midpoint, bnb's at a float32 one. A window of ±4096 float32 around each midpoint holds
    both thresholds (asserted: the window's ends agree), so scanning the windows is exhaustive.
    Codes are compared by value, so the zero cell's sign (test_bnb_cpu_fp4_zero_cell_sign) is left out."""
    fmt = ELEMENT[qt]
    vals = np.unique(dequantize(np.arange(16, dtype=np.uint8), fmt).astype(F32))
    out = []
    for a, b in zip(vals[:-1], vals[1:]):
        c = F32((float(a) + float(b)) / 2)
        y = (c.view(np.int32) + np.arange(-4096, 4097, dtype=np.int32)).view(F32)
        y = y[(y >= -1) & (y <= 1) & (np.sign(y) == np.sign(c))]
        ours = dequantize(quantize(y, fmt, tie=tie), fmt)
        theirs = dequantize(_feed(y, qt), fmt)
        assert ours[0] == theirs[0] and ours[-1] == theirs[-1]
        out += y[ours != theirs].tolist()
    return out


NF4_EVEN = [-0.8480964, -0.6106329, -0.33967942, -0.2346074, 0.03979015, 0.20352125, 0.38931254, 0.50166345, 0.6427869, 0.86147845]
NF4_DOWN = [-0.8480964, -0.6106329, -0.33967942, -0.2346074, 0.50166345, 0.86147845]
FP4_DOWN = [-0.0859375, 0.20833334, 0.2916667, 0.4166667, 0.5833334, 0.8333334]
FP4_EVEN = sorted([-0.0026041667, *FP4_DOWN])


@pytest.mark.spec("DEF-FORMAT-ELEMENT", "DEF-TIE-RULES")
@pytest.mark.parametrize(
    ("qt", "tie", "expected"), [("nf4", "even", NF4_EVEN), ("nf4", "down", NF4_DOWN), ("fp4", "even", FP4_EVEN), ("fp4", "down", FP4_DOWN)]
)
def test_bnb_cpu_thresholds(qt, tie, expected, spec_ids):
    """The float32 y in [-1, 1] that bnb's CPU path codes differently from ours. NF4: the same ten (tie
    "even") / six (tie "down") values spec/07 lists for the CUDA thresholds. FP4: not the CUDA intervals
    (14 values at 0.0026041, 0.4166667, 5 values at 0.5833) but single values — the float32 midpoints
    that lie above the exact midpoint (a tie there goes down in bnb) — and, with tie "even", -0.0026041667."""
    got = _threshold_differences(qt, tie)
    np.testing.assert_array_equal(np.array(got, F32), np.array(expected, F32))


@pytest.mark.spec("DEF-FORMAT-BLOCK-ABSMAX")
def test_bnb_cpu_absmax_clamp(spec_ids):
    """bnb scales by fl32(1/max(absmax, fl32(1e-38))). A block whose absmax s is below fl32(1e-38) (a subnormal)
    is scaled by fl32(1/fl32(1e-38)), so its y stay below 1 and its codes differ from ours (y = x/s, max 1).
    A full block stores the true s; the partial last block stores the clamped one, 1e-38."""
    for s, same in ((F32(2.0**-126), True), (CLAMP, True), (F32(2.0**-127), False), (F32(2.0**-130), False)):
        x = np.zeros(64, F32)
        x[:3] = s, -s / 2, s / 4
        for qt, fmt in FORMATS.items():
            c, am, _ = _bnb(x, qt)
            ours = quantize(x, fmt, tie="down")
            assert _bits(am)[0] == _bits(s)
            assert (c[:3] == ours.codes[:3]).all() == same, (s, qt)
            if not same:  # bnb's codes are those of fl32(x · fl32(1/fl32(1e-38)))
                y = x * (F32(1) / CLAMP)
                assert np.abs(y).max() < 1
                np.testing.assert_array_equal(c, quantize(y, ELEMENT[qt], tie="down"))
            if s == F32(2.0**-127) and qt == "nf4":
                assert c[:3].tolist() == [13, 4, 9] and ours.codes[:3].tolist() == [15, 2, 10]
    x = np.ones(70, F32)
    x[64:] = 0
    x[64] = 2.0**-130
    for qt, fmt in FORMATS.items():
        c, am, _ = _bnb(x, qt)
        ours = quantize(x, fmt, tie="down")
        assert _bits(am).tolist() == [_bits(F32(1)), _bits(CLAMP)]
        assert ours.scales.tolist() == [1.0, F32(2.0**-130)]
        assert c[64] != ours.codes[64]


@pytest.mark.spec("DEF-FORMAT-BLOCK-ABSMAX")
def test_bnb_cpu_partial_block_divides(spec_ids):
    """bnb's partial last block is scaled by a division, fl32(x / s), its full blocks (and all of ours) by
    fl32(x · fl32(1/s)). The two differ in the last bit, and here across an NF4 threshold: the same values
    agree with ours in a full block and differ in the partial last one."""
    # s ≈ 36.114246, v ≈ 1.4369913: found by a search over NF4 midpoints times random s
    s, v = np.array([1108374781, 1069018965], np.uint32).view(F32)
    assert v / s != v * (F32(1) / s)
    full = np.zeros(64, F32)
    full[:2] = s, v
    part = np.concatenate([np.ones(64, F32), np.array([s, v], F32)])
    for x, idx, agree in ((full, 1, True), (part, 65, False)):
        c, _, _ = _bnb(x, "nf4")
        ours = quantize(x, "nf4_absmax64", tie="down").codes
        assert (c[idx] == ours[idx]) == agree
    assert _bnb(part, "nf4")[0][65] == 7 and quantize(part, "nf4_absmax64", tie="down").codes[65] == 8


@pytest.mark.spec("DEF-FORMAT-BLOCK-ABSMAX")
def test_bnb_cpu_all_zero_block(spec_ids):
    """An all-zero block (signed zeros included): bnb's CPU path gives NF4 code 7 (as ours; its CUDA kernel
    gives code 0) and FP4 code 0 for every element, -0.0 included (ours: code 8 for -0.0); all decode to +0.0."""
    x = np.zeros(64, F32)
    x[1::2] = -0.0
    for qt, fmt in FORMATS.items():
        c, am, d = _bnb(x, qt)
        ours = quantize(x, fmt, tie="down").codes
        assert am.tolist() == [0.0] and not np.signbit(d).any() and (d == 0).all()
        if qt == "nf4":
            assert (c == 7).all() and (ours == 7).all()
        else:
            assert (c == 0).all() and (ours == np.where(np.signbit(x), 8, 0)).all()


# --------------------------------------------------------------------------------------------
# DEF-BLOCK-LAYOUT: layout="flat" is bitsandbytes' blocking — the flattened tensor, its partial last block divided.
# --------------------------------------------------------------------------------------------

FLAT_SHAPES = [(64 * 9,), (64 * 9 + 5,), (3, 5, 70), (7, 33), (2, 3, 4, 11), (1, 63), (200, 77)]


def _flat_x(shape, seed) -> np.ndarray:
    rng = np.random.default_rng(seed)
    n = int(np.prod(shape))
    return (rng.standard_normal(n) * np.repeat(rng.lognormal(0, 3, -(-n // 16)), 16)[:n]).astype(F32).reshape(shape)


@pytest.mark.spec("DEF-BLOCK-LAYOUT", "DEF-FORMAT-BLOCK-ABSMAX")
@pytest.mark.parametrize("shape", FLAT_SHAPES, ids=str)
def test_bnb_cpu_flat_layout_nf4_bit_for_bit(shape, spec_ids):
    """nf4_absmax64 with layout="flat", tie="down" against bnb's quantize_4bit / dequantize_4bit (blocksize 64) on
    tensors of any shape, blocks running across rows and a partial last block: codes, absmax and decoded values
    equal bit for bit; the same tensors in the last-axis layout give other blocks wherever 64 does not divide the
    last axis."""
    x = _flat_x(shape, 1)
    fmt = get_format("nf4_absmax64", layout="flat")
    c, am, d = _bnb(x, "nf4")
    q = quantize(x, fmt, tie="down")
    assert q.layout == "flat" and q.codes.shape == x.shape and q.scales.shape == (-(-x.size // 64),)
    np.testing.assert_array_equal(c, q.codes.ravel())
    np.testing.assert_array_equal(_bits(am), _bits(q.scales))
    np.testing.assert_array_equal(_bits(d), _bits(dequantize(q, fmt).astype(F32).ravel()))
    if x.size > shape[-1] and shape[-1] % 64:  # (one row: the same blocks in both layouts)
        assert not np.array_equal(c, quantize(x, "nf4_absmax64", tie="down").codes.ravel())


@pytest.mark.spec("DEF-BLOCK-LAYOUT", "DEF-FORMAT-BLOCK-ABSMAX")
@pytest.mark.parametrize("shape", FLAT_SHAPES, ids=str)
def test_bnb_cpu_flat_layout_fp4(shape, spec_ids):
    """fp4_bnb_absmax64, layout="flat": absmax and decoded values equal bnb's bit for bit, and the codes too except
    in the zero cell, where bnb's sign convention is the opposite of ours (test_bnb_cpu_fp4_zero_cell_sign); the
    decoded zeros are +0.0 in bnb, ±0.0 in ours (equal as numbers)."""
    x = _flat_x(shape, 2)
    x.ravel()[::37] = 0.0
    fmt = get_format("fp4_bnb_absmax64", layout="flat")
    c, am, d = _bnb(x, "fp4")
    q = quantize(x, fmt, tie="down")
    ours = q.codes.ravel()
    y = fmt.scaled(x).ravel()
    zero_cell = np.isin(ours, (0, 8))
    np.testing.assert_array_equal(c[~zero_cell], ours[~zero_cell])
    np.testing.assert_array_equal(c[zero_cell], np.where(y[zero_cell] > 0, 8, 0))
    np.testing.assert_array_equal(_bits(am), _bits(q.scales))
    ref = dequantize(q, fmt).astype(F32).ravel()
    np.testing.assert_array_equal(d, ref)
    np.testing.assert_array_equal(_bits(d[~zero_cell]), _bits(ref[~zero_cell]))


@pytest.mark.spec("DEF-BLOCK-LAYOUT")
def test_bnb_cpu_flat_partial_block_divides(spec_ids):
    """The pair of test_bnb_cpu_partial_block_divides, in the flat layout: bnb's partial last block and ours both
    divide, so the value the last-axis layout codes 8 gets bnb's 7 here too."""
    s, v = np.array([1108374781, 1069018965], np.uint32).view(F32)
    part = np.concatenate([np.ones(64, F32), np.array([s, v], F32)])
    flat = get_format("nf4_absmax64", layout="flat")
    assert _bnb(part, "nf4")[0][65] == quantize(part, flat, tie="down").codes[65] == 7
    assert quantize(part, "nf4_absmax64", tie="down").codes[65] == 8
