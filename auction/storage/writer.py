"""The ledger writer: turns history records into ledger entries (the auction's
sequencer, one per `Storage`, used under its ledger lock).
"""

from __future__ import annotations

import base64
import dataclasses
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.engine import Connection

from chain import ChainError, Ed25519Signer, EntryType, parse_time, parse_vkey
from chain import store as ledger_store

from .. import sealed
from ..ledger import SignatureMemo
from ..rules import BidAccepted, LotCancelled, LotClosed, LotRules, Result
from ..verify import (
    IdentityBook,
    SignedBidError,
    command_body,
    confirmation_document,
    entry_type_for,
    house_body,
    lot_body,
    sale_body,
)
from .errors import LedgerCorrupt, LedgerEntryRefused, StorageConflict
from .house import HOUSE_NAME, House
from .records import HistoryRecord, LedgerRecord
from .schema import OPENINGS, select_openings

_COMMAND_ENTRY_TYPES = frozenset(
    {EntryType.BID, EntryType.REGISTRATION, EntryType.DEPOSIT, EntryType.LOT_STATE}
)


@dataclass(slots=True)
class _LotLedger:
    """What the ledger writer needs to know about a lot to write its `sale` entry."""

    title: str
    currency: str
    last_bid_entry: dict[str, int] = dataclasses.field(default_factory=dict)  # alias -> seq
    linked: set[str] = dataclasses.field(default_factory=set)  # aliases with a link entry
    #: seq -> the openings of that entry's sealed proxy maxima (or of the lot entry's sealed
    #: reserve), until the lot's `reveal`
    #: (None: not read back yet, see `_LedgerWriter._read_maxima`)
    maxima: dict[int, dict[str, Any] | None] = dataclasses.field(default_factory=dict)

    def copy(self) -> _LotLedger:
        return _LotLedger(
            self.title,
            self.currency,
            dict(self.last_bid_entry),
            set(self.linked),
            dict(self.maxima),
        )


@dataclass(slots=True)
class _Pending:
    """Entries sequenced for one transaction, and the lot bookkeeping that goes with them."""

    batch: ledger_store.LedgerBatch
    lots: dict[str, _LotLedger] = dataclasses.field(default_factory=dict)
    book: IdentityBook | None = None  # a changed copy of the writer's, if the batch changes it
    keys: dict[str, int] = dataclasses.field(default_factory=dict)  # vkey -> key entry seq
    #: seq -> (entry type, openings of its sealed values), written with the entries
    openings: dict[int, tuple[str, dict[str, Any]]] = dataclasses.field(default_factory=dict)


