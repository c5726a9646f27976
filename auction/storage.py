"""Durable storage of sales, lots and every command applied to a lot (an adapter, STYLE rule 1).

The event history is the source of truth: one row per command applied to a lot, numbered per lot
(`n` = 0, 1, 2, ...), holding the server ingress time, the command and the events the engine
returned, accepted or rejected (rules C16: every command is evidence). Registrations and
deposits are projections of those events, written in the same transaction. A restart rebuilds
every lot by replaying its commands through the engine and fails closed if the re-derived events
differ from the stored ones (`HistoryDiverged`).

SQLite in a data directory by default (`DIR/gavel.db`, WAL, `synchronous=FULL`), PostgreSQL
(psycopg 3) when given a `postgresql://` URL. The hot path (`Storage.append`) is a group commit:
many history rows in one transaction through SQLAlchemy Core, never ORM objects one by one.

`Storage` is synchronous and blocking. An asyncio caller runs it on one thread of its own (see
`auction.service`), never on the event loop.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import JSON, BigInteger, UniqueConstraint, event, func, insert, select
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.orm import registry
from sqlmodel import Field, SQLModel, create_engine

from .rules import (
    BidAccepted,
    BidderRegistered,
    DepositChanged,
    LotRules,
    LotState,
    Rejected,
    RulesError,
    apply,
    decode,
    encode,
)

#: The schema this code writes. `MIGRATIONS[v - 1]` moves a database from version v - 1 to v.
SCHEMA_VERSION = 1

#: PostgreSQL advisory lock key held while migrating (any constant unique to this schema).
_MIGRATION_LOCK = 0x6761_7665_6C00

#: File name of the SQLite database inside a data directory.
SQLITE_FILE = "gavel.db"

#: How long a SQLite writer waits for a lock held by another connection, in milliseconds.
SQLITE_BUSY_TIMEOUT_MS = 10_000

Clock = Callable[[], int]


def system_clock() -> int:
    """Server UTC time in integer microseconds."""
    return time.time_ns() // 1000


# --- errors (STYLE rule 5) -------------------------------------------------------------------


class StorageError(Exception):
    """Base of every exception raised by `auction.storage`; foreign database errors are
    translated into a subclass at the boundary and chained (`raise ... from exc`)."""


class StorageUnavailable(StorageError):
    """The database cannot be opened or reached (bad path, server down, lock timeout).

    The caller may retry later; nothing was written by the failed call.
    """


class StorageConflict(StorageError):
    """A write broke a uniqueness or reference rule (a lot id used twice, a history row `n`
    already stored, a lot in an unknown sale). Nothing was written by the failed call."""


class SchemaError(StorageError):
    """The database's schema is newer than this code, or a migration failed."""


class CorruptHistory(StorageError):
    """A stored row cannot be read back (undecodable JSON, a gap in a lot's `n`).

    The lot must not be served; an operator must compare the data with its ledger.
    """

    def __init__(self, lot_id: str, n: int | None, detail: str) -> None:
        where = f"lot {lot_id!r}" if n is None else f"lot {lot_id!r} row {n}"
        super().__init__(f"{where}: {detail}")
        self.lot_id = lot_id
        self.n = n
        self.detail = detail


class HistoryDiverged(CorruptHistory):
    """Replaying a lot's stored commands through the engine gives other events than stored.

    Either the stored data was altered or the engine changed its rules: the highest-severity
    bug (rules: "server, notary and auditor must never disagree"). `expected` holds the events
    the engine derives now, `stored` the ones on disk, both as JSON-ready values.
    """

    def __init__(self, lot_id: str, n: int, expected: Any, stored: Any) -> None:
        super().__init__(lot_id, n, "replayed events differ from the stored events")
        self.expected = expected
        self.stored = stored


@contextlib.contextmanager
def _translated(what: str) -> Iterator[None]:
    """Translate SQLAlchemy and driver errors into `StorageError`s, once, at the boundary."""
    try:
        yield
    except StorageError:
        raise
    except sa_exc.IntegrityError as exc:
        raise StorageConflict(f"{what}: {_first_line(exc.orig)}") from exc
    except (sa_exc.OperationalError, sa_exc.InterfaceError) as exc:
        raise StorageUnavailable(f"{what}: {_first_line(exc.orig)}") from exc
    except sa_exc.SQLAlchemyError as exc:
        raise StorageError(f"{what}: {_first_line(exc)}") from exc


