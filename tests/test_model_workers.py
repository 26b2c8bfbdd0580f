"""Parallel site workers (spec/11 DEF-OPERATIONAL-PRECISION-SITE, "Parallel sites", "Freed memory"): the same
document for any worker count, named errors for bad counts and dead workers, the Jacobian proxy reported at all
sites or none, and the command's processes reusing freed memory."""

from __future__ import annotations

import subprocess
import sys

import pytest

from natprec.reference.errors import InvalidParameterError

torch = pytest.importorskip("torch", reason="natprec.model needs torch (pip install natprec[torch])")

from natprec.model import find_sites, measure  # noqa: E402
from tests.test_model_measure import tiny  # noqa: E402


def _without_run_facts(doc):
    return {k: v for k, v in doc.items() if k not in ("timing", "wall_s", "workers")}


@pytest.mark.spec("DEF-OPERATIONAL-PRECISION-SITE")
def test_site_workers_change_nothing_but_the_time():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        one = measure(tiny(loss=True), formats="int,nf4_absmax64", claim_tolerances=[1e-2], workers=1)
    finally:
        torch.set_num_threads(before)
    torch.set_num_threads(2)
    try:
        two = measure(tiny(loss=True), formats="int,nf4_absmax64", claim_tolerances=[1e-2], workers=2)
        assert torch.get_num_threads() == 2  # restored after the run
    finally:
        torch.set_num_threads(before)
    assert (one["workers"], one["torch_threads"], two["workers"], two["torch_threads"]) == (1, 1, 2, 1)
    assert all("jacobian" in s for s in two["sites"]) and all(s["error"] is None for s in two["sites"])
    assert [s["site"] for s in two["sites"]] == [s.name for s in find_sites(tiny().model, kinds=("weight", "input"))]
    assert _without_run_facts(one) == _without_run_facts(two)
    assert set(two["timing"]) >= {"baseline_s", "forward_s", "resolution_s"} and two["wall_s"] > 0


@pytest.mark.spec("DEF-OPERATIONAL-PRECISION-SITE")
@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "2"])
def test_site_workers_must_be_a_positive_integer(bad):
    with pytest.raises(InvalidParameterError, match="--workers") as e:
        measure(tiny(), formats="int4,int8", jacobian=False, workers=bad)
    assert e.value.value == bad


@pytest.mark.spec("DEF-OPERATIONAL-PRECISION-SITE")
def test_a_worker_that_dies_is_a_named_error_not_a_hang(monkeypatch):
    import os

    mmod = sys.modules["natprec.model.measure"]  # the package's ``measure`` attribute is the function
    parent = os.getpid()
    real = mmod.forward_point

    def dying(runner, site, fmt, outputs=None, scout=None):
        if os.getpid() != parent:
            os._exit(3)
        return real(runner, site, fmt, outputs, scout=scout)
    monkeypatch.setattr(mmod, "forward_point", dying)
    with pytest.raises(mmod.NatprecError, match="worker process died"):
        measure(tiny(), formats="int4,int8", jacobian=False, workers=2)


@pytest.mark.spec("DEF-OPERATIONAL-PRECISION-SITE")
def test_jacobian_unavailable_at_one_site_is_reported_at_none(monkeypatch):
    mmod = sys.modules["natprec.model.measure"]
    real = mmod.jacobian_proxy

    def partial(runner, site, fmt, actual=None):
        if site.name == "2.weight":
            raise NotImplementedError("no forward AD for this op\nsecond line")
        return real(runner, site, fmt, actual=actual)
    monkeypatch.setattr(mmod, "jacobian_proxy", partial)
    for workers in (1, 2):
        doc = measure(tiny(), formats="int4,int8", workers=workers)
        assert not any("jacobian" in s or "jacobian_unavailable" in s for s in doc["sites"])
        assert any(n.endswith("no forward AD for this op") for n in doc["notes"])


@pytest.mark.spec("DEF-OPERATIONAL-PRECISION-SITE")
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc settings")
def test_the_command_keeps_freed_memory_for_reuse():
    """After ``main`` a freed 64 MiB array's pages are reused without a page fault (glibc would hand them back to the
    system and fault them in again: a measurement does that for every forward point)."""
    import platform

    if platform.libc_ver()[0] != "glibc":
        pytest.skip("not glibc")
    code = """
import contextlib, io, resource, numpy as np
from natprec.cli import main
with contextlib.redirect_stdout(io.StringIO()):
    main(["formats"])
a = np.ones(1 << 23); del a
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
a = np.ones(1 << 23)
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""
    faults = int(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
    assert faults < 32  # 64 MiB in 2 MiB huge pages would be 32 faults; in 4 KiB pages 16384
