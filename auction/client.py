"""A Python client for Gavel's protocol (`docs/protocol.md`), for scripts, bots and benchmarks.

    async with await BidderClient.connect("http://127.0.0.1:8080", key=key, session=session,
                                          account=account) as client:
        await client.subscribe("hz-flat-1502")
        ack = await client.bid("hz-flat-1502", 218_000_000, "CNY")

It signs every bid and proxy maximum with the account's Ed25519 key over the canonical bytes
of the signed request, exactly as the browser does, keeps the clock offset from the `time`
exchange (rules C15), and resends unacknowledged bids with their original idempotency keys
after a reconnect.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import websockets
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from websockets.asyncio.client import ClientConnection

from .errors import GavelError
from .protocol import MAX_FRAME_BYTES, VERSION, signed_bytes


class ClientError(GavelError):
    """The server refused the connection or broke the protocol; `close_code` is the
    websocket close code when the server closed the connection (docs/protocol.md §2.6)."""

    def __init__(self, message: str, close_code: int | None = None) -> None:
        super().__init__(message)
        self.close_code = close_code


@dataclass
class Ack:
    """The server's answer to one bid (`docs/protocol.md` §2.4)."""

    idempotency_key: str
    result: str
    reason: str | None
    seq: int | None
    cur: int | None
    min_next: int | None
    end_us: int | None
    leader_is_you: bool
    entry: int | None
    raw: dict[str, Any] = field(repr=False)

    @property
    def accepted(self) -> bool:
        return self.result == "accepted"

    @property
    def held(self) -> bool:
        """Rules C14.1: a live lot's online bid waiting for the auctioneer (not refused)."""
        return self.result == "held"

    @classmethod
    def of(cls, message: dict[str, Any]) -> Ack:
        return cls(
            idempotency_key=message["idempotency_key"],
            result=message["result"],
            reason=message.get("reason"),
            seq=message.get("seq"),
            cur=message.get("cur"),
            min_next=message.get("min_next"),
            end_us=message.get("end_us"),
            leader_is_you=bool(message.get("leader_is_you")),
            entry=message.get("entry"),
            raw=message,
        )


def ws_url(base_url: str) -> str:
    """`http://host:port` → `ws://host:port/ws`."""
    if base_url.startswith("https://"):
        return "wss://" + base_url[len("https://") :].rstrip("/") + "/ws"
    if base_url.startswith("http://"):
        return "ws://" + base_url[len("http://") :].rstrip("/") + "/ws"
    return base_url


