"""Shared helpers of the tests, first written for `test_words.py`."""

from __future__ import annotations

import re

from auction.rules import (
    DepositState,
    Format,
    LotStatus,
    RejectReason,
)
from auction.rules.config import SoftCloseMode, SoftCloseTrigger
from auction.rules.events import LivePhase
from auction.web.api import CONSOLE_COMMANDS
from auction.words import (
    known_codes,
)

__all__ = ["ENGINE_NAME", "engine_names"]


def engine_names() -> set[str]:
    """Every name of the engine a person must never read."""
    names: set[str] = set()
    for enum_type in (
        RejectReason,
        LotStatus,
        DepositState,
        Format,
        LivePhase,
        SoftCloseMode,
        SoftCloseTrigger,
    ):
        names |= {member.value for member in enum_type}  # type: ignore[attr-defined]
    names |= set(CONSOLE_COMMANDS)
    names |= {"PlaceBid", "SetMax", "RegisterBidder", "DepositFrozen", "BidAccepted", "Rejected"}
    names |= known_codes()
    # Command names that are plain words ("Pause", "Hammer") label the console's buttons.
    return {name for name in names if not re.fullmatch(r"[A-Z][a-z]+", name)}


#: An engine name, or a sale-room bidder's internal code (`floor:<paddle>`, shown as "paddle N").
ENGINE_NAME = re.compile(
    r"\b(" + "|".join(sorted(engine_names(), key=len, reverse=True)) + r")\b|\bfloor:\d+"
)
