"""Where the data lives and how to connect: data directory or database URL, SQLite's
durability settings, and the PostgreSQL advisory lock keys.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Connection, Engine, make_url
from sqlmodel import create_engine

from .errors import StorageUnavailable

#: File name of the SQLite database inside a data directory.
SQLITE_FILE = "gavel.db"

#: How long a SQLite writer waits for a lock held by another connection, in milliseconds.
SQLITE_BUSY_TIMEOUT_MS = 10_000

#: PostgreSQL transaction advisory locks, keyed `(namespace, key)` where the namespace names
#: the database and schema (`Storage.advisory_namespace`): two deployments in two schemas of
#: one database never wait for each other. Held while migrating:
_MIGRATION_LOCK = -3

#: ... while a house key and entry 0 are created:
_HOUSE_LOCK = -2

#: ... by each ledger write transaction: several server instances share one ledger and take
#: turns appending to it (each catches up first). (The cluster's session locks of lots use
#: the same namespace with keys >= 0.)
LEDGER_LOCK = -1


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


def connect(target: str | os.PathLike[str]) -> Engine:
    """An engine for a data directory or a database URL (`database_url`): SQLite with the
    durability settings of `_configure_sqlite`, PostgreSQL through psycopg 3. The caller
    disposes of it."""
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
        return engine
    if parsed.get_backend_name() == "postgresql":
        return create_engine(parsed, pool_pre_ping=True)
    raise StorageUnavailable(f"unsupported database: {parsed.get_backend_name()}")


def _data_directory(target: str | os.PathLike[str]) -> Path | None:
    """The data directory of a `Storage.open` target, or None for a database URL."""
    text = os.fspath(target)
    if "://" in text or text.startswith(("sqlite:", "postgresql")):
        return None
    return Path(text)


def _check_exists(target: str | os.PathLike[str]) -> None:
    """For a read-only open: a data directory must already hold its database."""
    directory = _data_directory(target)
    if directory is not None and not (directory / SQLITE_FILE).is_file():
        raise StorageUnavailable(f"no gavel database in {directory}")


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
