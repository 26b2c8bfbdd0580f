"""pytest plugin for natprec's suites: hypothesis profile, spec-ID test ids, the tier fixture.

Load it with ``-p natprec.conformance.pytest_plugin`` (the repository's conftest does).

* A test marked ``@pytest.mark.spec("DEF-…", …)`` gets the IDs in its test id,
  e.g. ``test_quantize_matches_brute_force[DEF-QUANTIZE,DEF-TIE-RULES]``. A test whose cases
  check different IDs parametrizes ``spec_ids`` itself instead (the tier suite, from the bodies).
* A test taking ``tier`` runs once per candidate tier (:mod:`natprec.conformance.tiers`). A tier
  that cannot load is skipped with its reason; a tier that lacks a function named by the test's
  ``@pytest.mark.tier_functions(...)`` (on the test or on one of its parameters) is skipped with
  the names it lacks.
"""

from __future__ import annotations

import pytest

from .profiles import load_profile
from .tiers import candidate_tiers

_PROFILE = load_profile()


def pytest_configure(config):
    config.addinivalue_line("markers", "spec(*ids): the spec IDs (DEF-…/THM-…) a test checks")
    config.addinivalue_line("markers", "tier_functions(*names): the tier functions a tier test calls; a tier without one skips it")


def pytest_report_header(config):
    tiers = ", ".join(f"{t.name}({'skip: ' + t.skip_reason if t.skip_reason else 'on'})" for t in candidate_tiers())
    return [f"natprec: hypothesis profile {_PROFILE}; tiers under test: {tiers or 'none'}"]


@pytest.fixture(autouse=True)
def spec_ids(request):
    """The spec IDs a test checks (its ``spec`` marker, or its own ``spec_ids`` parameter); None if neither."""
    return getattr(request, "param", None)


def pytest_generate_tests(metafunc):
    marker = metafunc.definition.get_closest_marker("spec")
    if marker is not None:
        ids = tuple(marker.args)
        metafunc.parametrize("spec_ids", [ids], ids=[",".join(ids)])
    if "tier" in metafunc.fixturenames:
        tiers = candidate_tiers()
        params = [
            pytest.param(t, id=t.name, marks=pytest.mark.skip(reason=t.skip_reason)) if t.skip_reason else pytest.param(t, id=t.name)
            for t in tiers
        ]
        metafunc.parametrize("tier", params)


def pytest_collection_modifyitems(items):
    for item in items:
        callspec = getattr(item, "callspec", None)
        tier = callspec.params.get("tier") if callspec else None
        if tier is None or tier.skip_reason:
            continue
        missing = [f for m in item.iter_markers("tier_functions") for f in m.args if not tier.provides(f)]
        if missing:
            item.add_marker(pytest.mark.skip(reason=f"tier {tier.name!r} does not provide {', '.join(missing)}"))
