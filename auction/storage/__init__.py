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

The parts: `errors`, `records` (values in and out), `schema` (tables and migrations),
`database` (URLs, SQLite settings, lock keys), `keyfiles` and `house` (the house key and
policy), `writer` (the ledger writer), `replay` (lots rebuilt through the rules engine),
and `Storage` (`store`) composed of `base`, `startup`, `catalogue`, `history`,
`checkpoints`, `ledger_reads` and `openings`.
"""

from .base import Clock, system_clock
from .database import LEDGER_LOCK, SQLITE_BUSY_TIMEOUT_MS, SQLITE_FILE, database_url
from .errors import (
    CheckpointConflict,
    CorruptHistory,
    HistoryDiverged,
    LedgerCorrupt,
    LedgerEntryRefused,
    LotFenced,
    SchemaError,
    StorageConflict,
    StorageError,
    StorageUnavailable,
)
from .house import HOUSE_NAME, ORIGIN_PREFIX, House
from .keyfiles import HOUSE_KEY_FILE, HOUSE_KEY_PENDING, POLICY_FILE
from .ledger_reads import PARTIAL_TILE_CACHE_SIZE, TILE_CACHE_SIZE
from .records import (
    Counts,
    Deposit,
    HistoryRecord,
    LedgerHead,
    LedgerRecord,
    Registration,
    StoredLot,
)
from .schema import (
    CLUSTER_INSTANCES,
    CLUSTER_METADATA,
    LOT_OWNERS,
    MIGRATIONS,
    OPENINGS,
    SCHEMA_VERSION,
    BidderRow,
    DepositRow,
    HistoryRow,
    LotRow,
    RegistrationRow,
    SaleRow,
    SchemaVersionRow,
    read_openings,
    select_openings,
)
from .store import Storage

__all__ = [
    "BidderRow",
    "CLUSTER_INSTANCES",
    "CLUSTER_METADATA",
    "CheckpointConflict",
    "Clock",
    "CorruptHistory",
    "Counts",
    "Deposit",
    "DepositRow",
    "HOUSE_KEY_FILE",
    "HOUSE_KEY_PENDING",
    "HOUSE_NAME",
    "HistoryDiverged",
    "HistoryRecord",
    "HistoryRow",
    "House",
    "LEDGER_LOCK",
    "LOT_OWNERS",
    "LedgerCorrupt",
    "LedgerEntryRefused",
    "LedgerHead",
    "LedgerRecord",
    "LotFenced",
    "LotRow",
    "MIGRATIONS",
    "OPENINGS",
    "ORIGIN_PREFIX",
    "PARTIAL_TILE_CACHE_SIZE",
    "POLICY_FILE",
    "Registration",
    "RegistrationRow",
    "SCHEMA_VERSION",
    "SQLITE_BUSY_TIMEOUT_MS",
    "SQLITE_FILE",
    "SaleRow",
    "SchemaError",
    "SchemaVersionRow",
    "Storage",
    "StorageConflict",
    "StorageError",
    "StorageUnavailable",
    "StoredLot",
    "TILE_CACHE_SIZE",
    "database_url",
    "read_openings",
    "select_openings",
    "system_clock",
]
