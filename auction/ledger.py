"""What the auction writes to the ledger, and how a notary or auditor reads it back (pure).

One ledger entry per command a lot's engine received, accepted or rejected (ledger spec §1:
the log is evidence of what happened, not only of what succeeded), plus the entries that frame
them: `house` (the log's origin and key), `lot` (a lot and its rules) and `sale` (the result of a
sold lot). Bodies hold no personal data: bidders appear as opaque ids and per-lot codes.

Entry `t` is the sequencing time: the command's server ingress time, raised if needed so that
times never go backwards along the log. The legal time of a command is `body.ingress`.

Replay (`LedgerReplay`) is the check a notary makes before co-signing and the auditor makes
offline: every lot is rebuilt from its `lot` entry by feeding each recorded command, at its
recorded ingress time, through the same engine the server runs, and the events the engine
produces must equal the events the server recorded. Any difference is `ReplayError`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from chain import ChainError, Ed25519Verifier, EntryType, canonical_json, format_time, parse_time

from .rules import (
    COMMAND_TYPES,
    BidAccepted,
    LotClosed,
    LotRules,
    LotState,
    Rejected,
    Result,
    RulesError,
    apply,
    decode,
    encode,
)
from .rules import commands as c

BODY_VERSION = 1

_BID_COMMANDS = (
    c.PlaceBid,
    c.SetMax,
    c.RetractBid,
    c.VoidBid,
    c.FloorBid,
    c.AcceptOnline,
    c.UndoLastBid,
)
_REGISTRATION_COMMANDS = (c.RegisterBidder, c.BarBidder)
_DEPOSIT_COMMANDS = (c.DepositPending, c.DepositFrozen, c.ReleaseDeposit)


class ReplayError(Exception):
    """The recorded history does not follow the rules (or cannot be read as a history).

    `seq` is the ledger entry at fault, `lot` the lot concerned (if known).
    """

    def __init__(self, seq: int, lot: str | None, message: str) -> None:
        where = f"entry {seq}" + (f" (lot {lot})" if lot else "")
        super().__init__(f"{where}: {message}")
        self.seq = seq
        self.lot = lot


def kid_names_key(verifier: Ed25519Verifier, kid: str) -> bool:
    """The one rule for an entry's `actor.kid`, shared by the auditor and the notaries: it names
    a key when it equals the key's vkey, `<name>+<hex key id>`, its name, or its hex key id
    (any case). When several valid keys match, one of them must verify."""
    hex_id = verifier.key_id.hex()
    return kid in (verifier.vkey, f"{verifier.name}+{hex_id}", verifier.name) or (
        kid.lower() == hex_id
    )


def entry_type_for(command: Any) -> EntryType:
    """The ledger entry type that records `command` (ledger spec §1)."""
    if isinstance(command, _BID_COMMANDS):
        return EntryType.BID
    if isinstance(command, _REGISTRATION_COMMANDS):
        return EntryType.REGISTRATION
    if isinstance(command, _DEPOSIT_COMMANDS):
        return EntryType.DEPOSIT
    return EntryType.LOT_STATE


def house_body(origin: str, name: str, vkey: str) -> dict[str, Any]:
    """Entry 0 of every log: who runs it and which key signs its checkpoints and entries."""
    return {"v": BODY_VERSION, "origin": origin, "name": name, "vkey": vkey}


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
    lot_id: str, n: int, ingress_us: int, command: Any, events: tuple[Any, ...]
) -> dict[str, Any]:
    """One command applied to lot `lot_id` as its `n`-th command, with the engine's answer."""
    accepted = not (len(events) == 1 and isinstance(events[0], Rejected))
    return {
        "v": BODY_VERSION,
        "lot": lot_id,
        "n": n,
        "ingress": format_time(ingress_us),
        "command": encode(command),
        "accepted": accepted,
        "events": [encode(event) for event in events],
    }


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


@dataclass
class _LotReplay:
    state: LotState
    title: str
    next_n: int = 0
    last_bid_entry: dict[str, int] = field(default_factory=dict)  # bidder -> ledger seq
    close_entry: int | None = None
    closed: LotClosed | None = None
    sale_entry: int | None = None