def _first_line(error: object) -> str:
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__


# --- values in and out (STYLE rule 3) --------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HistoryRecord:
    """One command applied to a lot, with what the engine answered.

    `n` is the lot's command index (0, 1, ...), `ingress_us` the server time stamped when the
    command was received (the `now` the engine was given); `events` is the engine's whole answer,
    a single `Rejected` when `accepted` is false.
    """

    lot_id: str
    n: int
    ingress_us: int
    command: Any
    events: tuple[Any, ...]
    accepted: bool

    @classmethod
    def of(
        cls, lot_id: str, n: int, ingress_us: int, command: Any, events: tuple[Any, ...]
    ) -> HistoryRecord:
        """Build the record of one `apply(...)`; `accepted` is derived from the events."""
        rejected = len(events) == 1 and isinstance(events[0], Rejected)
        return cls(lot_id, n, ingress_us, command, tuple(events), not rejected)


@dataclass(frozen=True, slots=True)
class StoredLot:
    """A lot as rebuilt from storage: its catalogue entry and its state after replay.

    `commands` is the number of history rows (the next `n`), `bids` the number of accepted bids
    (`BidAccepted` events) in its history.
    """

    lot_id: str
    sale_id: str | None
    sale_title: str | None
    title: str
    rules: LotRules
    created_at: int
    state: LotState
    commands: int
    bids: int


@dataclass(frozen=True, slots=True)
class Registration:
    """Projection of `BidderRegistered`: who holds which code on a lot (sealed data, C2.4)."""

    lot_id: str
    bidder_id: str
    code: str
    priority_rank: int | None
    registered_at: int


@dataclass(frozen=True, slots=True)
class Deposit:
    """Projection of the latest `DepositChanged` of a bidder on a lot (rules C3)."""

    lot_id: str
    bidder_id: str
    state: str
    amount: int
    reference: str
    updated_at: int


@dataclass(frozen=True, slots=True)
class Counts:
    """How much is stored: lots, history rows (commands) and the events inside them."""

    sales: int
    lots: int
    commands: int
    events: int


# --- schema ----------------------------------------------------------------------------------


class _Table(SQLModel, registry=registry()):
    """Our own declarative registry, so that our tables never land in `SQLModel.metadata`."""


class SchemaVersionRow(_Table, table=True):
    __tablename__ = "schema_version"

    version: int = Field(primary_key=True)
    applied_at: int = Field(sa_type=BigInteger)


class SaleRow(_Table, table=True):
    __tablename__ = "sales"

    sale_id: str = Field(primary_key=True, max_length=128)
    title: str
    created_at: int = Field(sa_type=BigInteger)


class LotRow(_Table, table=True):
    __tablename__ = "lots"

    lot_id: str = Field(primary_key=True, max_length=128)
    sale_id: str | None = Field(default=None, foreign_key="sales.sale_id", index=True)
    title: str
    rules: dict[str, Any] = Field(sa_type=JSON)
    created_at: int = Field(sa_type=BigInteger)


class BidderRow(_Table, table=True):
    """A bidder's internal id only: identities live with the KYC provider, never here."""

    __tablename__ = "bidders"

    bidder_id: str = Field(primary_key=True, max_length=128)
    created_at: int = Field(sa_type=BigInteger)


class RegistrationRow(_Table, table=True):
    __tablename__ = "registrations"
    __table_args__ = (UniqueConstraint("lot_id", "code"),)

    lot_id: str = Field(primary_key=True, foreign_key="lots.lot_id")
    bidder_id: str = Field(primary_key=True, foreign_key="bidders.bidder_id")
    code: str
    priority_rank: int | None = None
    registered_at: int = Field(sa_type=BigInteger)


class DepositRow(_Table, table=True):
    __tablename__ = "deposits"

    lot_id: str = Field(primary_key=True, foreign_key="lots.lot_id")
    bidder_id: str = Field(primary_key=True, foreign_key="bidders.bidder_id")
    state: str
    amount: int = Field(sa_type=BigInteger)
    reference: str
    updated_at: int = Field(sa_type=BigInteger)


class HistoryRow(_Table, table=True):
    """One command applied to a lot: the evidence the ledger and a replay are built from."""

    __tablename__ = "history"

    lot_id: str = Field(primary_key=True, foreign_key="lots.lot_id")
    n: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    ingress_us: int = Field(sa_type=BigInteger)
    command: dict[str, Any] = Field(sa_type=JSON)
    events: list[Any] = Field(sa_type=JSON)
    accepted: bool


