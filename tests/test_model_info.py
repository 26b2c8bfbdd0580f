"""DEF-SITE — the per-site format measures, computed at the sampled positions only, against the straightforward
computation (scale every element of the 2-D view, then sample): the same records, field for field."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from natprec.model.info import MARGIN_BINS, _sample_index, format_measures, format_measures_all, tensor_measures
from natprec.model.quantize import DEFAULT_FORMATS, as_2d, site_format
from natprec.reference import collision_probability, get_format
from natprec.reference.errors import EmptyInputError, NaNInputError, NonFiniteInputError

#: The report's formats, the asymmetric and grouped integers (partial groups too), a bare element codebook and more
#: block formats (MX with 8- and 6-bit elements).
NAMES = DEFAULT_FORMATS + ("uint4", "uint8", "uint3_g16", "int4_g32", "int8_g7", "uint2_g5", "nf4", "float4_e2m1fn",
                           "mxfp8_e4m3", "mxfp6_e2m3")


def _formats():
    fmts = [site_format(n) for n in NAMES]
    # A block format measured the straightforward way inside format_measures too (blocks of the flattened tensor).
    fmts.append(replace(site_format("nf4_absmax64"), name="nf4_absmax64_flat", block=get_format("nf4_absmax64", layout="flat")))
    return fmts


FORMATS = _formats()


def oracle(x, fmt, *, per_channel, max_elements, feature_axis=-1):
    """The straightforward computation: the element view of every element (full-tensor scales), then the sample."""
    x32 = np.asarray(x, dtype=np.float32)
    x32 = np.where(x32 == 0, np.float32(0), x32)
    y, group = fmt.element_view(x32, per_channel, feature_axis)
    xs = as_2d(x32, per_channel, feature_axis).ravel()
    y, group = y.ravel(), group.ravel()
    idx = _sample_index(y.size, max_elements)
    if idx is not None:
        xs, y, group = xs[idx], y[idx], group[idx]
    el = fmt.codebook_format
    code = fmt.tier.quantize(y, el, saturate=True).astype(np.int64)
    cell = group * (1 << el.nbits) + code
    if cell.size and int(cell.max()) >= 1 << 31:
        cell = np.unique(cell, return_inverse=True)[1].astype(np.int64)
    pairs, counts = np.unique((cell << 32) | xs.view(np.uint32).astype(np.int64), return_counts=True)
    delta = collision_probability(counts.astype(np.int64), pairs >> 32)
    gamma = fmt.tier.voronoi_margin(y, el.codebook)
    hist, _ = np.histogram(np.clip(gamma, 0, MARGIN_BINS[-1]), bins=MARGIN_BINS)
    return {"format": fmt.name, "collision_probability": float(delta), "min_margin": float(gamma.min()),
            "median_margin": float(np.median(gamma)), "measured_elements": int(y.size), "margin_histogram": hist.tolist()}


def _same(got: dict, want: dict) -> bool:
    """Equal records, floats bit for bit (a NaN nowhere)."""
    if got.keys() != want.keys():
        return False
    return all(np.float64(got[k]).tobytes() == np.float64(want[k]).tobytes() if isinstance(want[k], float) else got[k] == want[k]
               for k in want)


def _check(x, *, per_channel, max_elements, feature_axis=-1):
    got = format_measures_all(x, FORMATS, per_channel=per_channel, max_elements=max_elements, feature_axis=feature_axis)
    for f, g in zip(FORMATS, got):
        want = oracle(x, f, per_channel=per_channel, max_elements=max_elements, feature_axis=feature_axis)
        assert _same(g, want), (f.name, g, want)
        one = format_measures(x, f, per_channel=per_channel, max_elements=max_elements, feature_axis=feature_axis)
        assert _same(one, want), f.name


def _awkward(rows: int, cols: int, seed: int) -> np.ndarray:
    """Gaussian rows with the cases a view must get right: −0.0 and +0.0, an all-zero row and block, repeated
    values, subnormals, a row of one sign, an outlier."""
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal((rows, cols)) * rng.uniform(0.01, 3, (rows, 1))).astype(np.float32)
    x.ravel()[rng.choice(x.size, x.size // 10, replace=False)] = -0.0
    x.ravel()[rng.choice(x.size, x.size // 10, replace=False)] = 0.0
    x[1] = 0.0
    x[2, : min(cols, 40)] = -0.0
    x[3] = np.round(x[3] * 4) / 4  # ties
    x[4, ::3] = np.float32(1e-42)
    x[5] = np.abs(x[5]) + 0.5
    x[6, cols // 2] = 1e4
    return x


@pytest.mark.spec("DEF-SITE")
@pytest.mark.parametrize("per_channel", [True, False], ids=["weight", "activation"])
@pytest.mark.parametrize("shape,max_elements", [((9, 77), 1 << 15), ((9, 77), 200), ((48, 1000), 1 << 15), ((40, 1000), 1000)],
                         ids=["all", "sampled", "above-2^15", "sampled-partial-blocks"])
def test_sampled_view_is_the_full_view_sampled(per_channel, shape, max_elements):
    _check(_awkward(*shape, seed=shape[1] + max_elements), per_channel=per_channel, max_elements=max_elements)


@pytest.mark.spec("DEF-SITE")
@pytest.mark.parametrize("max_elements", [1 << 15, 300])
def test_feature_axis_of_a_conv_activation(max_elements):
    x = _awkward(4 * 6, 5 * 40, seed=7).reshape(4, 6, 5, 40).transpose(0, 3, 1, 2)  # (N, C=40, H, W), not contiguous
    _check(x, per_channel=False, max_elements=max_elements, feature_axis=1)
    _check(x[:, :1], per_channel=False, max_elements=max_elements, feature_axis=1)  # one channel: blocks of one


@pytest.mark.spec("DEF-SITE")
def test_all_zero_and_tiny_tensors():
    for x in (np.zeros((3, 70), np.float32), -np.zeros((2, 5), np.float32), np.float32(-0.0), np.float32(2.5),
              np.array([1e-45, -1e-45, 0.0], np.float32), np.full((4, 33), 3.0, np.float32)):
        for per_channel in (True, False):
            _check(x, per_channel=per_channel, max_elements=1 << 15)
            _check(x, per_channel=per_channel, max_elements=2)


_values = st.one_of(st.floats(-4, 4, width=32), st.sampled_from([0.0, -0.0, 1.0, -1.0, 0.5, 1e-40, -3e38, 3e38]))


@pytest.mark.spec("DEF-SITE")
@pytest.mark.filterwarnings("ignore:overflow encountered in subtract:RuntimeWarning")  # uintB of ±3e38: hi − lo is inf
@given(rows=st.integers(1, 12), cols=st.integers(1, 70), data=st.data(), per_channel=st.booleans(),
       max_elements=st.sampled_from([1, 7, 60, 1 << 15]))
def test_sampled_view_hypothesis(rows, cols, data, per_channel, max_elements):
    x = np.array(data.draw(st.lists(_values, min_size=rows * cols, max_size=rows * cols)), np.float32).reshape(rows, cols)
    _check(x, per_channel=per_channel, max_elements=max_elements)


@pytest.mark.spec("DEF-SITE")
def test_bad_input_is_named():
    f = site_format("int4")
    for bad, err, value in ((np.array([[1, np.inf], [np.nan, 2]], np.float32), NaNInputError, 2),
                            (np.array([[1, 2], [-np.inf, 2]], np.float32), NonFiniteInputError, -np.inf)):
        for fmt in (f, site_format("uint4"), site_format("nvfp4")):
            with pytest.raises(err) as e:
                format_measures(bad, fmt, per_channel=True, max_elements=1)  # the sample misses the bad element
            assert e.value.value == value
        for is_weight in (True, False):
            with pytest.raises(err) as e:
                tensor_measures(bad, is_weight=is_weight)
            assert e.value.value == value
    with pytest.raises(EmptyInputError) as e:
        format_measures(np.zeros((0, 4), np.float32), f, per_channel=False, max_elements=10)
    assert e.value.value == (0, 4)
    with pytest.raises(EmptyInputError):
        tensor_measures(np.zeros((0, 4), np.float32), is_weight=True)
