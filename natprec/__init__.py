"""natprec — measure how much information a tensor carries and the precision it implies.

The tiers live in subpackages: ``natprec.reference`` (the exact NumPy definition),
``natprec.accelerated`` (GPU kernels), ``natprec.conformance`` (the suites that
compare tiers).  This package holds the command-line interface.
"""

__version__ = "0.1.0"
