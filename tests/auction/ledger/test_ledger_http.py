"""The ledger's HTTP read API over a real server on 127.0.0.1, and `gavel ledger export` from a
data directory and from that server, which must write identical trees."""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from auction.cli import main
from auction.rules import SECOND, RegisterBidder, english_timed
from auction.service import AuctionService
from auction.storage import PARTIAL_TILE_CACHE_SIZE, Storage
from auction.web import Settings, create_app
from auction.web.log import add_log_routes
from chain import (
    TILE_WIDTH,
    EntryBundle,
    Tile,
    leaf_hash,
    parse_entry,
    parse_entry_bundle,
    parse_policy,
    parse_tile,
    tiles_for_size,
    verify_receipt,
)

Client = TestClient[web.Request, web.Application]


class FakeClock:
    def __init__(self, now: int) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


@pytest.fixture
async def served(
    tmp_path: Path, lot_scenarios: list[Any]
) -> AsyncIterator[tuple[Client, AuctionService, Path]]:
    """A service that ran every scenario plus 300 registrations (full tiles, sales), at rest,
    its ledger served by the real `/log/` routes on 127.0.0.1."""
    data = tmp_path / "data"
    clock = FakeClock(min(s.commands[0][0] for s in lot_scenarios) - SECOND)
    service = AuctionService(Storage.open(data), clock=clock)
    await service.start()
    try:
        for scenario in lot_scenarios:
            await service.add_lot(scenario.lot_id, scenario.rules, scenario.title)
            for now, command in scenario.commands:
                clock.now = now
                await service.submit(scenario.lot_id, command)
        far = clock.now + 3600 * SECOND
        await service.add_lot(
            "crowd", english_timed(start_price=100, start_at=far, end_at=far + SECOND), "C"
        )
        await asyncio.gather(
            *(
                service.submit(
                    "crowd", RegisterBidder(bidder=f"b{i}", code=f"C-{i}", kyc_verified=True)
                )
                for i in range(300)
            )
        )
        size = await asyncio.to_thread(service.ledger.ledger_size)  # type: ignore[union-attr]
        while service.checkpoint is None or service.checkpoint.size != size:
            await asyncio.sleep(0.02)
        app = web.Application()
        add_log_routes(app, lambda request: service)
        async with TestClient(TestServer(app, host="127.0.0.1")) as client:
            yield client, service, data
    finally:
        await service.stop()


async def get_bytes(client: Client, path: str) -> tuple[int, bytes, Any]:
    async with client.get(path) as response:
        return response.status, await response.read(), response.headers


