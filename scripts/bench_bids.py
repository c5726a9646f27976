#!/usr/bin/env python3
"""Signed bids over real websockets on loopback against `gavel serve`.

Scenarios (all in one run, each against a fresh server process and data directory):

  ceiling   the bare ceiling: a minimal websocket server (a separate process, aiohttp) that
            parses each bid, verifies its Ed25519 signature over the canonical request bytes
            and answers an ack: no rules, no ledger, no storage
  hot       N signed-bid bidders on one hot lot as fast as they can (each bidder keeps
            --depth bids in flight; amounts rise with the send time, so bids that arrive in
            the order they were sent are valid and overtaken ones are rejected); reports
            bids answered/s (every one is a durable ledger entry, accepted or rejected),
            accepted bids/s and acknowledgement latency
  paced     the same bidders paced to --rate bids/s in total while --watchers watchers
            (one websocket each) follow the lot; reports ack latency and the age of the
            watchers' updates (receive time minus the server ingress time of the newest bid
            in the update: the same clock, this is loopback)

The server is `python -m auction.cli serve --data TMP --port P --bids-per-second R
--no-write-limits` (every bidder signs up from 127.0.0.1), one
process (with BENCH_PROFILE=FILE it runs under cProfile and writes FILE when it stops); the
bidders and watchers run in --clients separate processes so that the client side
is not one Python core. Everything talks to 127.0.0.1 and stops by itself.

Usage: .venv/bin/python scripts/bench_bids.py [--bidders 200] [--watchers 1000]
       [--duration 10] [--rate 2000] [--depth 4] [--clients 2] [--scenarios ceiling,hot,paced]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import multiprocessing as mp
import os
import platform
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import aiohttp  # noqa: E402
import websockets  # noqa: E402
from aiohttp import web  # noqa: E402
from cryptography.exceptions import InvalidSignature  # noqa: E402
from cryptography.hazmat.primitives.asymmetric.ed25519 import (  # noqa: E402
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat  # noqa: E402

from auction.client import BidderClient, ws_url  # noqa: E402
from auction.identity import prc_check_character  # noqa: E402
from auction.protocol import signed_bytes  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
LOT = "bench-hot"
STEP = 100  # minor units
START_PRICE = 1_000_000


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


# --- the bare ceiling server ----------------------------------------------------------------


def ceiling_server(port: int, keys: dict[str, bytes]) -> None:
    """A websocket server that only verifies signatures and acks (run in its own process)."""
    verifiers = {account: Ed25519PublicKey.from_public_bytes(raw) for account, raw in keys.items()}

    async def handle(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(max_msg_size=4096)
        await ws.prepare(request)
        account: str | None = None
        async for message in ws:
            frame = json.loads(message.data)
            kind = frame.get("type")
            if kind == "hello":
                account = frame.get("session")
                await ws.send_str(json.dumps({"type": "welcome", "v": 1}))
            elif kind == "bid" and account is not None:
                payload = {
                    "account": account,
                    "amount": frame["amount"],
                    "currency": frame["currency"],
                    "idempotency_key": frame["idempotency_key"],
                    "kind": frame["kind"],
                    "lot": frame["lot"],
                }
                try:
                    verifiers[account].verify(base64.b64decode(frame["sig"]), signed_bytes(payload))
                    result = "accepted"
                except (InvalidSignature, KeyError):
                    result = "rejected"
                await ws.send_str(
                    json.dumps(
                        {
                            "type": "ack",
                            "idempotency_key": frame["idempotency_key"],
                            "result": result,
                            "min_next": frame["amount"] + STEP,
                        }
                    )
                )
        return ws

    app = web.Application()
    app.router.add_get("/ws", handle)
    web.run_app(app, host="127.0.0.1", port=port, print=None, handle_signals=True)


# --- the gavel server -----------------------------------------------------------------------


class GavelServer:
    """`gavel serve` in its own process on a fresh data directory."""

    def __init__(self, data: Path, port: int, bids_per_second: int) -> None:
        self.url = f"http://127.0.0.1:{port}"
        self.process = subprocess.Popen(
            [
                sys.executable,
                *(
                    ["-m", "cProfile", "-o", os.environ["BENCH_PROFILE"]]
                    if os.environ.get("BENCH_PROFILE")
                    else []
                ),
                "-m",
                "auction.cli",
                "serve",
                "--data",
                str(data),
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--bids-per-second",
                str(bids_per_second),
                "--connections-per-address",
                "100000",
                "--no-write-limits",
            ],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.token = ""
        assert self.process.stdout is not None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = self.process.stdout.readline()
            if not line:
                raise RuntimeError(f"gavel serve exited with {self.process.wait()}")
            found = re.search(r"#token=(\S+)", line)
            if found:
                self.token = found.group(1)
                return
        raise RuntimeError("gavel serve did not print its console URL in 60 s")

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


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


def prc_id(n: int) -> str:
    """Bidder n's resident identity number: one person, one account, so a different number for
    every n below 13 million (sequence, then birth year, month and day)."""
    year, month, day = 1960 + n // 1000 % 40, 1 + n // 40_000 % 12, 1 + n // 480_000 % 28
    first17 = f"110105{year:04d}{month:02d}{day:02d}{n % 1000:03d}"
    return first17 + prc_check_character(first17)


async def register_bidder(
    http: aiohttp.ClientSession, url: str, session: str, lot: str, deposit_key: str = "dep"
) -> dict[str, Any]:
    """Register the bidder with `session` for `lot` and, if the lot asks for a deposit, ask
    for it to be frozen under `deposit_key` (frozen later: the payment provider calls back).
    Returns the registration as the server answered it."""
    auth = {"Authorization": f"Bearer {session}"}
    async with http.post(f"{url}/api/lots/{lot}/registrations", json={}, headers=auth) as response:
        if response.status != 201:
            raise RuntimeError(f"registration for {lot} refused: {await response.text()}")
        registration: dict[str, Any] = await response.json()
    if registration["deposit"]["state"] == "REQUIRED":
        async with http.post(  # the bidding notice (竞买须知) comes before the deposit
            f"{url}/api/lots/{lot}/notice", json={"accept": True}, headers=auth
        ) as response:
            if response.status != 201:
                raise RuntimeError(f"notice not accepted: {await response.text()}")
        async with http.post(
            f"{url}/api/lots/{lot}/deposit", json={"idempotency_key": deposit_key}, headers=auth
        ) as response:
            if response.status != 202:
                raise RuntimeError(f"deposit refused: {await response.text()}")
    return registration


async def make_bidder(
    http: aiohttp.ClientSession,
    url: str,
    n: int,
    lots: Sequence[str] = (LOT,),
    deposit_key: str = "dep",
) -> dict[str, str]:
    """Account, identity (`prc_id(n)`), registrations and frozen deposits (where a lot asks
    for one) for one bidder, over REST at `url` (also used by `scripts/bench_cluster.py`,
    `scripts/soak.py` and `scripts/chaos_crash.py`). `{lot}` in `deposit_key` stands for the
    lot. The private key is returned as its base64 `seed`."""
    key = Ed25519PrivateKey.generate()
    public = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    async with http.post(
        f"{url}/api/accounts", json={"public_key": base64.b64encode(public).decode()}
    ) as response:
        if response.status != 201:
            raise RuntimeError(f"account refused: {await response.text()}")
        created = await response.json()
    auth = {"Authorization": f"Bearer {created['session']}"}
    identity = {"name": "张三", "document_type": "PRC_RESIDENT_ID", "document": prc_id(n)}
    async with http.post(f"{url}/api/identity", json=identity, headers=auth) as response:
        if response.status != 201:
            raise RuntimeError(f"identity refused: {await response.text()}")
    for lot in lots:
        await register_bidder(http, url, created["session"], lot, deposit_key.format(lot=lot))
    return {
        "account": str(created["account"]),
        "session": str(created["session"]),
        "seed": base64.b64encode(key.private_bytes_raw()).decode(),
    }


async def make_bidders(url: str, count: int) -> list[dict[str, str]]:
    limit = asyncio.Semaphore(16)
    async with aiohttp.ClientSession() as http:

        async def one(n: int) -> dict[str, str]:
            async with limit:
                return await make_bidder(http, url, n)

        bidders = await asyncio.gather(*(one(n) for n in range(count)))
        # wait until every deposit is frozen (the payment provider calls back asynchronously)
        deadline = time.monotonic() + 60
        for bidder in bidders:
            auth = {"Authorization": f"Bearer {bidder['session']}"}
            while True:
                async with http.get(f"{url}/api/me", headers=auth) as response:
                    me = await response.json()
                states = {r["lot"]: r["deposit"]["state"] for r in me["registrations"]}
                if states.get(LOT) in ("FROZEN", "NOT_REQUIRED", None):
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError("deposits were not frozen within 60 s")
                await asyncio.sleep(0.05)
        async with http.get(f"{url}/api/lots/{LOT}") as response:
            lot = (await response.json())["lot"]
        while lot["status"] != "OPEN":
            await asyncio.sleep(0.1)
            async with http.get(f"{url}/api/lots/{LOT}") as response:
                lot = (await response.json())["lot"]
    return list(bidders)


# --- the client processes -------------------------------------------------------------------


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
    key = Ed25519PrivateKey.from_private_bytes(base64.b64decode(bidder["seed"]))
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


# --- scenarios ------------------------------------------------------------------------------


def scenario_ceiling(args: argparse.Namespace) -> dict[str, Any]:
    port = free_port()
    keys: dict[str, bytes] = {}
    bidders = []
    for n in range(args.bidders):
        key = Ed25519PrivateKey.generate()
        account = f"acct-{n:016x}"
        keys[account] = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        bidders.append(
            {
                "account": account,
                "session": account,
                "seed": base64.b64encode(key.private_bytes_raw()).decode(),
            }
        )
    server = mp.get_context("spawn").Process(target=ceiling_server, args=(port, keys))
    server.start()
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port)):
                break
            time.sleep(0.05)
        return run_clients(url, bidders, 0, args.duration, args.depth, None, args.clients)
    finally:
        if server.pid is not None:
            os.kill(server.pid, signal.SIGINT)
        server.join(10)
        if server.is_alive():
            server.kill()


def scenario_gavel(
    args: argparse.Namespace, *, watchers: int, rate: float | None
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="gavel-bench-") as tmp:
        port = free_port()
        # The per-bidder limit is raised so that the bidders, not the limit, set the pace.
        server = GavelServer(Path(tmp) / "data", port, bids_per_second=100_000)
        try:
            asyncio.run(create_hot_lot(server.url, server.token, args.duration))
            bidders = asyncio.run(make_bidders(server.url, args.bidders))
            result = run_clients(
                server.url, bidders, watchers, args.duration, args.depth, rate, args.clients
            )
        finally:
            server.stop()
        return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bidders", type=int, default=200)
    parser.add_argument("--watchers", type=int, default=1000)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--rate", type=float, default=2000.0, help="paced: total bids/s")
    parser.add_argument("--depth", type=int, default=1, help="bids in flight per bidder")
    parser.add_argument("--clients", type=int, default=2, help="client processes")
    parser.add_argument("--scenarios", default="ceiling,hot,paced")
    args = parser.parse_args()
    wanted = args.scenarios.split(",")
    print(
        f"# {platform.node()} · {os.cpu_count()} CPUs · Python {platform.python_version()} · "
        f"{args.bidders} bidders × depth {args.depth}, {args.duration:g} s per scenario, "
        f"{args.clients} client processes",
        flush=True,
    )
    header = (
        f"{'scenario':<8} {'answered/s':>11} {'accepted/s':>11} {'ack p50':>8} {'ack p99':>8} "
        f"{'age p50':>8} {'age p99':>8} {'updates':>8}"
    )
    print(header, flush=True)

    def show(name: str, r: dict[str, Any]) -> None:
        print(
            f"{name:<8} {r['answered_per_s']:>11,.0f} {r['accepted_per_s']:>11,.0f} "
            f"{r['ack_p50_ms']:>6.1f}ms {r['ack_p99_ms']:>6.1f}ms "
            f"{r['age_p50_ms']:>6.1f}ms {r['age_p99_ms']:>6.1f}ms {r['updates']:>8}",
            flush=True,
        )
        if r["rejections"]:
            print(f"  rejected: {r['rejections']}", flush=True)
        for error in r["errors"]:
            print(f"  client error: {error}", flush=True)

    if "ceiling" in wanted:
        show("ceiling", scenario_ceiling(args))
    if "hot" in wanted:
        show("hot", scenario_gavel(args, watchers=0, rate=None))
    if "paced" in wanted:
        show("paced", scenario_gavel(args, watchers=args.watchers, rate=args.rate))


if __name__ == "__main__":
    main()
