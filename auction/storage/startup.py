"""Opening a store: schema migrations, the house key and entry 0, the policy."""

from __future__ import annotations

import heapq
import zlib
from pathlib import Path

from sqlalchemy import func, insert, select
from sqlalchemy.engine import Connection

from chain import ChainError, parse_policy
from chain import store as ledger_store

from ..verify import IdentityBook
from .base import _StoreCore
from .database import _HOUSE_LOCK, _MIGRATION_LOCK
from .errors import LedgerCorrupt, SchemaError, StorageError, _translated
from .house import House, _check_house_entry
from .keyfiles import (
    HOUSE_KEY_PENDING,
    POLICY_FILE,
    _install_house_key,
    _key_location,
    _policy_file,
    _read_house_key,
    _remove,
    _write_house_key,
    _write_if_changed,
)
from .records import HistoryRecord
from .replay import _decode_rules, _decode_value
from .schema import _HISTORY, _LOTS, _SCHEMA_VERSION, MIGRATIONS, SCHEMA_VERSION, _Table
from .writer import _LedgerWriter, _Pending


class _Startup(_StoreCore):
    """Opening a database: the schema created or migrated, the house key made or loaded,
    entry 0 and the entries of older data written, the trust policy chosen."""

    def _migrate(self) -> None:
        with _translated("opening the database"), self._engine.begin() as connection:
            if self._dialect == "postgresql":  # two servers starting at once migrate in turn
                where = connection.exec_driver_sql(
                    "SELECT current_database() || '/' || current_schema()"
                ).scalar()
                self.advisory_namespace = zlib.crc32(str(where).encode()) & 0x7FFF_FFFF
                self.xact_lock(connection, _MIGRATION_LOCK)
            _Table.metadata.tables["schema_version"].create(connection, checkfirst=True)
            current = connection.execute(select(func.max(_SCHEMA_VERSION.c.version))).scalar()
            current = current or 0
            if current > SCHEMA_VERSION:
                raise SchemaError(
                    f"the database has schema version {current}; this code knows only up to "
                    f"{SCHEMA_VERSION}: upgrade gavel"
                )
            for version in range(current + 1, SCHEMA_VERSION + 1):
                MIGRATIONS[version - 1](connection)
                connection.execute(
                    insert(_SCHEMA_VERSION).values(version=version, applied_at=self._clock())
                )

    def _check_schema(self) -> None:
        version = self.schema_version()
        if version != SCHEMA_VERSION:
            raise SchemaError(
                f"the database has schema version {version}, this code writes {SCHEMA_VERSION}:"
                " open it once with a writable gavel to migrate it"
            )

    def _open_house(self, directory: Path | None, signed_bids: bool = False) -> None:
        """Load or create the house key; write entry 0 (and the entries of older data) if the
        ledger is empty, else check that entry 0 names this key."""
        now = self._clock()
        with self._ledger_lock, _translated("opening the ledger"), self._engine.begin() as conn:
            if self._dialect == "postgresql":  # two servers starting at once: one makes the key
                self.xact_lock(conn, _HOUSE_LOCK)
            size = ledger_store.stored_size(conn)
            text, key_pending = _read_house_key(conn, directory)
            if text is not None and key_pending and not size:
                assert directory is not None  # a first start that stopped before entry 0
                _remove(directory / HOUSE_KEY_PENDING)
                text = None
            if text is None and size:
                raise LedgerCorrupt(
                    "the ledger has entries but its house key is missing "
                    f"({_key_location(directory)}): restore the key"
                )
            if text is not None and not size:
                raise LedgerCorrupt(
                    f"a house key exists ({_key_location(directory)}) but the ledger is empty: "
                    "that key may have signed another ledger; move it away to start a new one"
                )
            writer: _LedgerWriter | None = None
            if text is None:
                house = House.generate()
                key_pending = _write_house_key(conn, directory, house, now)
                signed = ledger_store.read_signed(conn)
                writer = _LedgerWriter(
                    house,
                    ledger_store.LedgerState(),
                    {},
                    signed,
                    IdentityBook(memo=self.signatures),
                )
                pending = writer.start()
                writer.add_house(pending, now, signed_bids)
                self._add_older_data(conn, writer, pending)
                writer.write(conn, pending)
            else:
                house = House.from_signer_key(text)
                _check_house_entry(conn, house)
        if key_pending:  # entry 0 is committed: the key becomes house.key
            assert directory is not None
            _install_house_key(directory)
        if writer is not None:
            writer.commit(pending)
            self._writer = writer
        self._house = house
        kept = _policy_file(directory, house.signer.verifier)
        self._policy = kept if kept is not None else house.policy()
        if directory is not None and kept is None:
            _write_if_changed(directory / POLICY_FILE, self._policy)

    def use_policy(self, policy: bytes) -> None:
        """Trust `policy` (a tlog-policy naming this log's key, e.g. with notaries and a
        quorum) from now on: served at `/log/policy`, exported, and written to `DIR/policy`
        for a data directory. Raises `StorageError` if it does not parse or does not trust
        this log's key."""
        house = self._house
        if house is None:
            raise StorageError("a read-only store cannot change its policy")
        try:
            parsed = parse_policy(policy)
        except ChainError as exc:
            raise StorageError(f"the policy does not parse: {exc}") from exc
        if not any(log.verifier.vkey == house.vkey for log in parsed.logs):
            raise StorageError("the policy does not name this log's key")
        if self._directory is not None:
            _write_if_changed(self._directory / POLICY_FILE, policy)
        self._policy = policy

    def _add_older_data(
        self, connection: Connection, writer: _LedgerWriter, pending: _Pending
    ) -> None:
        """Write the lots and history stored before the ledger existed (schema version 1) as
        entries: lots in creation order, then the commands of all lots merged by ingress time,
        each lot's in the order of `n`."""
        lots = connection.execute(select(_LOTS).order_by(_LOTS.c.created_at, _LOTS.c.lot_id))
        histories: dict[str, list[HistoryRecord]] = {}
        for row in lots:
            writer.add_lot(
                pending, row.lot_id, _decode_rules(row), row.title, row.sale_id, row.created_at
            )
            histories[row.lot_id] = []
        for row in connection.execute(select(_HISTORY).order_by(_HISTORY.c.lot_id, _HISTORY.c.n)):
            command = _decode_value(row.lot_id, row.n, row.command)
            events = tuple(_decode_value(row.lot_id, row.n, item) for item in row.events)
            histories[row.lot_id].append(
                HistoryRecord(row.lot_id, row.n, row.ingress_us, command, events, row.accepted)
            )
        merged = heapq.merge(*histories.values(), key=lambda record: record.ingress_us)
        writer.add_records(pending, list(merged))

    def schema_version(self) -> int:
        """The schema version stored in the database."""
        with _translated("reading the schema version"), self._engine.connect() as connection:
            version = connection.execute(select(func.max(_SCHEMA_VERSION.c.version))).scalar()
        return int(version or 0)
