"""`gavel audit ...` through `auction.cli.main`: exit codes, messages, reports, evidence files;
and `scripts/bench_audit.py` kept alive with a small N."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from ledger_kit import Export, rechain, resign, standard_ledger, write_export
from script_kit import load_script

from auction.audit import verify_evidence
from auction.cli import main

STANDARD = standard_ledger(busy_rounds=4)
SIZE = STANDARD.size


@pytest.fixture
def export(tmp_path: Path) -> Export:
    return STANDARD.write(tmp_path / "export")


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = main(["audit", *argv])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_verify_prints_a_summary(export: Export, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = run(capsys, "verify", str(export.directory))
    assert status == 0 and err == ""
    assert out.startswith(f"audit OK: {export.directory}\n")
    assert "steps passed: 1 parse, 2 chain, 3 roots, 4 log signatures, 5 quorum, " in out
    assert "6 consistency, 7 actor signatures, 8 replay, 9 time bounds" in out
    assert f"checkpoint: size {SIZE}, root " in out
    assert "lots: 5 (1 failed, 4 sold); sold 4, sale entries 4" in out
    assert "note: no notaries in policy" in out
    assert "time: " in out


def test_verify_json_is_byte_identical(export: Export, capsys: pytest.CaptureFixture[str]) -> None:
    first = run(capsys, "verify", str(export.directory), "--json")
    second = run(capsys, "verify", str(export.directory), "--json", "--workers", "2")
    assert first == second
    status, out, _ = first
    assert status == 0 and json.loads(out)["ok"] is True


def test_verify_failure_names_the_step_and_entry(
    export: Export, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    entries = list(STANDARD.entries)
    seq = 20
    body = {k: v for k, v in entries[seq].body.items()} | {"n": 99}
    entries[seq] = resign(entries[seq], body, STANDARD.private_key, STANDARD.kid)
    data = [e.to_bytes() for e in entries]
    data[seq + 1 :] = [e.to_bytes() for e in STANDARD.entries[seq + 1 :]]  # chain left broken
    forged = write_export(tmp_path / "forged", data, STANDARD.signer, [SIZE])
    status, out, err = run(capsys, "verify", str(forged.directory))
    assert status == 1 and out == ""
    assert err == (
        f"gavel audit: audit failed at step 2 chain, entry {seq + 1}: "
        f"prev does not match the leaf hash of entry {seq}\n"
    )
    status, out, err = run(capsys, "verify", str(forged.directory), "--json")
    assert status == 1 and "step 2 chain" in err
    report = json.loads(out)
    assert report["ok"] is False
    assert report["failure"] == {
        "step": 2,
        "name": "chain",
        "seq": seq + 1,
        "lot": None,
        "message": f"prev does not match the leaf hash of entry {seq}",
    }


def test_verify_replay_failure_names_the_lot(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    entries = list(STANDARD.entries)
    seq = next(e.seq for e in entries if e.type.value == "bid")
    body = {k: v for k, v in entries[seq].body.items()} | {
        "accepted": not entries[seq].body["accepted"]
    }
    entries[seq] = resign(entries[seq], body, STANDARD.private_key, STANDARD.kid)
    forged = write_export(
        tmp_path / "forged", [e.to_bytes() for e in rechain(entries)], STANDARD.signer, [SIZE]
    )
    status, _, err = run(capsys, "verify", str(forged.directory))
    lot = entries[seq].body["lot"]
    assert status == 1
    assert err.startswith(f"gavel audit: audit failed at step 8 replay, entry {seq} (lot {lot}): ")


def test_verify_unreadable_source_exits_2(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    status, out, err = run(capsys, "verify", str(tmp_path / "nowhere"))
    assert status == 2 and out == ""
    assert "is not a directory" in err
    status, out, _ = run(capsys, "verify", str(tmp_path / "nowhere"), "--json")
    assert status == 2 and json.loads(out)["ok"] is False


def test_verify_progress_goes_to_stderr(export: Export, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = run(capsys, "verify", str(export.directory), "--progress")
    assert status == 0 and "audit OK" in out
    assert err.startswith("\rverifying [") and err.endswith(f"{SIZE}/{SIZE} entries\n")


def test_receipt_ok_and_tampered(export: Export, capsys: pytest.CaptureFixture[str]) -> None:
    seq = STANDARD.sales[0]
    proof = export.directory / "receipts" / f"{seq}.tlog-proof"
    entry = export.directory / "receipts" / f"{seq}.entry"
    status, out, err = run(capsys, "receipt", str(proof), "--entry", str(entry))
    assert status == 0 and err == ""
    assert out.startswith(f"receipt OK: entry {seq} (sale, lot judicial-flat) is in the log ")
    assert "actor signature: verified" in out
    status, out, _ = run(
        capsys,
        "receipt",
        str(proof),
        "--entry",
        str(entry),
        "--policy",
        str(export.directory / "policy"),
        "--json",
    )
    assert status == 0 and json.loads(out)["seq"] == seq
    other = export.directory / "receipts" / f"{STANDARD.sales[1]}.entry"
    status, out, err = run(capsys, "receipt", str(proof), "--entry", str(other))
    assert status == 1 and out == ""
    assert err.startswith("gavel audit: receipt failed at step 2 entry: ")
    status, _, err = run(capsys, "receipt", str(proof), "--entry", str(export.directory / "x"))
    assert status == 2 and "does not exist" in err


def test_compare_consistent_and_equivocating(
    export: Export, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    older = write_export(
        tmp_path / "older",
        list(export.entries[:68]),
        STANDARD.signer,
        [s for s in STANDARD.checkpoint_sizes if s <= 68],
    )
    status, out, err = run(capsys, "compare", str(older.directory), str(export.directory))
    assert status == 0 and err == ""
    assert out.startswith(f"consistent: {STANDARD.origin}, sizes 68 (A) and {SIZE} (B)")

    entries = list(STANDARD.entries)
    body = {k: v for k, v in entries[50].body.items()} | {"forked": True}
    entries[50] = resign(entries[50], body, STANDARD.private_key, STANDARD.kid)
    fork = write_export(
        tmp_path / "fork", [e.to_bytes() for e in rechain(entries)], STANDARD.signer, [SIZE]
    )
    evidence = tmp_path / "evidence.json"
    status, out, err = run(
        capsys, "compare", str(export.directory), str(fork.directory), "--evidence", str(evidence)
    )
    assert status == 1 and out == ""
    assert "EQUIVOCATION" in err and str(evidence) in err
    assert verify_evidence(evidence.read_bytes()) == (SIZE, SIZE)
    assert json.loads(evidence.read_bytes())["divergence"]["index"] == 50


def test_bench_script_runs_with_a_small_log(capsys: pytest.CaptureFixture[str]) -> None:
    bench = load_script("bench_audit")
    assert bench.main(["--entries", "2000", "--checkpoint-every", "500", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["export"]["entries"] >= 2000
    assert [run["workers"] for run in result["runs"]][0] == 0
    assert all(
        run["steps_passed"] == 10 and run["entries_per_second"] > 0 for run in result["runs"]
    )
