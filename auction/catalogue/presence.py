"""Who is watching a lot now: each open lot page says it is there every `HEARTBEAT_S` seconds
with a random visitor id (made by the page, not tied to an account, never stored); a lot's
watchers are the ids heard from within `WINDOW_US`. Pure (time is a parameter) and bounded.
One server's count: several instances each count the pages connected to them."""

from __future__ import annotations

import re

#: How often a lot page says it is still open (seconds), and how long an id counts after.
HEARTBEAT_S = 20
WINDOW_US = 60_000_000
#: At most this many visitors are remembered per lot, and lots in all.
MAX_VISITORS = 10_000
MAX_LOTS = 10_000

VISITOR = re.compile(r"[A-Za-z0-9_-]{16,64}")


class Presence:
    """`seen(lot, visitor, now)` on each heartbeat; `watching(lot, now)` counts."""

    def __init__(self, window_us: int = WINDOW_US, max_visitors: int = MAX_VISITORS) -> None:
        self._window = window_us
        self._max = max_visitors
        self._lots: dict[str, dict[str, int]] = {}

    def seen(self, lot: str, visitor: str, now: int) -> bool:
        """Note `visitor` on `lot` at `now`; True if it is a new visit (not heard from within
        the window). A malformed id, or one over the bounds, is not counted."""
        if not VISITOR.fullmatch(visitor):
            return False
        visitors = self._lots.get(lot)
        if visitors is None:
            if len(self._lots) >= MAX_LOTS:
                self._sweep(now)
                if len(self._lots) >= MAX_LOTS:
                    return False
            visitors = self._lots[lot] = {}
        last = visitors.get(visitor)
        if last is None and len(visitors) >= self._max:
            self._expire(visitors, now)
            if len(visitors) >= self._max:
                return False
        visitors[visitor] = now
        return last is None or now - last > self._window

    def watching(self, lot: str, now: int) -> int:
        """How many visitors were heard from on `lot` within the window before `now`."""
        visitors = self._lots.get(lot)
        if not visitors:
            return 0
        self._expire(visitors, now)
        return len(visitors)

    def _expire(self, visitors: dict[str, int], now: int) -> None:
        for visitor in [v for v, last in visitors.items() if now - last > self._window]:
            del visitors[visitor]

    def _sweep(self, now: int) -> None:
        for lot in list(self._lots):
            self._expire(self._lots[lot], now)
            if not self._lots[lot]:
                del self._lots[lot]


__all__ = ["HEARTBEAT_S", "MAX_VISITORS", "WINDOW_US", "Presence"]
