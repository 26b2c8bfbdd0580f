"""natprec — measure how much information a tensor carries and the precision it implies.

The tiers are subpackages kept in the repository's top-level folders of the same name:
``natprec.reference`` (``reference/``, the exact NumPy definition), ``natprec.accelerated``
(``accelerated/``, GPU kernels), ``natprec.conformance`` (``conformance/``, what a tier author
needs).  Everything else — the CLI, ``natprec.model`` — is here, in ``src/natprec/``.
"""

__version__ = "0.1.0"
