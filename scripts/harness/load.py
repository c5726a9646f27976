"""A load generator that measures the server, not itself: every bid is signed before the timed
window, the bidders run in several client processes (on uvloop when it is installed), and the
server's own CPU time is read from /proc before and after the window.

Each bidder's bids form a ladder fixed in advance: bidder `b` of `B` signs the amounts
`start + step * (b + k * B)` for k = 0, 1, ... (its idempotency key says b and k), so that the
bidders take turns at the top. A bidder whose next amount is below the lot's `min_next`, as the
acks of its client process have told it, skips up its ladder to the first amount that is not;
bids overtaken on the way are still answered (rejected). A bidder that comes to the end of its
ladder stops and says so (`exhausted`): sign more with a larger `ladder`.

Throughput and CPU are counted in the window only: acks received in it, divided by its length;
the server's CPU seconds in it, divided by those acks. Latency is send to ack of the bids sent
in it."""

from __future__ import annotations

import asyncio
import base64
import importlib
import json
import math
import multiprocessing as mp
import os
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any

import websockets

from auction.client import ws_url
from auction.protocol import signed_bytes

from .bidders import key_of
from .machine import cpu_seconds, cpu_ticks
from .stats import percentile

#: A watcher, run as `watcher(url, duration, ages, start_at)` in a client process: it appends
#: the ages (ms) of the updates it receives in [start_at, start_at + duration] to `ages`.
Watcher = Callable[[str, float, list[float], float], Coroutine[Any, Any, None]]


@dataclass(frozen=True)
class Plan:
    """What every client process does: bid on `lot` in `currency` (amounts from `start` by
    `step`), `ladder` signed bids per bidder, `depth` in flight per bidder, paced to `interval`
    seconds between a lane's bids (None: as fast as acks come back), for `warmup` seconds
    before and `duration` seconds in the timed window."""

    lot: str
    currency: str
    start: int
    step: int
    bidders: int
    ladder: int
    depth: int
    interval: float | None
    warmup: float
    duration: float


def ladder_size(bidders: int, duration: float, warmup: float, expected_per_s: float) -> int:
    """Bids to sign per bidder for `expected_per_s` answered bids per second in all (with a
    margin of half again, since overtaken amounts are skipped)."""
    return math.ceil(1.5 * expected_per_s * (duration + warmup) / max(1, bidders)) + 16


def lane_offset(plan: Plan, index: int, lane: int) -> float:
    """Paced: when lane `lane` of bidder `index` first sends, in seconds after the start. The
    bidders' lanes take turns evenly over the interval, in the order of the ladder's amounts,
    so that bids sent in turn rise in amount (unpaced: all at once)."""
    turns = plan.bidders * plan.depth
    return (plan.interval or 0.0) * (lane * plan.bidders + index) / turns


def presign(
    bidder: dict[str, str], index: int, plan: Plan
) -> tuple[list[int], list[str], list[str]]:
    """Bidder number `index`'s ladder: (amounts, idempotency keys, bid frames as JSON text)."""
    key = key_of(bidder["seed"])
    amounts: list[int] = []
    keys: list[str] = []
    frames: list[str] = []
    for k in range(plan.ladder):
        amount = plan.start + plan.step * (index + k * plan.bidders)
        idempotency_key = f"b{index}-{k}"
        payload = {
            "account": bidder["account"],
            "amount": amount,
            "currency": plan.currency,
            "idempotency_key": idempotency_key,
            "kind": "bid",
            "lot": plan.lot,
        }
        signature = base64.b64encode(key.sign(signed_bytes(payload))).decode()
        message = {name: value for name, value in payload.items() if name != "account"}
        message |= {"type": "bid", "sig": signature}
        amounts.append(amount)
        keys.append(idempotency_key)
        frames.append(json.dumps(message))
    return amounts, keys, frames


class _Tally:
    """One client process's counts, latencies and what its acks said of the lot."""

    def __init__(self, plan: Plan) -> None:
        self.min_next = plan.start
        self.answered = 0  # acks received in the window
        self.accepted = 0
        self.reasons: dict[str, int] = {}
        self.latencies: list[float] = []  # ms, bids sent in the window
        self.exhausted = 0
        self.window = (0.0, 0.0)  # perf_counter times

    def in_window(self, t: float) -> bool:
        return self.window[0] <= t < self.window[1]


