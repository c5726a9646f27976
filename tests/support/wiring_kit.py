"""Shared helpers of the tests, first written for `test_notary_wiring.py`."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from notary_kit import (
    NotaryProcess,
    free_port,
    notary_group,
    open_lot,
    quorum_policy,
    start_notaries,
    stop_notaries,
)

from auction.service import AuctionService, checkpointer
from auction.storage import POLICY_FILE, Storage
from auction.web.log import add_log_routes
from chain import TILE_WIDTH, EntryBundle, Policy, parse_policy
from notary import client as notary_client
from notary.client import Refused

__all__ = ["Setup", "open_lot", "setup"]


@dataclass
class Setup:
    service: AuctionService
    store: Storage
    notaries: list[NotaryProcess]
    policy: Policy
    log_url: str
    http: aiohttp.ClientSession


@pytest.fixture
async def setup(tmp_path: Path) -> AsyncIterator[Setup]:
    data = tmp_path / "data"
    store = Storage.open(data)
    assert store.house is not None
    notaries = notary_group(tmp_path)
    policy = quorum_policy(store.house.vkey, notaries)
    store.use_policy(policy)
    assert (data / POLICY_FILE).read_bytes() == policy
    port = free_port()
    log_url = f"http://127.0.0.1:{port}"
    service = AuctionService(store, checkpoint_delay=0.1, notary_retry=0.3)
    app = web.Application()
    add_log_routes(app, lambda request: service)
    runner = web.AppRunner(app)
    started: list[NotaryProcess] = []
    try:
        started = await start_notaries(notaries, [log_url] * len(notaries), data / POLICY_FILE)
        await service.start()
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        async with aiohttp.ClientSession() as http:
            yield Setup(service, store, notaries, parse_policy(policy), log_url, http)
    finally:
        await service.stop()
        await runner.cleanup()
        await stop_notaries(started)


async def get(setup: Setup, path: str, authorization: str | None = None) -> tuple[int, bytes]:
    """`GET /log/<path>` on the setup's log, as anyone (or with `authorization`)."""
    headers = {"Authorization": authorization} if authorization else {}
    async with setup.http.get(f"{setup.log_url}/log/{path}", headers=headers) as response:
        return response.status, await response.read()


async def public_log(setup: Setup, size: int) -> tuple[list[int], bytes]:
    """The statuses of every entry bundle and receipt of the first `size` entries, and all
    their bytes (receipts' entries decoded)."""
    statuses: list[int] = []
    seen = b""
    for index in range((size + TILE_WIDTH - 1) // TILE_WIDTH):
        bundle = EntryBundle(index, min(TILE_WIDTH, size - index * TILE_WIDTH))
        status, body = await get(setup, bundle.path)
        statuses.append(status)
        seen += body
    for seq in range(size):
        status, body = await get(setup, f"receipt/{seq}")
        statuses.append(status)
        if status == 200:
            seen += body + base64.b64decode(json.loads(body)["entry"])
    return statuses, seen


@dataclass
class Cosignatures:
    """The checkpointer's cosignature rounds seen since `count_cosignatures`, and the refusals."""

    rounds: int = 0
    refused: list[Refused] = field(default_factory=list)


def count_cosignatures(monkeypatch: pytest.MonkeyPatch) -> Cosignatures:
    """Count the checkpointer's cosignature rounds and collect the notaries' refusals."""
    seen = Cosignatures()
    original = notary_client.request_cosignatures

    async def counted(*args: Any, **kwargs: Any) -> Any:
        result = await original(*args, **kwargs)
        seen.rounds += 1
        seen.refused.extend(result.refused)
        return result

    monkeypatch.setattr(checkpointer, "request_cosignatures", counted)
    return seen
