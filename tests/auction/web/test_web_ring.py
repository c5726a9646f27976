"""The live ring for an online bidder, in real headless Chromium against the real server, with
two browser contexts: a bidder in the lot room bids during the ring and is told the bid is
with the auctioneer (never refused); the auctioneer's console shows it in the queue and accepts
it (the bidder sees it accepted, the price moves); a second held bid is declined (the bidder
is told so in words). Fair warning flashes in the room, the hammer asks for confirmation, the
console shows the lot's bidders, its video and its times in the lot's legal time zone, and
its live controls only for live lots."""

from __future__ import annotations

import asyncio
import os
import re
from pathlib import Path
from typing import Any

import pytest
from lotpage_kit import PAGE_TEXT
from pages_kit import ACCESSIBLE_NAMES
from web_kit import (  # noqa: F401  (the `running` fixture)
    Running,
    bid,
    new_page,
    prc_id,
    register,
    running,
    text_of,
    wait_text,
)
from words_kit import ENGINE_NAME

from auction.accounts import Role
from auction.rules import SECOND, english_timed, live_auctioneer
from auction.web.app import GATEWAY

pytestmark = [pytest.mark.chromium, pytest.mark.slow]

LOT = "quinces"
#: Set to a directory to keep screenshots of the two pages at each step.
SHOTS = os.environ.get("GAVEL_RING_SHOTS")


async def shot(page: Any, name: str) -> None:
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        await page.screenshot(path=f"{SHOTS}/{name}.png", full_page=True)


async def plain(page: Any) -> None:
    """No engine name in what the page shows (text, labels, options) at this moment."""
    found = ENGINE_NAME.search(await page.evaluate(PAGE_TEXT))
    assert found is None, (page.url, found.group(0) if found else None)


