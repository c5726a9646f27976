"""A standalone streaming server for development, tests and the benchmark.

    python -m streaming.devserver --port 8090 [--lots lot-1,lot-2] [--renditions 360p,720p]
        [--source 1280x720] [--encode-mode shared|per_viewer] [--record DIR] [--duration S]

Every lot streams the test pattern; a fake price ticker updates the overlay (and the timed
metadata) every `--tick` seconds. Loopback-only ICE. The page `/` plays the first lot.
Prints `READY <url>` once listening; stops by itself after `--duration` seconds (or on
SIGINT/SIGTERM).
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

from aiohttp import web

from streaming.app import HUB, mount_streaming
from streaming.hub import StreamHub
from streaming.model import STANDARD_RENDITIONS, OverlayState, TestPatternSource
from streaming.recorder import JsonlSegmentSink
from streaming.settings import StreamSettings

TICKER = web.AppKey("dev_ticker", asyncio.Task[None])


def demo_state(lot_id: str, tick: int, now_ms: int, ends_at_ms: int) -> OverlayState:
    """The fake auction: a bid every tick, leaders alternating, soft-close extensions."""
    price = 1_000_000 + tick * 10_000
    extended = ends_at_ms - now_ms < 20_000
    return OverlayState(
        seq=tick,
        server_ts_ms=now_ms,
        title=f"Lot {lot_id}: Flat 1502, 88 Wensan Road, Hangzhou",
        price_text=f"¥{price:,}",
        ask_minor=price * 100,
        leader_code=("C01-7Q2X", "C02-K9PA", "C03-ZZ1M")[tick % 3] if tick else None,
        phase="OPEN",
        ends_at_ms=ends_at_ms,
        extended=extended,
    )


async def ticker(hub: StreamHub, lots: Sequence[str], interval_s: float) -> None:
    tick = 0
    ends_at = int(time.time() * 1000) + 120_000
    while True:
        now = int(time.time() * 1000)
        if ends_at - now < 20_000:
            ends_at = now + 30_000  # soft close: a bid near the end extends it
        for lot_id in lots:
            hub.update_overlay(lot_id, demo_state(lot_id, tick, now, ends_at))
        tick += 1
        await asyncio.sleep(interval_s)


def build_app(args: argparse.Namespace) -> web.Application:
    by_name = {r.name: r for r in STANDARD_RENDITIONS}
    renditions = tuple(by_name[name] for name in args.renditions.split(","))
    width, height = (int(x) for x in args.source.split("x"))
    record = Path(args.record) if args.record else None
    settings = StreamSettings(
        renditions=renditions,
        default_rendition=renditions[0].name,
        recording_dir=record,
        segment_sink=JsonlSegmentSink(record / "segments.jsonl") if record else None,
        loopback_only=True,
        encode_mode=args.encode_mode,
        max_viewers_per_lot=args.max_viewers,
        max_viewers_per_address=args.max_viewers,  # a load test's viewers share 127.0.0.1
        max_concurrent_negotiations=64,
    )
    app = web.Application()
    stream_app = mount_streaming(app, settings)
    hub = stream_app[HUB]
    lots = [lot for lot in args.lots.split(",") if lot]
    source = TestPatternSource(width=width, height=height, fps=args.fps, noise=args.noise)
    now = int(time.time() * 1000)
    for lot_id in lots:
        hub.open_lot(lot_id, source, demo_state(lot_id, 0, now, now + 120_000))
    hub.declare_lot("lot-not-live")

    async def index(request: web.Request) -> web.StreamResponse:
        raise web.HTTPFound(f"/stream/static/viewer.html?lot={lots[0]}")

    async def run_ticker(app: web.Application) -> AsyncIterator[None]:
        app[TICKER] = asyncio.ensure_future(ticker(hub, lots, args.tick))
        yield
        app[TICKER].cancel()
        try:
            await app[TICKER]
        except asyncio.CancelledError:
            pass

    app.router.add_get("/", index)
    app.cleanup_ctx.append(run_ticker)
    return app


async def serve(args: argparse.Namespace) -> None:
    runner = web.AppRunner(build_app(args), handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", args.port)
    await site.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    print(f"READY http://127.0.0.1:{args.port}", flush=True)
    try:
        await asyncio.wait_for(stop.wait(), args.duration)
    except TimeoutError:
        pass
    finally:
        await runner.cleanup()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m streaming.devserver")
    parser.add_argument("--port", type=int, default=8090)
    parser.add_argument("--lots", default="lot-1")
    parser.add_argument("--renditions", default="360p,720p")
    parser.add_argument("--source", default="1280x720", help="test pattern size WxH")
    parser.add_argument("--fps", type=int, default=30)
    parser.add_argument("--noise", type=int, default=1)
    parser.add_argument("--encode-mode", choices=("shared", "per_viewer"), default="shared")
    parser.add_argument("--record", default=None, help="evidence directory (with segments.jsonl)")
    parser.add_argument("--tick", type=float, default=2.0, help="seconds between fake bids")
    parser.add_argument("--max-viewers", type=int, default=1000)
    parser.add_argument("--duration", type=float, default=3600.0, help="stop after S seconds")
    args = parser.parse_args(argv)
    try:
        asyncio.run(serve(args))
    except OSError as exc:
        print(f"cannot serve on 127.0.0.1:{args.port}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
