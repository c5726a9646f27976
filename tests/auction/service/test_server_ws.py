"""The websocket `/ws` (docs/protocol.md §2) over real sockets on 127.0.0.1."""

from __future__ import annotations

import asyncio
import base64
import json
import socket
import time
from collections.abc import AsyncIterator
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
from auction.client import BidderClient, ws_url
from auction.protocol import signed_bytes
from auction.rules import SECOND
from auction.web.app import HUB


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[Server]:
    async with running_server(tmp_path) as running:
        await add_lots(running, open_in=0.2)
        yield running


async def raw(server: Server) -> websockets.ClientConnection:
    return await websockets.connect(ws_url(server.url), max_size=2**20)


async def hello(connection: websockets.ClientConnection, session: str | None = None) -> Any:
    await connection.send(json.dumps({"type": "hello", "v": 1, "session": session}))
    return json.loads(await connection.recv())


async def closed_with(connection: websockets.ClientConnection, timeout: float = 5.0) -> int:
    try:
        while True:
            await asyncio.wait_for(connection.recv(), timeout)
    except websockets.ConnectionClosed as closed:
        assert closed.rcvd is not None, "the server closed without a close frame"
        return closed.rcvd.code


async def still_up(server: Server, http: aiohttp.ClientSession) -> None:
    async with http.get(f"{server.url}/healthz") as response:
        assert response.status == 200


def client_for(server: Server, bidder: Bidder) -> Any:
    return BidderClient.connect(
        server.url, account=bidder.account, key=bidder.key, session=bidder.session
    )


async def test_hello_time_ping_and_a_watcher(server: Server) -> None:
    async with await BidderClient.connect(server.url) as watcher:
        assert watcher.welcome["v"] == 1 and watcher.welcome["account"] is None
        assert watcher.welcome["limits"] == {"frame_bytes": 4096, "bids_per_second": 10}
        before = time.time() * 1e6
        offset = await watcher.sync_clock()
        assert abs(offset) < 1000  # the same machine's clock, in ms
        await watcher.subscribe("watch")
        snapshot = await watcher.next_update()
        assert snapshot["type"] == "snapshot" and snapshot["lot"] == "watch"
        assert snapshot["replayed"] is False and snapshot["view"]["lot_id"] == "watch"
        assert snapshot["seq"] == snapshot["view"]["seq"]
        await watcher.subscribe("nope")
        error = await watcher.next_update()
        assert error == {
            "type": "error",
            "code": "UNKNOWN_LOT",
            "message": "there is no lot 'nope'",
        }
        assert time.time() * 1e6 >= before


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ("{not json", 4000),
        ("[1, 2]", 4000),
        (json.dumps({"type": "dance"}), 4000),
        (json.dumps({"type": "subscribe", "lot": 7}), 4000),
        ("x" * 5000, 1009),
    ],
)
async def test_protocol_violations_close_the_connection(
    server: Server, http: aiohttp.ClientSession, frame: str, code: int
) -> None:
    connection = await raw(server)
    welcome = await hello(connection)
    assert welcome["type"] == "welcome"
    await wait_open(server, "watch", "flat")  # the lots' own opening entries come first
    size = await server.ledger_size()
    await connection.send(frame)
    assert await closed_with(connection) == code
    assert await server.ledger_size() == size
    await still_up(server, http)


async def test_opening_errors(server: Server, http: aiohttp.ClientSession) -> None:
    connection = await raw(server)
    await connection.send(json.dumps({"type": "hello", "v": 2, "session": None}))
    assert await closed_with(connection) == 4001
    connection = await raw(server)
    await connection.send(json.dumps({"type": "hello", "v": 1, "session": "forged"}))
    assert await closed_with(connection) == 4003
    connection = await raw(server)
    await connection.send(json.dumps({"type": "ping"}))
    assert await closed_with(connection) == 4000
    await still_up(server, http)


async def test_a_watcher_cannot_bid(server: Server, http: aiohttp.ClientSession) -> None:
    connection = await raw(server)
    await hello(connection)
    bid = {
        "type": "bid",
        "lot": "watch",
        "kind": "bid",
        "amount": 10_000,
        "currency": "USD",
        "idempotency_key": "k1",
        "sig": base64.b64encode(b"\0" * 64).decode(),
    }
    await connection.send(json.dumps(bid))
    assert await closed_with(connection) == 4003
    auctioneer = await server.staff(Role.AUCTIONEER)
    connection = await raw(server)
    assert (await hello(connection, auctioneer))["type"] == "welcome"
    await connection.send(json.dumps(bid))
    assert await closed_with(connection) == 4003


