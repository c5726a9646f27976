"""The auditor over HTTP: an export served under `/log/` by a tiny aiohttp app on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from ledger_kit import Export, standard_ledger

from auction.audit import (
    AuditError,
    AuditStep,
    DirectorySource,
    HttpSource,
    SourceError,
    compare,
    open_source,
    verify_ledger,
)
from auction.cli import main
from chain import EntryBundle, Tile

STANDARD = standard_ledger(busy_rounds=4)

Serve = Callable[..., "asyncio.Future[str]"]


def log_app(directory: Path, *, listing: bool, broken: set[str]) -> web.Application:
    """GET /log/<path> -> directory/<path>; /log/checkpoints lists the history if asked."""
    root = directory.resolve()

    async def serve(request: web.Request) -> web.StreamResponse:
        path = request.match_info["path"]
        if path in broken:
            raise web.HTTPInternalServerError()
        if path == "checkpoints" and listing:
            names = sorted(item.name for item in (root / "checkpoints").iterdir())
            return web.Response(text="".join(name + "\n" for name in names))
        target = (root / path).resolve()
        if not target.is_relative_to(root) or not target.is_file():
            raise web.HTTPNotFound()
        return web.Response(body=target.read_bytes(), content_type="application/octet-stream")

    app = web.Application()
    app.router.add_get("/log/{path:.*}", serve)
    return app


@pytest.fixture
def export(tmp_path: Path) -> Export:
    return STANDARD.write(tmp_path / "export")


@pytest.fixture
async def serve(export: Export) -> AsyncIterator[Callable[..., object]]:
    servers: list[TestServer] = []

    async def start(*, listing: bool = True, broken: tuple[str, ...] = ()) -> str:
        server = TestServer(log_app(export.directory, listing=listing, broken=set(broken)))
        await server.start_server()
        servers.append(server)
        return str(server.make_url("/"))

    yield start
    for server in servers:
        await server.close()


async def test_verify_over_http_matches_the_directory(export: Export, serve: Serve) -> None:
    url = await serve()
    over_http = await asyncio.to_thread(verify_ledger, HttpSource(url), workers=0)
    local = verify_ledger(DirectorySource(export.directory), workers=0)
    assert over_http.ok and over_http.history == local.history
    as_http, as_local = json.loads(over_http.to_json()), json.loads(local.to_json())
    assert as_http.pop("source") == url and as_local.pop("source") == str(export.directory)
    assert as_http == as_local


async def test_without_a_history_listing_the_latest_is_verified(serve: Serve) -> None:
    url = await serve(listing=False)
    report = await asyncio.to_thread(verify_ledger, HttpSource(url + "log/"), workers=0)
    assert report.ok and report.history is None
    assert "checkpoint history unavailable: verified against the latest checkpoint only" in (
        report.notes
    )


async def test_a_missing_tile_over_http_fails_roots(export: Export, serve: Serve) -> None:
    (export.directory / Tile(0, 0, min(STANDARD.size, 256)).path).unlink()
    url = await serve()
    with pytest.raises(AuditError) as caught:
        await asyncio.to_thread(verify_ledger, HttpSource(url), workers=0)
    assert (caught.value.step, caught.value.seq) == (AuditStep.ROOTS, 0)


async def test_a_server_error_gives_no_verdict(serve: Serve) -> None:
    url = await serve(broken=(EntryBundle(0, min(STANDARD.size, 256)).path,))
    with pytest.raises(SourceError) as caught:
        await asyncio.to_thread(verify_ledger, HttpSource(url), workers=0)
    assert not isinstance(caught.value, AuditError)
    assert "HTTP 500" in str(caught.value)


async def test_cli_and_compare_take_urls(export: Export, serve: Serve) -> None:
    url = await serve()
    status = await asyncio.to_thread(main, ["audit", "verify", url])
    assert status == 0
    report = await asyncio.to_thread(compare, open_source(url), open_source(str(export.directory)))
    assert report.consistent


def test_http_source_refuses_what_is_not_an_http_url() -> None:
    for url in ("ftp://example.org/", "http://", "http://example.org/?x=1"):
        with pytest.raises(SourceError):
            HttpSource(url)
    assert isinstance(open_source("https://example.org"), HttpSource)


async def test_unreachable_server_gives_no_verdict() -> None:
    with pytest.raises(SourceError):
        await asyncio.to_thread(verify_ledger, HttpSource("http://127.0.0.1:9/", timeout=2))


def _trickling_server(stop: threading.Event) -> tuple[socket.socket, threading.Thread]:
    """An HTTP server that promises 100,000 bytes and sends one every 50 ms."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.settimeout(0.2)

    def serve() -> None:
        while not stop.is_set():
            try:
                connection, _ = listener.accept()
            except TimeoutError:
                continue
            with connection:
                connection.recv(4096)
                connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n")
                while not stop.is_set():
                    try:
                        connection.sendall(b"x")
                    except OSError:
                        break
                    time.sleep(0.05)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return listener, thread


def test_a_server_that_trickles_bytes_is_given_up_on_in_time() -> None:
    """Each read has a total deadline, not only a timeout per wait for data: a server sending
    a byte every 50 ms (never idle long enough for the socket timeout) is refused after it."""
    from auction.ledger_export import ExportError
    from auction.ledger_export import HttpSource as ExportSource

    stop = threading.Event()
    listener, thread = _trickling_server(stop)
    url = f"http://127.0.0.1:{listener.getsockname()[1]}/"
    try:
        started = time.monotonic()
        with pytest.raises(SourceError, match="not read within"):
            HttpSource(url, timeout=1.0).policy()
        assert time.monotonic() - started < 3.0
        started = time.monotonic()
        with pytest.raises(ExportError, match="not read within"):
            ExportSource(url, timeout=1.0).policy()
        assert time.monotonic() - started < 3.0
    finally:
        stop.set()
        thread.join(5)
        listener.close()
