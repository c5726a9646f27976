"""The auditor over a signed-bids ledger exported from the real server's database.

`gavel ledger export` is `auction.ledger_export.export_ledger` over a `StoreSource`; tampered
variants are laid out with `ledger_builder.write_export` (the same layout, built with `chain`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from pathlib import Path

import pytest
from ledger_kit import write_export
from signed_bids_kit import (
    TAMPER_CASES,
    SignedLog,
    build_signed_log,
    forge,
    tampered,
)

from auction.audit import AuditError, AuditReport, AuditStep, DirectorySource, verify_ledger
from auction.ledger_export import StoreSource, export_ledger
from auction.rules import SECOND


@pytest.fixture(scope="module")
def signed_log(tmp_path_factory: pytest.TempPathFactory) -> SignedLog:
    return asyncio.run(build_signed_log(tmp_path_factory.mktemp("signed") / "data"))


@pytest.fixture(scope="module")
def exported(signed_log: SignedLog, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("export") / "ledger"
    with contextlib.closing(StoreSource(signed_log.data)) as source:
        export_ledger(source, out)
    return out


def verify(directory: Path, workers: int = 0) -> AuditReport:
    return verify_ledger(DirectorySource(directory), workers=workers)


def test_the_auditor_passes_the_exported_signed_log(signed_log: SignedLog, exported: Path) -> None:
    report = verify(exported)
    assert report.ok and report.entries == len(signed_log.entries)
    assert report.entry_types["idv"] == 3 and report.entry_types["key"] == 1
    assert report.entry_types["stream_segment"] == 1
    assert report.idv_entries == 3 and report.bid_signatures == 4
    value = json.loads(report.to_json())
    assert value["idv_entries"] == 3 and value["bid_signatures_verified"] == 4
    assert [step["status"] for step in value["steps"]] == ["passed"] * 10


def test_the_report_is_deterministic(exported: Path) -> None:
    serial = verify(exported).to_json()
    assert verify(exported).to_json() == serial
    assert verify(exported, workers=2).to_json() == serial


def test_the_counts_are_of_what_was_verified(tmp_path: Path, signed_log: SignedLog) -> None:
    """The counts come from what was verified: a forged valid bid adds exactly one."""
    alice, eve = signed_log.bidders["alice"], signed_log.bidders["eve"]
    command, request = alice.bid(40_000, "a-9")
    entries = forge(signed_log, command, signed_log.expires[eve.account] + SECOND, request)
    write_export(tmp_path / "e", entries, signed_log.house_signer, [len(entries)])
    report = verify(tmp_path / "e")
    assert report.ok and report.bid_signatures == 5 and report.idv_entries == 3


@pytest.mark.parametrize("case", TAMPER_CASES)
def test_the_auditor_catches_each_tampering(
    tmp_path: Path, signed_log: SignedLog, case: str
) -> None:
    forged = tampered(signed_log, case)
    write_export(tmp_path / "e", forged.entries, signed_log.house_signer, [len(forged.entries)])
    with pytest.raises(AuditError) as failed:
        verify(tmp_path / "e")
    error = failed.value
    assert (error.step, error.seq) == (AuditStep.REPLAY, forged.seq), str(error)
    assert forged.reason in error.message
    assert f"step 8 replay, entry {forged.seq}" in str(error)
    assert error.report is not None and json.loads(error.report.to_json())["ok"] is False
