"""The console page publishes the browser's camera on a property lot (headless Chromium with
its fake camera), and a bidder's lot room plays that lot's video."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from server_kit import running_server
from stream_kit import CHROMIUM_ARGS, require_chromium, wait_until
from video_kit import video_settings

from auction.accounts import Role
from auction.rules import SECOND, judicial
from auction.video import VIDEO

pytestmark = [pytest.mark.chromium, pytest.mark.slow]

LOT = "hz-parking-117"
FAKE_CAMERA = ["--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream"]


async def test_the_console_camera_goes_on_air_on_a_judicial_lot(tmp_path: Path) -> None:
    executable = require_chromium()
    from playwright.async_api import async_playwright

    settings = video_settings(tmp_path / "data" / "recordings", lots="all")
    async with running_server(tmp_path, video=settings) as server:
        service = server.service
        start = service.now() + SECOND // 2
        rules = judicial(
            start_price=18_000_000, step=200_000, start_at=start, end_at=start + 300 * SECOND,
            min_duration=0, window=SECOND, extend=SECOND,
        )  # fmt: skip
        await service.add_lot(LOT, rules, "Parking space B2-117, Lvcheng Xixi Garden")
        hub = server.app[VIDEO].hub
        await wait_until(lambda: hub.lot(LOT) is not None, 5)
        token = await server.staff(Role.AUCTIONEER)
        errors: list[str] = []
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(
                executable_path=executable, headless=True, args=CHROMIUM_ARGS + FAKE_CAMERA
            )
            try:
                room = await browser.new_page()
                room.on("pageerror", lambda error: errors.append(str(error)))
                await room.goto(f"{server.url}/lot/{LOT}")
                await room.wait_for_function(  # the presentation plays in the lot room
                    "() => { const v = document.getElementById('video');"
                    " return !v.hidden && v.readyState >= 2 && v.videoWidth === 640; }",
                    timeout=30_000,
                    polling=250,
                )
                console = await browser.new_page()
                console.on("pageerror", lambda error: errors.append(str(error)))
                await console.goto(f"{server.url}/console#token={token}")
                await console.get_by_label("Lot", exact=True).select_option(LOT)
                await console.wait_for_function(
                    "() => /on air/.test(document.getElementById('video-state').textContent)",
                    polling=250,
                )
                state = await console.locator("#video-state").text_content()
                assert state is not None and "360p at 15 frames a second" in state, state
                await console.get_by_label("Show", exact=True).select_option("camera")
                await console.get_by_role("button", name="Show it").click()
                await console.wait_for_function(
                    "() => /now shows a camera/.test("
                    "document.getElementById('video-result').textContent)",
                    polling=250,
                )
                await console.get_by_role("button", name=re.compile("Start this browser")).click()
                await wait_until(lambda: hub.status(LOT).camera, 20)
                lot = hub.lot(LOT)
                assert lot is not None
                frames = lot.frames_out
                await wait_until(lambda: lot.frames_out > frames + 10, 10)
                result = await console.locator("#video-result").text_content()
                assert result is not None and "camera is on air" in result, result
                await console.get_by_role("button", name="Stop the camera").click()
                await wait_until(lambda: not hub.status(LOT).camera, 15)
            finally:
                await browser.close()
        assert errors == []