_SCHEMA_VERSION = SchemaVersionRow.__table__  # type: ignore[attr-defined]
_SALES = SaleRow.__table__  # type: ignore[attr-defined]
_LOTS = LotRow.__table__  # type: ignore[attr-defined]
_BIDDERS = BidderRow.__table__  # type: ignore[attr-defined]
_REGISTRATIONS = RegistrationRow.__table__  # type: ignore[attr-defined]
_DEPOSITS = DepositRow.__table__  # type: ignore[attr-defined]
_HISTORY = HistoryRow.__table__  # type: ignore[attr-defined]


def _migrate_to_1(connection: Connection) -> None:
    """Version 1: every table of the first release."""
    _Table.metadata.create_all(connection)


#: Forward migrations, in order: entry v - 1 brings a database from version v - 1 to v.
#: Add a function for each schema change and raise `SCHEMA_VERSION`; never edit a released one.
MIGRATIONS: tuple[Callable[[Connection], None], ...] = (_migrate_to_1,)

assert len(MIGRATIONS) == SCHEMA_VERSION


# --- the store -------------------------------------------------------------------------------


def database_url(target: str | os.PathLike[str]) -> str:
    """The SQLAlchemy URL for a data directory, a `sqlite:///` URL or a `postgresql://` URL.

    A directory (created if missing) gives `DIR/gavel.db`; `postgresql://` and `postgres://`
    become `postgresql+psycopg://` (psycopg 3).
    """
    text = os.fspath(target)
    for prefix in ("postgresql://", "postgres://"):
        if text.startswith(prefix):
            return "postgresql+psycopg://" + text[len(prefix) :]
    if text.startswith(("postgresql+", "sqlite:")):
        return text
    if "://" in text:
        raise StorageUnavailable(f"unsupported database URL scheme: {text.split('://')[0]!r}")
    directory = Path(text)
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StorageUnavailable(f"cannot create data directory {directory}: {exc}") from exc
    return f"sqlite:///{directory.resolve() / SQLITE_FILE}"


