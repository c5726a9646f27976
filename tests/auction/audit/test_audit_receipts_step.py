"""`gavel audit verify EXPORT` step 10: every receipt in `EXPORT/receipts/` is checked against
its entry and the export's checkpoints; a tampered receipt fails naming the file."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from evidence_kit import build_data

from auction.audit import AuditError, AuditStep, DirectorySource, verify_ledger
from auction.cli import main


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("receipts")
    data = root / "data"
    build_data(data)
    out = root / "export"
    assert main(["ledger", "export", "--data", str(data), "--out", str(out)]) == 0
    return out


@pytest.fixture
def export(exported: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(exported, tmp_path / "export"))


def _receipts(export: Path) -> list[int]:
    return sorted(int(p.stem) for p in (export / "receipts").glob("*.tlog-proof"))


def _failure(export: Path) -> AuditError:
    with pytest.raises(AuditError) as caught:
        verify_ledger(DirectorySource(export), workers=0)
    return caught.value


def _check_cli(export: Path, name: str, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    assert main(["audit", "verify", str(export)]) == 1
    err = capsys.readouterr().err
    assert f"audit failed at step 10 receipts, {name}: " in err, err


def test_intact_export_passes_step_10(export: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert len(_receipts(export)) >= 2
    report = verify_ledger(DirectorySource(export), workers=0)
    assert AuditStep.RECEIPTS in report.steps_passed
    capsys.readouterr()
    assert main(["audit", "verify", str(export)]) == 0
    assert "10 receipts" in capsys.readouterr().out
    assert main(["audit", "verify", str(export), "--json"]) == 0
    value = json.loads(capsys.readouterr().out)
    assert {"step": 10, "name": "receipts", "status": "passed"} in value["steps"]


def test_flipped_byte_in_a_receipt_is_named(
    export: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    seq = _receipts(export)[0]
    name = f"receipts/{seq}.tlog-proof"
    path = export / name
    lines = path.read_bytes().split(b"\n")
    line = bytearray(lines[2])  # the first proof hash
    line[4] = ord("A") if line[4] != ord("A") else ord("B")
    lines[2] = bytes(line)
    path.write_bytes(b"\n".join(lines))
    error = _failure(export)
    assert error.step is AuditStep.RECEIPTS and error.path == name
    assert str(error).startswith(f"audit failed at step 10 receipts, {name}: ")
    _check_cli(export, name, capsys)
    assert main(["audit", "verify", str(export), "--json"]) == 1
    value = json.loads(capsys.readouterr().out)
    assert {"step": 10, "name": "receipts", "status": "failed"} in value["steps"]
    assert value["failure"]["file"] == name


def test_swapped_proof_hashes_are_named(export: Path, capsys: pytest.CaptureFixture[str]) -> None:
    seq = _receipts(export)[0]
    name = f"receipts/{seq}.tlog-proof"
    path = export / name
    lines = path.read_bytes().split(b"\n")
    hashes = [i for i, line in enumerate(lines) if i > 1 and len(line) == 44]
    assert len(hashes) >= 2
    first, second = hashes[:2]
    lines[first], lines[second] = lines[second], lines[first]
    path.write_bytes(b"\n".join(lines))
    error = _failure(export)
    assert error.path == name and "inclusion" in error.message
    _check_cli(export, name, capsys)


def test_a_receipt_for_another_entry_is_named(
    export: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    one, other = _receipts(export)[:2]
    name = f"receipts/{one}.tlog-proof"
    shutil.copyfile(export / "receipts" / f"{other}.tlog-proof", export / name)
    error = _failure(export)
    assert error.path == name
    _check_cli(export, name, capsys)


def test_an_edited_entry_file_is_named(export: Path, capsys: pytest.CaptureFixture[str]) -> None:
    seq = _receipts(export)[0]
    name = f"receipts/{seq}.entry"
    path = export / name
    data = path.read_bytes()
    match = re.search(rb'"price":(\d)', data)
    assert match is not None
    digit = data[match.start(1) : match.start(1) + 1]
    path.write_bytes(
        data[: match.start(1)] + (b"9" if digit != b"9" else b"8") + data[match.start(1) + 1 :]
    )
    error = _failure(export)
    assert error.path == name and f"not the log's entry {seq}" in error.message
    _check_cli(export, name, capsys)


def test_a_receipt_without_its_entry_or_a_stray_file_is_named(
    export: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    seq = _receipts(export)[0]
    (export / "receipts" / f"{seq}.entry").unlink()
    error = _failure(export)
    assert error.path == f"receipts/{seq}.tlog-proof" and "has no entry file" in error.message
    shutil.rmtree(export / "receipts")
    (export / "receipts").mkdir()
    (export / "receipts" / "notes.txt").write_text("added later")
    error = _failure(export)
    assert error.path == "receipts/notes.txt"
    _check_cli(export, "receipts/notes.txt", capsys)
