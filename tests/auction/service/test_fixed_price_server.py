"""A fixed-price sale (变卖, clarification 9) through the real server on SQLite: created from the
console's preset, bought by the first bidder's signed confirmation over the websocket, a second
bidder refused in words, and the stored ledger replayed by the same rules."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from server_kit import Server, ready_bidder, running_server, wait_open

from auction.accounts import Role
from auction.client import BidderClient
from auction.rules import SECOND
from auction.verify import LedgerReplay
from chain import parse_entry

PRICE = 50_000_000  # 500,000.00 CNY


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[Server]:
    async with running_server(tmp_path) as running:
        yield running


async def test_a_fixed_price_sale_on_the_real_server(
    server: Server, http: aiohttp.ClientSession
) -> None:
    auctioneer = await server.staff(Role.AUCTIONEER)
    now = server.service.now()
    lot = {
        "preset": "FIXED_PRICE_SALE",
        "lot": "villa",
        "title": "Villa 7 (fixed-price sale)",
        "parameters": {
            "price": PRICE,
            "start_at": now + SECOND // 2,
            "end_at": now + 3_600 * SECOND,
        },
    }
    headers = {"Authorization": f"Bearer {auctioneer}"}
    async with http.post(f"{server.url}/api/console/lots", json=lot, headers=headers) as answer:
        assert answer.status == 201, await answer.text()
        view = (await answer.json())["lot"]
    assert view["format"] == "FIXED_PRICE_SALE" and view["start_price"] == PRICE
    too_long = lot | {
        "lot": "villa-2",
        "parameters": lot["parameters"] | {"end_at": now + 61 * 86_400 * SECOND},  # type: ignore[operator]
    }
    async with http.post(
        f"{server.url}/api/console/lots", json=too_long, headers=headers
    ) as answer:
        assert answer.status == 422
        error = (await answer.json())["error"]
        assert error["code"] == "BAD_PARAMETERS" and "at most 60 days" in error["message"]

    first = await ready_bidder(http, server.url, ("villa",))
    second = await ready_bidder(http, server.url, ("villa",))
    await wait_open(server, "villa")
    async with (
        await BidderClient.connect(
            server.url, account=first.account, key=first.key, session=first.session
        ) as one,
        await BidderClient.connect(
            server.url, account=second.account, key=second.key, session=second.session
        ) as two,
    ):
        low = await one.bid("villa", PRICE - 100, "CNY")
        assert not low.accepted and low.reason == "BELOW_MIN"
        assert low.raw["message"].startswith(
            "This lot is sold at a fixed price of CN¥500,000: confirm the purchase at exactly"
        ), low.raw["message"]
        bought = await one.bid("villa", PRICE, "CNY")
        assert bought.accepted and bought.leader_is_you and bought.cur == PRICE
        late = await two.bid("villa", PRICE, "CNY")
        assert not late.accepted and late.reason == "ASK_TAKEN"
        assert "bought this lot at the fixed price of CN¥500,000" in late.raw["message"]
    view = server.service.view("villa")
    assert (view.status, view.price, view.result) == ("SOLD", PRICE, "SOLD")

    replay = LedgerReplay(openings=server.openings().get)  # as the notaries and auditors do
    for raw in server.entries():
        entry = parse_entry(raw)
        replay.add(entry.seq, entry.type, entry.time_us, entry.body, entry.actor.kid)
    outcome = replay.outcomes()["villa"]
    assert (outcome["status"], outcome["price"]) == ("SOLD", PRICE)
    assert replay.verified_bid_signatures == 3  # every confirmation carried its signature
    assert replay.sales == 1 and not replay.unsold_closures()
