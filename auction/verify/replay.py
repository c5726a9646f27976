"""The lot replay: every lot rebuilt from the log through the rules engine.

The check a notary makes before co-signing and the auditor makes offline: every lot is
rebuilt from its ``lot`` entry by feeding each recorded command, at its recorded ingress
time, through the same engine the server runs, and the events the engine produces must
equal the events the server recorded. Any difference is :class:`ReplayError`.

Entry ``t`` is the sequencing time: the command's server ingress time, raised if needed
so that times never go backwards along the log. The legal time of a command is
``body.ingress``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from chain import (
    ChainError,
    EntryType,
    canonical_json,
    parse_time,
)

from ..rules import (
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
from .bodies import confirmation_document, entry_type_for, sale_body, thaw
from .court_orders import OrderError, check_order
from .errors import ReplayError, SignedBidError
from .identities import IdentityBook
from .sealed import (
    ALIAS_MARK,
    RESERVE,
    LinkBook,
    SealError,
    bidders_of,
    check_opening,
    max_names,
    open_body,
    put_maxima,
    put_reserve,
    reserve_names,
)


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
class _Due:
    """A lot that closed with sealed proxy maxima (or a sealed reserve): its `reveal` entries
    come next (after its `sale`, if sold), `part` 0 to `parts - 1`."""

    lot: str
    close_entry: int
    next_part: int = 0
    parts: int | None = None
    values: dict[int, dict[str, Any]] = field(default_factory=dict)  # seq -> name -> amount


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
    identities: IdentityBook = field(default_factory=IdentityBook)
    idv_entries: int = 0
    verified_bid_signatures: int = 0
    #: `openings(seq)`: the openings of entry `seq`'s sealed values (None: it has none). With
    #: it, every opening is checked against its commitment and the replay runs on the opened
    #: bodies (account ids, signed requests: every check). Without it (a public verifier),
    #: sealed values stay sealed: the rules replay on the per-lot aliases, and the signed-bid
    #: checks that need the accounts are skipped for aliased entries.
    openings: Callable[[int], Mapping[str, Any] | None] | None = None
    links: LinkBook = field(default_factory=LinkBook)
    opened_values: int = 0
    #: Per lot, the sealed proxy maxima not revealed yet: seq -> {name: commitment} (a sealed
    #: reserve: its `lot` entry's seq -> {"reserve": commitment}).
    sealed_maxima: dict[str, dict[int, dict[str, str]]] = field(default_factory=dict)
    revealed_maxima: int = 0
    revealed_reserves: int = 0
    #: A public replay (no openings) cannot apply a sealed maximum: from a lot's first one, its
    #: entries wait here, in order, for its reveal: (seq, type, t, body, public).
    deferred: dict[str, list[tuple[int, str, int, Mapping[str, Any], bool]]] = field(
        default_factory=dict
    )
    due: _Due | None = None

    def add(
        self,
        seq: int,
        entry_type: str,
        t_us: int,
        body: Mapping[str, Any],
        actor_kid: str | None = None,
    ) -> None:
        """Replay one entry. `actor_kid` is the entry's `actor.kid`: `idv` entries need it
        (their attestation must verify under the provider key it names)."""
        if t_us < self.last_t:
            raise ReplayError(seq, None, "time goes backwards along the log")
        self.last_t = t_us
        self._check_due(seq, entry_type, body)
        if entry_type == EntryType.REVEAL:
            self._reveal(seq, body)
            return
        if entry_type in _COMMAND_TYPES:
            maxima = max_names(body)
        elif entry_type == EntryType.LOT:
            maxima = reserve_names(body)  # a hidden reserve, revealed with the maxima
        else:
            maxima = {}
        if maxima:
            lot_id = _text(body, "lot", seq)
            self.sealed_maxima.setdefault(lot_id, {})[seq] = maxima
        sealed_here = body.get("sealed")
        public = False
        if self.openings is not None and entry_type in (
            EntryType.IDV,
            EntryType.LOT,
            *_COMMAND_TYPES,
        ):
            try:
                opened = self.openings(seq) if sealed_here is not None else None
                body = open_body(entry_type, body, opened, self.links)
            except SealError as exc:
                raise ReplayError(seq, _lot_of(body), str(exc)) from exc
            self.opened_values += len(sealed_here) if isinstance(sealed_here, Mapping) else 0
        elif sealed_here is not None or (entry_type in _COMMAND_TYPES and _names_aliases(body)):
            public = True
            body = {k: v for k, v in body.items() if k != "sealed"}
            if entry_type == EntryType.IDV:
                body["account"] = f"sealed:{seq}"
        if entry_type == EntryType.HOUSE:
            self.identities.house(body)
            return
        try:
            if entry_type == EntryType.KEY:
                self.identities.key(body)
                return
            if entry_type == EntryType.IDV:
                self.identities.idv(seq, t_us, body, actor_kid)
                self.idv_entries += 1
                return
        except SignedBidError as exc:
            raise ReplayError(seq, None, f"{exc.reason}: {exc.message}") from exc
        if entry_type == EntryType.LOT:
            self._lot(seq, body)
            if public and maxima:  # its reserve is sealed: its commands wait for the reveal
                lot_id = _text(body, "lot", seq)
                self.deferred.setdefault(lot_id, []).append((seq, entry_type, t_us, body, public))
        elif entry_type == EntryType.SALE:
            lot_id = _text(body, "lot", seq)
            if lot_id in self.deferred:
                self.deferred[lot_id].append((seq, entry_type, t_us, body, public))
            else:
                self._sale(seq, body)
        elif entry_type in (
            EntryType.BID,
            EntryType.REGISTRATION,
            EntryType.DEPOSIT,
            EntryType.LOT_STATE,
        ):
            lot_id = _text(body, "lot", seq)
            if self.openings is None and (maxima or lot_id in self.deferred):
                self.deferred.setdefault(lot_id, []).append((seq, entry_type, t_us, body, public))
            else:
                self._command(seq, entry_type, t_us, body, public)
            if self.sealed_maxima.get(lot_id) and _ends_lot(body):
                self.due = _Due(lot_id, seq)
        # stream_segment, document (any object body), notary_set: checked by their own verifiers

    def _check_due(self, seq: int, entry_type: str, body: Mapping[str, Any]) -> None:
        """After a lot with sealed maxima closes, only its `sale` and then its `reveal`
        entries may come: anything else means the reveal is missing."""
        due = self.due
        if due is None:
            return
        lot = body.get("lot")
        if lot == due.lot and (
            entry_type == EntryType.REVEAL or (entry_type == EntryType.SALE and due.next_part == 0)
        ):
            return
        missing = len(self.sealed_maxima.get(due.lot, {}))
        self.due = None  # reported once, here
        raise ReplayError(
            seq,
            due.lot,
            f"lot {due.lot} closed at entry {due.close_entry} with the proxy maxima or reserve of"
            f" {missing} entries sealed, but entry {seq} ({entry_type}) is not their reveal:"
            " the reveal must follow the close (and its sale)",
        )

    def _reveal(self, seq: int, body: Mapping[str, Any]) -> None:
        """A `reveal` entry: every opening matches the commitment of the entry it names, and
        the last part leaves no maximum of the lot sealed."""
        try:
            self._check_reveal(seq, body)
        except ReplayError:
            self.due = None  # reported once, here
            raise

    def _check_reveal(self, seq: int, body: Mapping[str, Any]) -> None:
        due = self.due
        lot_id = _text(body, "lot", seq)
        if due is None or due.lot != lot_id:
            raise ReplayError(seq, lot_id, "a reveal for a lot that did not just close")
        if (
            set(body) != {"v", "lot", "close_entry", "part", "parts", "openings"}
            or body.get("v") != 1
        ):
            raise ReplayError(
                seq, lot_id, "a reveal body is {v, lot, close_entry, part, parts, openings}"
            )
        part, parts, close = body.get("part"), body.get("parts"), body.get("close_entry")
        if close != due.close_entry:
            raise ReplayError(
                seq, lot_id, f"the reveal names close entry {close!r}, not {due.close_entry}"
            )
        if (
            not isinstance(part, int)
            or not isinstance(parts, int)
            or isinstance(part, bool)
            or isinstance(parts, bool)
            or part != due.next_part
            or not 0 <= part < parts
            or (due.parts is not None and parts != due.parts)
        ):
            raise ReplayError(
                seq, lot_id, f"reveal part {part!r} of {parts!r}: part {due.next_part} expected"
            )
        openings = body.get("openings")
        if not isinstance(openings, Mapping):
            raise ReplayError(seq, lot_id, "the reveal's openings are an object")
        pending = self.sealed_maxima.get(lot_id, {})
        for key, items in openings.items():
            target = int(key) if isinstance(key, str) and _decimal(key) else None
            names = pending.get(target) if target is not None else None
            if target is None or names is None:
                raise ReplayError(
                    seq,
                    lot_id,
                    f"the reveal opens entry {key}, which holds no sealed maximum or reserve"
                    f" of lot {lot_id} still to reveal",
                )
            if not isinstance(items, Mapping) or set(items) != set(names):
                raise ReplayError(
                    seq,
                    lot_id,
                    f"the reveal must open exactly the values {sorted(names)} of entry {target}",
                )
            values: dict[str, Any] = {}
            for name, opening in items.items():
                try:
                    values[name] = check_opening(name, names[name], opening)
                except SealError as exc:
                    raise ReplayError(seq, lot_id, f"entry {target}'s {exc}") from exc
                value = values[name]
                if isinstance(value, bool) or not isinstance(value, int):
                    raise ReplayError(seq, lot_id, f"entry {target}'s {name} is no amount")
            due.values[target] = values
            del pending[target]
            self.revealed_reserves += int(RESERVE in values)
            self.revealed_maxima += len(values) - int(RESERVE in values)
        due.parts, due.next_part = parts, part + 1
        if due.next_part < parts:
            return
        if pending:
            raise ReplayError(
                seq, lot_id, f"the reveal leaves the values of entries {sorted(pending)[:8]} sealed"
            )
        self.due = None
        self.sealed_maxima.pop(lot_id, None)
        for item_seq, kind, item_t, item, public in self.deferred.pop(lot_id, []):
            if kind == EntryType.SALE:
                self._sale(item_seq, item)
                continue
            if kind == EntryType.LOT:  # no command ran yet: the lot starts again, reserve set
                try:
                    item = put_reserve(item, due.values.get(item_seq, {}).get(RESERVE))
                except SealError as exc:
                    raise ReplayError(item_seq, lot_id, str(exc)) from exc
                del self.lots[lot_id]
                self._lot(item_seq, item)
                continue
            try:
                item = put_maxima(item, due.values.get(item_seq, {}))
            except SealError as exc:
                raise ReplayError(item_seq, lot_id, str(exc)) from exc
            self._command(item_seq, kind, item_t, item, public)

    def unrevealed(self) -> tuple[str, int] | None:
        """A lot that closed with sealed maxima and no reveal yet (its id and close entry)."""
        return None if self.due is None else (self.due.lot, self.due.close_entry)

    def _lot(self, seq: int, body: Mapping[str, Any]) -> None:
        lot_id = _text(body, "lot", seq)
        if lot_id in self.lots:
            raise ReplayError(seq, lot_id, "lot created twice")
        try:
            rules = decode(thaw(body.get("rules")))
        except RulesError as exc:
            raise ReplayError(seq, lot_id, f"unreadable rules: {exc}") from exc
        if not isinstance(rules, LotRules):
            raise ReplayError(seq, lot_id, "rules are not lot rules")
        self.lots[lot_id] = _LotReplay(LotState.create(lot_id, rules), _text(body, "title", seq))

    def _command(
        self, seq: int, entry_type: str, t_us: int, body: Mapping[str, Any], public: bool = False
    ) -> None:
        lot_id = _text(body, "lot", seq)
        lot = self.lots.get(lot_id)
        if lot is None:
            raise ReplayError(seq, lot_id, "command for a lot the log never created")
        if body.get("n") != lot.next_n:
            raise ReplayError(seq, lot_id, f"command n={body.get('n')} but {lot.next_n} expected")
        ingress_text = _text(body, "ingress", seq)
        try:
            ingress = parse_time(ingress_text)
            command = decode(thaw(body.get("command")))
        except (RulesError, ChainError) as exc:
            raise ReplayError(seq, lot_id, f"unreadable command: {exc}") from exc
        if type(command) not in COMMAND_TYPES:
            raise ReplayError(seq, lot_id, "not a command")
        if entry_type_for(command) != entry_type:
            raise ReplayError(seq, lot_id, f"a {type(command).__name__} in a {entry_type} entry")
        if ingress > t_us:
            raise ReplayError(seq, lot_id, "ingress time after the entry's time")
        if "order" in body:  # a court order given through a court session (auction.court)
            try:
                check_order(thaw(body.get("order")), command)
            except OrderError as exc:
                raise ReplayError(seq, lot_id, f"court order: {exc}") from exc
        try:  # a public replay cannot check what is sealed (the request, the account)
            signed = (
                False
                if public
                else self.identities.check(lot_id, command, body.get("request"), ingress)
            )
        except SignedBidError as exc:
            raise ReplayError(seq, lot_id, f"{exc.reason}: {exc.message}") from exc
        state, events = apply(lot.state, command, ingress)
        recorded = thaw(body.get("events"))
        produced = [encode(event) for event in events]
        if self.openings is None and produced != recorded:  # settlements follow the accounts' order
            produced, recorded = _settlements_unordered(produced), _settlements_unordered(recorded)
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
        self.verified_bid_signatures += signed
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
        if thaw(body) != expected:
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


_COMMAND_TYPES = (EntryType.BID, EntryType.REGISTRATION, EntryType.DEPOSIT, EntryType.LOT_STATE)


def _settlements_unordered(events: Any) -> Any:
    """`events` with each run of `DepositChanged` events sorted: the rules settle deposits in
    the order of the account ids, which a public replay (aliases only) cannot know."""
    if not isinstance(events, list):
        return events
    out: list[Any] = []
    run: list[Any] = []
    for event in [*events, None]:
        if isinstance(event, Mapping) and event.get("type") == "DepositChanged":
            run.append(event)
            continue
        seqs = [e.get("seq") for e in run]  # the numbering stays; the bidders may swap
        ordered = sorted(({k: v for k, v in e.items() if k != "seq"} for e in run), key=_cj)
        out.extend({**e, "seq": n} for e, n in zip(ordered, seqs, strict=True))
        run = []
        if event is not None:
            out.append(event)
    return out


def _cj(value: Any) -> bytes:
    return canonical_json(value)


def _ends_lot(body: Mapping[str, Any]) -> bool:
    """Whether a command's recorded events close or cancel its lot."""
    events = body.get("events")
    return isinstance(events, list | tuple) and any(
        isinstance(e, Mapping) and e.get("type") in ("LotClosed", "LotCancelled") for e in events
    )


def _decimal(text: str) -> bool:
    return text.isdigit() and text.isascii() and str(int(text)) == text


def _lot_of(body: Mapping[str, Any]) -> str | None:
    lot = body.get("lot")
    return lot if isinstance(lot, str) else None


def _names_aliases(body: Mapping[str, Any]) -> bool:
    return any(name.startswith(ALIAS_MARK) for name in bidders_of(body.get("command")))


def _text(body: Mapping[str, Any], key: str, seq: int) -> str:
    value = body.get(key)
    if not isinstance(value, str):
        raise ReplayError(seq, None, f"body.{key} must be a string")
    return value
