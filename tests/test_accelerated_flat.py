"""The flat block layout (DEF-BLOCK-LAYOUT) on the accelerated tier, on the host build of the kernels' header.

``get_format("nf4_absmax64", layout="flat")`` — bitsandbytes' blocks of the flattened tensor — is
launched by the tier as one row of all n elements (kernels/block.cu, ``BlockPlan.flat``):
``np_block_span`` gives the n mod B last block, and ``np_block_quantize_one`` normalises a block
shorter than ``divide_below`` (B in the flat layout) by division, y = fl32(x / s), as the reference
and bitsandbytes do.  Here the g++ build of the same header serves the launches (HostBackend),
through the tier, so the tier's plan, launch shape and result layout (codes of x's shape, ⌈n/B⌉
scales, ``layout="flat"``) are checked too.  Bit for bit against the reference (codes, scales,
dequantized values, census reports):

* every finite float16 and bfloat16 pattern, every tie rule, in bit order with a partial last
  block, shuffled as rows whose blocks cross rows, and all of them in one partial block;
* every scale of a partial block: one tensor of B − 1 elements per positive finite bfloat16 value
  s, holding the float32 values next to every decision threshold times s (the backend serves them
  as the rows of one launch, the reference one tensor at a time);
* n a multiple of B, n < B, empty, 0-d, all-zero and tiny (s ≤ 2**-128) partial blocks, other
  block sizes, float64 input (rounded once, on the device as in the last-axis layout);
* hypothesis arrays of every dtype and shape; the collision census of a flat format.
"""


import ml_dtypes
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import natprec.accelerated as acc
import natprec.reference as ref
from natprec.accelerated.plans import block_plan
from natprec.conformance.bodies import FLAT_FORMATS
from natprec.conformance.exhaustive import DT16, all16, near_threshold_rows
from natprec.conformance.harness import assert_bits_equal, assert_same_outcome
from natprec.conformance.strategies import float_arrays, tie_rules

BF16 = np.dtype(ml_dtypes.bfloat16)
FLAT = FLAT_FORMATS  # every block format the reference accepts layout="flat" for (the absmax ones)


def _flat(name, **kw):
    return ref.get_format(name, layout="flat", **kw)