async def test_checkpoint_policy_and_tiles(served: tuple[Client, AuctionService, Path]) -> None:
    client, service, _ = served
    status, policy_bytes, headers = await get_bytes(client, "/log/policy")
    assert status == 200 and headers["Content-Type"].startswith("text/plain")
    policy = parse_policy(policy_bytes)
    status, note, headers = await get_bytes(client, "/log/checkpoint")
    assert status == 200 and headers["Cache-Control"] == "no-cache"
    checkpoint = policy.verify_checkpoint(note).checkpoint
    head = service.checkpoint
    assert head is not None and checkpoint.size == head.size > TILE_WIDTH
    size = checkpoint.size

    leaves: list[bytes] = []
    for bundle_index in range((size + TILE_WIDTH - 1) // TILE_WIDTH):
        width = min(TILE_WIDTH, size - bundle_index * TILE_WIDTH)
        bundle = EntryBundle(bundle_index, width)
        status, data, headers = await get_bytes(client, "/log/" + bundle.path)
        assert status == 200 and headers["Content-Type"] == "application/octet-stream"
        for seq, entry in enumerate(parse_entry_bundle(bundle, data), start=bundle.leaf_begin):
            assert parse_entry(entry).seq == seq
            leaves.append(leaf_hash(entry))
    tiles = tiles_for_size(size)
    assert any(not tile.is_partial for tile in tiles) and any(tile.is_partial for tile in tiles)
    for tile in tiles:
        status, data, headers = await get_bytes(client, "/log/" + tile.path)
        assert status == 200
        if tile.is_partial:
            assert headers["Cache-Control"] == "public, max-age=5"
        else:
            assert headers["Cache-Control"] == "public, max-age=31536000, immutable"
        if tile.level == 0:
            assert parse_tile(tile, data) == leaves[tile.leaf_begin : tile.leaf_end]

    status, listing, _ = await get_bytes(client, "/log/checkpoints")
    names = listing.decode().split()
    assert status == 200 and names[-1] == f"{size:020d}" and names == sorted(names)
    for name in names:
        status, older, headers = await get_bytes(client, f"/log/checkpoints/{name}")
        assert status == 200 and "immutable" in headers["Cache-Control"]
        assert policy.verify_checkpoint(older).checkpoint.size == int(name)
    assert (await get_bytes(client, "/log/checkpoints/12"))[0] == 400
    assert (await get_bytes(client, "/log/checkpoints/" + "9" * 20))[0] == 404


MALFORMED = [
    "/log/tile/0/%2e%2e/%2e%2e/checkpoint",
    "/log/tile/0/../../checkpoint",
    "/log/tile/0/..%2f..%2fpolicy",
    "/log/tile/0/000.p/..%5c..%5c001",
    "/log/tile/0/1",
    "/log/tile/00/000",
    "/log/tile/0/000.p/256",
    "/log/tile/0/000.p/0",
    "/log/tile/0/000.p/007",
    "/log/tile/64/000",
    "/log/tile/entries/x001",
    "/log/tile/0/x000/000",
    "/log/tile/0/000/",
    "/log/tile/0/000%00",
    "/log/tile/" + "x001/" * 30 + "000",
    "/log/tile/",
    "/log/receipt/01",
    "/log/receipt/-1",
    "/log/receipt/1e3",
]


async def test_malformed_paths_are_400(served: tuple[Client, AuctionService, Path]) -> None:
    client, _, _ = served
    for path in MALFORMED:
        assert await raw_status(client, path) == 400, path


async def raw_status(client: Client, path: str) -> int:
    """GET `path` byte for byte (HTTP clients normalise `..` away before sending)."""
    assert client.server.port is not None
    reader, writer = await asyncio.open_connection("127.0.0.1", client.server.port)
    try:
        writer.write(
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode()
        )
        await writer.drain()
        status_line = await reader.readline()
    finally:
        writer.close()
        await writer.wait_closed()
    return int(status_line.split()[1])


async def test_beyond_the_published_tree_is_404(
    served: tuple[Client, AuctionService, Path],
) -> None:
    client, service, _ = served
    head = service.checkpoint
    assert head is not None
    beyond = [
        Tile(0, head.size // TILE_WIDTH, head.size % TILE_WIDTH + 1).path,
        Tile(0, head.size // TILE_WIDTH + 1).path,
        Tile(1, 0).path,
        EntryBundle(head.size // TILE_WIDTH + 1).path,
        f"receipt/{head.size}",
    ]
    for path in beyond:
        async with client.get("/log/" + path) as response:
            assert response.status == 404, path


async def test_receipts_verify(served: tuple[Client, AuctionService, Path]) -> None:
    client, service, _ = served
    policy = parse_policy((await get_bytes(client, "/log/policy"))[1])
    head = service.checkpoint
    assert head is not None
    timings = []
    for seq in (0, 1, 17, 255, 256, head.size - 1):
        started = time.perf_counter()
        async with client.get(f"/log/receipt/{seq}") as response:
            assert response.status == 200
            body = await response.json()
        timings.append(time.perf_counter() - started)
        assert body["seq"] == seq and body["size"] == head.size
        entry = base64.b64decode(body["entry"])
        verified = verify_receipt(body["proof"].encode(), entry, None, policy)
        assert verified.index == seq and verified.checkpoint.checkpoint.size == head.size
    assert max(timings) < 2.0  # generous: reads run on reader threads, typically ~ms


async def test_partial_tiles_are_cached_apart_and_push_no_full_tile_out(
    served: tuple[Client, AuctionService, Path],
) -> None:
    # Each new tree size makes new partial tiles (notaries ask for them at every checkpoint):
    # they get a small cache of their own, and the full tiles stay cached.
    client, service, _ = served
    store = service.ledger
    assert isinstance(store, Storage)
    head = service.checkpoint
    widths = range(1, PARTIAL_TILE_CACHE_SIZE + 20)
    assert head is not None and head.size - TILE_WIDTH > widths[-1]
    full = Tile(0, 0)
    status, full_bytes, _ = await get_bytes(client, f"/log/{full.path}")
    assert status == 200 and full in store._tiles
    widest = await service.read(store.ledger_tile, Tile(0, 1, head.size - TILE_WIDTH))
    for width in widths:
        partial = Tile(0, 1, width)
        status, data, _ = await get_bytes(client, f"/log/{partial.path}")
        assert status == 200 and len(data) == 32 * width
        assert data == widest[: 32 * width]
    assert list(store._partial_tiles) == [Tile(0, 1, w) for w in widths][-PARTIAL_TILE_CACHE_SIZE:]
    assert full in store._tiles
    assert all(not tile.is_partial for tile in store._tiles)
    assert (await get_bytes(client, f"/log/{full.path}"))[1] == full_bytes


async def test_export_from_data_and_from_url_are_identical(
    served: tuple[Client, AuctionService, Path], tmp_path: Path
) -> None:
    client, service, data = served
    url = str(client.make_url("/"))
    from_url, from_data = tmp_path / "from-url", tmp_path / "from-data"
    assert (
        await asyncio.to_thread(main, ["ledger", "export", "--url", url, "--out", str(from_url)])
        == 0
    )
    assert (
        await asyncio.to_thread(
            main, ["ledger", "export", "--data", str(data), "--out", str(from_data)]
        )
        == 0
    )
    files_url, files_data = tree(from_url), tree(from_data)
    # without an auditor session the URL export is the public log: no openings of sealed values
    assert "openings.json" in files_data and "openings.json" not in files_url
    del files_data["openings.json"]
    assert files_url == files_data
    head = service.checkpoint
    assert head is not None
    assert files_url["checkpoint"] == head.note
    assert any(name.startswith("receipts/") for name in files_url)
    assert f"checkpoints/{head.size:020d}" in files_url and "policy" in files_url


async def test_the_composition_root_serves_the_log(tmp_path: Path) -> None:
    app = create_app(Settings(data_dir=tmp_path / "data", bots=0, duration=600))
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        deadline = time.monotonic() + 10
        while True:
            async with client.get("/log/checkpoint") as response:
                if response.status == 200:
                    note = await response.read()
                    break
                assert response.status == 503 and response.headers["Retry-After"] == "1"
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
        async with client.get("/log/policy") as response:
            policy = parse_policy(await response.read())
        size = policy.verify_checkpoint(note).checkpoint.size
        assert size >= 1
        async with client.get(f"/log/receipt/{size - 1}") as response:
            body = await response.json()
        verify_receipt(body["proof"].encode(), base64.b64decode(body["entry"]), None, policy)
        async with aiohttp.ClientSession() as session:  # a plain client, as a mirror would be
            async with session.get(client.make_url("/log/tile/entries/000.p/1")) as response:
                assert response.status == 200
                assert response.headers["Access-Control-Allow-Origin"] == "*"


def tree(root: Path) -> dict[str, bytes]:
    return {
        str(path.relative_to(root)): path.read_bytes()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }
