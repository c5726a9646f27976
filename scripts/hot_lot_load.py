"""The signed-bid load of `scripts.bench_bids` on its one hot lot (also driven by
`scripts.bench_lots_video`): bidders and watchers in separate client processes, each bidder a
`BidderClient` keeping `depth` signed bids in flight, each watcher a bare websocket."""

from __future__ import annotations

import asyncio
import json
import multiprocessing as mp
import os
import time
from pathlib import Path
from typing import Any

import aiohttp
import websockets

from auction.client import BidderClient, ws_url

from .harness.bidders import key_of, make_bidder, wait_deposits, wait_open
from .harness.processes import GavelServer
from .harness.stats import percentile

LOT = "bench-hot"
STEP = 100  # minor units
START_PRICE = 1_000_000


def bench_server(tmp: Path, port: int, *, new_session: bool = False) -> GavelServer:
    """`gavel serve` on a fresh `TMP/data`, started, its log `TMP/server.log`; with
    BENCH_PROFILE=FILE under cProfile. Every bidder signs up from 127.0.0.1 (no write
    limits), and the per-bidder limit is raised so that the bidders, not the limit, set the
    pace."""
    flags = ["--bids-per-second", "100000", "--connections-per-address", "100000"]
    server = GavelServer(
        ["--data", str(tmp / "data")],
        tmp / "server.log",
        flags=[*flags, "--no-write-limits"],
        port=port,
        profile=os.environ.get("BENCH_PROFILE") or None,
        new_session=new_session,
    )
    server.start()
    return server


async def create_hot_lot(url: str, token: str, duration: float) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{url}/api/lots") as response:
            now = (await response.json())["now_us"]
        start = now + 1_000_000
        body = {
            "preset": "JUDICIAL_CN",
            "lot": LOT,
            "title": "Benchmark lot",
            "parameters": {
                "start_price": START_PRICE,
                "step": STEP,
                "start_at": start,
                "end_at": start + int((duration + 3600) * 1_000_000),
                "min_duration": 0,
            },
        }
        headers = {"Authorization": f"Bearer {token}"}
        async with http.post(f"{url}/api/console/lots", json=body, headers=headers) as response:
            if response.status != 201:
                raise RuntimeError(f"cannot create the lot: {await response.text()}")


async def make_bidders(url: str, count: int) -> list[dict[str, str]]:
    """`count` bidders registered for the hot lot, their deposits frozen, the lot open."""
    limit = asyncio.Semaphore(16)
    async with aiohttp.ClientSession() as http:

        async def one(n: int) -> dict[str, str]:
            async with limit:
                return await make_bidder(http, url, n, (LOT,))

        bidders = await asyncio.gather(*(one(n) for n in range(count)))
        sessions = [bidder["session"] for bidder in bidders]
        ready = ("FROZEN", "NOT_REQUIRED", None)
        await wait_deposits(http, url, sessions, (LOT,), ready=ready)
        await wait_open(http, url, (LOT,), timeout=float("inf"), poll=0.1)
    return list(bidders)


