"""The websocket endpoint `/ws` (docs/protocol.md §2): an adapter over the protocol core.

What a client's messages mean (hello, the session, subscriptions, replay, bids, refusals and
the close codes) is decided by `auction.bidding.session.ConnectionState`, which this module
feeds with parsed frames and the server time and whose actions it carries out. What stays here
is the I/O.

`Hub` owns one `AuctionService` subscription and every connection:

* one fan-out task reads the service's updates, keeps a bounded ring of recent public updates
  per lot (for `since_seq` replay) and offers each update to the connections watching its lot.
  Offering never waits: each connection keeps at most one pending update per lot, merged
  (conflated) with later ones until its writer sends it, so a slow client never slows the lot or
  the other clients (STYLE rule 9);
* per connection, one reader (the handler) and one writer task. Direct answers (acks, time,
  pong, errors, deposit notices) go first, in order, and are never dropped; then the pending
  lot updates;
* bids go through `auction.gateway.Gateway` in a task per bid, whose single ack goes to the
  session's current connection once the bid's entry is durable.

A browser's handshake must come from this server's own pages: a request whose `Origin` names
another host is refused with `403` before the upgrade (cross-site websocket hijacking); clients
that send no `Origin` (the Python client, bots) are let in. A connection opened with a session
is closed with `4003` on its first message after the session expired.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import urllib.parse
from collections import deque
from collections.abc import Callable
from typing import Any

from aiohttp import WSCloseCode, WSMsgType, web

from ..bidding.ack import unavailable_ack
from ..bidding.replay import RING_SIZE, ReplayRing
from ..bidding.session import (
    REPLACED,
    Action,
    Close,
    ConnectionState,
    LookUpSession,
    LotSnapshot,
    Send,
    SubmitBid,
    Unsubscribed,
)
from ..errors import GavelError
from ..gateway import Gateway
from ..logs import LOT
from ..protocol import (
    CLOSE_ABUSE,
    CLOSE_PROTOCOL,
    MAX_FRAME_BYTES,
    ClientMessage,
    ProtocolViolation,
    parse_client_message,
)
from ..service import AuctionService, LotUpdate, Subscription

logger = logging.getLogger(__name__)

HELLO_TIMEOUT = 10.0
HEARTBEAT_S = 15
MAX_CONNECTIONS_PER_ADDRESS = 20
#: Events kept in one conflated pending update before it is sent with `gap: true`.
MAX_PENDING_EVENTS = 64
#: Direct messages (acks, replies) a connection may have unsent before it is closed (4008).
MAX_DIRECT_BACKLOG = 1024
#: Bytes a connection's socket may have unsent before its writer waits (and its lot updates
#: are conflated); and how often it looks again (seconds).
WRITE_HIGH_WATER = 64 * 1024
DRAIN_POLL = 0.02
#: Lot updates go out to watchers at most this often (seconds): what arrives meanwhile is
#: merged per lot (the service's subscription coalesces), so one message per lot and tick is
#: serialized once and shared by every connection, however fast the lot moves.
FANOUT_INTERVAL = 0.05


class Connection:
    """One websocket: its protocol state, what it still has to send, and its writer task."""

    def __init__(
        self,
        ws: web.WebSocketResponse,
        address: str,
        transport: asyncio.BaseTransport | None,
        state: ConnectionState,
    ) -> None:
        self.ws = ws
        self.address = address
        self._transport = transport
        self.state = state
        self._direct: deque[dict[str, Any]] = deque()
        #: lot → (update, its JSON text if unchanged since the hub serialized it)
        self._pending: dict[str, tuple[dict[str, Any], str | None]] = {}
        self._wake = asyncio.Event()
        self._closing: tuple[int, str] | None = None
        self.tasks: set[asyncio.Task[None]] = set()
        self.writer: asyncio.Task[None] | None = None

    @property
    def account(self) -> str | None:
        """The account of the connection's session (None: a watcher without one)."""
        return self.state.account

    @property
    def lots(self) -> frozenset[str]:
        """The lots this connection watches."""
        return self.state.lots

    def send(self, message: dict[str, Any]) -> None:
        """Queue a direct message (never dropped); closes 4008 if the client stopped reading
        long ago."""
        if len(self._direct) >= MAX_DIRECT_BACKLOG:
            self.close(CLOSE_ABUSE, "too many unread messages")
            return
        self._direct.append(message)
        self._wake.set()

    def offer(self, lot: str, message: dict[str, Any], text: str | None = None) -> None:
        """Queue a lot update (`text`: its JSON, shared with other connections), merged with an
        unsent one of the same lot. Never blocks."""
        admitted = self.state.admit(lot, message)
        if admitted is None:
            return
        if admitted is not message:
            message, text = admitted, None
        earlier = self._pending.get(lot)
        if earlier is not None:
            before = earlier[0]
            events = before["events"] + message["events"]
            gap = before["gap"] or message["gap"] or len(events) > MAX_PENDING_EVENTS
            message = message | {"events": events[-MAX_PENDING_EVENTS:], "gap": gap}
            text = None
        self._pending[lot] = (message, text)
        self._wake.set()

    def abort(self) -> None:
        if self._transport is not None:
            self._transport.abort()  # type: ignore[attr-defined]

    def drop(self, lot: str) -> None:
        """Forget the unsent update of a lot the client no longer watches."""
        self._pending.pop(lot, None)

    def close(self, code: int, reason: str) -> None:
        """Close after the messages already queued are sent."""
        if self._closing is None:
            self._closing = (code, reason)
        self._wake.set()

    async def _drained(self) -> None:
        """Wait while the socket's outgoing buffer is above the high-water mark: a client that
        does not read holds back only its own writer (its updates are conflated meanwhile)."""
        transport = self._transport
        if not isinstance(transport, asyncio.WriteTransport):
            return
        while transport.get_write_buffer_size() > WRITE_HIGH_WATER and not transport.is_closing():
            await asyncio.sleep(DRAIN_POLL)

    async def run_writer(self) -> None:
        ws = self.ws
        try:
            while True:
                await self._wake.wait()
                self._wake.clear()
                while self._direct:
                    await self._drained()
                    await ws.send_str(json.dumps(self._direct.popleft(), ensure_ascii=False))
                if self._closing is not None:
                    break
                await self._drained()
                pending, self._pending = self._pending, {}
                for message, text in pending.values():
                    await ws.send_str(text or json.dumps(message, ensure_ascii=False))
        except (ConnectionError, RuntimeError):
            return  # the peer went away; the reader notices and cleans up
        code, reason = self._closing
        with contextlib.suppress(ConnectionError, RuntimeError):
            await ws.close(code=code, message=reason.encode("utf-8")[:120])


