"""A sale run on a real server for the dashboard tests: two lots in one sale, visitors, bidders
with registrations, deposits and signed bids, soft-close extensions, and both lots sold."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import aiohttp
from server_kit import Bidder, Server, new_bidder, ready_bidder, verify, wait_open

from auction.client import BidderClient
from auction.rules import SECOND, SoftClose, english_timed, judicial


@dataclass
class SaleRun:
    alice: Bidder
    bob: Bidder
    carol: Bidder


async def add_sale(server: Server, *, open_in: float = 0.4, run_for: float = 3.0) -> None:
    """Sale `s1`: `watch` (USD, no deposit) and `flat` (CNY, deposit, appraisal), both with a
    one-second soft close so that late bids extend them."""
    service = server.service
    now = service.now()
    start = now + int(open_in * SECOND)
    end = start + int(run_for * SECOND)
    await service.add_sale("s1", "Spring sale")
    soft = SoftClose(window=2 * SECOND, extend=2 * SECOND)
    await service.add_lot(
        "watch",
        english_timed(start_price=10_000, start_at=start, end_at=end, soft_close=soft),
        "A watch",
        "s1",
    )
    await service.add_lot(
        "flat",
        judicial(
            start_price=1_000_000, step=10_000, start_at=start, end_at=end, min_duration=0,
            window=2 * SECOND, extend=2 * SECOND, appraisal=1_200_000,
            legal_timezone="Asia/Shanghai",
        ),
        "A flat",
        "s1",
    )  # fmt: skip


async def run_sale(server: Server, http: aiohttp.ClientSession) -> SaleRun:
    """Visitors, three bidders (Carol registers for the flat but pays no deposit), bids on
    both lots, and both lots closed and sold."""
    url = server.url
    await add_sale(server)
    alice = await ready_bidder(http, url, ("watch", "flat"))
    bob = await ready_bidder(http, url, ("watch", "flat"))
    carol = await new_bidder(http, url)
    await verify(http, url, carol)
    async with http.post(
        f"{url}/api/lots/flat/registrations", json={}, headers=carol.auth
    ) as response:
        assert response.status == 201, await response.text()
    # visitors of `watch`: one address without a session (three visits, and its page, which
    # alone counts nothing), Alice and Bob by session
    async with http.get(f"{url}/lot/watch") as response:
        assert response.status == 200
    for _ in range(3):
        async with http.get(f"{url}/api/lots/watch") as response:
            assert response.status == 200
    for bidder in (alice, bob):
        async with http.get(f"{url}/api/lots/watch", headers=bidder.auth) as response:
            assert response.status == 200
    # an unknown lot is not counted
    async with http.get(f"{url}/api/lots/nothing-here") as response:
        assert response.status == 404
    await wait_open(server, "watch", "flat")
    clients = {}
    for name, bidder in (("alice", alice), ("bob", bob)):
        clients[name] = await BidderClient.connect(
            url, account=bidder.account, key=bidder.key, session=bidder.session
        )
    try:
        a, b = clients["alice"], clients["bob"]
        assert (await a.bid("watch", 10_000, "USD", key="w1")).accepted
        assert (await b.bid("watch", 12_000, "USD", key="w2")).accepted
        assert (await a.bid("flat", 1_000_000, "CNY", key="f1")).accepted
        await asyncio.sleep(1.5)  # inside the soft-close window: these extend the end
        assert (await a.bid("watch", 15_000, "USD", key="w3")).accepted
        assert (await b.bid("flat", 1_010_000, "CNY", key="f2")).accepted
    finally:
        for client in clients.values():
            await client.close()
    await wait_closed(server, "watch", "flat")
    return SaleRun(alice, bob, carol)


async def wait_closed(server: Server, *lots: str, timeout: float = 20.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        if all(server.service.view(lot).status not in ("OPEN", "SCHEDULED") for lot in lots):
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"lots {lots} did not close")


def ledger_counts(entries: list[dict[str, Any]], lot: str) -> dict[str, int]:
    """The funnel's steps from registration on, counted from the ledger's own entries."""
    registered: set[str] = set()
    verified: set[str] = set()
    paid: set[str] = set()
    bidders: set[str] = set()
    sales = 0
    for entry in entries:
        body = entry["body"]
        if entry["type"] == "sale" and body.get("lot") == lot:
            sales += 1
        if body.get("lot") != lot or not body.get("accepted"):
            continue
        for event in body.get("events", []):
            kind = event.get("type")
            if entry["type"] == "registration" and kind == "BidderRegistered":
                registered.add(event["bidder"])
                if body["command"].get("kyc_verified"):
                    verified.add(event["bidder"])
                if event["deposit"] in ("FROZEN", "EXEMPT"):
                    paid.add(event["bidder"])
            if kind == "DepositChanged" and event["state"] in ("FROZEN", "EXEMPT"):
                paid.add(event["bidder"])
            if entry["type"] == "bid" and kind == "BidAccepted":
                bidders.add(event["bidder"])
    return {
        "registered": len(registered),
        "verified": len(verified),
        "deposit": len(paid & registered),
        "bid": len(bidders),
        "won": sales,
    }