async def _bidder(
    url: str,
    bidder: dict[str, str],
    index: int,
    ladder: tuple[list[int], list[str], list[str]],
    plan: Plan,
    tally: _Tally,
    connected: asyncio.Event,
    go: asyncio.Future[float],
) -> None:
    amounts, keys, frames = ladder
    try:
        ws = await websockets.connect(ws_url(url), max_size=2**20, compression=None)
        await ws.send(json.dumps({"type": "hello", "v": 1, "session": bidder["session"]}))
        welcome = json.loads(await ws.recv())
        if welcome.get("type") != "welcome":
            raise RuntimeError(f"expected welcome, got {welcome!r}")
    finally:
        connected.set()  # connected, or failed: nobody waits for this bidder
    async with ws:
        start = await go  # perf_counter time to begin sending
        loop = asyncio.get_running_loop()
        waiting: dict[str, asyncio.Future[None]] = {}
        cursor = [0]

        async def read() -> None:
            async for frame in ws:
                message = json.loads(frame)
                if message.get("type") != "ack":
                    continue
                now = time.perf_counter()
                if tally.in_window(now):
                    tally.answered += 1
                    if message.get("result") == "accepted":
                        tally.accepted += 1
                    else:
                        reason = str(message.get("reason"))
                        tally.reasons[reason] = tally.reasons.get(reason, 0) + 1
                min_next = message.get("min_next")
                if isinstance(min_next, int) and min_next > tally.min_next:
                    tally.min_next = min_next
                waiter = waiting.pop(message.get("idempotency_key"), None)
                if waiter is not None and not waiter.done():
                    waiter.set_result(None)

        async def lane(offset: float) -> None:
            stop = tally.window[1]
            next_send = start + offset
            while True:
                if plan.interval is not None:
                    delay = next_send - time.perf_counter()
                    next_send += plan.interval
                    if delay > 0:
                        await asyncio.sleep(delay)
                sent = time.perf_counter()
                if sent >= stop:
                    return
                # skip the amounts the lot has already passed
                behind = tally.min_next - amounts[min(cursor[0], len(amounts) - 1)]
                if behind > 0:
                    cursor[0] += -(-behind // (plan.step * plan.bidders))
                k = cursor[0]
                if k >= len(frames):
                    tally.exhausted += 1
                    return
                cursor[0] = k + 1
                waiter = loop.create_future()
                waiting[keys[k]] = waiter
                await ws.send(frames[k])
                await asyncio.wait_for(waiter, 60)
                if tally.in_window(sent):
                    tally.latencies.append((time.perf_counter() - sent) * 1000)

        reader = asyncio.ensure_future(read())
        try:
            await asyncio.gather(*(lane(lane_offset(plan, index, i)) for i in range(plan.depth)))
        finally:
            reader.cancel()


def _client(
    url: str,
    bidders: list[tuple[int, dict[str, str]]],
    watchers: int,
    watcher: Watcher | None,
    plan: Plan,
    ready: Any,
    go: Any,
    out: Any,
) -> None:
    """One client process: sign, connect, say ready, wait for the start time, bid, report."""
    signing = time.process_time()
    ladders = [presign(bidder, index, plan) for index, bidder in bidders]
    signing = time.process_time() - signing

    async def main() -> dict[str, Any]:
        tally = _Tally(plan)
        loop = asyncio.get_running_loop()
        started: asyncio.Future[float] = loop.create_future()
        events = [asyncio.Event() for _ in bidders]
        ages: list[float] = []
        tasks = [
            asyncio.ensure_future(_bidder(url, b, i, ladder, plan, tally, e, started))
            for (i, b), ladder, e in zip(bidders, ladders, events, strict=True)
        ]
        await asyncio.wait_for(asyncio.gather(*(e.wait() for e in events)), 120)
        ready.put(os.getpid())
        start_at = await loop.run_in_executor(None, go.get)  # wall-clock time
        begin = time.perf_counter() + (start_at - time.time())
        tally.window = (begin + plan.warmup, begin + plan.warmup + plan.duration)
        if watcher is not None:
            window_start = start_at + plan.warmup
            tasks += [
                asyncio.ensure_future(watcher(url, plan.duration, ages, window_start))
                for _ in range(watchers)
            ]
        started.set_result(begin)
        results = await asyncio.gather(*tasks, return_exceptions=True)
        errors = [repr(r) for r in results if isinstance(r, BaseException)]
        return {
            "latencies": tally.latencies,
            "ages": ages,
            "answered": tally.answered,
            "accepted": tally.accepted,
            "reasons": tally.reasons,
            "exhausted": tally.exhausted,
            "errors": errors[:5],
            "signing_s": signing,
            "loop": type(loop).__module__.split(".")[0],
        }

    factory: Callable[[], asyncio.AbstractEventLoop] | None = None
    try:
        factory = importlib.import_module("uvloop").new_event_loop
    except ImportError:
        pass
    with asyncio.Runner(loop_factory=factory) as runner:
        out.put(runner.run(main()))


def run_fair_clients(
    url: str,
    server_pid: int,
    bidders: Sequence[dict[str, str]],
    plan: Plan,
    *,
    processes: int,
    watchers: int = 0,
    watcher: Watcher | None = None,
) -> dict[str, Any]:
    """Run `plan` from `processes` client processes (bidders and watchers dealt round-robin)
    against the server at `url` whose process is `server_pid`; the figures of the timed
    window."""
    context = mp.get_context("spawn")
    ready: Any = context.Queue()
    out: Any = context.Queue()
    gos: list[Any] = []
    workers = []
    numbered = list(enumerate(bidders))
    for i in range(processes):
        go: Any = context.Queue()
        share_watchers = watchers // processes + (1 if i < watchers % processes else 0)
        worker = context.Process(
            target=_client,
            args=(url, numbered[i::processes], share_watchers, watcher, plan, ready, go, out),
        )
        worker.start()
        workers.append(worker)
        gos.append(go)
    try:
        for _ in workers:
            ready.get(timeout=600)
        start_at = time.time() + 0.5 + watchers / 500  # watchers connect before the window
        for go in gos:
            go.put(start_at)
        time.sleep(max(0.0, start_at + plan.warmup - time.time()))
        pids = [w.pid for w in workers if w.pid is not None]
        server_before = cpu_seconds(server_pid)
        clients_before = sum(cpu_seconds(pid) for pid in pids)
        machine_before = cpu_ticks()
        time.sleep(max(0.0, start_at + plan.warmup + plan.duration - time.time()))
        server_cpu = cpu_seconds(server_pid) - server_before
        clients_cpu = sum(cpu_seconds(pid) for pid in pids) - clients_before
        machine_after = cpu_ticks()
        results = [out.get(timeout=plan.duration + 300) for _ in workers]
    finally:
        for worker in workers:
            worker.join(30)
            if worker.is_alive():
                worker.kill()
    cores = os.cpu_count() or 1
    latencies = [x for r in results for x in r["latencies"]]
    ages = [x for r in results for x in r["ages"]]
    answered = sum(r["answered"] for r in results)
    reasons: dict[str, int] = {}
    for r in results:
        for name, value in r["reasons"].items():
            reasons[name] = reasons.get(name, 0) + value
    busy = machine_after[0] - machine_before[0]
    total = max(1, machine_after[1] - machine_before[1])
    return {
        "answered_per_s": answered / plan.duration,
        "accepted_per_s": sum(r["accepted"] for r in results) / plan.duration,
        "ack_p50_ms": percentile(latencies, 50),
        "ack_p99_ms": percentile(latencies, 99),
        "age_p50_ms": percentile(ages, 50),
        "age_p99_ms": percentile(ages, 99),
        "updates": len(ages),
        "server_cpu_pct": 100 * server_cpu / plan.duration,
        "server_cpu_ms_per_ack": 1000 * server_cpu / answered if answered else float("nan"),
        "clients_cpu_pct": 100 * clients_cpu / plan.duration,
        "clients_share_pct": 100 * clients_cpu / (plan.duration * cores),
        "machine_busy_pct": 100 * busy / total,
        "signing_s": sum(r["signing_s"] for r in results),
        "signed": plan.ladder * len(bidders),
        "exhausted": sum(r["exhausted"] for r in results),
        "client_loop": ",".join(sorted({r["loop"] for r in results})),
        "errors": [e for r in results for e in r["errors"]],
        "rejections": reasons,
    }