def _check(host, x, f, tie="even", what=""):
    """The tier's quantize and dequantize of x equal the reference's bit for bit (or raise as it does); x.size."""
    try:
        want = ref.quantize(x, f, tie=tie)
    except ref.errors.NatprecError as exc:
        with acc.use_backend(host), pytest.raises(type(exc)):
            acc.quantize(x, f, tie=tie)
        return 0
    with acc.use_backend(host):
        got = acc.quantize(x, f, tie=tie)
        assert acc.last_path() == "device", acc.last_path()
        assert_bits_equal(got, want, what)
        assert_bits_equal(acc.dequantize(got, f), ref.dequantize(want, f), f"{what} dequantized")
    assert got.layout == "flat" and got.scales.shape == (-(-np.size(x) // f.block_size),)
    return np.size(x)


def test_flat_formats_are_the_absmax_ones():
    assert FLAT == tuple(n for n in ref.block_format_names() if isinstance(ref.get_format(n), ref.AbsmaxBlockFormat))
    assert len(FLAT) >= 2 and "flat layout" not in acc.HOST_PATHS


@pytest.mark.spec("DEF-BLOCK-LAYOUT", "DEF-FORMAT-BLOCK-ABSMAX")
@pytest.mark.parametrize("dtype", sorted(DT16))
@pytest.mark.parametrize("name", FLAT)
def test_every_16bit_pattern(host, name, dtype):
    f = _flat(name)
    bs = f.block_size
    x = all16(DT16[dtype])
    x = x[np.isfinite(x.astype(np.float32))]
    shuffled = np.random.default_rng(7).permutation(x)
    cols = 3 * bs + 7
    rows = x.size // cols
    inputs = [
        x[: x.size - 37],  # in bit order, the last block partial
        shuffled[: rows * cols].reshape(rows, cols),  # blocks cross rows
        shuffled[: 5 * 7 * (x.size // 35 - 1)].reshape(-1, 5, 7),  # 3-d
    ]
    assert all(xi.size % bs for xi in inputs), [xi.size % bs for xi in inputs]
    checked = 0
    for tie in ref.TIE_RULES:
        for xi in inputs:
            checked += _check(host, xi, f, tie, f"{name}/{dtype}/{tie} {xi.shape}")
    # every pattern in one partial block (n < B): each divided by the largest magnitude
    big = _flat(name, block_size=1 << 17)
    for tie in ref.TIE_RULES:
        checked += _check(host, shuffled, big, tie, f"{name}/{dtype}/{tie} one partial block")
    assert checked > 0


@pytest.mark.spec("DEF-BLOCK-LAYOUT", "DEF-FORMAT-BLOCK-ABSMAX")
@pytest.mark.parametrize("name", FLAT)
def test_partial_block_every_scale(host, name):
    # Each row is a tensor of B - 1 elements: in the flat layout one partial block, divided by its s.  The
    # backend runs them as the rows of one launch of the flat plan (each row's only block is partial and
    # divides, exactly as a tensor's last block); the reference quantizes each row as its own tensor.
    # tie="even" on every row, the other rules on every 8th.
    f = _flat(name)
    x = near_threshold_rows(f.block_size - 1, f.element.codebook.values)
    differs_from_multiply = 0
    for tie in ref.TIE_RULES:
        xs = x if tie == "even" else x[::8]
        try:
            bp = block_plan(ref.prepare_block_input(xs, f, tie=tie))
        except ref.errors.NatprecError:
            continue  # the rule is undefined for this codebook (the reference says so; the tier raises the same)
        assert bp.flat
        codes, words, _ = host.block_quantize(xs, xs.shape[0], xs.shape[1], bp)
        want = [ref.quantize(row, f, tie=tie) for row in xs]
        assert_bits_equal(codes.reshape(xs.shape).astype(f.element.code_dtype), np.stack([q.codes for q in want]),
                          f"{name}/{tie} codes")
        assert_bits_equal(words.view(np.float32), np.concatenate([q.scales for q in want]), f"{name}/{tie} scales")
        multiplied = ref.quantize(xs, ref.get_format(name), tie=tie).codes  # the same rows in the last-axis layout
        differs_from_multiply += int(np.count_nonzero(np.any(multiplied != codes.reshape(xs.shape), axis=1)))
    # the division decides some rows' codes: this test sees it
    assert differs_from_multiply > 0
    # and through the tier, every 211th row as its own tensor (one launch each)
    for i in range(0, x.shape[0], 211):
        _check(host, x[i], f, "even", f"{name} row {i}")


@pytest.mark.spec("DEF-BLOCK-LAYOUT")
@pytest.mark.parametrize("name", FLAT)
def test_shapes_sizes_and_special_blocks(host, name):
    f = _flat(name)
    rng = np.random.default_rng(12)
    tiny = np.float32(2.0**-130)
    special = [
        np.zeros(0, np.float32), np.zeros((3, 0), np.float16), np.zeros((0, 5), BF16),  # empty
        np.float32(-2.5), np.array(3.0),  # 0-d (float64 rounded once)
        rng.standard_normal(64).astype(np.float32), rng.standard_normal((4, 32)).astype(np.float32),  # n = B, 2B/2
        rng.standard_normal(63).astype(np.float16), rng.standard_normal((2, 3, 5)).astype(BF16),  # n < B
        rng.standard_normal((7, 33)), rng.standard_normal((200, 77)).astype(np.float32),  # float64; n mod B = 40
        np.concatenate([rng.standard_normal(64), [-0.0, 0.0, -0.0]]).astype(np.float32),  # all-zero partial block
        np.concatenate([rng.standard_normal(128), [tiny, -tiny / 2, 0.0, tiny / 4]]).astype(np.float32),  # fl32(1/s) = Inf
        np.concatenate([[tiny] * 64, [2.0**-149, -(2.0**-149)]]).astype(np.float32),  # tiny full block, subnormal s
        np.arange(1, 71, dtype=np.float32).reshape(7, 10),  # spec evidence: scales [64, 70]
    ]
    for x in special:
        for tie in ref.TIE_RULES:
            _check(host, x, f, tie, f"{name} {x.dtype} {np.shape(x)} {tie}")
    for bs in (1, 2, 16, 100, 2**40):
        g = _flat(name, block_size=bs)
        for x in special[5:]:
            _check(host, x, g, "even", f"{name}/{bs} {np.shape(x)}")


@pytest.mark.spec("DEF-BLOCK-LAYOUT")
def test_spec_partial_pair(host):
    # DEF-BLOCK-LAYOUT's evidence: [1 x 64, s, v] with tie="down": v gets NF4 code 7 in the flat layout
    # (divided, as bitsandbytes) and 8 in the last-axis layout, on the device as in the reference.
    s, v = float.fromhex("0x1.20e9fap+5"), float.fromhex("0x1.6fdeaap+0")
    x = np.array([1.0] * 64 + [s, v], np.float32)
    with acc.use_backend(host):
        flat = acc.quantize(x, _flat("nf4_absmax64"), tie="down")
        rows = acc.quantize(x, "nf4_absmax64", tie="down")
        assert acc.last_path() == "device"
    assert int(flat.codes[-1]) == 7 and int(rows.codes[-1]) == 8
    assert_bits_equal(flat, ref.quantize(x, _flat("nf4_absmax64"), tie="down"))


@pytest.mark.spec("DEF-BLOCK-LAYOUT", "DEF-FORMAT-BLOCK-ABSMAX")
@given(x=float_arrays(allow_nan=False, allow_infinity=False), name=st.sampled_from(FLAT), tie=tie_rules,
       bs=st.sampled_from([None, 1, 3, 16, 64, 1000]))
def test_hypothesis_arrays(host, x, name, tie, bs):
    f = _flat(name) if bs is None else _flat(name, block_size=bs)

    def body(impl):
        q = impl.quantize(x, f, tie=tie)
        return q, impl.dequantize(q, f)

    with acc.use_backend(host):
        assert_same_outcome(body, acc, ref)


@pytest.mark.spec("DEF-BLOCK-LAYOUT", "DEF-COLLISION-CENSUS")
@pytest.mark.parametrize("name", FLAT)
def test_census_of_a_flat_format(host, name):
    # The census of a flat format reads x flattened; its block codes come from the flat kernel.  Two values in
    # one NF4 cell when multiplied and in two cells when divided (tie="down"): the report sees the division.
    f = _flat(name)
    s, v = np.float32(float.fromhex("0x1.20e9fap+5")), np.float32(float.fromhex("0x1.6fdeaap+0"))
    cases = [np.array([1.0] * 64 + [s, v, np.nextafter(v, np.float32(9))], np.float32),
             np.random.default_rng(3).standard_normal((9, 23)).astype(np.float16), np.float32(-1.5)]
    for x in cases:
        for tie in ref.TIE_RULES:
            with acc.use_backend(host):
                got = acc.injectivity_report(x, f, tie=tie)
                assert acc.last_path() == "device"
            assert_bits_equal(got, ref.injectivity_report(x, f, tie=tie), f"census {name} {np.shape(x)} {tie}")
    if name == "nf4_absmax64":
        assert ref.injectivity_report(cases[0], f, tie="down").injective
        assert not ref.injectivity_report(cases[0], ref.get_format(name), tie="down").injective


@pytest.mark.spec("DEF-BLOCK-LAYOUT", "DEF-COLLISION-CENSUS")
@given(x=float_arrays(dtypes=(np.float16, BF16, np.float32), allow_infinity=False), name=st.sampled_from(FLAT),
       tie=tie_rules, listed=st.sampled_from([None, 0, 3]))
def test_census_hypothesis(host, x, name, tie, listed):
    f = _flat(name)
    with acc.use_backend(host):
        assert_same_outcome(lambda impl: impl.injectivity_report(x, f, tie=tie, nan_policy="omit", max_listed=listed),
                            acc, ref)
