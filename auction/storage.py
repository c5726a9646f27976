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

The ledger (`chain.store`) lives in the same database: the transaction that stores a batch of
history rows also appends one ledger entry per row (plus a `sale` entry after a lot sold, and a
`lot` entry in the transaction of `add_lot`), so one fsync makes both durable. Entries are
signed as their actor by the house key: `DIR/house.key` (mode 0600) for a data directory, the
`ledger_house` table for a database URL, made on first start with an origin
`gavel.local/<16 hex ledger id>`; entry 0 is the `house` entry. `actor.kid` of every entry the
house signs is the house vkey (`<origin>+<hex key id>+<base64 key>`, as in the `house` body).
`sign_checkpoint` / `publish_checkpoint` sign and publish checkpoints behind the signed-head
compare-and-swap; the `ledger_*` readers serve tiles, receipts and checkpoints.

`Storage` is synchronous and blocking. An asyncio caller runs writes on one thread of its own
(see `auction.service`), never on the event loop; reads may run on other threads.
"""

from __future__ import annotations

import base64
import binascii
import collections
import contextlib
import dataclasses
import functools
import heapq
import json
import logging
import os
import secrets
import threading
import time
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    Integer,
    MetaData,
    Table,
    Text,
    UniqueConstraint,
    event,
    func,
    insert,
    inspect,
    select,
)
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.orm import registry
from sqlmodel import Field, SQLModel, create_engine

from chain import (
    MAX_TREE_SIZE,
    NO_QUORUM,
    ChainError,
    Checkpoint,
    Ed25519Signer,
    Ed25519Verifier,
    EntryBundle,
    EntryType,
    MalformedError,
    Policy,
    PolicyLog,
    Tile,
    format_policy,
    inclusion_proof,
    make_receipt,
    parse_entry,
    parse_policy,
    parse_signer_key,
    parse_time,
    parse_vkey,
    sign_checkpoint,
)
from chain import store as ledger_store

from . import sealed
from .bidding.signed_bid import SignedBid
from .catalogue import facts as lotfacts
from .errors import Conflict, GavelError, Unavailable
from .identity.schema import migrate_identities
from .ledger import (
    IdentityBook,
    SignatureMemo,
    SignedBidError,
    command_body,
    confirmation_document,
    entry_type_for,
    house_body,
    lot_body,
    sale_body,
)
from .rules import (
    BidAccepted,
    BidderRegistered,
    DepositChanged,
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

#: The schema this code writes. `MIGRATIONS[v - 1]` moves a database from version v - 1 to v.
SCHEMA_VERSION = 6

#: PostgreSQL transaction advisory locks, keyed `(namespace, key)` where the namespace names
#: the database and schema (`Storage.advisory_namespace`): two deployments in two schemas of
#: one database never wait for each other. Held while migrating:
_MIGRATION_LOCK = -3

#: File name of the SQLite database inside a data directory.
SQLITE_FILE = "gavel.db"

#: How long a SQLite writer waits for a lock held by another connection, in milliseconds.
SQLITE_BUSY_TIMEOUT_MS = 10_000

#: Full hash tiles kept in memory, hashed up, for receipts and notaries (16 KiB each as
#: `chain.store.ExpandedTile`: 16 MiB at most).
TILE_CACHE_SIZE = 1024

#: Partial hash tiles kept likewise: each new tree size makes new ones, wanted only while that
#: size is the newest (receipts and notaries' checks against the latest checkpoint).
PARTIAL_TILE_CACHE_SIZE = 32

#: The house signing key inside a data directory (signer key text, mode 0600).
HOUSE_KEY_FILE = "house.key"

#: The house key of a first start, until entry 0 is committed.
HOUSE_KEY_PENDING = HOUSE_KEY_FILE + ".new"

#: The trust policy (C2SP tlog-policy) written next to it.
POLICY_FILE = "policy"

#: The name in the `house` entry (entry 0).
HOUSE_NAME = "Gavel auction house"

#: Origins are `gavel.local/<16 hex digits>`: one random ledger id per log.
ORIGIN_PREFIX = "gavel.local/"

#: ... while a house key and entry 0 are created:
_HOUSE_LOCK = -2

#: ... by each ledger write transaction: several server instances share one ledger and take
#: turns appending to it (each catches up first). (The cluster's session locks of lots use
#: the same namespace with keys >= 0.)
LEDGER_LOCK = -1

Clock = Callable[[], int]

logger = logging.getLogger(__name__)


def system_clock() -> int:
    """Server UTC time in integer microseconds."""
    return time.time_ns() // 1000


# --- errors (STYLE rule 5) -------------------------------------------------------------------


class StorageError(GavelError):
    """Base of every exception raised by `auction.storage`; foreign database errors are
    translated into a subclass at the boundary and chained (`raise ... from exc`)."""


class StorageUnavailable(StorageError, Unavailable):
    """The database cannot be opened or reached (bad path, server down, lock timeout).

    The caller may retry later; nothing was written by the failed call.
    """


class StorageConflict(StorageError, Conflict):
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


class LedgerCorrupt(StorageError):
    """The stored ledger cannot be trusted: a row is missing, a leaf hash recomputed from the
    stored bytes differs, the tree does not have the signed root, or the house key does not
    match entry 0. Nothing may be signed or served until an operator looked."""


class LedgerEntryRefused(StorageError):
    """An entry was refused before anything was written: a bid request or an `idv` entry that
    breaks the signed-bid rules (`auction.ledger.IdentityBook`), a malformed `key` entry, or an
    entry type that cannot be recorded directly. `reason` is a stable code."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.message = message