class Storage:
    """Sales, lots and lot histories in SQLite or PostgreSQL.

    Open with `Storage.open(target)`, which creates or migrates the schema; call `close()`
    (or use it as a context manager) when done. Every method is blocking and translates database
    failures into `StorageError`s. One writer at a time: the caller serializes `append` calls
    (the service runs them on a single thread).
    """

    def __init__(self, engine: Engine, *, clock: Clock = system_clock) -> None:
        """Use `Storage.open`; this constructor takes an engine whose schema is already current."""
        self._engine = engine
        self._clock = clock
        self._dialect = engine.dialect.name

    @classmethod
    def open(cls, target: str | os.PathLike[str], *, clock: Clock = system_clock) -> Storage:
        """Open (and create or migrate) the database at `target`: a data directory, a
        `sqlite:///...` URL or a `postgresql://...` URL. The caller must `close()` it."""
        url = database_url(target)
        try:
            parsed = make_url(url)
        except sa_exc.ArgumentError as exc:
            raise StorageUnavailable(f"not a database URL: {exc}") from exc
        if parsed.get_backend_name() == "sqlite":
            engine = create_engine(
                parsed,
                connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1e3},
            )
            event.listen(engine, "connect", _configure_sqlite)
            event.listen(engine, "begin", _begin_sqlite)
        elif parsed.get_backend_name() == "postgresql":
            engine = create_engine(parsed, pool_pre_ping=True)
        else:
            raise StorageUnavailable(f"unsupported database: {parsed.get_backend_name()}")
        store = cls(engine, clock=clock)
        try:
            store._migrate()
        except BaseException:
            engine.dispose()
            raise
        return store

    def close(self) -> None:
        """Close every pooled connection. The store must not be used afterwards."""
        self._engine.dispose()

    def __enter__(self) -> Storage:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Storage({self.location!r})"

    @property
    def location(self) -> str:
        """Where the data is, without any password: a file path or a database URL."""
        url = self._engine.url
        if url.get_backend_name() == "sqlite":
            return url.database or ":memory:"
        return url.render_as_string(hide_password=True)

    # -- schema --

    def _migrate(self) -> None:
        with _translated("opening the database"), self._engine.begin() as connection:
            if self._dialect == "postgresql":  # two servers starting at once migrate in turn
                connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_MIGRATION_LOCK})")
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

    def schema_version(self) -> int:
        """The schema version stored in the database."""
        with _translated("reading the schema version"), self._engine.connect() as connection:
            version = connection.execute(select(func.max(_SCHEMA_VERSION.c.version))).scalar()
        return int(version or 0)

    # -- catalogue --

    def add_sale(self, sale_id: str, title: str, *, created_at: int | None = None) -> None:
        """Store a new sale; add its lots with `add_lot(..., sale_id=sale_id)` afterwards.
        Raises `StorageConflict` if the id is taken."""
        row = {"sale_id": sale_id, "title": title, "created_at": self._now(created_at)}
        with _translated(f"adding sale {sale_id!r}"), self._engine.begin() as connection:
            connection.execute(insert(_SALES).values(row))

    def add_lot(
        self,
        lot_id: str,
        rules: LotRules,
        title: str,
        sale_id: str | None = None,
        *,
        created_at: int | None = None,
    ) -> StoredLot:
        """Store a new lot (no history yet) and return it; the caller starts serving it.

        Raises `StorageConflict` if the id is taken or the sale does not exist.
        """
        created = self._now(created_at)
        row = {
            "lot_id": lot_id,
            "sale_id": sale_id,
            "title": title,
            "rules": encode(rules),
            "created_at": created,
        }
        with _translated(f"adding lot {lot_id!r}"), self._engine.begin() as connection:
            sale_title = None
            if sale_id is not None:
                sale_title = connection.execute(
                    select(_SALES.c.title).where(_SALES.c.sale_id == sale_id)
                ).scalar()
                if sale_title is None:
                    raise StorageConflict(f"adding lot {lot_id!r}: no sale {sale_id!r}")
            connection.execute(insert(_LOTS).values(row))
        state = LotState.create(lot_id, rules)
        return StoredLot(lot_id, sale_id, sale_title, title, rules, created, state, 0, 0)

    def add_bidder(self, bidder_id: str, *, created_at: int | None = None) -> None:
        """Record a bidder id (idempotent). Registrations add their bidder automatically."""
        with _translated(f"adding bidder {bidder_id!r}"), self._engine.begin() as connection:
            self._upsert_bidders(connection, {bidder_id: self._now(created_at)})

    # -- the hot path --

    def append(self, records: Sequence[HistoryRecord]) -> None:
        """Durably store a batch of history rows in one transaction (group commit), with the
        registration and deposit projections of their events.

        When this returns, every row is committed (SQLite `synchronous=FULL`, PostgreSQL's
        default `synchronous_commit`): only then may the caller acknowledge the commands. On
        `StorageError` nothing of the batch was written and the caller must not advance its
        lots.
        """
        if not records:
            return
        rows: list[dict[str, Any]] = []
        bidders: dict[str, int] = {}
        registrations: list[dict[str, Any]] = []
        deposits: dict[tuple[str, str], dict[str, Any]] = {}
        try:
            for record in records:
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
        with _translated("appending history"), self._engine.begin() as connection:
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

    # -- reading back --

    def load(self) -> list[StoredLot]:
        """Every lot, rebuilt by replaying its stored commands through the engine, in the order
        the lots were created.

        Fails closed: raises `CorruptHistory` for an unreadable row or a gap in `n`, and
        `HistoryDiverged` when the engine derives other events than the stored ones. The
        caller serves the returned states and continues each lot's numbering at `commands`.
        """
        with _translated("loading lots"), self._engine.connect() as connection:
            catalogue = connection.execute(
                select(_LOTS, _SALES.c.title.label("sale_title"))
                .select_from(_LOTS.outerjoin(_SALES, _LOTS.c.sale_id == _SALES.c.sale_id))
                .order_by(_LOTS.c.created_at, _LOTS.c.lot_id)
            ).all()
            replays = {row.lot_id: _Replay(row.lot_id, _decode_rules(row)) for row in catalogue}
            history = connection.execution_options(yield_per=2000).execute(
                select(_HISTORY).order_by(_HISTORY.c.lot_id, _HISTORY.c.n)
            )
            with contextlib.closing(history):  # a server-side cursor, even when replay fails
                for row in history:
                    replay = replays.get(row.lot_id)
                    if replay is None:
                        detail = "history of a lot that is not stored"
                        raise CorruptHistory(row.lot_id, row.n, detail)
                    replay.feed(row)
        return [
            StoredLot(
                lot_id=row.lot_id,
                sale_id=row.sale_id,
                sale_title=row.sale_title,
                title=row.title,
                rules=replays[row.lot_id].rules,
                created_at=row.created_at,
                state=replays[row.lot_id].state,
                commands=replays[row.lot_id].commands,
                bids=replays[row.lot_id].bids,
            )
            for row in catalogue
        ]

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

    def registrations(self, lot_id: str) -> list[Registration]:
        """The projected registrations of a lot (sealed data: for the court/compliance role)."""
        with _translated("reading registrations"), self._engine.connect() as connection:
            rows = connection.execute(
                select(_REGISTRATIONS)
                .where(_REGISTRATIONS.c.lot_id == lot_id)
                .order_by(_REGISTRATIONS.c.registered_at, _REGISTRATIONS.c.bidder_id)
            ).all()
        return [Registration(**row._asdict()) for row in rows]

    def deposits(self, lot_id: str) -> list[Deposit]:
        """The projected deposit state of every bidder of a lot."""
        with _translated("reading deposits"), self._engine.connect() as connection:
            rows = connection.execute(
                select(_DEPOSITS)
                .where(_DEPOSITS.c.lot_id == lot_id)
                .order_by(_DEPOSITS.c.bidder_id)
            ).all()
        return [Deposit(**row._asdict()) for row in rows]

    def counts(self) -> Counts:
        """How many sales, lots, history rows and events are stored."""
        with _translated("counting"), self._engine.connect() as connection:
            sales = connection.execute(select(func.count()).select_from(_SALES)).scalar()
            lots = connection.execute(select(func.count()).select_from(_LOTS)).scalar()
            commands = 0
            events = 0
            result = connection.execution_options(yield_per=2000).execute(select(_HISTORY.c.events))
            with contextlib.closing(result):
                for (stored,) in result:
                    commands += 1
                    events += len(stored)
        return Counts(sales=sales or 0, lots=lots or 0, commands=commands, events=events)

    # -- helpers --

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


