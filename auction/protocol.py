"""The old name of `auction.bidding`'s protocol, signed bid and limits (re-exported)."""

from .bidding import *  # noqa: F403
from .bidding import __all__ as __all__
