#!/usr/bin/env python3
"""Soak: `gavel serve` under steady mixed load for a long time, memory and latency sampled.

One `gavel serve` process (SQLite in a fresh data directory) with `--notaries` real
`gavel notary serve` processes (a quorum of 2, as the demo) co-signing its checkpoints, and
in this process:

  lots      --lots judicial lots (created through the console API, `POST /api/console/lots`),
            each running --lot-seconds; when one closes (sold or failed, co-signed) the next
            is created in its place, so lots are created and closed all run long
  bidders   --bidders verified accounts, registered with a frozen deposit on every lot, each
            bidding the minimum next amount on a random open lot at --rate bids/s over its
            own websocket (signed bids); bidding stops a few seconds before a lot's soft-close
            window so that lots do close
  watchers  --watchers websocket watchers subscribed to every lot
  viewers   --viewers live-video viewers (default 3; 0: none, and no live lot): one
            `LIVE_AUCTIONEER` lot is created through the console API and brought into the ring
            (`OpenRing`) before the load starts, and stays there for the whole run (no timer
            drives a live lot: only the clerk's commands move it, and the soak sends none after
            `OpenRing`), so the server streams it all along (the test pattern with the lot's
            state burned in, recorded under DATA/recordings, one `stream_segment` ledger entry
            per segment). Each viewer is a real aiortc receiver (`streaming.loadtest.Viewer`,
            decode mode, the default rendition) that posts its offer to
            `/api/lots/{lot}/stream/offer` and counts the frames it decodes. A viewer whose
            connection fails (the offer is refused, the peer connection fails or closes, the
            track ends) is counted as an error and reconnected, once per viewer at most; a
            live-lot stream that is no longer live at a sample is an error too.

Every --interval seconds it samples the server process (VmRSS and RssAnon from
/proc/PID/status, open file descriptors from /proc/PID/fd, and where the anonymous memory is
from /proc/PID/smaps: glibc's main heap, its thread arenas, the rest), the acknowledgement
latency of the bids answered since the last sample (p50, p99), the watchers' update age
(the watcher's receive time minus the server time `t` of the `BidAccepted` event; same
clock, this is loopback), the ledger size and the latest published (co-signed) checkpoint,
the viewers (how many are connected, the *fewest* frames per second one of them decoded
over the interval, how many decoded none), and prints one table row.

At the end it prints the table and a verdict. PASS needs all of:
  * no errors: every bid answered within 10 s, no `UNAVAILABLE` / `RATE_LIMITED` /
    protocol refusal, no dropped connection, no failed lot creation or registration, no
    failed viewer connection, and no viewer that stopped receiving: every viewer decoded at
    least one frame in every interval after the first (the first one is the stream's
    warm-up: ICE, DTLS, the first keyframe); each viewer and interval without a frame is
    one error;
  * memory flat: the least-squares slope of the anonymous RSS (RssAnon, the heap: VmRSS
    also counts library and database file pages, which come and go with the page cache) over
    the second half of the samples is at most --rss-slope KiB/min. Default 256: at the
    default load of 20 bids/s, anything kept per bid from 220 bytes up fails; the first half
    (warm-up: caches, pools, the allocator's arenas) is not judged;
  * file descriptors flat: the floor of open fds (the fewest in a quarter of the run: the
    sockets of requests in flight come and go, leaked ones raise the floor) grows by at most
    --fd-growth from the second quarter to the last;
  * checkpoints co-signed: the published checkpoint kept advancing (with notaries).

--json OUT writes the samples (the table's columns, unrounded: `viewers` connected,
`viewer_fps` the fewest frames/s a viewer decoded, `viewers_stalled`, `heap_kib`,
`arenas_kib`, `arenas`, `other_anon_kib`), the verdict, the counts,
the errors, `viewers`, `live_lot`, `viewer_frames` (decoded, per viewer) and
`viewer_reconnects` (0, null, [] and 0 without viewers).

Usage: .venv/bin/python -m scripts.soak [--minutes 30] [--seconds S] [--bidders 10]
       [--watchers 5] [--viewers 3] [--lots 3] [--rate 2] [--notaries 3] [--interval 10]
       [--json OUT]
Exit status 0 on PASS, 1 on FAIL. Everything talks to 127.0.0.1 and stops by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import aiohttp

from auction.client import BidderClient
from auction.demo.showcase import start_notaries, stop_notaries
from auction.storage import POLICY_FILE
from streaming.loopback import loopback_only_ice

from .harness.machine import proc_status
from .harness.notaries import prepare
from .harness.processes import GavelServer
from .harness.stats import percentile
from .soak_load import Bidder, Load, Stats, ViewerSlot
from .soak_memory import anon_breakdown, proc_anon_breakdown
from .soak_verdict import Sample, Verdict, judge, row, slope_per_minute, table

__all__ = ["Sample", "Verdict", "anon_breakdown", "judge", "main", "slope_per_minute", "table"]


async def auditor(http: aiohttp.ClientSession, url: str) -> tuple[int, int, int]:
    async with http.get(f"{url}/api/auditor") as response:
        body = await response.json()
    checkpoint = body.get("checkpoint") or {}
    cosignatures = checkpoint.get("cosignatures")
    count = len(cosignatures) if isinstance(cosignatures, list) else int(cosignatures or 0)
    return int(body.get("log_size") or 0), int(checkpoint.get("size") or 0), count


async def run(args: argparse.Namespace, data: Path) -> tuple[list[Sample], Stats, dict[str, Any]]:
    notaries = await asyncio.to_thread(prepare, data, args.notaries, signed_bids=True)
    server = GavelServer(
        ["--data", str(data)],
        data / "serve.log",
        flags=["--bids-per-second", "50", "--connections-per-address", "1000", "--no-write-limits"],
    )
    samples: list[Sample] = []
    load: Load | None = None
    try:
        await asyncio.to_thread(server.start)
        if notaries:
            await start_notaries(notaries, server.url, data / POLICY_FILE)
        load = Load(server.url, server.token, args)
        limit = asyncio.Semaphore(8)
        async with aiohttp.ClientSession() as http:

            async def one(n: int) -> Bidder:
                async with limit:
                    return await load.make_bidder(http, n)

            tasks: list[asyncio.Task[None]] = []
            if args.viewers:  # first: the stream warms up while the bidders are made
                try:
                    load.live_lot = await load.open_live_lot(http)
                except (RuntimeError, aiohttp.ClientError, OSError) as exc:
                    load.stats.error(f"live lot: {exc}")
                else:
                    load.viewers = [ViewerSlot(n) for n in range(args.viewers)]
                    tasks += [
                        asyncio.create_task(load.viewer_loop(http, slot)) for slot in load.viewers
                    ]
            load.bidders = list(await asyncio.gather(*(one(n) for n in range(args.bidders))))
            load.watchers = [await BidderClient.connect(server.url) for _ in range(args.watchers)]
            tasks += [asyncio.create_task(load.lot_slot(http, slot)) for slot in range(args.lots)]
            tasks += [asyncio.create_task(load.bidder_loop(b)) for b in load.bidders]
            tasks += [asyncio.create_task(load.watcher_loop(w)) for w in load.watchers]
            began = time.monotonic()
            load.sample_viewers(1.0)  # the first interval starts now
            previous = 0.0
            live_ended = False
            total = args.seconds if args.seconds is not None else args.minutes * 60
            print(table([]), flush=True)
            while True:
                elapsed = time.monotonic() - began
                await asyncio.sleep(min(args.interval, max(0.0, total - elapsed)))
                elapsed = time.monotonic() - began
                pid = server.pid
                if pid is None:
                    assert server.process is not None
                    load.stats.error(f"gavel serve exited with {server.process.returncode}")
                    break
                rss, anon, fds = proc_status(pid)
                heap, arena_kib, arena_count, other = proc_anon_breakdown(pid)
                acks, load.stats.acks = load.stats.acks, []
                ages, load.stats.ages = load.stats.ages, []
                viewers, viewer_fps, stalled = load.sample_viewers(elapsed - previous)
                previous = elapsed
                log_size, published, cosigs = await auditor(http, server.url)
                if load.live_lot is not None and not live_ended:
                    live_ended = not await load.stream_live(http, load.live_lot)
                    if live_ended:
                        load.stats.error(f"the stream of {load.live_lot} is no longer live")
                sample = Sample(
                    elapsed, rss, fds, anon, len(acks), percentile(acks, 50),
                    percentile(acks, 99), percentile(ages, 50), percentile(ages, 99), log_size,
                    published, cosigs, load.stats.lots_closed, len(load.stats.errors), viewers,
                    viewer_fps, stalled, heap, arena_kib, arena_count, other,
                )  # fmt: skip
                samples.append(sample)
                print(row(sample), flush=True)
                if elapsed >= total - 0.5:
                    break
            load.stop.set()
            await asyncio.gather(*tasks)
            for bidder in load.bidders:
                if bidder.client is not None:
                    await bidder.client.close()
            for watcher in load.watchers:
                await watcher.close()
    finally:
        for slot in load.viewers if load is not None else ():
            if slot.viewer is not None:
                with contextlib.suppress(Exception):
                    await slot.viewer.close()
        code = await asyncio.to_thread(server.stop, 60.0)
        await stop_notaries(notaries)
    stats = load.stats if load is not None else Stats(errors=["the load did not start"])
    if code != 0:
        stats.error(f"gavel serve stopped with status {code}")
    slots = load.viewers if load is not None else []
    extra = {
        "notaries": len(notaries),
        "server_exit": code,
        "viewers": len(slots),
        "live_lot": load.live_lot if load is not None else None,
        "viewer_frames": [slot.frames for slot in slots],
        "viewer_reconnects": stats.viewer_reconnects,
    }
    return samples, stats, extra


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--seconds", type=float, default=None, help="overrides --minutes")
    parser.add_argument("--bidders", type=int, default=10)
    parser.add_argument("--watchers", type=int, default=5)
    parser.add_argument(
        "--viewers", type=int, default=3, help="live-video viewers of one live lot; 0: none"
    )
    parser.add_argument("--lots", type=int, default=3)
    parser.add_argument("--lot-seconds", type=float, default=60.0)
    parser.add_argument("--rate", type=float, default=2.0, help="bids/s per bidder")
    parser.add_argument("--notaries", type=int, default=3)
    parser.add_argument("--interval", type=float, default=10.0)
    parser.add_argument("--rss-slope", type=float, default=256.0, help="KiB/min limit")
    parser.add_argument("--fd-growth", type=int, default=8)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--data", type=Path, default=None, help="kept; default: a temp dir")
    parser.add_argument("--json", type=Path, default=None, help="write samples and verdict")
    args = parser.parse_args(argv)
    if args.viewers < 0:
        parser.error("--viewers must not be negative")
    with contextlib.ExitStack() as stack:
        data = args.data
        if data is None:
            data = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="gavel-soak-")))
        data.mkdir(parents=True, exist_ok=True)
        if args.viewers:  # aioice skips 127.0.0.1 otherwise; everything here is loopback
            stack.enter_context(loopback_only_ice())
        samples, stats, extra = asyncio.run(run(args, data))
    verdict = judge(
        samples,
        errors=len(stats.errors),
        rss_slope_limit=args.rss_slope,
        fd_growth_limit=args.fd_growth,
        need_checkpoints=True,
    )
    print()
    print(table(samples))
    print(
        f"\nsoak: {stats.answered} bids answered ({stats.accepted} accepted, {stats.rejected} "
        f"refused by the rules as racing), {stats.lots_created} lots created, "
        f"{stats.lots_closed} closed, {len(stats.errors)} errors, {extra['notaries']} notaries"
    )
    if extra["viewers"]:
        stalls = sum(s.viewers_stalled for s in samples[1:])
        print(
            f"soak: {extra['viewers']} viewers of {extra['live_lot']} decoded "
            f"{sum(extra['viewer_frames'])} frames ({extra['viewer_frames']}), "
            f"{stats.viewer_reconnects} reconnected; {stalls} times a viewer decoded no frame "
            f"over an interval after the first"
        )
    if samples:
        first, last = samples[0], samples[-1]
        print(
            f"soak: RSS {first.rss_kib / 1024:.1f} -> {last.rss_kib / 1024:.1f} MiB, anonymous "
            f"{first.anon_kib / 1024:.1f} -> {last.anon_kib / 1024:.1f} MiB, slope over "
            f"the second half {verdict.rss_slope_kib_per_min:.1f} KiB/min "
            f"(limit {args.rss_slope:.0f}); fds {first.fds} -> {last.fds}, floor growth "
            f"{verdict.fd_growth} (limit {args.fd_growth})"
        )
        print(
            "soak: anonymous memory, first -> last sample: "
            + "; ".join(
                f"{name} {a / 1024:.1f} -> {b / 1024:.1f} MiB"
                for name, a, b in (
                    ("main heap", first.heap_kib, last.heap_kib),
                    (f"thread arenas ({last.arenas})", first.arenas_kib, last.arenas_kib),
                    ("the rest", first.other_anon_kib, last.other_anon_kib),
                )
            )
        )
    word = "PASS" if verdict.passed else "FAIL: " + "; ".join(verdict.reasons)
    print(f"soak: verdict {word}", flush=True)
    if args.json is not None:
        report = {
            "samples": [
                {
                    k: (None if isinstance(v, float) and math.isnan(v) else v)
                    for k, v in asdict(s).items()
                }
                for s in samples
            ],
            "verdict": asdict(verdict),
            "answered": stats.answered,
            "accepted": stats.accepted,
            "rejected": stats.rejected,
            "lots_created": stats.lots_created,
            "lots_closed": stats.lots_closed,
            "errors": stats.errors[:100],
            **extra,
        }
        args.json.write_text(json.dumps(report, indent=1))
    return 0 if verdict.passed else 1


if __name__ == "__main__":
    sys.exit(main())
