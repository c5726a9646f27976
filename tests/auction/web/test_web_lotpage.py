"""The lot page a bidder can trust, against the real server in real headless Chromium: facts,
pictures and court documents entered by the console (uploads checked by their bytes, bounded,
never served as active content), each document's SHA-256 shown with its ledger entry and
checkable in the page; the phone layout (price, countdown and bid button on the first screen,
no sideways scrolling); the bid form stopping what can only fail; and no engine name anywhere
a person reads."""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from lotpage_kit import PAGE_TEXT
from pages_kit import ACCESSIBLE_NAMES
from server_kit import Server, running_server
from stream_kit import CHROMIUM_ARGS, require_chromium
from web_kit import NAME, prc_id, text_of, wait_text
from words_kit import ENGINE_NAME

from auction.accounts import Role
from auction.catalogue.facts import MAX_DOCUMENT_BYTES
from auction.demo.facts import facade, floor_plan, office_tower, parking_bay
from auction.rules import (
    DAY,
    SECOND,
    DepositState,
    FairWarning,
    FloorBid,
    Format,
    Hammer,
    LotStatus,
    OpenRing,
    RejectReason,
    judicial,
    live_auctioneer,
)
from auction.rules.events import LivePhase
from auction.sales.desk import SaleDesk
from auction.sales.sale import SalePlan
from auction.web.sales import SALE_STORE
from auction.words import known_codes, time_words, words_tables

pytestmark = [pytest.mark.chromium, pytest.mark.slow]

LOT = "hz-flat-9"
TITLE = "Flat 902, Building 5, Hangzhou"
ANNOUNCEMENT = b"Auction announcement\nFlat 902: start price CNY 1,000,000.\n"
NOTICE_PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"
TIMEOUT_MS = 15_000


@dataclass
class Running:
    server: Server
    browser: Any
    http: aiohttp.ClientSession
    token: str

    @property
    def url(self) -> str:
        return self.server.url


@pytest.fixture
async def running(tmp_path: Path) -> AsyncIterator[Running]:
    executable = require_chromium()
    from playwright.async_api import async_playwright

    async with running_server(tmp_path, bots=0) as server, aiohttp.ClientSession() as http:
        service = server.service
        now = service.now()
        rules = judicial(
            start_price=1_000_000_00,
            step=10_000_00,
            appraisal=1_400_000_00,
            start_at=now + 1 * SECOND,
            end_at=now + 900 * SECOND,
            min_duration=0,
        )
        await service.add_lot(LOT, rules, TITLE)
        # Let the lot's own opening entry land before any test counts the ledger's entries.
        for _ in range(200):
            view = service.view(LOT)
            if view is not None and view.status == "OPEN":
                break
            await asyncio.sleep(0.05)
        token = await server.staff(Role.AUCTIONEER)
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(
                executable_path=executable, headless=True, args=CHROMIUM_ARGS
            )
            try:
                yield Running(server, browser, http, token)
            finally:
                await browser.close()


async def new_page(running: Running, errors: list[str], width: int, height: int = 800) -> Any:
    context = await running.browser.new_context(viewport={"width": width, "height": height})
    page = await context.new_page()
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.set_default_timeout(TIMEOUT_MS)
    return page


async def upload(
    running: Running,
    kind: str,
    name: str,
    data: bytes,
    content_type: str = "application/octet-stream",
    token: str | None = None,
    lot: str = LOT,
) -> tuple[int, dict[str, Any]]:
    headers = {"Content-Type": content_type}
    if token != "":
        headers["Authorization"] = f"Bearer {token or running.token}"
    async with running.http.post(
        f"{running.url}/api/console/lots/{lot}/documents",
        params={"kind": kind, "name": name},
        data=io.BytesIO(data) if len(data) > 1_000_000 else data,
        headers=headers,
    ) as response:
        return response.status, await response.json()


async def seed_facts(running: Running) -> list[dict[str, Any]]:
    """What the console enters: the text facts, three pictures and two documents."""
    async with running.http.put(
        f"{running.url}/api/console/lots/{LOT}/facts",
        json={
            "property_kind": "Flat",
            "address": "Flat 902, Building 5, Wenyi West Road, Hangzhou",
            "area": "76.20 m²",
            "description": "Two bedrooms on the 9th floor.",
            "priority_notice": "The co-owner holds a priority purchase right.",
        },
        headers={"Authorization": f"Bearer {running.token}"},
    ) as response:
        assert response.status == 200, await response.text()
    stored = []
    for kind, name, data, content_type in (
        ("picture", "facade.png", facade(), "image/png"),
        ("picture", "plan.png", floor_plan(), "image/png"),
        ("picture", "bay.jpg", parking_bay(), "image/jpeg"),
        ("picture", "tower.webp", office_tower(), "image/webp"),
        ("announcement", "announcement.txt", ANNOUNCEMENT, "text/plain"),
        ("notice", "bidding-notice.pdf", NOTICE_PDF, "application/pdf"),
    ):
        status, body = await upload(running, kind, name, data, content_type)
        assert status == 201, body
        stored.append(body["document"])
    return stored


