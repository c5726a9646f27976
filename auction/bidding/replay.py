"""The recent public updates of one lot, kept for `since_seq` replay (docs/protocol.md §2.3).

Pure: the websocket adapter records each update the service publishes and asks, when a client
subscribes with `since_seq`, which updates it missed. No clock, no socket.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any

#: Recent public updates kept per lot for `since_seq` replay.
RING_SIZE = 256


@dataclass(frozen=True, slots=True)
class RecentUpdate:
    """One update as sent to watchers: the lot's seq before it and after it."""

    previous_seq: int
    seq: int
    message: dict[str, Any]


class ReplayRing:
    """The last `size` updates of one lot, in order, without holes."""

    __slots__ = ("_updates",)

    def __init__(self, size: int = RING_SIZE) -> None:
        self._updates: deque[RecentUpdate] = deque(maxlen=size)

    def __len__(self) -> int:
        return len(self._updates)

    def record(self, previous_seq: int, seq: int, message: dict[str, Any]) -> None:
        """Keep one update (the oldest one goes when the ring is full)."""
        self._updates.append(RecentUpdate(previous_seq, seq, message))

    def clear(self) -> None:
        """Forget every update: events were dropped on the way, so the ring can no longer
        replay what came before (a client asking gets a snapshot instead)."""
        self._updates.clear()

    def missed(
        self, since_seq: int, current_seq: int, last_seq: int | None = None
    ) -> list[dict[str, Any]] | None:
        """The updates after `since_seq` (each marked `replayed`), or None when the ring no
        longer has all of them or `since_seq` is not a seq the lot had (0, or beyond
        `current_seq`, the seq of the snapshot about to be sent). `last_seq`: the lot's last
        recorded seq when the ring is empty (None: `current_seq`)."""
        if since_seq <= 0 or since_seq > current_seq:
            return None
        updates = self._updates
        last = updates[-1].seq if updates else (current_seq if last_seq is None else last_seq)
        if since_seq >= last:
            return []
        if not updates or updates[0].previous_seq > since_seq:
            return None
        return [recent.message | {"replayed": True} for recent in updates if recent.seq > since_seq]


__all__ = ["RING_SIZE", "RecentUpdate", "ReplayRing"]
