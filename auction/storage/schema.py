"""The schema: the SQLModel tables of sales, lots, bidders, projections and history,
the house key and cluster tables, and the forward migrations between schema versions.
"""

from __future__ import annotations

import json
from collections.abc import Callable
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
    inspect,
    select,
)
from sqlalchemy.engine import Connection
from sqlalchemy.orm import registry
from sqlmodel import Field, SQLModel

from chain import store as ledger_store

from .. import sealed
from ..catalogue import facts as lotfacts
from ..identity.schema import migrate_identities

#: The schema this code writes. `MIGRATIONS[v - 1]` moves a database from version v - 1 to v.
SCHEMA_VERSION = 6


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
