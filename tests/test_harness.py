"""The conformance harness catches tiers that differ from the reference, loads third-party tiers,
and skips what a partial tier does not provide."""

import os
import types

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import natprec.reference as reference
from natprec.conformance.bodies import BODIES
from natprec.conformance.exhaustive import check_element_format_all16
from natprec.conformance.harness import Mismatch, assert_bits_equal, assert_same_outcome
from natprec.conformance.tiers import candidate_tiers, load_tier


def _tier(**overrides):
    ns = {name: getattr(reference, name) for name in reference.__all__}
    ns.update(overrides)
    return types.SimpleNamespace(**ns)


def _only(*functions):
    """A partial tier: the reference's functions named, nothing else."""
    return types.SimpleNamespace(**{name: getattr(reference, name) for name in functions})


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
    monkeypatch.setenv("NATPREC_ACCELERATED", "0")  # the same outcome with or without a GPU
    tiers = {t.name: t for t in candidate_tiers()}
    assert tiers["mine"].skip_reason is None and tiers["mine"].provides("quantize")
    assert not tiers["mine"].provides("voronoi_margin")
    assert "no_such_module_xyz" in tiers["broken"].skip_reason
    assert tiers["accelerated"].skip_reason == "NATPREC_ACCELERATED=0"
    assert load_tier("attr", "natprec.reference:quantize").impl is reference.quantize


@pytest.mark.parametrize("body_name", sorted(BODIES))
@settings(max_examples=10)
@given(data=st.data())
def test_a_body_calls_only_the_functions_it_declares(body_name, data):
    # A tier providing exactly Body.functions must run the body: the skip rule relies on the list.
    body = BODIES[body_name]
    assert_same_outcome(body.run, _only(*body.functions), reference, *data.draw(body.args))


def test_exhaustive_check_needs_only_quantize_and_dequantize():
    # No last_path, no code_histogram: the check compares what the tier has, and catches a wrong one.
    assert check_element_format_all16(_only("quantize", "dequantize"), "int4", "float16") > 0
    with pytest.raises(Mismatch):
        check_element_format_all16(types.SimpleNamespace(quantize=_away_quantize, dequantize=reference.dequantize), "int4", "float16")


def _run_tier_suite(pytester, monkeypatch, name, source):
    """Run the tier suite as a tier author would, with one extra tier ``name`` defined by ``source``."""
    pytester.makepyfile(**{f"{name}_tier": source})
    monkeypatch.setenv("PYTHONPATH", str(pytester.path), prepend=os.pathsep)
    monkeypatch.setenv("NATPREC_TIERS", f"{name}={name}_tier")
    monkeypatch.setenv("NATPREC_ACCELERATED", "0")  # the same outcome with or without a GPU
    monkeypatch.setenv("NATPREC_HYPOTHESIS_PROFILE", "dev")
    return pytester.runpytest_subprocess("-p", "natprec.conformance.pytest_plugin", "--pyargs", "natprec.conformance.test_tiers", "-rs")


def test_a_partial_tier_skips_what_it_does_not_provide(pytester, monkeypatch):
    result = _run_tier_suite(pytester, monkeypatch, "partial", "from natprec.reference import realized_support\n")
    result.assert_outcomes(passed=1, skipped=len(BODIES) - 1 + len(BODIES))  # + the accelerated tier's
    result.stdout.fnmatch_lines(["*tier 'partial' does not provide quantize, dequantize*"])


def test_a_wrong_tier_fails(pytester, monkeypatch):
    wrong = (
        "import natprec.reference as ref\n\n\n"
        "def voronoi_margin(x, fmt, **kw):\n"
        "    return ref.voronoi_margin(x, fmt, **kw).astype('float32')  # the reference's margins are float64\n"
    )
    result = _run_tier_suite(pytester, monkeypatch, "wrong", wrong)
    result.assert_outcomes(failed=1, skipped=len(BODIES) - 1 + len(BODIES))
    result.stdout.fnmatch_lines(["*test_tier_matches_reference?wrong-voronoi_margin-DEF-MARGIN?*", "*dtype float32 != float64*"])