async def test_bids_are_acknowledged_once_durable(
    server: Server, http: aiohttp.ClientSession
) -> None:
    bidder = await ready_bidder(http, server.url, ("watch", "flat"))
    await wait_open(server, "watch", "flat")
    async with await client_for(server, bidder) as client:
        size = await server.ledger_size()
        ack = await client.bid("watch", 10_000, "USD", key="b-1")
        assert ack.accepted and ack.cur == 10_000 and ack.leader_is_you
        assert ack.raw["lot"] == "watch" and ack.min_next > 10_000
        # the ack came after the entry was stored: read it from the database now
        bids = [
            entry
            for entry in server.entry_json()
            if entry["type"] == "bid" and entry["body"].get("request")
        ]
        (entry,) = bids
        assert ack.entry == entry["seq"] == size  # the ack names the bid's own entry
        request = entry["body"]["request"]
        assert request["payload"] == {
            "account": bidder.account,
            "amount": 10_000,
            "currency": "USD",
            "idempotency_key": "b-1",
            "kind": "bid",
            "lot": "watch",
        }
        assert await server.ledger_size() == size + 1

        # the same signed request again: the original ack, nothing written
        again = await client.bid("watch", 10_000, "USD", key="b-1")
        assert again.raw == ack.raw
        assert await server.ledger_size() == size + 1

        # the same key with other terms
        conflict = await client.bid("watch", 20_000, "USD", key="b-1")
        assert conflict.reason == "IDEMPOTENCY_CONFLICT"
        assert await server.ledger_size() == size + 1

        # a rejected bid reaches the engine and is logged (one entry)
        low = await client.bid("flat", 1, "CNY", key="b-2")
        assert not low.accepted and low.reason in {"BELOW_MIN", "OFF_GRID"}
        assert await server.ledger_size() == size + 2
        assert low.entry == size + 1
        assert server.entry_json()[size + 1]["body"]["command"]["idempotency_key"] == "b-2"
        assert "entry" not in conflict.raw  # refused before the engine: nothing written

        # a proxy maximum where the lot allows it
        maximum = await client.bid("watch", 50_000, "USD", kind="max", key="b-3")
        assert maximum.accepted, maximum.raw
        assert await server.ledger_size() == size + 3

        async with http.get(f"{server.url}/api/lots/watch/bids") as response:
            history = await response.json()
        assert [b["amount"] for b in history["bids"]][:1] == [10_000]
        assert all(set(b) == {"seq", "code", "amount", "bid_type", "t_us"} for b in history["bids"])


async def test_bad_and_replayed_signatures(server: Server, http: aiohttp.ClientSession) -> None:
    bidder = await ready_bidder(http, server.url, ("watch",))
    other = await ready_bidder(http, server.url, ("watch",))
    await wait_open(server, "watch")
    async with await client_for(server, bidder) as client:
        size = await server.ledger_size()
        message = client.signed_bid("watch", 10_000, "USD", key="s-1")
        message["sig"] = base64.b64encode(b"\1" * 64).decode()
        ack = await client.send_bid(message)
        assert ack.reason == "BAD_SIGNATURE" and ack.raw["message"]
        # a genuine signature replayed on other terms
        signed = client.signed_bid("watch", 10_000, "USD", key="s-2")
        replay = signed | {"amount": 20_000}
        assert (await client.send_bid(replay)).reason == "BAD_SIGNATURE"
        # someone else's signature over the same terms
        payload = {
            "account": bidder.account,
            "amount": 10_000,
            "currency": "USD",
            "idempotency_key": "s-3",
            "kind": "bid",
            "lot": "watch",
        }
        forged: dict[str, Any] = {k: v for k, v in payload.items() if k != "account"}
        forged["type"] = "bid"
        forged["sig"] = base64.b64encode(other.key.sign(signed_bytes(payload))).decode()
        assert (await client.send_bid(forged)).reason == "BAD_SIGNATURE"
        assert await server.ledger_size() == size
    await still_up(server, http)