class LotFenced(StorageConflict):
    """Another server instance took this lot over (its fencing token moved): this
    instance's commands for the lot were not written and it must stop serving the lot."""

    def __init__(self, lot_id: str, message: str) -> None:
        super().__init__(message)
        self.lot_id = lot_id


class CheckpointConflict(StorageConflict):
    """The signed-head compare-and-swap failed: another signer (another process on the same
    database, or a stale copy) signed meanwhile. Nothing was signed; the caller retries later
    (the next attempt re-reads the stored tree and checks it against the signed head)."""


@contextlib.contextmanager
def _translated(what: str) -> Iterator[None]:
    """Translate SQLAlchemy, driver and ledger errors into `StorageError`s, once, at the
    boundary."""
    try:
        yield
    except StorageError:
        raise
    except ledger_store.SignedHeadConflict as exc:
        raise CheckpointConflict(f"{what}: {exc}") from exc
    except ledger_store.StoredDataError as exc:
        raise LedgerCorrupt(f"{what}: {exc}") from exc
    except ChainError as exc:
        raise StorageError(f"{what}: {exc}") from exc
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
    request: SignedBid | None = None  # a signed bid's request: in the ledger entry only
    order: Mapping[str, Any] | None = None  # who gave a court order: in the ledger entry only

    @classmethod
    def of(
        cls,
        lot_id: str,
        n: int,
        ingress_us: int,
        command: Any,
        events: tuple[Any, ...],
        request: SignedBid | None = None,
        order: Mapping[str, Any] | None = None,
    ) -> HistoryRecord:
        """Build the record of one `apply(...)`; `accepted` is derived from the events."""
        rejected = len(events) == 1 and isinstance(events[0], Rejected)
        return cls(lot_id, n, ingress_us, command, tuple(events), not rejected, request, order)


@dataclass(frozen=True, slots=True)
class LedgerRecord:
    """One ledger entry that is not a lot command (`idv`, `stream_segment`, `key`), appended
    through the same group commit as history records.

    `signer` is the actor (`actor.kid` = its vkey); None: the house key.
    """

    entry_type: EntryType
    body: Mapping[str, Any]
    time_us: int
    signer: Ed25519Signer | None = None

    def __post_init__(self) -> None:
        if self.entry_type not in _RECORDED_TYPES:
            raise LedgerEntryRefused(
                "NOT_RECORDABLE", f"{self.entry_type!r} entries are written by the server only"
            )
        if not isinstance(self.body, Mapping):
            raise LedgerEntryRefused("MALFORMED", "an entry body is a JSON object")


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
class LedgerHead:
    """A signed checkpoint of the ledger: tree `size`, its `root`, and the signed `note`
    (C2SP signed note bytes, with cosignatures once notaries sign)."""

    size: int
    root: bytes
    note: bytes


@dataclass(frozen=True, slots=True)
class Counts:
    """How much is stored: lots, history rows (commands) and the events inside them, ledger
    entries, the log's origin and its latest published checkpoint."""

    sales: int
    lots: int
    commands: int
    events: int
    ledger_entries: int = 0
    origin: str | None = None
    checkpoint: LedgerHead | None = None


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


#: The house key when the database is given by URL (no data directory to keep a file in).
_HOUSE_METADATA = MetaData()
_HOUSE = Table(
    "ledger_house",
    _HOUSE_METADATA,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("signer_key", Text, nullable=False),
    Column("created_at", BigInteger, nullable=False),
)


#: The openings of an entry's sealed values (`auction.sealed`): `{name: {nonce, value}}` as
#: JSON, written in the transaction that writes the entry; `kind` is the entry type.
_OPENINGS_METADATA = MetaData()
OPENINGS = Table(
    "ledger_openings",
    _OPENINGS_METADATA,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("kind", Text, nullable=False),
    Column("openings", Text, nullable=False),
)


def _may_be_sealed(raw: bytes) -> bool:
    """Whether an entry's bytes may hold sealed values or aliases (else it is read as is)."""
    return b'"sealed"' in raw or b'"' + sealed.ALIAS_MARK.encode() in raw


def read_openings(connection: Connection, begin: int, end: int) -> dict[int, dict[str, Any]]:
    """The openings of the sealed values of entries `[begin, end)` that have any."""
    if not inspect(connection).has_table("ledger_openings"):  # read-only, before version 6
        return {}
    return select_openings(connection, begin, end)


