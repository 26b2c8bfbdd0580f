"""Tests for the quantizer operating points of spec/10-rate-distortion.md."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from natprec.reference import get_format, ggd
from natprec.reference import ratedistortion as rd
from natprec.reference.codebook import Codebook
from natprec.reference.errors import EmptyInputError, InvalidParameterError

NF4 = Codebook(rd.NF4_VALUES, name="nf4")


@pytest.mark.spec("DEF-RD-SLB", "DEF-RD-GAUSS")
@given(st.floats(-5, 5), st.floats(1e-6, 0.9))
def test_slb_one_bit_per_quartering_and_gaussian_tight(h, d):
    assert rd.slb_rate_bits(h, d) - rd.slb_rate_bits(h, 4 * d) == pytest.approx(1.0, abs=1e-12)
    h_gauss = ggd.differential_entropy_bits(2.0)
    assert rd.slb_rate_bits(h_gauss, d) == pytest.approx(rd.gaussian_rate_bits(1.0, d), abs=1e-12)


@pytest.mark.spec("THM-RD-LOG-CONCAVE-GAP")
def test_log_concave_constant():
    assert rd.LOG_CONCAVE_GAP_BITS == pytest.approx(1.0471, abs=1e-4)
    assert rd.log_concave_gap_check(3.2, 3.19)
    assert not rd.log_concave_gap_check(4.3, 3.19)
    assert not rd.log_concave_gap_check(3.0, 3.19)


@pytest.mark.spec("DEF-RD-OPPOINT")
def test_operating_point_analytic_matches_samples():
    src = rd.GGDSource(1.7)
    op = rd.operating_point(NF4, src, 3.0)
    xs = ggd.sample(400_000, 1.7, rng=7)
    emp = rd.operating_point(NF4, rd.SampleSource(xs), 3.0)
    assert emp.mse == pytest.approx(op.mse, rel=0.02)
    assert emp.index_entropy_bits == pytest.approx(op.index_entropy_bits, abs=0.01)
    assert op.fixed_rate_bits == 4.0
    assert op.gap_entropy_to_slb_bits == pytest.approx(op.index_entropy_bits - op.slb_bits)
    assert emp.slb_bits is None and emp.rd_bits is None


@pytest.mark.spec("DEF-RD-OPPOINT", "THM-RD-SLB")
def test_gaussian_operating_point_gaps():
    op = rd.operating_point(NF4, rd.GGDSource(2.0), "mse", compute_rd=True)
    assert op.rd_bits == pytest.approx(op.slb_bits, abs=1e-12)
    # Any quantizer's rates lie above R(D) at its MSE.
    assert op.gap_entropy_to_rd_bits > 0 and op.gap_fixed_to_rd_bits > op.gap_entropy_to_rd_bits


@pytest.mark.spec("DEF-RD-LLOYD", "DEF-RD-PRICE-UNIFORM", "THM-RD-LLOYD-OPT", "DEF-RD-NF4-MISMATCH")
def test_lloyd_max_beats_uniform_and_nf4():
    for beta in (1.0, 2.0):
        src = rd.GGDSource(beta)
        lm = rd.lloyd_max(16, src)
        assert lm.converged
        assert np.allclose(lm.codebook.values, -lm.codebook.values[::-1], atol=1e-9)
        price = rd.price_of_uniformity_bits(16, src)
        assert price["price_bits"] > 0
        nf4 = rd.nf4_mismatch(beta)
        assert nf4["ratio_to_lloyd_max"] > 1.0 and nf4["ratio_to_slb"] > 1.0
    # Max's classic 4-level Gaussian quantizer has MSE 0.1175.
    assert rd.lloyd_max(4, rd.GGDSource(2.0)).mse == pytest.approx(0.11748, abs=1e-5)


@pytest.mark.spec("DEF-RD-ECSQ", "THM-RD-ECSQ-GAP")
def test_ecsq_high_rate_gap():
    gaps = [rd.ecsq_uniform(step, rd.GGDSource(1.7)).gap_to_slb_bits for step in (0.4, 0.1, 0.02)]
    assert abs(gaps[-1] - rd.ECSQ_HIGH_RATE_GAP_BITS) < 1e-3
    assert abs(gaps[-1] - rd.ECSQ_HIGH_RATE_GAP_BITS) < abs(gaps[0] - rd.ECSQ_HIGH_RATE_GAP_BITS)
    pt = rd.ecsq_uniform_at_distortion(0.01, rd.GGDSource(1.7))
    assert pt.mse == pytest.approx(0.01, rel=1e-9)


@pytest.mark.spec("DEF-RD-BLOCK-SCALING", "THM-RD-BLOCK-QUANTILE")
def test_block_scaling_quantile_never_worse_and_grows():
    rows = rd.block_scaling_mse(1.0, [16, 256, 4096], n_values=1 << 15, rng=1)
    assert all(r.difference >= 0 for r in rows)
    assert rows[-1].difference > rows[0].difference


@pytest.mark.spec("DEF-RD-OPPOINT", "DEF-RD-LLOYD", "DEF-RD-BLOCK-SCALING", "DEF-RD-ECSQ")
def test_oppoint_bad_inputs():
    with pytest.raises(InvalidParameterError):
        rd.operating_point(NF4, rd.GGDSource(1.7), 0.0)
    with pytest.raises(InvalidParameterError):
        rd.operating_point(NF4, rd.GGDSource(-1.0), 1.0)
    with pytest.raises(EmptyInputError):
        rd.operating_point(NF4, rd.SampleSource(np.array([])), 1.0)
    with pytest.raises(InvalidParameterError):
        rd.lloyd_max(1, rd.GGDSource(2.0))
    with pytest.raises(InvalidParameterError):
        rd.block_scaling_mse(1.7, [0])
    with pytest.raises(InvalidParameterError):
        rd.ecsq_uniform_at_distortion(1.0, rd.GGDSource(2.0))
    with pytest.raises(InvalidParameterError):
        rd.gaussian_rate_bits(1.0, 1.5)


@pytest.mark.spec("DEF-RD-OPPOINT")
def test_a_format_rate_is_the_bits_it_stores():
    # e2m1 and bitsandbytes FP4 have 15 values (±0 are one value) in 4 stored bits: the rate is 4, not log2 15.
    xs = ggd.sample(20_000, 1.7, rng=1)
    for name, bits in (("float4_e2m1fn", 4.0), ("fp4_bnb", 4.0), ("nf4", 4.0), ("float8_e4m3fn", 8.0)):
        op = rd.format_operating_point(xs, name)
        assert op.fixed_rate_bits == bits
    cb = rd.format_operating_point(xs, "float4_e2m1fn")
    bare = rd.operating_point(get_format("float4_e2m1fn").codebook, rd.SampleSource(xs), "mse")
    assert bare.fixed_rate_bits == math.log2(15) and bare.mse == cb.mse