async def test_an_online_bid_is_held_then_accepted_or_declined_by_the_auctioneer(
    running: Running,  # noqa: F811
) -> None:
    service = running.service
    now = service.now()
    rules = live_auctioneer(
        start_price=5_000_00,
        start_at=now + 3600 * SECOND,
        deposit=500_00,
        legal_timezone="Asia/Shanghai",
    )
    await service.add_lot(LOT, rules, "Still life with quinces")
    timed = english_timed(
        start_price=100_00, start_at=now + 3600 * SECOND, end_at=now + 7200 * SECOND
    )
    await service.add_lot("vase", timed, "Ming-style vase")
    _, token, _ = await running.app[GATEWAY].create_staff_session(Role.AUCTIONEER)
    errors: list[str] = []
    bidder = await new_page(running, errors, width=390)  # its own browser context
    code = await register(bidder, running, LOT, prc_id("551"), deposit_words="500.00")
    await bidder.goto(f"{running.url}/lot/{LOT}")
    await wait_text(bidder, "#register-note", f"Your bidder code is {code}")

    console = await new_page(running, errors, width=1000)  # the auctioneer's context
    await console.goto(f"{running.url}/console#token={token}")
    # Live controls are for live lots only.
    await console.get_by_label("Lot", exact=True).select_option("vase")
    await wait_text(console, "#lot-times", "America/New_York|Asia/Shanghai")
    assert await console.locator("#ring-heading").is_hidden()
    await console.get_by_label("Lot", exact=True).select_option(LOT)
    assert await console.locator("#ring-heading").is_visible()
    # The lot's times in its legal time zone, named; its bidders with their deposits in words.
    times = await wait_text(console, "#lot-times", "Asia/Shanghai time")
    assert "legal time zone, Asia/Shanghai" in times, times
    await wait_text(console, "#bidders", code)
    assert "deposit held ($500.00)" in await text_of(console, "#bidders")
    await wait_text(console, "#console-video-note", "starts when you open the ring")

    await console.get_by_label("Ask", exact=True).fill("5000")
    await console.get_by_role("button", name="Open the ring at this ask").click()
    await wait_text(console, "#ring-result", "Open the ring: done")
    await wait_text(bidder, "#state", "In the ring")
    # The console plays the lot's own video, with the lot room's player.
    await console.wait_for_function(
        "() => { const v = document.getElementById('console-video');"
        " return !v.hidden && v.readyState >= 2 && v.videoWidth > 0; }",
        timeout=30_000,
    )

    # 1. The bidder bids at the ask: the bid is with the auctioneer, not refused.
    await bid(bidder, "5000", "")
    held = await wait_text(bidder, "#bid-message", "is with the auctioneer")
    assert held == "Your bid of $5,000.00 is with the auctioneer, waiting to be accepted.", held
    mine = await text_of(bidder, "#my-bids")
    assert "with the auctioneer" in mine and "refused" not in mine.lower(), mine
    await shot(bidder, "1-bidder-held")
    await wait_text(bidder, "#zone-note", "shown in Asia/Shanghai time")
    # Bidding again while the first bid is held: told it is already with the auctioneer.
    await bid(bidder, "5000", "")
    again = await wait_text(bidder, "#bid-message", "^Not sent to the auctioneer")
    assert "already with the auctioneer" in again, again

    # 2. The console's queue shows it: code, amount, time in the lot's zone; Accept.
    row = await wait_text(console, "#held-bids", code)
    assert "$5,000.00" in row and "Asia/Shanghai time" in row, row
    await shot(console, "2-console-queue")
    for page in (bidder, console):  # the held bid, in the room and in the console's queue
        await plain(page)
    await console.get_by_role("button", name=f"Accept {code}'s bid of $5,000.00").click()
    await wait_text(console, "#held-result", f"Accepted {code}'s online bid of \\$5,000.00")
    await wait_text(console, "#held-empty", "No online bid is waiting")
    accepted = await wait_text(bidder, "#bid-message", "^Accepted")
    assert "You are the highest bidder" in accepted, accepted
    await wait_text(bidder, "#price", r"\$5,000\.00")
    await wait_text(bidder, "#my-state", "You are leading")
    await wait_text(console, "#lot-price", r"\$5,000\.00")
    await shot(bidder, "3-bidder-accepted")

    # 3. The room outbids the bidder; their next bid is held, then declined in words.
    await console.get_by_label("Floor paddle").fill("12")
    await console.get_by_role("button", name="Floor bid at the ask").click()
    await wait_text(console, "#ring-result", "Floor bid: done")
    await wait_text(bidder, "#my-state", "You have been outbid")
    ask = service.view(LOT).min_next
    ask_text = f"${ask // 100:,}.00"
    await wait_text(bidder, "#next", re.escape(ask_text))
    await bid(bidder, f"{ask // 100}", "")
    await wait_text(
        bidder, "#bid-message", f"Your bid of {re.escape(ask_text)} is with the auctioneer"
    )
    await wait_text(console, "#held-bids", code)
    await console.get_by_role("button", name=f"Decline {code}'s bid of {ask_text}").click()
    await wait_text(console, "#held-result", "Declined")
    declined = await wait_text(bidder, "#bid-message", "declined")
    assert declined.startswith(f"The auctioneer declined your bid of {ask_text}."), declined
    assert "refused" not in declined
    assert service.view(LOT).leader_code == "floor:12"
    await wait_text(console, "#lot-leader", "^paddle 12 in the room$")
    await wait_text(bidder, "#leader", "^Leading bidder: paddle 12 in the room$")
    await shot(bidder, "4-bidder-declined")
    for page in (bidder, console):
        await plain(page)

    # 4. Fair warning flashes in the room; the hammer asks the auctioneer to confirm.
    await console.get_by_role("button", name="Fair warning").click()
    await wait_text(console, "#ring-result", "Fair warning: done")
    banner = bidder.locator("#fair-warning")
    await banner.wait_for(state="visible")
    assert "Fair warning" in await text_of(bidder, "#fair-warning")
    assert "flash" in (await banner.get_attribute("class") or "")
    await shot(bidder, "5-bidder-fair-warning")
    view = service.view(LOT)
    await asyncio.sleep(max(0.0, (view.hammer_not_before - service.now()) / SECOND) + 0.3)
    await console.get_by_role("button", name="Hammer (sell)").click()
    words = await wait_text(console, "#hammer-words", "Sell")
    price = f"${view.price // 100:,}.00"
    assert f"to paddle 12 in the room for {price}" in words, words
    await shot(console, "6-console-hammer-confirm")
    await console.get_by_role("button", name="Keep the lot open").click()
    assert service.view(LOT).status == "OPEN"  # nothing was sent
    await console.get_by_role("button", name="Hammer (sell)").click()
    await console.get_by_role("button", name=f"Confirm: sell for {price}").click()
    await wait_text(console, "#ring-result", "Hammer: done")
    await wait_text(bidder, "#state", "Sold")
    assert await bidder.locator("#fair-warning").is_hidden()
    assert service.view(LOT).result == "SOLD"
    for page in (bidder, console):
        await plain(page)
        assert await page.evaluate(ACCESSIBLE_NAMES) == [], page.url
    assert errors == []
