"""Authorization over a real server on 127.0.0.1 (issue 8 part 5): every way to act for
someone else, or beyond one's role, is refused with the documented status or code and changes
nothing (the ledger's size, the lots, the victim's registrations stay as they were)."""

from __future__ import annotations

import asyncio
import base64
import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import websockets
from server_kit import (
    Bidder,
    MovableClock,
    Server,
    add_lots,
    new_bidder,
    ready_bidder,
    running_server,
    wait_open,
)

from auction.accounts import Role
from auction.client import BidderClient, ClientError, ws_url
from auction.protocol import signed_bytes

HOUR_US = 3600 * 1_000_000


async def snapshot(server: Server, http: aiohttp.ClientSession, *victims: Bidder) -> Any:
    """What must not change: the ledger's size, every lot's view, each victim's /api/me."""
    views = {v.lot_id: v.to_json() for v in server.service.views()}
    mine = []
    for victim in victims:
        async with http.get(f"{server.url}/api/me", headers=victim.auth) as response:
            mine.append(await response.json())
    return await server.ledger_size(), views, mine


async def call(
    http: aiohttp.ClientSession, method: str, url: str, token: str | None, body: Any = None
) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    async with http.request(method, url, json=body, headers=headers) as response:
        return response.status, await response.json()


def client_for(server: Server, bidder: Bidder, key: Any = None) -> Any:
    return BidderClient.connect(
        server.url, account=bidder.account, key=key or bidder.key, session=bidder.session
    )


async def closed_with(connection: websockets.ClientConnection, timeout: float = 5.0) -> int:
    try:
        while True:
            await asyncio.wait_for(connection.recv(), timeout)
    except websockets.ConnectionClosed as closed:
        assert closed.rcvd is not None
        return closed.rcvd.code


