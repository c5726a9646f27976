#!/usr/bin/env python3
"""Signed bids against one and two `gavel serve` instances, and the time a killed writer's lot
takes to be written again. Everything on 127.0.0.1, in one run on one machine.

Configurations (each on fresh storage: a temporary SQLite directory, or a fresh PostgreSQL
schema of the database `test` and an empty Redis logical database):

  sqlite    one instance, `gavel serve --data DIR`
  pg-1      one instance, `gavel serve --db URL --instance a --redis URL`
  pg-2      two instances, `--instance a` and `--instance b`, same database and Redis

Workloads, in each configuration, with the same --bidders bidders (made over REST, each at
the instance its websocket will use; connections spread evenly over the instances) running
in --clients client processes, one bid in flight per bidder, for --seconds each:

  spread    --lots ENGLISH_TIMED lots (CNY); each bid goes to a random lot
  hot       one ENGLISH_TIMED lot; with two instances, the bids of the bidders connected to
            the instance that does not write it are forwarded to the writer over HTTP

Every bid is a signed request over a real websocket (`auction.client.BidderClient`) for the
lot's `min_next` as last learnt from an acknowledgement (the bidders of one client process
share what their acks told them; a bidder does not bid on a lot its own ack said it leads).
Reported: acknowledgements/s (every acknowledged bid, accepted or rejected, is a durable
ledger entry), accepted bids/s, rejections by reason, acknowledgement latency p50/p95/p99
(send to ack, in the client), with two instances also for bids answered by the writer
itself ("local") and forwarded ones. Where the time goes, in % of one core: CPU of the
servers, of the client processes, of PostgreSQL (every `postgres` process of the machine)
and of everything else ("other": the rest of a shared machine's work); and, with PostgreSQL,
the share of 20 ms samples of `pg_locks` in which the ledger's advisory lock (`LEDGER_LOCK`)
was held, and in which a second writer waited for it, and how often `lot_owners` was read
(`pg_stat_user_tables`).

Takeover (--kills times, each with fresh processes on a fresh schema): two instances, the
hot lot, --takeover-bidders bidders split over both; after a few seconds of bidding the
instance writing the hot lot gets SIGKILL. Reported: seconds from the kill until
`lot_owners.owner` names the survivor (polled every 10 ms; and `lot_owners.since_us` minus
the kill time, the survivor's own clock), and until the first accepted acknowledgement, on
a client connected to the survivor, of a bid written by the survivor (its ledger entry's
ingress time is after the kill: acks of entries the killed instance stored just before it
died do not count).

Every server gets `--bids-per-second 1000` (the per-account limit does not interfere) and
a high `--connections-per-address` and `--no-write-limits` (all clients come from
127.0.0.1). Every process this
script starts is stopped (SIGTERM, then SIGKILL) on the way out, errors included; schemas
are dropped and the Redis databases flushed.

With BENCH_PROFILE_DIR=DIR every server runs under cProfile and writes DIR/<name>.prof when
it stops (the main thread only: waits on the storage thread show as `epoll`).

Usage: .venv/bin/python scripts/bench_cluster.py [--seconds 15] [--kills 3] [--bidders 64]
       [--lots 8] [--clients 2] [--configs sqlite,pg-1,pg-2] [--quick] [--json FILE]
       [--logs DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import hashlib
import json
import multiprocessing as mp
import os
import platform
import random
import re
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import aiohttp  # noqa: E402
import psycopg  # noqa: E402
import redis  # noqa: E402
import websockets  # noqa: E402
from bench_bids import free_port, percentile  # noqa: E402  (scripts/ is on sys.path)
from bench_bids import make_bidder as rest_bidder  # noqa: E402
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey  # noqa: E402

from auction.client import Ack, BidderClient, ClientError  # noqa: E402
from auction.storage import LEDGER_LOCK  # noqa: E402
from chain import parse_time  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/test"
REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379
HOT = "hot"
START_PRICE = 10_000  # minor units (100.00 CNY)
CURRENCY = "CNY"
SECOND_US = 1_000_000
GAVEL = [sys.executable, "-c", "from auction.cli import main; raise SystemExit(main())"]
CONFIGS = ("sqlite", "pg-1", "pg-2")
HTTP_TIMEOUT = aiohttp.ClientTimeout(total=60)
SERVER_FLAGS = [
    "--bids-per-second", "1000", "--connections-per-address", "100000", "--no-write-limits",
]  # fmt: skip


# --- the machine ----------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    model = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    ram_gib = float("nan")
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                ram_gib = int(line.split()[1]) / 1024 / 1024
    postgres = redis_version = "?"
    with contextlib.suppress(Exception), psycopg.connect(PG_ADMIN_URL, connect_timeout=3) as pg:
        row = pg.execute("SHOW server_version").fetchone()
        postgres = str(row[0]) if row else "?"
    with contextlib.suppress(Exception):
        info = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, socket_timeout=3).info("server")
        redis_version = str(info.get("redis_version", "?"))
    return {
        "commit": source_version(),
        "code_digest": code_digest(),
        "nproc": os.cpu_count(),
        "cpu": model,
        "ram_gib": round(ram_gib, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "postgresql": postgres,
        "redis": redis_version,
        "load_before": os.getloadavg(),
    }


def code_digest() -> str:
    """A digest of the product code (`auction/`, `chain/`): the checkout may change while
    this runs (other work in the same directory)."""
    digest = hashlib.sha256()
    for path in sorted([*ROOT.glob("auction/**/*.py"), *ROOT.glob("chain/**/*.py")]):
        with contextlib.suppress(OSError):
            digest.update(str(path.relative_to(ROOT)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:12]


def source_version() -> str:
    """The checkout's commit, and whether the product code differs from it."""
    commit = "?"
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        )
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "auction", "chain"],
            cwd=ROOT,
            capture_output=True,
            text=True,
        )
        commit = head.stdout.strip() + (" (auction/chain modified)" if dirty.stdout else "")
    return commit


