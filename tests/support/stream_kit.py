"""Shared helpers of the stream tests (imported as `test_stream_support`; holds no tests)."""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import test_utils, web

from streaming.app import HUB, mount_streaming
from streaming.hub import StreamHub
from streaming.model import R360P, R720P, TestPatternSource
from streaming.settings import StreamSettings

__all__ = [
    "CHROMIUM_ARGS",
    "PATTERN",
    "Running",
    "require_chromium",
    "running_stream_app",
    "stream_settings",
    "wait_until",
]


CHROMIUM = Path("/usr/bin/chromium")


CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--use-fake-ui-for-media-stream",
    "--allow-loopback-in-peer-connection",  # without it: no candidate at all on loopback
]


# Cheap to encode (no sensor noise): keeps the 2-core test machine well below saturation.
PATTERN = TestPatternSource(width=1280, height=720, fps=30, noise=0)


def stream_settings(**overrides: Any) -> StreamSettings:
    base = StreamSettings(
        renditions=(R360P, R720P),
        default_rendition="360p",
        loopback_only=True,
        gop_seconds=1.0,
        keyframe_min_interval_s=0.25,
        segment_seconds=1.0,
        negotiation_timeout_s=10.0,
    )
    return replace(base, **overrides)


@dataclass
class Running:
    base_url: str
    hub: StreamHub
    session: aiohttp.ClientSession


@asynccontextmanager
async def running_stream_app(settings: StreamSettings) -> AsyncIterator[Running]:
    """The sub-application mounted on a bare parent, served on 127.0.0.1 (a free port)."""
    parent = web.Application()
    stream_app = mount_streaming(parent, settings)
    server = test_utils.TestServer(parent, host="127.0.0.1")
    await server.start_server()
    try:
        async with aiohttp.ClientSession() as session:
            yield Running(str(server.make_url("")).rstrip("/"), stream_app[HUB], session)
    finally:
        await server.close()


async def wait_until(predicate: Callable[[], bool], timeout: float, step: float = 0.05) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(step)


def require_chromium() -> str:
    """The Chromium binary; skips locally when missing, fails on CI (CI=true)."""
    if CHROMIUM.exists() or shutil.which("chromium"):
        return str(CHROMIUM if CHROMIUM.exists() else shutil.which("chromium"))
    message = "headless Chromium not installed at /usr/bin/chromium (apt-get install chromium)"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)
