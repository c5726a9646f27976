"""Slow clients are cut off (auction.web.limits): a real server on 127.0.0.1 and raw sockets
that send half a request head, or a whole head and half a body, then stall."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from auction.web import Settings, create_app
from auction.web.limits import HEADER_TIMEOUT_S, KEEPALIVE_TIMEOUT_S, GuardedRunner

HEADER_S = 0.6
KEEPALIVE_S = 0.8


@contextlib.asynccontextmanager
async def serving(tmp_path: Path, **limits: float) -> AsyncIterator[int]:
    app = create_app(Settings(data_dir=tmp_path / "data", port=0, demo=False))
    runner = GuardedRunner(app, handle_signals=False, **limits)  # type: ignore[arg-type]
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        yield int(runner.addresses[0][1])
    finally:
        await runner.cleanup()


async def _closed_after(reader: asyncio.StreamReader, bound: float) -> tuple[float, bytes]:
    started = time.monotonic()
    data = await asyncio.wait_for(reader.read(), bound)  # to EOF: the server cut us off
    return time.monotonic() - started, data


def test_the_documented_defaults() -> None:
    assert HEADER_TIMEOUT_S == 10.0 and KEEPALIVE_TIMEOUT_S == 30.0


async def test_half_a_request_head_is_cut_off_within_the_bound(tmp_path: Path) -> None:
    async with serving(tmp_path, header_timeout_s=HEADER_S, keepalive_timeout=30.0) as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"POST /api/accounts HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Le")
        await writer.drain()
        elapsed, data = await _closed_after(reader, 5.0)
        writer.close()
        assert data == b"" and HEADER_S * 0.9 <= elapsed <= HEADER_S + 1.0, elapsed
        # a client that trickles the head byte by byte is cut off too
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        started = time.monotonic()
        with contextlib.suppress(ConnectionError):
            for byte in b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 100:
                writer.write(bytes([byte]))
                await writer.drain()
                await asyncio.sleep(0.05)
                if reader.at_eof():
                    break
        with contextlib.suppress(ConnectionError):
            await asyncio.wait_for(reader.read(), 5.0)
        writer.close()
        assert time.monotonic() - started <= HEADER_S + 1.5
        # a prompt client is served as before
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        answer = await asyncio.wait_for(reader.read(), 5.0)
        writer.close()
        assert answer.startswith(b"HTTP/1.1 200"), answer[:80]


async def test_a_stalled_body_gets_408_within_the_bound(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from auction.web import bodies

    monkeypatch.setattr(bodies, "BODY_TIMEOUT_S", 0.5)
    async with serving(tmp_path, header_timeout_s=HEADER_S) as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(
            b"POST /api/accounts HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b'Content-Length: 100\r\n\r\n{"public_key": '
        )
        await writer.drain()
        started = time.monotonic()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5.0)
        elapsed = time.monotonic() - started
        length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
        body = await reader.readexactly(length)
        writer.close()
        assert head.startswith(b"HTTP/1.1 408"), head
        assert json.loads(body)["error"]["code"] == "TIMEOUT"
        assert 0.4 <= elapsed <= 2.0, elapsed


async def test_a_kept_alive_connection_that_stalls_its_next_request_is_closed(
    tmp_path: Path,
) -> None:
    async with serving(tmp_path, header_timeout_s=HEADER_S, keepalive_timeout=KEEPALIVE_S) as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5.0)
        assert head.startswith(b"HTTP/1.1 200")
        length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
        await reader.readexactly(length)
        writer.write(b"GET /healthz HTTP/1.1\r\nHo")  # the next request, stalled
        await writer.drain()
        elapsed, data = await _closed_after(reader, 5.0)
        writer.close()
        assert data == b"" and elapsed <= KEEPALIVE_S + 1.0, elapsed
