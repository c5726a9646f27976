"""The staff dashboard page in headless Chromium over a real server: after a sale, the page
shows every plot as an SVG image (with axes) and every table, and its CSV download equals the
API's; without a token it says what to do."""

from __future__ import annotations

import asyncio
import base64
import csv
import io
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from dashboard_kit import run_sale
from plots_kit import svg_with_axes
from server_kit import Server, running_server
from stream_kit import CHROMIUM_ARGS, require_chromium

from auction.accounts import Role
from auction.dashboard.analytics import TABLES

pytestmark = [pytest.mark.chromium, pytest.mark.slow]
TIMEOUT_MS = 20_000


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    executable = require_chromium()
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=executable, headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield launched
        finally:
            await launched.close()


async def open_dashboard(browser: Any, server: Server, token: str | None) -> tuple[Any, list[str]]:
    context = await browser.new_context(
        viewport={"width": 1100, "height": 900}, accept_downloads=True
    )
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.set_default_timeout(TIMEOUT_MS)
    suffix = f"#token={token}" if token else ""
    await page.goto(f"{server.url}/console/dashboard{suffix}")
    return page, errors


async def test_dashboard_page_shows_plots_and_tables(tmp_path: Path, browser: Any) -> None:
    async with running_server(tmp_path) as server, aiohttp.ClientSession() as http:
        await run_sale(server, http)
        token = await server.staff(Role.AUCTIONEER)
        headers = {"Authorization": f"Bearer {token}"}
        # a person opening the flat's page counts once (the page and the lot it reads)
        visitor = await browser.new_page()
        async with visitor.expect_response(lambda r: r.url.endswith("/api/lots/flat")):
            await visitor.goto(f"{server.url}/lot/flat")
        await visitor.close()
        async with http.get(f"{server.url}/api/dashboard/funnel.json", headers=headers) as got:
            rows = json.loads(await got.read())["rows"]
        visits = {r["id"]: r["count"] for r in rows if r["step"] == "visitors"}
        assert (visits["flat"], visits["watch"]) == (1, 3)
        page, errors = await open_dashboard(browser, server, token)
        await page.wait_for_selector("body[data-loaded='yes']")
        # the token left the address bar
        assert "token" not in page.url
        images = page.locator("img.plot")
        await page.wait_for_function(
            "() => [...document.querySelectorAll('img.plot')].length === 6 && "
            "[...document.querySelectorAll('img.plot')]"
            ".every(i => i.complete && i.naturalWidth > 0)"
        )
        names = [await images.nth(i).get_attribute("data-plot") for i in range(6)]
        assert sorted(names) == sorted(
            ["hammer", "deposits", "funnel", "bids", "bidders", "watchers"]
        )
        for i in range(6):
            source = str(await images.nth(i).get_attribute("src"))
            prefix = "data:image/svg+xml;base64,"
            assert source.startswith(prefix), source[:60]
            svg_with_axes(base64.b64decode(source[len(prefix) :]))
            assert await images.nth(i).get_attribute("alt")
        # no SVG inlined into the page: the plots are images only
        assert await page.locator("main svg").count() == 0
        # the tables, each with its row count
        tables = page.locator("details[data-table]")
        assert await tables.count() == len(TABLES)
        summary = await page.locator("details[data-table='funnel'] summary").text_content()
        assert "Funnel per lot and per sale (21 rows)" in str(summary)
        # choosing the other lot redraws its plots
        await page.select_option("#lot-choice", "watch")
        await page.wait_for_function(
            "() => [...document.querySelectorAll('#lot-plots img.plot')].length === 4 && "
            "[...document.querySelectorAll('#lot-plots img.plot')].every(i => "
            "i.alt.includes('lot watch') && i.complete && i.naturalWidth > 0)"
        )
        # the CSV download equals the API's JSON
        await page.locator("details[data-table='bids'] summary").click()
        async with page.expect_download() as waiting:
            await page.locator("details[data-table='bids'] button[data-export='bids.csv']").click()
        download = await waiting.value
        text = Path(await download.path()).read_text(encoding="utf-8")
        async with http.get(f"{server.url}/api/dashboard/bids.json", headers=headers) as response:
            table = json.loads(await response.read())
        rows = list(csv.DictReader(io.StringIO(text)))
        assert rows == [{k: str(v) for k, v in row.items()} for row in table["rows"]]
        assert len(rows) >= 5
        assert errors == []


async def test_dashboard_page_without_a_staff_token(tmp_path: Path, browser: Any) -> None:
    async with running_server(tmp_path) as server, aiohttp.ClientSession() as http:
        async with http.post(
            f"{server.url}/api/accounts", json={"public_key": base64.b64encode(b"k" * 32).decode()}
        ) as response:
            bidder = (await response.json())["session"]
        page, errors = await open_dashboard(browser, server, None)
        status = page.locator("#status")
        await status.wait_for(state="visible")
        assert "needs a staff link" in str(await status.text_content())
        page, more_errors = await open_dashboard(browser, server, bidder)
        errors += more_errors
        status = page.locator("#status")
        await page.wait_for_function(
            "() => document.querySelector('#status').textContent.length > 0"
        )
        words = str(await page.locator("#status").text_content())
        assert "FORBIDDEN" not in words and words.strip()
        assert await page.locator("img.plot").count() == 0
        assert errors == []


async def test_staff_page_makes_lists_and_revokes(tmp_path: Path, browser: Any) -> None:
    async with running_server(tmp_path) as server, aiohttp.ClientSession() as http:
        admin = await server.staff(Role.ADMIN)
        context = await browser.new_context(viewport={"width": 1000, "height": 800})
        page = await context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.on("dialog", lambda dialog: asyncio.ensure_future(dialog.accept()))
        page.set_default_timeout(TIMEOUT_MS)
        await page.goto(f"{server.url}/console/staff#token={admin}")
        await page.select_option("#new-role", "auditor")
        await page.fill("#new-label", "desk-2")
        await page.get_by_role("button", name="Make the session").click()
        token_text = page.locator("#new-token-text")
        await token_text.wait_for(state="visible")
        token = str(await token_text.text_content()).strip()
        row = page.locator("#sessions tr")
        await row.first.wait_for()
        assert await row.count() == 1
        cells = [str(c) for c in await row.first.locator("td").all_text_contents()]
        assert cells[1:3] == ["Auditor", "desk-2"] and cells[0].startswith("st-")
        assert token not in str(await page.locator("#sessions").inner_html())
        # the token works until it is revoked from the page
        headers = {"Authorization": f"Bearer {token}"}
        async with http.get(f"{server.url}/api/dashboard", headers=headers) as response:
            assert response.status == 200
        await row.first.get_by_role("button", name="Revoke").click()
        await page.wait_for_function("() => document.querySelectorAll('#sessions tr').length === 0")
        status = str(await page.locator("#status").text_content())
        assert status == f"Session {cells[0]} is revoked."
        async with http.get(f"{server.url}/api/dashboard", headers=headers) as response:
            assert response.status == 401
        # a label that is refused: the reason in words, nothing made
        await page.fill("#new-label", "<b>")
        await page.get_by_role("button", name="Make the session").click()
        await page.wait_for_function(
            "() => document.querySelector('#status').textContent.startsWith('Label must be')"
        )
        assert await row.count() == 0
        assert errors == []
