"""`auction.client` against the real server (real websockets on 127.0.0.1)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from server_kit import Server, add_lots, ready_bidder, running_server, wait_open

from auction.client import Ack, BidderClient, ClientError, _wait_ack, ws_url


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[Server]:
    async with running_server(tmp_path) as running:
        await add_lots(running, open_in=0.2)
        yield running


def test_ws_url() -> None:
    assert ws_url("http://127.0.0.1:8080/") == "ws://127.0.0.1:8080/ws"
    assert ws_url("https://gavel.example") == "wss://gavel.example/ws"


def _ack() -> Ack:
    return Ack.of({"idempotency_key": "k", "result": "accepted"})


async def test_a_caller_cancelled_as_its_ack_arrives_stays_cancelled() -> None:
    # The ack and the cancellation land in the same loop turn. `wait_for(shield(...))` on
    # Python 3.11 returned the ack here and the caller ran on, its cancellation lost.
    waiter: asyncio.Future[Ack] = asyncio.get_running_loop().create_future()
    waiting = asyncio.create_task(_wait_ack(waiter, 30.0))
    await asyncio.sleep(0)
    ack = _ack()
    waiter.set_result(ack)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert waiter.result() is ack


async def test_waiting_for_an_ack_times_out_and_leaves_the_ack_to_come() -> None:
    waiter: asyncio.Future[Ack] = asyncio.get_running_loop().create_future()
    with pytest.raises(TimeoutError):
        await _wait_ack(waiter, 0.01)
    assert not waiter.done()  # a reconnect's resend still delivers the ack to it
    waiter.set_result(_ack())
    assert (await _wait_ack(waiter, 1.0)).accepted


async def test_a_bidder_session(server: Server, http: aiohttp.ClientSession) -> None:
    bidder = await ready_bidder(http, server.url, ("watch",))
    await wait_open(server, "watch")
    async with await BidderClient.connect(
        server.url, key=bidder.key, session=bidder.session
    ) as client:
        assert client.account == bidder.account  # from the welcome
        assert abs(await client.sync_clock()) < 1000
        await client.subscribe("watch")
        snapshot = await client.next_update()
        assert snapshot["type"] == "snapshot" and snapshot["view"]["status"] == "OPEN"
        ack = await client.bid("watch", 10_000, "USD")
        assert ack.accepted and ack.leader_is_you and ack.cur == 10_000
        assert ack.seq is not None and ack.min_next is not None and ack.end_us is not None
        update = await client.next_update()
        while update["seq"] < ack.seq:
            update = await client.next_update()
        assert update["view"]["price"] == 10_000
        low = await client.bid("watch", 10_000, "USD")
        assert not low.accepted and low.reason == "SELF_OUTBID"  # already leading
        assert low.entry is None or isinstance(low.entry, int)


async def test_a_lost_bid_is_resent_after_reconnecting(
    server: Server, http: aiohttp.ClientSession
) -> None:
    bidder = await ready_bidder(http, server.url, ("watch",))
    await wait_open(server, "watch")
    client = await BidderClient.connect(
        server.url, account=bidder.account, key=bidder.key, session=bidder.session
    )
    try:
        size = await server.ledger_size()
        message = client.signed_bid("watch", 10_000, "USD", key="resend-1")
        sending = asyncio.create_task(client.send_bid(message))
        await asyncio.sleep(0)  # sent; the connection drops before its ack is read
        await client.reconnect()
        with pytest.raises(ClientError):
            await sending
        ack = await client.wait_ack("resend-1")
        assert ack.idempotency_key == "resend-1" and ack.accepted
        assert await server.ledger_size() == size + 1  # one entry, however often it was sent
        again = await client.send_bid(message)
        assert again.raw == ack.raw
        assert await server.ledger_size() == size + 1
    finally:
        await client.close()


async def test_refusals_carry_the_close_code(server: Server, http: aiohttp.ClientSession) -> None:
    with pytest.raises(ClientError) as refused:
        await BidderClient.connect(server.url, session="not-a-session")
    assert refused.value.close_code == 4003
    bidder = await ready_bidder(http, server.url)
    first = await BidderClient.connect(server.url, key=bidder.key, session=bidder.session)
    async with await BidderClient.connect(server.url, key=bidder.key, session=bidder.session):
        await first.closed.wait()
        assert first.close_code == 4009
    await first.close()
    with pytest.raises(ClientError):
        await BidderClient.connect("http://127.0.0.1:1")
