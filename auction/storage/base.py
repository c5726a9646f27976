"""The core every part of `Storage` shares (engine, clock, ledger writer and its
transactions).
"""

from __future__ import annotations

import collections
import contextlib
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine

from chain import ChainError, Tile
from chain import store as ledger_store

from ..ledger import SignatureMemo
from .database import LEDGER_LOCK
from .errors import LedgerEntryRefused, LotFenced, StorageError, _translated
from .house import House
from .schema import _BIDDERS
from .writer import _LedgerWriter, _Pending

Clock = Callable[[], int]


def system_clock() -> int:
    """Server UTC time in integer microseconds."""
    return time.time_ns() // 1000


class _StoreCore:
    """What every part of the store shares: the engine and clock, the ledger writer behind
    its lock, the transactions that write the ledger, and the hooks of a cluster."""

    def __init__(self, engine: Engine, *, clock: Clock = system_clock) -> None:
        """Use `Storage.open`; this constructor takes an engine whose schema is already current
        (and leaves the ledger read-only: no house key)."""
        self._engine = engine
        self._clock = clock
        self._dialect = engine.dialect.name
        self._house: House | None = None
        self._ledger_lock = threading.Lock()  # one ledger writer at a time
        self._writer: _LedgerWriter | None = None  # resumed on the first write
        self._policy: bytes | None = None
        self._directory: Path | None = None  # a data directory: DIR/policy lives there
        # Tiles never change (a partial one of a given width neither): LRU caches of them.
        self._tiles: collections.OrderedDict[Tile, ledger_store.ExpandedTile] = (
            collections.OrderedDict()
        )
        self._partial_tiles: collections.OrderedDict[Tile, ledger_store.ExpandedTile] = (
            collections.OrderedDict()
        )
        self._tiles_lock = threading.Lock()
        self._aliases: dict[str, str] = {}  # alias -> account, from link openings
        self._openings_table: bool | None = None  # whether `ledger_openings` exists
        self._links_loaded = False  # whether every stored link was read into `_aliases`
        #: The first key of this database schema's advisory locks (PostgreSQL; set on open).
        self.advisory_namespace = 0
        #: Bid signatures verified in this process (the writer's identity book and its copies
        #: share it; the gateway may too).
        self.signatures = SignatureMemo()
        #: Checks, inside each write transaction of lot history, that this server still owns
        #: those lots (`auction.cluster`: fencing tokens); raises `LotFenced`. None: one server.
        self.fence: Callable[[Connection, frozenset[str]], None] | None = None
        #: Called (on the writing thread) after each commit with the first seq and the bytes
        #: of the entries it stored: `auction.cluster` publishes them to the other instances.
        self.on_entries: Callable[[int, list[bytes]], None] | None = None
        #: The ledger size as of the snapshot `load` read the lots from (0 before it ran).
        self.loaded_size = 0

    @property
    def house(self) -> House | None:
        """The house key (None when opened read-only)."""
        return self._house

    def _appended(self, pending: _Pending) -> None:
        entries = pending.batch.entries
        if entries and self.on_entries is not None:
            self.on_entries(entries[0].seq, [entry.data for entry in entries])

    def _sequence(self, connection: Connection, writer: _LedgerWriter) -> None:
        """PostgreSQL: take the ledger's turn (`LEDGER_LOCK`, held to the commit) and integrate
        what other instances appended meanwhile, so that this batch is sequenced on the stored
        tip. SQLite's write transaction is exclusive already and has one server."""
        if self._dialect != "postgresql":
            return
        self.xact_lock(connection, LEDGER_LOCK)
        writer.catch_up(connection)

    def xact_lock(self, connection: Connection, key: int) -> None:
        """PostgreSQL: take the transaction advisory lock `(advisory_namespace, key)`."""
        connection.exec_driver_sql(
            "SELECT pg_advisory_xact_lock(%s, %s)", (self.advisory_namespace, key)
        )

    def _stored_anyway(self, entries: Sequence[ledger_store.StoredEntry]) -> bool:
        """Whether the last of `entries` is stored with exactly these bytes (then the whole
        transaction is: it wrote them all or none). False when that cannot be read now."""
        if not entries:
            return False
        last = entries[-1]
        try:
            with self._engine.connect() as connection:
                stored = ledger_store.read_entries(connection, last.seq, last.seq + 1)
        except (ChainError, sa_exc.SQLAlchemyError):
            return False
        return stored[0].data == last.data

    def _ledger_writer(self) -> _LedgerWriter:
        """The sequencer, resumed from the database on first use. Hold `_ledger_lock`."""
        if self._house is None:
            raise StorageError("this store was opened read-only: the ledger cannot be written")
        if self._writer is None:
            with _translated("resuming the ledger"), self._snapshot() as connection:
                self._writer = _LedgerWriter.load(connection, self._house, self.signatures)
        return self._writer

    @contextlib.contextmanager
    def _snapshot(self) -> Iterator[Connection]:
        """A read-only transaction that sees the database as of one moment (PostgreSQL:
        `REPEATABLE READ`, one snapshot for every statement; SQLite: one read transaction).
        Other instances commit ledger entries, their tile hashes and the history rows in one
        transaction each, in seq order, so a snapshot holds a whole prefix of the ledger and
        the history that goes with it: reading the ledger while they append finds exactly
        what was committed at that moment, never half of a later batch."""
        options: dict[str, Any] = {}
        if self._dialect == "postgresql":
            options = {"isolation_level": "REPEATABLE READ", "postgresql_readonly": True}
        with self._engine.connect().execution_options(**options) as connection:
            with connection.begin():
                yield connection

    @contextlib.contextmanager
    def _ledger_transaction(self, what: str) -> Iterator[Connection]:
        """A write transaction of the ledger writer (hold `_ledger_lock`). If it fails, the
        writer is dropped and resumed from the database next time: whatever happened to the
        transaction, the sequencer never runs ahead of or behind what is stored."""
        try:
            with _translated(what), self._engine.begin() as connection:
                yield connection
        except (LedgerEntryRefused, LotFenced):
            raise  # refused before anything was written: the writer is still right
        except BaseException:
            self._writer = None
            raise

    def engine(self) -> Engine:
        """The SQLAlchemy engine (the cluster's bookkeeping shares the database)."""
        return self._engine

    def _now(self, value: int | None) -> int:
        return self._clock() if value is None else value

    def _insert(self, table: Any) -> Any:
        """A dialect insert that knows `ON CONFLICT` (SQLite and PostgreSQL spell it alike)."""
        if self._dialect == "postgresql":
            return postgresql.insert(table)
        return sqlite.insert(table)

    def _upsert_bidders(self, connection: Connection, bidders: Mapping[str, int]) -> None:
        rows = [{"bidder_id": b, "created_at": t} for b, t in sorted(bidders.items())]
        connection.execute(self._insert(_BIDDERS).on_conflict_do_nothing(), rows)