@dataclass
class LedgerReplay:
    """Feeds ledger entries, in order, through the rules engine. Call `add(seq, type, t_us,
    body)` for every entry; at the end of what you have, `unsold_closures()` lists sold lots
    still missing their `sale` entry and `outcomes()` what the replay concluded per lot."""

    lots: dict[str, _LotReplay] = field(default_factory=dict)
    commands: int = 0
    rejected: int = 0
    sales: int = 0
    last_t: int = -1

    def add(self, seq: int, entry_type: str, t_us: int, body: Mapping[str, Any]) -> None:
        if t_us < self.last_t:
            raise ReplayError(seq, None, "time goes backwards along the log")
        self.last_t = t_us
        if entry_type == EntryType.HOUSE:
            return
        if entry_type == EntryType.LOT:
            self._lot(seq, body)
        elif entry_type == EntryType.SALE:
            self._sale(seq, body)
        elif entry_type in (
            EntryType.BID,
            EntryType.REGISTRATION,
            EntryType.DEPOSIT,
            EntryType.LOT_STATE,
        ):
            self._command(seq, entry_type, t_us, body)
        # idv, stream_segment, key, notary_set: checked by their own verifiers

    def _lot(self, seq: int, body: Mapping[str, Any]) -> None:
        lot_id = _text(body, "lot", seq)
        if lot_id in self.lots:
            raise ReplayError(seq, lot_id, "lot created twice")
        try:
            rules = decode(_thaw(body.get("rules")))
        except RulesError as exc:
            raise ReplayError(seq, lot_id, f"unreadable rules: {exc}") from exc
        if not isinstance(rules, LotRules):
            raise ReplayError(seq, lot_id, "rules are not lot rules")
        self.lots[lot_id] = _LotReplay(LotState.create(lot_id, rules), _text(body, "title", seq))

    def _command(self, seq: int, entry_type: str, t_us: int, body: Mapping[str, Any]) -> None:
        lot_id = _text(body, "lot", seq)
        lot = self.lots.get(lot_id)
        if lot is None:
            raise ReplayError(seq, lot_id, "command for a lot the log never created")
        if body.get("n") != lot.next_n:
            raise ReplayError(seq, lot_id, f"command n={body.get('n')} but {lot.next_n} expected")
        ingress_text = _text(body, "ingress", seq)
        try:
            ingress = parse_time(ingress_text)
            command = decode(_thaw(body.get("command")))
        except (RulesError, ChainError) as exc:
            raise ReplayError(seq, lot_id, f"unreadable command: {exc}") from exc
        if type(command) not in COMMAND_TYPES:
            raise ReplayError(seq, lot_id, "not a command")
        if entry_type_for(command) != entry_type:
            raise ReplayError(seq, lot_id, f"a {type(command).__name__} in a {entry_type} entry")
        if ingress > t_us:
            raise ReplayError(seq, lot_id, "ingress time after the entry's time")
        state, events = apply(lot.state, command, ingress)
        recorded = _thaw(body.get("events"))
        produced = [encode(event) for event in events]
        if produced != recorded:
            raise ReplayError(
                seq, lot_id, f"the rules give {produced!r}, the log recorded {recorded!r}"
            )
        accepted = not (len(events) == 1 and isinstance(events[0], Rejected))
        if body.get("accepted") is not accepted:
            raise ReplayError(seq, lot_id, "accepted flag contradicts the rules")
        lot.state = state
        lot.next_n += 1
        self.commands += 1
        self.rejected += not accepted
        for event in events:
            if isinstance(event, BidAccepted):
                lot.last_bid_entry[event.bidder] = seq
            if isinstance(event, LotClosed):
                lot.closed = event
                lot.close_entry = seq
                lot.sale_entry = None

    def _sale(self, seq: int, body: Mapping[str, Any]) -> None:
        lot_id = _text(body, "lot", seq)
        lot = self.lots.get(lot_id)
        if lot is None or lot.closed is None or lot.closed.result is not Result.SOLD:
            raise ReplayError(seq, lot_id, "a sale entry for a lot that was not sold")
        if lot.sale_entry is not None:
            raise ReplayError(seq, lot_id, "the lot was sold twice")
        closed = lot.closed
        assert lot.close_entry is not None
        winner_bid = lot.last_bid_entry.get(closed.winner or "")
        expected = sale_body(
            lot_id,
            closed,
            lot.state.rules.currency,
            lot.close_entry,
            winner_bid,
            confirmation_document(
                lot_id, lot.title, closed, lot.state.rules.currency, lot.close_entry
            ),
            body.get("buyer_idv_entry") if isinstance(body.get("buyer_idv_entry"), int) else None,
        )
        if _thaw(body) != expected:
            raise ReplayError(seq, lot_id, "the sale entry does not match the lot's result")
        lot.sale_entry = seq
        self.sales += 1

    def unsold_closures(self) -> list[str]:
        """Lots the rules sold whose `sale` entry is missing (so far)."""
        return sorted(
            lot_id
            for lot_id, lot in self.lots.items()
            if lot.closed is not None
            and lot.closed.result is Result.SOLD
            and lot.sale_entry is None
        )

    def outcomes(self) -> dict[str, dict[str, Any]]:
        """Per lot: status, price, leader code, seq — what the replay concluded."""
        return {
            lot_id: {
                "status": lot.state.status.value,
                "price": lot.state.price,
                "leader_code": lot.state.leader_code,
                "commands": lot.next_n,
                "sale_entry": lot.sale_entry,
            }
            for lot_id, lot in sorted(self.lots.items())
        }


def _text(body: Mapping[str, Any], key: str, seq: int) -> str:
    value = body.get(key)
    if not isinstance(value, str):
        raise ReplayError(seq, None, f"body.{key} must be a string")
    return value


def _thaw(value: Any) -> Any:
    """Plain dicts and lists from an entry body (which chain keeps read-only)."""
    if isinstance(value, Mapping):
        return {k: _thaw(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_thaw(v) for v in value]
    return value