async def test_preconditions(server: Server, http: aiohttp.ClientSession) -> None:
    url = server.url
    await wait_open(server, "watch", "flat")
    unverified = await new_bidder(http, url)
    async with await client_for(server, unverified) as client:
        size = await server.ledger_size()
        ack = await client.bid("watch", 10_000, "USD")
        assert ack.reason == "NOT_VERIFIED" and ack.result == "rejected"
        assert await server.ledger_size() == size

    no_deposit = await new_bidder(http, url)
    from server_kit import verify

    await verify(http, url, no_deposit)
    async with http.post(
        f"{url}/api/lots/flat/registrations", json={}, headers=no_deposit.auth
    ) as response:
        assert response.status == 201
    async with await client_for(server, no_deposit) as client:
        size = await server.ledger_size()
        ack = await client.bid("flat", 1_000_000, "CNY")
        assert ack.reason == "NO_DEPOSIT"
        assert await server.ledger_size() == size + 1  # only the rejection entry
        ack = await client.bid("watch", 10_000, "USD")
        assert ack.reason == "NOT_REGISTERED"
        assert await server.ledger_size() == size + 2

    bidder = await ready_bidder(http, url, ("watch", "flat"))
    auctioneer = await server.staff(Role.AUCTIONEER)
    async with http.post(
        f"{url}/api/console/lots/watch/commands",
        json={"type": "Pause", "reason": "technical fault"},
        headers={"Authorization": f"Bearer {auctioneer}"},
    ) as response:
        assert response.status == 200, await response.text()
    async with http.post(
        f"{url}/api/console/lots/flat/commands",
        json={"type": "Cancel", "reason": "withdrawn"},
        headers={"Authorization": f"Bearer {auctioneer}"},
    ) as response:
        assert response.status == 200, await response.text()
    async with await client_for(server, bidder) as client:
        size = await server.ledger_size()
        paused = await client.bid("watch", 10_000, "USD")
        assert not paused.accepted and paused.reason in {"SUSPENDED", "NOT_OPEN"}
        closed = await client.bid("flat", 1_000_000, "CNY")
        assert not closed.accepted and closed.reason in {"NOT_OPEN", "LATE"}
        assert await server.ledger_size() == size + 2
    await still_up(server, http)


async def test_rate_limit(tmp_path: Path, http: aiohttp.ClientSession) -> None:
    # 2 bids a second (burst 2): of 15 sent at once, at most 2 plus what refills while they
    # are being sent pass, even on a loaded machine
    async with running_server(tmp_path, bids_per_second=2) as server:
        await add_lots(server, open_in=0.2)
        bidder = await ready_bidder(http, server.url, ("flat",))
        await wait_open(server, "flat")
        async with await client_for(server, bidder) as client:
            assert client.welcome["limits"]["bids_per_second"] == 2
            acks = await asyncio.gather(
                *(client.bid("flat", 1, "CNY", key=f"r-{n}") for n in range(15))
            )
    reasons = [ack.reason for ack in acks]
    assert reasons.count("RATE_LIMITED") >= 8, reasons
    assert len({ack.idempotency_key for ack in acks}) == 15  # one ack per bid


async def test_a_second_connection_replaces_the_first(
    server: Server, http: aiohttp.ClientSession
) -> None:
    bidder = await ready_bidder(http, server.url, ("watch",))
    await wait_open(server, "watch")
    first = await raw(server)
    assert (await hello(first, bidder.session))["type"] == "welcome"
    async with await client_for(server, bidder) as second:
        assert await closed_with(first) == 4009
        ack = await second.bid("watch", 10_000, "USD")
        assert ack.accepted
    await still_up(server, http)


async def test_since_seq_replay_after_reconnect(
    server: Server, http: aiohttp.ClientSession
) -> None:
    bidder = await ready_bidder(http, server.url, ("watch",))
    rival = await ready_bidder(http, server.url, ("watch",))
    await wait_open(server, "watch")
    async with await BidderClient.connect(server.url) as watcher:
        await watcher.subscribe("watch")
        snapshot = await watcher.next_update()
        last_seq = snapshot["seq"]
    async with await client_for(server, bidder) as one, await client_for(server, rival) as two:
        assert (await one.bid("watch", 10_000, "USD")).accepted
        ack = await two.bid("watch", 11_000, "USD")
        assert ack.accepted, ack.raw
    async with await BidderClient.connect(server.url) as watcher:
        await watcher.subscribe("watch", since_seq=last_seq)
        replayed = []
        while True:
            message = await watcher.next_update()
            if message["type"] == "snapshot":
                break
            replayed.append(message)
        assert message["replayed"] is True and message["seq"] == ack.seq
        amounts = [
            event["amount"]
            for update in replayed
            for event in update["events"]
            if event["type"] == "BidAccepted"
        ]
        assert amounts == [10_000, 11_000]
        assert all(update["seq"] > last_seq and update["replayed"] for update in replayed)
        assert all("bidder" not in event for u in replayed for event in u["events"])
        # a seq the server no longer has (or never had): a fresh snapshot
        await watcher.subscribe("watch", since_seq=ack.seq + 1000)
        fresh = await watcher.next_update()
        assert fresh["type"] == "snapshot" and fresh["replayed"] is False


