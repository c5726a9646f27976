"""The takeover of `scripts.bench_cluster`: the instance writing the hot lot is killed while
bidders bid on it through both instances; how long until the survivor writes it."""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import websockets

from auction.client import BidderClient, ClientError

from .bench_cluster_storage import entry_ingress, lot_owners, pg_schema, redis_database, wait_owned
from .bench_cluster_workload import (
    CURRENCY,
    HOT,
    HTTP_TIMEOUT,
    SECOND_US,
    Known,
    create_lots,
    instance,
    learn,
    make_bidders,
    servers,
    wait_open,
)
from .harness.bidders import key_of


def fmt_s(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f} s"


@dataclass
class Received:
    at: float  # time.monotonic() of the ack's arrival
    accepted: bool
    reason: str | None
    entry: int | None


async def takeover_once(args: argparse.Namespace, tmp: Path, round_: int) -> dict[str, Any]:
    with pg_schema() as database_url, redis_database() as redis_url:
        a, b = (
            instance(
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
                    key=key_of(m["seed"]),
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