def select_openings(connection: Connection, begin: int, end: int) -> dict[int, dict[str, Any]]:
    """`read_openings` where the table is known to exist (schema version 6 or later)."""
    rows = connection.execute(
        select(OPENINGS.c.seq, OPENINGS.c.openings)
        .where(OPENINGS.c.seq >= begin, OPENINGS.c.seq < end)
        .order_by(OPENINGS.c.seq)
    ).all()
    return {int(seq): json.loads(text) for seq, text in rows}


def _migrate_to_1(connection: Connection) -> None:
    """Version 1: every table of the first release."""
    _Table.metadata.create_all(connection)


def _migrate_to_2(connection: Connection) -> None:
    """Version 2: the ledger (`chain.store` tables) and the house key table. Lots and history
    stored before are written to the ledger when the house entry is (see `Storage.open`)."""
    ledger_store.create_tables(connection)
    _HOUSE_METADATA.create_all(connection)


#: Several server instances on one PostgreSQL database (`auction.cluster`): who is alive and
#: where it listens, and which instance writes each lot, with the fencing token of its turn.
CLUSTER_METADATA = MetaData()
CLUSTER_INSTANCES = Table(
    "cluster_instances",
    CLUSTER_METADATA,
    Column("name", Text, primary_key=True),
    Column("url", Text, nullable=False),
    Column("started_us", BigInteger, nullable=False),
    Column("heartbeat_us", BigInteger, nullable=False),
)
LOT_OWNERS = Table(
    "lot_owners",
    CLUSTER_METADATA,
    Column("lot_id", Text, primary_key=True),
    Column("lock_id", Integer, nullable=False, unique=True),
    Column("owner", Text, nullable=True),
    Column("token", BigInteger, nullable=False),
    Column("since_us", BigInteger, nullable=False),
)


def _migrate_to_3(connection: Connection) -> None:
    """Version 3: the cluster tables (instances, lot owners with fencing tokens)."""
    CLUSTER_METADATA.create_all(connection)


def _migrate_to_4(connection: Connection) -> None:
    """Version 4: identity versions (append-only), document fingerprints, alerts and permits
    (`auction.identity.schema`); the one-row-per-account identity table becomes version 1."""
    migrate_identities(connection)


def _migrate_to_5(connection: Connection) -> None:
    """Version 5: a lot's facts and documents (`auction.catalogue.facts`)."""
    lotfacts.create_tables(connection)


def _migrate_to_6(connection: Connection) -> None:
    """Version 6: the openings of the ledger's sealed values (`auction.sealed`)."""
    _OPENINGS_METADATA.create_all(connection)


#: Forward migrations, in order: entry v - 1 brings a database from version v - 1 to v.
#: Add a function for each schema change and raise `SCHEMA_VERSION`; never edit a released one.
MIGRATIONS: tuple[Callable[[Connection], None], ...] = (
    _migrate_to_1,
    _migrate_to_2,
    _migrate_to_3,
    _migrate_to_4,
    _migrate_to_5,
    _migrate_to_6,
)

assert len(MIGRATIONS) == SCHEMA_VERSION


# --- the house and the ledger writer ---------------------------------------------------------


def _log_policy(verifier: Ed25519Verifier) -> bytes:
    """The trust policy of a log without notaries yet: its key, and no cosignature required."""
    return format_policy(Policy((PolicyLog(verifier),), (), NO_QUORUM))


@dataclass(frozen=True, slots=True)
class House:
    """The log's own key. `signer` signs checkpoints (its key name is the origin); `entries`
    is the same key signing entries as their actor, with `actor.kid` = the house vkey."""

    signer: Ed25519Signer
    entries: ledger_store.EntrySigner

    @classmethod
    def generate(cls) -> House:
        """A fresh key for a new log, origin `gavel.local/<16 random hex digits>`."""
        origin = ORIGIN_PREFIX + secrets.token_hex(8)
        return cls._of(Ed25519Signer.from_seed(origin, secrets.token_bytes(32)))

    @classmethod
    def from_signer_key(cls, text: str) -> House:
        """Load `PRIVATE+KEY+<origin>+<hex id>+<base64>` (a chain signer key, type 0x01)."""
        try:
            signer = parse_signer_key(text)
        except ChainError as exc:
            raise LedgerCorrupt(f"the house key is not a signer key: {exc}") from exc
        if not isinstance(signer, Ed25519Signer) or not signer.name.startswith(ORIGIN_PREFIX):
            raise LedgerCorrupt(f"the house key must be an Ed25519 key named {ORIGIN_PREFIX}...")
        return cls._of(signer)

    @classmethod
    def _of(cls, signer: Ed25519Signer) -> House:
        # The seed is the last field of the signer key text (type byte, then 32 bytes).
        try:
            seed = base64.b64decode(signer.signer_key.split("+", 4)[4], validate=True)[1:]
        except (binascii.Error, IndexError) as exc:  # pragma: no cover - we wrote that text
            raise LedgerCorrupt("cannot read the house key seed") from exc
        return cls(signer, ledger_store.EntrySigner.from_seed(signer.vkey, seed))

    @property
    def alias_key(self) -> bytes:
        """The secret behind bidders' per-lot aliases (`auction.sealed.alias`)."""
        seed = base64.b64decode(self.signer.signer_key.split("+", 4)[4], validate=True)[1:]
        return sealed.alias_key(seed)

    @property
    def origin(self) -> str:
        """The log's origin, e.g. `gavel.local/3f2a...`: first line of every checkpoint."""
        return self.signer.name

    @property
    def vkey(self) -> str:
        """The public key to publish (policy file, `house` entry, `actor.kid`)."""
        return self.signer.vkey

    def policy(self) -> bytes:
        """The tlog-policy file of this log (`log <vkey>`, `quorum none`: no notaries yet)."""
        return _log_policy(self.signer.verifier)