async def test_uploads_are_checked_and_refusals_store_nothing(running: Running) -> None:
    server = running.server
    await seed_facts(running)
    size = await server.ledger_size()

    async def held() -> int:
        async with running.http.get(f"{running.url}/api/lots/{LOT}/facts") as response:
            body = await response.json()
        return len(body["pictures"]) + len(body["documents"])

    count = await held()
    svg = b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'
    refusals = [
        (("picture", "x.svg", svg, "image/svg+xml"), {}, 415, "WRONG_TYPE"),
        (
            ("notice", "n.txt", b"<html><script>alert(1)</script>", "text/plain"),
            {},
            415,
            "WRONG_TYPE",
        ),
        (("picture", "a.png", NOTICE_PDF, "image/png"), {}, 415, "WRONG_TYPE"),
        (("picture", "f.png", facade(), "image/svg+xml"), {}, 415, "WRONG_TYPE"),
        (
            ("notice", "big.txt", b"a" * (MAX_DOCUMENT_BYTES + 1), "text/plain"),
            {},
            413,
            "TOO_LARGE",
        ),
        (("passport", "p.png", facade(), "image/png"), {}, 422, "BAD_FACTS"),
        (("picture", "f.png", facade(), "image/png"), {"token": ""}, 401, "UNAUTHENTICATED"),
        (("picture", "f.png", facade(), "image/png"), {"lot": "nope"}, 404, "UNKNOWN_LOT"),
    ]
    for arguments, options, status, code in refusals:
        answer_status, answer = await upload(running, *arguments, **options)
        assert (answer_status, answer["error"]["code"]) == (status, code), answer
        assert answer["error"]["message"], answer
    bidder_token = await server.staff(Role.COMPLIANCE)
    answer_status, answer = await upload(
        running, "picture", "f.png", facade(), "image/png", token=bidder_token
    )
    assert answer_status == 403, answer
    assert await server.ledger_size() == size  # nothing anchored
    assert await held() == count  # nothing stored


async def test_lot_page_shows_facts_and_checkable_documents(running: Running) -> None:
    server = running.server
    stored = await seed_facts(running)
    # Served as data, never as a page: the declared type, a disposition, nosniff, a sandbox.
    for item in stored:
        async with running.http.get(running.url + item["url"]) as response:
            data = await response.read()
            headers = response.headers
        assert hashlib.sha256(data).hexdigest() == item["sha256"]
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert "sandbox" in headers["Content-Security-Policy"]
        assert "default-src 'none'" in headers["Content-Security-Policy"]
        assert headers["Content-Type"].split(";")[0] == item["content_type"]
        assert "html" not in headers["Content-Type"] and "svg" not in headers["Content-Type"]
        disposition = "attachment" if item["content_type"] == "application/pdf" else "inline"
        assert headers["Content-Disposition"].startswith(f'{disposition}; filename="')

    errors: list[str] = []
    page = await new_page(running, errors, 1280)
    await page.goto(f"{running.url}/lot/{LOT}")
    await wait_text(page, "#fact-address", "Flat 902, Building 5")
    assert await text_of(page, "#fact-area") == "76.20 m²"
    assert await text_of(page, "#fact-appraisal") == "CN¥1,400,000"
    assert await text_of(page, "#fact-start") == "CN¥1,000,000"
    assert await text_of(page, "#fact-deposit") == "CN¥100,000"
    assert await text_of(page, "#fact-step") == "CN¥10,000"
    assert await text_of(page, "#fact-extension") == (
        "A bid in the last 5 minutes extends the end by 5 minutes, as often as needed."
    )
    notice = await text_of(page, "#priority-notice")
    assert "priority purchase right" in notice and "co-owner holds" in notice
    await wait_text(page, "#lot-counts", r"^0 registered bidders · 1 watching now · 1 view$")
    # The gallery: four pictures, the next button and the thumbnails move through them.
    assert await page.locator("#gallery-thumbs button").count() == 4
    await wait_text(page, "#gallery-caption", r"^1 / 4 · facade\.png$")
    await page.get_by_role("button", name="Next picture").click()
    await wait_text(page, "#gallery-caption", r"^2 / 4 · plan\.png$")
    await page.get_by_role("button", name="Show picture 4: tower.webp").click()
    await wait_text(page, "#gallery-caption", r"^4 / 4")
    assert (
        await page.evaluate(
            "() => { const i = document.getElementById('gallery-main');"
            " return i.complete && i.naturalWidth; }"
        )
        == 960
    )

    # Each document: the SHA-256 shown equals the ledger entry's and the file's.
    entries = server.entry_json()
    items = page.locator("li.document")
    assert await items.count() == 2
    for index in range(2):
        item = items.nth(index)
        shown_hash = await item.locator(".sha256").text_content()
        shown_entry = int(str(await item.locator(".ledger-entry").text_content()))
        url = await item.locator("a").first.get_attribute("href")
        async with running.http.get(running.url + str(url)) as response:
            data = await response.read()
        entry = entries[shown_entry]
        assert entry["type"] == "document"
        assert entry["body"]["lot"] == LOT
        assert entry["body"]["sha256"] == shown_hash == hashlib.sha256(data).hexdigest()
        assert entry["body"]["size"] == len(data)
    # The announcement reads in the page; the check runs in the browser against the ledger.
    await page.get_by_text("Read the court's announcement").click()
    await wait_text(page, "li.document:first-child pre", "start price CNY 1,000,000")
    check = page.get_by_role("button", name=re.compile("^Check the SHA-256 of announcement.txt"))
    for _ in range(20):  # until a checkpoint covers the entry (at least twice a second)
        await check.click()
        verdict = await wait_text(
            page, "li.document:first-child .verify-result", "Verified|Mismatch|ledger entry"
        )
        if verdict.startswith("Verified"):
            break
        await page.wait_for_timeout(300)
    assert verdict.startswith("Verified: the file's SHA-256 is the one recorded in ledger entry")
    assert await page.evaluate(ACCESSIBLE_NAMES) == []
    assert await page.evaluate("document.documentElement.scrollWidth <= innerWidth")

    # The catalogue card: cover picture and the facts a buyer compares lots by.
    catalogue = await new_page(running, errors, 1280)
    await catalogue.goto(running.url + "/")
    card = catalogue.locator(f'[data-lot="{LOT}"]')
    await card.locator("img.card-cover").wait_for()
    card_text = await card.inner_text()
    for expected in (
        "Flat 902, Building 5, Wenyi West Road",
        "76.20 m²",
        "CN¥1,400,000",
        "CN¥100,000",
        "CN¥10,000",
        "A bid in the last 5 minutes extends the end by 5 minutes",
        "0 registered · 1 watching · 1 view",
    ):
        assert expected in card_text, (expected, card_text)
    assert errors == []


async def test_phone_first_screen_and_no_sideways_scroll(running: Running) -> None:
    await seed_facts(running)
    errors: list[str] = []
    for path in (f"/lot/{LOT}", "/", "/register", "/auditor"):
        page = await new_page(running, errors, 390, 844)
        await page.goto(running.url + path)
        await page.wait_for_load_state("networkidle")
        assert await page.evaluate("document.documentElement.scrollWidth <= innerWidth"), path
    page = await new_page(running, errors, 390, 844)
    await page.goto(f"{running.url}/lot/{LOT}")
    await wait_text(page, "#bar-price", r"CN¥1,000,000")
    await wait_text(page, "#bar-countdown", "Opens in|Ends in")
    await wait_text(page, "#fact-address", "Flat 902")  # the facts and pictures are in
    for selector in ("#bar-price", "#bar-countdown", "#bar-bid"):
        box = await page.locator(selector).bounding_box()
        assert box is not None and await page.locator(selector).is_visible(), selector
        assert 0 <= box["y"] and box["y"] + box["height"] <= 844, (selector, box)
        assert 0 <= box["x"] and box["x"] + box["width"] <= 390, (selector, box)
    assert await text_of(page, "#bar-price") == await text_of(page, "#price")
    # Still there after scrolling down to the documents.
    await page.locator("#documents-section").scroll_into_view_if_needed()
    box = await page.locator("#bar-bid").bounding_box()
    assert box is not None and box["y"] + box["height"] <= 844
    # A watcher's bar button leads to the words that say how to bid.
    await page.get_by_role("button", name="How to bid").click()
    assert await page.evaluate("document.documentElement.scrollWidth <= innerWidth")
    # On a desktop the price panel is in view and the bar is not shown.
    desktop = await new_page(running, errors, 1280, 800)
    await desktop.goto(f"{running.url}/lot/{LOT}")
    await wait_text(desktop, "#price", "CN¥1,000,000")
    assert not await desktop.locator("#bid-bar").is_visible()
    box = await desktop.locator("#price").bounding_box()
    assert box is not None and box["y"] + box["height"] <= 800
    assert errors == []


async def register_in_page(page: Any, running: Running, document: str, pay: bool) -> None:
    """Identity check and registration through register.html; the deposit only if `pay`."""
    await page.goto(f"{running.url}/register?lot={LOT}")
    await page.get_by_label("Full name, as in the document").fill(NAME)
    await page.get_by_label("Document", exact=True).select_option("PRC_RESIDENT_ID")
    await page.get_by_label("Identity number").fill(document)
    await page.get_by_role("button", name="Check my identity").click()
    await wait_text(page, "#identity-result", "verified")
    await page.get_by_label("Lot", exact=True).select_option(LOT)
    await page.get_by_role("button", name="Register for this lot").click()
    await wait_text(page, "#register-result", "registered")
    if pay:
        await page.get_by_role("button", name=re.compile(r"^Pay the deposit of")).click()
        await page.get_by_label(re.compile("accept the bidding notice")).check()
        await page.get_by_role("button", name=re.compile(r"^Confirm: freeze ")).click()
        await wait_text(page, "#deposit-result", "Your deposit is frozen")


async def try_bid(page: Any, amount: str) -> str:
    await page.locator("#bid-amount").fill(amount)
    await page.locator("#bid-button").click()
    return await text_of(page, "#bid-message")


