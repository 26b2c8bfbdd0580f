"""Every body of ``bodies.BODIES`` on every candidate tier, compared bit for bit with the reference.

A case's id carries the body's spec IDs, e.g.
``test_tier_matches_reference[accelerated-quantize_element-DEF-QUANTIZE,DEF-FORMAT-ELEMENT]``.
With no GPU and no third-party tier registered, these tests are skipped with the tier's
reason (see ``natprec.conformance.tiers``); a tier that lacks one of a body's functions skips
that body. tests/test_harness.py shows the skip, and that the comparison catches a wrong tier.
"""

import pytest
from hypothesis import given
from hypothesis import strategies as st

import natprec.reference as reference
from natprec.conformance.bodies import BODIES
from natprec.conformance.harness import assert_same_outcome

CASES = [
    pytest.param(name, body.spec_ids, id=f"{name}-{','.join(body.spec_ids)}", marks=pytest.mark.tier_functions(*body.functions))
    for name, body in sorted(BODIES.items())
]


@pytest.mark.parametrize("body_name, spec_ids", CASES)
@given(data=st.data())
def test_tier_matches_reference(tier, body_name, data):
    body = BODIES[body_name]
    args = data.draw(body.args, label="args")
    assert_same_outcome(body.run, tier.impl, reference, *args)
