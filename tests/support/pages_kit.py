"""Shared helpers of the tests, first written for `test_web_pages.py`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from aiohttp import web
from stream_kit import CHROMIUM_ARGS, require_chromium

from auction.web.pages import static_file

__all__ = ["ACCESSIBLE_NAMES", "_static_server", "js", "static_tab"]


STATIC = Path(__file__).resolve().parents[2] / "auction" / "web" / "static"


BLANK = b'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>t</title></head></html>'


async def _static_server() -> tuple[web.AppRunner, str]:
    app = web.Application()

    async def blank(request: web.Request) -> web.Response:
        return web.Response(body=BLANK, content_type="text/html")

    async def refused(request: web.Request) -> web.Response:
        body = {"error": {"code": "BAD_CHECK_DIGIT", "message": "the check character is wrong"}}
        return web.json_response(body, status=422)

    async def coded(request: web.Request) -> web.Response:
        return web.json_response({"error": {"code": "INSUFFICIENT_FUNDS"}}, status=402)

    app.router.add_get("/", blank)
    app.router.add_post("/api/refused", refused)
    app.router.add_post("/api/coded", coded)
    app.router.add_get("/static/{name}", static_file)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    return runner, f"http://127.0.0.1:{port}"


@asynccontextmanager
async def static_tab() -> AsyncIterator[Any]:
    """A Chromium tab at `/` of a server with only the static files (no API, no ledger); fails
    when a script of the page threw."""
    executable = require_chromium()
    from playwright.async_api import async_playwright

    runner, base = await _static_server()
    try:
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(
                executable_path=executable, headless=True, args=CHROMIUM_ARGS
            )
            try:
                tab = await browser.new_page()
                errors: list[str] = []
                tab.on("pageerror", lambda error: errors.append(str(error)))
                await tab.goto(base + "/")
                yield tab
                assert errors == []
            finally:
                await browser.close()
    finally:
        await runner.cleanup()


async def js(tab: Any, module: str, body: str, argument: Any = None) -> Any:
    """Run `body` (an async function body using `m`, the module, and `arg`) in the page."""
    script = "async ([path, arg]) => { const m = await import(path); " + body + " }"
    return await tab.evaluate(script, [f"/static/{module}", argument])


ACCESSIBLE_NAMES = """() => {
  const missing = [];
  for (const node of document.querySelectorAll('button, input, select, textarea, a[href]')) {
    let name = node.getAttribute('aria-label') || '';
    const labelledBy = node.getAttribute('aria-labelledby');
    if (!name && labelledBy) name = labelledBy.split(' ').map((id) =>
      (document.getElementById(id) || {}).textContent || '').join(' ');
    if (!name && node.labels && node.labels.length) name = node.labels[0].textContent;
    if (!name && (node.tagName === 'BUTTON' || node.tagName === 'A')) name = node.textContent;
    if (!name.trim()) missing.push(node.outerHTML.slice(0, 80));
  }
  return missing;
}"""
