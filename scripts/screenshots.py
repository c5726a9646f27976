"""Screenshots of a running demo for docs/: the catalogue and a property lot at desktop size
(1280x800) and the lot on a phone (390x844), in headless Chromium.

    scripts/demo --port 8150 --data /tmp/demo &
    .venv/bin/python scripts/screenshots.py --url http://127.0.0.1:8150 --lot flat-1502 --out docs
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"


async def shoot(url: str, lot: str, out: Path, prefix: str) -> None:
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
        finally:
            await browser.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8080")
    parser.add_argument("--lot", default="flat-1502")
    parser.add_argument("--out", type=Path, default=Path("docs"))
    parser.add_argument("--prefix", default="screenshot-")
    args = parser.parse_args(argv)
    asyncio.run(shoot(args.url.rstrip("/"), args.lot, args.out, args.prefix))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
