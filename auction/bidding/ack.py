"""The acknowledgement of a bid (docs/protocol.md §2.4), built from the engine's events (pure).

`engine_ack` answers a bid that reached its lot from the events the engine returned for it;
`refused_ack` one refused before the engine (rate limit, signature, idempotency, identity);
`unavailable_ack` one that could not be stored. The lot's figures (`seq`, `cur`, `min_next`,
`end_us`, `leader_is_you`) are those right after the bid: what the bid's events say, and for
what they leave unchanged, the lot's state.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..rules import (
    BidAccepted,
    BidPending,
    EndExtended,
    LotState,
    MaxSet,
    PriceChanged,
    PriorityWindowOpened,
    Rejected,
    rejection,
)
from ..verify import SignedBid
from ..words import refusal_for


def engine_ack(
    bid: SignedBid, events: Sequence[Any], entry: int | None, state: LotState | None
) -> dict[str, Any]:
    """The ack of a bid the engine answered with `events`, recorded as ledger entry `entry`
    (None: not recorded); `state` is the lot's (None: unknown or asleep)."""
    refusal = rejection(events)
    if refusal is not None:
        return _ack(bid, "rejected", state, events, refusal.reason.value, entry)
    if any(isinstance(event, BidAccepted | MaxSet) for event in events):
        return _ack(bid, "accepted", state, events, None, entry)
    held = next((event for event in events if isinstance(event, BidPending)), None)
    if held is None:
        return _ack(bid, "rejected", state, events, None, entry)
    ack = _ack(bid, "held", state, events, None, entry)  # rules C14.1: with the auctioneer
    ack["bid_seq"] = held.seq
    return ack


def refused_ack(bid: SignedBid, reason: str, state: LotState | None) -> dict[str, Any]:
    """The ack of a bid refused before the engine: nothing was written (no `entry`)."""
    return _ack(bid, "rejected", state, (), reason, None)


def unavailable_ack(bid: SignedBid, reason: str, message: str) -> dict[str, Any]:
    """The ack of a bid that could not be answered (`UNAVAILABLE`: resend it, same key)."""
    return {
        "type": "ack",
        "idempotency_key": bid.idempotency_key,
        "lot": bid.lot,
        "result": "rejected",
        "reason": reason,
        "message": message,
    }


def _ack(
    bid: SignedBid,
    result: str,
    state: LotState | None,
    events: Sequence[Any],
    reason: str | None,
    entry: int | None,
) -> dict[str, Any]:
    """A refusal's `message` is `auction.words`' sentence for `reason` with the lot's numbers;
    the engine's own detail is not shown."""
    ack: dict[str, Any] = {
        "type": "ack",
        "idempotency_key": bid.idempotency_key,
        "lot": bid.lot,
        "result": result,
    }
    if entry is not None:  # the bid's ledger entry: what its receipt proves
        ack["entry"] = entry
    if reason is not None:
        ack["reason"] = reason
        ack["message"] = refusal_for(reason, state)  # plain words with the numbers
    if state is None:
        ack |= {"seq": None, "cur": None, "min_next": None, "end_us": None}
        ack["leader_is_you"] = False
        return ack
    seq, cur, min_next, end, leader = (
        state.seq,
        state.price,
        state.min_next,
        state.end,
        state.leader,
    )
    for event in events:  # every event but Rejected takes the lot's next seq
        seq = event.seq
        if isinstance(event, Rejected):
            cur, min_next, end = event.cur, event.min_next, event.end
        elif isinstance(event, PriceChanged):
            cur, min_next, leader = event.price, event.min_next, event.leader
        elif isinstance(event, EndExtended | PriorityWindowOpened):
            end = event.end_after
    ack |= {"seq": seq, "cur": cur, "min_next": min_next, "end_us": end}
    ack["leader_is_you"] = leader == bid.account
    return ack
