# natprec's plugin (hypothesis profile, spec-ID test ids, the tier fixture); pytester runs the
# tier suite in a subprocess as a tier author would (tests/test_harness.py).
pytest_plugins = ["natprec.conformance.pytest_plugin", "pytester"]
