"""Sales in headless Chromium over a real server: the auctioneer creates a judicial sale of two
flats from the console, gives each a document, publishes the notice; the sale runs, its lots
fail, and the console relists one (refused in words before its notice has run, then done).
Bidders reach the sale page from the catalogue and from the lot page. Screenshots of the
console and the sale page at desktop and phone widths go to /tmp."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from pages_kit import ACCESSIBLE_NAMES
from server_kit import Server, running_server
from stream_kit import CHROMIUM_ARGS, require_chromium
from web_kit import wait_text

from auction.accounts import Role
from auction.rules import DAY

pytestmark = [pytest.mark.chromium, pytest.mark.slow]
TIMEOUT_MS = 30_000
SALE = "court-web"
SIZES = {"desktop": (1280, 900), "phone": (390, 844)}


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


async def new_page(browser: Any, errors: list[str], size: str = "desktop") -> Any:
    width, height = SIZES[size]
    page = await browser.new_page(viewport={"width": width, "height": height})
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.set_default_timeout(TIMEOUT_MS)
    return page


async def wait_status(server: Server, lot: str, status: str, timeout: float = 40.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        view = server.service.view(lot)
        if view is not None and view.status == status:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"lot {lot} did not become {status}")


async def no_sideways_scroll(page: Any) -> None:
    wide = await page.evaluate(
        "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert wide <= 1, f"the page scrolls sideways by {wide} px"


async def test_console_makes_runs_and_relists_a_sale(tmp_path: Path, browser: Any) -> None:
    async with running_server(tmp_path) as server:
        token = await server.staff(Role.AUCTIONEER)
        errors: list[str] = []
        page = await new_page(browser, errors)
        await page.goto(f"{server.url}/console#token={token}")
        await page.get_by_label("Sale title").fill("Court sale: two flats")
        await page.get_by_label(r"Sale id").fill(SALE)
        await page.get_by_label("Opens in (minutes)").fill("0.1")
        await page.get_by_label("Length of the first lot (minutes)").fill("0.25")
        await page.get_by_label("Shortest run the court allows (minutes)").fill("0.1")
        await page.get_by_label("Gap between closes (seconds)").fill("2")
        for n, (title, price) in enumerate([("Flat 1502", "1,820,000"), ("Flat 803", "1,510,000")]):
            await page.get_by_label(f"Lot {n + 1}: title").fill(title)
            await page.locator(f"#sale-lot-{n + 1}-price").fill(price)
            await page.locator(f"#sale-lot-{n + 1}-step").fill("10,000")
        await page.get_by_role("button", name="Create the sale").click()
        await wait_text(page, "#sale-result", "Created the sale|could not")
        one, two = server.service.view(f"{SALE}-1"), server.service.view(f"{SALE}-2")
        assert (one.start_price, two.start_price) == (182_000_000, 151_000_000)
        assert two.end - one.end == 2_000_000  # staggered closes, rules C12
        assert one.sale_id == two.sale_id == SALE

        # each lot's document, through the lot facts section of the same console
        for n in (1, 2):
            lot = f"{SALE}-{n}"
            await page.locator(f"[data-facts='{lot}']").click()
            assert await page.get_by_label("Lot", exact=True).input_value() == lot
            announcement = tmp_path / f"announcement-{n}.txt"
            announcement.write_text(f"Announcement of the court for flat {n}.\n")
            await page.get_by_label("Kind of file").select_option("announcement")
            await page.get_by_label("File", exact=True).set_input_files(str(announcement))
            await page.get_by_role("button", name="Upload and record in the ledger").click()
            await wait_text(page, "#upload-result", f"Recorded announcement-{n}.txt|failed")
            digest = hashlib.sha256(announcement.read_bytes()).hexdigest()
            documents = [
                e["body"] for e in server.entry_json() if e["body"].get("sha256") == digest
            ]
            assert documents and documents[0]["lot"] == lot

        notice = "Notice: two flats, sold one after the other."
        await page.get_by_label("Notice of the sale").fill(notice)
        await page.get_by_role("button", name="Publish the notice").click()
        await wait_text(page, "#sale-action-result", "Published the notice|not published")

        # the sale runs; nobody bids: both flats fail
        await wait_status(server, f"{SALE}-1", "FAILED")
        await wait_status(server, f"{SALE}-2", "FAILED")
        relist = page.locator(f"[data-relist='{SALE}-2']")
        await relist.wait_for()
        await relist.click()
        await page.get_by_label("Opens in (days)").fill("1")
        await page.get_by_label("and (hours)").fill("0")
        await page.get_by_role("button", name="Relist the lot").click()
        refused = await wait_text(page, "#relist-result", "Too early|Relisted|not relisted")
        assert refused.startswith("Too early: The relisting notice runs 15 days for real estate")
        assert refused.endswith("Choose a later opening time."), refused
        assert server.service.view(f"{SALE}-2-r") is None
        await page.get_by_label("Opens in (days)").fill("15")
        await page.get_by_label("and (hours)").fill("1")
        await page.get_by_role("button", name="Relist the lot").click()
        done = await wait_text(page, "#relist-result", "Relisted|not relisted|Too early")
        assert done.startswith(f"Relisted Flat 803 as {SALE}-2-r at CN¥1,208,000"), done
        relisted = server.service.view(f"{SALE}-2-r")
        assert relisted.status == "SCHEDULED" and relisted.start_price == 120_800_000
        assert relisted.start_at - server.service.now() > 15 * DAY
        await wait_text(page, "#sale-lot-list", "relisted as")
        assert await page.evaluate(ACCESSIBLE_NAMES) == []
        await page.locator("#sales-console").screenshot(path="/tmp/sales_console_desktop.png")

        phone = await new_page(browser, errors, "phone")
        await phone.goto(f"{server.url}/console#token={token}")
        await wait_text(phone, "#sale-lot-list", "relisted as")
        await phone.locator("#sales-console").screenshot(path="/tmp/sales_console_phone.png")
        await no_sideways_scroll(phone)

        # bidders: the catalogue and the lot page lead to the sale page
        for size in SIZES:
            bidder = await new_page(browser, errors, size)
            await bidder.goto(f"{server.url}/")
            await bidder.locator(f"a[href='/sale/{SALE}']").click()
            await wait_text(bidder, "#lots", "Relisting of Flat 803")
            await wait_text(bidder, "#notice", notice)
            assert "Court sale: two flats" in await bidder.locator("h1").text_content()
            await no_sideways_scroll(bidder)
            await bidder.screenshot(path=f"/tmp/sales_page_{size}.png", full_page=True)
            await bidder.goto(f"{server.url}/lot/{SALE}-1")
            await bidder.locator("#sale-link").click()
            await bidder.wait_for_url(f"**/sale/{SALE}")
        assert errors == []