async def test_live_updates_reach_watchers(server: Server, http: aiohttp.ClientSession) -> None:
    bidder = await ready_bidder(http, server.url, ("watch",))
    await wait_open(server, "watch")
    async with await BidderClient.connect(server.url) as watcher:
        await watcher.subscribe("watch")
        await watcher.next_update()
        async with await client_for(server, bidder) as client:
            ack = await client.bid("watch", 10_000, "USD")
        update = await watcher.next_update()
        while update["seq"] < ack.seq:
            update = await watcher.next_update()
        assert update["type"] == "update" and update["view"]["price"] == 10_000


async def test_updates_are_merged_per_tick_and_start_after_the_snapshot(
    server: Server, http: aiohttp.ClientSession
) -> None:
    bidders = [await ready_bidder(http, server.url, ("watch",)) for _ in range(2)]
    await wait_open(server, "watch")
    async with (
        await client_for(server, bidders[0]) as one,
        await client_for(server, bidders[1]) as two,
        await BidderClient.connect(server.url) as early,
    ):
        await early.subscribe("watch")
        assert (await early.next_update())["type"] == "snapshot"
        acks = []
        for n in range(12):  # alternate bidders: every bid is accepted
            client = (one, two)[n % 2]
            acks.append(await client.bid("watch", 10_000 + 1_000 * n, "USD"))
            if n == 5:  # a second watcher subscribes in the middle of the bidding
                late = await BidderClient.connect(server.url)
                await late.subscribe("watch")
        assert all(ack.accepted for ack in acks)
        final = acks[-1].seq
        for watcher, name in ((early, "early"), (late, "late")):
            messages = []
            while not messages or messages[-1]["seq"] < final:
                messages.append(await watcher.next_update())
            snapshot_seq = messages[0]["seq"] if messages[0]["type"] == "snapshot" else 0
            events = [e for m in messages if m["type"] == "update" for e in m["events"]]
            seqs = [e["seq"] for e in events]
            assert seqs == sorted(set(seqs)), (name, seqs)  # none twice, in order
            assert all(seq > snapshot_seq for seq in seqs), name  # nothing the snapshot had
            amounts = [e["amount"] for e in events if e["type"] == "BidAccepted"]
            assert amounts[-1] == 21_000 and messages[-1]["view"]["price"] == 21_000, name
            if name == "early":  # every bid's event arrived
                assert amounts == [10_000 + 1_000 * n for n in range(12)]
        await late.close()


async def test_a_watcher_that_never_reads_does_not_delay_acks(
    server: Server, http: aiohttp.ClientSession
) -> None:
    bidder = await ready_bidder(http, server.url, ("watch",))
    rival = await ready_bidder(http, server.url, ("watch",))
    await wait_open(server, "watch")
    # A watcher on a raw socket with a tiny receive window that never reads: once the
    # server's buffers for it are full, its writer task is stuck in a send.
    port = int(server.url.rsplit(":", 1)[1])
    stuck = await asyncio.to_thread(_silent_watcher, port)  # (blocking I/O off the loop)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 5
    watchers: list[Any] = []
    while not watchers and loop.time() < deadline:
        await asyncio.sleep(0.02)
        watchers = [c for c in server.app[HUB]._connections if c.account is None]
    (connection,) = watchers
    transport = connection.ws._req.transport if connection.ws._req is not None else None
    assert transport is not None
    # the server's kernel send buffer would otherwise grow to megabytes on loopback
    transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    subscribe = _masked({"type": "subscribe", "lot": "watch"})
    for _ in range(400):  # each answered with a full snapshot (direct messages)
        await asyncio.to_thread(stuck.sendall, subscribe)
    deadline = loop.time() + 10
    while not connection._direct and loop.time() < deadline:
        await asyncio.sleep(0.05)
    assert connection._direct, "the watcher's writer should be blocked by now"
    async with await client_for(server, bidder) as one, await client_for(server, rival) as two:
        price, slowest = 10_000, 0.0
        for n in range(30):
            client = (one, two)[n % 2]
            started = time.perf_counter()
            ack = await client.bid("watch", price, "USD", key=f"w-{n}")
            slowest = max(slowest, time.perf_counter() - started)
            assert ack.accepted, ack.raw
            assert ack.min_next is not None
            price = ack.min_next
            await asyncio.sleep(0.06)
        assert slowest < 1.0
    # the stuck watcher still holds unsent messages, and at most one conflated update per lot
    assert connection._direct and len(connection._pending) <= 1
    await still_up(server, http)
    stuck.close()


