"""Fuzzing tile paths: `chain.parse_tile_path`, the auditor's confined reads
(`auction.audit.DirectorySource.read`) and the server's route `GET /log/tile/{path}`.

Documented: `parse_tile_path` accepts exactly the canonical tlog-tiles paths and raises
`MalformedError` (`TooLargeError` for over-long input) for everything else, including `..`,
`%2e%2e`, absolute paths and huge indices; `DirectorySource.read` raises `SourceError`
subclasses only and never reads outside its directory; the route answers 400 for a path that
is not canonical and 404 for a tile beyond the signed tree (or a path the router does not
know). Every case below also plants a secret file next to the log's files and checks that its
content never comes back.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

import pytest
from fuzz_kit import Check, Fuzzers, bounded, mutated, run_fuzzer
from hypothesis import strategies as st
from server_kit import add_lots, running_server

from auction.audit import DirectorySource, MissingFileError, SourceError
from chain import (
    MAX_TILE_PATH_LENGTH,
    ChainError,
    EntryBundle,
    MemoryTree,
    Tile,
    TooLargeError,
    entry_bundles_for_size,
    parse_tile_path,
    tiles_for_size,
)

SECRET = b"FUZZ-SECRET-7f3a9c do not serve me\n"

VALID_PATHS = tuple(
    sorted(
        {
            *(t.path for t in tiles_for_size(70_000)),
            *(b.path for b in entry_bundles_for_size(70_000)),
            Tile(0, 2**40 // 256).path,
            Tile(3, 5, 17).path,
            Tile(7, 0, 1).path,
            EntryBundle(123_456_789, 255).path,
            *(Tile(0, 0, width).path for width in range(1, 12)),
            *(EntryBundle(0, width).path for width in range(1, 12)),
        }
    )
)
TRAVERSALS = (
    "../",
    "..",
    "%2e%2e/",
    "%2E%2E%2F",
    "..%2f",
    "%252e%252e/",
    "/",
    "//",
    "\\..\\",
    "./",
    "~/",
    "/etc/passwd",
    "../../../../../../etc/passwd",
    "tile/../secret",
    "tile/0/../../secret",
    "tile/entries/../../secret",
    "\x00",
    "x999/x999/x999/x999/x999/x999/999",
    "x" + "9" * 30 + "/000",
    ".p/0",
    ".p/256",
    ".p/01",
)


@st.composite
def tile_paths(draw: st.DrawFn) -> str:
    """Canonical paths, near misses and traversal attempts."""
    kind = draw(st.integers(min_value=0, max_value=3))
    if kind == 0:
        return str(draw(st.text(max_size=120)))
    base: str = draw(st.sampled_from(VALID_PATHS))
    if kind == 1:
        return base
    if kind == 2:
        cut = draw(st.integers(min_value=0, max_value=len(base)))
        return base[:cut] + str(draw(st.sampled_from(TRAVERSALS))) + base[cut:]
    data = draw(mutated([base.encode()], max_ops=3))
    return data.decode("utf-8", "replace")


def check_tile_path(path: str) -> None:
    """`parse_tile_path`: `ChainError` only, and an accepted path is canonical and confined."""
    with bounded(1.0, "parse_tile_path"):
        try:
            tile = parse_tile_path(path)
        except ChainError as exc:
            if len(path) > MAX_TILE_PATH_LENGTH:
                assert isinstance(exc, TooLargeError)
            return
    assert tile.path == path
    assert path.startswith("tile/") and ".." not in path and "%" not in path
    assert "\\" not in path and "//" not in path and path.isascii()
    assert isinstance(tile, Tile | EntryBundle)


# --------------------------------------------------------------------------------------------
# The auditor's reads of an export directory


def _export(root: Path) -> tuple[DirectorySource, dict[str, bytes]]:
    tree = MemoryTree()
    for i in range(300):
        tree.append(b"entry %d" % i)
    files: dict[str, bytes] = {}
    export = root / "export"
    for tile in tiles_for_size(300):
        files[tile.path] = tree.tile(tile)
    for bundle in entry_bundles_for_size(300):
        files[bundle.path] = tree.entry_bundle(bundle)
    for path, data in files.items():
        (export / path).parent.mkdir(parents=True, exist_ok=True)
        (export / path).write_bytes(data)
    (root / "secret").write_bytes(SECRET)
    (export / "tile" / "secret").write_bytes(SECRET)
    # a tile whose file is a symlink pointing outside the export
    os.symlink(root / "secret", export / "tile" / "0" / "001")
    return DirectorySource(export), files


@contextlib.contextmanager
def export_reader() -> Iterator[Check]:
    folder = tempfile.mkdtemp(prefix="gavel-fuzz-tiles-")
    try:
        source, files = _export(Path(folder))

        def check(path: str) -> None:
            with bounded(1.0, "DirectorySource.read"):
                try:
                    data = source.read(path)
                except SourceError as exc:
                    assert str(exc)
                    return
            assert SECRET not in data
            assert data == files[path]

        yield check
    finally:
        shutil.rmtree(folder)


# --------------------------------------------------------------------------------------------
# The server's route


class _ServerThread:
    """A real server (`create_app`) with two lots, on its own event loop in a thread, so that
    synchronous Hypothesis checks can talk to it over real sockets."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.url = ""
        self.tiles: dict[str, bytes] = {}
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="fuzz-server", daemon=True)

    def __enter__(self) -> _ServerThread:
        self._thread.start()
        if not self._ready.wait(60):
            raise RuntimeError("the server did not start")
        if self._error is not None:
            raise RuntimeError("the server did not start") from self._error
        return self

    def __exit__(self, *exc: object) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(60)

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:  # reported to the test thread
            self._error = exc
            self._ready.set()

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        async with running_server(self.folder) as server:
            (server.data / "secret").write_bytes(SECRET)
            await add_lots(server)
            service = server.service
            for _ in range(200):
                if service.signed_checkpoint is not None and service.signed_checkpoint.size >= 3:
                    break
                await asyncio.sleep(0.05)
            head = service.signed_checkpoint
            assert head is not None, "no checkpoint was signed"
            every: list[Tile | EntryBundle] = [*tiles_for_size(head.size)]
            every.extend(entry_bundles_for_size(head.size))
            for tile in every:
                self.tiles[tile.path] = await service.read(service.ledger.ledger_tile, tile)
            self.url = server.url
            self._ready.set()
            await self._stop.wait()


