"""Lot histories: the group commit (the hot path) and reading lots back by replay."""

from __future__ import annotations

import contextlib
import itertools
import logging
from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, insert, select
from sqlalchemy.engine import Connection

from chain import store as ledger_store

from ..rules import BidderRegistered, DepositChanged, LotState, RulesError, encode
from .base import _StoreCore
from .errors import CorruptHistory, StorageError, StorageUnavailable, _translated
from .house import _house_entry
from .records import Counts, HistoryRecord, LedgerHead, LedgerRecord, StoredLot
from .replay import _decode_value, _replay_lot
from .schema import _DEPOSITS, _HISTORY, _LOTS, _REGISTRATIONS, _SALES
from .writer import _LedgerWriter, _Pending

logger = logging.getLogger(__name__)


class _History(_StoreCore):
    """Lot histories: the group commit that stores commands with their ledger entries, and
    reading them back (every lot rebuilt by replay, a lot's rows, counts)."""

    def append(self, records: Sequence[HistoryRecord | LedgerRecord]) -> list[int]:
        """Durably store a batch of history rows in one transaction (group commit), with the
        registration and deposit projections of their events and their ledger entries: one
        per row (type `entry_type_for(command)`, body `command_body(...)`, signed by the house
        key), plus a `sale` entry right after a row whose events close its lot as SOLD.
        A `LedgerRecord` is one entry of its own (no history row). Returns the entry seq of
        each record, in order.

        When this returns, every row and entry is committed (SQLite `synchronous=FULL`,
        PostgreSQL's default `synchronous_commit`): only then may the caller acknowledge the
        commands. On `StorageError` nothing of the batch was written and the caller must not
        advance its lots (`LedgerEntryRefused`: a record breaks the signed-bid rules).
        """
        if not records:
            return []
        rows: list[dict[str, Any]] = []
        bidders: dict[str, int] = {}
        registrations: list[dict[str, Any]] = []
        deposits: dict[tuple[str, str], dict[str, Any]] = {}
        try:
            for record in records:
                if isinstance(record, LedgerRecord):
                    continue
                rows.append(
                    {
                        "lot_id": record.lot_id,
                        "n": record.n,
                        "ingress_us": record.ingress_us,
                        "command": encode(record.command),
                        "events": encode(record.events),
                        "accepted": record.accepted,
                    }
                )
                for item in record.events:
                    if isinstance(item, BidderRegistered):
                        bidders.setdefault(item.bidder, item.t)
                        registrations.append(
                            {
                                "lot_id": record.lot_id,
                                "bidder_id": item.bidder,
                                "code": item.code,
                                "priority_rank": item.priority_rank,
                                "registered_at": item.t,
                            }
                        )
                    elif isinstance(item, DepositChanged):
                        deposits[(record.lot_id, item.bidder)] = {
                            "lot_id": record.lot_id,
                            "bidder_id": item.bidder,
                            "state": item.state.value,
                            "amount": item.amount,
                            "reference": item.reference,
                            "updated_at": item.t,
                        }
        except RulesError as exc:
            raise StorageError(f"cannot encode a history record: {exc}") from exc
        lots = frozenset(row["lot_id"] for row in rows)
        pending: _Pending | None = None
        with self._ledger_lock:
            writer = self._ledger_writer()
            try:
                with self._ledger_transaction("appending history") as connection:
                    self._sequence(connection, writer)
                    if lots and self.fence is not None:
                        self.fence(connection, lots)
                    pending = writer.start()
                    with _translated("writing ledger entries"):
                        seqs = writer.add_records(pending, records)
                    if rows:
                        self._insert_history(connection, rows, bidders, registrations, deposits)
                    writer.write(connection, pending)
            except StorageUnavailable:
                # The connection failed: before, during or after the commit. If the batch is
                # stored anyway (the commit's answer was lost), it is durable and must be
                # reported so: failing it would make the caller redo commands that are stored
                # (a lot's next row `n` would then conflict for good).
                if pending is None or not self._stored_anyway(pending.batch.entries):
                    raise
                logger.warning(
                    "the database connection failed after a commit of %d entries, which are "
                    "stored: acknowledged",
                    len(pending.batch.entries),
                )
                self._appended(pending)
                return seqs  # the writer resumes from the database on its next use
            assert pending is not None
            writer.commit(pending)
        self._appended(pending)
        return seqs

    def _insert_history(
        self,
        connection: Connection,
        rows: list[dict[str, Any]],
        bidders: dict[str, int],
        registrations: list[dict[str, Any]],
        deposits: dict[tuple[str, str], dict[str, Any]],
    ) -> None:
        connection.execute(insert(_HISTORY), rows)
        if bidders:
            self._upsert_bidders(connection, bidders)
        if registrations:
            statement = self._insert(_REGISTRATIONS).on_conflict_do_nothing()
            connection.execute(statement, registrations)
        if deposits:
            upsert = self._insert(_DEPOSITS)
            upsert = upsert.on_conflict_do_update(
                index_elements=["lot_id", "bidder_id"],
                set_={
                    name: upsert.excluded[name]
                    for name in ("state", "amount", "reference", "updated_at")
                },
            )
            connection.execute(upsert, list(deposits.values()))

    def load(self) -> list[StoredLot]:
        """Every lot, rebuilt by replaying its stored commands through the engine, in the order
        the lots were created.

        Fails closed: raises `CorruptHistory` for an unreadable row or a gap in `n`, and
        `HistoryDiverged` when the engine derives other events than the stored ones. The
        caller serves the returned states and continues each lot's numbering at `commands`.
        A writable store also resumes its ledger here, re-hashing and checking all of it
        (`LedgerCorrupt`), so that the first command after a restart does not wait for that.

        Everything is read in one snapshot (`_snapshot`), so other instances may append
        meanwhile; `loaded_size` is then the ledger size the returned lots correspond to (a
        follower applies the entries from there on).
        """
        with _translated("loading lots"), self._snapshot() as connection:
            if self._house is not None:
                with self._ledger_lock, _translated("resuming the ledger"):
                    if self._writer is None:
                        self._writer = _LedgerWriter.load(connection, self._house, self.signatures)
            highest = connection.execute(select(func.max(ledger_store.ENTRIES.c.seq))).scalar()
            self.loaded_size = 0 if highest is None else int(highest) + 1
            catalogue = connection.execute(
                select(_LOTS, _SALES.c.title.label("sale_title"))
                .select_from(_LOTS.outerjoin(_SALES, _LOTS.c.sale_id == _SALES.c.sale_id))
                .order_by(_LOTS.c.created_at, _LOTS.c.lot_id)
            ).all()
            lots = {row.lot_id: row for row in catalogue}
            replayed: dict[str, StoredLot] = {}
            history = connection.execution_options(yield_per=2000).execute(
                select(_HISTORY).order_by(_HISTORY.c.lot_id, _HISTORY.c.n)
            )
            with contextlib.closing(history):  # a server-side cursor, even when replay fails
                for lot_id, group in itertools.groupby(history, key=lambda row: row.lot_id):
                    rows = list(group)
                    lot = lots.get(lot_id)
                    if lot is None:
                        detail = "history of a lot that is not stored"
                        raise CorruptHistory(lot_id, rows[0].n, detail)
                    replayed[lot_id] = _replay_lot(lot, rows)
            return [replayed.get(row.lot_id) or _replay_lot(row, ()) for row in catalogue]

    def load_lot(self, lot_id: str) -> StoredLot | None:
        """One lot rebuilt by replaying its stored commands (the checks of `load`); None if
        there is no such lot. A server instance taking a lot over starts from this."""
        with _translated(f"loading lot {lot_id!r}"), self._engine.connect() as connection:
            row = connection.execute(
                select(_LOTS, _SALES.c.title.label("sale_title"))
                .select_from(_LOTS.outerjoin(_SALES, _LOTS.c.sale_id == _SALES.c.sale_id))
                .where(_LOTS.c.lot_id == lot_id)
            ).first()
            if row is None:
                return None
            history = connection.execute(
                select(_HISTORY).where(_HISTORY.c.lot_id == lot_id).order_by(_HISTORY.c.n)
            )
            return _replay_lot(row, history.all())

    def lot_commands(self, lot_id: str) -> int:
        """How many commands of `lot_id` are stored (its next history row's `n`)."""
        with _translated(f"counting the commands of lot {lot_id!r}"), self._engine.connect() as c:
            highest = c.execute(
                select(func.max(_HISTORY.c.n)).where(_HISTORY.c.lot_id == lot_id)
            ).scalar()
        return 0 if highest is None else int(highest) + 1

    def load_lots(self) -> dict[str, LotState]:
        """Every lot's state after replaying its history (see `load` for the checks)."""
        return {lot.lot_id: lot.state for lot in self.load()}

    def history(self, lot_id: str) -> list[HistoryRecord]:
        """A lot's stored commands and events, decoded, in order of `n` (empty if unknown)."""
        with _translated(f"reading history of {lot_id!r}"), self._engine.connect() as connection:
            rows = connection.execute(
                select(_HISTORY).where(_HISTORY.c.lot_id == lot_id).order_by(_HISTORY.c.n)
            ).all()
        out = []
        for row in rows:
            command = _decode_value(lot_id, row.n, row.command)
            events = tuple(_decode_value(lot_id, row.n, item) for item in row.events)
            out.append(HistoryRecord(lot_id, row.n, row.ingress_us, command, events, row.accepted))
        return out

    def counts(self) -> Counts:
        """How many sales, lots, history rows and events are stored."""
        with _translated("counting"), self._engine.connect() as connection:
            ledger_entries = ledger_store.stored_size(connection)
            latest = ledger_store.latest_checkpoint(connection)
            origin = _house_entry(connection)[0] if ledger_entries else None
            sales = connection.execute(select(func.count()).select_from(_SALES)).scalar()
            lots = connection.execute(select(func.count()).select_from(_LOTS)).scalar()
            commands = 0
            events = 0
            result = connection.execution_options(yield_per=2000).execute(select(_HISTORY.c.events))
            with contextlib.closing(result):
                for (stored,) in result:
                    commands += 1
                    events += len(stored)
        checkpoint = None if latest is None else LedgerHead(latest.size, latest.root, latest.note)
        return Counts(
            sales=sales or 0,
            lots=lots or 0,
            commands=commands,
            events=events,
            ledger_entries=ledger_entries,
            origin=origin,
            checkpoint=checkpoint,
        )
