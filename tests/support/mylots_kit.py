"""Shared helpers of the tests, first written for `test_web_mylots.py`."""

from __future__ import annotations

from typing import Any

__all__ = ["video_plays"]


# The room's <video>: shown, decoded and playing (a sample of its clock and decoded frames).
VIDEO_SAMPLE = """() => { const v = document.getElementById('video');
  if (!v || v.hidden || v.readyState < 2 || v.videoWidth === 0) return null;
  return [v.currentTime, v.getVideoPlaybackQuality().totalVideoFrames, v.videoWidth]; }"""


async def video_plays(page: Any) -> None:
    """The lot room's video really plays: its clock advances and new frames are decoded. The
    bidder scrolls to it (Chromium pauses a muted video out of sight)."""
    await page.wait_for_function(VIDEO_SAMPLE, timeout=30_000)
    await page.locator("#video").scroll_into_view_if_needed()
    time, frames, width = await page.evaluate(VIDEO_SAMPLE)
    assert width > 0
    await page.wait_for_function(
        "([time, frames]) => { const v = document.getElementById('video');"
        " return v.currentTime > time + 0.5"
        " && v.getVideoPlaybackQuality().totalVideoFrames > frames + 5; }",
        arg=[time, frames],
        timeout=20_000,
    )
    assert await page.locator("#video-note").is_hidden()
