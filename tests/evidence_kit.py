"""A real SQLite ledger for the evidence and receipt tests: every lot scenario of
`conftest.scenarios()` run through `AuctionService` (several sales), with three recorded
segments (files under DATA/recordings/<lot>/720p/ and their `stream_segment` entries) for the
first lot, which is sold."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

from conftest import scenarios

from auction.rules import SECOND
from auction.service import AuctionService
from auction.storage import Storage
from chain import EntryType

SEGMENTS = 3
RENDITION = "720p"


class FakeClock:
    def __init__(self, now: int) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


def build_data(data: Path) -> str:
    """Fill `data`; returns the id of the sold lot that has the recording."""
    return asyncio.run(_build(data))


async def _build(data: Path) -> str:
    lots = scenarios()
    clock = FakeClock(min(s.commands[0][0] for s in lots) - SECOND)
    async with AuctionService(Storage.open(data), clock=clock) as service:
        for scenario in lots:
            await service.add_lot(scenario.lot_id, scenario.rules, scenario.title)
            for position, (now, command) in enumerate(scenario.commands):
                clock.now = now
                await service.submit(scenario.lot_id, command)
                if scenario is lots[0] and position < SEGMENTS:
                    await _record_segment(service, data, scenario.lot_id, position)
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
    }
    await service.record(EntryType.STREAM_SEGMENT, body)