@dataclass(slots=True)
class _LotLedger:
    """What the ledger writer needs to know about a lot to write its `sale` entry."""

    title: str
    currency: str
    last_bid_entry: dict[str, int] = dataclasses.field(default_factory=dict)  # alias -> seq
    linked: set[str] = dataclasses.field(default_factory=set)  # aliases with a link entry

    def copy(self) -> _LotLedger:
        return _LotLedger(self.title, self.currency, dict(self.last_bid_entry), set(self.linked))


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
        writer._connection = None
        return writer

    def catch_up(self, connection: Connection) -> int:
        """Integrate what other instances appended since this writer's size (checked like a
        resume). Call inside the write transaction, under `LEDGER_LOCK`."""
        self._connection = connection
        try:
            return self.state.catch_up(connection, each_entry=self._learn)
        finally:
            self._connection = None

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
                self.lots[body["lot"]] = _LotLedger(body["title"], body["rules"]["currency"])
            elif kind in _COMMAND_ENTRY_TYPES:
                lot = self.lots[body["lot"]]
                for name in body.get("sealed", {}):
                    if name.startswith(sealed.LINK):
                        lot.linked.add(name[len(sealed.LINK) :])
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
        body = lot_body(lot_id, rules, title, sale_id, created)
        pending.batch.add(EntryType.LOT, body, created, self.house.entries)
        pending.lots[lot_id] = _LotLedger(title, rules.currency)

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
            seqs.append(entry.seq)
            closed: LotClosed | None = None
            for item in record.events:  # the same bookkeeping as `LedgerReplay`
                if isinstance(item, BidAccepted):
                    lot.last_bid_entry[self._public(record.lot_id, item.bidder)] = entry.seq
                elif isinstance(item, LotClosed):
                    closed = item
            if closed is None or closed.result is not Result.SOLD:
                continue
            confirmation = confirmation_document(
                record.lot_id, lot.title, closed, lot.currency, entry.seq
            )
            winning_bid = lot.last_bid_entry.get(self._public(record.lot_id, closed.winner or ""))
            body = sale_body(
                record.lot_id, closed, lot.currency, entry.seq, winning_bid, confirmation
            )
            pending.batch.add(EntryType.SALE, body, record.ingress_us, entries)
        return seqs

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


_COMMAND_ENTRY_TYPES = frozenset(
    {EntryType.BID, EntryType.REGISTRATION, EntryType.DEPOSIT, EntryType.LOT_STATE}
)

#: Entry types written by `LedgerRecord`s (not lot commands, not the server's own framing).
_RECORDED_TYPES = frozenset(
    {EntryType.IDV, EntryType.STREAM_SEGMENT, EntryType.KEY, EntryType.DOCUMENT}
)


