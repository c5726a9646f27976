"""Deadlines for slow clients (docs/protocol.md §5 "Limits").

aiohttp waits for a request's head and body as long as the client keeps the connection open,
so a client sending one byte a minute holds a connection (and its memory) for ever. Here:

* `HEADER_TIMEOUT_S`: a new connection must have sent a whole request head (request line and
  headers, up to the blank line) within this many seconds, or it is cut (`HeaderDeadline`,
  a thin wrapper around aiohttp's protocol: nothing else of it changes);
* `KEEPALIVE_TIMEOUT_S`: an idle kept-alive connection, or one that started its next request
  and stalled, is closed after this long (aiohttp's `keepalive_timeout`);
* `BODY_TIMEOUT_S`: a request body must arrive within this long once its head has
  (`auction.web.bodies.read_json_body` answers `408 TIMEOUT`).

Serve an application with `GuardedRunner(app)` instead of `web.AppRunner(app)`.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

HEADER_TIMEOUT_S = 10.0
KEEPALIVE_TIMEOUT_S = 30.0
BODY_TIMEOUT_S = 10.0

_END_OF_HEAD = b"\r\n\r\n"


class HeaderDeadline(asyncio.Protocol):
    """Wraps one connection's aiohttp protocol; aborts the connection when no complete
    request head arrived within `seconds` of its opening, then steps aside."""

    def __init__(self, inner: asyncio.Protocol, seconds: float) -> None:
        self._inner = inner
        self._seconds = seconds
        self._timer: asyncio.TimerHandle | None = None
        self._transport: asyncio.BaseTransport | None = None
        self._tail = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport
        self._timer = asyncio.get_running_loop().call_later(self._seconds, self._expire)
        self._inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        if self._timer is not None:
            seen = self._tail + data
            if _END_OF_HEAD in seen:
                self._timer.cancel()
                self._timer = None
            else:
                self._tail = seen[-3:]
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()

    def _expire(self) -> None:
        self._timer = None
        transport = self._transport
        if isinstance(transport, asyncio.Transport) and not transport.is_closing():
            transport.abort()

    def __getattr__(self, name: str) -> Any:  # anything else aiohttp asks of its protocol
        return getattr(self._inner, name)


class _GuardedServer:
    """aiohttp's `web.Server` whose connections each get a `HeaderDeadline`."""

    def __init__(self, server: web.Server, seconds: float) -> None:
        self._server = server
        self._seconds = seconds

    def __call__(self) -> HeaderDeadline:
        return HeaderDeadline(self._server(), self._seconds)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._server, name)


class GuardedRunner(web.AppRunner):
    """`web.AppRunner` with the deadlines of this module (`header_timeout_s`,
    `keepalive_timeout`); other keyword arguments as for `web.AppRunner`."""

    def __init__(
        self,
        app: web.Application,
        *,
        header_timeout_s: float = HEADER_TIMEOUT_S,
        keepalive_timeout: float = KEEPALIVE_TIMEOUT_S,
        **kwargs: Any,
    ) -> None:
        super().__init__(app, keepalive_timeout=keepalive_timeout, **kwargs)
        self._header_timeout_s = header_timeout_s

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        return _GuardedServer(server, self._header_timeout_s)  # type: ignore[return-value]


__all__ = [
    "BODY_TIMEOUT_S",
    "HEADER_TIMEOUT_S",
    "KEEPALIVE_TIMEOUT_S",
    "GuardedRunner",
    "HeaderDeadline",
]