async def test_the_bid_form_stops_what_can_only_fail(running: Running) -> None:
    server = running.server
    await seed_facts(running)
    errors: list[str] = []
    unpaid, bidder = (
        await new_page(running, errors, 390, 844),
        await new_page(running, errors, 390, 844),
    )
    await register_in_page(unpaid, running, prc_id("611"), pay=False)
    await register_in_page(bidder, running, prc_id("612"), pay=True)
    for page in (unpaid, bidder):
        await page.goto(f"{running.url}/lot/{LOT}")
        await wait_text(page, "#state", "^Open$")
        await wait_text(page, "#register-note", "Your bidder code is")
        await wait_text(page, "#fact-step", "CN¥10,000")  # the terms are loaded
    note = await text_of(unpaid, "#register-note")
    assert "Deposit not paid yet" in note and "CN¥100,000.00" in note, note
    size = await server.ledger_size()

    assert await try_bid(unpaid, "1000000") == "Pay the deposit of CN¥100,000 to bid."
    assert await try_bid(bidder, "1,0,0") == (
        "Enter the amount in digits, with commas only between groups of three digits,"
        " for example 2,140,000."
    )
    assert await try_bid(bidder, "999999") == (
        "The next bid is at least CN¥1,000,000 (step CN¥10,000)."
    )
    assert await try_bid(bidder, "1,005,000") == (
        "Bids go up in steps of CN¥10,000 from CN¥1,000,000: bid CN¥1,000,000 or CN¥1,010,000."
    )
    assert await try_bid(bidder, "10000.001") == "CNY amounts have at most 2 decimal places."
    for page in (unpaid, bidder):
        assert await page.locator("#confirm").is_hidden()
    assert await server.ledger_size() == size  # nothing signed, nothing sent

    # A jump of more than ten steps is asked again, then goes to the usual confirmation.
    jump = await try_bid(bidder, "1,200,000")
    assert jump.startswith("CN¥1,200,000 is 20 steps above the next bid of CN¥1,000,000."), jump
    assert await bidder.locator("#confirm").is_hidden()
    await bidder.locator("#bid-button").click()
    await bidder.get_by_role("button", name="Confirm bid of CN¥1,200,000.00").wait_for()
    await bidder.get_by_role("button", name="Cancel").click()
    assert await server.ledger_size() == size

    # From the phone's bid bar: the confirmation opens in view.
    await bidder.locator("#bid-amount").fill("1000000")
    await bidder.get_by_role("button", name=re.compile("^Place a bid of CN¥1,000,000")).click()
    confirm = bidder.get_by_role("button", name="Confirm bid of CN¥1,000,000.00")
    await confirm.wait_for()
    box = await confirm.bounding_box()
    assert box is not None and 0 <= box["y"] <= 844
    await confirm.click()
    await wait_text(bidder, "#my-state", "You are leading")
    assert await server.ledger_size() == size + 1  # the one bid
    blocked = await try_bid(bidder, "1010000")
    assert blocked == (
        "You are already the highest bidder at CN¥1,000,000: no need to bid against yourself."
    )
    assert await server.ledger_size() == size + 1
    assert errors == []