class BidderClient:
    """One websocket connection. A watcher passes no key and no session."""

    def __init__(
        self,
        connection: ClientConnection,
        *,
        account: str | None,
        key: Ed25519PrivateKey | None,
        welcome: dict[str, Any],
        base_url: str = "",
        session: str | None = None,
    ) -> None:
        self._ws = connection
        self.account = account or welcome.get("account")
        self._key = key
        self.welcome = welcome
        self._base_url = base_url
        self._session = session
        self._pending: dict[str, asyncio.Future[Ack]] = {}
        self._unacked: dict[str, dict[str, Any]] = {}
        self._updates: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._time_waiters: list[asyncio.Future[dict[str, Any]]] = []
        self.offset_ms: float = 0.0
        self._best_rtt_ms: float | None = None
        self._keys = (f"{secrets.token_hex(4)}-{n}" for n in itertools.count())
        self.closed = asyncio.Event()
        self._reader = asyncio.get_running_loop().create_task(self._read())

    @classmethod
    async def connect(
        cls,
        base_url: str,
        *,
        account: str | None = None,
        key: Ed25519PrivateKey | None = None,
        session: str | None = None,
        open_timeout: float = 10.0,
    ) -> BidderClient:
        """Open `/ws`, say hello and wait for `welcome`. Raises `ClientError` (with the close
        code when the server refused the session or the version)."""
        connection, welcome = await _open(base_url, session, open_timeout)
        return cls(
            connection,
            account=account,
            key=key,
            welcome=welcome,
            base_url=base_url,
            session=session,
        )

    async def reconnect(self, open_timeout: float = 10.0, *, base_url: str | None = None) -> None:
        """Open a new connection with the same session (the old one is closed if it is not
        already) and resend every unacknowledged bid with its original idempotency key: the
        server answers a resend with the original ack and changes nothing (protocol §2.4).
        Subscriptions are not restored: subscribe again with `since_seq`. `base_url`: another
        server of the same auction (several instances: any one serves any client)."""
        if base_url is not None:
            self._base_url = base_url
        old = self._ws
        with contextlib.suppress(websockets.WebSocketException, OSError):
            await old.close()
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader
        self._ws, self.welcome = await _open(self._base_url, self._session, open_timeout)
        self.closed = asyncio.Event()
        self._reader = asyncio.get_running_loop().create_task(self._read())
        loop = asyncio.get_running_loop()
        for key, message in list(self._unacked.items()):
            self._pending[key] = loop.create_future()
            await self._ws.send(json.dumps(message))

    async def __aenter__(self) -> BidderClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        await self._ws.close()
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader

    @property
    def close_code(self) -> int | None:
        return self._ws.close_code

    async def send_raw(self, message: str | bytes) -> None:
        """Send a frame as is (for protocol tests)."""
        await self._ws.send(message)

    async def sync_clock(self) -> float:
        """One `time` exchange; keeps the lowest-round-trip sample. Returns the offset in ms."""
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[dict[str, Any]] = loop.create_future()
        self._time_waiters.append(waiter)
        t0 = time.time() * 1000
        await self._ws.send(json.dumps({"type": "time", "t0": t0}))
        reply = await asyncio.wait_for(waiter, 10)
        t1 = time.time() * 1000
        rtt = t1 - t0
        if self._best_rtt_ms is None or rtt < self._best_rtt_ms:
            self._best_rtt_ms = rtt
            self.offset_ms = reply["server_time_us"] / 1000 - (t0 + t1) / 2
        return self.offset_ms

    async def subscribe(self, lot: str, since_seq: int = 0) -> None:
        await self._ws.send(json.dumps({"type": "subscribe", "lot": lot, "since_seq": since_seq}))

    async def unsubscribe(self, lot: str) -> None:
        await self._ws.send(json.dumps({"type": "unsubscribe", "lot": lot}))

    def signed_bid(
        self, lot: str, amount: int, currency: str, *, kind: str = "bid", key: str | None = None
    ) -> dict[str, Any]:
        """The `bid` message for these terms, signed with the account's key."""
        if self._key is None or self.account is None:
            raise ClientError("bidding needs an account and its key")
        idempotency_key = key or next(self._keys)
        payload = {
            "account": self.account,
            "amount": amount,
            "currency": currency,
            "idempotency_key": idempotency_key,
            "kind": kind,
            "lot": lot,
        }
        signature = self._key.sign(signed_bytes(payload))
        message = {key_: value for key_, value in payload.items() if key_ != "account"}
        message |= {"type": "bid", "sig": base64.b64encode(signature).decode()}
        if len(json.dumps(message)) > MAX_FRAME_BYTES:
            raise ClientError("bid too large")
        return message

    async def bid(
        self,
        lot: str,
        amount: int,
        currency: str,
        *,
        kind: str = "bid",
        key: str | None = None,
        timeout: float = 30.0,
    ) -> Ack:
        """Send a signed bid (or `kind="max"`) and wait for its acknowledgement."""
        message = self.signed_bid(lot, amount, currency, kind=kind, key=key)
        return await self.send_bid(message, timeout=timeout)

    async def send_bid(self, message: dict[str, Any], *, timeout: float = 30.0) -> Ack:
        """Send an already signed `bid` message and wait for its `ack`."""
        loop = asyncio.get_running_loop()
        key = message["idempotency_key"]
        waiter = self._pending.get(key)
        if waiter is None or waiter.done():
            waiter = loop.create_future()
            self._pending[key] = waiter
        self._unacked[key] = message
        await self._ws.send(json.dumps(message))
        try:
            return await _wait_ack(waiter, timeout)
        finally:
            if waiter.done():
                self._pending.pop(key, None)

    async def wait_ack(self, idempotency_key: str, timeout: float = 30.0) -> Ack:
        """Wait for the ack of a bid sent earlier (e.g. resent by `reconnect`)."""
        waiter = self._pending.get(idempotency_key)
        if waiter is None:
            raise ClientError(f"no bid {idempotency_key!r} is waiting for an ack")
        try:
            return await _wait_ack(waiter, timeout)
        finally:
            if waiter.done():
                self._pending.pop(idempotency_key, None)

    async def next_update(self, timeout: float = 30.0) -> dict[str, Any]:
        """The next `snapshot`, `update` or `error` message."""
        return await asyncio.wait_for(self._updates.get(), timeout)

    async def updates(self) -> AsyncIterator[dict[str, Any]]:
        while True:
            yield await self._updates.get()

    async def _read(self) -> None:
        try:
            async for frame in self._ws:
                message = json.loads(frame)
                kind = message.get("type")
                if kind == "ack":
                    self._unacked.pop(message.get("idempotency_key", ""), None)
                    waiter = self._pending.get(message.get("idempotency_key", ""))
                    if waiter is not None and not waiter.done():
                        waiter.set_result(Ack.of(message))
                elif kind == "time":
                    while self._time_waiters:
                        waiter_t = self._time_waiters.pop(0)
                        if not waiter_t.done():
                            waiter_t.set_result(message)
                            break
                elif kind == "pong":
                    continue
                else:
                    self._updates.put_nowait(message)
        except websockets.ConnectionClosed:
            pass
        finally:
            # Waiting bids fail now but stay unacknowledged: `reconnect` resends them.
            error = ClientError(f"connection closed ({self._ws.close_code})", self._ws.close_code)
            self.closed.set()
            for waiter in self._pending.values():
                if not waiter.done():
                    waiter.set_exception(error)
                    waiter.exception()  # retrieved here; the bidder sees it through send_bid
            self._pending.clear()
            for waiter_t in self._time_waiters:
                if not waiter_t.done():
                    waiter_t.set_exception(error)


