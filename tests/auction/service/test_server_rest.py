"""The REST API of docs/protocol.md §1 against a real server on 127.0.0.1 (real SQLite)."""

from __future__ import annotations

import base64
import json
import os
import stat
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from server_kit import (
    NAME,
    MovableClock,
    Server,
    add_lots,
    new_bidder,
    prc_id,
    ready_bidder,
    running_server,
    verify,
    wait_open,
    wrong_check,
)

from auction.accounts import Role
from auction.rules import SECOND


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[Server]:
    async with running_server(tmp_path) as running:
        await add_lots(running)
        yield running


async def call(
    http: aiohttp.ClientSession,
    method: str,
    url: str,
    body: Any = None,
    token: str | None = None,
) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    data = body if isinstance(body, bytes) else None
    payload = None if isinstance(body, bytes) else body
    async with http.request(method, url, json=payload, data=data, headers=headers) as response:
        return response.status, await response.json()


def assert_error(answer: Any, code: str) -> None:
    assert set(answer) == {"error"}, answer
    assert answer["error"]["code"] == code, answer
    assert isinstance(answer["error"]["message"], str) and answer["error"]["message"]


async def test_the_whole_bidder_flow(server: Server, http: aiohttp.ClientSession) -> None:
    url = server.url
    bidder = await new_bidder(http, url)
    assert bidder.account.startswith("acct-") and len(bidder.account) == 21

    status, me = await call(http, "GET", f"{url}/api/me", token=bidder.session)
    assert status == 200 and me["verified"] is False and me["registrations"] == []

    # registering before the identity check is refused, and changes nothing
    await wait_open(server, "watch", "flat")  # the lots' own opening entries come first
    size = await server.ledger_size()
    status, answer = await call(
        http, "POST", f"{url}/api/lots/flat/registrations", {}, bidder.session
    )
    assert status == 403
    assert_error(answer, "NOT_VERIFIED")
    assert await server.ledger_size() == size

    verified = await verify(http, url, bidder)
    assert verified["verified"] is True
    assert verified["attestation"]["provider"] == "idp.gavel.local"
    idv_entry = verified["idv_entry"]
    entry = next(e for e in server.entry_json() if e["seq"] == idv_entry)
    assert entry["type"] == "idv" and entry["body"]["account"] == bidder.account
    assert entry["actor"]["kid"].startswith("idp.gavel.local")

    status, registration = await call(
        http, "POST", f"{url}/api/lots/flat/registrations", {}, bidder.session
    )
    assert status == 201
    assert registration["lot"] == "flat"
    assert registration["deposit"]["state"] == "REQUIRED"
    assert registration["deposit"]["amount"] > 0
    code = registration["code"]

    size = await server.ledger_size()
    status, again = await call(
        http, "POST", f"{url}/api/lots/flat/registrations", {}, bidder.session
    )
    assert status == 409  # refused before the engine: nothing is logged
    assert_error(again, "DUPLICATE")
    assert await server.ledger_size() == size

    status, refused = await call(
        http, "POST", f"{url}/api/lots/flat/deposit", {"idempotency_key": "d1"}, bidder.session
    )
    assert status == 409  # the bidding notice first
    assert_error(refused, "NOTICE_NOT_ACCEPTED")
    status, accepted = await call(
        http, "POST", f"{url}/api/lots/flat/notice", {"accept": True}, bidder.session
    )
    assert status == 201 and accepted["accepted"] is True
    status, hold = await call(
        http, "POST", f"{url}/api/lots/flat/deposit", {"idempotency_key": "d1"}, bidder.session
    )
    assert status == 202 and hold["state"] == "PENDING" and hold["hold"].startswith("hold-")
    status, same = await call(
        http, "POST", f"{url}/api/lots/flat/deposit", {"idempotency_key": "d1"}, bidder.session
    )
    assert status == 202 and same["hold"] == hold["hold"]

    from server_kit import wait_for_deposit

    await wait_for_deposit(http, url, bidder, "flat")
    status, me = await call(http, "GET", f"{url}/api/me", token=bidder.session)
    assert me["verified"] is True
    assert me["registrations"] == [
        {
            "lot": "flat",
            "code": code,
            "deposit": {
                "state": "FROZEN",
                "amount": registration["deposit"]["amount"],
                "currency": "CNY",
            },
        }
    ]
    # the callback was delivered twice; the deposit moved once
    deposits = [e for e in server.entry_json() if e["type"] == "deposit"]
    assert len(deposits) == 2  # PENDING then FROZEN

    status, lots = await call(http, "GET", f"{url}/api/lots")
    assert status == 200 and {lot["lot_id"] for lot in lots["lots"]} == {"watch", "flat"}
    assert isinstance(lots["now_us"], int)
    status, one = await call(http, "GET", f"{url}/api/lots/flat")
    assert status == 200 and one["lot"]["lot_id"] == "flat"
    status, missing = await call(http, "GET", f"{url}/api/lots/nope")
    assert status == 404
    assert_error(missing, "UNKNOWN_LOT")
    status, bids = await call(http, "GET", f"{url}/api/lots/flat/bids")
    assert status == 200 and bids == {"lot": "flat", "currency": "CNY", "bids": []}


