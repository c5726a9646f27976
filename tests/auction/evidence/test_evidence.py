"""`gavel evidence LOT` and `gavel audit evidence DIR`: a sold lot's package, built from a real
SQLite ledger, verifies offline; one edited byte in each kind of file is named with its step;
the report is plain words with entry numbers, no engine names, no personal data."""

from __future__ import annotations

import html
import json
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from evidence_kit import DOCUMENTS, RENDITION, SEGMENTS, build_notarized_data

from auction.audit.evidence_package import EvidenceFailure, verify_evidence_package
from auction.cli import main
from auction.rules import Result
from auction.rules.errors import RejectReason
from auction.rules.states import DepositState, LotStatus
from chain import EntryType, parse_entry


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, Path]:
    """(data directory, sold lot, its evidence package), built once through the CLI from a
    ledger co-signed by three notary processes (2 of 3)."""
    root = tmp_path_factory.mktemp("evidence")
    data = root / "data"
    lot = build_notarized_data(data)
    out = root / "package"
    args = ["evidence", lot, "--data", str(data), "--out", str(out), "--with-recording"]
    assert main(args) == 0
    return data, lot, out


@pytest.fixture
def package(built: tuple[Path, str, Path], tmp_path: Path) -> Path:
    """A fresh copy of the package, to edit."""
    return Path(shutil.copytree(built[2], tmp_path / "package"))


def _entries(package: Path) -> dict[int, dict[str, object]]:
    return {int(p.stem): json.loads(p.read_bytes()) for p in (package / "entries").glob("*.entry")}