def _data_directory(target: str | os.PathLike[str]) -> Path | None:
    """The data directory of a `Storage.open` target, or None for a database URL."""
    text = os.fspath(target)
    if "://" in text or text.startswith(("sqlite:", "postgresql")):
        return None
    return Path(text)


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

    @classmethod
    def open(
        cls,
        target: str | os.PathLike[str],
        *,
        clock: Clock = system_clock,
        read_only: bool = False,
        signed_bids: bool = False,
    ) -> Storage:
        """Open (and create or migrate) the database at `target`: a data directory, a
        `sqlite:///...` URL or a `postgresql://...` URL. The caller must `close()` it.

        On first start this makes the house key (`DIR/house.key`, or the `ledger_house` table
        for a URL) and writes the `house` entry (entry 0), then the ledger entries of any lots
        and history stored before the ledger existed; a data directory also gets `DIR/policy`.
        With `read_only`, nothing is created or migrated (the database must exist and be
        current) and only reads are allowed (e.g. `gavel ledger export`). A log created with
        `signed_bids` says `"signed_bids": true` in its house entry: every PlaceBid / SetMax
        must then carry its bidder's signed request (`HistoryRecord.request`) and every
        kyc-verified registration an `idv` entry; an existing log keeps its own setting.
        """
        if read_only:
            _check_exists(target)
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
        store._directory = _data_directory(target)
        try:
            if read_only:
                store._check_schema()
            else:
                store._migrate()
                store._open_house(_data_directory(target), signed_bids)
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

    # -- the house key and entry 0 --

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

    @property
    def house(self) -> House | None:
        """The house key (None when opened read-only)."""
        return self._house

    def identity_book(self) -> IdentityBook:
        """A copy of what the signed-bid rules know at the end of the ledger (whether bids
        must be signed, the identity providers, each account's key). The service checks bid
        requests against it before they reach a lot; keep it up to date with what you record."""
        with self._ledger_lock:
            return self._ledger_writer().book.copy()

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
        with self._ledger_lock:
            writer = self._ledger_writer()
            with self._ledger_transaction(f"adding lot {lot_id!r}") as connection:
                self._sequence(connection, writer)
                pending = writer.start()
                sale_title = None
                if sale_id is not None:
                    sale_title = connection.execute(
                        select(_SALES.c.title).where(_SALES.c.sale_id == sale_id)
                    ).scalar()
                    if sale_title is None:
                        raise StorageConflict(f"adding lot {lot_id!r}: no sale {sale_id!r}")
                connection.execute(insert(_LOTS).values(row))
                writer.add_lot(pending, lot_id, rules, title, sale_id, created)
                writer.write(connection, pending)
            writer.commit(pending)
        self._appended(pending)
        state = LotState.create(lot_id, rules)
        return StoredLot(lot_id, sale_id, sale_title, title, rules, created, state, 0, 0)

    def add_bidder(self, bidder_id: str, *, created_at: int | None = None) -> None:
        """Record a bidder id (idempotent). Registrations add their bidder automatically."""
        with _translated(f"adding bidder {bidder_id!r}"), self._engine.begin() as connection:
            self._upsert_bidders(connection, {bidder_id: self._now(created_at)})

    # -- the hot path --

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

    # -- the ledger: writing --

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

    def sign_checkpoint(self) -> LedgerHead | None:
        """Sign a checkpoint of the current tree if it grew since the last one.

        In one transaction: the signed-head compare-and-swap from the last signed size (raises
        `CheckpointConflict` if another signer moved it), then the signature, then the stored
        (unpublished) checkpoint. Returns it, to be published with `publish_checkpoint` (once
        notaries exist: after they cosigned); `None` if there is nothing new. A checkpoint that
        was signed but never published (a crash in between) is returned again.
        """
        with self._ledger_lock:
            writer = self._ledger_writer()
            house = writer.house
            now = self._clock()
            with self._ledger_transaction("signing a checkpoint") as connection:
                if self._dialect == "postgresql":  # another instance may have written or signed
                    self._sequence(connection, writer)
                    writer.signed = ledger_store.read_signed(connection)
                size, root = writer.state.size, writer.state.root()
                if size == writer.signed.size:
                    latest = ledger_store.latest_checkpoint(connection, published=False)
                    if latest is None or latest.published_us is not None:
                        return None
                    return LedgerHead(latest.size, latest.root, latest.note)
                ledger_store.cas_signed(connection, writer.signed.size, size, root, now)
                note = sign_checkpoint(Checkpoint(house.origin, size, root), house.signer)
                ledger_store.store_checkpoint(connection, size, root, note, now)
            writer.signed = ledger_store.SignedHead(size, root)
        return LedgerHead(size, root, note)

    def publish_checkpoint(self, head: LedgerHead) -> None:
        """Mark a signed checkpoint published: from now on it is served and receipts use it."""
        with _translated("publishing a checkpoint"), self._engine.begin() as connection:
            ledger_store.publish_checkpoint(connection, head.size, head.note, self._clock())

    # -- the ledger: reading (any thread) --

    def ledger_policy(self) -> bytes:
        """The tlog-policy file naming the log key (from the house key, or from entry 0)."""
        if self._policy is None:
            with _translated("reading the ledger policy"), self._engine.connect() as connection:
                verifier = _house_entry(connection)[1]
            kept = _policy_file(self._directory, verifier)
            self._policy = kept if kept is not None else _log_policy(verifier)
        return self._policy

    def published_checkpoint(self) -> LedgerHead | None:
        """The latest published checkpoint, or None before the first one."""
        with _translated("reading the checkpoint"), self._engine.connect() as connection:
            latest = ledger_store.latest_checkpoint(connection)
        return None if latest is None else LedgerHead(latest.size, latest.root, latest.note)

    def checkpoint_sizes(self) -> list[int]:
        """The tree sizes of every published checkpoint, ascending."""
        with _translated("listing checkpoints"), self._engine.connect() as connection:
            return ledger_store.checkpoint_sizes(connection)

    def checkpoint_note(self, size: int) -> bytes | None:
        """The published checkpoint of tree size `size` (signed note bytes), or None."""
        if not 0 <= size <= MAX_TREE_SIZE:
            return None
        with _translated("reading a checkpoint"), self._engine.connect() as connection:
            stored = ledger_store.read_checkpoint(connection, size)
        if stored is None or stored.published_us is None:
            return None
        return stored.note

    def final_sales(self) -> list[str]:
        """The lots whose `sale` entry is in the latest published (co-signed) checkpoint's
        tree: those sales are final (ledger spec section 3: no quorum, no final sale)."""
        with _translated("reading sale entries"), self._engine.connect() as connection:
            latest = ledger_store.latest_checkpoint(connection)
            if latest is None:
                return []
            entries = ledger_store.read_entries(connection, 0, latest.size)
        lots: list[str] = []
        for stored in entries:
            try:
                entry = parse_entry(stored.data)
            except ChainError as exc:
                raise LedgerCorrupt(f"entry {stored.seq}: {exc}") from exc
            if entry.type is EntryType.SALE and isinstance(entry.body.get("lot"), str):
                lots.append(str(entry.body["lot"]))
        return lots

    def ledger_consistency_proof(self, old_size: int, new_size: int) -> list[bytes]:
        """The consistency proof from `old_size` to `new_size` (a signed size); empty from 0
        or to the same size, as tlog-witness expects."""
        if old_size == 0 or old_size >= new_size:
            return []
        with _translated("building a consistency proof"), self._engine.connect() as connection:
            return ledger_store.consistency_proof(connection, old_size, new_size)

    def ledger_size(self) -> int:
        """The number of stored ledger entries (some may not be in a checkpoint yet)."""
        with _translated("reading the ledger size"), self._engine.connect() as connection:
            return ledger_store.stored_size(connection)

    def ledger_end(self) -> int:
        """The seq after the last stored entry (entries are committed in seq order, so this
        is the stored size; cheaper than `ledger_size`, which also checks for gaps)."""
        with _translated("reading the ledger size"), self._engine.connect() as connection:
            highest = connection.execute(select(func.max(ledger_store.ENTRIES.c.seq))).scalar()
        return 0 if highest is None else int(highest) + 1

    def ledger_tile(self, tile: Tile | EntryBundle) -> bytes:
        """The bytes of a tlog-tiles tile or entry bundle. The caller checks first that it lies
        within a published checkpoint; `LedgerCorrupt` means stored data is missing."""
        with _translated(f"reading {tile.path}"), self._engine.connect() as connection:
            if isinstance(tile, EntryBundle):
                return ledger_store.read_entry_bundle(connection, tile)
            return self._expanded_tile(connection, tile)[0]

    def _expanded_tile(self, connection: Connection, tile: Tile) -> ledger_store.ExpandedTile:
        """A tile with its inner subtrees hashed, from a bounded in-memory cache: a tile of a
        given width never changes, so receipts mostly cost lookups. Partial tiles have a small
        cache of their own: every new tree size makes new ones, wanted only while that size is
        the newest, which would otherwise push the full tiles out of the cache."""
        if tile.is_partial:
            cache, limit = self._partial_tiles, PARTIAL_TILE_CACHE_SIZE
        else:
            cache, limit = self._tiles, TILE_CACHE_SIZE
        with self._tiles_lock:
            expanded = cache.get(tile)
            if expanded is not None:
                cache.move_to_end(tile)
                return expanded
        expanded = ledger_store.expand_tile(tile, ledger_store.read_tile(connection, tile))
        with self._tiles_lock:
            cache[tile] = expanded
            while len(cache) > limit:
                cache.popitem(last=False)
        return expanded

    def ledger_entries(self, begin: int, end: int) -> list[bytes]:
        """The bytes of entries `[begin, end)` (leaf hashes checked against the stored ones)."""
        with _translated("reading ledger entries"), self._engine.connect() as connection:
            return [entry.data for entry in ledger_store.read_entries(connection, begin, end)]

    def opened_entry(self, seq: int, raw: bytes) -> bytes:
        """Entry `seq` (its stored bytes `raw`) as JSON with its sealed values opened: account
        ids in place of aliases, the signed request and the idv account back (for this
        server's own readers: cluster followers, the gateway's restart; not an entry to
        publish). An entry without sealed values or aliases comes back as is."""
        return self.opened_entries(seq, [raw])[0]

    def opened_entries(self, begin: int, raws: Sequence[bytes]) -> list[bytes]:
        """`opened_entry` of entries `begin, begin + 1, ...` with one read of their openings."""
        if not any(_may_be_sealed(raw) for raw in raws):
            return list(raws)
        with _translated("reading openings"), self._engine.connect() as connection:
            found = self._openings(connection, begin, begin + len(raws))
            for openings in found.values():  # links first: a later entry of the batch uses them
                self._learn_links(openings)
            return [
                self._opened(connection, begin + i, raw, found.get(begin + i))
                if _may_be_sealed(raw)
                else raw
                for i, raw in enumerate(raws)
            ]

    def _opened(
        self, connection: Connection, seq: int, raw: bytes, found: dict[str, Any] | None
    ) -> bytes:
        value = json.loads(raw)
        body = value["body"]
        names = sealed.bidders_of(body)
        links = sealed.LinkBook()
        lot = body.get("lot")
        if isinstance(lot, str) and names:
            for name in names:
                if name.startswith(sealed.ALIAS_MARK):
                    account = self._alias_account(connection, name)
                    if account is not None and sealed.LINK + name not in (found or {}):
                        links.accounts.setdefault(lot, {})[name] = account
                        links.aliases.setdefault(lot, {})[account] = name
        try:
            value["body"] = sealed.open_body(value["type"], body, found, links)
        except sealed.SealError as exc:
            raise LedgerCorrupt(f"ledger entry {seq} cannot be opened: {exc}") from exc
        return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()

    def ledger_entries_opened(self, begin: int, end: int) -> list[bytes]:
        """`ledger_entries` with each entry's sealed values opened (`opened_entry`)."""
        return self.opened_entries(begin, self.ledger_entries(begin, end))

    def _openings(self, connection: Connection, begin: int, end: int) -> dict[int, dict[str, Any]]:
        """`read_openings`, asking the catalogue whether the table exists only once."""
        if self._openings_table is None:
            self._openings_table = inspect(connection).has_table("ledger_openings")
        return select_openings(connection, begin, end) if self._openings_table else {}

    def _learn_links(self, openings: Mapping[str, Any]) -> None:
        """Remember the accounts behind the aliases that `openings` link."""
        for name, item in openings.items():
            if name.startswith(sealed.LINK) and isinstance(item, dict):
                value = item.get("value")
                if isinstance(value, dict) and isinstance(value.get("account"), str):
                    self._aliases[name[len(sealed.LINK) :]] = value["account"]

    def _alias_account(self, connection: Connection, alias: str) -> str | None:
        """The account behind `alias` (from the link openings; remembered)."""
        known = self._aliases.get(alias)
        if known is None and not self._links_loaded:  # once: every link stored so far
            self._links_loaded = True
            rows = connection.execute(
                select(OPENINGS.c.openings).where(OPENINGS.c.openings.contains(f'"{sealed.LINK}'))
            ).all()
            for (text,) in rows:
                self._learn_links(json.loads(text))
            known = self._aliases.get(alias)
        if known is None:
            rows = connection.execute(
                select(OPENINGS.c.openings).where(
                    OPENINGS.c.openings.contains(f'"{sealed.LINK}{alias}"')
                )
            ).all()
            for (text,) in rows:
                item = json.loads(text).get(sealed.LINK + alias)
                if isinstance(item, dict) and isinstance(item.get("value"), dict):
                    known = self._aliases[alias] = str(item["value"]["account"])
        return known

    def ledger_openings(self, begin: int, end: int) -> dict[int, dict[str, Any]]:
        """The openings of the sealed values of entries `[begin, end)` (`auction.sealed`)."""
        with _translated("reading openings"), self._engine.connect() as connection:
            return self._openings(connection, begin, end)

    def ledger_receipt(self, seq: int, head: LedgerHead) -> tuple[bytes, bytes]:
        """Entry `seq` and its C2SP tlog-proof receipt against the checkpoint `head`
        (`seq < head.size`): `(entry bytes, receipt bytes)`. Check it with
        `chain.verify_receipt` and the policy."""
        if not 0 <= seq < head.size:
            raise StorageError(f"entry {seq} is not in the tree of size {head.size}")
        with _translated(f"building the receipt of entry {seq}"), self._engine.connect() as conn:
            (entry,) = ledger_store.read_entries(conn, seq, seq + 1)
            reader = ledger_store.SubtreeReader(
                head.size, functools.partial(self._expanded_tile, conn)
            )
            proof = inclusion_proof(seq, head.size, reader)
            return entry.data, make_receipt(seq, proof, head.note)

    # -- reading back --

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
            replay = _Replay(lot_id, _decode_rules(row))
            for item in connection.execute(
                select(_HISTORY).where(_HISTORY.c.lot_id == lot_id).order_by(_HISTORY.c.n)
            ):
                replay.feed(item)
        return StoredLot(
            lot_id=row.lot_id,
            sale_id=row.sale_id,
            sale_title=row.sale_title,
            title=row.title,
            rules=replay.rules,
            created_at=row.created_at,
            state=replay.state,
            commands=replay.commands,
            bids=replay.bids,
        )

    def lot_commands(self, lot_id: str) -> int:
        """How many commands of `lot_id` are stored (its next history row's `n`)."""
        with _translated(f"counting the commands of lot {lot_id!r}"), self._engine.connect() as c:
            highest = c.execute(
                select(func.max(_HISTORY.c.n)).where(_HISTORY.c.lot_id == lot_id)
            ).scalar()
        return 0 if highest is None else int(highest) + 1

    def engine(self) -> Engine:
        """The SQLAlchemy engine (the cluster's bookkeeping shares the database)."""
        return self._engine

    def signed_checkpoint(self) -> LedgerHead | None:
        """The latest signed checkpoint, published or not (None before the first)."""
        with _translated("reading the checkpoint"), self._engine.connect() as connection:
            latest = ledger_store.latest_checkpoint(connection, published=False)
        return None if latest is None else LedgerHead(latest.size, latest.root, latest.note)

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