def _get(url: str, raw_path: str) -> tuple[int, bytes]:
    """One HTTP/1.1 GET with the path exactly as given (no client-side normalisation)."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as connection:
        connection.sendall(
            f"GET {raw_path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode(
                "latin-1"
            )
        )
        chunks = []
        while chunk := connection.recv(65536):
            chunks.append(chunk)
    response = b"".join(chunks)
    head, _, body = response.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return status, body


def _request_path(path: str) -> str:
    # What a hostile client can put in a request line: keep `.`, `/`, `%` and `\` raw (so
    # `..`, `%2e%2e` and backslashes reach the server), percent-encode the rest.
    return "/log/tile/" + quote(path, safe="/%.\\~:")


@contextlib.contextmanager
def http_route() -> Iterator[Check]:
    folder = Path(tempfile.mkdtemp(prefix="gavel-fuzz-http-"))
    try:
        with _ServerThread(folder) as server:

            def check(path: str) -> None:
                target = _request_path(path.removeprefix("tile/"))
                with bounded(5.0, "GET /log/tile/"):
                    status, body = _get(server.url, target)
                assert SECRET not in body and b"root:" not in body
                # What the server sees once it decoded the request target.
                served = "tile/" + unquote(target.removeprefix("/log/tile/"))
                if status != 200:
                    assert status in (400, 404), (target, status, body[:200])
                    assert served not in server.tiles, (target, status)
                    return
                # Served: only a canonical tile path, with the bytes of that tile of the log.
                tile = parse_tile_path(served)
                if served in server.tiles:
                    assert body == server.tiles[served]
                known = [
                    data
                    for other, data in server.tiles.items()
                    if other.rsplit(".p/", 1)[0] == served.rsplit(".p/", 1)[0]
                ]
                assert all(d.startswith(body) or body.startswith(d) for d in known), served
                if isinstance(tile, Tile):
                    assert len(body) == 32 * tile.width

            yield check
    finally:
        shutil.rmtree(folder, ignore_errors=True)


FUZZERS: Fuzzers = {"tile path": (tile_paths(), check_tile_path)}


@contextlib.contextmanager
def _with_paths(
    context: Callable[[], contextlib.AbstractContextManager[Check]],
) -> Iterator[tuple[st.SearchStrategy[Any], Check]]:
    with context() as check:
        yield tile_paths(), check


CONTEXT_FUZZERS: dict[str, Callable[[], Any]] = {
    "export tile read": lambda: _with_paths(export_reader),
    "http /log/tile/": lambda: _with_paths(http_route),
}


def test_fuzz_tile_paths() -> None:
    run_fuzzer(FUZZERS, "tile path", 500)


def test_fuzz_export_reads() -> None:
    with export_reader() as check:
        run_fuzzer({"export tile read": (tile_paths(), check)}, "export tile read", 300)


def test_export_reads_refuse_a_symlink_out_and_a_missing_tile() -> None:
    with export_reader() as check:
        check("tile/0/001")
        check("tile/0/002")
    with tempfile.TemporaryDirectory() as folder:
        source, _ = _export(Path(folder))
        with pytest.raises(SourceError, match="outside"):
            source.read("tile/0/001")
        with pytest.raises(MissingFileError):
            source.read("tile/0/002")


@pytest.mark.slow
def test_fuzz_http_tile_route() -> None:
    with http_route() as check:
        for raw in ("../../secret", "%2e%2e/%2e%2e/secret", "..%2f..%2fsecret", "/etc/passwd"):
            check("tile/" + raw)
        run_fuzzer({"http": (tile_paths(), check)}, "http", 200)