def test_package_holds_the_lot_and_verifies_offline(
    built: tuple[Path, str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    _, lot, package = built
    capsys.readouterr()
    assert main(["audit", "evidence", str(package)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"evidence OK: lot {lot} (sold")
    assert "7 report" in out
    report = verify_evidence_package(package)
    assert report.status == "sold" and report.segments_checked == SEGMENTS
    assert report.anchor_size <= report.latest_size
    manifest = json.loads((package / "manifest.json").read_text())
    entries = _entries(package)
    kinds = {str(e["type"]) for e in entries.values()}
    assert {"house", "lot", "registration", "deposit", "bid", "lot_state", "sale"} <= kinds
    assert "stream_segment" in kinds
    # Only this lot's entries, besides the house, key and idv entries its history needs.
    for entry in entries.values():
        body = entry["body"]
        assert isinstance(body, dict)
        assert entry["type"] in ("house", "key", "idv") or body.get("lot") == lot
    assert len(manifest["checkpoint"]["cosigners"]) >= 2  # the policy's quorum
    assert len(manifest["latest"]["cosigners"]) >= 2
    sale = manifest["sale"]
    assert sale["seq"] in entries and len(sale["confirmation_sha256"]) == 64
    assert [s["index"] for s in manifest["segments"]] == list(range(SEGMENTS))
    kinds_of_documents = [d["kind"] for d in manifest["documents"]]
    assert kinds_of_documents == [kind for kind, _ in DOCUMENTS]
    confirmation = sale["confirmation_document"]
    assert confirmation["kind"] == "sale_confirmation" and len(confirmation["sha256"]) == 64
    assert entries[confirmation["seq"]]["type"] == "document"
    files = sorted(p.name for p in (package / "recording" / RENDITION).iterdir())
    assert files == [f"seg-{i:08d}.gvs" for i in range(SEGMENTS)]
    for name in ("policy", "checkpoint", "latest-checkpoint", "consistency", "keys/log.vkey"):
        assert (package / name).is_file()
    assert main(["audit", "evidence", str(package), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["ok"] is True


def _flip(path: Path, position: int) -> None:
    data = bytearray(path.read_bytes())
    data[position] ^= 0x01
    path.write_bytes(bytes(data))


def _bid_seq(package: Path) -> int:
    return min(seq for seq, e in _entries(package).items() if e["type"] == "bid")


def _edit_entry(package: Path) -> str:
    """Change one digit of a bid's amount: still a canonical entry, no longer the logged one."""
    name = f"entries/{_bid_seq(package)}.entry"
    path = package / name
    data = path.read_bytes()
    match = re.search(rb'"amount":(\d)', data)
    assert match is not None
    position = match.start(1)
    digit = data[position : position + 1]
    path.write_bytes(data[:position] + (b"9" if digit != b"9" else b"8") + data[position + 1 :])
    return name


def _edit_proof(package: Path) -> str:
    name = f"entries/{_bid_seq(package)}.tlog-proof"
    path = package / name
    lines = path.read_bytes().split(b"\n")
    hash_line = next(i for i, line in enumerate(lines) if i > 0 and len(line) == 44)
    line = bytearray(lines[hash_line])
    line[3] = ord("A") if line[3] != ord("A") else ord("B")
    lines[hash_line] = bytes(line)
    path.write_bytes(b"\n".join(lines))
    return name


def _edit_size_line(name: str) -> Callable[[Path], str]:
    def edit(package: Path) -> str:
        path = package / name
        data = path.read_bytes()
        first = data.index(b"\n") + 1  # the size line of the checkpoint body
        last = data.index(b"\n", first) - 1  # its last digit: no leading zero appears
        _flip(path, last)  # a digit stays a digit: 0x30..0x39 ^ 1
        return name

    return edit


def _edit_policy(package: Path) -> str:
    path = package / "policy"
    data = path.read_bytes()
    position = data.index(b"+", data.index(b"+") + 1) + 6  # inside the first key's base64
    _flip(path, position)
    return "policy"


def _edit_consistency(package: Path) -> str:
    path = package / "consistency"
    lines = path.read_bytes().split(b"\n")
    assert len(lines) > 4, "the package's checkpoint is the latest: no proof to edit"
    line = bytearray(lines[3])
    line[2] = ord("A") if line[2] != ord("A") else ord("B")
    lines[3] = bytes(line)
    path.write_bytes(b"\n".join(lines))
    return "consistency"


def _edit_segment(package: Path) -> str:
    name = f"recording/{RENDITION}/seg-00000001.gvs"
    _flip(package / name, 10)
    return name


def _edit_file(name: str, position: int) -> Callable[[Path], str]:
    def edit(package: Path) -> str:
        _flip(package / name, position)
        return name

    return edit


def _edit_manifest(package: Path) -> str:
    path = package / "manifest.json"
    data = path.read_bytes()
    _flip(path, data.index(b'"last_t": ') + 11)  # a digit of a value: still JSON
    return "manifest.json"


@pytest.mark.parametrize(
    ("edit", "step"),
    [
        (_edit_entry, "3 inclusion"),
        (_edit_proof, "3 inclusion"),
        (_edit_size_line("checkpoint"), "2 signatures"),
        (_edit_size_line("latest-checkpoint"), "2 signatures"),
        (_edit_policy, "1 parse"),
        (_edit_consistency, "4 consistency"),
        (_edit_segment, "6 segments"),
        (_edit_file("keys/log.vkey", 3), "2 signatures"),
        (_edit_file("report.html", 200), "7 report"),
        (_edit_file("report.txt", 20), "7 report"),
        (_edit_manifest, "7 report"),
    ],
    ids=[
        "entry",
        "proof",
        "checkpoint",
        "latest-checkpoint",
        "policy",
        "consistency",
        "segment",
        "keys",
        "report.html",
        "report.txt",
        "manifest",
    ],
)
def test_one_edited_byte_is_named_with_its_step(
    package: Path, edit: Callable[[Path], str], step: str, capsys: pytest.CaptureFixture[str]
) -> None:
    name = edit(package)
    with pytest.raises(EvidenceFailure) as caught:
        verify_evidence_package(package)
    assert caught.value.path == name, str(caught.value)
    assert str(caught.value).startswith(f"evidence failed at step {step}, {name}: ")
    capsys.readouterr()
    assert main(["audit", "evidence", str(package)]) == 1
    assert f"evidence failed at step {step}, {name}" in capsys.readouterr().err


def test_a_planted_file_or_a_missing_entry_fails_parse(package: Path) -> None:
    (package / "notes.txt").write_text("added later")
    with pytest.raises(EvidenceFailure, match=r"step 1 parse, notes\.txt"):
        verify_evidence_package(package)
    (package / "notes.txt").unlink()
    seq = _bid_seq(package)
    (package / "entries" / f"{seq}.entry").unlink()
    with pytest.raises(EvidenceFailure, match=rf"step 1 parse, entries/{seq}\.entry: is missing"):
        verify_evidence_package(package)


def test_a_dropped_command_fails_replay(package: Path) -> None:
    """Both files of a bid removed and the manifest left as is: the lot's history has a gap
    the engine notices (the next command's number)."""
    seq = _bid_seq(package)
    for kind in ("entry", "tlog-proof"):
        (package / "entries" / f"{seq}.{kind}").unlink()
    manifest = json.loads((package / "manifest.json").read_text())
    manifest["entries"] = [e for e in manifest["entries"] if e["seq"] != seq]
    (package / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(EvidenceFailure) as caught:
        verify_evidence_package(package)
    assert caught.value.step.label == "5 replay"
    assert caught.value.path.startswith("entries/")


_ENGINE_NAMES = {
    member.value
    for enum in (RejectReason, DepositState, LotStatus, Result)
    for member in enum
    if len(member.value) > 3
} | {"BidAccepted", "LotClosed", "PlaceBid", "DepositChanged", "EndExtended", "Rejected"}


def test_report_lists_the_history_in_plain_words_with_entry_numbers(
    built: tuple[Path, str, Path],
) -> None:
    _, _, package = built
    text = (package / "report.txt").read_text()
    page = (package / "report.html").read_text()
    entries = {
        seq: parse_entry((package / "entries" / f"{seq}.entry").read_bytes())
        for seq in _entries(package)
    }
    lines = [line for line in text.splitlines() if re.search(r" — entry \d+$", line)]
    assert len(lines) >= 10
    bid_line = re.compile(
        r"^\d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} \(Asia/Shanghai\) — "
        r"Bidder [A-Za-z0-9-]+ bid CN¥[\d,]+ — entry (\d+)$"
    )
    bids = [bid_line.match(line) for line in lines]
    bid_seqs = {int(m.group(1)) for m in bids if m}
    assert bid_seqs and all(entries[seq].type == EntryType.BID for seq in bid_seqs)
    sale = next(seq for seq, e in entries.items() if e.type == EntryType.SALE)
    assert any("Document recorded: sale confirmation" in line for line in lines)
    assert any(line.endswith(f"— entry {sale}") and "Sale recorded" in line for line in lines)
    for line in lines:
        assert int(line.rsplit(" ", 1)[1]) in entries
        assert html.escape(line.split(" — ")[1]) in page
    for name in _ENGINE_NAMES:
        assert not re.search(rf"\b{name}\b", text), name
        assert not re.search(rf"\b{name}\b", page), name
    assert not re.search(r"\b[A-Z]+_[A-Z_]+\b", text)
    assert "<script" not in page.lower() and "<style>" in page
    # No personal data: the accounts behind the codes are never named. The entries name the
    # bidders by per-lot aliases; the accounts are those the package's link openings give.
    openings = json.loads((package / "openings.json").read_bytes())["openings"]
    accounts = {
        item["value"]["account"]
        for found in openings.values()
        for name, item in found.items()
        if name.startswith("link:")
    }
    assert len(accounts) >= 2, accounts
    for account in accounts:
        assert f"Bidder {account} " not in text and f"Bidder {account} " not in page, account
