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

The load generator (`--loadgen fair`, the default; `scripts/harness/load.py`) measures the
server, not itself: each bidder's bids are signed before the timed window (`--ladder-rate`
bids/s in all are provided for; paced: `--rate`), the bidders are dealt to --clients processes
(on uvloop when it is installed), bidding starts --warmup s before the window, and the server
process's CPU time is read from /proc at both ends of the window. Besides bids/s and latency it
reports the server's CPU (% of a core and ms per answered bid: machine-independent), the client
processes' CPU and how busy the whole machine was. `--loadgen classic` is the earlier
generator (each bid signed as it is sent, `auction.client.BidderClient`, no CPU figures).

The server is `python -m auction.cli serve --data TMP --port P --bids-per-second R
--no-write-limits` (every bidder signs up from 127.0.0.1), one process (with
BENCH_PROFILE=FILE it runs under cProfile and writes FILE when it stops; add
BENCH_PROFILE_CLOCK=cpu to time it by CPU rather than wall time) on the event loop
`--server-loop` names (default: GAVEL_EVENT_LOOP as set, i.e. uvloop when installed).
Everything talks to 127.0.0.1 and stops by itself.

Usage: .venv/bin/python -m scripts.bench_bids [--bidders 200] [--watchers 1000]
       [--duration 10] [--rate 2000] [--depth 1] [--clients 2] [--scenarios ceiling,hot,paced]
       [--loadgen fair|classic] [--warmup 1] [--ladder-rate 10000]
       [--server-loop auto|uvloop|asyncio] [--json FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import multiprocessing as mp
import os
import platform
import signal
import tempfile
from pathlib import Path
from typing import Any

from aiohttp import web
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from auction.protocol import signed_bytes
from notary.cli import EVENT_LOOP_VARIABLE, event_loop_factory

from .harness.bidders import seed_of
from .harness.load import Plan, ladder_size, run_fair_clients
from .harness.machine import cpu_seconds
from .harness.processes import free_port, wait_listening
from .harness.report import write_json
from .hot_lot_load import (
    LOT,
    START_PRICE,
    STEP,
    bench_server,
    create_hot_lot,
    make_bidders,
    run_clients,
    watcher_loop,
)

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
    _, factory = event_loop_factory()  # the loop `gavel serve` would run on
    loop = factory() if factory is not None else None
    web.run_app(app, host="127.0.0.1", port=port, print=None, handle_signals=True, loop=loop)


# --- scenarios ------------------------------------------------------------------------------


def plan_for(args: argparse.Namespace, count: int, rate: float | None) -> Plan:
    """The fair generator's plan for `count` bidders on the hot lot (paced to `rate`)."""
    interval = None if rate is None else count * args.depth / rate
    expected = rate if rate is not None else args.ladder_rate
    return Plan(
        lot=LOT,
        currency="CNY",
        start=START_PRICE,
        step=STEP,
        bidders=count,
        ladder=ladder_size(count, args.duration, args.warmup, expected),
        depth=args.depth,
        interval=interval,
        warmup=args.warmup,
        duration=args.duration,
    )


def drive(
    args: argparse.Namespace,
    url: str,
    server_pid: int | None,
    bidders: list[dict[str, str]],
    *,
    watchers: int,
    rate: float | None,
) -> dict[str, Any]:
    """The bids of one scenario from the generator `--loadgen` names."""
    if args.loadgen == "classic":
        before = cpu_seconds(server_pid) if server_pid is not None else 0.0
        result = run_clients(url, bidders, watchers, args.duration, args.depth, rate, args.clients)
        # no window here: the server's CPU over the whole run (connecting, bidding, the tail)
        used = cpu_seconds(server_pid) - before if server_pid is not None else float("nan")
        answered = result["answered_per_s"] * args.duration
        result["server_cpu_ms_per_ack"] = 1000 * used / answered if answered else float("nan")
        return result
    assert server_pid is not None
    return run_fair_clients(
        url,
        server_pid,
        bidders,
        plan_for(args, len(bidders), rate),
        processes=args.clients,
        watchers=watchers,
        watcher=watcher_loop,
    )


def scenario_ceiling(args: argparse.Namespace) -> dict[str, Any]:
    port = free_port()
    keys: dict[str, bytes] = {}
    bidders = []
    for n in range(args.bidders):
        key = Ed25519PrivateKey.generate()
        account = f"acct-{n:016x}"
        keys[account] = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        bidders.append({"account": account, "session": account, "seed": seed_of(key)})
    server = mp.get_context("spawn").Process(target=ceiling_server, args=(port, keys))
    server.start()
    try:
        url = f"http://127.0.0.1:{port}"
        wait_listening(port)
        return drive(args, url, server.pid, bidders, watchers=0, rate=None)
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
        server = bench_server(Path(tmp), free_port())
        try:
            asyncio.run(create_hot_lot(server.url, server.token, args.duration + args.warmup))
            bidders = asyncio.run(make_bidders(server.url, args.bidders))
            result = drive(args, server.url, server.pid, bidders, watchers=watchers, rate=rate)
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
    parser.add_argument(
        "--loadgen",
        choices=("fair", "classic"),
        default="fair",
        help="fair: bids signed before the timed window, server CPU measured (default); "
        "classic: the earlier generator, signing each bid as it sends it",
    )
    parser.add_argument(
        "--warmup", type=float, default=1.0, help="fair: seconds of bidding before the window"
    )
    parser.add_argument(
        "--ladder-rate",
        type=float,
        default=10_000.0,
        help="fair, unpaced: bids/s in all to sign enough bids for (more costs signing time)",
    )
    parser.add_argument(
        "--server-loop",
        choices=("auto", "uvloop", "asyncio"),
        help="the servers' event loop (sets GAVEL_EVENT_LOOP for them; default: as set)",
    )
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args()
    if args.server_loop:
        os.environ[EVENT_LOOP_VARIABLE] = args.server_loop
    server_loop, _ = event_loop_factory()
    wanted = args.scenarios.split(",")
    print(
        f"# {platform.node()} · {os.cpu_count()} CPUs · Python {platform.python_version()} · "
        f"{args.bidders} bidders × depth {args.depth}, {args.duration:g} s per scenario, "
        f"{args.clients} client processes, {args.loadgen} generator, server loop "
        f"{server_loop.split()[0]}",
        flush=True,
    )
    fair = args.loadgen == "fair"
    header = (
        f"{'scenario':<8} {'answered/s':>11} {'accepted/s':>11} {'ack p50':>8} {'ack p99':>8} "
        f"{'age p50':>8} {'age p99':>8} {'updates':>8}"
    )
    if fair:
        header += f" {'server':>7} {'ms/ack':>7} {'clients':>8} {'machine':>8}"
    print(header, flush=True)
    figures: dict[str, Any] = {"loadgen": args.loadgen, "server_loop": server_loop}

    def show(name: str, r: dict[str, Any]) -> None:
        figures[name] = r
        line = (
            f"{name:<8} {r['answered_per_s']:>11,.0f} {r['accepted_per_s']:>11,.0f} "
            f"{r['ack_p50_ms']:>6.1f}ms {r['ack_p99_ms']:>6.1f}ms "
            f"{r['age_p50_ms']:>6.1f}ms {r['age_p99_ms']:>6.1f}ms {r['updates']:>8}"
        )
        if fair:
            line += (
                f" {r['server_cpu_pct']:>6.0f}% {r['server_cpu_ms_per_ack']:>7.3f}"
                f" {r['clients_share_pct']:>7.0f}% {r['machine_busy_pct']:>7.0f}%"
            )
        print(line, flush=True)
        if r["rejections"]:
            print(f"  rejected: {r['rejections']}", flush=True)
        if not fair:
            print(
                f"  server CPU {r['server_cpu_ms_per_ack']:.3f} ms per answered bid (over the "
                "whole run, connections and tail included)",
                flush=True,
            )
        else:
            print(
                f"  server CPU {r['server_cpu_pct']:.0f} % of a core, "
                f"{r['server_cpu_ms_per_ack']:.3f} ms per answered bid; client processes "
                f"{r['clients_cpu_pct']:.0f} % of a core ({r['clients_share_pct']:.0f} % of the "
                f"machine, loop {r['client_loop']}); machine busy {r['machine_busy_pct']:.0f} %; "
                f"{r['signed']:,} bids signed beforehand in {r['signing_s']:.1f} s of CPU"
                + (f"; {r['exhausted']} lanes ran out of signed bids" if r["exhausted"] else ""),
                flush=True,
            )
        for error in r["errors"]:
            print(f"  client error: {error}", flush=True)

    if "ceiling" in wanted:
        show("ceiling", scenario_ceiling(args))
    if "hot" in wanted:
        show("hot", scenario_gavel(args, watchers=0, rate=None))
    if "paced" in wanted:
        show("paced", scenario_gavel(args, watchers=args.watchers, rate=args.rate))
    if args.json is not None:
        write_json(args.json, figures)


if __name__ == "__main__":
    main()