def _check_exists(target: str | os.PathLike[str]) -> None:
    """For a read-only open: a data directory must already hold its database."""
    directory = _data_directory(target)
    if directory is not None and not (directory / SQLITE_FILE).is_file():
        raise StorageUnavailable(f"no gavel database in {directory}")


def _key_location(directory: Path | None) -> str:
    return str(directory / HOUSE_KEY_FILE) if directory is not None else "table ledger_house"


def _read_house_key(connection: Connection, directory: Path | None) -> tuple[str | None, bool]:
    """The house signer key text (None if there is none yet), and whether it is still the
    pending `house.key.new` of a first start that may not have committed entry 0."""
    if directory is None:
        text = connection.execute(select(_HOUSE.c.signer_key).where(_HOUSE.c.id == 1)).scalar()
        return (None if text is None else str(text)), False
    text = _read_key_file(directory / HOUSE_KEY_FILE)
    if text is not None:
        return text, False
    text = _read_key_file(directory / HOUSE_KEY_PENDING)
    return text, text is not None


def _read_key_file(path: Path) -> str | None:
    try:
        mode = path.stat().st_mode
        if mode & 0o077:
            raise LedgerCorrupt(f"{path} is readable by others: chmod 600 it")
        with path.open("rb") as file:
            data = file.read(4096)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise StorageUnavailable(f"cannot read {path}: {exc}") from exc
    try:
        return data.decode("ascii").strip()
    except UnicodeDecodeError as exc:
        raise LedgerCorrupt(f"{path} is not a signer key") from exc