def cpu_ticks() -> tuple[int, int]:
    """(busy, total) jiffies of the whole machine, from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields) - idle, sum(fields)


def cpu_by_command(names: tuple[str, ...] = ("postgres", "redis-server")) -> dict[int, float]:
    """CPU seconds so far of every process whose command name is one of `names`, by pid
    (PostgreSQL: the postmaster, its backends and workers, whoever they serve)."""
    found: dict[int, float] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if stat[stat.find("(") + 1 : stat.rfind(")")] in names:
            after = stat.rsplit(")", 1)[1].split()
            found[int(entry.name)] = (int(after[11]) + int(after[12])) / os.sysconf("SC_CLK_TCK")
    return found


def cpu_used(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU seconds between two `cpu_by_command` readings (processes that ended in between
    are lost; new ones count from 0)."""
    return sum(v - before.get(pid, 0.0) for pid, v in after.items())


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds of one process (0 when it is gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    after = stat.rsplit(")", 1)[1].split()
    return (int(after[11]) + int(after[12])) / os.sysconf("SC_CLK_TCK")


# --- storage: PostgreSQL schemas, Redis databases -------------------------------------------


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


# --- server processes -----------------------------------------------------------------------


class Server:
    """One `gavel serve` process. Stdout is read on a thread (the URL, the console token);
    stderr goes to a log file."""

    def __init__(self, name: str, where: list[str], log: Path) -> None:
        self.name = name
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        gavel = GAVEL
        profiles = os.environ.get("BENCH_PROFILE_DIR")
        if profiles:  # each server under cProfile, written when it stops (SIGTERM)
            out = Path(profiles) / f"{log.stem}.prof"
            gavel = [sys.executable, "-m", "cProfile", "-o", str(out), "-m", "auction.cli"]
        self.command = [*gavel, "serve", *where, "--host", "127.0.0.1", "--port", str(self.port)]
        self.command += SERVER_FLAGS
        self.process: subprocess.Popen[str] | None = None
        self.token = ""

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self, timeout: float = 60.0) -> None:
        with self.log.open("ab") as err:
            self.process = subprocess.Popen(
                self.command,
                cwd=ROOT,
                stdout=subprocess.PIPE,
                stderr=err,
                text=True,
                start_new_session=True,
            )
        stdout = self.process.stdout
        assert stdout is not None
        ready = threading.Event()

        def read() -> None:
            for line in stdout:  # keeps draining until the process ends
                found = re.search(r"#token=(\S+)", line)
                if found:
                    self.token = found.group(1)
                    ready.set()
            ready.set()

        threading.Thread(target=read, name=f"stdout-{self.name}", daemon=True).start()
        if not ready.wait(timeout) or not self.token:
            tail = self.log.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"instance {self.name} did not start; its log ends:\n{tail}")

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def sigkill(self) -> None:
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)

    def stop(self, timeout: float = 20.0) -> None:
        process = self.process
        if process is None:
            return
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.sigkill()
        process.wait()


