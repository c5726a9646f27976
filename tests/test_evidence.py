"""`gavel evidence LOT` and `gavel audit evidence DIR`: a sold lot's package from a real
SQLite ledger verifies offline; one edited byte in each kind of file is named with its step;
the report is plain words with entry numbers."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest

from auction.cli import main
from auction.evidence_audit import EvidenceFailure, verify_evidence_package
from auction.rules import SECOND
from auction.service import AuctionService
from auction.storage import Storage
from chain import EntryType


class FakeClock:
    def __init__(self, now: int) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


SEGMENTS = 3


@pytest.fixture
async def data_dir(tmp_path: Path, lot_scenarios: list[Any]) -> Path:
    """A data directory with every scenario (sales among them) run through the service on
    SQLite, and a recording of three segments for the first sold lot."""
    data = tmp_path / "data"
    clock = FakeClock(min(s.commands[0][0] for s in lot_scenarios) - SECOND)
    async with AuctionService(Storage.open(data), clock=clock) as service:
        for scenario in lot_scenarios:
            await service.add_lot(scenario.lot_id, scenario.rules, scenario.title)
            for position, (now, command) in enumerate(scenario.commands):
                clock.now = now
                await service.submit(scenario.lot_id, command)
                if scenario is lot_scenarios[0] and position < SEGMENTS:
                    await _record_segment(service, data, scenario.lot_id, position)
    return data


async def _record_segment(service: AuctionService, data: Path, lot_id: str, index: int) -> None:
    folder = data / "recordings" / lot_id / "720p"
    folder.mkdir(parents=True, exist_ok=True)
    payload = f"segment {index} of {lot_id}".encode() * 50
    (folder / f"seg-{index:08d}.gvs").write_bytes(payload)
    previous = (
        hashlib.sha256((folder / f"seg-{index - 1:08d}.gvs").read_bytes()).hexdigest()
        if index
        else "0" * 64
    )
    body = {
        "v": 1,
        "lot": lot_id,
        "rendition": "720p",
        "index": index,
        "sha256": hashlib.sha256(payload).hexdigest(),
        "prev": previous,
        "bytes": len(payload),
    }
    await service.record(EntryType.STREAM_SEGMENT, body)


def sold_lot(lot_scenarios: list[Any]) -> str:
    return str(lot_scenarios[0].lot_id)


@pytest.fixture
def package(data_dir: Path, tmp_path: Path, lot_scenarios: list[Any]) -> Path:
    out = tmp_path / "evidence"
    lot = sold_lot(lot_scenarios)
    code = main(
        ["evidence", lot, "--data", str(data_dir), "--out", str(out), "--with-recording"]
    )
    assert code == 0
    return out


def test_package_verifies_offline(package: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["audit", "evidence", str(package)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("evidence OK: lot ")
    report = verify_evidence_package(package)
    assert report.status == "sold" and report.segments_checked == SEGMENTS
    manifest = json.loads((package / "manifest.json").read_text())
    assert manifest["sale"]["confirmation_sha256"]
    assert len(manifest["segments"]) == SEGMENTS
    assert sorted(p.name for p in (package / "recording" / "720p").iterdir()) == [
        f"seg-{i:08d}.gvs" for i in range(SEGMENTS)
    ]
    print(out)