def _silent_watcher(port: int) -> socket.socket:
    """Open `/ws` on a raw socket, say hello, and return it; nothing after the handshake's
    answer is ever read from it."""
    stuck = socket.socket()
    stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2048)
    stuck.settimeout(10)
    stuck.connect(("127.0.0.1", port))
    stuck.sendall(
        b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    head = b""
    while b"\r\n\r\n" not in head:
        head += stuck.recv(1)  # the 101 answer, byte by byte
    assert head.startswith(b"HTTP/1.1 101"), head
    stuck.sendall(_masked({"type": "hello", "v": 1, "session": None}))
    return stuck


def _masked(message: dict[str, Any]) -> bytes:
    """A client text frame (RFC 6455 5.2, masked, payload < 126 bytes)."""
    payload = json.dumps(message).encode()
    assert len(payload) < 126
    mask = b"\x01\x02\x03\x04"
    body = bytes(byte ^ mask[index % 4] for index, byte in enumerate(payload))
    return bytes([0x81, 0x80 | len(payload)]) + mask + body


async def test_too_many_connections_from_one_address(
    server: Server, http: aiohttp.ClientSession
) -> None:
    connections = [await raw(server) for _ in range(20)]
    for connection in connections:
        assert (await hello(connection))["type"] == "welcome"
    extra = await raw(server)
    assert await closed_with(extra) == 4008
    for connection in connections:
        await connection.close()
    await still_up(server, http)


async def test_an_expired_attestation_cannot_bid(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    clock = MovableClock()
    async with running_server(tmp_path, clock=clock, attestation_validity_us=60 * SECOND) as srv:
        await add_lots(srv, open_in=0.2)
        bidder = await ready_bidder(http, srv.url, ("watch",))
        await wait_open(srv, "watch")
        async with await client_for(srv, bidder) as client:
            assert (await client.bid("watch", 10_000, "USD", key="e-1")).accepted
            clock.offset_us += 61 * SECOND
            size = await srv.ledger_size()
            ack = await client.bid("watch", 20_000, "USD", key="e-2")
            assert not ack.accepted and ack.reason == "NOT_VERIFIED"
            assert await srv.ledger_size() == size


async def test_ping_binary_frames_and_unsubscribe(
    server: Server, http: aiohttp.ClientSession
) -> None:
    connection = await raw(server)
    await hello(connection)
    await connection.send(json.dumps({"type": "ping"}))
    assert json.loads(await connection.recv()) == {"type": "pong"}
    await connection.send(json.dumps({"type": "time", "t0": 1234.5}))
    reply = json.loads(await connection.recv())
    assert reply["type"] == "time" and reply["t0"] == 1234.5
    assert abs(reply["server_time_us"] - time.time() * 1e6) < 5e6
    await connection.send(json.dumps({"type": "subscribe", "lot": "watch"}))
    assert json.loads(await connection.recv())["type"] == "snapshot"
    await connection.send(json.dumps({"type": "unsubscribe", "lot": "watch"}))
    await connection.send(json.dumps({"type": "ping"}))
    assert json.loads(await connection.recv()) == {"type": "pong"}
    bidder = await ready_bidder(http, server.url, ("watch",))
    await wait_open(server, "watch")
    async with await client_for(server, bidder) as client:
        assert (await client.bid("watch", 10_000, "USD")).accepted
    await connection.send(json.dumps({"type": "ping"}))
    assert json.loads(await connection.recv()) == {"type": "pong"}  # no update came first
    await connection.send(b"\x00binary")
    assert await closed_with(connection) == 4000
    await still_up(server, http)


async def test_the_deposit_is_pushed_to_the_bidder(
    server: Server, http: aiohttp.ClientSession
) -> None:
    bidder = await new_bidder(http, server.url)
    from server_kit import verify

    await verify(http, server.url, bidder)
    async with await client_for(server, bidder) as client:
        async with http.post(
            f"{server.url}/api/lots/flat/registrations", json={}, headers=bidder.auth
        ) as response:
            assert response.status == 201
        from server_kit import accept_notice

        await accept_notice(http, server.url, bidder, "flat")
        async with http.post(
            f"{server.url}/api/lots/flat/deposit",
            json={"idempotency_key": "d-ws"},
            headers=bidder.auth,
        ) as response:
            assert response.status == 202
            hold = (await response.json())["hold"]
        message = await client.next_update(timeout=5)
        assert message == {
            "type": "deposit",
            "lot": "flat",
            "hold": hold,
            "state": "FROZEN",
            "amount": message["amount"],
        }
        assert message["amount"] > 0
        with pytest.raises(TimeoutError):  # the provider's second delivery changed nothing
            await client.next_update(timeout=0.5)


async def test_a_resend_after_a_restart_gets_the_original_answer(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    """Idempotency keys survive a restart: a bidder whose ack a crash swallowed resends with
    the same key and gets the original answer, and nothing is written twice."""
    async with running_server(tmp_path) as server:
        await add_lots(server, open_in=0.2)
        bidder = await ready_bidder(http, server.url, ("watch",))
        await wait_open(server, "watch")
        async with await client_for(server, bidder) as client:
            message = client.signed_bid("watch", 10_000, "USD", key="once")
            first = await client.send_bid(message)
            refused = await client.bid("watch", 1, "USD", key="low")
        assert first.accepted and not refused.accepted
        size = await server.ledger_size()
    async with running_server(tmp_path) as server:  # the same data directory
        assert await server.ledger_size() == size
        async with await client_for(server, bidder) as client:
            again = await client.send_bid(message)
            assert again.accepted and again.entry == first.entry
            low = await client.bid("watch", 1, "USD", key="low")
            assert low.reason == refused.reason and low.entry == refused.entry
            other = await client.bid("watch", 20_000, "USD", key="once")  # other terms
            assert other.reason == "IDEMPOTENCY_CONFLICT"
        assert await server.ledger_size() == size


async def test_a_closed_lot_keeps_no_replay_ring(
    server: Server, http: aiohttp.ClientSession
) -> None:
    """The hub's memory does not grow with the lots it has closed: a closed lot's replay ring
    is dropped, and a client reconnecting with `since_seq` gets the final snapshot."""
    from auction.rules import Cancel

    bidder = await ready_bidder(http, server.url, ("watch",))
    await wait_open(server, "watch")
    async with await client_for(server, bidder) as client:
        ack = await client.bid("watch", 10_000, "USD")
    hub = server.app[HUB]
    assert "watch" in hub._rings
    await server.service.submit("watch", Cancel(reason="the consignor withdrew it"))
    assert "watch" not in hub._rings and "flat" in hub._rings
    async with await BidderClient.connect(server.url) as watcher:
        await watcher.subscribe("watch", since_seq=ack.seq)
        final = await watcher.next_update()
        assert final["type"] == "snapshot" and final["replayed"] is False
        assert final["view"]["status"] == "CANCELLED"


async def test_a_closed_lots_keys_are_forgotten_after_the_grace(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    """Idempotency keys are answered while the lot is open and for a grace period after its
    close (resends after a reconnect), then dropped: the index does not grow with every lot
    a server has closed."""
    from auction.rules import Cancel

    async with running_server(tmp_path, idempotency_grace_s=0.5) as server:
        await add_lots(server, open_in=0.2)
        bidder = await ready_bidder(http, server.url, ("watch", "flat"))
        await wait_open(server, "watch", "flat")
        async with await client_for(server, bidder) as client:
            message = client.signed_bid("watch", 10_000, "USD", key="w-1")
            first = await client.send_bid(message)
            assert (await client.bid("flat", 1_000_000, "CNY", key="f-1")).accepted
            assert server.gateway.idempotency_keys == 2
            await server.service.submit("watch", Cancel(reason="withdrawn by the consignor"))
            again = await client.send_bid(message)  # within the grace: the original answer
            assert again.raw == first.raw
            await asyncio.sleep(1.0)
            assert server.gateway.idempotency_keys == 1  # the open lot's key stays
            late = await client.send_bid(message)  # after it: a new request, refused
            assert not late.accepted and late.entry is not None and late.entry != first.entry
