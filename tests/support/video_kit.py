"""Shared helpers of the tests, first written for `test_video_live.py`."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import test_utils, web

from auction.service import AuctionService
from auction.storage import Storage
from auction.video import VIDEO, Video, VideoSettings, install_video
from chain import EntryType, parse_entry
from streaming.model import R360P, TestPatternSource

__all__ = ["ledger_segments", "running_server", "video_settings"]


SERVICE = web.AppKey("test_service", AuctionService)


def video_settings(recordings: Path, **overrides: Any) -> VideoSettings:
    base: dict[str, Any] = {
        "recordings_dir": recordings,
        "pattern": TestPatternSource(width=640, height=360, fps=30, noise=0),
        "renditions": (R360P,),
        "default_rendition": "360p",
        "segment_seconds": 1.0,
        "gop_seconds": 1.0,
        "keyframe_min_interval_s": 0.25,
        "loopback_only": True,
        "close_tail_seconds": 0.5,
    }
    base.update(overrides)
    return VideoSettings(**base)


@dataclass
class Running:
    base_url: str
    service: AuctionService
    video: Video
    session: aiohttp.ClientSession


Seed = Callable[[AuctionService], Awaitable[None]]


@asynccontextmanager
async def running_server(
    data: Path, settings: VideoSettings, seed: Seed | None = None
) -> AsyncIterator[Running]:
    """A small composition root: the service on SQLite in `data` (seeded before the video
    starts, as the demo's catalogue is), then `install_video`."""
    app = web.Application()

    async def service_context(app: web.Application) -> AsyncIterator[None]:
        store = await asyncio.to_thread(Storage.open, data)
        service = AuctionService(store)
        await service.start()
        if seed is not None:
            await seed(service)
        app[SERVICE] = service
        yield
        await service.stop()

    app.cleanup_ctx.append(service_context)
    install_video(app, SERVICE, settings)
    server = test_utils.TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        async with aiohttp.ClientSession() as session:
            base_url = str(server.make_url("")).rstrip("/")
            yield Running(base_url, app[SERVICE], app[VIDEO], session)
    finally:
        await server.close()


def ledger_segments(data: Path) -> list[tuple[int, dict[str, Any]]]:
    with Storage.open(data, read_only=True) as store:
        raws = store.ledger_entries(0, store.ledger_size())
    entries = [parse_entry(raw) for raw in raws]
    return [
        (entry.seq, dict(entry.body)) for entry in entries if entry.type == EntryType.STREAM_SEGMENT
    ]
