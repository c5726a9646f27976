"""The instance's lock connection: PostgreSQL session advisory locks, held as
long as that one connection lives.
"""

from __future__ import annotations

import contextlib
from typing import Any

from sqlalchemy.engine import Connection, Engine

from ..storage import StorageError


class AdvisoryLocks:
    """The instance's lock connection: session advisory locks live exactly as long as it.
    Blocking; used from the cluster's one thread."""

    def __init__(self, engine: Engine, namespace: int) -> None:
        self._engine = engine
        self._connection: Connection | None = None
        self.namespace = namespace  # this database schema's (`Storage.advisory_namespace`)
        self._database = 0

    @property
    def connected(self) -> bool:
        return self._connection is not None

    def connect(self) -> None:
        connection = self._engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        try:
            self._database = int(
                connection.exec_driver_sql(
                    "SELECT oid FROM pg_database WHERE datname = current_database()"
                ).scalar()
                or 0
            )
        except BaseException:
            connection.close()
            raise
        self._connection = connection

    def _run(self, sql: str, *args: int) -> Any:
        if self._connection is None:
            raise StorageError("the lock connection is closed")
        return self._connection.exec_driver_sql(sql, args).scalar()

    def try_lock(self, key: int) -> bool:
        return bool(self._run("SELECT pg_try_advisory_lock(%s, %s)", self.namespace, key))

    def unlock(self, key: int) -> None:
        self._run("SELECT pg_advisory_unlock(%s, %s)", self.namespace, key)

    def held(self) -> set[int]:
        """The lock keys of this namespace held by any instance now."""
        assert self._connection is not None
        rows = self._connection.exec_driver_sql(
            "SELECT objid::bigint FROM pg_locks WHERE locktype = 'advisory' AND granted"
            " AND database = %s AND classid::bigint = %s AND objsubid = 2",
            (self._database, self.namespace),
        ).all()
        return {int(row[0]) for row in rows}

    def close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            with contextlib.suppress(Exception):
                connection.close()
