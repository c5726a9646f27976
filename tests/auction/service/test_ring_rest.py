"""The live ring for online bidders over the real server (docs/protocol.md §1 "Live ring",
§2.4 `held`): a held online bid is acked `held`, never `rejected`; the auctioneer lists,
accepts and declines held bids over REST, with typed errors; the ledger replays."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from server_kit import Bidder, Server, ready_bidder, running_server

from auction.accounts import Role
from auction.client import BidderClient
from auction.rules import SECOND, live_auctioneer
from auction.verify import LedgerReplay
from chain import parse_entry

LOT = "painting"


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[Server]:
    async with running_server(tmp_path) as running:
        service = running.service
        rules = live_auctioneer(
            start_price=5_000_00,
            start_at=service.now() + 3600 * SECOND,
            legal_timezone="Europe/London",
        )
        await service.add_lot(LOT, rules, "Still life with quinces")
        yield running


async def call(
    http: aiohttp.ClientSession, method: str, url: str, token: str | None = None, body: Any = None
) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with http.request(method, url, json=body, headers=headers) as response:
        return response.status, await response.json()


def error_code(answer: Any) -> str:
    assert set(answer) == {"error"}, answer
    assert answer["error"]["message"], answer
    return str(answer["error"]["code"])


def client_for(server: Server, bidder: Bidder) -> Any:
    return BidderClient.connect(
        server.url, account=bidder.account, key=bidder.key, session=bidder.session
    )


async def command(http: aiohttp.ClientSession, server: Server, token: str, body: Any) -> Any:
    status, answer = await call(
        http, "POST", f"{server.url}/api/console/lots/{LOT}/commands", token, body
    )
    assert status == 200, answer
    return answer


async def test_held_bids_are_acked_held_and_the_auctioneer_accepts_or_declines_them(
    server: Server, http: aiohttp.ClientSession
) -> None:
    url = f"{server.url}/api/console/lots/{LOT}"
    auctioneer = await server.staff(Role.AUCTIONEER)
    compliance = await server.staff(Role.COMPLIANCE)
    alice = await ready_bidder(http, server.url, (LOT,))
    bob = await ready_bidder(http, server.url, (LOT,))
    await command(http, server, auctioneer, {"type": "OpenRing", "ask": 5_000_00})

    # The queue needs the auctioneer: no session 401, another role 403; nothing changes.
    for token, status_wanted, code in (
        (None, 401, "UNAUTHENTICATED"),
        (compliance, 403, "FORBIDDEN"),
    ):
        for method, path in (
            ("GET", "/held"),
            ("POST", "/held/1/accept"),
            ("POST", "/held/1/decline"),
            ("GET", "/bidders"),
        ):
            status, answer = await call(http, method, url + path, token)
            assert status == status_wanted and error_code(answer) == code, (method, path, answer)
    status, answer = await call(http, "GET", f"{server.url}/api/console/lots/nope/held", auctioneer)
    assert status == 404 and error_code(answer) == "UNKNOWN_LOT"
    status, answer = await call(http, "GET", url + "/held", auctioneer)
    assert status == 200 and answer["held"] == [] and answer["legal_timezone"] == "Europe/London"

    async with await client_for(server, alice) as alice_ws, await client_for(server, bob) as bob_ws:
        ack = await alice_ws.bid(LOT, 5_000_00, "USD", key="a-1")
        # Rules C14.1: prospective, with the auctioneer; not refused and not accepted.
        assert ack.held and not ack.accepted and ack.reason is None, ack.raw
        assert ack.raw["result"] == "held" and "message" not in ack.raw
        first = ack.raw["bid_seq"]
        assert isinstance(first, int) and ack.raw["entry"] > 0
        # The first-come lock: Bob's bid at the same ask is refused (the ask is taken).
        taken = await bob_ws.bid(LOT, 5_000_00, "USD", key="b-1")
        assert taken.result == "rejected" and taken.reason == "ASK_TAKEN"

        status, answer = await call(http, "GET", url + "/held", auctioneer)
        assert status == 200, answer
        codes = {r.code for r in server.gateway.registrations(alice.account)}
        (queued,) = answer["held"]
        assert queued["bid_seq"] == first and queued["amount"] == 5_000_00
        assert queued["code"] in codes and queued["t_us"] > 0 and queued["outcome"] is None

        status, answer = await call(http, "POST", f"{url}/held/abc/accept", auctioneer)
        assert status == 422 and error_code(answer) == "MALFORMED"
        status, answer = await call(http, "POST", f"{url}/held/99999/accept", auctioneer)
        assert status == 404 and error_code(answer) == "UNKNOWN_BID"
        assert server.service.view(LOT).price is None  # nothing changed

        status, answer = await call(http, "POST", f"{url}/held/{first}/accept", auctioneer)
        assert status == 200 and answer["outcome"] == "accepted", answer
        assert answer["lot"]["price"] == 5_000_00 and answer["lot"]["leader_code"] == queued["code"]
        assert any(
            e["type"] == "BidAccepted" and e["bid_type"] == "ONLINE" for e in answer["events"]
        )
        for verb in ("accept", "decline"):
            status, again = await call(http, "POST", f"{url}/held/{first}/{verb}", auctioneer)
            assert status == 409 and error_code(again) == "ALREADY_DECIDED", again
            assert "already accepted" in again["error"]["message"]
        assert server.service.view(LOT).price == 5_000_00

        # Bob's bid at the new ask is held, then declined: the ask is free again.
        ask = server.service.view(LOT).min_next
        second = await bob_ws.bid(LOT, ask, "USD", key="b-2")
        assert second.held, second.raw
        status, answer = await call(
            http, "POST", f"{url}/held/{second.raw['bid_seq']}/decline", auctioneer
        )
        assert status == 200 and answer["outcome"] == "declined", answer
        (declined,) = [e for e in answer["events"] if e["type"] == "BidDeclined"]
        assert declined["bid_seq"] == second.raw["bid_seq"] and declined["reason"] == "DECLINED"
        view = server.service.view(LOT)
        assert (view.price, view.min_next) == (5_000_00, ask)
        status, again = await call(
            http, "POST", f"{url}/held/{second.raw['bid_seq']}/accept", auctioneer
        )
        assert status == 409 and "already declined" in again["error"]["message"]

        # A held bid passed over by a floor bid is named so.
        third = await bob_ws.bid(LOT, ask, "USD", key="b-3")
        assert third.held
        await command(http, server, auctioneer, {"type": "FloorBid", "paddle": "12"})
        status, again = await call(
            http, "POST", f"{url}/held/{third.raw['bid_seq']}/decline", auctioneer
        )
        assert status == 409 and "floor" in again["error"]["message"], again

        # A resent held bid gets the same `held` ack (idempotency), nothing new is written.
        size = await server.ledger_size()
        resent = await bob_ws.bid(LOT, ask, "USD", key="b-2")
        assert resent.raw == second.raw
        assert await server.ledger_size() == size

    status, answer = await call(http, "GET", url + "/bidders", auctioneer)
    assert status == 200, answer
    assert {row["deposit"]["state"] for row in answer["bidders"]} == {"EXEMPT"}
    assert len(answer["bidders"]) == 2 and "account" not in str(answer)

    # The ledger replays with the same engine the notaries and the auditor run (step 8),
    # to the very state the server holds.
    replay = LedgerReplay(openings=server.openings().get)  # the notaries' view, opened
    for data in server.entries():
        entry = parse_entry(data)
        replay.add(entry.seq, entry.type.value, entry.time_us, entry.body, entry.actor.kid)
    assert replay.lots[LOT].state == server.service.state(LOT)


async def test_a_lot_takes_a_legal_time_zone_and_refuses_an_unknown_one(
    server: Server, http: aiohttp.ClientSession
) -> None:
    auctioneer = await server.staff(Role.AUCTIONEER)
    now = server.service.now()
    body = {
        "preset": "JUDICIAL_CN",
        "lot": "flat-9",
        "title": "Flat 9",
        "parameters": {
            "start_price": 1_000_000,
            "step": 10_000,
            "start_at": now + 3600 * SECOND,
            "end_at": now + 90_000 * SECOND,
            "legal_timezone": "Mars/Olympus",
        },
    }
    status, answer = await call(http, "POST", f"{server.url}/api/console/lots", auctioneer, body)
    assert status == 422 and error_code(answer) == "BAD_PARAMETERS"
    assert "time zone" in answer["error"]["message"]
    assert server.service.view("flat-9") is None
    body["parameters"]["legal_timezone"] = "Asia/Shanghai"
    status, answer = await call(http, "POST", f"{server.url}/api/console/lots", auctioneer, body)
    assert status == 201 and answer["lot"]["legal_timezone"] == "Asia/Shanghai", answer


async def test_a_held_bid_resent_after_a_restart_is_still_held(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    """The gateway relearns answered bids from the ledger at start: a held bid stays held."""
    async with running_server(tmp_path) as first:
        service = first.service
        rules = live_auctioneer(start_price=5_000_00, start_at=service.now() + 3600 * SECOND)
        await service.add_lot(LOT, rules, "Still life with quinces")
        auctioneer = await first.staff(Role.AUCTIONEER)
        alice = await ready_bidder(http, first.url, (LOT,))
        await command(http, first, auctioneer, {"type": "OpenRing", "ask": 5_000_00})
        async with await client_for(first, alice) as alice_ws:
            held = await alice_ws.bid(LOT, 5_000_00, "USD", key="a-1")
        assert held.held
    async with running_server(tmp_path) as second:
        size = await second.ledger_size()
        async with await client_for(second, alice) as alice_ws:
            again = await alice_ws.bid(LOT, 5_000_00, "USD", key="a-1")
        assert again.held and again.raw["bid_seq"] == held.raw["bid_seq"], again.raw
        assert again.raw["entry"] == held.raw["entry"] and "reason" not in again.raw
        assert await second.ledger_size() == size