class Hub:
    """Every websocket connection of one server. `start()` after the service started;
    `stop()` before it stops."""

    def __init__(
        self,
        service: AuctionService,
        gateway: Gateway,
        *,
        heartbeat_s: float = HEARTBEAT_S,
        hello_timeout: float = HELLO_TIMEOUT,
        max_per_address: int = MAX_CONNECTIONS_PER_ADDRESS,
        ring_size: int = RING_SIZE,
    ) -> None:
        self._service = service
        self._gateway = gateway
        self._heartbeat = heartbeat_s
        self._hello_timeout = hello_timeout
        self._max_per_address = max_per_address
        self._ring_size = ring_size
        self._connections: set[Connection] = set()
        self._by_session: dict[str, Connection] = {}
        self._by_account: dict[str, Connection] = {}
        self._per_address: dict[str, int] = {}
        self._rings: dict[str, ReplayRing] = {}
        self._last_seq: dict[str, int] = {}
        self._fanout: asyncio.Task[None] | None = None
        self._subscription: Subscription | None = None
        self._stopped = False
        #: Called with each bid's ack and the seconds it took: `auction.web.metrics`.
        self.on_bid: Callable[[dict[str, Any], float], None] | None = None

    def viewers(self) -> dict[str, int]:
        """lot → connections subscribed to it now."""
        counts: dict[str, int] = {}
        for connection in self._connections:
            for lot in connection.lots:
                counts[lot] = counts.get(lot, 0) + 1
        return counts

    @property
    def connections(self) -> int:
        return len(self._connections)

    def start(self) -> None:
        for view in self._service.views():
            self._last_seq[view.lot_id] = view.seq
        subscription = self._service.subscribe(
            subscription=_Recorder(self._record, 4 * MAX_PENDING_EVENTS)
        )
        self._fanout = asyncio.get_running_loop().create_task(
            self._run_fanout(subscription), name="ws-fanout"
        )
        self._subscription = subscription

    async def stop(self) -> None:
        """Close every connection (1001 going away) and stop the fan-out. Idempotent."""
        if self._stopped:
            return
        self._stopped = True
        for connection in list(self._connections):
            connection.close(WSCloseCode.GOING_AWAY, "server shutting down")
        writers = [c.writer for c in self._connections if c.writer is not None]
        if writers:
            await asyncio.wait(writers, timeout=2.0)
        for connection in list(self._connections):
            for task in list(connection.tasks):
                task.cancel()
            if connection.writer is not None:
                connection.writer.cancel()
            connection.abort()  # a peer that did not take the close frame in time
        if self._subscription is not None:
            self._service.unsubscribe(self._subscription)
        if self._fanout is not None:
            self._fanout.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._fanout

    def notify(self, account: str, message: dict[str, Any]) -> None:
        """Send `message` to the account's current connection, if any (deposit notices)."""
        connection = self._by_account.get(account)
        if connection is not None:
            connection.send(message)

    # -- fan-out --

    async def _run_fanout(self, subscription: Subscription) -> None:
        async for updates in subscription:
            for update in updates:
                self._distribute(update)
            await asyncio.sleep(FANOUT_INTERVAL)  # meanwhile the subscription merges per lot

    def _record(self, update: LotUpdate) -> None:
        """Every update as the service publishes it, at once and in order: the replay ring is
        therefore never behind the views that snapshots are taken from."""
        lot = update.lot_id
        seq = update.view.seq
        previous = self._last_seq.get(lot, 0)
        self._last_seq[lot] = seq
        if update.view.closed_at is not None:
            # A closed lot's updates are not replayed (a reconnecting client gets its final
            # snapshot): the rings of the lots a server has closed would otherwise only grow.
            self._rings.pop(lot, None)
            self._gateway.lot_closed(lot)
            return
        ring = self._rings.get(lot)
        if ring is None:
            ring = self._rings[lot] = ReplayRing(self._ring_size)
        if update.gap:
            ring.clear()  # events were dropped on the way: the ring can no longer replay them
        else:
            ring.record(previous, seq, _message(update))

    def _distribute(self, update: LotUpdate) -> None:
        """One merged update of a tick to every connection watching the lot: serialized once."""
        message = _message(update)
        text = json.dumps(message, ensure_ascii=False)
        for connection in self._connections:
            connection.offer(update.lot_id, message, text)

    # -- the lots, as the connections' states read them (`auction.bidding.session.LotSource`) --

    def snapshot(self, lot: str) -> LotSnapshot | None:
        view = self._service.view(lot)
        return None if view is None else LotSnapshot(view.seq, view.to_json())

    def missed(self, lot: str, since_seq: int, current_seq: int) -> list[dict[str, Any]] | None:
        """The updates after `since_seq`, or None when the ring no longer has all of them."""
        ring = self._rings.get(lot) or _NO_UPDATES
        return ring.missed(since_seq, current_seq, self._last_seq.get(lot))

    # -- one connection --

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """The `/ws` handler: the connection's reader."""
        origin = request.headers.get("Origin")
        if origin is not None and not same_origin(origin, request.host, request.scheme):
            return web.json_response(
                {
                    "error": {
                        "code": "FORBIDDEN_ORIGIN",
                        "message": "websocket connections are accepted from this site's pages",
                    }
                },
                status=403,
                headers={"Cache-Control": "no-store"},
            )
        # No permessage-deflate: one shared update would be compressed again for every
        # connection (the updates are small; the CPU is what a busy lot runs out of).
        # aiohttp refuses (1009) a message of `max_msg_size` bytes or more, so it is given one
        # byte above the protocol's limit: a frame of exactly MAX_FRAME_BYTES is taken, as the
        # `welcome` says; `parse_client_message` checks the exact bound again.
        ws = web.WebSocketResponse(
            heartbeat=self._heartbeat,
            max_msg_size=MAX_FRAME_BYTES + 1,
            autoping=True,
            compress=False,
        )
        await ws.prepare(request)
        address = request.remote or "?"
        state = ConnectionState(
            self, heartbeat_s=self._heartbeat, bids_per_second=self._gateway.bids_per_second
        )
        connection = Connection(ws, address, request.transport, state)
        count = self._per_address.get(address, 0)
        self._per_address[address] = count + 1
        self._connections.add(connection)
        connection.writer = asyncio.get_running_loop().create_task(connection.run_writer())
        try:
            if count >= self._max_per_address:
                connection.close(CLOSE_ABUSE, "too many connections from this address")
            else:
                await self._serve(connection)
        finally:
            await self._forget(connection)
        return ws

    async def _forget(self, connection: Connection) -> None:
        self._connections.discard(connection)
        remaining = self._per_address.get(connection.address, 1) - 1
        if remaining:
            self._per_address[connection.address] = remaining
        else:
            self._per_address.pop(connection.address, None)
        session_key, account = connection.state.session_key, connection.state.account
        if session_key and self._by_session.get(session_key) is connection:
            del self._by_session[session_key]
        if account and self._by_account.get(account) is connection:
            del self._by_account[account]
        if connection.writer is not None:
            connection.close(WSCloseCode.OK, "")  # ends the writer once its queue is sent
            try:
                async with asyncio.timeout(1.0):
                    await asyncio.shield(connection.writer)
            except TimeoutError:
                pass
            except asyncio.CancelledError:
                # The writer was cancelled (the hub stopping), or this task was: that goes on
                # up, after the clean-up below (`wait_for` could drop it on Python 3.11).
                task = asyncio.current_task()
                if task is not None and task.cancelling():
                    raise
            finally:
                if not connection.writer.done():
                    connection.writer.cancel()
                    connection.abort()
        # Bids already handed to the gateway complete (their entries are durable); their acks
        # go to the session's newer connection if there is one.

    async def _serve(self, connection: Connection) -> None:
        """Read frames until the peer goes or the connection's state closes it."""
        ws, state = connection.ws, connection.state
        try:
            frame = await ws.receive(timeout=self._hello_timeout)
        except TimeoutError:
            await self._act(connection, state.hello_timed_out())
            return
        while True:
            if frame.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED):
                return
            if frame.type is WSMsgType.ERROR:
                return  # aiohttp already closed it (1009 for an oversized frame)
            now = self._service.now()
            try:
                message = self._parse(frame)
            except ProtocolViolation as exc:
                actions = state.receive_invalid(exc, now)
            else:
                actions = state.receive(message, now)
            if not await self._act(connection, actions):
                return
            frame = await ws.receive()

    @staticmethod
    def _parse(frame: Any) -> ClientMessage:
        if frame.type is not WSMsgType.TEXT:
            raise ProtocolViolation(CLOSE_PROTOCOL, "messages are JSON text frames")
        return parse_client_message(frame.data)

    async def _act(self, connection: Connection, actions: list[Action]) -> bool:
        """Carry out the state's actions in order; False once the connection is closing."""
        for action in actions:
            if isinstance(action, Send):
                connection.send(action.message)
            elif isinstance(action, SubmitBid):
                self._spawn_bid(connection, action)
            elif isinstance(action, Unsubscribed):
                connection.drop(action.lot)
            elif isinstance(action, LookUpSession):
                further = await self._authenticate(connection, action.token)
                if not await self._act(connection, further):
                    return False
            elif isinstance(action, Close):
                connection.close(action.code, action.reason)
                return False
        return True

    async def _authenticate(self, connection: Connection, token: str) -> list[Action]:
        """Look the hello's session up; make this connection its current one."""
        state = connection.state
        try:
            session = await self._gateway.session(token)
        except GavelError:
            session = None
        if session is None:
            return state.not_authenticated()
        actions = state.authenticated(
            session.account, session.role.value, session.expires_us, self._service.now()
        )
        key = state.session_key
        assert key is not None  # set by the hello that asked for the look-up
        earlier = self._by_session.get(key)
        if earlier is not None:
            earlier.close(REPLACED.code, REPLACED.reason)
        self._by_session[key] = connection
        self._by_account[session.account] = connection
        return actions

    def _spawn_bid(self, connection: Connection, submit: SubmitBid) -> None:
        account, session_key, request = submit.account, submit.session_key, submit.bid

        async def run() -> None:
            LOT.set(request.lot)  # this task's own context: the bid's log lines name the lot
            started = time.perf_counter()
            try:
                ack = await self._gateway.bid(account, request)
            except GavelError as exc:
                ack = unavailable_ack(request, exc.code, exc.message)
            target = self._by_session.get(session_key, connection)
            target.send(ack)
            if self.on_bid is not None:
                self.on_bid(ack, time.perf_counter() - started)

        task = asyncio.get_running_loop().create_task(run())
        connection.tasks.add(task)
        task.add_done_callback(_discard_from(connection.tasks))