def _configure_sqlite(dbapi_connection: Any, connection_record: Any) -> None:
    """Durability settings for every new SQLite connection (write-ahead log, fsync at commit).

    The driver's own implicit transactions are switched off (`isolation_level = None`) so that
    `_begin_sqlite` opens every transaction, DDL included: a migration is then atomic.
    """
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
    finally:
        cursor.close()


def _begin_sqlite(connection: Connection) -> None:
    connection.exec_driver_sql("BEGIN")


def _decode_rules(row: Any) -> LotRules:
    rules = _decode_value(row.lot_id, None, row.rules)
    if not isinstance(rules, LotRules):
        raise CorruptHistory(row.lot_id, None, "stored rules are not a LotRules")
    return rules


def _decode_value(lot_id: str, n: int | None, data: Any) -> Any:
    try:
        return decode(data)
    except RulesError as exc:
        raise CorruptHistory(lot_id, n, f"cannot decode {str(data)[:80]}: {exc}") from exc


@dataclass(slots=True)
class _Replay:
    """Rebuilds one lot from its rows, checking numbering and events as it goes."""

    lot_id: str
    rules: LotRules
    state: LotState = dataclasses.field(init=False)
    commands: int = 0
    bids: int = 0

    def __post_init__(self) -> None:
        self.state = LotState.create(self.lot_id, self.rules)

    def feed(self, row: Any) -> None:
        if row.n != self.commands:
            raise CorruptHistory(self.lot_id, row.n, f"expected row {self.commands} next")
        command = _decode_value(self.lot_id, row.n, row.command)
        try:
            state, events = apply(self.state, command, row.ingress_us)
        except RulesError as exc:
            raise CorruptHistory(
                self.lot_id, row.n, f"the engine refused to replay: {exc}"
            ) from exc
        expected = encode(events)
        accepted = not (len(events) == 1 and isinstance(events[0], Rejected))
        if expected != row.events or accepted != row.accepted:
            raise HistoryDiverged(self.lot_id, row.n, expected, row.events)
        self.state = state
        self.commands += 1
        self.bids += sum(isinstance(item, BidAccepted) for item in events)


__all__ = [
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "CorruptHistory",
    "Counts",
    "Deposit",
    "HistoryDiverged",
    "HistoryRecord",
    "Registration",
    "SchemaError",
    "Storage",
    "StorageConflict",
    "StorageError",
    "StorageUnavailable",
    "StoredLot",
    "database_url",
    "system_clock",
]