async def test_no_engine_name_anywhere_a_person_reads(running: Running) -> None:
    """Every state, deposit state, format and refusal through the pages' tables and the
    server's words, and every page as rendered: no engine name."""
    await seed_facts(running)
    errors: list[str] = []
    page = await new_page(running, errors, 1280)
    await page.goto(f"{running.url}/lot/{LOT}")
    await wait_text(page, "#fact-address", "Flat 902")
    tables = await page.evaluate("async () => (await import('/static/util.js')).wordTables()")
    assert tables == words_tables()  # the pages' copies are the server's words
    shown = await page.evaluate(
        """async ([statuses, phases, deposits, formats, codes]) => {
          const util = await import('/static/util.js');
          const api = await import('/static/api.js');
          const guard = await import('/static/bidguard.js');
          const out = [];
          for (const status of statuses) {
            out.push(util.statusWords({ status }));
            for (const phase of phases) out.push(util.statusWords({ status, phase }));
            out.push(util.statusWords({ status, result: 'SOLD' }));
          }
          for (const state of deposits) out.push(util.depositWords(state));
          for (const format of formats) out.push(util.formatWords(format));
          for (const code of codes) out.push(api.wordsFor(code, null));
          const view = { status: 'OPEN', start_price: 100000000, min_next: 101000000,
            price: 100000000, leader_code: 'K1', format: 'JUDICIAL_CN' };
          const terms = { step: 1000000, deposit: 10000000 };
          for (const [text, registration] of [
            ['1,0,0', { code: 'K2', deposit: { state: 'FROZEN', amount: 10000000 } }],
            ['1010000', null],
            ['1010000', { code: 'K2', deposit: { state: 'REQUIRED', amount: 10000000 } }],
            ['1010000', { code: 'K1', deposit: { state: 'FROZEN', amount: 10000000 } }],
            ['900000', { code: 'K2', deposit: { state: 'FROZEN', amount: 10000000 } }],
            ['1015000', { code: 'K2', deposit: { state: 'FROZEN', amount: 10000000 } }],
            ['9000000', { code: 'K2', deposit: { state: 'FROZEN', amount: 10000000 } }],
          ]) {
            const verdict = guard.checkBid({ text, view, registration, terms, currency: 'CNY' });
            out.push(verdict.block || verdict.jump);
          }
          return out;
        }""",
        [
            [s.value for s in LotStatus] + ["SOMETHING_NEW"],
            [p.value for p in LivePhase],
            [d.value for d in DepositState] + ["SOMETHING_NEW"],
            [f.value for f in Format] + ["SOMETHING_NEW"],
            sorted(known_codes() | {r.value for r in RejectReason}),
        ],
    )
    for words in shown:
        assert words and ENGINE_NAME.search(words) is None, words

    # The rendered pages: a watcher's lot page, a registered bidder's, a live lot's room in
    # the ring, the catalogue, the registration page, the auditor page and the console.
    service = running.server.service
    live = live_auctioneer(start_price=5_000_00, start_at=service.now())
    await service.add_lot("painting-9", live, "Still life with quinces")
    await service.submit("painting-9", OpenRing(ask=5_000_00))
    room = await new_page(running, errors, 390, 844)
    await room.goto(f"{running.url}/lot/painting-9")
    await wait_text(room, "#state", "In the ring")
    bidder = await new_page(running, errors, 1280)
    await register_in_page(bidder, running, prc_id("613"), pay=False)
    await bidder.goto(f"{running.url}/lot/{LOT}")
    await wait_text(bidder, "#register-note", "Deposit not paid yet")
    await try_bid(bidder, "1000000")
    pages = [(page, None), (bidder, None), (room, None)]
    for path, marker in (
        ("/", f'[data-lot="{LOT}"] img.card-cover'),
        ("/register", "#lot option"),
        ("/auditor", None),
        (f"/console#token={running.token}", "#upload-list li"),
    ):
        other = await new_page(running, errors, 1280)
        await other.goto(running.url + path)
        if marker:
            await other.locator(marker).first.wait_for(state="attached")
        await other.wait_for_load_state("networkidle")
        pages.append((other, path))
    for shown_page, _ in pages:
        text = await shown_page.evaluate(PAGE_TEXT)
        found = ENGINE_NAME.search(text)
        assert found is None, (shown_page.url, found.group(0) if found else None)
    # The console: a live lot chosen, its ring panel in view; refusals in words too.
    console = pages[-1][0]
    await console.get_by_label("Lot", exact=True).select_option("painting-9")
    await wait_text(console, "#lot-state", "In the ring")
    found = ENGINE_NAME.search(await console.evaluate(PAGE_TEXT))
    assert found is None, found.group(0) if found else None
    await console.get_by_label("Lot", exact=True).select_option(LOT)
    await console.get_by_role("button", name="Open lot").click()
    refused = await wait_text(console, "#command-result", "failed")
    assert ENGINE_NAME.search(refused) is None, refused
    assert errors == []


async def test_console_enters_facts_and_uploads_documents(running: Running, tmp_path: Path) -> None:
    server = running.server
    errors: list[str] = []
    page = await new_page(running, errors, 1280)
    await page.goto(f"{running.url}/console#token={running.token}")
    await page.get_by_label("Lot", exact=True).select_option(LOT)
    await page.get_by_label("Address").fill("Flat 902, Building 5, Wenyi West Road, Hangzhou")
    await page.get_by_label(re.compile("^Area")).fill("76.20 m²")
    await page.get_by_label("Description").fill("Two bedrooms on the 9th floor.")
    await page.get_by_role("button", name="Save facts").click()
    await wait_text(page, "#facts-result", f"Saved the facts of {LOT}")
    picture = tmp_path / "facade.png"
    picture.write_bytes(facade())
    size = await server.ledger_size()
    await page.get_by_label("Kind of file").select_option("picture")
    await page.get_by_label("File", exact=True).set_input_files(str(picture))
    await page.get_by_role("button", name="Upload and record in the ledger").click()
    recorded = await wait_text(page, "#upload-result", "Recorded|failed")
    digest = hashlib.sha256(picture.read_bytes()).hexdigest()
    match = re.fullmatch(
        rf"Recorded facade\.png in ledger entry (\d+) \(SHA-256 {digest}\)\.", recorded
    )
    assert match is not None and int(match[1]) >= size, recorded
    entry = server.entry_json()[int(match[1])]
    assert entry["type"] == "document" and entry["body"]["sha256"] == digest
    await wait_text(page, "#upload-list", "Picture: facade.png")
    # A page disguised as a notice is refused by its bytes, in words; nothing is recorded.
    disguised = tmp_path / "notice.txt"
    disguised.write_bytes(b"<!doctype html><script>alert(1)</script>")
    await page.get_by_label("Kind of file").select_option("notice")
    await page.get_by_label("File", exact=True).set_input_files(str(disguised))
    await page.get_by_role("button", name="Upload and record in the ledger").click()
    refused = await wait_text(page, "#upload-result", "failed")
    assert refused == "The upload failed: Only PDF or plain-text documents are accepted here.", (
        refused
    )
    size = await server.ledger_size()
    await page.get_by_role("button", name="Upload and record in the ledger").click()
    await wait_text(page, "#upload-result", "failed")
    assert await server.ledger_size() == size
    async with running.http.get(f"{running.url}/api/lots/{LOT}/facts") as response:
        body = await response.json()
    assert body["facts"]["area"] == "76.20 m²"
    assert [p["name"] for p in body["pictures"]] == ["facade.png"] and body["documents"] == []
    assert await page.evaluate(ACCESSIBLE_NAMES) == []
    assert errors == []


