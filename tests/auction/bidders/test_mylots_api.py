"""`/api/me/lots` (docs/protocol.md §1, "My auctions") against the real server: only the
session's own lots, 401 without a session; every bid with its answer and ledger entry; the
standing (leading, outbid, won, lost) and the deposit's release date; the bidding notice before
the deposit; a second session from a sign-in code; the sale confirmation, its SHA-256 anchored
by a `document` ledger entry without personal data."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from server_kit import (
    NAME,
    Server,
    new_bidder,
    prc_id,
    ready_bidder,
    running_server,
    verify,
)

from auction.accounts import Role
from auction.bidders.confirmation import chinese_uppercase
from auction.client import BidderClient
from auction.rules import SECOND, english_timed, judicial

LOT = "flat-7"


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[Server]:
    async with running_server(tmp_path) as running:
        now = running.service.now()
        rules = judicial(
            start_price=1_000_000,
            step=10_000,
            start_at=now + int(0.3 * SECOND),
            end_at=now + 6 * SECOND,
            min_duration=0,
            window=SECOND // 2,
            extend=SECOND // 2,
        )
        await running.service.add_lot(LOT, rules, "Flat 7, Hangzhou")
        watch = english_timed(start_price=10_000, start_at=now, end_at=now + 600 * SECOND)
        await running.service.add_lot("watch", watch, "A watch")
        yield running


async def call(
    http: aiohttp.ClientSession, method: str, url: str, token: str | None = None, body: Any = None
) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with http.request(method, url, json=body, headers=headers) as response:
        return response.status, await response.json()


async def wait_open(server: Server, lot: str) -> None:
    for _ in range(200):
        if server.service.view(lot).status == "OPEN":
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"{lot} did not open")


def client_for(server: Server, bidder: Any) -> Any:
    return BidderClient.connect(
        server.url, account=bidder.account, key=bidder.key, session=bidder.session
    )


async def test_without_a_session_nothing_is_shown(
    server: Server, http: aiohttp.ClientSession
) -> None:
    url = server.url
    for path in ("/api/me/lots", f"/api/me/lots/{LOT}", f"/api/me/lots/{LOT}/documents/x"):
        status, body = await call(http, "GET", url + path)
        assert status == 401 and body["error"]["code"] == "UNAUTHENTICATED", (path, body)
        status, body = await call(http, "GET", url + path, token="not-a-session")
        assert status == 401, path
    status, body = await call(http, "POST", f"{url}/api/me/signin-code")
    assert status == 401
    status, body = await call(http, "POST", f"{url}/api/sessions", body={"code": "ABCD-EFGH-IJKL"})
    assert status == 401 and body["error"]["code"] == "UNKNOWN_CODE"
    status, body = await call(http, "POST", f"{url}/api/sessions", body={"code": 7})
    assert status == 422 and body["error"]["code"] == "MALFORMED"
    staff = await server.staff(Role.AUCTIONEER)
    status, body = await call(http, "GET", f"{url}/api/me/lots", token=staff)
    assert status == 403


async def test_the_notice_comes_before_the_deposit(
    server: Server, http: aiohttp.ClientSession
) -> None:
    url = server.url
    bidder = await new_bidder(http, url)
    await verify(http, url, bidder)
    status, _ = await call(http, "POST", f"{url}/api/lots/{LOT}/registrations", bidder.session, {})
    assert status == 201
    deposit = {"idempotency_key": "d1"}
    status, body = await call(
        http, "POST", f"{url}/api/lots/{LOT}/deposit", bidder.session, deposit
    )
    assert status == 409 and body["error"]["code"] == "NOTICE_NOT_ACCEPTED"
    assert "竞买须知" in body["error"]["message"]
    assert server.gateway.registration(bidder.account, LOT).deposit_state == "REQUIRED"
    for bad in ({}, {"accept": "yes"}, {"accept": True, "notice_sha256": "xyz"}):
        status, body = await call(http, "POST", f"{url}/api/lots/{LOT}/notice", bidder.session, bad)
        assert status == 422 and body["error"]["code"] == "MALFORMED", bad
    status, body = await call(
        http, "POST", f"{url}/api/lots/nope/notice", bidder.session, {"accept": True}
    )
    assert status == 404
    status, body = await call(
        http, "POST", f"{url}/api/lots/{LOT}/notice", bidder.session, {"accept": True}
    )
    assert status == 201 and isinstance(body["accepted_us"], int)
    status, body = await call(
        http, "POST", f"{url}/api/lots/{LOT}/deposit", bidder.session, deposit
    )
    assert status == 202, body
    status, mine = await call(http, "GET", f"{url}/api/me/lots/{LOT}", bidder.session)
    assert status == 200
    assert mine["lot"]["notice"]["accepted"] is True
    assert mine["lot"]["headline"].startswith("You are registered")


async def test_my_lots_bids_outcome_and_confirmation(
    server: Server, http: aiohttp.ClientSession
) -> None:
    url = server.url
    alice = await ready_bidder(http, url, (LOT,))
    bob = await new_bidder(http, url)
    await verify(http, url, bob, prc_id(sequence="457"))
    bob_auth = bob.session
    await call(http, "POST", f"{url}/api/lots/{LOT}/registrations", bob_auth, {})
    await call(http, "POST", f"{url}/api/lots/{LOT}/notice", bob_auth, {"accept": True})
    await call(http, "POST", f"{url}/api/lots/{LOT}/deposit", bob_auth, {"idempotency_key": "b"})
    carol = await ready_bidder(http, url, ("watch",))
    from server_kit import wait_for_deposit

    await wait_for_deposit(http, url, bob, LOT)
    await wait_open(server, LOT)

    async with await client_for(server, alice) as alice_ws, await client_for(server, bob) as bob_ws:
        first = await alice_ws.bid(LOT, 1_000_000, "CNY")
        assert first.result == "accepted" and first.entry is not None
        second = await bob_ws.bid(LOT, 1_010_000, "CNY")
        assert second.result == "accepted"
        low = await alice_ws.bid(LOT, 1_000_000, "CNY")
        assert low.result == "rejected"

    await asyncio.sleep(0.2)  # the answers are recorded off the bid's path
    status, mine = await call(http, "GET", f"{url}/api/me/lots", alice.session)
    assert status == 200 and mine["account"] == alice.account
    assert [lot["lot"] for lot in mine["lots"]] == [LOT]  # only her own lots
    lot = mine["lots"][0]
    assert lot["standing"] == "outbid" and lot["headline"] == "You have been outbid."
    assert lot["deposit"]["state"] == "FROZEN" and lot["deposit"]["amount"] == 100_000
    assert lot["notice"]["accepted"] is True
    bids = lot["bids"]
    assert [(b["amount"], b["result"]) for b in bids] == [
        (1_000_000, "accepted"),
        (1_000_000, "rejected"),
    ]
    assert bids[0]["entry"] == first.entry and bids[0]["words"] == "Accepted."
    assert bids[0]["receipt"] == f"/log/receipt/{first.entry}"
    assert bids[1]["words"].startswith("Refused: ") and "BELOW_MIN" not in bids[1]["words"]
    assert bids[1]["entry"] == low.entry and bids[1]["receipt"] is None
    assert all(isinstance(b["t_us"], int) for b in bids)
    status, theirs = await call(http, "GET", f"{url}/api/me/lots", bob.session)
    assert [lot["lot"] for lot in theirs["lots"]] == [LOT]
    assert theirs["lots"][0]["standing"] == "leading"
    assert theirs["lots"][0]["code"] != lot["code"]
    status, carols = await call(http, "GET", f"{url}/api/me/lots", carol.session)
    assert [lot["lot"] for lot in carols["lots"]] == ["watch"]
    status, body = await call(http, "GET", f"{url}/api/me/lots/{LOT}", carol.session)
    assert status == 404 and body["error"]["code"] == "NOT_REGISTERED"

    # A second browser: a sign-in code from the first, a new session of the same account.
    status, made = await call(http, "POST", f"{url}/api/me/signin-code", alice.session)
    assert status == 201 and len(made["code"]) == 24
    status, signed = await call(http, "POST", f"{url}/api/sessions", body={"code": made["code"]})
    assert status == 201 and signed["account"] == alice.account
    assert signed["session"] != alice.session
    status, seen = await call(http, "GET", f"{url}/api/me/lots", signed["session"])
    assert status == 200 and seen["lots"][0]["bids"] == mine["lots"][0]["bids"]
    # That session watches: it changes nothing (registrations, deposits, codes) and cannot bid.
    watcher = signed["session"]
    status, me = await call(http, "GET", f"{url}/api/me", watcher)
    assert status == 200 and me["role"] == "watcher" and me["account"] == alice.account
    for path in (
        f"/api/lots/{LOT}/registrations",
        "/api/me/signin-code",
        f"/api/lots/{LOT}/notice",
    ):
        status, body = await call(http, "POST", url + path, watcher, {"accept": True})
        assert status == 403 and body["error"]["code"] == "FORBIDDEN", (path, body)
    status, body = await call(
        http, "POST", f"{url}/api/lots/{LOT}/deposit", watcher, {"idempotency_key": "w"}
    )
    assert status == 403
    status, newer = await call(http, "POST", f"{url}/api/me/signin-code", alice.session)
    status, _ = await call(http, "POST", f"{url}/api/sessions", body={"code": made["code"]})
    assert status == 401  # a new code replaces the old one
    lower = newer["code"].lower().replace("-", " ")
    status, again = await call(http, "POST", f"{url}/api/sessions", body={"code": lower})
    assert status == 201 and again["account"] == alice.account

    # The close: Bob wins, Alice's deposit is released with a date.
    for _ in range(200):
        if server.service.view(LOT).result is not None:
            break
        await asyncio.sleep(0.05)
    assert server.service.view(LOT).result == "SOLD"
    status, mine = await call(http, "GET", f"{url}/api/me/lots/{LOT}", alice.session)
    lost = mine["lot"]
    assert lost["standing"] == "lost" and lost["deposit"]["state"] == "RELEASED"
    assert lost["headline"].startswith(
        "You did not win; your deposit of CN¥1,000.00 is released by "
    )
    assert "(Asia/Shanghai)" in lost["headline"] and lost["deposit"]["deadline_us"] > 0
    assert lost["outcome"] is None and lost["documents"] == []

    document = None
    for _ in range(100):
        status, theirs = await call(http, "GET", f"{url}/api/me/lots/{LOT}", bob.session)
        won = theirs["lot"]
        if won["documents"] and won["documents"][0]["entry"] is not None:
            document = won["documents"][0]
            break
        await asyncio.sleep(0.05)
    assert document is not None, won
    assert won["standing"] == "won" and won["headline"] == "You won this lot."
    outcome = won["outcome"]
    assert outcome["hammer_price"] == 1_010_000 and outcome["deposit_applied"] == 100_000
    assert outcome["balance_due"] == 910_000 and outcome["balance_due_at_us"] > 0
    assert "Balance due: CN¥9,100.00, to be paid by " in outcome["words"][2]

    async with http.get(url + document["url"], headers=bob.auth) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain")
        assert "attachment" in response.headers["Content-Disposition"]
        content = await response.read()
    digest = hashlib.sha256(content).hexdigest()
    assert digest == document["sha256"] == response.headers["X-Content-SHA256"]
    text = content.decode("utf-8")
    assert "成交确认书" in text and NAME in text and won["code"] in text
    assert chinese_uppercase(1_010_000) in text and "CN¥10,100.00" in text
    entries = {entry["seq"]: entry for entry in server.entry_json()}
    anchored = entries[document["entry"]]
    assert anchored["type"] == "document"
    assert anchored["body"] == {
        "v": 1,
        "lot": LOT,
        "kind": "sale_confirmation",
        "name": f"sale-confirmation-{LOT}.txt",
        "content_type": "text/plain; charset=utf-8",
        "size": len(content),
        "sha256": digest,
    }
    assert NAME not in json.dumps(anchored, ensure_ascii=False)
    sale = next(e for e in entries.values() if e["type"] == "sale")
    assert f"sale entry {sale['seq']}" in text
    assert sale["body"]["confirmation_sha256"] in text
    # Only the winner (and staff) download it.
    async with http.get(url + document["url"], headers=alice.auth) as response:
        assert response.status == 404
    staff = await server.staff(Role.COMPLIANCE)
    path = f"{url}/api/console/lots/{LOT}/documents/sale_confirmation"
    async with http.get(path, headers={"Authorization": f"Bearer {staff}"}) as response:
        assert response.status == 200 and await response.read() == content
    async with http.get(path, headers=bob.auth) as response:
        assert response.status == 403
