"""Shared helpers of the tests, first written for `test_notary_wiring.py`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

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

from auction.service import AuctionService
from auction.storage import POLICY_FILE, Storage
from auction.web.log import add_log_routes
from chain import Policy, parse_policy

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
