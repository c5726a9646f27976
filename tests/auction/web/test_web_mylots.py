"""The bidder is remembered, in real headless Chromium against the real server: register,
verify, accept the bidding notice, confirm the deposit, watch the property lot's video (its
clock advances, frames are decoded; on a phone the price, countdown and bid button are on the
first screen), bid; a reload brings the bids, their
ledger entries and receipts back from the server; "You have been outbid" as it happens; a
second browser logged into the same account (sign-in code) sees the bids and receipts and is
told how to bid; at the close the winner reads "You won", the balance due and downloads the
sale confirmation whose SHA-256 is the ledger's `document` entry; the loser reads when the
deposit is released. At a desktop's size (1280x800) and a phone's (390x844)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
from pathlib import Path
from typing import Any

import pytest
from lotpage_kit import PAGE_TEXT
from mylots_kit import video_plays
from web_kit import (  # the same server, browser and registration steps
    ACCESSIBLE_NAMES,
    TIMEOUT_MS,
    Running,
    bid,
    no_horizontal_scroll,
    prc_id,
    register,
    running,
    text_of,
    wait_text,
)
from words_kit import ENGINE_NAME

from auction.rules import SECOND, judicial
from auction.storage import Storage
from auction.web.app import SETTINGS
from chain import parse_entry

pytestmark = [pytest.mark.chromium, pytest.mark.slow]

__all__ = ["running"]  # the fixture, re-exported for pytest

LOT = "hz-flat-9"
MINE = "#mine .mine-headline"


SIZES = {"desktop": (1280, 800), "phone": (390, 844)}


async def first_screen(page: Any, height: int) -> None:
    """A phone's first screen: the price, the countdown and the bid button, without scrolling."""
    for selector in ("#bar-price", "#bar-countdown", "#bar-bid"):
        locator = page.locator(selector)
        assert await locator.is_visible(), selector
        box = await locator.bounding_box()
        assert box is not None and 0 <= box["y"] and box["y"] + box["height"] <= height, box


def ledger(running: Running) -> dict[int, dict[str, Any]]:
    """Every ledger entry, read back from the database (a second connection)."""
    with Storage.open(running.app[SETTINGS].data_dir, read_only=True) as store:
        entries = store.ledger_entries(0, store.ledger_size())
    return {entry["seq"]: entry for entry in (parse_entry(raw).to_json() for raw in entries)}