@contextlib.contextmanager
def servers(*members: Server) -> Iterator[tuple[Server, ...]]:
    """Start the members in turn (the first one makes the keys and secrets); stop all."""
    try:
        for member in members:
            member.start()
        yield members
    finally:
        for member in members:
            member.stop()


# --- setup over REST ------------------------------------------------------------------------


async def create_lots(
    http: aiohttp.ClientSession, url: str, token: str, lots: list[str], start_in: float
) -> None:
    now = int(time.time() * SECOND_US)
    for lot in lots:
        body = {
            "preset": "ENGLISH_TIMED",
            "lot": lot,
            "title": f"Benchmark lot {lot}",
            "parameters": {
                "start_price": START_PRICE,
                "start_at": now + int(start_in * SECOND_US),
                "end_at": now + 3 * 3600 * SECOND_US,
                "currency": CURRENCY,
            },
        }
        headers = {"Authorization": f"Bearer {token}"}
        async with http.post(f"{url}/api/console/lots", json=body, headers=headers) as response:
            if response.status != 201:
                raise RuntimeError(f"cannot create lot {lot}: {await response.text()}")


async def make_bidder(
    http: aiohttp.ClientSession, url: str, n: int, lots: list[str]
) -> dict[str, str]:
    """Account, identity and registrations for one bidder, at the instance it will use."""
    return {**await rest_bidder(http, url, n, lots), "url": url}


async def make_bidders(urls: list[str], count: int, lots: list[str]) -> list[dict[str, str]]:
    """`count` bidders, bidder i made at (and later connected to) `urls[i % len(urls)]`."""
    limit = asyncio.Semaphore(8)
    async with aiohttp.ClientSession(timeout=HTTP_TIMEOUT) as http:

        async def one(n: int) -> dict[str, str]:
            async with limit:
                return await make_bidder(http, urls[n % len(urls)], n, lots)

        return list(await asyncio.gather(*(one(n) for n in range(count))))


