"""Court orders (`auction.court`, `POST /api/court/lots/{lot}/orders`): a court session pauses,
resumes and cancels a lot, its entries name the session that gave the order, the auctioneer can
no longer claim `by: COURT`, and the auditor's replay (step 8, as every notary runs it) checks
the attribution. A real server on SQLite over 127.0.0.1; the export is verified by
`gavel audit verify`."""

from __future__ import annotations

import contextlib
import io
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from server_kit import Server, add_lots, running_server, wait_open

from auction.accounts import Role
from auction.cli import main as gavel
from auction.court import CourtOrder, order_command
from auction.rules import Authority, OpenLot, Pause
from auction.verify import LedgerReplay, OrderError, ReplayError, check_order
from chain import parse_entry


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[Server]:
    async with running_server(tmp_path) as running:
        await add_lots(running, open_in=0.2)
        await wait_open(running, "watch", "flat")
        yield running


async def _post(url: str, body: Any, token: str) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as http:
        headers = {"Authorization": f"Bearer {token}"}
        async with http.post(url, json=body, headers=headers) as response:
            return response.status, await response.json()


async def _court(server: Server) -> tuple[str, str]:
    account, token, _ = await server.gateway.create_staff_session(Role.COURT)
    return str(account), str(token)


def _orders(server: Server) -> list[dict[str, Any]]:
    return [
        entry
        for entry in server.entry_json()
        if entry["type"] == "lot_state"
        and entry["body"]["command"]["type"] in ("Pause", "Resume", "Cancel", "Suspend")
    ]


async def test_a_court_session_pauses_resumes_and_cancels_recorded_as_the_court(
    server: Server, tmp_path: Path
) -> None:
    account, token = await _court(server)
    url = f"{server.url}/api/court/lots/watch/orders"
    status, answer = await _post(
        url, {"type": "Pause", "reason": "stay of execution", "basis": "Art 28"}, token
    )
    assert status == 200, answer
    assert answer["lot"]["status"] == "PAUSED" and isinstance(answer["entry"], int)
    status, answer = await _post(url, {"type": "Resume", "reason": "stay lifted"}, token)
    assert status == 200 and answer["lot"]["status"] == "OPEN", answer
    status, answer = await _post(
        f"{server.url}/api/court/lots/flat/orders",
        {"type": "Cancel", "reason": "debt paid", "basis": "Art 17"},
        token,
    )
    assert status == 200 and answer["lot"]["status"] == "CANCELLED", answer

    orders = _orders(server)
    assert [o["body"]["command"]["type"] for o in orders] == ["Pause", "Resume", "Cancel"]
    for entry in orders:
        assert entry["body"]["command"]["by"] == "COURT"
        assert entry["body"]["order"] == {"v": 1, "by": "court", "account": account}
    # the engine's refusal is a typed 422, logged like every command
    status, answer = await _post(url, {"type": "Resume", "reason": "again"}, token)
    assert status == 422 and answer["error"]["code"] == "ILLEGAL_STATE", answer
    assert _orders(server)[-1]["body"]["accepted"] is False

    # the log replays (as every notary replays it) and the export verifies
    replay = LedgerReplay()
    for raw in server.entries():
        entry = parse_entry(raw)
        replay.add(entry.seq, entry.type, entry.time_us, entry.body, entry.actor.kid)
    assert replay.lots["watch"].state.status.value == "OPEN"