async def test_bids_for_someone_else_are_refused(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    async with running_server(tmp_path) as server:
        await add_lots(server, open_in=0.2)
        alice = await ready_bidder(http, server.url, ("watch",))
        bob = await ready_bidder(http, server.url, ("watch",))
        await wait_open(server, "watch")
        async with await client_for(server, bob) as bob_ws:
            captured = bob_ws.signed_bid("watch", 10_000, "USD", key="bob-1")
        before = await snapshot(server, http, alice, bob)
        async with await client_for(server, alice, key=bob.key) as alice_with_bobs_key:
            # Alice's session, Bob's key: the signature is checked against Alice's key
            ack = await alice_with_bobs_key.bid("watch", 10_000, "USD", key="a-1")
            assert ack.reason == "BAD_SIGNATURE" and "entry" not in ack.raw
        async with await client_for(server, alice) as alice_ws:
            # Bob's signed bid, captured and replayed from Alice's session
            replay = await alice_ws.send_bid(dict(captured))
            assert replay.reason == "BAD_SIGNATURE"
            # Bob's account named in the message, signed by Alice for Bob's account
            payload = {
                "account": bob.account,
                "amount": 10_000,
                "currency": "USD",
                "idempotency_key": "a-2",
                "kind": "bid",
                "lot": "watch",
            }
            forged = {k: v for k, v in payload.items() if k != "account"}
            forged |= {
                "type": "bid",
                "account": bob.account,
                "sig": base64.b64encode(alice.key.sign(signed_bytes(payload))).decode(),
            }
            assert (await alice_ws.send_bid(forged)).reason == "BAD_SIGNATURE"
            # a proxy maximum in Bob's name, same story
            forged_max = forged | {"kind": "max", "idempotency_key": "a-3"}
            assert (await alice_ws.send_bid(forged_max)).reason == "BAD_SIGNATURE"
        assert await snapshot(server, http, alice, bob) == before

        # an extra "account" field naming Bob on Alice's own signed bid: it is Alice's bid
        async with await client_for(server, alice) as alice_ws:
            message = alice_ws.signed_bid("watch", 10_000, "USD", key="a-4")
            ack = await alice_ws.send_bid(message | {"account": bob.account})
            assert ack.accepted, ack.raw
        entry = server.entry_json()[ack.raw["entry"]]
        assert entry["body"]["command"]["bidder"] == alice.account
        assert entry["body"]["request"]["payload"]["account"] == alice.account


async def test_registrations_deposits_and_me_are_ones_own(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    async with running_server(tmp_path) as server:
        await add_lots(server, open_in=0.2)
        url = server.url
        bob = await ready_bidder(http, url, ("flat",))
        alice = await new_bidder(http, url)
        from server_kit import verify

        await verify(http, url, alice)
        await wait_open(server, "watch", "flat")  # the lots' own timer entries come first
        before = await snapshot(server, http, bob)
        # a deposit "for Bob" with Alice's session: Alice is not registered, nothing happens
        status, body = await call(
            http, "POST", f"{url}/api/lots/flat/deposit", alice.session,
            {"idempotency_key": "dep-flat", "account": bob.account},
        )  # fmt: skip
        assert (status, body["error"]["code"]) == (409, "NOT_REGISTERED")
        # /api/me never shows anyone else, whatever the query says
        async with http.get(
            f"{url}/api/me", params={"account": bob.account}, headers=alice.auth
        ) as response:
            me = await response.json()
        assert me["account"] == alice.account and me["registrations"] == []
        assert bob.account not in json.dumps(me)
        assert await snapshot(server, http, bob) == before
        # a registration "for Bob" registers Alice, under her own code; Bob's stays as it was
        status, body = await call(
            http, "POST", f"{url}/api/lots/flat/registrations", alice.session,
            {"account": bob.account},
        )  # fmt: skip
        assert status == 201
        state = server.service.state("flat")
        assert state.bidders[alice.account].code == body["code"]
        assert state.bidders[bob.account].code != body["code"]
        _, _, (bob_after,) = await snapshot(server, http, bob)
        assert bob_after == before[2][0]
        # no session, a garbage token: 401, nothing written
        size = await server.ledger_size()
        for token in (None, "garbage", "x" * 600):
            for path in ("/api/lots/watch/registrations", "/api/lots/watch/deposit"):
                status, body = await call(http, "POST", url + path, token, {})
                assert (status, body["error"]["code"]) == (401, "UNAUTHENTICATED"), path
        assert await server.ledger_size() == size


async def test_console_and_compliance_need_their_roles(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    clock = MovableClock()
    async with running_server(tmp_path, clock=clock) as server:
        await add_lots(server, open_in=0.2, run_for=1.5)
        url = server.url
        bidder = await ready_bidder(http, url, ("watch",))
        auctioneer = await server.staff(Role.AUCTIONEER)
        compliance = await server.staff(Role.COMPLIANCE)
        auditor = await server.staff(Role.AUDITOR)
        expired = await server.staff(Role.AUCTIONEER)
        court = await server.staff(Role.COURT)
        await wait_open(server, "watch")
        new_lot = {
            "preset": "ENGLISH_TIMED",
            "lot": "sneaky",
            "title": "x",
            "parameters": {"start_price": 100, "start_at": 1, "end_at": 2},
        }
        console = [
            ("POST", "/api/console/lots", new_lot),
            ("POST", "/api/console/lots/watch/commands", {"type": "Pause", "reason": "x"}),
            ("POST", "/api/console/lots/watch/commands", {"type": "CloseLot"}),
            ("GET", "/api/console/lots/watch/video", None),
            ("PUT", "/api/console/lots/watch/video", {"source": "pattern"}),
        ]
        compliance_calls = [
            ("GET", "/api/compliance/lots/watch/identities", None),
            ("DELETE", f"/api/compliance/accounts/{bidder.account}/personal-data", None),
            ("GET", f"/api/compliance/accounts/{bidder.account}/identity", None),
            (
                "POST",
                f"/api/compliance/accounts/{bidder.account}/reverification",
                {"reason": "x"},
            ),
            ("GET", "/api/compliance/alerts", None),
        ]
        dashboard_calls = [
            ("GET", "/api/dashboard", None),
            ("GET", "/api/dashboard/funnel.json", None),
            ("GET", "/api/dashboard/deposits.csv", None),
            ("GET", "/api/dashboard/plots/bids.svg?lot=watch", None),
        ]
        staff_calls = [
            ("GET", "/api/staff/sessions", None),
            ("POST", "/api/staff/sessions", {"role": "auditor", "label": "x"}),
            ("DELETE", "/api/staff/sessions/st-0000000000000000", None),
        ]
        before = await snapshot(server, http, bidder)
        wrong_roles = {
            "console": (console, [bidder.session, compliance, auditor]),
            "compliance": (compliance_calls, [bidder.session, auctioneer, auditor]),
            "dashboard": (dashboard_calls, [bidder.session, court]),
            "staff": (staff_calls, [bidder.session, auctioneer, compliance, auditor, court]),
        }
        for calls, tokens in wrong_roles.values():
            for method, path, body in calls:
                for token in tokens:
                    status, answer = await call(http, method, url + path, token, body)
                    assert (status, answer["error"]["code"]) == (403, "FORBIDDEN"), path
                for token in (None, "garbage"):
                    status, answer = await call(http, method, url + path, token, body)
                    assert (status, answer["error"]["code"]) == (401, "UNAUTHENTICATED")
        # identities stay sealed before the close, even for compliance
        status, answer = await call(http, "GET", url + compliance_calls[0][1], compliance)
        assert (status, answer["error"]["code"]) == (409, "NOT_CLOSED")
        assert await snapshot(server, http, bidder) == before
        assert server.service.view("sneaky") is None

        # after the close, compliance (only) reads them; the personal data is still there
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 10
        while server.service.view("watch").status == "OPEN" and loop.time() < deadline:
            await asyncio.sleep(0.05)
        status, answer = await call(http, "GET", url + compliance_calls[0][1], compliance)
        assert status == 200, answer
        (row,) = answer["identities"]
        assert row["account"] == bidder.account and row["personal_data"] is not None

        # an expired staff session: 401 everywhere, nothing done
        clock.offset_us = 13 * HOUR_US
        size = await server.ledger_size()
        for method, path, body in console + compliance_calls + dashboard_calls:
            status, answer = await call(http, method, url + path, expired, body)
            assert (status, answer["error"]["code"]) == (401, "UNAUTHENTICATED"), path
        status, _ = await call(http, "GET", url + "/api/me", bidder.session)
        assert status == 401
        assert await server.ledger_size() == size


async def test_websocket_sessions_expire_and_staff_cannot_bid(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    clock = MovableClock()
    async with running_server(tmp_path, clock=clock) as server:
        await add_lots(server, open_in=0.2, run_for=3 * 24 * 3600)
        bidder = await ready_bidder(http, server.url, ("watch",))
        await wait_open(server, "watch")
        size = await server.ledger_size()
        # staff sessions cannot bid (4003), watchers neither
        for token in (await server.staff(Role.AUCTIONEER), await server.staff(Role.COMPLIANCE)):
            async with websockets.connect(ws_url(server.url)) as connection:
                await connection.send(json.dumps({"type": "hello", "v": 1, "session": token}))
                json.loads(await connection.recv())
                async with await client_for(server, bidder) as signer:
                    message = signer.signed_bid("watch", 10_000, "USD", key="st-1")
                await connection.send(json.dumps(message))
                assert await closed_with(connection) == 4003
        # a connection whose session expires: its next bid or subscribe closes it with 4003
        for then in ("bid", "subscribe"):
            clock.offset_us = 0
            client = await client_for(server, bidder)
            message = client.signed_bid("watch", 10_000, "USD", key=f"exp-{then}")
            clock.offset_us = 13 * HOUR_US
            if then == "bid":
                await client.send_raw(json.dumps(message))
            else:
                await client.subscribe("watch")
            await asyncio.wait_for(client.closed.wait(), 5)
            assert client.close_code == 4003
            await client.close()
        # and it cannot open a new one
        with pytest.raises(ClientError) as refused:
            await client_for(server, bidder)
        assert refused.value.close_code == 4003
        assert await server.ledger_size() == size


async def test_rate_limits_per_bidder_and_per_address(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    async with running_server(tmp_path, bids_per_second=3, connections_per_address=4) as server:
        await add_lots(server, open_in=0.2)
        alice = await ready_bidder(http, server.url, ("watch",))
        bob = await ready_bidder(http, server.url, ("watch",))
        await wait_open(server, "watch")
        async with await client_for(server, alice) as a, await client_for(server, bob) as b:
            acks = await asyncio.gather(
                *(a.bid("watch", 10_000 + 100 * i, "USD", key=f"r-{i}") for i in range(10))
            )
            limited = [ack for ack in acks if ack.reason == "RATE_LIMITED"]
            # a burst of 3, plus at most a few tokens refilled while the 10 arrive
            assert 10 - 3 - 3 <= len(limited) <= 10 - 3
            assert all("entry" not in ack.raw for ack in limited)  # nothing written for them
            # the limit is Alice's: Bob bids at once
            ack = await b.bid("watch", 20_000, "USD", key="bob-r")
            assert ack.reason != "RATE_LIMITED", ack.raw
        # connections per address: the fifth is closed with 4008
        clients = [await BidderClient.connect(server.url) for _ in range(4)]
        try:
            async with websockets.connect(ws_url(server.url)) as extra:
                assert await closed_with(extra) == 4008
        finally:
            for client in clients:
                await client.close()