async def bidder_loop(
    url: str,
    bidder: dict[str, str],
    duration: float,
    depth: int,
    interval: float | None,
    latencies: list[float],
    counts: dict[str, int],
    start_at: float,
) -> None:
    key = key_of(bidder["seed"])
    client = await BidderClient.connect(
        url, account=bidder["account"], key=key, session=bidder["session"]
    )
    known = {"min_next": START_PRICE}
    t0 = int(start_at * 100_000)
    stop_at = start_at + duration
    await asyncio.sleep(max(0.0, start_at - time.time()))

    async def lane(offset: float) -> None:
        next_send = start_at + offset
        while True:
            if interval is not None:
                next_send += interval
                delay = next_send - time.time()
                if delay > 0:
                    await asyncio.sleep(delay)
            if time.time() >= stop_at:
                return
            sent = time.perf_counter()
            # Amounts rise with the send time (10 µs per step), so bids arriving in the order
            # they were sent are all valid; a bid overtaken by a later one is rejected.
            amount = max(known["min_next"], START_PRICE + STEP * (time.time_ns() // 10_000 - t0))
            ack = await client.bid(LOT, amount, "CNY", timeout=60)
            latencies.append((time.perf_counter() - sent) * 1000)
            counts["answered"] += 1
            if ack.accepted:
                counts["accepted"] += 1
            else:
                reason = f"rejected:{ack.reason}"
                counts[reason] = counts.get(reason, 0) + 1
            if ack.min_next is not None and ack.min_next > known["min_next"]:
                known["min_next"] = ack.min_next

    try:
        spread = (interval or 0.0) / depth
        await asyncio.gather(*(lane(i * spread) for i in range(depth)))
    finally:
        await client.close()


async def watcher_loop(url: str, duration: float, ages: list[float], start_at: float) -> None:
    """A watcher on a bare websocket: every update is received, every 10th is parsed for the
    age of its newest bid (parsing them all would make the client, not the server, the
    bottleneck of this benchmark)."""
    async with websockets.connect(ws_url(url), max_size=2**20) as ws:
        await ws.send(json.dumps({"type": "hello", "v": 1, "session": None}))
        await ws.recv()
        await ws.send(json.dumps({"type": "subscribe", "lot": LOT, "since_seq": 0}))
        stop_at = start_at + duration
        received = 0
        while time.time() < stop_at:
            try:
                frame = await asyncio.wait_for(ws.recv(), max(0.1, stop_at - time.time()))
            except TimeoutError:
                break
            received += 1
            if received % 10:
                continue
            now = time.time()
            message = json.loads(frame)
            times = [e["t"] for e in message.get("events", ()) if e.get("type") == "BidAccepted"]
            if times and now >= start_at:
                ages.append((now * 1_000_000 - max(times)) / 1000)


def client_process(
    url: str,
    bidders: list[dict[str, str]],
    watchers: int,
    duration: float,
    depth: int,
    interval: float | None,
    start_at: float,
    out: Any,
) -> None:
    async def main() -> dict[str, Any]:
        latencies: list[float] = []
        ages: list[float] = []
        counts = {"answered": 0, "accepted": 0}
        tasks = [watcher_loop(url, duration, ages, start_at) for _ in range(watchers)] + [
            bidder_loop(url, b, duration, depth, interval, latencies, counts, start_at)
            for b in bidders
        ]
        results = await asyncio.gather(*tasks, return_exceptions=True)
        errors = [repr(r) for r in results if isinstance(r, BaseException)]
        return {"latencies": latencies, "ages": ages, "counts": counts, "errors": errors[:5]}

    out.put(asyncio.run(main()))


def run_clients(
    url: str,
    bidders: list[dict[str, str]],
    watchers: int,
    duration: float,
    depth: int,
    rate: float | None,
    processes: int,
) -> dict[str, Any]:
    interval = None if rate is None else len(bidders) * depth / rate
    start_at = time.time() + 2.0 + watchers / 500  # everyone connected before the clock starts
    queue: Any = mp.get_context("spawn").Queue()
    workers = []
    for i in range(processes):
        share = bidders[i::processes]
        share_watchers = watchers // processes + (1 if i < watchers % processes else 0)
        worker = mp.get_context("spawn").Process(
            target=client_process,
            args=(url, share, share_watchers, duration, depth, interval, start_at, queue),
        )
        worker.start()
        workers.append(worker)
    results = [queue.get(timeout=duration + 300) for _ in workers]
    for worker in workers:
        worker.join(30)
    latencies = [x for r in results for x in r["latencies"]]
    ages = [x for r in results for x in r["ages"]]
    answered = sum(r["counts"]["answered"] for r in results)
    accepted = sum(r["counts"]["accepted"] for r in results)
    errors = [e for r in results for e in r["errors"]]
    reasons: dict[str, int] = {}
    for r in results:
        for name, value in r["counts"].items():
            if name.startswith("rejected:"):
                reasons[name[9:]] = reasons.get(name[9:], 0) + value
    return {
        "answered_per_s": answered / duration,
        "accepted_per_s": accepted / duration,
        "ack_p50_ms": percentile(latencies, 50),
        "ack_p99_ms": percentile(latencies, 99),
        "age_p50_ms": percentile(ages, 50),
        "age_p99_ms": percentile(ages, 99),
        "updates": len(ages),
        "errors": errors,
        "rejections": reasons,
    }