def _write_house_key(
    connection: Connection, directory: Path | None, house: House, now: int
) -> bool:
    """Store a new house key: a row in the transaction that writes entry 0, or, for a data
    directory, `house.key.new` (0600, created exclusively, synced before any entry it signs is
    committed), renamed to `house.key` once entry 0 is (`_install_house_key`). Returns whether
    that rename is still due. A crash in between is recovered at the next start."""
    text = house.signer.signer_key
    if directory is None:
        connection.execute(insert(_HOUSE).values(id=1, signer_key=text, created_at=now))
        return False
    path = directory / HOUSE_KEY_PENDING
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(descriptor, (text + "\n").encode("ascii"))
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
        _sync_directory(directory)
    except FileExistsError as exc:
        raise StorageConflict(f"{path} appeared meanwhile: another gavel is starting") from exc
    except OSError as exc:
        raise StorageUnavailable(f"cannot write {path}: {exc}") from exc
    return True


def _install_house_key(directory: Path) -> None:
    try:
        os.replace(directory / HOUSE_KEY_PENDING, directory / HOUSE_KEY_FILE)
        _sync_directory(directory)
    except OSError as exc:
        raise StorageUnavailable(f"cannot install {directory / HOUSE_KEY_FILE}: {exc}") from exc


def _remove(path: Path) -> None:
    try:
        path.unlink(missing_ok=True)
    except OSError as exc:
        raise StorageUnavailable(f"cannot remove {path}: {exc}") from exc