class _LedgerWriter:
    """Turns history records into ledger entries: the auction's sequencer (one per `Storage`,
    used under its ledger lock). State changes only in `commit`, after the transaction."""

    def __init__(
        self,
        house: House,
        state: ledger_store.LedgerState,
        lots: dict[str, _LotLedger],
        signed: ledger_store.SignedHead,
        book: IdentityBook | None = None,
        keys: dict[str, int] | None = None,
    ) -> None:
        self.house = house
        self.state = state
        self.lots = lots
        self.signed = signed
        self.book = book if book is not None else IdentityBook()
        self.keys = keys if keys is not None else {}
        self._signers: dict[str, ledger_store.EntrySigner] = {}

    @classmethod
    def load(
        cls, connection: Connection, house: House, memo: SignatureMemo | None = None
    ) -> _LedgerWriter:
        """Resume from the stored ledger, verifying all of it (`LedgerState.load` re-hashes
        every entry and checks every stored hash and the signed root), and rebuild from the
        entries themselves each lot's currency, title and winning-bid bookkeeping."""
        writer = cls(
            house,
            ledger_store.LedgerState(),
            {},
            ledger_store.SignedHead(0, b""),
            IdentityBook(memo=memo),
            {},
        )
        writer._connection = connection
        writer.state = ledger_store.LedgerState.load(connection, each_entry=writer._learn)
        writer.signed = ledger_store.read_signed(connection)
        writer._read_maxima(connection)
        writer._connection = None
        return writer

    def catch_up(self, connection: Connection) -> int:
        """Integrate what other instances appended since this writer's size (checked like a
        resume). Call inside the write transaction, under `LEDGER_LOCK`."""
        self._connection = connection
        try:
            added = self.state.catch_up(connection, each_entry=self._learn)
            self._read_maxima(connection)
            return added
        finally:
            self._connection = None

    def _read_maxima(self, connection: Connection) -> None:
        """Read back the openings of the sealed maxima and reserves of lots not revealed yet (the
        entries read back named them only), to reveal them when their lot closes."""
        wanted = sorted(
            seq for lot in self.lots.values() for seq, found in lot.maxima.items() if found is None
        )
        rows: dict[int, dict[str, Any]] = {}
        for start in range(0, len(wanted), 500):
            chunk = wanted[start : start + 500]
            query = select(OPENINGS.c.seq, OPENINGS.c.openings).where(OPENINGS.c.seq.in_(chunk))
            for seq, text in connection.execute(query).all():
                rows[int(seq)] = json.loads(text)
        for lot in self.lots.values():
            for seq, found in list(lot.maxima.items()):
                if found is not None:
                    continue
                opened = {n: v for n, v in rows.get(seq, {}).items() if sealed.is_revealed_name(n)}
                if not opened:
                    raise LedgerCorrupt(f"ledger entry {seq}: its sealed maxima have no openings")
                lot.maxima[seq] = opened

    _connection: Connection | None = None  # while loading: where `_learn` reads openings

    def _learn(self, entry: ledger_store.StoredEntry) -> None:
        """The writer's bookkeeping of one stored entry (identities, lots, winning bids)."""
        try:
            value = json.loads(entry.data)
            kind, body = value["type"], value["body"]
            if kind == EntryType.HOUSE:
                self.book.house(body)
            elif kind == EntryType.KEY:
                self.book.key(body)
                self.keys.setdefault(body["vkey"], entry.seq)
            elif kind == EntryType.IDV:
                if "sealed" in body:  # the account is sealed: read its opening back
                    assert self._connection is not None
                    found = select_openings(self._connection, entry.seq, entry.seq + 1)
                    body = sealed.open_body(kind, body, found.get(entry.seq), sealed.LinkBook())
                self.book.idv(entry.seq, parse_time(value["t"]), body, value["actor"]["kid"])
            elif kind == EntryType.LOT:
                lot = _LotLedger(body["title"], body["rules"]["currency"])
                if sealed.reserve_names(body):
                    lot.maxima[entry.seq] = None  # its opening is read after the entries
                self.lots[body["lot"]] = lot
            elif kind == EntryType.REVEAL:
                lot = self.lots[body["lot"]]
                for seq in body["openings"]:
                    lot.maxima.pop(int(seq), None)
            elif kind in _COMMAND_ENTRY_TYPES:
                lot = self.lots[body["lot"]]
                for name in body.get("sealed", {}):
                    if name.startswith(sealed.LINK):
                        lot.linked.add(name[len(sealed.LINK) :])
                if sealed.max_names(body):
                    lot.maxima[entry.seq] = None  # its openings are read after the entries
                for item in body["events"]:
                    if item["type"] == "BidAccepted":
                        lot.last_bid_entry[item["bidder"]] = entry.seq
        except (ValueError, KeyError, TypeError, ChainError, SignedBidError) as exc:
            raise LedgerCorrupt(f"ledger entry {entry.seq} cannot be read back: {exc}") from exc
        except sealed.SealError as exc:
            raise LedgerCorrupt(f"ledger entry {entry.seq} cannot be read back: {exc}") from exc

    def start(self) -> _Pending:
        return _Pending(self.state.batch())

    def add_house(self, pending: _Pending, now: int, signed_bids: bool = False) -> None:
        body = house_body(self.house.origin, HOUSE_NAME, self.house.vkey, signed_bids)
        pending.batch.add(EntryType.HOUSE, body, now, self.house.entries)
        pending.book = self.book.copy()
        pending.book.house(body)

    def add_lot(
        self,
        pending: _Pending,
        lot_id: str,
        rules: LotRules,
        title: str,
        sale_id: str | None,
        created: int,
    ) -> None:
        body, openings = sealed.seal_lot_body(lot_body(lot_id, rules, title, sale_id, created))
        entry = pending.batch.add(EntryType.LOT, body, created, self.house.entries)
        lot = _LotLedger(title, rules.currency)
        if openings:  # a hidden reserve: sealed, and revealed with the maxima at the close
            pending.openings[entry.seq] = (EntryType.LOT.value, openings)
            lot.maxima[entry.seq] = dict(openings)
        pending.lots[lot_id] = lot

    def add_records(
        self, pending: _Pending, records: Sequence[HistoryRecord | LedgerRecord]
    ) -> list[int]:
        """One entry per record (ledger spec section 1: rejected commands too), and a `sale`
        entry right after a command whose events close its lot as SOLD. Returns each record's
        entry seq (a `key` record for a vkey already added: that earlier entry's seq).

        Checks the signed-bid rules first (`IdentityBook`, as every notary will): raises
        `LedgerEntryRefused` for a record that breaks them."""
        entries = self.house.entries
        seqs: list[int] = []
        for record in records:
            if isinstance(record, LedgerRecord):
                seqs.append(self._add_entry(pending, record))
                continue
            book = pending.book if pending.book is not None else self.book
            try:
                book.check(record.lot_id, record.command, record.request, record.ingress_us)
            except SignedBidError as exc:
                raise LedgerEntryRefused(exc.reason, f"lot {record.lot_id!r}: {exc}") from exc
            lot = self._lot(pending, record.lot_id)
            plain = command_body(
                record.lot_id,
                record.n,
                record.ingress_us,
                record.command,
                record.events,
                record.request,
                record.order,
            )
            body, openings = sealed.seal_command_body(plain, self.house.alias_key, lot.linked)
            kind = entry_type_for(record.command)
            entry = pending.batch.add(kind, body, record.ingress_us, entries)
            if openings:
                pending.openings[entry.seq] = (kind.value, openings)
                maxima = {n: v for n, v in openings.items() if sealed.is_max_name(n)}
                if maxima:
                    lot.maxima[entry.seq] = maxima
            seqs.append(entry.seq)
            closed: LotClosed | None = None
            ended = False
            for item in record.events:  # the same bookkeeping as `LedgerReplay`
                if isinstance(item, BidAccepted):
                    lot.last_bid_entry[self._public(record.lot_id, item.bidder)] = entry.seq
                elif isinstance(item, LotClosed):
                    closed, ended = item, True
                elif isinstance(item, LotCancelled):
                    ended = True
            if closed is not None and closed.result is Result.SOLD:
                confirmation = confirmation_document(
                    record.lot_id, lot.title, closed, lot.currency, entry.seq
                )
                winner = self._public(record.lot_id, closed.winner or "")
                winning_bid = lot.last_bid_entry.get(winner)
                body = sale_body(
                    record.lot_id, closed, lot.currency, entry.seq, winning_bid, confirmation
                )
                pending.batch.add(EntryType.SALE, body, record.ingress_us, entries)
            if ended and lot.maxima:  # the lot's maxima are public from now on
                self._add_reveal(pending, record.lot_id, lot, entry.seq, record.ingress_us)
        return seqs

    def _add_reveal(
        self, pending: _Pending, lot_id: str, lot: _LotLedger, close_entry: int, time_us: int
    ) -> None:
        """The `reveal` entries of a lot that closed at `close_entry`: the openings of every
        proxy maximum of the lot not revealed yet, and of its hidden reserve, for everyone
        (docs/ledger.md)."""
        maxima = {seq: found for seq, found in lot.maxima.items() if found is not None}
        if len(maxima) != len(lot.maxima):  # `_read_maxima` ran after every read-back
            raise LedgerCorrupt(f"lot {lot_id!r}: the openings of its maxima were not read back")
        for body in sealed.reveal_bodies(lot_id, close_entry, maxima):
            pending.batch.add(EntryType.REVEAL, body, time_us, self.house.entries)
        lot.maxima = {}

    def _public(self, lot_id: str, bidder: str) -> str:
        """How the ledger names `bidder` in lot `lot_id` (its alias; a floor bidder as is)."""
        if not bidder or bidder.startswith("floor:"):
            return bidder
        return sealed.alias(self.house.alias_key, lot_id, bidder)

    def _add_entry(self, pending: _Pending, record: LedgerRecord) -> int:
        body = record.body
        signer = self.house.entries if record.signer is None else self._signer(record.signer)
        if record.entry_type is EntryType.KEY:
            vkey = body.get("vkey")
            if not isinstance(vkey, str):
                raise LedgerEntryRefused("MALFORMED", "a key entry names its vkey")
            known = pending.keys.get(vkey, self.keys.get(vkey))
            if known is not None:
                return known  # idempotent: that key was added already
            try:
                parse_vkey(vkey)
            except ChainError as exc:
                raise LedgerEntryRefused("MALFORMED", f"not a vkey: {exc}") from exc
        if record.entry_type in (EntryType.KEY, EntryType.IDV):
            book = pending.book.copy() if pending.book is not None else self.book.copy()
            try:
                if record.entry_type is EntryType.KEY:
                    book.key(body)
                else:  # the actor must be an identity provider whose attestation verifies
                    time_us = max(record.time_us, pending.batch.last_time_us)
                    book.idv(pending.batch.size, time_us, body, signer.kid)
            except SignedBidError as exc:
                raise LedgerEntryRefused(exc.reason, exc.message) from exc
            pending.book = book
        openings: dict[str, Any] = {}
        public = dict(body)
        if record.entry_type is EntryType.IDV and "account" in public:
            public, openings = sealed.seal_idv_body(public)
        try:
            entry = pending.batch.add(record.entry_type, public, record.time_us, signer)
        except ChainError as exc:  # e.g. a float or a body over 16 KiB: refused, not written
            raise LedgerEntryRefused("MALFORMED", f"not a ledger entry body: {exc}") from exc
        if openings:
            pending.openings[entry.seq] = (record.entry_type.value, openings)
        if record.entry_type is EntryType.KEY:
            pending.keys[str(body["vkey"])] = entry.seq
        return entry.seq

    def _signer(self, signer: Ed25519Signer) -> ledger_store.EntrySigner:
        """The entry signer of an actor key, `actor.kid` = its vkey."""
        known = self._signers.get(signer.vkey)
        if known is None:
            seed = base64.b64decode(signer.signer_key.split("+", 4)[4], validate=True)[1:]
            known = self._signers[signer.vkey] = ledger_store.EntrySigner.from_seed(
                signer.vkey, seed
            )
        return known

    def _lot(self, pending: _Pending, lot_id: str) -> _LotLedger:
        lot = pending.lots.get(lot_id)
        if lot is None:
            base = self.lots.get(lot_id)
            if base is None:
                raise StorageConflict(f"history for lot {lot_id!r}, which the ledger never created")
            lot = pending.lots[lot_id] = base.copy()
        return lot

    def write(self, connection: Connection, pending: _Pending) -> None:
        ledger_store.append_entries(connection, pending.batch.entries, pending.batch.nodes)
        if pending.openings:  # the same transaction: an acknowledged entry keeps its openings
            connection.execute(
                insert(OPENINGS),
                [
                    {"seq": seq, "kind": kind, "openings": json.dumps(value, sort_keys=True)}
                    for seq, (kind, value) in sorted(pending.openings.items())
                ],
            )

    def commit(self, pending: _Pending) -> None:
        """Take over what `pending` sequenced, once its transaction committed."""
        self.state.advance(pending.batch)
        self.lots.update(pending.lots)
        if pending.book is not None:
            self.book = pending.book
        self.keys.update(pending.keys)
