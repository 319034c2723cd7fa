"""Entry point for ``python -m install_atomic``."""

import sys

from install_atomic.frontends.cli import main

if __name__ == "__main__":
    sys.exit(main())
