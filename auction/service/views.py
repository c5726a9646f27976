"""What the outside sees of a lot: public snapshots, public events, live updates."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

from ..rules import (
    BidderBarred,
    BidderRegistered,
    DefaultDeclared,
    DepositChanged,
    LotState,
    LotStatus,
    MaxSet,
    PaymentConfirmed,
    Rejected,
    encode,
)
from ..storage import (
    StoredLot,
)

#: Statuses in which a lot may still change without an authority (open, close, bids).
ACTIVE_STATUSES = frozenset(
    {LotStatus.SCHEDULED, LotStatus.OPEN, LotStatus.PAUSED, LotStatus.SUSPENDED}
)

#: Events never shown to the public (rules C17: maxima; C2.4: the identity-to-code mapping).
PRIVATE_EVENTS: tuple[type, ...] = (
    Rejected,
    MaxSet,
    BidderRegistered,
    BidderBarred,
    DepositChanged,
    PaymentConfirmed,
    DefaultDeclared,
)

#: Fields holding internal bidder ids; public events carry codes only.
PRIVATE_FIELDS = frozenset({"bidder", "leader", "winner", "on_behalf_of"})


@dataclass(frozen=True, slots=True)
class LotView:
    """A public snapshot of a lot for pages and viewers: never bidder ids, maxima or the hidden
    reserve (only whether it is met). Times are UTC microseconds, money minor units."""

    lot_id: str
    sale_id: str | None
    sale_title: str | None
    title: str
    format: str
    currency: str
    legal_timezone: str
    status: str
    phase: str | None  # live lots: IN_RING / FAIR_WARNING while in the ring
    start_price: int
    price: int | None
    leader_code: str | None
    min_next: int  # live lots: the current ask
    start_at: int
    end: int
    hammer_not_before: int | None
    reserve_met: bool | None
    bids: int
    seq: int
    result: str | None
    closed_at: int | None

    @classmethod
    def of(cls, lot: StoredLot, state: LotState, bids: int) -> LotView:
        """The view of `state` for the catalogue entry `lot`."""
        rules = state.rules
        live = state.live
        reserve_met = None
        if rules.reserve is not None:
            reserve_met = state.price is not None and state.price >= rules.reserve
        hammer_not_before = None
        if live is not None and live.fair_warning_at is not None:
            hammer_not_before = live.fair_warning_at + rules.fair_warning_dwell
        return cls(
            lot_id=state.lot_id,
            sale_id=lot.sale_id,
            sale_title=lot.sale_title,
            title=lot.title,
            format=rules.format.value,
            currency=rules.currency,
            legal_timezone=rules.legal_timezone,
            status=state.status.value,
            phase=live.phase.value if live is not None else None,
            start_price=rules.start_price,
            price=state.price,
            leader_code=state.leader_code,
            min_next=state.min_next,
            start_at=rules.start_at,
            end=state.end,
            hammer_not_before=hammer_not_before,
            reserve_met=reserve_met,
            bids=bids,
            seq=state.seq,
            result=state.result.value if state.result is not None else None,
            closed_at=state.closed_at,
        )

    @property
    def active(self) -> bool:
        """Whether the lot can still take bids or change without an authority."""
        return self.status in ACTIVE_STATUSES

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict of the view."""
        return {field.name: getattr(self, field.name) for field in dataclasses.fields(self)}


def public_events(events: Sequence[Any]) -> tuple[dict[str, Any], ...]:
    """The events anyone may see, JSON-ready, with bidder ids removed (codes stay)."""
    out = []
    for item in events:
        if isinstance(item, PRIVATE_EVENTS):
            continue
        data = encode(item)
        out.append({key: value for key, value in data.items() if key not in PRIVATE_FIELDS})
    return tuple(out)


@dataclass(frozen=True, slots=True)
class LotUpdate:
    """What a subscriber receives for one lot: the latest view and the public events since the
    last update. `gap` is true when events were dropped to keep the queue bounded: the view is
    still exact, but the caller must not rebuild history from `events`."""

    lot_id: str
    view: LotView
    events: tuple[dict[str, Any], ...]
    gap: bool = False


class Subscription:
    """Live updates for every lot, coalesced per lot so that a slow reader never blocks a lot
    and never holds more than one pending update per lot (`max_events` events at most).

    Read with `await next()` or `async for updates in subscription`; the caller must call
    `AuctionService.unsubscribe` (or use `AuctionService.subscription()`) when done.
    """

    def __init__(self, max_events: int = 256) -> None:
        self._max_events = max_events
        self._pending: dict[str, LotUpdate] = {}
        self._ready = asyncio.Event()
        self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed

    def offer(self, update: LotUpdate) -> None:
        """Queue `update`, merging it with an undelivered one of the same lot. Never blocks."""
        if self._closed:
            return
        earlier = self._pending.get(update.lot_id)
        if earlier is not None:
            events = earlier.events + update.events
            gap = earlier.gap or update.gap or len(events) > self._max_events
            update = LotUpdate(update.lot_id, update.view, events[-self._max_events :], gap)
        elif len(update.events) > self._max_events:
            events = update.events[-self._max_events :]
            update = LotUpdate(update.lot_id, update.view, events, True)
        self._pending[update.lot_id] = update
        self._ready.set()

    async def next(self) -> list[LotUpdate]:
        """Wait for and return every pending update (one per lot); `[]` once closed."""
        while not self._pending and not self._closed:
            self._ready.clear()
            await self._ready.wait()
        updates = list(self._pending.values())
        self._pending.clear()
        return updates

    def close(self) -> None:
        """Stop receiving; a waiting `next()` returns what is pending, then `[]`."""
        self._closed = True
        self._ready.set()

    def __aiter__(self) -> AsyncIterator[list[LotUpdate]]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[list[LotUpdate]]:
        while True:
            updates = await self.next()
            if not updates:
                return
            yield updates