async def test_deposit_errors(server: Server, http: aiohttp.ClientSession) -> None:
    url = server.url
    bidder = await new_bidder(http, url)
    await verify(http, url, bidder)
    status, answer = await call(
        http, "POST", f"{url}/api/lots/flat/deposit", {"idempotency_key": "k"}, bidder.session
    )
    assert status == 409
    assert_error(answer, "NOT_REGISTERED")
    await call(http, "POST", f"{url}/api/lots/flat/registrations", {}, bidder.session)
    await call(http, "POST", f"{url}/api/lots/watch/registrations", {}, bidder.session)
    await call(http, "POST", f"{url}/api/lots/flat/notice", {"accept": True}, bidder.session)
    status, _ = await call(
        http, "POST", f"{url}/api/lots/flat/deposit", {"idempotency_key": "k"}, bidder.session
    )
    assert status == 202
    # the same key for another lot's deposit: other terms
    server.service.state("watch")  # (the watch needs no deposit at all)
    status, answer = await call(
        http, "POST", f"{url}/api/lots/watch/deposit", {"idempotency_key": "k"}, bidder.session
    )
    assert status == 409
    assert_error(answer, "NO_DEPOSIT_NEEDED")

    poor = await new_bidder(http, url)
    await verify(http, url, poor, prc_id(sequence="456"))
    await call(http, "POST", f"{url}/api/lots/flat/registrations", {}, poor.session)
    await call(http, "POST", f"{url}/api/lots/flat/notice", {"accept": True}, poor.session)
    gateway = server.gateway
    balance = gateway._payments.balance(poor.account)
    gateway._payments._balances[poor.account] = 0  # the simulated card is empty
    status, answer = await call(
        http, "POST", f"{url}/api/lots/flat/deposit", {"idempotency_key": "p"}, poor.session
    )
    assert status == 402 and balance > 0
    assert_error(answer, "INSUFFICIENT_FUNDS")

    # another bidder choosing the same idempotency key as the first is not a conflict: keys
    # are scoped to the bidder
    other = await new_bidder(http, url)
    await verify(http, url, other, prc_id(sequence="789"))
    await call(http, "POST", f"{url}/api/lots/flat/registrations", {}, other.session)
    await call(http, "POST", f"{url}/api/lots/flat/notice", {"accept": True}, other.session)
    status, answer = await call(
        http, "POST", f"{url}/api/lots/flat/deposit", {"idempotency_key": "k"}, other.session
    )
    assert status == 202, answer


@pytest.mark.parametrize(
    ("document", "code"),
    [
        (wrong_check(prc_id()), "BAD_CHECK_DIGIT"),
        ("12345", "MALFORMED"),
        (prc_id(birth="20150101"), "MINOR"),
        (prc_id(birth="19800231"), "INVALID_DATE"),
    ],
)
async def test_identity_refusals_write_nothing(
    server: Server, http: aiohttp.ClientSession, document: str, code: str
) -> None:
    bidder = await new_bidder(http, server.url)
    await wait_open(server, "watch", "flat")  # the lots' own opening entries come first
    size = await server.ledger_size()
    status, answer = await call(
        http,
        "POST",
        f"{server.url}/api/identity",
        {"name": NAME, "document_type": "PRC_RESIDENT_ID", "document": document},
        bidder.session,
    )
    assert status == 422
    assert_error(answer, code)
    assert await server.ledger_size() == size
    assert await server.gateway.identity(bidder.account) is None


