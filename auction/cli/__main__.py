"""`python -m auction.cli`: the `gavel` command."""

import sys

from .gavel import main

if __name__ == "__main__":
    sys.exit(main())
