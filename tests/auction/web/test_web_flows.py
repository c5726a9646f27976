"""The web client against the real server, in real headless Chromium: two bidders register,
verify their identity, pay the deposit and bid against each other on a judicial lot (outbid,
soft-close extension, sale); the winner's receipt downloads and verifies in the page; and the
auctioneer console drives a live lot to the hammer."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

import pytest
from pages_kit import ACCESSIBLE_NAMES
from web_kit import (
    Running,
    bid,
    new_page,
    no_horizontal_scroll,
    prc_id,
    register,
    text_of,
    wait_text,
)

from auction.accounts import Role
from auction.rules import SECOND, english_timed, judicial
from auction.web.app import GATEWAY

pytestmark = [pytest.mark.chromium, pytest.mark.slow]


async def test_two_bidders_outbid_extension_sale_and_receipt(running: Running) -> None:
    service = running.service
    now = service.now()
    start = now + 1 * SECOND
    end = now + 40 * SECOND  # room for both registrations before the soft-close window
    rules = judicial(
        start_price=1_000_000_00,
        step=10_000_00,
        start_at=start,
        end_at=end,
        min_duration=0,
        window=12 * SECOND,
        extend=20 * SECOND,
    )
    await service.add_lot("hz-flat-1502", rules, "Flat 1502, Hangzhou")
    errors: list[str] = []
    alice, bob = await new_page(running, errors), await new_page(running, errors)

    codes = await asyncio.gather(
        register(alice, running, "hz-flat-1502", prc_id("123")),
        register(bob, running, "hz-flat-1502", prc_id("457")),
    )
    assert codes[0] != codes[1] and all(codes)

    for page in (alice, bob):
        await page.goto(f"{running.url}/lot/hz-flat-1502")
        await wait_text(page, "#title", "Flat 1502, Hangzhou")
        await wait_text(page, "#state", "^Open$")
        await wait_text(page, "#register-note", "Your bidder code is")
        await no_horizontal_scroll(page)
    # A judicial lot is on air for its whole bidding window: its presentation plays.
    await alice.wait_for_function(
        "() => { const v = document.getElementById('video');"
        " return !v.hidden && v.readyState >= 2 && v.videoWidth === 640; }",
        timeout=30_000,
    )
    assert await alice.locator("#video-note").is_hidden()
    # The catalogue lists it, with a link to the room.
    catalogue = await new_page(running, errors)
    await catalogue.goto(running.url + "/")
    await catalogue.get_by_role("link", name="Flat 1502, Hangzhou").first.wait_for()
    await no_horizontal_scroll(catalogue)

    await bid(alice, "1000000", "壹佰万元整")
    await wait_text(alice, "#bid-message", "accepted")
    await wait_text(alice, "#my-state", "You are leading")
    await wait_text(bob, "#leader", codes[0])

    await bid(bob, "1,010,000.00", "壹佰零壹万元整")
    await wait_text(bob, "#my-state", "You are leading")
    await wait_text(alice, "#my-state", "You have been outbid")
    await wait_text(alice, "#price", "1,010,000.00")
    # The catalogue follows live, without a reload, and counts down by the server's clock.
    await wait_text(catalogue, '[data-lot="hz-flat-1502"] .price', "1,010,000.00")
    assert "Ends in" in await text_of(catalogue, '[data-lot="hz-flat-1502"] .countdown')
    assert "1,010,000.00" in await text_of(alice, "#history")
    await no_horizontal_scroll(alice)  # with the history and chart filled in
    chart = await alice.locator("#chart").get_attribute("aria-label")
    assert chart is not None and chart.startswith("Price over time: 2 bids"), chart

    # A bid below the minimum is stopped in the page, in words, and changes nothing.
    size = await service.read(service.ledger.ledger_size)
    await alice.locator("#bid-amount").fill("1000000")
    await alice.get_by_role("button", name=re.compile(r"^Bid ")).click()
    refused = await wait_text(alice, "#bid-message", "at least")
    assert refused == "The next bid is at least CN¥1,020,000 (step CN¥10,000).", refused
    assert await alice.locator("#confirm").is_hidden()
    assert await service.read(service.ledger.ledger_size) == size
    await wait_text(alice, "#price", "1,010,000.00")

    # Into the soft-close window: Alice's bid moves the end, both rooms show the banner.
    view = service.view("hz-flat-1502")
    wait_s = (view.end - 10 * SECOND - service.now()) / SECOND
    if wait_s > 0:
        await asyncio.sleep(wait_s)
    await bid(alice, "1020000", "壹佰零贰万元整")
    await wait_text(alice, "#my-state", "You are leading")
    for page in (alice, bob):
        banner = await wait_text(page, "#extension", "Extended")
        assert "moved the end" in banner
    assert service.view("hz-flat-1502").end > end
    await wait_text(bob, "#my-state", "You have been outbid")

    # The lot sells to Alice when the extended end passes.
    remaining = (service.view("hz-flat-1502").end - service.now()) / SECOND
    await wait_text(alice, "#my-state", "You won this lot", timeout=int((remaining + 15) * 1000))
    await wait_text(alice, "#state", "Sold")
    await wait_text(bob, "#my-state", "You did not win")

    # Receipts of Alice's accepted bids: download, then verify in the page.
    item = alice.locator("#my-bids li").first
    await wait_text(alice, "#my-bids li:first-child", "Receipt ready", timeout=30_000)
    await item.get_by_role("link", name=re.compile("^Download the receipt")).wait_for(
        timeout=30_000
    )
    async with alice.expect_download() as download_info:
        await item.get_by_role("link", name=re.compile("^Download the receipt")).click()
    download = await download_info.value
    saved = Path(await download.path())
    body = json.loads(saved.read_text())
    assert set(body) >= {"seq", "size", "entry", "proof"}
    assert body["proof"].startswith("c2sp.org/tlog-proof@v1\n")
    await item.get_by_role("button", name=re.compile("^Verify the receipt")).click()
    verdict = await wait_text(alice, "#my-bids li .verify-result", "Verified|failed")
    assert verdict.startswith("Verified: entry "), verdict

    # The auditor page verifies the same downloaded file.
    auditor = await new_page(running, errors)
    await auditor.goto(running.url + "/auditor")
    await wait_text(auditor, "#checkpoint-check", "Verified|failed|No checkpoint")
    await auditor.get_by_label("Receipt file").set_input_files(str(saved))
    await auditor.get_by_role("button", name="Verify receipt").click()
    verdict = await wait_text(auditor, "#verify-result", "Verified|failed")
    assert verdict.startswith("Verified: entry "), verdict
    # The same receipt with one proof hash changed fails, naming the step.
    lines = body["proof"].split("\n")
    position = next(i for i, line in enumerate(lines) if line.startswith("index ")) + 1
    assert lines[position], "the proof has at least one hash"
    lines[position] = ("A" if lines[position][0] != "A" else "B") + lines[position][1:]
    tampered = saved.with_name("tampered.json")
    tampered.write_text(json.dumps({**body, "proof": "\n".join(lines)}))
    await auditor.get_by_label("Receipt file").set_input_files(str(tampered))
    await auditor.get_by_role("button", name="Verify receipt").click()
    verdict = await wait_text(auditor, "#verify-result", "failed")
    assert verdict.startswith("Verification failed at step 6 (inclusion"), verdict
    await no_horizontal_scroll(auditor)
    for page in (alice, bob, auditor):
        assert await page.evaluate(ACCESSIBLE_NAMES) == [], page.url
    assert errors == []


async def test_console_drives_a_live_lot_to_the_hammer(running: Running) -> None:
    _, token, _ = await running.app[GATEWAY].create_staff_session(Role.AUCTIONEER)
    errors: list[str] = []
    page = await new_page(running, errors, width=360)
    await page.goto(f"{running.url}/console#token={token}")
    await page.get_by_label("Preset").select_option("LIVE_AUCTIONEER")
    await page.get_by_label("Title", exact=True).fill("Still life with quinces")
    await page.get_by_label(re.compile("^Lot id")).fill("painting-7")
    await page.get_by_label("Currency", exact=True).select_option("USD")
    await page.get_by_label("Start price").fill("5000")
    await page.get_by_label("Starts in (minutes)").fill("0")
    await page.get_by_role("button", name="Create lot").click()
    await wait_text(page, "#create-result", "Created")
    assert running.service.view("painting-7") is not None
    # A watcher in the lot room before the ring opens: the video is announced, not missing.
    room = await new_page(running, errors, width=360)
    await room.goto(f"{running.url}/lot/painting-7")
    await wait_text(room, "#video-note", "starts when the auctioneer opens")

    # Refused commands come back in words and change nothing.
    await page.get_by_role("button", name="Pause", exact=True).click()
    assert "needs a reason" in await wait_text(page, "#command-result", "reason")

    await page.get_by_label("Lot", exact=True).select_option("painting-7")
    # A live lot is opened by the ring, not by OpenLot: the engine's refusal is shown in words.
    await page.get_by_role("button", name="Open lot").click()
    refused = await wait_text(page, "#command-result", "failed")
    assert refused == (
        "Open failed: Opening the lot does not apply to a live auction."
        " A live lot opens when you open the ring at an ask."
    ), refused
    await page.get_by_label("Ask", exact=True).fill("5000")
    await page.get_by_role("button", name="Open the ring at this ask").click()
    await wait_text(page, "#ring-result", "done")
    # The ring is open: the room plays the lot's live video (WebRTC from the server).
    await room.wait_for_function(
        "() => { const v = document.getElementById('video');"
        " return !v.hidden && v.readyState >= 2 && v.videoWidth > 0; }",
        timeout=30_000,
    )
    await page.get_by_label(re.compile("^Reason")).fill("the room's microphone failed")
    await page.get_by_role("button", name="Pause", exact=True).click()
    await wait_text(page, "#command-result", "Pause: done")
    await wait_text(page, "#lot-state", "Paused")
    await page.get_by_role("button", name="Resume", exact=True).click()
    await wait_text(page, "#command-result", "Resume: done")
    await wait_text(page, "#lot-state", "In the ring")
    await page.get_by_label("Increment", exact=True).fill("250")
    await page.get_by_role("button", name="Set increment").click()
    await wait_text(page, "#ring-result", "Set the increment: done")
    await page.get_by_label("Floor paddle").fill("12")
    await page.get_by_role("button", name="Floor bid at the ask").click()
    await wait_text(page, "#ring-result", "Floor bid: done")
    await wait_text(page, "#lot-price", r"\$5,000\.00")
    await wait_text(page, "#lot-ask", r"\$5,250\.00")
    await page.get_by_role("button", name="Fair warning").click()
    await wait_text(page, "#ring-result", "Fair warning: done")
    await wait_text(page, "#lot-state", "Fair warning")
    # The hammer is refused until the fair-warning dwell has passed, then sells.
    view = running.service.view("painting-7")
    await asyncio.sleep(max(0.0, (view.hammer_not_before - running.service.now()) / SECOND) + 0.3)
    await page.get_by_role("button", name="Hammer (sell)").click()
    await page.get_by_role("button", name=r"Confirm: sell for $5,000.00").click()
    await wait_text(page, "#ring-result", "Hammer: done")
    await wait_text(page, "#lot-state", "Sold")
    assert running.service.view("painting-7").result == "SOLD"
    await no_horizontal_scroll(page)

    # A timed lot from its preset, scheduled, then cancelled with a reason in two steps.
    await page.get_by_label("Preset").select_option("ENGLISH_TIMED")
    await page.get_by_label("Title", exact=True).fill("Ming-style vase")
    await page.get_by_label(re.compile("^Lot id")).fill("vase-3")
    await page.get_by_label("Start price").fill("1200")
    await page.get_by_label("Starts in (minutes)").fill("5")
    await page.get_by_label("Runs for (minutes)").fill("30")
    await page.get_by_role("button", name="Create lot").click()
    await wait_text(page, "#create-result", "Created Ming-style vase")
    vase = running.service.view("vase-3")
    assert vase.status == "SCHEDULED" and vase.format == "ENGLISH_TIMED"
    assert vase.end - vase.start_at == 30 * 60 * SECOND
    await page.get_by_label("Lot", exact=True).select_option("vase-3")
    await page.get_by_label(re.compile("^Reason")).fill("the consignor withdrew the vase")
    await page.get_by_role("button", name="Cancel lot").click()
    await page.get_by_role("button", name="Press again to cancel vase-3 for good").click()
    await wait_text(page, "#command-result", "Cancel: done")
    await wait_text(page, "#lot-state", "Cancelled")
    assert running.service.view("vase-3").status == "CANCELLED"
    assert errors == []


async def test_proxy_maximum_bids_for_its_owner(running: Running) -> None:
    service = running.service
    now = service.now()
    rules = english_timed(start_price=100_00, start_at=now + SECOND, end_at=now + 120 * SECOND)
    await service.add_lot("watch-1", rules, "Omega Speedmaster, 1969")
    errors: list[str] = []
    alice, bob = await new_page(running, errors), await new_page(running, errors)
    await asyncio.gather(
        register(alice, running, "watch-1", prc_id("223"), deposit_words=None),
        register(bob, running, "watch-1", prc_id("345"), deposit_words=None),
    )
    for page in (alice, bob):
        await page.goto(f"{running.url}/lot/watch-1")
        await wait_text(page, "#state", "^Open$")
    # An amount that is not money is refused in the page; nothing is sent or logged.
    size = await service.read(service.ledger.ledger_size)
    await alice.locator("#bid-amount").fill("12.345")
    await alice.get_by_role("button", name="Bid (enter an amount)").click()
    refused = await wait_text(alice, "#bid-message", "decimal places")
    assert refused == "USD amounts have at most 2 decimal places.", refused
    assert await alice.locator("#confirm").is_hidden()
    assert await service.read(service.ledger.ledger_size) == size
    await alice.get_by_label(re.compile("^Proxy maximum")).fill("500")
    await alice.get_by_role("button", name="Set proxy maximum").click()
    confirm = alice.get_by_role("button", name="Confirm proxy maximum of $500.00")
    await confirm.wait_for(state="visible")
    assert await text_of(alice, "#confirm-words") == "five hundred dollars"
    await confirm.click()
    await wait_text(alice, "#bid-message", r"Your proxy maximum of \$500\.00 was accepted")
    await wait_text(alice, "#my-state", "You are leading")

    await bid(bob, "150", "one hundred fifty dollars")
    await wait_text(bob, "#my-state", "You have been outbid")
    price = await wait_text(alice, "#price", r"^\$1[5-9][0-9]\.")
    assert "You are leading" in await text_of(alice, "#my-state"), price
    assert await alice.locator("#history tr").count() >= 2
    assert errors == []
