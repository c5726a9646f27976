"""Ledger entry bodies: how the server writes them and how a reader thaws them.

One entry per command a lot's engine received, accepted or rejected (ledger spec §1),
plus the entries that frame them: ``house``, ``lot``, ``sale``, ``idv``. Bodies hold no
personal data: bidders appear as opaque ids and per-lot codes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final

from chain import (
    EntryType,
    canonical_json,
    format_time,
)

from ..rules import (
    LotClosed,
    LotRules,
    Rejected,
    encode,
)
from ..rules import commands as c

if TYPE_CHECKING:
    from .signed_bid import SignedBid


BODY_VERSION = 1


_BID_COMMANDS = (
    c.PlaceBid,
    c.SetMax,
    c.RetractBid,
    c.VoidBid,
    c.FloorBid,
    c.AcceptOnline,
    c.DeclineOnline,
    c.UndoLastBid,
)


_REGISTRATION_COMMANDS = (c.RegisterBidder, c.BarBidder)


_DEPOSIT_COMMANDS = (c.DepositPending, c.DepositFrozen, c.ReleaseDeposit)


def idv_body(account: str, attestation: Mapping[str, Any]) -> dict[str, Any]:
    """The body of an `idv` entry: the account and the provider's attestation
    (`auction.identity.provider.Attestation.to_json()`: salted commitment, no personal data).
    Record it with the identity provider's key as actor
    (`AuctionService.record(EntryType.IDV, ...)`)."""
    return {"v": BODY_VERSION, "account": account, "attestation": thaw(attestation)}


def entry_type_for(command: Any) -> EntryType:
    """The ledger entry type that records `command` (ledger spec §1)."""
    if isinstance(command, _BID_COMMANDS):
        return EntryType.BID
    if isinstance(command, _REGISTRATION_COMMANDS):
        return EntryType.REGISTRATION
    if isinstance(command, _DEPOSIT_COMMANDS):
        return EntryType.DEPOSIT
    return EntryType.LOT_STATE


def house_body(origin: str, name: str, vkey: str, signed_bids: bool = False) -> dict[str, Any]:
    """Entry 0 of every log: who runs it and which key signs its checkpoints and entries;
    `signed_bids`: every bid must carry its bidder's signed request."""
    body: dict[str, Any] = {"v": BODY_VERSION, "origin": origin, "name": name, "vkey": vkey}
    if signed_bids:
        body["signed_bids"] = True
    return body


def lot_body(
    lot_id: str, rules: LotRules, title: str, sale_id: str | None, created_us: int
) -> dict[str, Any]:
    """A lot is created with these rules; its commands follow in later entries."""
    return {
        "v": BODY_VERSION,
        "lot": lot_id,
        "sale": sale_id,
        "title": title,
        "rules": encode(rules),
        "created": format_time(created_us),
    }


def command_body(
    lot_id: str,
    n: int,
    ingress_us: int,
    command: Any,
    events: tuple[Any, ...],
    request: SignedBid | None = None,
    order: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """One command applied to lot `lot_id` as its `n`-th command, with the engine's answer
    (and, for a signed bid, the bidder's request; for a court order, who gave it:
    `auction.court.CourtOrder.to_json()`)."""
    accepted = not (len(events) == 1 and isinstance(events[0], Rejected))
    body: dict[str, Any] = {
        "v": BODY_VERSION,
        "lot": lot_id,
        "n": n,
        "ingress": format_time(ingress_us),
        "command": encode(command),
        "accepted": accepted,
        "events": [encode(event) for event in events],
    }
    if request is not None:
        body["request"] = request.to_json()
    if order is not None:
        body["order"] = dict(order)
    return body


def confirmation_document(
    lot_id: str, title: str, closed: LotClosed, currency: str, close_seq: int
) -> bytes:
    """The confirmation of sale (成交确认书, rules C9) as canonical JSON, without real names:
    the signed copy with the buyer's name is kept off the ledger, and this hash binds it."""
    return canonical_json(
        {
            "document": "gavel/confirmation/v1",
            "lot": lot_id,
            "title": title,
            "hammer_price": closed.price or 0,
            "currency": currency,
            "buyer_code": closed.winner_code or "",
            "closed": format_time(closed.t),
            "close_entry": close_seq,
        }
    )


def sale_body(
    lot_id: str,
    closed: LotClosed,
    currency: str,
    close_seq: int,
    winning_bid_seq: int | None,
    confirmation: bytes,
    buyer_idv_seq: int | None = None,
) -> dict[str, Any]:
    """A lot sold: the entry a receipt for the buyer points at (ledger spec §1 `sale`)."""
    return {
        "v": BODY_VERSION,
        "lot": lot_id,
        "price": closed.price or 0,
        "currency": currency,
        "buyer_code": closed.winner_code or "",
        "close_entry": close_seq,
        "winning_bid_entry": winning_bid_seq,
        "buyer_idv_entry": buyer_idv_seq,
        "confirmation_sha256": hashlib.sha256(confirmation).hexdigest(),
    }


_SCALARS: Final = frozenset({str, int, float, bool, type(None)})


def thaw(value: Any) -> Any:
    """Plain dicts and lists from an entry body (which chain keeps read-only)."""
    kind = type(value)
    if kind in _SCALARS:  # the exact types first: the abstract check is the slow part
        return value
    if kind is dict or (kind is not list and isinstance(value, Mapping)):
        return {k: v if type(v) in _SCALARS else thaw(v) for k, v in value.items()}
    if kind is list or isinstance(value, (list, tuple)):
        return [v if type(v) in _SCALARS else thaw(v) for v in value]
    return value
