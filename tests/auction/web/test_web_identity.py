"""The register page in real headless Chromium against the real server: the refusals of one
person, one account are shown in plain words (a document verified on another account, digits
other than 0-9, a bound identity, a registration on a lot that has not closed)."""

from __future__ import annotations

import base64
from typing import Any

import aiohttp
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from web_kit import Running, new_page, text_of, wait_text

from auction.identity.provider import prc_check_character
from auction.rules import SECOND, english_timed

pytestmark = [pytest.mark.chromium, pytest.mark.slow]

WITH_X = "11010519491231002X"
FULL_WIDTH = str.maketrans("0123456789Xx", "０１２３４５６７８９Ｘｘ")
INTERNAL_CODES = ("DOCUMENT_IN_USE", "IDENTITY_BOUND", "REGISTERED_ON_OPEN_LOT", "NON_ASCII")


def prc_id(sequence: str) -> str:
    first17 = "110105" + "19800101" + sequence
    return first17 + prc_check_character(first17)


async def someone_else_verifies(url: str, document: str) -> None:
    """Another person's account, verified through the API, holding `document`."""
    key = Ed25519PrivateKey.generate().public_key().public_bytes_raw()
    async with aiohttp.ClientSession() as http:
        body = {"public_key": base64.b64encode(key).decode()}
        async with http.post(f"{url}/api/accounts", json=body) as response:
            session = (await response.json())["session"]
        body = {"name": "李四", "document_type": "PRC_RESIDENT_ID", "document": document}
        headers = {"Authorization": f"Bearer {session}"}
        async with http.post(f"{url}/api/identity", json=body, headers=headers) as response:
            assert response.status == 201, await response.text()


async def check_identity(page: Any, number: str) -> None:
    await page.get_by_label("Identity number").fill(number)
    await page.get_by_role("button", name="Check my identity").click()


async def test_the_register_page_explains_one_person_one_account(running: Running) -> None:
    now = running.service.now()
    rules = english_timed(start_price=10_000, start_at=now + SECOND, end_at=now + 600 * SECOND)
    await running.service.add_lot("watch", rules, "A watch")
    await someone_else_verifies(running.url, WITH_X)
    errors: list[str] = []
    page = await new_page(running, errors)
    await page.goto(f"{running.url}/register?lot=watch")
    await page.get_by_label("Full name, as in the document").fill("张三")
    await page.get_by_label("Document", exact=True).select_option("PRC_RESIDENT_ID")
    register_button = page.get_by_role("button", name="Register for this lot")
    shown = []

    # The same card, typed with full-width digits and a lower-case x: another account has it.
    await check_identity(page, WITH_X.lower().translate(FULL_WIDTH))
    shown.append(await wait_text(page, "#identity-result", "another account"))
    assert "One person may hold one account." in shown[-1]
    assert "failed" not in shown[-1]  # not a mistyped document
    assert await register_button.is_disabled()

    # A superscript digit: refused in words, not a server error.
    await check_identity(page, "\u00b2" + prc_id("123")[1:])
    shown.append(await wait_text(page, "#identity-result", "0 to 9"))
    assert "internal error" not in shown[-1]

    # The person's own card: verified.
    await check_identity(page, prc_id("123"))
    await wait_text(page, "#identity-result", "verified")
    assert await register_button.is_enabled()

    # A second identity on this account: refused; the account stays verified.
    await check_identity(page, prc_id("456"))
    shown.append(await wait_text(page, "#identity-result", "cannot be changed here"))
    assert "compliance" in shown[-1]
    assert await register_button.is_enabled()

    # Registered on a lot that has not closed: the identity cannot change.
    await page.get_by_label("Lot", exact=True).select_option("watch")
    await register_button.click()
    await wait_text(page, "#register-result", "registered")
    await check_identity(page, prc_id("456"))
    shown.append(await wait_text(page, "#identity-result", "has not closed"))

    for text in shown:
        assert not any(code in text for code in INTERNAL_CODES), text
    assert "Your bidder code" in await text_of(page, "#bidder-code")
    assert errors == []
