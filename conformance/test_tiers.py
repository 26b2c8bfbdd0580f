"""Every body of ``bodies.BODIES`` on every candidate tier, compared bit for bit with the reference.

With no GPU and no third-party tier registered, these tests are skipped with the
tier's reason (see ``natprec.conformance.tiers``); tests/test_harness.py shows the
comparison catches a wrong tier.
"""

import pytest
from hypothesis import given
from hypothesis import strategies as st

import natprec.reference as reference
from natprec.conformance.bodies import BODIES
from natprec.conformance.harness import assert_same_outcome


@pytest.mark.parametrize("body_name", sorted(BODIES))
@given(data=st.data())
def test_tier_matches_reference(tier, body_name, data):
    body = BODIES[body_name]
    args = data.draw(body.args, label="args")
    assert_same_outcome(body.run, tier.impl, reference, *args)