# --- a closed lot: its result, not a bid form ----------------------------------------------

SHOTS = Path(os.environ.get("LOTPAGE_SHOTS", "/tmp/lotpage-shots"))
SIZES = ((1280, 900), (390, 844))
LIVE_LOT = "ldn-flat-7"
ENDED_VIDEO = "The auction has ended, so there is no live video."


@dataclass
class Watched:
    """A page and what it did: console errors (a refused request is one), stream offers."""

    page: Any
    errors: list[str]
    offers: list[str]

    @property
    def phone(self) -> bool:
        return bool(self.page.viewport_size["width"] < 600)


async def watched(running: Running, width: int, height: int) -> Watched:
    context = await running.browser.new_context(viewport={"width": width, "height": height})
    page = await context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    seen = Watched(page, [], [])
    page.on("pageerror", lambda error: seen.errors.append(str(error)))
    page.on(
        "console",
        lambda message: seen.errors.append(message.text) if message.type == "error" else None,
    )
    page.on(
        "request",
        lambda request: seen.offers.append(request.url) if "/stream/offer" in request.url else None,
    )
    return seen


async def wait_stream(running: Running, lot: str, phase: str = "live") -> None:
    """Until the lot's stream is in `phase` (so that the page's offer is not refused)."""
    for _ in range(300):
        async with running.http.get(f"{running.url}/api/lots/{lot}/stream") as response:
            if response.status == 200 and (await response.json()).get("phase") == phase:
                return
        await asyncio.sleep(0.1)
    raise AssertionError(f"the stream of {lot} never became {phase}")


async def wait_status(running: Running, lot: str, *statuses: str) -> Any:
    for _ in range(600):
        view = running.server.service.view(lot)
        if view is not None and view.status in statuses:
            return view
        await asyncio.sleep(0.05)
    raise AssertionError(f"{lot} never became {statuses}")


