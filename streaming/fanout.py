"""Pure fan-out rules: a bounded per-viewer queue that drops to the next keyframe, and the
keyframe policy of a shared encoder (periodic, on request, rate-limited).

No asyncio here: the adapters in `feeds.py` and `pipeline.py` wrap these with a wake-up event
and a clock.
"""

from __future__ import annotations

import enum
from collections import deque
from typing import Generic, TypeVar

from streaming.errors import ConfigurationError

T = TypeVar("T")


class PushOutcome(enum.Enum):
    QUEUED = "queued"
    """The packet will be delivered."""
    SKIPPED = "skipped"
    """Dropped: the viewer waits for a keyframe (it joined, or fell behind earlier)."""
    OVERFLOWED = "overflowed"
    """The viewer fell a whole queue behind: its queue was emptied and it now waits for a
    keyframe. The adapter must ask the encoder for one."""


class DropToKeyframeQueue(Generic[T]):
    """A bounded queue of encoded packets for one viewer.

    Rules (in this order, for every pushed packet):
    1. A keyframe is always accepted. If the viewer was waiting, or the queue is full, the
       queued packets are thrown away first: the keyframe makes them useless.
    2. While waiting for a keyframe, other packets are skipped (they cannot be decoded).
    3. A packet that finds the queue full empties it and starts the wait (`OVERFLOWED`).
    A new queue starts waiting, so a viewer's first packet is always a keyframe.
    """

    __slots__ = ("_capacity", "_items", "waiting_for_keyframe", "delivered", "dropped", "overflows")

    def __init__(self, capacity: int) -> None:
        if capacity < 2:
            raise ConfigurationError("a viewer queue needs room for at least 2 packets")
        self._capacity = capacity
        self._items: deque[T] = deque()
        self.waiting_for_keyframe = True
        self.delivered = 0
        self.dropped = 0
        self.overflows = 0

    def __len__(self) -> int:
        return len(self._items)

    @property
    def capacity(self) -> int:
        return self._capacity

    def push(self, item: T, *, is_keyframe: bool) -> PushOutcome:
        if is_keyframe:
            if self.waiting_for_keyframe or len(self._items) >= self._capacity:
                self.dropped += len(self._items)
                self._items.clear()
            self.waiting_for_keyframe = False
            self._items.append(item)
            return PushOutcome.QUEUED
        if self.waiting_for_keyframe:
            self.dropped += 1
            return PushOutcome.SKIPPED
        if len(self._items) >= self._capacity:
            self.dropped += len(self._items) + 1
            self.overflows += 1
            self._items.clear()
            self.waiting_for_keyframe = True
            return PushOutcome.OVERFLOWED
        self._items.append(item)
        return PushOutcome.QUEUED

    def pop(self) -> T | None:
        """The oldest queued packet, or None when empty."""
        if not self._items:
            return None
        self.delivered += 1
        return self._items.popleft()

    def restart(self) -> None:
        """Forget the queue and wait for a keyframe (used when the viewer switches rendition)."""
        self.dropped += len(self._items)
        self._items.clear()
        self.waiting_for_keyframe = True


class KeyframePolicy:
    """When a shared encoder must produce a keyframe. Times are integers in microseconds.

    * Periodic: at least every `max_interval_us` (so a recording segment and a late viewer
      never wait long).
    * On request of a viewer that cannot decode yet (it joined, switched rendition, or its
      receiver sent PLI/FIR): as soon as `min_interval_us` has passed since the last keyframe.
    * On request of a viewer that fell a queue behind: after `overflow_interval_us` (longer).
      Overflows mean the server or that viewer's path is overloaded; keyframes are several
      times larger than other frames, so answering overload quickly would feed it.
    Requests in between are merged, never lost, so a keyframe storm from many viewers costs
    one keyframe per interval (mediasoup keeps PLI/FIR towards the producer at 1 per second
    for the same reason).
    """

    __slots__ = (
        "_min",
        "_overflow",
        "_max",
        "_last_us",
        "_pending",
        "_pending_overflow",
        "requests",
        "forced",
    )

    def __init__(
        self, *, min_interval_us: int, max_interval_us: int, overflow_interval_us: int | None = None
    ) -> None:
        overflow = min_interval_us if overflow_interval_us is None else overflow_interval_us
        if not (0 <= min_interval_us <= overflow) or max_interval_us <= 0:
            raise ConfigurationError("keyframe intervals: 0 <= min <= overflow, max > 0")
        if min_interval_us > max_interval_us:
            raise ConfigurationError("keyframe intervals: min <= max")
        self._min = min_interval_us
        self._overflow = overflow
        self._max = max_interval_us
        self._last_us: int | None = None
        self._pending = False
        self._pending_overflow = False
        self.requests = 0
        self.forced = 0

    @property
    def pending(self) -> bool:
        return self._pending or self._pending_overflow

    def request(self, *, overflow: bool = False) -> None:
        """Someone needs a keyframe; `should_force` grants it within `min_interval_us`
        (`overflow_interval_us` for a viewer that fell behind)."""
        self.requests += 1
        if overflow:
            self._pending_overflow = True
        else:
            self._pending = True

    def should_force(self, now_us: int) -> bool:
        """Must the frame captured at `now_us` be encoded as a keyframe?"""
        if self._last_us is None:
            return True
        elapsed = now_us - self._last_us
        if elapsed >= self._max:
            return True
        if self._pending and elapsed >= self._min:
            return True
        return self._pending_overflow and elapsed >= self._overflow

    def emitted(self, now_us: int, *, is_keyframe: bool) -> None:
        """Report the encoder's output for the frame captured at `now_us`."""
        if is_keyframe:
            if self.pending:
                self.forced += 1
            self._last_us = now_us
            self._pending = False
            self._pending_overflow = False