async def test_the_auctioneer_cannot_claim_the_court_and_others_cannot_order(
    server: Server,
) -> None:
    auctioneer = await server.staff(Role.AUCTIONEER)
    _, court = await _court(server)
    before = await server.ledger_size()
    console = f"{server.url}/api/console/lots/watch/commands"
    for by, code in (("COURT", "COURT_ONLY"), ("PLATFORM", "PLATFORM_ONLY")):
        status, answer = await _post(
            console, {"type": "Pause", "reason": "x", "by": by}, auctioneer
        )
        assert status == 403 and answer["error"]["code"] == code, answer
    orders = f"{server.url}/api/court/lots/watch/orders"
    for token in (auctioneer, await server.staff(Role.COMPLIANCE)):
        status, answer = await _post(orders, {"type": "Pause", "reason": "x"}, token)
        assert status == 403 and answer["error"]["code"] == "FORBIDDEN", answer
    # the court gives orders, nothing else: not the console
    status, answer = await _post(console, {"type": "Pause", "reason": "x"}, court)
    assert status == 403 and answer["error"]["code"] == "FORBIDDEN", answer
    for body, code in (
        ({"type": "OpenLot"}, "UNKNOWN_ORDER"),
        ({"type": ["Pause"]}, "UNKNOWN_ORDER"),
        ({"type": "Pause", "reason": "x", "by": "CLERK"}, "BAD_ORDER"),
        ({"type": "Pause"}, "BAD_ORDER"),
        ({"type": "Pause", "reason": "x", "basis": 5}, "BAD_ORDER"),
    ):
        status, answer = await _post(orders, body, court)
        assert status == 422 and answer["error"]["code"] == code, (body, answer)
    status, answer = await _post(
        f"{server.url}/api/court/lots/nope/orders", {"type": "Pause", "reason": "x"}, court
    )
    assert status == 404, answer
    assert await server.ledger_size() == before  # nothing was written
    # the clerk may still pause: recorded as the clerk's, without an order
    status, answer = await _post(console, {"type": "Pause", "reason": "fault"}, auctioneer)
    assert status == 200, answer
    last = _orders(server)[-1]["body"]
    assert last["command"]["by"] == "CLERK" and "order" not in last


async def test_the_export_with_court_orders_verifies(tmp_path: Path) -> None:
    async with running_server(tmp_path) as server:
        await add_lots(server, open_in=0.2)
        await wait_open(server, "watch")
        _, court = await _court(server)
        status, answer = await _post(
            f"{server.url}/api/court/lots/watch/orders", {"type": "Pause", "reason": "x"}, court
        )
        assert status == 200, answer
        data = server.data
    out = tmp_path / "export"
    assert gavel(["ledger", "export", "--data", str(data), "--out", str(out)]) == 0
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert gavel(["audit", "verify", str(out)]) == 0, printed.getvalue()
    text = printed.getvalue()
    assert text.startswith("audit OK") and "8 replay" in text and "1 paused" in text, text


def test_the_staff_command_makes_a_court_session(tmp_path: Path) -> None:
    import asyncio

    async def make() -> None:
        async with running_server(tmp_path):
            pass

    asyncio.run(make())
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert gavel(["staff", "--data", str(tmp_path / "data"), "--role", "court"]) == 0
    assert "court session for" in printed.getvalue()


def test_check_order_accepts_only_a_court_order_attributed_to_a_session() -> None:
    pause = order_command("Pause", "stay", "Art 28")
    assert pause == Pause(reason="stay", by=Authority.COURT, basis="Art 28")
    check_order(CourtOrder("acct-1").to_json(), pause)
    bad: list[tuple[object, Any]] = [
        (CourtOrder("acct-1").to_json(), Pause(reason="x", by=Authority.CLERK)),
        (CourtOrder("acct-1").to_json(), OpenLot()),
        (CourtOrder("").to_json(), pause),
        ({"v": 1, "by": "clerk", "account": "a"}, pause),
        ({"v": 1, "by": "court", "account": "a", "extra": 1}, pause),
        ("court", pause),
    ]
    for order, command in bad:
        with pytest.raises(OrderError):
            check_order(order, command)
    with pytest.raises(OrderError):
        order_command("OpenLot", "x")


async def test_the_replay_refuses_an_order_on_a_command_not_the_courts(server: Server) -> None:
    auctioneer = await server.staff(Role.AUCTIONEER)
    status, _ = await _post(
        f"{server.url}/api/console/lots/watch/commands",
        {"type": "Cancel", "reason": "withdrawn"},
        auctioneer,
    )
    assert status == 200
    entries = [parse_entry(raw) for raw in server.entries()]
    replay = LedgerReplay()
    with pytest.raises(ReplayError, match="court order"):
        for entry in entries:
            body = dict(entry.body)
            if entry.type == "lot_state" and body["command"]["type"] == "Cancel":
                body["order"] = CourtOrder("acct-forged").to_json()  # claims a court gave it
            replay.add(entry.seq, entry.type, entry.time_us, body, entry.actor.kid)
