"""``python -m natprec`` — the same command line as the ``natprec`` console script."""

import sys

from .cli import main

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
