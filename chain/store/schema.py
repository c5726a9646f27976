"""The ledger's tables, and the values their rows are read back as."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    Integer,
    LargeBinary,
    MetaData,
    Table,
    insert,
    select,
)
from sqlalchemy.engine import Connection

from ..hashing import EMPTY_ROOT, leaf_hash

__all__ = [
    "CHECKPOINTS",
    "ENTRIES",
    "HASHES",
    "LEDGER_METADATA",
    "SIGNED",
    "SignedHead",
    "StoredCheckpoint",
    "StoredEntry",
    "create_tables",
]

LEDGER_METADATA: Final = MetaData()
"""The ledger's tables; create them with :func:`create_tables` (or the caller's migrations)."""

ENTRIES: Final = Table(
    "ledger_entries",
    LEDGER_METADATA,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("data", LargeBinary, nullable=False),
    Column("leaf_hash", LargeBinary, nullable=False),
    Column("t_us", BigInteger, nullable=False),
)

HASHES: Final = Table(
    "ledger_hashes",
    LEDGER_METADATA,
    Column("level", Integer, primary_key=True, autoincrement=False),
    Column("node_index", BigInteger, primary_key=True, autoincrement=False),
    Column("hash", LargeBinary, nullable=False),
)

CHECKPOINTS: Final = Table(
    "ledger_checkpoints",
    LEDGER_METADATA,
    Column("size", BigInteger, primary_key=True, autoincrement=False),
    Column("root", LargeBinary, nullable=False),
    Column("note", LargeBinary, nullable=False),
    Column("signed_us", BigInteger, nullable=False),
    Column("published_us", BigInteger, nullable=True),
)

SIGNED: Final = Table(
    "ledger_signed",
    LEDGER_METADATA,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("size", BigInteger, nullable=False),
    Column("root", LargeBinary, nullable=False),
    Column("updated_us", BigInteger, nullable=False),
    CheckConstraint("id = 1", name="ledger_signed_one_row"),
)


def create_tables(connection: Connection) -> None:
    """Create the ledger tables if missing, and the signed-head row (size 0, empty root,
    ``updated_us`` 0: never signed). Idempotent; run it inside the caller's migration."""
    LEDGER_METADATA.create_all(connection)
    if connection.execute(select(SIGNED.c.id)).first() is None:
        connection.execute(insert(SIGNED).values(id=1, size=0, root=EMPTY_ROOT, updated_us=0))


@dataclass(frozen=True, slots=True)
class StoredEntry:
    """One entry as stored: its ``seq``, its bytes and the sequencing time ``time_us``.

    ``leaf_hash`` is always computed here from ``data`` (RFC 9162 2.1.1), never passed in.
    """

    seq: int
    data: bytes
    time_us: int
    leaf_hash: bytes = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "leaf_hash", leaf_hash(self.data))


@dataclass(frozen=True, slots=True)
class SignedHead:
    """The signed-head lock: the largest tree ever signed (``size`` 0: nothing signed yet)."""

    size: int
    root: bytes


@dataclass(frozen=True, slots=True)
class StoredCheckpoint:
    """A signed checkpoint as stored; ``published_us`` is ``None`` until it may be served."""

    size: int
    root: bytes
    note: bytes
    signed_us: int
    published_us: int | None
