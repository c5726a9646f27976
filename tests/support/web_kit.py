"""Shared helpers of the tests, first written for `test_web_flows.py`."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from pages_kit import ACCESSIBLE_NAMES
from server_kit import unrecorded_video
from stream_kit import CHROMIUM_ARGS, require_chromium

from auction.identity.provider import prc_check_character
from auction.web import SERVICE, Settings, create_app

__all__ = [
    "ACCESSIBLE_NAMES",
    "NAME",
    "Running",
    "TIMEOUT_MS",
    "bid",
    "http",
    "new_page",
    "no_horizontal_scroll",
    "prc_id",
    "register",
    "running",
    "text_of",
    "wait_text",
]


NAME = "张三丰"


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    """A client session for a test's HTTP calls: any test with an `http` argument."""
    async with aiohttp.ClientSession() as session:
        yield session


TIMEOUT_MS = 15_000


def prc_id(sequence: str) -> str:
    """A well-formed PRC resident identity number of an adult (GB 11643-1999 check)."""
    first17 = "110105" + "19800101" + sequence
    return first17 + prc_check_character(first17)


@dataclass
class Running:
    app: web.Application
    url: str
    browser: Any

    @property
    def service(self) -> Any:
        return self.app[SERVICE]


@pytest.fixture
async def running(tmp_path: Path) -> AsyncIterator[Running]:
    executable = require_chromium()
    from playwright.async_api import async_playwright

    settings = Settings(
        data_dir=tmp_path / "data", port=0, bots=0, demo=False,
        video=unrecorded_video(tmp_path / "data"),
    )  # fmt: skip
    app = create_app(settings)
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        url = f"http://127.0.0.1:{runner.addresses[0][1]}"
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(
                executable_path=executable, headless=True, args=CHROMIUM_ARGS
            )
            try:
                yield Running(app, url, browser)
            finally:
                await browser.close()
    finally:
        await runner.cleanup()


async def new_page(running: Running, errors: list[str], width: int = 360) -> Any:
    context = await running.browser.new_context(
        viewport={"width": width, "height": 800}, accept_downloads=True
    )
    page = await context.new_page()
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.set_default_timeout(TIMEOUT_MS)
    return page


async def text_of(page: Any, selector: str) -> str:
    return str(await page.locator(selector).text_content() or "")


async def wait_text(page: Any, selector: str, pattern: str, timeout: int = TIMEOUT_MS) -> str:
    """Wait until the element's text matches `pattern` (a regular expression)."""
    from playwright.async_api import TimeoutError as PlaywrightTimeout

    try:
        await page.wait_for_function(
            "([selector, pattern]) => { const node = document.querySelector(selector);"
            " return node && new RegExp(pattern).test(node.textContent); }",
            arg=[selector, pattern],
            timeout=timeout,
        )
    except PlaywrightTimeout:
        shown = await page.evaluate(
            "() => [...document.querySelectorAll('[role=status], [role=alert]')]"
            ".map((node) => node.id + ': ' + node.textContent).join(' | ')"
        )
        raise AssertionError(
            f"{selector} never matched {pattern!r}: {await text_of(page, selector)!r}; {shown}"
        ) from None
    return await text_of(page, selector)


async def no_horizontal_scroll(page: Any) -> None:
    width = await page.evaluate("document.documentElement.scrollWidth")
    viewport = await page.evaluate("window.innerWidth")
    assert width <= viewport, (page.url, width, viewport)


async def register(
    page: Any, running: Running, lot: str, document: str, deposit_words: str | None = "壹拾万元整"
) -> str:
    """Identity check, registration and deposit through register.html; the bidder code."""
    await page.goto(f"{running.url}/register?lot={lot}")
    await page.get_by_label("Full name, as in the document").fill(NAME)
    await page.get_by_label("Document", exact=True).select_option("PRC_RESIDENT_ID")
    # A wrong check character is refused in words and changes nothing.
    await page.get_by_label("Identity number").fill(
        document[:-1] + ("0" if document[-1] != "0" else "1")
    )
    await page.get_by_role("button", name="Check my identity").click()
    refused = await wait_text(page, "#identity-result", "failed")
    assert "check character" in refused.lower(), refused
    assert await page.get_by_role("button", name="Register for this lot").is_disabled()
    await page.get_by_label("Identity number").fill(document)
    await page.get_by_role("button", name="Check my identity").click()
    await wait_text(page, "#identity-result", "verified")
    await page.get_by_label("Lot", exact=True).select_option(lot)
    await page.get_by_role("button", name="Register for this lot").click()
    await wait_text(page, "#register-result", "registered")
    if deposit_words is None:
        await wait_text(page, "#deposit-info", "This lot needs no deposit.")
    else:
        deposit = page.get_by_role("button", name=re.compile(r"^Pay the deposit of"))
        assert deposit_words in await text_of(page, "#deposit-info")
        await deposit.click()
        # The bidding notice first (recorded by the server), then the freeze in words.
        confirm = page.get_by_role("button", name=re.compile(r"^Confirm: freeze "))
        assert await confirm.is_disabled()
        question = await wait_text(page, "#deposit-question", "^Freeze .* as the deposit for ")
        assert "from your account" in question, question
        await page.get_by_label(re.compile("accept the bidding notice")).check()
        await confirm.click()
        await wait_text(page, "#deposit-result", "Your deposit is frozen")
    await no_horizontal_scroll(page)
    code = await wait_text(page, "#bidder-code", "Your bidder code: ")
    return code.removeprefix("Your bidder code: ").strip()


async def bid(page: Any, amount_text: str, expected_words: str) -> None:
    """Two-step bid: the Bid button, then the confirmation that shows the amount in words."""
    await page.locator("#bid-amount").fill(amount_text)
    await page.get_by_role("button", name=re.compile(r"^Bid ")).click()
    if "steps above the next bid" in await text_of(page, "#bid-message"):
        await page.get_by_role("button", name=re.compile(r"^Bid ")).click()  # a jump: again
    confirm = page.get_by_role("button", name=re.compile(r"^Confirm bid of "))
    await confirm.wait_for(state="visible")
    words = await text_of(page, "#confirm-words")
    assert expected_words in words, words
    await confirm.click()
