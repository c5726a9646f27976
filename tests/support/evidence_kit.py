"""A real SQLite ledger for the evidence and receipt tests: every lot scenario of
`conftest.scenarios()` run through `AuctionService` (several sales), with three recorded
segments (files under DATA/recordings/<lot>/720p/ and their `stream_segment` entries) for the
first lot, which is sold."""

from __future__ import annotations

import asyncio
import hashlib
import importlib.util
import sys
from pathlib import Path
from typing import Any

from aiohttp import web
from notary_kit import (
    NotaryProcess,
    free_port,
    notary_group,
    quorum_policy,
    start_notaries,
    stop_notaries,
)

from auction.catalogue.facts import anchor_document
from auction.rules import SECOND
from auction.service import AuctionService
from auction.storage import POLICY_FILE, Storage
from auction.web.log import add_log_routes
from chain import EntryType, format_time


def scenarios() -> list[Any]:
    """`tests/conftest.py`'s lot scenarios, loaded by path (tests/chain has a conftest too)."""
    spec = importlib.util.spec_from_file_location(
        "gavel_lot_scenarios", Path(__file__).resolve().parents[1] / "conftest.py"
    )
    assert spec is not None and spec.loader is not None
    module = sys.modules.get(spec.name)
    if module is None:
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # dataclasses look their module up while defined
        spec.loader.exec_module(module)
    return list(module.scenarios())


SEGMENTS = 3
DOCUMENTS = (("announcement", "announcement.txt"), ("sale_confirmation", "confirmation.txt"))
RENDITION = "720p"


class FakeClock:
    def __init__(self, now: int) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


def build_data(data: Path) -> str:
    """Fill `data`; returns the id of the sold lot that has the recording."""
    return asyncio.run(_build(data))


def build_notarized_data(data: Path) -> str:
    """The same, with three real notary processes (`gavel notary serve`) co-signing every
    published checkpoint, 2 of 3 (the log served to them over 127.0.0.1)."""
    return asyncio.run(_build(data, notaries=True))


async def _build(data: Path, *, notaries: bool = False) -> str:
    lots = scenarios()
    clock = FakeClock(min(s.commands[0][0] for s in lots) - SECOND)
    store = Storage.open(data)
    group: list[NotaryProcess] = []
    runner: web.AppRunner | None = None
    options: dict[str, Any] = {}
    if notaries:
        assert store.house is not None
        group = notary_group(data.parent / "notaries")
        store.use_policy(quorum_policy(store.house.vkey, group))
        options = {"checkpoint_delay": 0.1, "notary_retry": 0.3}
    service = AuctionService(store, clock=clock, **options)
    try:
        if notaries:
            port = free_port()
            app = web.Application()
            add_log_routes(app, lambda request: service)
            runner = web.AppRunner(app)
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", port).start()
            url = f"http://127.0.0.1:{port}"
            await start_notaries(group, [url] * len(group), data / POLICY_FILE)
        await service.start()
        for scenario in lots:
            await service.add_lot(scenario.lot_id, scenario.rules, scenario.title)
            for position, (now, command) in enumerate(scenario.commands):
                clock.now = now
                await service.submit(scenario.lot_id, command)
                if scenario is lots[0] and position < SEGMENTS:
                    await _record_segment(service, data, scenario.lot_id, position)
            if scenario is lots[0]:  # its documents, before the other lots' entries
                for kind, name in DOCUMENTS:
                    content = name.encode() * 10
                    await anchor_document(
                        service, scenario.lot_id, kind, name, "text/plain", content
                    )
        if notaries:
            assert await service.settle(30), "the notaries did not co-sign the last checkpoint"
    finally:
        await service.stop()
        if runner is not None:
            await runner.cleanup()
        await stop_notaries(group)
    return str(lots[0].lot_id)


async def _record_segment(service: AuctionService, data: Path, lot_id: str, index: int) -> None:
    folder = data / "recordings" / lot_id / RENDITION
    folder.mkdir(parents=True, exist_ok=True)
    payload = f"segment {index} of {lot_id}\n".encode() * 50
    previous = "0" * 64
    if index:
        previous = hashlib.sha256((folder / f"seg-{index - 1:08d}.gvs").read_bytes()).hexdigest()
    (folder / f"seg-{index:08d}.gvs").write_bytes(payload)
    body = {
        "v": 1,
        "lot": lot_id,
        "rendition": RENDITION,
        "index": index,
        "sha256": hashlib.sha256(payload).hexdigest(),
        "prev": previous,
        "bytes": len(payload),
        "start": format_time(service.now()),
    }
    await service.record(EntryType.STREAM_SEGMENT, body)
