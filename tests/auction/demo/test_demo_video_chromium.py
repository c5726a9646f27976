"""The living demo on air: `gavel demo --speed 30` as a real process; at two moments after
start-up, every open lot the catalogue API lists (property lots and the ring's lot) plays its
video in headless Chromium through the documented contract (`GET /api/lots/{lot}/stream`,
then `POST /api/lots/{lot}/stream/offer`): the room's <video> decodes frames and its clock
advances."""

from __future__ import annotations

import asyncio
import re
import sys
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from mylots_kit import video_plays

pytestmark = [pytest.mark.chromium, pytest.mark.slow]

SPEED = 30  # a court lot opens every 10 s, a ring lot comes up every 10 s
MOMENTS = (2.0, 14.0)  # seconds after the demo serves
MOST_LOTS = 4  # bounded: a handful of lots per moment


async def _open_lots(session: aiohttp.ClientSession, url: str) -> list[dict[str, Any]]:
    async with session.get(url + "/api/lots") as response:
        assert response.status == 200
        body = await response.json()
    return [lot for lot in body["lots"] if lot["status"] == "OPEN"]


async def _plays(browser: Any, url: str, lot: dict[str, Any], errors: list[str]) -> str:
    """The lot's room plays its video; the requests it made to the stream routes."""
    context = await browser.new_context(viewport={"width": 1280, "height": 800})
    try:
        page = await context.new_page()
        page.on("pageerror", lambda error: errors.append(str(error)))
        asked: list[str] = []
        page.on(
            "request",
            lambda request: (
                asked.append(f"{request.method} {request.url}")
                if "/stream" in request.url
                else None
            ),
        )
        await page.goto(f"{url}/lot/{lot['lot_id']}")
        await video_plays(page)
        stream = f"{url}/api/lots/{lot['lot_id']}/stream"
        assert f"GET {stream}" in asked, asked
        assert f"POST {stream}/offer" in asked, asked
        return str(lot["format"])
    finally:
        await context.close()


async def test_every_open_lot_of_the_living_demo_plays_video(tmp_path: Path) -> None:
    from stream_kit import CHROMIUM_ARGS, require_chromium

    executable = require_chromium()
    from playwright.async_api import async_playwright

    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "auction.cli", "demo", "--speed", str(SPEED),
        "--duration", "60", "--data", str(tmp_path / "data"), "--port", "0", "--bots", "2",
        "--seed", "5", "--notaries", "0",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    assert process.stdout is not None
    try:
        line = (await asyncio.wait_for(process.stdout.readline(), 30)).decode()
        found = re.search(r"serving (http://127\.0\.0\.1:\d+)/", line)
        assert found, line
        url = found.group(1)
        started = asyncio.get_running_loop().time()
        formats: set[str] = set()
        errors: list[str] = []
        async with async_playwright() as playwright, aiohttp.ClientSession() as session:
            browser = await playwright.chromium.launch(
                executable_path=executable, headless=True, args=CHROMIUM_ARGS
            )
            try:
                for moment in MOMENTS:
                    wait = started + moment - asyncio.get_running_loop().time()
                    await asyncio.sleep(max(0.0, wait))
                    lots = await _open_lots(session, url)
                    assert lots, f"no open lot {moment} s after start-up"
                    for lot in lots[:MOST_LOTS]:
                        async with session.get(f"{url}/api/lots/{lot['lot_id']}/stream") as r:
                            assert r.status == 200
                            assert (await r.json())["live"] is True, lot["lot_id"]
                        formats.add(await _plays(browser, url, lot, errors))
            finally:
                await browser.close()
        assert "JUDICIAL_CN" in formats, formats  # property lots included
        assert errors == []
    finally:
        if process.returncode is None:
            process.kill()
        await process.wait()
