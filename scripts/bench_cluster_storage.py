"""The shared storage of `scripts.bench_cluster`: fresh PostgreSQL schemas and Redis logical
databases, what PostgreSQL says about the lots' writers and the ledger, and a sampler of the
ledger's advisory lock."""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import threading
import time
import uuid
import zlib
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import psycopg
import redis

from auction.storage import LEDGER_LOCK
from chain import parse_time

PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/test"
REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379


@contextlib.contextmanager
def pg_schema() -> Iterator[str]:
    """A fresh schema of the database `test`; the URL makes it the default; dropped after."""
    schema = f"gavel_bench_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=5) as admin:
        admin.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield f"{PG_ADMIN_URL}?options={quote(f'-csearch_path={schema}')}"
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=5) as admin:
            admin.execute(f'DROP SCHEMA "{schema}" CASCADE')


@contextlib.contextmanager
def redis_database() -> Iterator[str]:
    """An empty Redis logical database (1..15, probed in random order), flushed after."""
    order = list(range(1, 16))
    random.shuffle(order)
    for number in order:
        client = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=number, socket_timeout=3)
        try:
            if client.dbsize() == 0:
                break
        finally:
            client.close()
    else:
        raise RuntimeError("no empty Redis logical database among 1..15")
    try:
        yield f"redis://{REDIS_HOST}:{REDIS_PORT}/{number}"
    finally:
        client = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=number, socket_timeout=3)
        try:
            client.flushdb()
        finally:
            client.close()


def lot_owners(database_url: str) -> dict[str, tuple[str | None, int, int]]:
    """`lot_owners`: lot -> (owner, token, since_us)."""
    with psycopg.connect(database_url, connect_timeout=5) as connection:
        rows = connection.execute("SELECT lot_id, owner, token, since_us FROM lot_owners")
        return {str(r[0]): (r[1], int(r[2]), int(r[3])) for r in rows.fetchall()}


def table_reads(database_url: str, table: str) -> int:
    """Sequential plus index scans of `table` in the URL's schema so far (statistics are
    flushed by each backend at most once a second: approximate over a short window)."""
    with psycopg.connect(database_url, connect_timeout=5) as connection:
        row = connection.execute(
            "SELECT coalesce(seq_scan, 0) + coalesce(idx_scan, 0) FROM pg_stat_user_tables"
            " WHERE relid = to_regclass(%s)",
            (table,),
        ).fetchone()
    return int(row[0]) if row else 0


def entry_ingress(database_url: str, seqs: list[int]) -> dict[int, int]:
    """Ledger seq -> ingress time (µs) of the command entries among `seqs`."""
    if not seqs:
        return {}
    with psycopg.connect(database_url, connect_timeout=5) as connection:
        rows = connection.execute(
            "SELECT seq, data FROM ledger_entries WHERE seq = ANY(%s)", (seqs,)
        ).fetchall()
    found: dict[int, int] = {}
    for seq, data in rows:
        body = json.loads(bytes(data))["body"]
        if isinstance(body, dict) and "ingress" in body:
            found[int(seq)] = parse_time(body["ingress"])
    return found


class LedgerLockSampler:
    """Samples, every 20 ms on a thread, whether the ledger's advisory lock (`LEDGER_LOCK`,
    keyed `(namespace of the database and schema, LEDGER_LOCK)`) is held and waited for."""

    QUERY = (
        "SELECT granted FROM pg_locks WHERE locktype = 'advisory' AND classid = %s"
        " AND objid = %s AND objsubid = 2"
        " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
    )

    def __init__(self, database_url: str) -> None:
        self.database_url = database_url
        self.samples: list[list[bool]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ledger-lock", daemon=True)

    def _run(self) -> None:
        with psycopg.connect(self.database_url, autocommit=True, connect_timeout=5) as pg:
            row = pg.execute("SELECT current_database() || '/' || current_schema()").fetchone()
            namespace = zlib.crc32(str(row[0] if row else "").encode()) & 0x7FFF_FFFF
            key = (namespace, LEDGER_LOCK & 0xFFFF_FFFF)  # as auction.storage, as an oid
            while not self._stop.wait(0.02):
                self.samples.append([bool(r[0]) for r in pg.execute(self.QUERY, key)])

    def __enter__(self) -> LedgerLockSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)

    def summary(self) -> dict[str, Any]:
        """Shares of the samples in which the lock was held, and in which a second writer
        waited for it."""
        n = max(1, len(self.samples))
        return {
            "samples": len(self.samples),
            "held_pct": round(100 * sum(1 for s in self.samples if any(s)) / n),
            "waited_pct": round(100 * sum(1 for s in self.samples if not all(s)) / n),
        }


async def wait_owned(
    database_url: str, lots: list[str], timeout: float = 30.0
) -> dict[str, tuple[str | None, int, int]]:
    deadline = time.monotonic() + timeout
    found: dict[str, tuple[str | None, int, int]] = {}
    while time.monotonic() < deadline:
        found = await asyncio.to_thread(lot_owners, database_url)
        if all(found.get(lot, (None, 0, 0))[0] is not None for lot in lots):
            return found
        await asyncio.sleep(0.1)
    raise RuntimeError(f"lots without a writer after {timeout} s: {found}")
