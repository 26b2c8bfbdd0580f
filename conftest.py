# natprec's plugin (hypothesis profile, spec-ID test ids, the tier fixture); pytester runs the
# tier suite in a subprocess as a tier author would (tests/test_harness.py).
import shutil

import pytest

pytest_plugins = ["natprec.conformance.pytest_plugin", "pytester"]


@pytest.fixture(scope="session")
def host(tmp_path_factory):
    """natprec.accelerated's HostBackend: its launches served by the g++ build of the kernels' scalar header
    (accelerated/host_harness.cpp), built once per run; skips where g++ is missing."""
    if shutil.which("g++") is None:
        pytest.skip("g++ is not installed: cannot build accelerated/host_harness.cpp")
    import natprec.accelerated as acc

    return acc.HostBackend(acc.build_host_library(tmp_path_factory.mktemp("natprec_host")))
