"""The bidding of `scripts.bench_cluster`: its server instances, lots and bidders, and the
client processes that bid for a number of seconds while the CPU of everyone is measured."""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing as mp
import os
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import websockets

from auction.client import Ack, BidderClient, ClientError

from .bench_cluster_storage import LedgerLockSampler, table_reads
from .harness.bidders import key_of, make_bidder
from .harness.bidders import wait_open as wait_lots_open
from .harness.machine import cpu_by_command, cpu_seconds, cpu_ticks, cpu_used
from .harness.processes import GavelServer
from .harness.stats import percentile

HOT = "hot"
START_PRICE = 10_000  # minor units (100.00 CNY)
CURRENCY = "CNY"
SECOND_US = 1_000_000
HTTP_TIMEOUT = aiohttp.ClientTimeout(total=60)
SERVER_FLAGS = [
    "--bids-per-second", "1000", "--connections-per-address", "100000", "--no-write-limits",
]  # fmt: skip


def instance(name: str, where: list[str], log: Path) -> GavelServer:
    """One `gavel serve` instance named `name` (its stderr and stdout to `log`), in a session
    of its own; with BENCH_PROFILE_DIR=DIR under cProfile, writing DIR/<log name>.prof."""
    profiles = os.environ.get("BENCH_PROFILE_DIR")
    profile = str(Path(profiles) / f"{log.stem}.prof") if profiles else None
    return GavelServer(where, log, flags=SERVER_FLAGS, name=name, profile=profile, new_session=True)


@contextlib.contextmanager
def servers(*members: GavelServer) -> Iterator[tuple[GavelServer, ...]]:
    """Start the members in turn (the first one makes the keys and secrets); stop all."""
    try:
        for member in members:
            member.start()
        yield members
    finally:
        for member in members:
            member.stop(20.0)


def server_cpu_s(server: GavelServer) -> float:
    """CPU seconds of a running instance so far (0.0 once it is gone)."""
    pid = server.pid
    return 0.0 if pid is None else cpu_seconds(pid)


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


async def make_bidders(urls: list[str], count: int, lots: list[str]) -> list[dict[str, str]]:
    """`count` bidders, bidder i made at (and later connected to) `urls[i % len(urls)]`."""
    limit = asyncio.Semaphore(8)
    async with aiohttp.ClientSession(timeout=HTTP_TIMEOUT) as http:

        async def one(n: int) -> dict[str, str]:
            async with limit:
                url = urls[n % len(urls)]  # made at the instance it will use
                return {**await make_bidder(http, url, n, lots), "url": url}

        return list(await asyncio.gather(*(one(n) for n in range(count))))


async def wait_open(url: str, lots: list[str], timeout: float = 60.0) -> None:
    async with aiohttp.ClientSession(timeout=HTTP_TIMEOUT) as http:
        await wait_lots_open(http, url, lots, timeout=timeout, poll=0.1)


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
                key = key_of(bidder["seed"])
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
    servers_: tuple[GavelServer, ...],
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
            server_cpu0 = {s.name: server_cpu_s(s) for s in servers_}
            client_cpu0 = sum(cpu_seconds(w.pid) for w in workers)
            postgres0 = cpu_by_command(("postgres",))
            redis0 = cpu_by_command(("redis-server",))
            time.sleep(seconds)
            busy1, total1 = cpu_ticks()
            server_cpu = {s.name: server_cpu_s(s) - server_cpu0[s.name] for s in servers_}
            client_cpu = sum(cpu_seconds(w.pid) for w in workers) - client_cpu0
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