_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}


def same_origin(origin: str, host: str, scheme: str) -> bool:
    """Whether a browser's `Origin` names the host (and port) this request was sent to (a
    `Host` without a port matches the Origin scheme's default port, as behind a TLS proxy).
    `null` and anything unparsable are foreign."""
    try:
        parts = urllib.parse.urlsplit(origin)
        port = parts.port or _DEFAULT_PORTS.get(parts.scheme)
        mine = urllib.parse.urlsplit(f"{scheme}://{host}")
        my_port = mine.port or _DEFAULT_PORTS.get(parts.scheme)  # a TLS proxy: no port
    except ValueError:
        return False
    if parts.scheme not in ("http", "https") or not parts.hostname or not mine.hostname:
        return False
    return parts.hostname.lower() == mine.hostname.lower() and port == my_port


class _Recorder(Subscription):
    """The hub's subscription: records each update at once (`record`), then queues it to be
    merged per lot until the next fan-out tick."""

    def __init__(self, record: Callable[[LotUpdate], None], max_events: int) -> None:
        super().__init__(max_events)
        self._record = record

    def offer(self, update: LotUpdate) -> None:
        if not self.closed:
            self._record(update)
        super().offer(update)


_NO_UPDATES = ReplayRing(0)


def _message(update: LotUpdate) -> dict[str, Any]:
    return {
        "type": "update",
        "lot": update.lot_id,
        "seq": update.view.seq,
        "view": update.view.to_json(),
        "events": list(update.events),
        "gap": update.gap,
    }


def _discard_from(tasks: set[asyncio.Task[None]]) -> Callable[[asyncio.Task[None]], None]:
    def discard(task: asyncio.Task[None]) -> None:
        tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("bid task failed", exc_info=task.exception())

    return discard


__all__ = ["HEARTBEAT_S", "Connection", "Hub", "same_origin"]
