"""Screenshots of a running demo for docs/: the catalogue and a property lot at desktop size
(1280x800), the lot on a phone (390x844) and the auctioneer's console, in headless Chromium,
each taken once the lot's video is playing.

    .venv/bin/gavel demo --port 8150 --data /tmp/demo &
    .venv/bin/python -m scripts.screenshots --url http://127.0.0.1:8150 \\
        --console 'http://127.0.0.1:8150/console#token=…' --out docs

Without --lot, the open property lot with the longest time to go is shown. With
`--staff-token $(gavel staff --data /tmp/demo --role auditor | awk '/^token/{print $2}')`
it also takes the staff dashboard (`--dashboard-lot`: the lot it shows first).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import urllib.request
from pathlib import Path
from typing import Any

CHROMIUM = "/usr/bin/chromium"
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
# The video element `id` has played a second of decoded frames.
PLAYING = """(id) => { const v = document.getElementById(id);
  return v && !v.hidden && v.videoWidth > 0 && v.currentTime > 1
    && v.getVideoPlaybackQuality().totalVideoFrames > 10; }"""


def open_lots(url: str) -> list[dict[str, Any]]:
    with urllib.request.urlopen(url + "/api/lots") as response:  # noqa: S310 (loopback)
        return [lot for lot in json.load(response)["lots"] if lot["status"] == "OPEN"]


def open_property_lot(url: str) -> str:
    lots = open_lots(url)
    court = [lot for lot in lots if lot["format"] == "JUDICIAL_CN" and lot["status"] == "OPEN"]
    if not court:
        raise SystemExit("no property lot is open now: try again in a minute")
    return str(max(court, key=lambda lot: lot["end"])["lot_id"])


async def shot(
    browser: Any, url: str, viewport: dict[str, int], video: str, path: Path, full: bool = False
) -> None:
    context = await browser.new_context(viewport=viewport)
    try:
        page = await context.new_page()
        await page.goto(url)
        await page.wait_for_load_state("networkidle")
        if video:  # in sight: Chromium pauses a muted video out of sight
            await page.locator(f"#{video}").scroll_into_view_if_needed()
            await page.wait_for_function(PLAYING, arg=video, timeout=30_000)
        else:
            await page.wait_for_timeout(2500)
        await page.screenshot(path=str(path), full_page=full)
    finally:
        await context.close()


async def console_shot(browser: Any, console: str, lot: str, path: Path) -> None:
    """The console on the lot in the ring (its video plays), waiting a minute for one to come
    up; else on `lot`."""
    ring: list[dict[str, Any]] = []
    for _ in range(60):
        ring = [one for one in open_lots(console.split("/console")[0]) if one["phase"]]
        if ring:
            break
        await asyncio.sleep(1)
    lot = str(ring[0]["lot_id"]) if ring else lot
    context = await browser.new_context(viewport=DESKTOP)
    try:
        page = await context.new_page()
        await page.goto(console)
        await page.get_by_label("Lot", exact=True).select_option(lot)
        if ring:
            await page.locator("#console-video").scroll_into_view_if_needed()
            await page.wait_for_function(PLAYING, arg="console-video", timeout=30_000)
        else:
            await page.wait_for_timeout(2500)
        await page.locator("#lot-state").scroll_into_view_if_needed()
        await page.evaluate("window.scrollBy(0, -120)")  # the lot's heading in sight
        await page.screenshot(path=str(path))
    finally:
        await context.close()


async def shoot_dashboard(
    browser: Any, url: str, token: str, lot: str | None, out: Path, prefix: str
) -> None:
    """The staff dashboard, whole page, once its plots have loaded."""
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    page = await context.new_page()
    await page.goto(f"{url}/console/dashboard#token={token}")
    await page.wait_for_selector("body[data-loaded='yes']", timeout=60_000)
    if lot:
        await page.select_option("#lot-choice", lot)
        await page.wait_for_timeout(3000)
    await page.screenshot(path=str(out / f"{prefix}dashboard.png"), full_page=True)
    await context.close()


async def shoot(
    url: str,
    lot: str,
    console: str | None,
    out: Path,
    prefix: str,
    staff_token: str | None = None,
    dashboard_lot: str | None = None,
) -> None:
    from playwright.async_api import async_playwright

    out.mkdir(parents=True, exist_ok=True)
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=["--no-sandbox", "--disable-gpu"]
        )
        try:
            await shot(browser, url + "/", DESKTOP, "", out / f"{prefix}catalogue.png")
            lot_page = f"{url}/lot/{lot}"
            await shot(browser, lot_page, DESKTOP, "video", out / f"{prefix}lot.png")
            await shot(browser, f"{url}/lot/{lot}", PHONE, "video", out / f"{prefix}phone.png")
            if console:
                await console_shot(browser, console, lot, out / f"{prefix}console.png")
            if staff_token:
                await shoot_dashboard(browser, url, staff_token, dashboard_lot, out, prefix)
        finally:
            await browser.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8080")
    parser.add_argument("--lot", help="a lot id (default: an open property lot)")
    parser.add_argument("--console", help="the console's URL with its token, as printed")
    parser.add_argument("--out", type=Path, default=Path("docs"))
    parser.add_argument("--prefix", default="screenshot-")
    parser.add_argument("--staff-token", help="a staff session: also take the dashboard")
    parser.add_argument("--dashboard-lot", help="the lot the dashboard shows first")
    args = parser.parse_args(argv)
    url = args.url.rstrip("/")
    lot = args.lot or open_property_lot(url)
    asyncio.run(
        shoot(url, lot, args.console, args.out, args.prefix, args.staff_token, args.dashboard_lot)
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
