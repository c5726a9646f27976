"""What a newcomer does with `gavel demo`: a person in a real browser watches the live lot's
video, registers, verifies, pays the deposit, bids against the demo's bots and verifies the
receipt of their accepted bid against a checkpoint co-signed by the demo's notary processes;
the auditor page lists them.

The demo runs as its own process (`python -m auction.cli demo`, as `scripts/demo` runs it),
with its three notary processes, on loopback; it stops by itself (`--duration`).
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from repo_kit import REPO
from server_kit import prc_id
from stream_kit import CHROMIUM_ARGS, require_chromium
from web_kit import NAME, wait_text

pytestmark = [pytest.mark.chromium, pytest.mark.slow]

ROOT = REPO
LOT = "hz-flat-1502"


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[str]:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "auction.cli",
            "demo",
            "--data",
            str(tmp_path / "data"),
            "--port",
            "0",
            "--bots",
            "2",
            "--duration",
            "120",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert process.stdout is not None
    url = None
    seen = []
    for line in process.stdout:
        seen.append(line)
        found = re.search(r"serving (http://127\.0\.0\.1:\d+)/", line)
        if found:
            url = found.group(1)
            break
    if url is None:
        process.kill()
        raise AssertionError("the demo did not print its URL:\n" + "".join(seen))
    try:
        yield url
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()


async def test_a_person_bids_in_the_demo_and_verifies_a_cosigned_receipt(demo: str) -> None:
    executable = require_chromium()
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=executable, headless=True, args=CHROMIUM_ARGS
        )
        try:
            errors: list[str] = []
            context = await browser.new_context(viewport={"width": 390, "height": 844})
            page: Any = await context.new_page()
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.set_default_timeout(30_000)

            # The painting is sold live: its room plays the video with the state burned in.
            room: Any = await context.new_page()
            await room.goto(f"{demo}/lot/painting-harbour")
            await room.wait_for_function(
                "() => { const v = document.getElementById('video');"
                " return !v.hidden && v.readyState >= 2 && v.videoWidth > 0; }",
                timeout=60_000,
            )
            await room.close()

            await page.goto(demo + "/")
            await page.get_by_role("link", name=re.compile("Flat 1502")).first.wait_for()
            await page.goto(f"{demo}/register?lot={LOT}")
            await page.get_by_label("Full name, as in the document").fill(NAME)
            await page.get_by_label("Document", exact=True).select_option("PRC_RESIDENT_ID")
            await page.get_by_label("Identity number").fill(prc_id(sequence="901"))
            await page.get_by_role("button", name="Check my identity").click()
            await wait_text(page, "#identity-result", "verified")
            await page.get_by_label("Lot", exact=True).select_option(LOT)
            await page.get_by_role("button", name="Register for this lot").click()
            await wait_text(page, "#register-result", "registered")
            await page.get_by_role("button", name=re.compile(r"^Pay the deposit of")).click()
            await page.get_by_label(re.compile("accept the bidding notice")).check()
            await page.get_by_role("button", name=re.compile(r"^Confirm: freeze ")).click()
            await wait_text(page, "#deposit-result", "Your deposit is frozen")

            await page.goto(f"{demo}/lot/{LOT}")
            await wait_text(page, "#state", "^Open$")
            # The bots bid too: bid the minimum the room shows until one is accepted.
            for _ in range(8):
                await page.get_by_role("button", name=re.compile(r"^Bid ")).click()
                await page.get_by_role("button", name=re.compile(r"^Confirm bid of ")).click()
                message = await wait_text(page, "#bid-message", "accepted|refused")
                if "accepted" in message:
                    break
            else:
                raise AssertionError(f"no bid was accepted: {message}")

            item = page.locator("#my-bids li").first
            await wait_text(page, "#my-bids li:first-child", "Receipt ready", timeout=60_000)
            await item.get_by_role("button", name=re.compile("^Verify the receipt")).click()
            verdict = await wait_text(page, "#my-bids li .verify-result", "Verified|failed")
            assert verdict.startswith("Verified: entry "), verdict
            cosigners = re.findall(r"notary\d\.gavel\.demo", verdict)
            assert len(set(cosigners)) >= 2, verdict  # the demo's quorum: 2 of 3

            auditor: Any = await context.new_page()
            await auditor.goto(demo + "/auditor")
            await wait_text(auditor, "#checkpoint-check", "Verified|failed")
            assert (await auditor.locator("#checkpoint-check").text_content() or "").startswith(
                "Verified"
            )
            await auditor.locator("#notaries tr").nth(2).wait_for()
            rows = await auditor.locator("#notaries tr").all_text_contents()
            assert sum("gavel.demo" in row for row in rows) == 3, rows
            assert errors == []
        finally:
            await browser.close()