async def shot(seen: Watched, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    width = seen.page.viewport_size["width"]
    await seen.page.screenshot(path=str(SHOTS / f"{name}-{width}.png"), full_page=not seen.phone)


async def assert_closed(seen: Watched, result: str, ended_at: str, state: str) -> None:
    """The page of a closed lot: the result and the time it ended, no bid form anywhere, the
    receipts card kept, the phone's bar showing the result; nothing a person reads names the
    engine; no sideways scroll, no console error."""
    page = seen.page
    await wait_text(page, "#price", "^" + re.escape(result) + "$")
    assert await text_of(page, "#price-heading") == "Result"
    assert await text_of(page, "#state") == state
    assert await text_of(page, "#end-label") == "Ended"
    assert await text_of(page, "#end-time") == ended_at
    assert await text_of(page, "#bid-ended") == f"Bidding ended on {ended_at}."
    assert await page.locator("#bid-ended").is_visible()
    for selector in ("#bid-amount", "#bid-button", "#max-amount", "#register-note", "#leader"):
        assert not await page.locator(selector).is_visible(), selector
    bid_card = await page.locator("#bid-section").inner_text()
    assert "Register to bid" not in bid_card and "You are watching" not in bid_card, bid_card
    assert await page.locator("#mine-heading").is_visible()  # the receipts stay
    await wait_text(page, "#video-note", "^" + re.escape(ENDED_VIDEO) + "$", timeout=20_000)
    if seen.phone:
        assert await text_of(page, "#bar-price") == result
        assert await text_of(page, "#bar-countdown") == f"Ended {ended_at}."
        assert not await page.locator("#bar-bid").is_visible()
        assert await page.get_by_role("button", name="How to bid").count() == 0
        box = await page.locator("#bar-price").bounding_box()
        assert box is not None and box["y"] + box["height"] <= 844
    assert await page.evaluate("document.documentElement.scrollWidth <= innerWidth")
    found = ENGINE_NAME.search(await page.evaluate(PAGE_TEXT))
    assert found is None, found.group(0) if found else None
    assert seen.errors == [], seen.errors


async def test_a_live_lot_sold_while_the_page_is_open_and_after_a_reload(running: Running) -> None:
    service = running.server.service
    rules = live_auctioneer(
        start_price=250_000_00,
        start_at=service.now(),
        currency="GBP",
        fair_warning_dwell=2 * SECOND,
        legal_timezone="Europe/London",
    )
    await service.add_lot(LIVE_LOT, rules, "Flat 7, 12 Mile End Road, London E1")
    await service.submit(LIVE_LOT, OpenRing(ask=250_000_00))
    await service.submit(LIVE_LOT, FloorBid("12"))
    await wait_stream(running, LIVE_LOT)
    pages = [await watched(running, width, height) for width, height in SIZES]
    for seen in pages:
        await seen.page.goto(f"{running.url}/lot/{LIVE_LOT}")
        await wait_text(seen.page, "#leader", "paddle 12 in the room")
        await seen.page.locator("#video").wait_for(state="visible")  # the live picture
        assert await seen.page.locator("#bid-amount").is_visible()
    await service.submit(LIVE_LOT, FairWarning())
    await asyncio.sleep(2.2)  # the fair warning's dwell
    await service.submit(LIVE_LOT, Hammer())
    view = await wait_status(running, LIVE_LOT, "SOLD")
    offers_at_close = [len(seen.offers) for seen in pages]
    result = "Sold for £250,000.00 to paddle 12 in the room."
    ended_at = time_words(view.closed_at, "Europe/London")
    for seen in pages:  # over the websocket, no reload
        await assert_closed(seen, result, ended_at, "Sold")
        assert await seen.page.locator("#chart-section").is_visible()  # one bid: drawn
        await shot(seen, "closed-while-open")
    assert [len(seen.offers) for seen in pages] == offers_at_close  # none after the close
    for seen in pages:
        await seen.page.reload()
        await assert_closed(seen, result, ended_at, "Sold")
        await shot(seen, "sold")
    await asyncio.sleep(1)
    assert [len(seen.offers) for seen in pages] == offers_at_close  # none for an ended lot


async def test_an_unsold_lot_says_why_and_where_it_is_offered_again(running: Running) -> None:
    """A judicial second auction fails (no bid) while its page is open; the court's
    fixed-price sale follows: the failed lot's page says so and links to it, live and after a
    reload; that page shows the fixed price and how to buy, not a bid step or a bidding rule."""
    server = running.server
    service = server.service
    now = service.now()
    plan = SalePlan.parse(
        {
            "sale": "court-2",
            "title": "Court sale: a parking space (second auction)",
            "preset": "JUDICIAL_CN",
            "start_at": now + SECOND,
            "first_end": now + 12 * SECOND,
            "interval_us": 30 * SECOND,
            "min_duration_us": SECOND,
            "window_us": SECOND,
            "extend_us": SECOND,
            "round": 2,
            "lots": [
                {
                    "lot": "court-2-1",
                    "title": "Parking space B2-117",
                    "start_price": 14_400_000,
                    "step": 100_000,
                    "appraisal": 20_000_000,
                }
            ],
        }
    )
    desk = SaleDesk(service, server.app[SALE_STORE])
    await desk.create(plan, "clerk")
    await wait_status(running, "court-2-1", "OPEN")
    await wait_stream(running, "court-2-1")
    pages = [await watched(running, width, height) for width, height in SIZES]
    for seen in pages:
        await seen.page.goto(f"{running.url}/lot/court-2-1")
        await wait_text(seen.page, "#state", "^Open$")
        assert await seen.page.locator("#bid-amount").is_visible()
        assert not await seen.page.locator("#chart-section").is_visible()  # no bids: no chart
    failed = await wait_status(running, "court-2-1", "FAILED")
    ended_at = time_words(failed.closed_at, "Asia/Shanghai")
    offers_at_close = [len(seen.offers) for seen in pages]
    for seen in pages:  # live, over the websocket
        await assert_closed(seen, "Not sold: no bid was made.", ended_at, "Not sold")
    start = service.now() + 2 * SECOND
    await desk.relist(
        "court-2-1",
        "court-2-1-fixed",
        start_price=14_400_000,
        start_at=start,
        end_at=start + 60 * DAY,
        by="clerk",
    )
    offered_again = (
        "Offered again as Parking space B2-117 (fixed-price sale), at the fixed price of"
        " CN¥144,000.00"
    )
    for seen in pages:  # the open pages learn of the relisting without a reload
        offered = await wait_text(seen.page, "#relisted", "Offered again", timeout=40_000)
        assert offered.startswith(offered_again), offered
    assert [len(seen.offers) for seen in pages] == offers_at_close  # none after the close
    await wait_status(running, "court-2-1-fixed", "OPEN")
    await wait_stream(running, "court-2-1-fixed")
    for seen in pages:
        page = seen.page
        await page.reload()
        offers_before = len(seen.offers)
        await assert_closed(seen, "Not sold: no bid was made.", ended_at, "Not sold")
        assert not await page.locator("#chart-section").is_visible()  # no bids: no chart
        assert await text_of(page, "#history-empty") == "No bid was made."
        offered = await wait_text(page, "#relisted", "Offered again")
        assert offered.startswith(offered_again), offered
        await wait_text(page, "#fact-start", "CN¥144,000")
        await page.wait_for_load_state("networkidle")
        assert len(seen.offers) == offers_before  # an ended lot asks for no stream
        assert seen.errors == [], seen.errors
        await shot(seen, "unsold")

        # The fixed-price sale, reached by the link.
        await page.locator("#relisted-link").click()
        await page.wait_for_url(re.compile("/lot/court-2-1-fixed$"))
        await wait_text(page, "#fact-fixed-price", "^CN¥144,000$")
        how = await text_of(page, "#fact-how-to-buy")
        assert how.startswith(
            "Buy at the fixed price of CN¥144,000: pay the deposit of CN¥14,400, then confirm the"
            " purchase at exactly CN¥144,000. The first confirmation buys the lot"
        ), how
        assert "they have 1 day after that confirmation" in how, how  # priority holders
        facts = await page.locator("#lot-facts").inner_text()
        assert "step" not in facts.lower() and "Extension" not in facts, facts
        assert await page.locator("#fact-step").count() == 0
        assert await page.locator("#fact-extension").count() == 0
        assert await text_of(page, "#price-heading") == "Fixed price"
        assert await text_of(page, "#price") == "CN¥144,000.00"
        assert not await page.locator("#next").is_visible()
        assert await page.locator("#bid-amount").is_visible()
        assert await page.locator("#bid-amount").get_attribute("readonly") is not None
        await wait_text(page, "#bid-button", "^Buy at CN¥144,000.00$")
        if seen.phone:  # a watcher who cannot buy yet is shown how to, in the sale's words
            await wait_text(page, "#bar-bid", "^How to buy$")
        assert await page.evaluate("document.documentElement.scrollWidth <= innerWidth")
        found = ENGINE_NAME.search(await page.evaluate(PAGE_TEXT))
        assert found is None, found.group(0) if found else None
        await page.wait_for_load_state("networkidle")
        await shot(seen, "fixed-price")
        assert seen.errors == [], seen.errors

    # Every way a lot ends, in the words the page gives it (lotresult.js).
    def ended(status: str, price: int | None, bids: int, **more: Any) -> dict[str, Any]:
        return {"status": status, "price": price, "bids": bids, "currency": "CNY",
                "start_price": 144_000_00, "legal_timezone": "UTC", "closed_at": 0,
                "result": "SOLD" if more.get("leader_code") else "FAILED", **more}  # fmt: skip

    live, timed, fixed = "LIVE_AUCTIONEER", "ENGLISH_TIMED", "FIXED_PRICE_SALE"
    cases = [
        (
            ended("SOLD", 2_100_000_00, 3, leader_code="K7"),
            "Sold for CN¥2,100,000.00 to bidder K7.",
        ),
        (
            ended("COMPLETED", 2_100_000_00, 3, leader_code="K7"),
            "Sold for CN¥2,100,000.00 to bidder K7; the buyer has paid.",
        ),
        (
            ended("DEFAULTED", 2_100_000_00, 3, leader_code="K7"),
            "Sold for CN¥2,100,000.00 to bidder K7, but the buyer did not pay.",
        ),
        (ended("CANCELLED", None, 0), "Withdrawn from sale: the lot was not sold."),
        (
            ended("FAILED", 150_000_00, 2, reserve_met=False, format=timed),
            "Not sold: the highest bid, CN¥150,000.00, did not reach the reserve price.",
        ),
        (
            ended("FAILED", 150_000_00, 2, format=live),
            "Not sold: the auctioneer passed the lot; the last bid was CN¥150,000.00.",
        ),
        (
            ended("FAILED", None, 0, format=live),
            "Not sold: no bid was made, so the auctioneer passed the lot.",
        ),
        (
            ended("SOLD", 144_000_00, 1, leader_code="K8", format=fixed),
            "Bought by bidder K8 at the fixed price of CN¥144,000.00.",
        ),
        (
            ended("FAILED", None, 0, format=fixed),
            "Not sold: nobody bought it at the fixed price of CN¥144,000.00.",
        ),
    ]
    said = await page.evaluate(
        """async (views) => {
          const { resultWords, biddingEndedWords } = await import('/static/lotresult.js');
          return views.map((view) => [resultWords(view), biddingEndedWords(view)]);
        }""",
        [view for view, _ in cases],
    )
    assert [result for result, _ in said] == [words for _, words in cases]
    for (view, _), (result, when) in zip(cases, said, strict=True):
        what = "The sale ended" if view.get("format") == fixed else "Bidding ended"
        assert when == f"{what} on 1 Jan 1970, 00:00:00 (UTC).", when
        assert ENGINE_NAME.search(result) is None, result


async def test_a_scheduled_lot_asks_for_its_video_once_it_opens(running: Running) -> None:
    """Before a live lot comes into the ring the page says when its video starts and asks the
    server for no stream (each ask would be refused); once the auctioneer opens the lot the
    page asks and the picture plays, without a reload."""
    service = running.server.service
    rules = live_auctioneer(
        start_price=250_000_00,
        start_at=service.now(),
        currency="GBP",
        legal_timezone="Europe/London",
    )
    lot = "ldn-flat-8"
    await service.add_lot(lot, rules, "Flat 8, 12 Mile End Road, London E1")
    seen = await watched(running, 1280, 900)
    await seen.page.goto(f"{running.url}/lot/{lot}")
    await wait_text(seen.page, "#video-note", "starts when the auctioneer opens this lot")
    await asyncio.sleep(4)  # longer than the page's retry after a refused ask
    assert seen.offers == []
    await service.submit(lot, OpenRing(ask=250_000_00))
    await seen.page.locator("#video").wait_for(state="visible", timeout=30_000)
    assert seen.offers != []
    assert seen.errors == [], seen.errors