def _sync_directory(directory: Path) -> None:
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _write_if_changed(path: Path, data: bytes) -> None:
    """Replace `path` atomically with `data` unless it already holds exactly that."""
    try:
        if path.read_bytes() == data:
            return
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise StorageUnavailable(f"cannot read {path}: {exc}") from exc
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    try:
        temporary.write_bytes(data)
        os.replace(temporary, path)
    except OSError as exc:
        temporary.unlink(missing_ok=True)
        raise StorageUnavailable(f"cannot write {path}: {exc}") from exc


def _policy_file(directory: Path | None, verifier: Ed25519Verifier) -> bytes | None:
    """`DIR/policy` if it parses, trusts this log's key and names notaries (written by the
    operator or `gavel demo`); None otherwise (the default policy is then used)."""
    if directory is None:
        return None
    try:
        data = (directory / POLICY_FILE).read_bytes()
        policy = parse_policy(data)
    except (OSError, ChainError):
        return None
    if not policy.witnesses or not any(log.verifier.vkey == verifier.vkey for log in policy.logs):
        return None
    return data


def _house_entry(connection: Connection) -> tuple[str, Ed25519Verifier]:
    """Entry 0: the log's origin and key. Raises `LedgerCorrupt` if it is not a house entry."""
    (first,) = ledger_store.read_entries(connection, 0, 1)
    try:
        entry = parse_entry(first.data)
        vkey = entry.body.get("vkey")
        origin = entry.body.get("origin")
        if entry.type is not EntryType.HOUSE or not isinstance(vkey, str):
            raise MalformedError("entry 0 is not a house entry")
        verifier = parse_vkey(vkey)
    except ChainError as exc:
        raise LedgerCorrupt(f"entry 0: {exc}") from exc
    if not isinstance(verifier, Ed25519Verifier) or origin != verifier.name:
        raise LedgerCorrupt("entry 0 does not name an Ed25519 log key for its origin")
    return origin, verifier


def _check_house_entry(connection: Connection, house: House) -> None:
    origin, verifier = _house_entry(connection)
    if verifier.vkey != house.vkey:
        raise LedgerCorrupt(
            f"the house key ({house.origin}) is not the key of this ledger ({origin})"
        )


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
    "HOUSE_KEY_FILE",
    "MIGRATIONS",
    "POLICY_FILE",
    "SCHEMA_VERSION",
    "CheckpointConflict",
    "CorruptHistory",
    "Counts",
    "Deposit",
    "HistoryDiverged",
    "HistoryRecord",
    "House",
    "LedgerCorrupt",
    "LedgerEntryRefused",
    "LedgerHead",
    "LedgerRecord",
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
