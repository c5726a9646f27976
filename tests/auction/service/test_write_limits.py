"""Writes that cannot be flooded (docs/protocol.md §1.1), against a real server on loopback:
the 429 answers of the per-address and per-session limits, requests refused before they
reach the rules engine (nothing logged), the hourly bound on an account's ledger entries (and
across a restart), and a person's whole sign-up under the default limits."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import aiohttp
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from server_kit import (
    MovableClock,
    accept_notice,
    add_lots,
    new_bidder,
    prc_id,
    running_server,
    verify,
    wait_for_deposit,
    wait_open,
    wrong_check,
)

from auction.rules import Cancel
from auction.throttle import HOUR_US, Rate, WriteLimits

NAME = "张三丰"


async def post(
    http: aiohttp.ClientSession, url: str, body: Any, token: str | None = None
) -> tuple[int, Any, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with http.post(url, json=body, headers=headers) as response:
        return response.status, await response.json(), response.headers


def public_key() -> str:
    key = Ed25519PrivateKey.generate().public_key()
    return base64.b64encode(key.public_bytes(Encoding.Raw, PublicFormat.Raw)).decode()


def assert_throttled(status: int, body: Any, headers: Any, code: str = "RATE_LIMITED") -> int:
    assert status == 429, body
    error = body["error"]
    assert set(error) == {"code", "message", "retry_after"}
    assert error["code"] == code
    assert isinstance(error["retry_after"], int) and error["retry_after"] >= 1
    assert headers["Retry-After"] == str(error["retry_after"])
    message = error["message"]
    assert "try again in" in message and not any(word.isupper() for word in message.split())
    return int(error["retry_after"])


async def test_account_creation_is_limited_per_address(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    limits = WriteLimits(accounts_per_address=Rate(1 / 60, 3))
    async with running_server(tmp_path, write_limits=limits) as server:
        for _ in range(3):
            status, _, _ = await post(
                http, f"{server.url}/api/accounts", {"public_key": public_key()}
            )
            assert status == 201
        status, body, headers = await post(
            http, f"{server.url}/api/accounts", {"public_key": public_key()}
        )
        retry = assert_throttled(status, body, headers)
        assert 55 <= retry <= 60
        assert "account creations from your network address" in body["error"]["message"]


async def test_identity_checks_are_limited_per_session_and_write_nothing(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    limits = WriteLimits(identity_per_session=Rate(1 / 60, 3))
    async with running_server(tmp_path, write_limits=limits) as server:
        url = server.url
        bidder = await new_bidder(http, url)
        size = await server.ledger_size()
        document = {"name": NAME, "document_type": "PRC_RESIDENT_ID"}
        for _ in range(3):  # mistyped documents: refused by the check, counted by the bucket
            status, body, _ = await post(
                http,
                f"{url}/api/identity",
                document | {"document": wrong_check(prc_id())},
                bidder.session,
            )
            assert status == 422 and body["error"]["code"] == "BAD_CHECK_DIGIT"
        status, body, headers = await post(
            http, f"{url}/api/identity", document | {"document": prc_id()}, bidder.session
        )
        assert_throttled(status, body, headers)
        assert "identity checks from this session" in body["error"]["message"]
        assert await server.ledger_size() == size
        other = await new_bidder(http, url)  # another session has its own bucket
        assert (await verify(http, url, other))["verified"] is True
        assert await server.ledger_size() == size + 1


async def test_repeated_requests_are_refused_before_the_engine(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    """A second identity check, a second registration, a registration for a closed lot and a
    second deposit under a new key: each refused with 409, and the ledger does not grow."""
    async with running_server(tmp_path, write_limits=WriteLimits()) as server:
        await add_lots(server)
        url = server.url
        bidder = await new_bidder(http, url)
        await verify(http, url, bidder)
        status, registration, _ = await post(
            http, f"{url}/api/lots/flat/registrations", {}, bidder.session
        )
        assert status == 201
        await accept_notice(http, url, bidder, "flat")
        status, _, _ = await post(
            http, f"{url}/api/lots/flat/deposit", {"idempotency_key": "d1"}, bidder.session
        )
        assert status == 202
        await wait_for_deposit(http, url, bidder, "flat")
        await wait_open(server, "watch", "flat")
        await server.service.submit("watch", Cancel("withdrawn by the seller"))
        size = await server.ledger_size()

        status, body, _ = await post(
            http,
            f"{url}/api/identity",
            {"name": NAME, "document_type": "PRC_RESIDENT_ID", "document": prc_id()},
            bidder.session,
        )
        # the identity desk refuses it (one person, one account) before anything is written
        assert status == 409 and body["error"]["code"] == "REGISTERED_ON_OPEN_LOT"
        for _ in range(5):
            status, body, _ = await post(
                http, f"{url}/api/lots/flat/registrations", {}, bidder.session
            )
            assert status == 409 and body["error"]["code"] == "DUPLICATE"
            assert registration["code"] in body["error"]["message"]
        status, body, _ = await post(
            http, f"{url}/api/lots/watch/registrations", {}, bidder.session
        )
        assert status == 409 and body["error"]["code"] == "LOT_CLOSED"
        status, body, _ = await post(
            http, f"{url}/api/lots/flat/deposit", {"idempotency_key": "d2"}, bidder.session
        )
        assert status == 409 and body["error"]["code"] == "DUPLICATE"
        assert body["error"]["message"] == "your deposit for this lot is already frozen"
        status, again, _ = await post(  # a resend of the first request is still answered
            http, f"{url}/api/lots/flat/deposit", {"idempotency_key": "d1"}, bidder.session
        )
        assert status == 202 and again["state"] == "FROZEN"
        await server.service.settle(5)
        assert await server.ledger_size() == size, [
            (e["type"], e["body"].get("command")) for e in server.entry_json()[size - 2 :]
        ]


async def test_the_hourly_bound_on_an_accounts_entries(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    """4 entries an hour: an identity check (1), a registration (1), a deposit (2); the next
    registration waits for the hour, also across a restart."""
    clock = MovableClock()
    limits = WriteLimits(entries_per_account_hour=4)
    async with running_server(tmp_path, write_limits=limits, clock=clock) as server:
        await add_lots(server, run_for=3 * 3600)
        url = server.url
        bidder = await new_bidder(http, url)
        await verify(http, url, bidder)
        for path, body, expected in (
            ("flat/registrations", {}, 201),
            ("flat/notice", {"accept": True}, 201),  # recorded, not an entry of the ledger
            ("flat/deposit", {"idempotency_key": "d1"}, 202),
        ):
            status, answer, _ = await post(http, f"{url}/api/lots/{path}", body, bidder.session)
            assert status == expected, answer
        await wait_for_deposit(http, url, bidder, "flat")
        await wait_open(server, "watch", "flat")  # their opening is logged too
        size = await server.ledger_size()
        status, body, headers = await post(
            http, f"{url}/api/lots/watch/registrations", {}, bidder.session
        )
        retry = assert_throttled(status, body, headers, "HOURLY_LIMIT")
        assert 3590 <= retry <= 3600
        assert "at most 4" in body["error"]["message"]
        assert await server.ledger_size() == size

    async with running_server(tmp_path, write_limits=limits, clock=clock) as server:
        status, body, headers = await post(  # a restart counted the hour back from the log
            http, f"{server.url}/api/lots/watch/registrations", {}, bidder.session
        )
        assert_throttled(status, body, headers, "HOURLY_LIMIT")
        clock.offset_us += HOUR_US
        status, body, _ = await post(
            http, f"{server.url}/api/lots/watch/registrations", {}, bidder.session
        )
        assert status == 201, body


async def test_a_person_signing_up_meets_no_default_limit(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    """The default limits: an account, two mistyped documents, then the right one, register
    for both lots, pay the deposit, press the button again: nothing is refused."""
    async with running_server(tmp_path, write_limits=WriteLimits()) as server:
        await add_lots(server)
        url = server.url
        bidder = await new_bidder(http, url)
        document = {"name": NAME, "document_type": "PRC_RESIDENT_ID"}
        for _ in range(2):
            status, _, _ = await post(
                http,
                f"{url}/api/identity",
                document | {"document": wrong_check(prc_id())},
                bidder.session,
            )
            assert status == 422
        await verify(http, url, bidder)
        for lot in ("watch", "flat"):
            status, body, _ = await post(
                http, f"{url}/api/lots/{lot}/registrations", {}, bidder.session
            )
            assert status == 201, body
        await accept_notice(http, url, bidder, "flat")
        for _ in range(3):  # a double click and a reload resend the same request
            status, body, _ = await post(
                http, f"{url}/api/lots/flat/deposit", {"idempotency_key": "d1"}, bidder.session
            )
            assert status == 202, body
        await wait_for_deposit(http, url, bidder, "flat")
