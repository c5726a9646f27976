"""`GET /log/proof/consistency` over a real server on 127.0.0.1: every proof between published
checkpoints (and from sizes between them) verifies with `chain.verify_consistency` against the
signed roots, a proof against another root fails, and a bad range is a 400 or 404 that says why."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from auction.rules import SECOND, RegisterBidder, english_timed
from auction.service import AuctionService
from auction.storage import Storage
from auction.web.errors import http_status
from auction.web.log import add_log_routes
from auction.web.log_proof import (
    ConsistencyRequest,
    ProofRequestError,
    add_log_proof_routes,
    parse_consistency_query,
)
from chain import ProofError, parse_policy, verify_consistency

Client = TestClient[web.Request, web.Application]


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[tuple[Client, dict[int, bytes]]]:
    """A service whose ledger grew in five waves (a published checkpoint after each), served by
    the real `/log/` routes; yields the client and the signed root of every published size."""
    service = AuctionService(Storage.open(tmp_path / "data"))
    await service.start()
    try:
        far = service.now() + 3600 * SECOND
        await service.add_lot(
            "crowd", english_timed(start_price=100, start_at=far, end_at=far + SECOND), "C"
        )
        bidder = 0
        for wave in (3, 1, 40, 7, 230):
            for _ in range(wave):
                await service.submit("crowd", RegisterBidder(f"b{bidder}", f"C-{bidder}", True))
                bidder += 1
            size = await asyncio.to_thread(service.ledger.ledger_size)  # type: ignore[union-attr]
            while service.checkpoint is None or service.checkpoint.size != size:
                await asyncio.sleep(0.02)
        app = web.Application()
        add_log_routes(app, lambda request: service)
        add_log_proof_routes(app, lambda request: service)
        async with TestClient(TestServer(app, host="127.0.0.1")) as client:
            policy = parse_policy(await (await client.get("/log/policy")).read())
            index = (await (await client.get("/log/checkpoints")).text()).split()
            roots = {}
            for name in index:
                note = await (await client.get(f"/log/checkpoints/{name}")).read()
                checkpoint = policy.verify_checkpoint(note).checkpoint
                roots[checkpoint.size] = checkpoint.root
            yield client, roots
    finally:
        await service.stop()


async def fetch_proof(client: Client, old: int, new: int) -> list[bytes]:
    async with client.get(f"/log/proof/consistency?from={old}&to={new}") as response:
        assert response.status == 200, await response.text()
        assert response.headers["Content-Type"].startswith("text/plain")
        assert "immutable" in response.headers["Cache-Control"]
        lines = (await response.text()).split("\n")
    assert lines[:3] == ["gavel/consistency/v1", f"old {old}", f"new {new}"] and lines[-1] == ""
    return [base64.b64decode(line, validate=True) for line in lines[3:-1]]


async def test_every_proof_between_published_checkpoints_verifies(
    served: tuple[Client, dict[int, bytes]],
) -> None:
    client, roots = served
    sizes = sorted(roots)
    assert len(sizes) >= 5 and sizes[-1] > 256  # several checkpoints, a full tile among them
    for i, old in enumerate(sizes):
        for new in sizes[i:]:
            proof = await fetch_proof(client, old, new)
            verify_consistency(old, new, proof, roots[old], roots[new])
            if old != new:
                assert proof, (old, new)
                wrong = bytes(32) if roots[old] != bytes(32) else b"\x01" * 32
                with pytest.raises(ProofError):
                    verify_consistency(old, new, proof, wrong, roots[new])
                with pytest.raises(ProofError):
                    verify_consistency(old, new, proof, roots[old], wrong)
    assert await fetch_proof(client, 0, sizes[-1]) == []


async def test_a_proof_from_any_size_below_a_published_one(
    served: tuple[Client, dict[int, bytes]],
) -> None:
    client, roots = served
    latest = max(roots)
    first = min(roots)
    proof = await fetch_proof(client, first + 1, latest)  # not itself a published size
    assert proof
    # Its old root is unknown here, but the proof must not fit the neighbouring signed root.
    with pytest.raises(ProofError):
        verify_consistency(first + 1, latest, proof, roots[first], roots[latest])


BAD_RANGES = [
    ("", 400, "from is missing"),
    ("from=1", 400, "to is missing"),
    ("to=5", 400, "from is missing"),
    ("from=01&to=5", 400, "from must be a tree size"),
    ("from=-1&to=5", 400, "from must be a tree size"),
    ("from=1&to=5x", 400, "to must be a tree size"),
    ("from=1&to=99999999999999999999", 400, "to must be a tree size"),
    ("from=1&to=9999999999999999999", 400, "to must be a tree size"),
    ("from=9&to=5", 400, "from (9) is larger than to (5)"),
]


async def test_a_bad_range_is_a_400_and_an_unpublished_size_a_404_that_say_why(
    served: tuple[Client, dict[int, bytes]],
) -> None:
    client, roots = served
    unpublished = next(size for size in range(1, max(roots)) if size not in roots)
    cases = [
        *BAD_RANGES,
        (f"from=1&to={unpublished}", 404, f"no published checkpoint of size {unpublished}"),
        (f"from=0&to={max(roots) + 1}", 404, "no published checkpoint of size"),
    ]
    for query, status, words in cases:
        async with client.get(f"/log/proof/consistency?{query}") as response:
            assert response.status == status, query
            assert words in await response.text(), query


def test_the_query_parser_alone() -> None:
    assert parse_consistency_query({"from": "0", "to": "0"}) == ConsistencyRequest(0, 0)
    assert parse_consistency_query({"from": "7", "to": "300"}) == ConsistencyRequest(7, 300)
    with pytest.raises(ProofRequestError) as caught:
        parse_consistency_query({"from": "3", "to": "2"})
    assert http_status(caught.value) == 400
