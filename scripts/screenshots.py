"""Screenshots of a running demo for docs/: the catalogue and a property lot at desktop size
(1280x800) and the lot on a phone (390x844), in headless Chromium.

    scripts/demo --port 8150 --data /tmp/demo &
    .venv/bin/python scripts/screenshots.py --url http://127.0.0.1:8150 --lot flat-1502 --out docs

With `--staff-token $(gavel staff --data /tmp/demo --role auditor | awk '/^token/{print $2}')`
it also takes the staff dashboard (`--dashboard-lot`: the lot it shows first).
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"


async def shoot_dashboard(
    browser: object, url: str, token: str, lot: str | None, out: Path, prefix: str
) -> None:
    """The staff dashboard, whole page, once its plots have loaded."""
    context = await browser.new_context(viewport={"width": 1280, "height": 900})  # type: ignore[attr-defined]
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
            shots = [
                ("catalogue", "/", {"width": 1280, "height": 800}),
                ("lot", f"/lot/{lot}", {"width": 1280, "height": 800}),
                ("phone", f"/lot/{lot}", {"width": 390, "height": 844}),
            ]
            for name, path, viewport in shots:
                context = await browser.new_context(viewport=viewport)
                page = await context.new_page()
                await page.goto(url + path)
                await page.wait_for_timeout(2500)
                await page.screenshot(path=str(out / f"{prefix}{name}.png"))
                await context.close()
            if staff_token:
                await shoot_dashboard(browser, url, staff_token, dashboard_lot, out, prefix)
        finally:
            await browser.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8080")
    parser.add_argument("--lot", default="flat-1502")
    parser.add_argument("--out", type=Path, default=Path("docs"))
    parser.add_argument("--prefix", default="screenshot-")
    parser.add_argument("--staff-token", help="a staff session: also take the dashboard")
    parser.add_argument("--dashboard-lot", help="the lot the dashboard shows first")
    args = parser.parse_args(argv)
    asyncio.run(
        shoot(
            args.url.rstrip("/"),
            args.lot,
            args.out,
            args.prefix,
            args.staff_token,
            args.dashboard_lot,
        )  # fmt: skip
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