async def _open(
    base_url: str, session: str | None, open_timeout: float
) -> tuple[ClientConnection, dict[str, Any]]:
    try:
        connection = await websockets.connect(
            ws_url(base_url), open_timeout=open_timeout, max_size=2**20
        )
    except (OSError, websockets.WebSocketException, TimeoutError) as exc:
        raise ClientError(f"cannot connect: {exc}") from exc
    await connection.send(json.dumps({"type": "hello", "v": VERSION, "session": session}))
    try:
        welcome = json.loads(await asyncio.wait_for(connection.recv(), open_timeout))
    except websockets.ConnectionClosed as exc:
        code = exc.rcvd.code if exc.rcvd is not None else None
        raise ClientError(f"the server closed the connection ({code})", code) from exc
    except (TimeoutError, ValueError) as exc:
        await connection.close()
        raise ClientError(f"no welcome: {exc}") from exc
    if not isinstance(welcome, dict) or welcome.get("type") != "welcome":
        await connection.close()
        raise ClientError(f"expected welcome, got {welcome!r}")
    return connection, welcome


async def _wait_ack(waiter: asyncio.Future[Ack], timeout: float) -> Ack:
    """The ack `waiter` will hold, within `timeout` seconds (TimeoutError), without cancelling
    it (a reconnect resends the bid and the same waiter gets the ack). Not `wait_for`: on
    Python 3.11 it returns the result, dropping the caller's cancellation, when the ack
    arrives just as the caller is cancelled (its own `asyncio.timeout`, a task group)."""
    async with asyncio.timeout(timeout):
        return await asyncio.shield(waiter)
