"""The auctioneer's side of the live ring (rules C14, docs/protocol.md §1 "Live ring"): the
online bids held for the auctioneer, accepting or declining one, and the lot's registered
bidders. An adapter: it reads the engine's state and history and sends `AcceptOnline` /
`DeclineOnline` through `AuctionService.submit`; the bidders learn the outcome from the lot's
public events (`BidAccepted`, `BidDeclined`), like every watcher.

`held_bids(records)` is the pure part: what became of every online bid a lot's history held.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from ..accounts import Role
from ..errors import BadInput, Conflict, GavelError, NotFound
from ..rules import (
    AcceptOnline,
    BidDeclined,
    BidPending,
    DeclineOnline,
    LotState,
    RejectReason,
    rejection,
)
from ..service import public_events
from ..storage import HistoryRecord
from .api import Components, bearer_session

_NO_STORE = {"Cache-Control": "no-store"}

#: How a held bid ended; `None` while it still waits for the auctioneer.
ACCEPTED = "accepted"
DECLINED = "declined"  # by the auctioneer
TAKEN = "taken"  # a floor or phone bid took the ask first
WITHDRAWN = "withdrawn"  # an undo or the end of the lot cleared it


@dataclass(frozen=True, slots=True)
class HeldBid:
    """An online bid that held the ask: its event seq, bidder code, amount, time, outcome."""

    bid_seq: int
    code: str
    amount: int
    t_us: int
    outcome: str | None

    def to_json(self) -> dict[str, Any]:
        return {
            "bid_seq": self.bid_seq,
            "code": self.code,
            "amount": self.amount,
            "t_us": self.t_us,
            "outcome": self.outcome,
        }


def held_bids(records: Iterable[HistoryRecord], pending_seq: int | None) -> dict[int, HeldBid]:
    """Every online bid the history held, by event seq, with its outcome. `pending_seq` is the
    bid holding the ask now (the engine's `live.pending`), the only one without an outcome."""
    found: dict[int, HeldBid] = {}
    for record in records:
        command = record.command
        if isinstance(command, AcceptOnline) and record.accepted:
            held = found.get(command.bid_seq)
            if held is not None:
                found[held.bid_seq] = _ended(held, ACCEPTED)
        for event in record.events:
            if isinstance(event, BidPending):
                found[event.seq] = HeldBid(event.seq, event.code, event.amount, event.t, None)
            elif isinstance(event, BidDeclined) and event.bid_seq in found:
                outcome = DECLINED if event.reason is RejectReason.DECLINED else TAKEN
                found[event.bid_seq] = _ended(found[event.bid_seq], outcome)
    for seq, held in list(found.items()):
        if held.outcome is None and seq != pending_seq:
            found[seq] = _ended(held, WITHDRAWN)
    return found


def _ended(held: HeldBid, outcome: str) -> HeldBid:
    return HeldBid(held.bid_seq, held.code, held.amount, held.t_us, outcome)


def pending_seq(state: LotState) -> int | None:
    live = state.live
    return live.pending[0] if live is not None and live.pending is not None else None


_OUTCOME_WORDS: Mapping[str, str] = {
    ACCEPTED: "was already accepted",
    DECLINED: "was already declined",
    TAKEN: "was already passed over: a floor or phone bid took the ask",
    WITHDRAWN: "is no longer waiting: the last bid was undone or the lot ended",
}


def add_ring_routes(app: web.Application, parts: Callable[[web.Request], Components]) -> None:
    """Register the live-ring console routes (auctioneer role)."""
    ring = _Ring(parts)
    base = "/api/console/lots/{lot}"
    app.router.add_get(f"{base}/held", ring.list_held)
    app.router.add_post(f"{base}/held/{{bid}}/accept", ring.accept)
    app.router.add_post(f"{base}/held/{{bid}}/decline", ring.decline)
    app.router.add_get(f"{base}/bidders", ring.bidders)


class _Ring:
    def __init__(self, parts: Callable[[web.Request], Components]) -> None:
        self._parts = parts

    async def _auctioneer(self, request: web.Request) -> None:
        await bearer_session(request, self._parts(request), Role.AUCTIONEER)

    async def _state(self, request: web.Request) -> tuple[str, LotState]:
        await self._auctioneer(request)
        lot = request.match_info["lot"]
        state = await self._parts(request).service.full_state(lot)
        if state is None:
            raise NotFound("there is no such lot", code="UNKNOWN_LOT")
        return lot, state

    async def list_held(self, request: web.Request) -> web.Response:
        lot, state = await self._state(request)
        queue: list[dict[str, Any]] = []
        live = state.live
        if live is not None and live.pending is not None:
            seq, bidder, amount, t = live.pending
            code = state.bidders[bidder].code if bidder in state.bidders else bidder
            queue.append(HeldBid(seq, code, amount, t, None).to_json())
        body = {
            "lot": lot,
            "currency": state.rules.currency,
            "legal_timezone": state.rules.legal_timezone,
            "held": queue,
        }
        return web.json_response(body, headers=_NO_STORE)

    async def accept(self, request: web.Request) -> web.Response:
        return await self._decide(request, ACCEPTED)

    async def decline(self, request: web.Request) -> web.Response:
        return await self._decide(request, DECLINED)

    async def _decide(self, request: web.Request, outcome: str) -> web.Response:
        lot, state = await self._state(request)
        text = request.match_info["bid"]
        if not (text.isascii() and text.isdigit()) or len(text) > 18:
            raise BadInput("the held bid is named by its number (bid_seq)", code="MALFORMED")
        bid_seq = int(text)
        if pending_seq(state) != bid_seq:
            raise await self._not_waiting(request, lot, bid_seq)
        command = AcceptOnline(bid_seq) if outcome == ACCEPTED else DeclineOnline(bid_seq)
        service = self._parts(request).service
        events = await service.submit(lot, command)
        refusal = rejection(events)
        if refusal is not None:
            if refusal.reason is RejectReason.UNKNOWN_BID:  # decided meanwhile
                raise await self._not_waiting(request, lot, bid_seq)
            raise BadInput(refusal.detail, code=refusal.reason.value)
        view = service.view(lot)
        answer = {
            "bid_seq": bid_seq,
            "outcome": outcome,
            "events": list(public_events(events)),
            "lot": view.to_json() if view is not None else None,
        }
        return web.json_response(answer, headers=_NO_STORE)

    async def _not_waiting(self, request: web.Request, lot: str, bid_seq: int) -> GavelError:
        parts = self._parts(request)
        state = await parts.service.full_state(lot)
        current = pending_seq(state) if state is not None else None
        held = held_bids(await parts.history(lot), current).get(bid_seq)
        if held is None:
            return NotFound(f"no online bid number {bid_seq} was held", code="UNKNOWN_BID")
        assert held.outcome is not None
        return Conflict(f"bid {bid_seq} {_OUTCOME_WORDS[held.outcome]}", code="ALREADY_DECIDED")

    async def bidders(self, request: web.Request) -> web.Response:
        lot, state = await self._state(request)
        rows = [
            {
                "code": bidder.code,
                "deposit": {
                    "state": bidder.deposit.value,
                    "amount": bidder.deposit_amount or state.rules.deposit,
                    "currency": state.rules.currency,
                },
                "barred": bidder.barred,
            }
            for bidder in sorted(state.bidders.values(), key=lambda b: b.code)
        ]
        return web.json_response({"lot": lot, "bidders": rows}, headers=_NO_STORE)


__all__ = ["HeldBid", "add_ring_routes", "held_bids"]