@pytest.mark.parametrize("size", sorted(SIZES))
async def test_a_bidder_is_remembered_across_reloads_and_browsers(
    running: Running, tmp_path: Path, size: str
) -> None:
    width, height = SIZES[size]

    async def new_page(running: Running, errors: list[str]) -> Any:
        context = await running.browser.new_context(
            viewport={"width": width, "height": height}, accept_downloads=True
        )
        page = await context.new_page()
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.set_default_timeout(TIMEOUT_MS)
        return page

    service = running.service
    now = service.now()
    rules = judicial(
        start_price=1_000_000_00,
        step=10_000_00,
        start_at=now + 1 * SECOND,
        end_at=now + 50 * SECOND,
        min_duration=0,
        window=3 * SECOND,
        extend=3 * SECOND,
    )
    await service.add_lot(LOT, rules, "Flat 9, Hangzhou")
    errors: list[str] = []
    alice, bob = await new_page(running, errors), await new_page(running, errors)
    codes = await asyncio.gather(
        register(alice, running, LOT, prc_id("123")),
        register(bob, running, LOT, prc_id("457")),
    )
    assert all(codes)

    for page in (alice, bob):
        await page.goto(f"{running.url}/lot/{LOT}")
        await wait_text(page, "#state", "^Open$")
        await wait_text(page, MINE, "You are registered and may bid")
    # A property lot is on air for its whole bidding window: its presentation plays.
    if width < 600:
        await wait_text(alice, "#bar-countdown", "Ends in")
        await first_screen(alice, height)
    await video_plays(alice)
    await bid(alice, "1000000", "壹佰万元整")
    await wait_text(alice, "#bid-message", "accepted")
    await wait_text(alice, MINE, "^You are leading")
    await bid(bob, "1,010,000.00", "壹佰零壹万元整")
    await wait_text(bob, MINE, "^You are leading")
    # As it happens, from the websocket: the server's state for Alice changes.
    await wait_text(alice, MINE, "^You have been outbid")

    # A reload: the state, the bids with their ledger entries and receipts come back.
    await alice.reload()
    await wait_text(alice, MINE, "^You have been outbid")
    await video_plays(alice)  # back on air after the reload
    await wait_text(alice, "#my-state", "You have been outbid")
    first = alice.locator("#mine .mine-bid").first
    line = await first.text_content()
    assert line is not None and "Bid CN¥1,000,000.00 at " in line and "Accepted." in line, line
    entry = int(re.search(r"Ledger entry (\d+)\.", line).group(1))  # type: ignore[union-attr]
    assert await first.get_attribute("data-entry") == str(entry)
    deposit = await text_of(alice, "#mine .mine-deposit")
    assert deposit == "CN¥100,000.00, frozen", deposit
    ready = "(entry) => fetch('/log/receipt/' + entry).then((response) => response.ok)"
    for _ in range(60):  # a receipt exists once a published checkpoint covers the entry
        if await alice.evaluate(ready, entry):
            break
        await asyncio.sleep(0.25)
    async with alice.expect_download() as download_info:
        await first.get_by_role(
            "button", name=f"Download the receipt of ledger entry {entry}"
        ).click()
    download = await download_info.value
    receipt = json.loads(Path(await download.path()).read_text())
    assert receipt["seq"] == entry and receipt["proof"].startswith("c2sp.org/tlog-proof@v1\n")
    await first.get_by_role("button", name=f"Verify the receipt of ledger entry {entry}").click()
    verdict = await wait_text(alice, "#mine .mine-bid .receipt-note", "Verified|failed")
    assert verdict.startswith("Verified: entry "), verdict

    # My auctions: the same, and a sign-in code for a second browser.
    await alice.get_by_role("link", name="My auctions").click()
    await wait_text(alice, ".mine-lot .mine-headline", "^You have been outbid")
    await alice.get_by_role("button", name="Make a sign-in code").click()
    link = await alice.locator("#code-link a").get_attribute("href")
    assert link is not None and "/my#signin=" in link
    second = await new_page(running, errors)  # another browser: no key, no session
    await second.goto(link)
    await wait_text(second, ".mine-lot .mine-headline", "^You have been outbid")
    watching = await wait_text(
        second, "#watching", "Bids are signed by the browser where you registered"
    )
    assert "bid from that browser" in watching
    assert "Ledger entry" in await text_of(second, ".mine-lot .mine-bids")
    await no_horizontal_scroll(second)
    await second.goto(f"{running.url}/lot/{LOT}")
    await wait_text(second, MINE, "^You have been outbid")
    await wait_text(second, "#mine-note", "Bids are signed by the browser where you registered")
    assert await second.get_by_role("button", name=re.compile(r"^Bid ")).is_disabled()
    async with second.expect_download() as download_info:
        await (
            second.locator("#mine .mine-bid")
            .first.get_by_role("button", name=f"Download the receipt of ledger entry {entry}")
            .click()
        )
    assert json.loads(Path(await (await download_info.value).path()).read_text())["seq"] == entry

    # The close: Bob wins, Alice (and her second browser) read when her deposit comes back.
    await alice.goto(f"{running.url}/lot/{LOT}")
    await wait_text(alice, MINE, "^You have been outbid")
    remaining = (service.view(LOT).end - service.now()) / SECOND
    timeout = int((remaining + 20) * 1000)
    lost = await wait_text(alice, MINE, "^You did not win", timeout=timeout)
    assert re.fullmatch(
        r"You did not win; your deposit of CN¥100,000\.00 is released by "
        r"\d+ \w+ \d{4}, \d\d:\d\d:\d\d \(Asia/Shanghai\)\.",
        lost,
    ), lost
    await wait_text(second, MINE, "^You did not win; your deposit of CN¥100,000.00 is released by")
    await wait_text(bob, MINE, "^You won this lot")
    steps = await wait_text(bob, "#mine .mine-outcome", "Balance due")
    assert "Hammer price: CN¥1,010,000.00." in steps
    assert "Deposit applied to the price: CN¥100,000.00." in steps
    assert "Balance due: CN¥910,000.00, to be paid by " in steps

    button = bob.get_by_role("button", name=re.compile("^Download the sale confirmation"))
    await button.wait_for(timeout=20_000)
    async with bob.expect_download() as download_info:
        await button.click()
    download = await download_info.value
    assert download.suggested_filename == f"sale-confirmation-{LOT}.txt"
    content = Path(await download.path()).read_bytes()
    digest = hashlib.sha256(content).hexdigest()
    anchored = await wait_text(bob, "#mine .mine-document .sha", "recorded in ledger entry")
    document_entry = int(re.search(r"ledger entry (\d+)", anchored).group(1))  # type: ignore[union-attr]
    entries = ledger(running)
    body = entries[document_entry]["body"]
    assert entries[document_entry]["type"] == "document"
    assert body["sha256"] == digest and body["kind"] == "sale_confirmation"  # type: ignore[index]
    assert digest in anchored
    text = content.decode("utf-8")
    assert "成交确认书" in text and codes[1] in text and "壹佰零壹万元整" in text
    # Alice's second browser cannot download Bob's document: it is not listed for her.
    assert await second.locator(".mine-document").count() == 0

    # Pictures of what the winner and the loser's second browser show, for a person to look at.
    await bob.screenshot(path=str(tmp_path / f"winner-lot-room-{size}.png"), full_page=True)
    await second.goto(f"{running.url}/my")
    await wait_text(second, ".mine-lot .mine-headline", "^You did not win")
    await second.screenshot(path=str(tmp_path / f"second-browser-my-{size}.png"), full_page=True)
    await bob.goto(f"{running.url}/my")
    await wait_text(bob, ".mine-lot .mine-headline", "^You won")
    for page in (alice, bob, second):  # the rooms and My auctions at the close: plain words
        found = ENGINE_NAME.search(await page.evaluate(PAGE_TEXT))
        assert found is None, (page.url, found.group(0) if found else None)
    for page in (alice, bob, second):
        await no_horizontal_scroll(page)
        assert await page.evaluate(ACCESSIBLE_NAMES) == [], page.url
    assert errors == []
