"""docs/protocol.md as a third party reads it: a client written from the document's examples and
statements alone, against a real server over loopback HTTP and websockets.

Nothing here imports the server's protocol code or its Python client: the requests, the
signature (canonical JSON, sorted keys, the `gavel/bid-request/v1` prefix) and the identity
number's check character are made as the document and the standards it names say. The server
is started in-process (`server_kit.running_server`); a staff token is made as the operator's
`gavel staff` would. Each test checks statements of the document and fails if the server does
something else.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import websockets
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from server_kit import Server, running_server

from auction.accounts import Role

HOUR_US = 3_600_000_000
SECOND_US = 1_000_000
#: The `welcome` and the error shapes as the document shows them (§2.1, §1).
WELCOME_KEYS = {"type", "v", "server_time_us", "account", "role", "heartbeat_s", "limits"}
ACK_KEYS = {"type", "idempotency_key", "lot", "result", "seq", "cur", "min_next", "end_us",
            "leader_is_you"}  # fmt: skip
UPDATE_KEYS = {"type", "lot", "seq", "view", "events", "gap"}


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[Server]:
    async with running_server(tmp_path) as running:
        yield running


# --- a client from the document ----------------------------------------------------------------


def resident_id(serial: int) -> str:
    """A GB 11643-1999 number: 17 digits and the ISO 7064 MOD 11-2 check character."""
    first17 = f"310104{1970 + serial % 30}0101{serial % 1000:03d}"
    total = sum(int(digit) * (2 ** (17 - i) % 11) for i, digit in enumerate(first17))
    return first17 + "10X98765432"[total % 11]


def canonical(payload: dict[str, Any]) -> bytes:
    """§2.4: `JSON.stringify` of the object with its keys sorted (strings and safe integers)."""
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


async def call(
    http: aiohttp.ClientSession,
    method: str,
    url: str,
    body: Any = None,
    token: str | None = None,
    *,
    raw: bytes | None = None,
) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    if raw is not None:
        headers["Content-Type"] = "application/json"
    async with http.request(
        method, url, json=None if raw is not None else body, data=raw, headers=headers
    ) as response:
        return response.status, await response.json()


def assert_error(status: int, body: Any, expected_status: int, code: str) -> None:
    """§1: `{"error": {"code", "message"}}`, the message a text a person reads."""
    assert status == expected_status, body
    assert set(body) == {"error"}, body
    assert body["error"]["code"] == code, body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]


class DocBidder:
    """A bidder as §1 describes one: an Ed25519 key, an account, a session."""

    serial = 0

    def __init__(self) -> None:
        self.key = Ed25519PrivateKey.generate()
        self.account = ""
        self.session = ""

    async def sign_up(self, http: aiohttp.ClientSession, url: str) -> None:
        public = base64.b64encode(self.key.public_key().public_bytes_raw()).decode()
        status, body = await call(http, "POST", f"{url}/api/accounts", {"public_key": public})
        assert status == 201, body
        assert set(body) == {"account", "session", "expires_us"}
        self.account, self.session = body["account"], body["session"]
        DocBidder.serial += 1
        document = resident_id(DocBidder.serial)
        status, body = await call(
            http, "POST", f"{url}/api/identity",
            {"name": "张三", "document_type": "PRC_RESIDENT_ID", "document": document},
            self.session,
        )  # fmt: skip
        assert status == 201, body
        assert body["verified"] is True and isinstance(body["idv_entry"], int)

    def bid(self, lot: str, amount: int, currency: str, key: str, kind: str = "bid") -> str:
        """The `bid` message of §2.4, signed over the signed request."""
        request = {"account": self.account, "amount": amount, "currency": currency,
                   "idempotency_key": key, "kind": kind, "lot": lot}  # fmt: skip
        signature = self.key.sign(b"gavel/bid-request/v1\n" + canonical(request))
        message = {"type": "bid", "lot": lot, "kind": kind, "amount": amount,
                   "currency": currency, "idempotency_key": key,
                   "sig": base64.b64encode(signature).decode()}  # fmt: skip
        return json.dumps(message, ensure_ascii=False)


async def open_ws(url: str, session: str | None = None) -> tuple[Any, dict[str, Any]]:
    """Connect and say hello (§2.1); returns the connection and the `welcome`."""
    ws = await websockets.connect(url.replace("http://", "ws://") + "/ws", max_size=2**20)
    await ws.send(json.dumps({"type": "hello", "v": 1, "session": session}))
    welcome = json.loads(await asyncio.wait_for(ws.recv(), 5))
    return ws, welcome


async def next_of(ws: Any, kind: str, timeout: float = 5.0) -> dict[str, Any]:
    """The next message of `type` `kind` (lot updates may come in between)."""
    deadline = time.monotonic() + timeout
    while True:
        message = json.loads(await asyncio.wait_for(ws.recv(), deadline - time.monotonic()))
        if message["type"] == kind:
            return message  # type: ignore[no-any-return]


async def close_code(ws: Any, timeout: float = 5.0) -> int:
    try:
        while True:
            await asyncio.wait_for(ws.recv(), timeout)
    except websockets.ConnectionClosed as closed:
        assert closed.rcvd is not None, "closed without a close frame"
        return closed.rcvd.code


async def server_now_us(http: aiohttp.ClientSession, url: str) -> int:
    status, body = await call(http, "GET", f"{url}/api/lots")
    assert status == 200
    return int(body["now_us"])


async def create_lot(
    http: aiohttp.ClientSession, url: str, token: str, preset: str, lot: str, **parameters: Any
) -> tuple[int, Any]:
    body = {"preset": preset, "lot": lot, "title": f"Lot {lot}", "parameters": parameters}
    return await call(http, "POST", f"{url}/api/console/lots", body, token)


async def command(
    http: aiohttp.ClientSession, url: str, token: str, lot: str, **fields: Any
) -> tuple[int, Any]:
    return await call(http, "POST", f"{url}/api/console/lots/{lot}/commands", fields, token)


# --- §1: error shapes --------------------------------------------------------------------------


async def test_errors_have_one_shape(server: Server, http: aiohttp.ClientSession) -> None:
    url = server.url
    status, body = await call(http, "POST", f"{url}/api/accounts", {"public_key": "AAAA"})
    assert_error(status, body, 422, "MALFORMED")  # not base64 of 32 bytes
    status, body = await call(http, "POST", f"{url}/api/accounts", raw=b"[1, 2]")
    assert_error(status, body, 400, "MALFORMED")  # not a JSON object
    status, body = await call(http, "GET", f"{url}/api/lots/no-such-lot")
    assert_error(status, body, 404, "UNKNOWN_LOT")
    status, body = await call(http, "GET", f"{url}/api/me")
    assert_error(status, body, 401, "UNAUTHENTICATED")
    bidder = DocBidder()
    await bidder.sign_up(http, url)
    status, body = await create_lot(http, url, bidder.session, "ENGLISH_TIMED", "x")
    assert_error(status, body, 403, "FORBIDDEN")  # the wrong role


# --- §1 "Console": units, the minimum duration, lots that open by themselves -------------------


async def test_console_times_are_microseconds_and_lots_open_by_themselves(
    server: Server, http: aiohttp.ClientSession
) -> None:
    url = server.url
    token = await server.staff(Role.AUCTIONEER)
    now = await server_now_us(http, url)

    # JUDICIAL_CN lasts at least 24 h unless `min_duration` says otherwise.
    judicial = {"start_price": 1_000_000, "step": 10_000, "start_at": now + HOUR_US}
    status, body = await create_lot(
        http, url, token, "JUDICIAL_CN", "j-short", **judicial,
        end_at=now + HOUR_US + 24 * HOUR_US - 1,
    )  # fmt: skip
    assert_error(status, body, 422, "BAD_PARAMETERS")
    status, body = await create_lot(
        http, url, token, "JUDICIAL_CN", "j-day", **judicial, end_at=now + 25 * HOUR_US
    )
    assert status == 201, body
    assert body["lot"]["start_at"] == now + HOUR_US and body["lot"]["end"] == now + 25 * HOUR_US
    status, body = await create_lot(
        http, url, token, "JUDICIAL_CN", "j-min", **judicial,
        end_at=now + 2 * HOUR_US, min_duration=0,
    )  # fmt: skip
    assert status == 201, body

    # A timed lot opens at `start_at` on its own; an early OpenLot is 422 NOT_DUE.
    start = now + 2 * SECOND_US
    status, body = await create_lot(
        http, url, token, "ENGLISH_TIMED", "soon",
        start_price=10_000, start_at=start, end_at=start + HOUR_US,
    )  # fmt: skip
    assert status == 201 and body["lot"]["status"] == "SCHEDULED", body
    ws, _ = await open_ws(url)
    await ws.send(json.dumps({"type": "subscribe", "lot": "soon", "since_seq": 0}))
    snapshot = await next_of(ws, "snapshot")
    assert snapshot["view"]["status"] == "SCHEDULED"
    status, body = await command(http, url, token, "soon", type="OpenLot")
    assert_error(status, body, 422, "NOT_DUE")
    status, body = await command(http, url, token, "soon", type="CloseLot")
    assert_error(status, body, 422, "ILLEGAL_STATE")  # not open yet
    update = await next_of(ws, "update", timeout=10)
    opened = [event for event in update["events"] if event["type"] == "LotOpened"]
    assert opened and update["view"]["status"] == "OPEN", update
    assert start <= opened[0]["t"] < start + 5 * SECOND_US  # `t`: µs, at `start_at` or after
    await ws.close()
    status, body = await command(http, url, token, "soon", type="OpenLot")
    assert_error(status, body, 422, "ILLEGAL_STATE")
    status, body = await command(http, url, token, "soon", type="CloseLot")
    assert_error(status, body, 422, "NOT_DUE")  # open, before its end

    # A live lot has no timer: OpenLot does not apply to it.
    status, body = await create_lot(
        http, url, token, "LIVE_AUCTIONEER", "ring", start_price=1_000, start_at=now
    )
    assert status == 201, body
    status, body = await command(http, url, token, "ring", type="OpenLot")
    assert_error(status, body, 422, "NOT_PERMITTED")


# --- §2.1, §2.2, §2.5, §2.6: opening, clock sync, frame limits ---------------------------------


async def test_welcome_clock_sync_and_client_frame_limit(
    server: Server, http: aiohttp.ClientSession
) -> None:
    url = server.url
    ws, welcome = await open_ws(url)
    assert set(welcome) == WELCOME_KEYS, welcome
    assert welcome["type"] == "welcome" and welcome["v"] == 1
    assert welcome["account"] is None and welcome["role"] is None  # a watcher
    assert welcome["limits"]["frame_bytes"] == 4096
    # `server_time_us` is microseconds: within a second of this machine's clock in µs.
    assert abs(welcome["server_time_us"] - time.time() * 1e6) < 1e6

    # §2.2 with everything in ms: the offset of the same clock is about 0.
    best: tuple[float, float] | None = None
    for _ in range(5):
        t0 = time.time() * 1000
        await ws.send(json.dumps({"type": "time", "t0": t0}))
        reply = await next_of(ws, "time")
        t1 = time.time() * 1000
        assert reply["t0"] == t0  # echoed as sent, fraction and all
        rtt = t1 - t0
        offset = reply["server_time_us"] / 1000 - (t0 + t1) / 2
        if best is None or rtt < best[0]:
            best = (rtt, offset)
    assert best is not None
    assert abs(best[1]) <= best[0] / 2 + 2, best  # ms; a unit slip would be off by 10^3

    await ws.send(json.dumps({"type": "ping"}))
    assert (await next_of(ws, "pong")) == {"type": "pong"}
    # A client frame of exactly 4096 bytes is taken; the error shape of §2.6.
    message = {"type": "subscribe", "lot": "nothing-here", "since_seq": 0, "pad": ""}
    message["pad"] = "x" * (4096 - len(json.dumps(message)))
    assert len(json.dumps(message).encode()) == 4096
    await ws.send(json.dumps(message))
    error = await next_of(ws, "error")
    assert set(error) == {"type", "code", "message"} and error["code"] == "UNKNOWN_LOT"
    # One byte more closes with 1009.
    message["pad"] += "x"
    await ws.send(json.dumps(message))
    assert await close_code(ws) == 1009

    # A `t0` that is not a number of milliseconds is a protocol violation.
    ws, _ = await open_ws(url)
    await ws.send(json.dumps({"type": "time", "t0": "now"}))
    assert await close_code(ws) == 4000


# --- §2.3: updates are merged, carry `t`, at most 256 events -----------------------------------


async def test_updates_are_merged_for_every_watcher(
    server: Server, http: aiohttp.ClientSession
) -> None:
    url = server.url
    token = await server.staff(Role.AUCTIONEER)
    now = await server_now_us(http, url)
    status, body = await create_lot(
        http, url, token, "LIVE_AUCTIONEER", "ring", start_price=1_000, start_at=now
    )
    assert status == 201, body
    status, body = await command(http, url, token, "ring", type="OpenRing", ask=1_000)
    assert status == 200, body
    ws, _ = await open_ws(url)
    await ws.send(json.dumps({"type": "subscribe", "lot": "ring", "since_seq": 0}))
    snapshot = await next_of(ws, "snapshot")
    first_seq = snapshot["seq"]

    frames: list[str] = []

    async def read_until(seq: int) -> None:
        while True:
            frame = await asyncio.wait_for(ws.recv(), 30)
            frames.append(frame)
            message = json.loads(frame)
            if message["type"] == "update" and message["seq"] >= seq:
                return

    commands = 400
    before = await server_now_us(http, url)
    answers = await asyncio.gather(
        *(command(http, url, token, "ring", type="FloorBid", paddle=f"p{n}")
          for n in range(commands))
    )  # fmt: skip
    after = await server_now_us(http, url)
    assert all(status == 200 for status, _ in answers), [a for a in answers if a[0] != 200][:3]
    last_seq = max(answer["lot"]["seq"] for _, answer in answers)
    await read_until(last_seq)
    await ws.close()

    updates = [json.loads(frame) for frame in frames]
    assert all(u["type"] == "update" and set(u) == UPDATE_KEYS for u in updates), updates[0]
    # Every watcher gets merged updates: far fewer messages than commands.
    assert len(updates) < commands / 4, len(updates)
    seen: list[int] = []
    previous = first_seq
    for update in updates:
        events = update["events"]
        assert update["seq"] > previous and update["view"]["seq"] == update["seq"]
        assert 0 < len(events) <= 256
        assert events[-1]["seq"] == update["seq"]
        for event in events:
            assert {"type", "seq", "t"} <= set(event), event
            assert before <= event["t"] <= after  # server time in µs
            assert "bidder" not in event and "leader" not in event
        seqs = [event["seq"] for event in events]
        assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
        if update["gap"]:
            assert len(events) == 256  # the oldest were dropped, the newest 256 kept
        else:
            assert seqs[0] == previous + 1  # nothing missing: no private events on this lot
            assert seqs == list(range(seqs[0], seqs[-1] + 1))
        seen.extend(seqs)
        previous = update["seq"]
    accepted = sum(1 for u in updates for e in u["events"] if e["type"] == "BidAccepted")
    gaps = sum(u["gap"] for u in updates)
    assert gaps or accepted == commands
    # Server frames are not held to the client's 4096 bytes.
    largest = max(len(frame.encode()) for frame in frames)
    most = max(len(update["events"]) for update in updates)
    print(f"{commands} floor bids: {len(updates)} updates, {gaps} with a gap, "
          f"largest frame {largest} bytes, at most {most} events")  # fmt: skip
    assert largest > 4096


# --- §2.4 and §1 deposit: bids, acks, idempotency-key limits -----------------------------------


async def test_bids_acks_and_idempotency_key_limits(
    server: Server, http: aiohttp.ClientSession
) -> None:
    url = server.url
    token = await server.staff(Role.AUCTIONEER)
    now = await server_now_us(http, url)
    start = now + SECOND_US // 2
    for lot, deposit in (("watch", 0), ("clock", 50_000)):
        status, body = await create_lot(
            http, url, token, "ENGLISH_TIMED", lot, currency="CNY",
            start_price=10_000, start_at=start, end_at=start + HOUR_US, deposit=deposit,
        )  # fmt: skip
        assert status == 201, body
    bidder = DocBidder()
    await bidder.sign_up(http, url)
    for lot in ("watch", "clock"):
        status, body = await call(http, "POST", f"{url}/api/lots/{lot}/registrations", {},
                                  bidder.session)  # fmt: skip
        assert status == 201, body

    # Deposit keys: 1 to 128 printable characters, else 422 MALFORMED.
    status, body = await call(http, "POST", f"{url}/api/lots/clock/notice", {"accept": True},
                              bidder.session)  # fmt: skip
    assert status == 201, body
    for bad in ("", "k" * 129, "dep\t1", "dep\u200b1"):
        status, body = await call(http, "POST", f"{url}/api/lots/clock/deposit",
                                  {"idempotency_key": bad}, bidder.session)  # fmt: skip
        assert_error(status, body, 422, "MALFORMED")
    status, body = await call(http, "POST", f"{url}/api/lots/clock/deposit",
                              {"idempotency_key": "d" * 127 + "价"}, bidder.session)  # fmt: skip
    assert status == 202 and body["state"] == "PENDING", body

    deadline = time.monotonic() + 5
    while (await call(http, "GET", f"{url}/api/lots/watch"))[1]["lot"]["status"] != "OPEN":
        assert time.monotonic() < deadline, "the lot did not open by itself"
        await asyncio.sleep(0.05)

    ws, welcome = await open_ws(url, bidder.session)
    assert welcome["account"] == bidder.account and welcome["role"] == "bidder"
    key = "价 " + "k" * 126  # 128 printable characters, a space and a non-ASCII one among them
    await ws.send(bidder.bid("watch", 10_000, "CNY", key))
    ack = await next_of(ws, "ack")
    assert set(ack) == ACK_KEYS | {"entry"}, ack
    assert ack["result"] == "accepted" and ack["idempotency_key"] == key
    assert ack["cur"] == 10_000 and ack["leader_is_you"] is True
    assert ack["min_next"] > 10_000 and ack["end_us"] > now  # µs
    # The same request again: the same ack, nothing new.
    await ws.send(bidder.bid("watch", 10_000, "CNY", key))
    assert await next_of(ws, "ack") == ack
    # The same key, other terms: IDEMPOTENCY_CONFLICT, before the engine (no entry).
    await ws.send(bidder.bid("watch", 20_000, "CNY", key))
    conflict = await next_of(ws, "ack")
    assert conflict["result"] == "rejected" and conflict["reason"] == "IDEMPOTENCY_CONFLICT"
    assert "entry" not in conflict and conflict["message"]
    # Below the next minimum: the engine's reason, a sentence, an entry.
    await ws.send(bidder.bid("watch", 10_001, "CNY", "low-1"))
    low = await next_of(ws, "ack")
    assert set(low) == ACK_KEYS | {"entry", "reason", "message"}, low
    assert low["result"] == "rejected" and low["reason"] in ("BELOW_MIN", "SELF_OUTBID")
    assert isinstance(low["entry"], int) and low["entry"] > ack["entry"]
    # A lot that does not exist: the lot's fields null, leader_is_you false.
    await ws.send(bidder.bid("no-such-lot", 10_000, "CNY", "nowhere"))
    nowhere = await next_of(ws, "ack")
    assert nowhere["result"] == "rejected" and nowhere["reason"] == "UNKNOWN_LOT", nowhere
    assert [nowhere[k] for k in ("seq", "cur", "min_next", "end_us")] == [None] * 4
    assert nowhere["leader_is_you"] is False
    await ws.close()

    # Keys (and lots) outside 1..128 printable characters close the connection with 4000.
    for bad in ("", "k" * 129, "bell\u0007", "zero\u200bwidth", "tab\tkey"):
        ws, _ = await open_ws(url, bidder.session)
        await ws.send(bidder.bid("watch", 30_000, "CNY", bad))
        assert await close_code(ws) == 4000, repr(bad)
    ws, _ = await open_ws(url, bidder.session)
    await ws.send(bidder.bid("w" * 129, 30_000, "CNY", "fine"))
    assert await close_code(ws) == 4000

    # §2.6 4003: a bid without a bidder's session; an unverified bidder is answered instead.
    ws, _ = await open_ws(url)
    await ws.send(bidder.bid("watch", 30_000, "CNY", "from-a-watcher"))
    assert await close_code(ws) == 4003
    stranger = DocBidder()  # an account without an identity check
    public = base64.b64encode(stranger.key.public_key().public_bytes_raw())
    status, body = await call(http, "POST", f"{url}/api/accounts", {"public_key": public.decode()})
    assert status == 201, body
    ws, _ = await open_ws(url, body["session"])
    stranger.account = body["account"]
    await ws.send(stranger.bid("watch", 30_000, "CNY", "unverified"))
    refused = await next_of(ws, "ack")
    assert refused["result"] == "rejected" and refused["reason"] == "NOT_VERIFIED", refused
    assert "entry" not in refused
    await ws.close()


# --- §2.3: replay after reconnecting -----------------------------------------------------------


async def test_since_seq_replays_then_snapshots(
    server: Server, http: aiohttp.ClientSession
) -> None:
    url = server.url
    token = await server.staff(Role.AUCTIONEER)
    now = await server_now_us(http, url)
    status, body = await create_lot(
        http, url, token, "LIVE_AUCTIONEER", "ring", start_price=1_000, start_at=now
    )
    assert status == 201, body
    status, body = await command(http, url, token, "ring", type="OpenRing", ask=1_000)
    assert status == 200, body
    applied = body["lot"]["seq"]
    for n in range(3):
        status, body = await command(http, url, token, "ring", type="FloorBid", paddle=f"p{n}")
        assert status == 200, body
    latest = body["lot"]["seq"]

    ws, _ = await open_ws(url)
    await ws.send(json.dumps({"type": "subscribe", "lot": "ring", "since_seq": applied}))
    replayed: list[dict[str, Any]] = []
    while True:
        message = json.loads(await asyncio.wait_for(ws.recv(), 5))
        if message["type"] == "snapshot":
            break
        assert message["type"] == "update" and message["replayed"] is True, message
        replayed.append(message)
    assert message["replayed"] is True and message["seq"] == latest
    assert set(message) == {"type", "lot", "seq", "view", "replayed"}
    assert [u["seq"] for u in replayed] == sorted(u["seq"] for u in replayed)
    assert len(replayed) == 3 and replayed[0]["events"][0]["seq"] == applied + 1
    assert replayed[-1]["seq"] == latest
    await ws.close()

    for since in (0, latest + 100):  # nothing to replay from: a fresh snapshot only
        ws, _ = await open_ws(url)
        await ws.send(json.dumps({"type": "subscribe", "lot": "ring", "since_seq": since}))
        first = json.loads(await asyncio.wait_for(ws.recv(), 5))
        assert first["type"] == "snapshot" and first["replayed"] is False, first
        assert first["seq"] == latest
        await ws.close()
