#!/usr/bin/env python3
"""Benchmark: how many property lots stream at once, each at its own rate, while 200 bids/s
are taken, and the server CPU per streaming lot.

    nice .venv/bin/python -m scripts.bench_lots_video [--steps 1,4,8,12] [--rate 200]
        [--window 10] [--out bench_lots_video.json]

One `gavel serve` process (fresh data directory, SQLite, default video settings: every open
lot on air, property lots as their presentation at 360p and 15 fps, every lot recorded and
anchored in the ledger) on 127.0.0.1. The script adds judicial lots (each opens a second
later and streams its drawn presentation) until a step's count is reached; one viewer per
lot (aiortc, in its own process, counting completed frames after SRTP) watches every lot;
the bidders (another process, `scripts.bench_bids`'s signed websocket clients) send
`--rate` bids/s in total on the first lot. Per step, over `--window` seconds: the server's
CPU (utime+stime of its process, all threads, /proc), every viewer's frames per second, the
bids answered per second and their acknowledgement latency, the machine's load. A step
passes when every viewer gets at least 90 % of its lot's rate and the bids keep their rate.
The server CPU per streaming lot is the slope of a least-squares line through the steps.

Everything talks to 127.0.0.1 and stops by PID. The server runs in a session of its own
(its own scheduler autogroup); other people's work on the machine shows in the load figures
printed with each step.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import aiohttp

from . import hot_lot_load
from .harness.machine import cpu_model, cpu_seconds, machine
from .harness.report import write_json
from .harness.stats import least_squares

PRESENTATION_FPS = 15
TITLES = (
    "Flat {n}02, 89 m², Building {n}, Wenyi West Road, Hangzhou",
    "Parking space B2-{n}17, Lvcheng Xixi Garden, Xihu District",
    "Office unit {n}203, Huanglong Century Plaza, 168 m²",
    "House {n}, 210 m², Liangzhu New Town, Yuhang District",
)


def measured_on() -> dict[str, Any]:
    return {**machine(), "model": cpu_model()}


async def add_lots(url: str, token: str, first: int, count: int) -> list[str]:
    """`count` judicial lots opening a second from now, open for two hours."""
    made = []
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{url}/api/lots") as response:
            now = (await response.json())["now_us"]
        for n in range(first, first + count):
            # the first lot takes the bids: bench_bids' lot id, start price and step
            lot = hot_lot_load.LOT if n == 0 else f"bench-property-{n}"
            body = {
                "preset": "JUDICIAL_CN",
                "lot": lot,
                "title": TITLES[n % len(TITLES)].format(n=n),
                "parameters": {
                    "start_price": hot_lot_load.START_PRICE if n == 0 else 100_000_000 + n,
                    "step": hot_lot_load.STEP if n == 0 else 100_000,
                    "start_at": now + 1_000_000,
                    "end_at": now + 7200 * 1_000_000,
                    "min_duration": 0,
                },
            }
            headers = {"Authorization": f"Bearer {token}"}
            async with http.post(f"{url}/api/console/lots", json=body, headers=headers) as response:
                if response.status != 201:
                    raise RuntimeError(f"cannot create {lot}: {await response.text()}")
            made.append(lot)
    return made


async def wait_live(url: str, lots: list[str], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as http:
        for lot in lots:
            while True:
                async with http.get(f"{url}/api/lots/{lot}/stream") as response:
                    if response.status == 200 and (await response.json())["live"]:
                        break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{lot} did not go on air within {timeout} s")
                await asyncio.sleep(0.2)


async def frames_out(url: str, lots: list[str]) -> int:
    """Frames the server made for `lots` so far (each lot's `frames_out`)."""
    total = 0
    async with aiohttp.ClientSession() as http:
        for lot in lots:
            async with http.get(f"{url}/api/lots/{lot}/stream") as response:
                total += int((await response.json())["frames_out"])
    return total


def viewer_process(url: str, commands: Any, results: Any) -> None:
    """One count-mode viewer per lot, kept across steps; measures on request."""
    from streaming.loadtest import Viewer
    from streaming.loopback import loopback_only_ice

    async def main() -> None:
        viewers: dict[str, Viewer] = {}
        loop = asyncio.get_running_loop()
        with loopback_only_ice():
            async with aiohttp.ClientSession() as session:
                while True:
                    command, argument = await loop.run_in_executor(None, commands.get)
                    if command == "watch":
                        for lot in argument:
                            viewer = Viewer(session, url, lot, mode="count", data_channel=False)
                            await viewer.connect()
                            viewers[lot] = viewer
                        results.put("ok")
                    elif command == "measure":
                        before = {lot: v.stats.frames for lot, v in viewers.items()}
                        t0 = time.monotonic()
                        await asyncio.sleep(argument)
                        elapsed = time.monotonic() - t0
                        results.put(
                            {
                                lot: round((v.stats.frames - before[lot]) / elapsed, 2)
                                for lot, v in viewers.items()
                            }
                        )
                    else:
                        await asyncio.gather(*(v.close() for v in viewers.values()))
                        results.put("closed")
                        return

    asyncio.run(main())


def per_frame(frames: int) -> dict[str, Any]:
    """CPU time (of this thread: robust to other work on the machine) of one property lot's
    frame, step by step, as the server makes it: the presentation's pan-and-zoom picture,
    the burned-in state, the 360p VP8 encode."""
    from auction.video.presentation import LotFacts, presentation_frames
    from auction.video.sources import PRESENTATION_360P
    from streaming.encoder import FrameProcessor
    from streaming.model import OverlayState, SlideshowSource
    from streaming.slideshow import SlideshowFrames

    slides = presentation_frames(LotFacts(TITLES[0].format(n=1), sale_title="Xihu District"))
    source = SlideshowFrames(SlideshowSource(slides))
    processor = FrameProcessor((PRESENTATION_360P,), encode=True, clock_strip=True)
    state = OverlayState(
        seq=1, server_ts_ms=0, title=TITLES[0].format(n=1), price_text="¥2,100,000.00",
        phase="OPEN", leader_code="K7Q2", ends_at_ms=10**13,
    )  # fmt: skip
    spent = {"picture": 0.0, "overlay": 0.0, "encode": 0.0}
    for index in range(frames):
        t0 = time.thread_time()
        frame = source.render(index)
        t1 = time.thread_time()
        processor.burn_in(frame, state, 1_000 + index * 66)
        t2 = time.thread_time()
        processor.encode_rendition(
            frame, PRESENTATION_360P, pts=index * 6000, capture_us=index, keyframe=index % 30 == 0
        )
        t3 = time.thread_time()
        spent["picture"] += t1 - t0
        spent["overlay"] += t2 - t1
        spent["encode"] += t3 - t2
    out = {name: round(seconds * 1000 / frames, 2) for name, seconds in spent.items()}
    total = sum(spent.values()) * 1000 / frames
    out["total_ms_per_frame"] = round(total, 2)
    out["core_percent_at_15_fps"] = round(total * PRESENTATION_FPS / 10, 1)
    return out


def run(args: argparse.Namespace) -> dict[str, Any]:
    steps = sorted({int(s) for s in args.steps.split(",")})
    context = mp.get_context("spawn")
    with tempfile.TemporaryDirectory(prefix="gavel-bench-video-") as tmp:
        # in a session of its own (as a server daemon runs): with the kernel's autogroups, its
        # CPU share is then its own, not shared with this script's viewers and bidders
        server = hot_lot_load.bench_server(Path(tmp), args.port, new_session=True)
        commands: Any = context.Queue()
        results: Any = context.Queue()
        viewers = context.Process(target=viewer_process, args=(server.url, commands, results))
        viewers.start()
        rows: list[dict[str, Any]] = []
        try:
            lots = asyncio.run(add_lots(server.url, server.token, 0, 1))
            asyncio.run(wait_live(server.url, lots))
            bidders = asyncio.run(hot_lot_load.make_bidders(server.url, args.bidders))
            commands.put(("watch", lots))
            results.get(timeout=60)
            for count in steps:
                if count > len(lots):
                    new = asyncio.run(
                        add_lots(server.url, server.token, len(lots), count - len(lots))
                    )
                    asyncio.run(wait_live(server.url, new))
                    commands.put(("watch", new))
                    results.get(timeout=120)
                    lots += new
                time.sleep(args.warmup)
                bids: dict[str, Any] = {}

                def bid(bids: dict[str, Any] = bids) -> None:
                    bids.update(
                        hot_lot_load.run_clients(
                            server.url, bidders, 0, args.window + 4, 1, args.rate, 1
                        )
                    )

                bidding = threading.Thread(target=bid)
                bidding.start()
                time.sleep(3.0)  # the bidders' processes start and connect
                load_before = os.getloadavg()[0]
                frames_before = asyncio.run(frames_out(server.url, lots))
                pid = server.pid
                assert pid is not None
                loop_before = cpu_seconds(pid, pid)  # the main thread: the event loop
                cpu_before, t0 = cpu_seconds(pid), time.monotonic()
                commands.put(("measure", args.window))
                fps: dict[str, float] = results.get(timeout=args.window + 60)
                elapsed = time.monotonic() - t0
                cpu_used = cpu_seconds(pid) - cpu_before
                loop_used = cpu_seconds(pid, pid) - loop_before
                frames = asyncio.run(frames_out(server.url, lots)) - frames_before
                server_cpu = cpu_used / elapsed * 100
                bidding.join()
                rates = sorted(fps.values())
                row = {
                    "lots": count,
                    "server_cpu_percent": round(server_cpu, 1),
                    "event_loop_cpu_percent": round(loop_used / elapsed * 100, 1),
                    "frames_out_per_s": round(frames / elapsed, 1),
                    "server_cpu_ms_per_frame": round(cpu_used * 1000 / max(1, frames), 2),
                    "viewer_fps_min": rates[0],
                    "viewer_fps_median": rates[len(rates) // 2],
                    "bids_answered_per_s": round(bids.get("answered_per_s", 0.0), 1),
                    "bid_ack_p50_ms": round(bids.get("ack_p50_ms", float("nan")), 1),
                    "bid_ack_p99_ms": round(bids.get("ack_p99_ms", float("nan")), 1),
                    "bid_errors": bids.get("errors", [])[:2],
                    "load_average_1min": round((load_before + os.getloadavg()[0]) / 2, 2),
                }
                row["pass"] = (
                    row["viewer_fps_min"] >= 0.9 * PRESENTATION_FPS
                    and row["bids_answered_per_s"] >= 0.9 * args.rate
                )
                rows.append(row)
                print(json.dumps(row), flush=True)
                if not row["pass"] and args.stop_on_fail:
                    break
        finally:
            commands.put(("close", None))
            try:
                results.get(timeout=30)
            except Exception:  # the viewers' process may be gone already
                pass
            viewers.join(10)
            if viewers.is_alive():
                viewers.kill()
            server.stop()
    fit = least_squares([(r["lots"], r["server_cpu_percent"]) for r in rows])
    slope = fit[0] if fit is not None else None
    passing = [r["lots"] for r in rows if r["pass"]]
    return {
        "machine": measured_on(),
        "rate_bids_per_s": args.rate,
        "window_s": args.window,
        "steps": rows,
        "server_cpu_percent_per_lot": round(slope, 1) if slope is not None else None,
        "most_lots_passing": max(passing) if passing else 0,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", default="1,4,8,12")
    parser.add_argument("--rate", type=float, default=200.0, help="bids/s in total")
    parser.add_argument("--bidders", type=int, default=20)
    parser.add_argument("--window", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--port", type=int, default=8141)
    parser.add_argument("--stop-on-fail", action="store_true")
    parser.add_argument("--out", default=None)
    parser.add_argument(
        "--per-frame", type=int, default=0, help="only time N frames of one lot in-process"
    )
    args = parser.parse_args()
    if args.per_frame:
        print(json.dumps({"machine": measured_on(), **per_frame(args.per_frame)}, indent=2))
        return 0
    summary = run(args)
    print(json.dumps(summary, indent=2))
    if args.out:
        write_json(args.out, summary)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