async def test_malformed_requests_get_typed_errors(
    server: Server, http: aiohttp.ClientSession
) -> None:
    url = server.url
    status, answer = await call(http, "POST", f"{url}/api/accounts", b"{not json")
    assert status == 400
    assert_error(answer, "MALFORMED")
    status, answer = await call(http, "POST", f"{url}/api/accounts", {"public_key": "AAAA"})
    assert status == 422
    assert_error(answer, "MALFORMED")
    status, answer = await call(http, "POST", f"{url}/api/identity", {})
    assert status == 401
    assert_error(answer, "UNAUTHENTICATED")
    status, answer = await call(http, "POST", f"{url}/api/identity", {}, "forged-token")
    assert status == 401
    bidder = await new_bidder(http, url)
    status, answer = await call(
        http,
        "POST",
        f"{url}/api/identity",
        {"name": NAME, "document_type": "DRIVING_LICENCE", "document": "x"},
        bidder.session,
    )
    assert status == 422
    assert_error(answer, "MALFORMED")
    status, answer = await call(http, "GET", f"{url}/api/nothing-here")
    assert status == 404
    assert_error(answer, "NOT_FOUND")


async def test_an_expired_attestation_no_longer_counts(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    clock = MovableClock()
    async with running_server(tmp_path, clock=clock, attestation_validity_us=60 * SECOND) as srv:
        await add_lots(srv)
        bidder = await new_bidder(http, srv.url)
        await verify(http, srv.url, bidder)
        _, me = await call(http, "GET", f"{srv.url}/api/me", token=bidder.session)
        assert me["verified"] is True
        clock.offset_us += 61 * SECOND
        _, me = await call(http, "GET", f"{srv.url}/api/me", token=bidder.session)
        assert me["verified"] is False
        status, answer = await call(
            http, "POST", f"{srv.url}/api/lots/flat/registrations", {}, bidder.session
        )
        assert status == 403
        assert_error(answer, "NOT_VERIFIED")


async def test_console_and_compliance(server: Server, http: aiohttp.ClientSession) -> None:
    url = server.url
    auctioneer = await server.staff(Role.AUCTIONEER)
    compliance = await server.staff(Role.COMPLIANCE)
    bidder = await ready_bidder(http, url, ("flat",))

    # a bidder is not the auctioneer
    status, answer = await call(
        http, "POST", f"{url}/api/console/lots/flat/commands", {"type": "Pause"}, bidder.session
    )
    assert status == 403
    assert_error(answer, "FORBIDDEN")

    now = server.service.now()
    lot = {
        "preset": "LIVE_AUCTIONEER",
        "lot": "painting",
        "title": "Harbour at Dusk",
        "parameters": {"start_price": 800_000, "start_at": now + 3600 * SECOND, "currency": "GBP"},
    }
    status, created = await call(http, "POST", f"{url}/api/console/lots", lot, auctioneer)
    assert status == 201 and created["lot"]["format"] == "LIVE_AUCTIONEER"
    status, answer = await call(http, "POST", f"{url}/api/console/lots", lot, auctioneer)
    assert status == 409
    assert_error(answer, "LOT_EXISTS")
    bad = lot | {"lot": "p2", "parameters": {"start_price": 1.5}}
    status, answer = await call(http, "POST", f"{url}/api/console/lots", bad, auctioneer)
    assert status == 422
    assert_error(answer, "BAD_PARAMETERS")

    status, answer = await call(
        http,
        "POST",
        f"{url}/api/console/lots/painting/commands",
        {"type": "OpenRing", "ask": 800_000},
        auctioneer,
    )
    assert status == 200, answer
    status, answer = await call(
        http,
        "POST",
        f"{url}/api/console/lots/painting/commands",
        {"type": "FloorBid", "paddle": "12"},
        auctioneer,
    )
    assert status == 200 and answer["lot"]["price"] == 800_000, answer
    status, answer = await call(
        http, "POST", f"{url}/api/console/lots/painting/commands", {"type": "Hammer"}, auctioneer
    )
    assert status == 422  # the fair warning comes first (rules C14)
    status, answer = await call(
        http, "POST", f"{url}/api/console/lots/painting/commands", {"type": "Bogus"}, auctioneer
    )
    assert status == 422
    assert_error(answer, "UNKNOWN_COMMAND")

    # identities stay sealed until the close
    status, answer = await call(
        http, "GET", f"{url}/api/compliance/lots/flat/identities", token=compliance
    )
    assert status == 409
    assert_error(answer, "NOT_CLOSED")
    status, answer = await call(
        http, "GET", f"{url}/api/compliance/lots/flat/identities", token=auctioneer
    )
    assert status == 403
    status, answer = await call(
        http,
        "POST",
        f"{url}/api/console/lots/flat/commands",
        {"type": "Cancel", "reason": "withdrawn by the court"},
        auctioneer,
    )
    assert status == 200, answer
    status, answer = await call(
        http, "GET", f"{url}/api/compliance/lots/flat/identities", token=compliance
    )
    assert status == 200
    (row,) = answer["identities"]
    assert row["account"] == bidder.account and row["personal_data"]["name"] == NAME

    status, answer = await call(
        http,
        "DELETE",
        f"{url}/api/compliance/accounts/{bidder.account}/personal-data",
        token=compliance,
    )
    assert status == 200 and answer["erased"] is True
    identity = await server.gateway.identity(bidder.account)
    assert identity.personal_data is None and identity.salt is None
    assert identity.attestation["commit"]  # the ledger's commitment stays
    status, answer = await call(
        http,
        "DELETE",
        f"{url}/api/compliance/accounts/{bidder.account}/personal-data",
        token=compliance,
    )
    assert status == 404


async def test_no_personal_data_on_the_ledger(server: Server, http: aiohttp.ClientSession) -> None:
    document = prc_id(birth="19750612", sequence="771")
    bidder = await new_bidder(http, server.url)
    await verify(http, server.url, bidder, document)
    await call(http, "POST", f"{server.url}/api/lots/flat/registrations", {}, bidder.session)
    entries = server.entries()
    assert any(json.loads(raw)["type"] == "idv" for raw in entries)
    for raw in entries:
        text = raw.decode("utf-8")
        parsed = json.dumps(json.loads(raw), ensure_ascii=False)
        for secret in (NAME, document, document[6:14], "1975-06-12"):
            assert secret not in text and secret not in parsed


async def test_auditor_and_identity_key(server: Server, http: aiohttp.ClientSession) -> None:
    status, answer = await call(http, "GET", f"{server.url}/api/auditor")
    assert status == 200
    assert answer["log_size"] >= 3  # house, idp key, two lots
    assert answer["notaries"] == []
    key_file = server.data / "idp.key"
    assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600
    assert len(base64.b64decode(key_file.read_text().strip())) == 32


async def test_the_identity_key_survives_a_restart(tmp_path: Path) -> None:
    async with running_server(tmp_path) as first:
        vkey = first.gateway._identity.signer.vkey
        size = await first.ledger_size()
    async with running_server(tmp_path) as second:
        assert second.gateway._identity.signer.vkey == vkey
        assert await second.ledger_size() == size  # the key entry is not written twice


@pytest.mark.postgres
async def test_the_flow_on_postgresql(
    postgres_url: str, tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    async with running_server(tmp_path, database_url=postgres_url) as srv:
        await add_lots(srv)
        bidder = await ready_bidder(http, srv.url, ("flat",))
        vkey = srv.gateway._identity.signer.vkey
        assert not (tmp_path / "data" / "idp.key").exists()  # kept in the database
        _, me = await call(http, "GET", f"{srv.url}/api/me", token=bidder.session)
        assert me["verified"] and me["registrations"][0]["deposit"]["state"] == "FROZEN"
    async with running_server(tmp_path, database_url=postgres_url) as again:
        assert again.gateway._identity.signer.vkey == vkey
        _, me = await call(http, "GET", f"{again.url}/api/me", token=bidder.session)
        assert me["account"] == bidder.account and me["verified"]
