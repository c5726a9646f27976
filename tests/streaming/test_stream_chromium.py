"""Real headless Chromium (Debian's, through Playwright; no browser download) plays a lot's
stream with `player.js`: frames at full rate, the overlay changes in the picture after a bid,
the "video is N s behind" indicator, and a rendition switch."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from stream_kit import (
    CHROMIUM_ARGS,
    PATTERN,
    Running,
    require_chromium,
    running_stream_app,
    stream_settings,
)

from streaming.model import OverlayState

pytestmark = [pytest.mark.chromium, pytest.mark.slow]

# Downsample the banner (top 14 % of the picture) to 64x8 grey levels.
SAMPLE_BANNER = """() => {
  const video = document.getElementById('video');
  const canvas = document.createElement('canvas');
  canvas.width = 64; canvas.height = 8;
  const context = canvas.getContext('2d');
  const rows = Math.floor(video.videoHeight * 0.14);
  context.drawImage(video, 0, 0, video.videoWidth, rows, 0, 0, 64, 8);
  const data = context.getImageData(0, 0, 64, 8).data;
  const out = [];
  for (let i = 0; i < data.length; i += 4) out.push((data[i] + data[i + 1] + data[i + 2]) / 3);
  return out;
}"""


def _state(seq: int, price: str, leader: str) -> OverlayState:
    return OverlayState(
        seq=seq,
        server_ts_ms=int(time.time() * 1000),
        title="Flat 1502, Hangzhou",
        price_text=price,
        ask_minor=seq,
        leader_code=leader,
        phase="OPEN",
    )


@pytest.fixture
async def page_and_server() -> AsyncIterator[tuple[Any, Running]]:
    executable = require_chromium()
    from playwright.async_api import async_playwright

    async with running_stream_app(stream_settings()) as running:
        running.hub.open_lot("lot-1", PATTERN, _state(1, "£900,000", "C01-AAAA"))
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(
                executable_path=executable, headless=True, args=CHROMIUM_ARGS
            )
            try:
                context = await browser.new_context()
                page = await context.new_page()
                await page.goto(f"{running.base_url}/stream/static/viewer.html?lot=lot-1&measure=1")
                await page.wait_for_function(
                    "window.gavel && (window.gavel.ready || window.gavel.error)", timeout=15_000
                )
                assert await page.evaluate("window.gavel.error") is None
                await page.wait_for_function(
                    "window.gavel.stream.stats.frames > 15", timeout=15_000
                )
                yield page, running
            finally:
                await browser.close()


def _difference(a: list[float], b: list[float]) -> float:
    return sum(abs(x - y) for x, y in zip(a, b, strict=True)) / len(a)


async def test_chromium_plays_at_full_rate_and_sees_the_bid(
    page_and_server: tuple[Any, Running],
) -> None:
    page, running = page_and_server
    # The best of three 2-s windows: the 2-core machine may be busy with other work (this
    # Chromium renders in software), and one good window shows the stream keeps up.
    rates: list[float] = []
    for _ in range(3):
        frames_before = await page.evaluate("window.gavel.stream.stats.frames")
        await asyncio.sleep(2.0)
        frames_after = await page.evaluate("window.gavel.stream.stats.frames")
        rates.append((frames_after - frames_before) / 2.0)
        if rates[-1] >= 25:
            break
    assert max(rates) >= 25, f"requestVideoFrameCallback fired {rates} times a second"

    before = await page.evaluate(SAMPLE_BANNER)
    await asyncio.sleep(0.5)
    still = await page.evaluate(SAMPLE_BANNER)
    running.hub.update_overlay("lot-1", _state(2, "£1,250,000", "C02-ZZZZ"))  # a bid accepted
    await page.wait_for_function(
        "window.gavel.stream.stats.metadata && window.gavel.stream.stats.metadata.seq === 2",
        timeout=5_000,
    )
    # The banner must come to differ from its pre-bid pixels by clearly more than the noise
    # between two pre-bid samples. Encoder quality varies with the machine's load, so poll
    # for up to 5 s instead of judging one sample.
    baseline = _difference(before, still)
    changes: list[float] = []
    for _ in range(25):
        await asyncio.sleep(0.2)
        changes.append(_difference(still, await page.evaluate(SAMPLE_BANNER)))
        if changes[-1] > 3 * baseline + 1.0:
            break
    assert max(changes) > 3 * baseline + 1.0, (baseline, changes)

    stats = await page.evaluate("window.gavel.stream.stats")
    assert stats["shownSeq"] in (1, 2)
    assert stats["behindSeconds"] is not None and stats["behindSeconds"] < 1.0
    indicator = await page.text_content("#behind")
    assert indicator is not None and indicator.startswith("video is ")
    latencies = sorted(stats["latenciesMs"])
    assert latencies, "the clock strip could not be read in the page"
    p95 = latencies[int(0.95 * (len(latencies) - 1))]
    assert p95 < 1000, f"capture-to-display p95 {p95:.0f} ms"


async def test_chromium_switches_rendition(page_and_server: tuple[Any, Running]) -> None:
    page, running = page_and_server
    assert await page.evaluate("document.getElementById('video').videoWidth") == 640
    ack = await page.evaluate("window.gavel.stream.switchRendition('720p')")
    assert ack["name"] == "720p"
    await page.wait_for_function(
        "document.getElementById('video').videoWidth === 1280", timeout=5_000
    )
    assert running.hub.status("lot-1").renditions[1]["viewers"] == 1