async def wait_open(url: str, lots: list[str], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession(timeout=HTTP_TIMEOUT) as http:
        while time.monotonic() < deadline:
            async with http.get(f"{url}/api/lots") as response:
                views = (await response.json())["lots"]
            status = {v["lot_id"]: v["status"] for v in views}
            if all(status.get(lot) == "OPEN" for lot in lots):
                return
            await asyncio.sleep(0.1)
    raise RuntimeError(f"lots {lots} did not open in {timeout} s")


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


# --- bidding --------------------------------------------------------------------------------


@dataclass
class Known:
    """What one client process's acks said about a lot."""

    min_next: int = START_PRICE
    seq: int = -1
    leader: str | None = None


@dataclass
class Tally:
    latencies: dict[str, list[float]] = field(default_factory=lambda: {"local": [], "fwd": []})
    answered: int = 0
    accepted: int = 0
    rejections: dict[str, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)


def learn(known: Known, account: str, ack: Ack) -> None:
    if ack.seq is None or ack.seq < known.seq:
        return
    if ack.min_next is not None:
        known.min_next = max(known.min_next, ack.min_next)
    if ack.leader_is_you:
        known.leader = account
    elif ack.seq > known.seq or known.leader == account:
        known.leader = None
    known.seq = ack.seq


def pick_lot(rng: random.Random, lots: list[str], knowledge: dict[str, Known], me: str) -> str:
    free = [lot for lot in lots if knowledge[lot].leader != me]
    return rng.choice(free) if free else ""


async def bid_until(
    client: BidderClient,
    url: str,
    lots: list[str],
    writers: dict[str, str | None],
    knowledge: dict[str, Known],
    stop_at: float,
    rng: random.Random,
    tally: Tally,
) -> None:
    me = client.account or ""
    while time.time() < stop_at:
        lot = pick_lot(rng, lots, knowledge, me)
        if not lot:  # it leads every lot it may bid on: wait for someone to outbid it
            await asyncio.sleep(0.002)
            continue
        sent = time.perf_counter()
        try:
            ack = await client.bid(lot, knowledge[lot].min_next, CURRENCY, timeout=30)
        except (ClientError, TimeoutError, OSError, websockets.WebSocketException) as exc:
            tally.errors.append(f"{type(exc).__name__}: {exc}")
            if client.closed.is_set():
                return
            continue
        tally.latencies["local" if writers.get(lot) in (None, url) else "fwd"].append(
            (time.perf_counter() - sent) * 1000
        )
        tally.answered += 1
        if ack.accepted:
            tally.accepted += 1
        else:
            reason = str(ack.reason)
            tally.rejections[reason] = tally.rejections.get(reason, 0) + 1
        learn(knowledge[lot], me, ack)


def client_process(
    plan: list[dict[str, str]],
    lots: list[str],
    writers: dict[str, str | None],
    seconds: float,
    seed: int,
    inbox: Any,
    outbox: Any,
) -> None:
    """One client process: connect every bidder of `plan`, say ready, wait for the start
    time from `inbox`, bid until it plus `seconds`, put the tally in `outbox`."""

    async def main() -> dict[str, Any]:
        limit = asyncio.Semaphore(16)

        async def connect(bidder: dict[str, str]) -> BidderClient:
            async with limit:
                key = Ed25519PrivateKey.from_private_bytes(base64.b64decode(bidder["seed"]))
                return await BidderClient.connect(
                    bidder["url"], account=bidder["account"], key=key, session=bidder["session"]
                )

        clients = await asyncio.gather(*(connect(b) for b in plan))
        outbox.put(("ready", seed, len(clients)))
        start_at = await asyncio.to_thread(inbox.get, True, 600)
        tally = Tally()
        try:
            if start_at is not None:
                await asyncio.sleep(max(0.0, start_at - time.time()))
                knowledge = {lot: Known() for lot in lots}
                rng = random.Random(seed)
                await asyncio.gather(
                    *(
                        bid_until(
                            client,
                            bidder["url"],
                            lots,
                            writers,
                            knowledge,
                            start_at + seconds,
                            random.Random(rng.random()),
                            tally,
                        )
                        for client, bidder in zip(clients, plan, strict=True)
                    )
                )
        finally:
            await asyncio.gather(*(c.close() for c in clients), return_exceptions=True)
        return {
            "latencies": tally.latencies,
            "answered": tally.answered,
            "accepted": tally.accepted,
            "rejections": tally.rejections,
            "errors": tally.errors[:5],
            "error_count": len(tally.errors),
        }

    try:
        outbox.put(("result", seed, asyncio.run(main())))
    except BaseException as exc:
        outbox.put(("failed", seed, repr(exc)))
        raise


def _kill_workers(workers: list[Any]) -> None:
    for worker in workers:
        if worker.is_alive():
            worker.kill()
        worker.join(10)


def run_workload(
    bidders: list[dict[str, str]],
    lots: list[str],
    writers: dict[str, str | None],
    seconds: float,
    processes: int,
    servers_: tuple[Server, ...],
    database_url: str | None,
) -> dict[str, Any]:
    """The bidders in `processes` client processes, bidding on `lots` for `seconds`."""
    context = mp.get_context("spawn")
    outbox: Any = context.Queue()
    inboxes: list[Any] = []
    workers: list[Any] = []
    plans: list[list[dict[str, str]]] = [[] for _ in range(processes)]
    by_url: dict[str, list[dict[str, str]]] = {}
    for bidder in bidders:
        by_url.setdefault(bidder["url"], []).append(bidder)
    for group in by_url.values():  # every client process gets its share of every instance
        for k, bidder in enumerate(group):
            plans[k % processes].append(bidder)
    try:
        for i, plan in enumerate(plans):
            inbox: Any = context.Queue()
            worker = context.Process(
                target=client_process,
                args=(plan, lots, writers, seconds, 1000 + i, inbox, outbox),
                daemon=True,
            )
            worker.start()
            inboxes.append(inbox)
            workers.append(worker)
        for _ in workers:
            kind, _who, detail = outbox.get(timeout=120)
            if kind != "ready":
                raise RuntimeError(f"a client process failed to connect: {detail}")
        start_at = time.time() + 0.5
        for inbox in inboxes:
            inbox.put(start_at)
        time.sleep(max(0.0, start_at - time.time()))
        sampler = LedgerLockSampler(database_url) if database_url else None
        owner_reads0 = table_reads(database_url, "lot_owners") if database_url else 0
        with sampler or contextlib.nullcontext():
            busy0, total0 = cpu_ticks()
            server_cpu0 = {s.name: process_cpu_s(s.pid) for s in servers_}
            client_cpu0 = sum(process_cpu_s(w.pid) for w in workers)
            postgres0 = cpu_by_command(("postgres",))
            redis0 = cpu_by_command(("redis-server",))
            time.sleep(seconds)
            busy1, total1 = cpu_ticks()
            server_cpu = {s.name: process_cpu_s(s.pid) - server_cpu0[s.name] for s in servers_}
            client_cpu = sum(process_cpu_s(w.pid) for w in workers) - client_cpu0
            postgres_cpu = cpu_used(postgres0, cpu_by_command(("postgres",)))
            redis_cpu = cpu_used(redis0, cpu_by_command(("redis-server",)))
        lock: dict[str, Any] = {}
        if sampler is not None and database_url is not None:
            lock = sampler.summary()
            lock["lot_owners_reads"] = table_reads(database_url, "lot_owners") - owner_reads0
        results = []
        for _ in workers:
            kind, _who, detail = outbox.get(timeout=seconds + 120)
            if kind != "result":
                raise RuntimeError(f"a client process failed: {detail}")
            results.append(detail)
    finally:
        _kill_workers(workers)
    busy_pct = 100 * (busy1 - busy0) / max(1, total1 - total0)
    ours = 100 * (sum(server_cpu.values()) + client_cpu + postgres_cpu + redis_cpu) / seconds
    local = [x for r in results for x in r["latencies"]["local"]]
    forwarded = [x for r in results for x in r["latencies"]["fwd"]]
    every = local + forwarded
    answered = sum(r["answered"] for r in results)
    accepted = sum(r["accepted"] for r in results)
    rejections: dict[str, int] = {}
    for r in results:
        for reason, count in r["rejections"].items():
            rejections[reason] = rejections.get(reason, 0) + count
    return {
        "acks_per_s": answered / seconds,
        "accepted_per_s": accepted / seconds,
        "acks": answered,
        "accepted": accepted,
        "rejections": dict(sorted(rejections.items(), key=lambda kv: -kv[1])),
        "ack_p50_ms": percentile(every, 50),
        "ack_p95_ms": percentile(every, 95),
        "ack_p99_ms": percentile(every, 99),
        "forwarded_share": len(forwarded) / len(every) if every else 0.0,
        "local_p50_ms": percentile(local, 50),
        "forwarded_p50_ms": percentile(forwarded, 50),
        "forwarded_p99_ms": percentile(forwarded, 99),
        "server_cpu_pct": {k: round(100 * v / seconds, 1) for k, v in server_cpu.items()},
        "client_cpu_pct": round(100 * client_cpu / seconds, 1),
        "postgres_cpu_pct": round(100 * postgres_cpu / seconds, 1),
        "redis_cpu_pct": round(100 * redis_cpu / seconds, 1),
        "machine_busy_pct": round(busy_pct, 1),
        "other_cpu_pct": round(max(0.0, busy_pct * (os.cpu_count() or 1) - ours), 1),
        "server_cpu_ms_per_ack": round(1000 * sum(server_cpu.values()) / max(1, answered), 2),
        "ledger_lock": lock,
        "client_errors": sum(r["error_count"] for r in results),
        "client_error_samples": [e for r in results for e in r["errors"]][:5],
    }


# --- configurations -------------------------------------------------------------------------


def run_configuration(config: str, args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    logs = args.logs or tmp
    spread = [f"s{i + 1}" for i in range(args.lots)]
    lots = [*spread, HOT]
    with contextlib.ExitStack() as stack:
        database_url: str | None = None
        if config == "sqlite":
            members: tuple[Server, ...] = (
                Server("sqlite", ["--data", str(tmp / config / "data")], logs / f"{config}.log"),
            )
        else:
            database_url = stack.enter_context(pg_schema())
            redis_url = stack.enter_context(redis_database())
            names = ["a"] if config == "pg-1" else ["a", "b"]
            members = tuple(
                Server(
                    name,
                    ["--db", database_url, "--instance", name, "--redis", redis_url],
                    logs / f"{config}-{name}.log",
                )
                for name in names
            )
        (tmp / config).mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        stack.enter_context(servers(*members))
        first = members[0]
        urls = [m.url for m in members]

        async def prepare() -> list[dict[str, str]]:
            async with aiohttp.ClientSession(timeout=HTTP_TIMEOUT) as http:
                await create_lots(http, first.url, first.token, lots, start_in=3.0)
            if database_url is not None:
                await wait_owned(database_url, lots)
            made = await make_bidders(urls, args.bidders, lots)
            for url in urls:
                await wait_open(url, lots)
            return made

        bidders = asyncio.run(prepare())
        writers: dict[str, str | None] = {lot: None for lot in lots}
        split: dict[str, list[str]] = {}
        if database_url is not None:
            by_name = {m.name: m.url for m in members}
            for lot, (owner, _token, _since) in lot_owners(database_url).items():
                writers[lot] = by_name.get(owner or "")
                split.setdefault(owner or "-", []).append(lot)
        setup_s = time.monotonic() - started
        result: dict[str, Any] = {
            "instances": len(members),
            "writers": {k: sorted(v) for k, v in sorted(split.items())},
            "setup_s": round(setup_s, 1),
        }
        for workload, chosen in (("spread", spread), ("hot", [HOT])):
            print(f"  {config} {workload}: {args.seconds:g} s ...", flush=True)
            result[workload] = run_workload(
                bidders,
                chosen,
                writers,
                args.seconds,
                args.clients,
                members,
                database_url,
            )
            show_row(config, workload, result[workload])
        return result


# --- takeover -------------------------------------------------------------------------------


@dataclass
class Received:
    at: float  # time.monotonic() of the ack's arrival
    accepted: bool
    reason: str | None
    entry: int | None


async def takeover_once(args: argparse.Namespace, tmp: Path, round_: int) -> dict[str, Any]:
    with pg_schema() as database_url, redis_database() as redis_url:
        a, b = (
            Server(
                name,
                ["--db", database_url, "--instance", name, "--redis", redis_url],
                (args.logs or tmp) / f"takeover{round_}-{name}.log",
            )
            for name in ("a", "b")
        )
        with servers(a, b):
            async with aiohttp.ClientSession(timeout=HTTP_TIMEOUT) as http:
                await create_lots(http, a.url, a.token, [HOT], start_in=3.0)
            before = await wait_owned(database_url, [HOT])
            victim, survivor = (a, b) if before[HOT][0] == "a" else (b, a)
            made = await make_bidders([a.url, b.url], args.takeover_bidders, [HOT])
            await wait_open(survivor.url, [HOT])
            clients = [
                await BidderClient.connect(
                    m["url"],
                    account=m["account"],
                    key=Ed25519PrivateKey.from_private_bytes(base64.b64decode(m["seed"])),
                    session=m["session"],
                )
                for m in made
            ]
            received: list[Received] = []  # survivor clients' acks only
            stop = asyncio.Event()
            knowledge = Known()

            async def bidder(client: BidderClient, url: str) -> None:
                mine = url == survivor.url
                me = client.account or ""
                while not stop.is_set():
                    if knowledge.leader == me:
                        await asyncio.sleep(0.002)
                        continue
                    try:
                        ack = await client.bid(HOT, knowledge.min_next, CURRENCY, timeout=30)
                    except (ClientError, TimeoutError, OSError, websockets.WebSocketException):
                        if client.closed.is_set():
                            return  # connected to the killed instance
                        continue
                    if mine:
                        received.append(
                            Received(time.monotonic(), ack.accepted, ack.reason, ack.entry)
                        )
                    learn(knowledge, me, ack)

            tasks = [
                asyncio.create_task(bidder(c, m["url"])) for c, m in zip(clients, made, strict=True)
            ]
            try:
                await asyncio.sleep(args.takeover_warmup)
                acked_before = len(received)
                kill_wall_us = int(time.time() * SECOND_US)
                killed_at = time.monotonic()
                victim.sigkill()
                owner_s: float | None = None
                since_us = 0
                deadline = killed_at + 30
                while time.monotonic() < deadline:
                    owner, _token, since_us = (await asyncio.to_thread(lot_owners, database_url))[
                        HOT
                    ]
                    if owner == survivor.name:
                        owner_s = time.monotonic() - killed_at
                        break
                    await asyncio.sleep(0.01)
                # keep bidding until the survivor's clients have several accepted acks
                while time.monotonic() < deadline:
                    after = [r for r in received[acked_before:] if r.accepted]
                    if owner_s is not None and len(after) >= 5:
                        break
                    await asyncio.sleep(0.05)
            finally:
                stop.set()
                await asyncio.wait(tasks, timeout=35)
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                await asyncio.gather(*(c.close() for c in clients), return_exceptions=True)
            late = [r for r in received[acked_before:] if r.at >= killed_at]
            seqs = [r.entry for r in late if r.accepted and r.entry is not None]
            ingress = await asyncio.to_thread(entry_ingress, database_url, seqs)
            boundary = kill_wall_us + 1000  # the victim stamps nothing after it is killed
            first_ack_s: float | None = None
            stale = 0
            for r in late:
                if not r.accepted or r.entry is None:
                    continue
                if ingress.get(r.entry, 0) > boundary:
                    first_ack_s = r.at - killed_at
                    break
                stale += 1
            gap_rejections: dict[str, int] = {}
            for r in late:
                if not r.accepted and (first_ack_s is None or r.at - killed_at <= first_ack_s):
                    reason = str(r.reason)
                    gap_rejections[reason] = gap_rejections.get(reason, 0) + 1
            return {
                "victim": victim.name,
                "survivor": survivor.name,
                "owner_s": owner_s,
                "since_s": (since_us - kill_wall_us) / SECOND_US if owner_s is not None else None,
                "first_ack_s": first_ack_s,
                "acks_of_earlier_entries_after_kill": stale,
                "rejections_before_first_ack": gap_rejections,
                "survivor_acks_before_kill": acked_before,
            }


def run_takeovers(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    rounds = []
    for i in range(args.kills):
        outcome = asyncio.run(takeover_once(args, tmp, i))
        rounds.append(outcome)
        print(
            f"  kill {i + 1}: instance {outcome['victim']} killed; owner = "
            f"{outcome['survivor']} after {fmt_s(outcome['owner_s'])} "
            f"(since_us: {fmt_s(outcome['since_s'])}); first accepted ack from the survivor "
            f"after {fmt_s(outcome['first_ack_s'])}",
            flush=True,
        )

    def median(name: str) -> float | None:
        values = [r[name] for r in rounds if r[name] is not None]
        return statistics.median(values) if values else None

    return {
        "rounds": rounds,
        "median_owner_s": median("owner_s"),
        "median_since_s": median("since_s"),
        "median_first_ack_s": median("first_ack_s"),
    }


# --- output ---------------------------------------------------------------------------------


def fmt_s(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f} s"


HEADER = (
    f"{'config':<7} {'workload':<8} {'acks/s':>8} {'accepted/s':>10} {'p50 ms':>7} "
    f"{'p95 ms':>7} {'p99 ms':>7} {'fwd':>5} {'local p50':>9} {'fwd p50':>8} "
    f"{'CPU %: server':>13} {'clients':>7} {'pg':>4} {'other':>5}"
)


def show_row(config: str, workload: str, r: dict[str, Any]) -> None:
    cpu = "+".join(f"{v:.0f}" for v in r["server_cpu_pct"].values())
    print(
        f"{config:<7} {workload:<8} {r['acks_per_s']:>8,.0f} {r['accepted_per_s']:>10,.0f} "
        f"{r['ack_p50_ms']:>7.1f} {r['ack_p95_ms']:>7.1f} {r['ack_p99_ms']:>7.1f} "
        f"{100 * r['forwarded_share']:>4.0f}% {r['local_p50_ms']:>9.1f} "
        f"{r['forwarded_p50_ms']:>8.1f} {cpu:>13} {r['client_cpu_pct']:>7.0f} "
        f"{r['postgres_cpu_pct']:>4.0f} {r['other_cpu_pct']:>5.0f}",
        flush=True,
    )
    if r["rejections"]:
        print(f"          rejected: {r['rejections']}", flush=True)
    if r["ledger_lock"]:
        lock = r["ledger_lock"]
        print(
            f"          LEDGER_LOCK in {lock['samples']} samples: held {lock['held_pct']}%, "
            f"a second writer waiting {lock['waited_pct']}%; lot_owners read "
            f"{lock['lot_owners_reads']:,} times",
            flush=True,
        )
    if r["client_errors"]:
        print(f"          client errors: {r['client_errors']} {r['client_error_samples']}")


def _interrupted(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=15.0, help="per workload")
    parser.add_argument("--kills", type=int, default=3, help="takeover rounds")
    parser.add_argument("--bidders", type=int, default=64)
    parser.add_argument("--lots", type=int, default=8, help="lots of the spread workload")
    parser.add_argument("--clients", type=int, default=2, help="client processes")
    parser.add_argument("--takeover-bidders", type=int, default=16)
    parser.add_argument("--takeover-warmup", type=float, default=3.0, help="s before the kill")
    parser.add_argument("--configs", default=",".join(CONFIGS))
    parser.add_argument("--quick", action="store_true", help="4 s per workload, 1 kill")
    parser.add_argument("--json", type=Path, metavar="FILE", help="write the results here")
    parser.add_argument(
        "--logs", type=Path, metavar="DIR", help="keep the servers' logs here (default: dropped)"
    )
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, _interrupted)  # stop the servers on the way out
    if args.quick:
        args.seconds, args.kills, args.takeover_warmup = 4.0, 1, 2.0
    configs = [c for c in args.configs.split(",") if c]
    unknown = set(configs) - set(CONFIGS)
    if unknown:
        parser.error(f"unknown configurations {sorted(unknown)}; choose from {CONFIGS}")
    info = machine()
    print(
        f"# {info['nproc']} CPUs ({info['cpu']}), {info['ram_gib']} GiB RAM, Linux "
        f"{info['kernel']}, Python {info['python']}, SQLite {info['sqlite']}, PostgreSQL "
        f"{info['postgresql']}, Redis {info['redis']}; commit {info['commit']}; load "
        f"{info['load_before'][0]:.2f}",
        flush=True,
    )
    print(
        f"# {args.bidders} bidders in {args.clients} client processes, one bid in flight each; "
        f"{args.seconds:g} s per workload; spread over {args.lots} lots; {args.kills} kills",
        flush=True,
    )
    started = time.monotonic()
    output: dict[str, Any] = {
        "command": " ".join([".venv/bin/python", "scripts/bench_cluster.py", *sys.argv[1:]]),
        "machine": info,
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "configurations": {},
    }
    with tempfile.TemporaryDirectory(prefix="gavel-bench-cluster-") as name:
        tmp = Path(name)
        if args.logs is not None:
            args.logs.mkdir(parents=True, exist_ok=True)
        print(HEADER, flush=True)
        for config in configs:
            output["configurations"][config] = run_configuration(config, args, tmp)
        if args.kills > 0:
            print("# takeover: SIGKILL of the instance writing the hot lot", flush=True)
            output["takeover"] = run_takeovers(args, tmp)
    output["wall_s"] = round(time.monotonic() - started, 1)
    output["load_after"] = os.getloadavg()
    output["commit_after"] = source_version()
    output["code_digest_after"] = code_digest()
    if output["code_digest_after"] != info["code_digest"]:
        print(f"# warning: auction/ or chain/ changed during the run ({output['commit_after']})")
    print(f"\n{HEADER}")
    for config, result in output["configurations"].items():
        for workload in ("spread", "hot"):
            show_row(config, workload, result[workload])
        if result["writers"]:
            print(f"          writers: {result['writers']}")
    if "takeover" in output:
        t = output["takeover"]
        print(
            f"takeover medians over {len(t['rounds'])}: owner after {fmt_s(t['median_owner_s'])}"
            f" (since_us {fmt_s(t['median_since_s'])}), first accepted ack from the survivor "
            f"after {fmt_s(t['median_first_ack_s'])}"
        )
    print(f"# {output['wall_s']} s in all; load average after: {output['load_after'][0]:.2f}")
    if args.json is not None:
        args.json.write_text(json.dumps(output, indent=2, default=str) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
