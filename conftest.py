pytest_plugins = ["natprec.conformance.pytest_plugin"]
