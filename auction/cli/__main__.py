"""`python -m auction.cli`: the `gavel` command."""

import sys

from .gavel import main

sys.exit(main())
