"""`gavel ledger export`: the layout `gavel audit` reads, fail-closed verification, atomic
writes; and the whole path `gavel demo` -> `gavel ledger export` as real subprocesses."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, update

from auction.cli import main
from auction.rules import SECOND
from auction.service import AuctionService
from auction.storage import Storage
from auction.verify import LedgerReplay
from chain import (
    EntryBundle,
    EntryType,
    Policy,
    Tile,
    leaf_hash,
    parse_entry,
    parse_entry_bundle,
    parse_policy,
    parse_tile_path,
    verify_receipt,
)
from chain.store import ENTRIES


class FakeClock:
    def __init__(self, now: int) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


@pytest.fixture
async def data_dir(tmp_path: Path, lot_scenarios: list[Any]) -> Path:
    """A data directory whose ledger holds every scenario (three sales), checkpointed."""
    data = tmp_path / "data"
    clock = FakeClock(min(s.commands[0][0] for s in lot_scenarios) - SECOND)
    async with AuctionService(Storage.open(data), clock=clock) as service:
        for scenario in lot_scenarios:
            await service.add_lot(scenario.lot_id, scenario.rules, scenario.title)
            for now, command in scenario.commands:
                clock.now = now
                await service.submit(scenario.lot_id, command)
    return data


def exported_entries(out: Path) -> list[bytes]:
    entries: list[bytes] = []
    bundles = sorted(
        (
            parse_tile_path(str(path.relative_to(out)))
            for path in (out / "tile" / "entries").rglob("*")
            if path.is_file()
        ),
        key=lambda bundle: bundle.index,
    )
    for bundle in bundles:
        assert isinstance(bundle, EntryBundle)
        entries.extend(parse_entry_bundle(bundle, (out / bundle.path).read_bytes()))
    return entries


def check_layout(out: Path, *, all_receipts: bool = False) -> tuple[Policy, list[bytes]]:
    """Everything the issue asks of OUT, checked as an auditor would (not with our exporter)."""
    policy = parse_policy((out / "policy").read_bytes())
    note = (out / "checkpoint").read_bytes()
    checkpoint = policy.verify_checkpoint(note).checkpoint
    entries = exported_entries(out)
    assert len(entries) == checkpoint.size
    for path in (out / "tile").rglob("*"):
        if path.is_file() and "entries" not in path.parts:
            tile = parse_tile_path(str(path.relative_to(out)))
            assert isinstance(tile, Tile) and tile.leaf_end <= checkpoint.size
            if tile.level == 0:
                expected = b"".join(leaf_hash(e) for e in entries[tile.leaf_begin : tile.leaf_end])
                assert path.read_bytes() == expected
    assert (out / "tile" / "0").is_dir()

    names = sorted(path.name for path in (out / "checkpoints").iterdir())
    assert names and all(len(name) == 20 and name.isdigit() for name in names)
    assert names[-1] == f"{checkpoint.size:020d}"
    assert (out / "checkpoints" / names[-1]).read_bytes() == note
    for name in names:
        older = policy.verify_checkpoint((out / "checkpoints" / name).read_bytes()).checkpoint
        assert older.size == int(name) and older.origin == checkpoint.origin

    sales = [seq for seq, e in enumerate(entries) if json.loads(e)["type"] == EntryType.SALE.value]
    wanted = set(range(len(entries))) if all_receipts else set(sales)
    receipts = {path.name for path in (out / "receipts").iterdir()} if wanted else set()
    assert receipts == {f"{seq}.tlog-proof" for seq in wanted} | {f"{seq}.entry" for seq in wanted}
    for seq in wanted:
        entry = (out / "receipts" / f"{seq}.entry").read_bytes()
        assert entry == entries[seq]
        proof = (out / "receipts" / f"{seq}.tlog-proof").read_bytes()
        verified = verify_receipt(proof, entry, None, policy)
        assert verified.index == seq and verified.checkpoint.checkpoint == checkpoint
    return policy, entries


async def test_export_writes_the_layout_with_a_receipt_per_sale(
    data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    assert main(["ledger", "export", "--data", str(data_dir), "--out", str(out)]) == 0
    assert "4 receipts (4 sales)" in capsys.readouterr().out  # with the fixed-price sale
    _, entries = check_layout(out)
    replay = LedgerReplay()
    for data in entries:
        entry = parse_entry(data)
        replay.add(entry.seq, entry.type.value, entry.time_us, entry.body, entry.actor.kid)
    assert replay.sales == 4 and replay.unsold_closures() == []
    assert replay.outcomes()["fixed-garage"]["leader_code"] == "P1-4K9D"

    everything = tmp_path / "everything"
    assert (
        main(
            [
                "ledger",
                "export",
                "--data",
                str(data_dir),
                "--out",
                str(everything),
                "--all-receipts",
            ]
        )
        == 0
    )
    check_layout(everything, all_receipts=True)


async def test_a_non_empty_out_is_refused_unless_forced(
    data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "precious").write_text("keep me")
    assert main(["ledger", "export", "--data", str(data_dir), "--out", str(out)]) == 1
    assert "not empty" in capsys.readouterr().err
    assert (out / "precious").read_text() == "keep me"
    assert main(["ledger", "export", "--data", str(data_dir), "--out", str(out), "--force"]) == 0
    assert not (out / "precious").exists()
    check_layout(out)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no leftovers

    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["ledger", "export", "--data", str(data_dir), "--out", str(empty)]) == 0
    check_layout(empty)


async def test_a_tampered_ledger_is_not_exported(
    data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with Storage.open(data_dir, read_only=True) as store:
        forged = bytearray(store.ledger_entries(5, 6)[0])
    forged[forged.index(b'"n":') + 4] ^= 1  # another command number, same length
    engine = create_engine(f"sqlite:///{data_dir / 'gavel.db'}")
    try:
        with engine.begin() as connection:  # bytes and leaf hash changed together
            statement = update(ENTRIES).where(ENTRIES.c.seq == 5)
            connection.execute(
                statement.values(data=bytes(forged), leaf_hash=leaf_hash(bytes(forged)))
            )
    finally:
        engine.dispose()
    out = tmp_path / "out"
    assert main(["ledger", "export", "--data", str(data_dir), "--out", str(out)]) == 1
    assert "do not make the tree of checkpoint" in capsys.readouterr().err
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_bad_sources_are_clear_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "missing"
    assert main(["ledger", "export", "--data", str(missing), "--out", str(tmp_path / "o")]) == 1
    assert "no gavel database" in capsys.readouterr().err and not missing.exists()
    code = main(["ledger", "export", "--url", "http://127.0.0.1:1/", "--out", str(tmp_path / "o")])
    assert (
        code == 1 and "gavel: error: GET http://127.0.0.1:1/log/policy" in capsys.readouterr().err
    )
    assert main(["ledger", "export", "--url", "file:///etc", "--out", str(tmp_path / "o")]) == 1
    with pytest.raises(SystemExit) as exited:
        main(["ledger", "export", "--out", str(tmp_path / "o")])  # no source
    assert exited.value.code == 2
    with pytest.raises(SystemExit) as exited:
        main(["ledger", "export", "--data", "a", "--url", "http://x/", "--out", "o"])
    assert exited.value.code == 2


@pytest.mark.slow
def test_demo_then_export_end_to_end(tmp_path: Path) -> None:
    data, out = tmp_path / "D", tmp_path / "E"
    demo = subprocess.run(
        [sys.executable, "-m", "auction.cli", "demo", "--bots", "5", "--duration", "12"]
        + ["--data", str(data), "--port", "0", "--seed", "5"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert demo.returncode == 0, demo.stdout + demo.stderr
    assert "latest checkpoint: size" in demo.stdout and "Traceback" not in demo.stderr
    export = subprocess.run(
        [sys.executable, "-m", "auction.cli", "ledger", "export", "--data", str(data)]
        + ["--out", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert export.returncode == 0, export.stdout + export.stderr
    policy, entries = check_layout(out)
    sales = [e for e in entries if json.loads(e)["type"] == "sale"]
    assert sales, demo.stdout  # the timed lots sold to the bots within the run
    assert (data / "policy").read_bytes() == (out / "policy").read_bytes()
    (log,) = policy.logs
    assert json.loads(entries[0])["body"]["vkey"] == log.verifier.vkey
    replay = LedgerReplay()
    for data_bytes in entries:
        entry = parse_entry(data_bytes)
        replay.add(entry.seq, entry.type.value, entry.time_us, entry.body, entry.actor.kid)
    assert replay.unsold_closures() == [] and replay.sales == len(sales)


@pytest.mark.postgres
async def test_export_from_a_postgresql_database(
    postgres_url: str, tmp_path: Path, lot_scenarios: list[Any]
) -> None:
    clock = FakeClock(min(s.commands[0][0] for s in lot_scenarios) - SECOND)
    async with AuctionService(Storage.open(postgres_url), clock=clock) as service:
        for scenario in lot_scenarios[:2]:
            await service.add_lot(scenario.lot_id, scenario.rules, scenario.title)
            for now, command in scenario.commands:
                clock.now = now
                await service.submit(scenario.lot_id, command)
    out = tmp_path / "out"
    assert main(["ledger", "export", "--db", postgres_url, "--out", str(out)]) == 0
    _, entries = check_layout(out)
    assert sum(json.loads(e)["type"] == "sale" for e in entries) == 1
