"""The conformance harness catches tiers that differ from the reference, and loads third-party tiers."""

import types

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import natprec.reference as reference
from natprec.conformance.bodies import BODIES
from natprec.conformance.harness import Mismatch, assert_bits_equal, assert_same_outcome
from natprec.conformance.tiers import candidate_tiers, load_tier


def _tier(**overrides):
    ns = {name: getattr(reference, name) for name in reference.__all__}
    ns.update(overrides)
    return types.SimpleNamespace(**ns)


def _away_quantize(x, fmt, **kw):
    kw["tie"] = "away"
    return reference.quantize(x, fmt, **kw)


def _codes_as_int64(x, fmt, **kw):
    out = reference.quantize(x, fmt, **kw)
    return out.astype(np.int64) if isinstance(out, np.ndarray) else out


def _valueerror_on_nan(x, fmt, **kw):
    try:
        return reference.quantize(x, fmt, **kw)
    except reference.NaNInputError as exc:
        raise ValueError(str(exc)) from None


def _float32_margin(x, fmt, **kw):
    return reference.voronoi_margin(x, fmt, **kw).astype(np.float32)


X = np.array([0.5, 1.5, -2.5, 0.0, -0.0, np.nan], dtype=np.float32)
MUTANTS = [
    ("ties away", _tier(quantize=_away_quantize), "quantize_element", (X[:5], "int8", "even", True, "raise")),
    ("wrong code dtype", _tier(quantize=_codes_as_int64), "quantize_element", (X[:5], "int8", "even", True, "raise")),
    ("wrong exception type", _tier(quantize=_valueerror_on_nan), "quantize_element", (X, "int8", "even", True, "raise")),
    ("margin in float32", _tier(voronoi_margin=_float32_margin), "voronoi_margin", (X, "int4", "even")),
]


@pytest.mark.parametrize("label, impl, body, args", MUTANTS, ids=[m[0] for m in MUTANTS])
def test_harness_rejects_mutant_tiers(label, impl, body, args):
    with pytest.raises(Mismatch):
        assert_same_outcome(BODIES[body].run, impl, reference, *args)


@pytest.mark.parametrize("body_name", sorted(BODIES))
@settings(max_examples=25)
@given(data=st.data())
def test_a_faithful_copy_passes_every_body(body_name, data):
    body = BODIES[body_name]
    assert_same_outcome(body.run, _tier(), reference, *data.draw(body.args))


def test_bitwise_comparison_sees_sign_of_zero_and_nan_payload():
    with pytest.raises(Mismatch):
        assert_bits_equal(np.array([0.0]), np.array([-0.0]))
    with pytest.raises(Mismatch):
        assert_bits_equal(np.array([np.nan]), np.array([0x7FF0000000000001], np.uint64).view(np.float64))  # payload
    with pytest.raises(Mismatch):
        assert_bits_equal(np.zeros(2, np.float32), np.zeros(2, np.float64))
    with pytest.raises(Mismatch):
        assert_bits_equal(np.zeros(2), np.zeros((2, 1)))
    with pytest.raises(Mismatch):
        assert_bits_equal(0.0, -0.0)
    assert_bits_equal(np.array([np.nan]), np.array([np.nan]))


def test_third_party_tier_from_environment(tmp_path, monkeypatch):
    (tmp_path / "my_tier.py").write_text("from natprec.reference import quantize, dequantize\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("NATPREC_TIERS", "mine=my_tier, broken=no_such_module_xyz")
    tiers = {t.name: t for t in candidate_tiers()}
    assert tiers["mine"].skip_reason is None and tiers["mine"].provides("quantize")
    assert not tiers["mine"].provides("voronoi_margin")
    assert "no_such_module_xyz" in tiers["broken"].skip_reason
    assert tiers["accelerated"].skip_reason  # no kernels in this tier yet
    assert load_tier("attr", "natprec.reference:quantize").impl is reference.quantize
