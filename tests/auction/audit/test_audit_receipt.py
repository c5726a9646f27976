"""`auction.audit.verify_receipt_files`: receipts written by the export, verified offline."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from ledger_kit import (
    ORIGIN,
    Export,
    LedgerBuilder,
    house_key,
    live_lot,
    make_policy,
    notary_signers,
    standard_ledger,
    write_export,
)

from auction.audit import MissingFileError, NoVerdict, ReceiptError, verify_receipt_files
from auction.rules import SECOND
from chain import Ed25519Signer, build_entry, sign_actor

STANDARD = standard_ledger(busy_rounds=4)


@pytest.fixture
def export(tmp_path: Path) -> Export:
    return STANDARD.write(tmp_path / "export")


def receipt_files(export: Export, seq: int) -> tuple[Path, Path]:
    folder = export.directory / "receipts"
    return folder / f"{seq}.tlog-proof", folder / f"{seq}.entry"


def test_every_sale_receipt_verifies(export: Export) -> None:
    assert STANDARD.sales
    for seq in STANDARD.sales:
        proof, entry = receipt_files(export, seq)
        report = verify_receipt_files(proof, entry)  # policy found one directory up
        assert (report.seq, report.entry_type) == (seq, "sale")
        assert report.lot is not None and report.actor_checked
        assert report.checkpoint_size == STANDARD.size
        assert report.checkpoint_root == STANDARD.tree.root()
        assert "no notaries in policy" in report.notes
        assert json.loads(report.to_json())["ok"] is True


def test_receipt_with_explicit_policy_and_notaries(tmp_path: Path) -> None:
    notaries = notary_signers(3)
    export = STANDARD.write(tmp_path / "e", notaries=notaries, cosigners=notaries[1:], quorum=2)
    policy = tmp_path / "trust.policy"
    policy.write_bytes(export.policy)
    proof, entry = receipt_files(export, STANDARD.sales[0])
    report = verify_receipt_files(proof, entry, policy)
    assert report.witnesses == ("notary2", "notary3")


def test_tampered_inclusion_proof_fails_inclusion(export: Export) -> None:
    proof, entry = receipt_files(export, STANDARD.sales[0])
    lines = proof.read_bytes().split(b"\n")
    digest = bytearray(base64.b64decode(lines[2]))
    digest[0] ^= 1
    lines[2] = base64.b64encode(bytes(digest))
    proof.write_bytes(b"\n".join(lines))
    with pytest.raises(ReceiptError) as caught:
        verify_receipt_files(proof, entry)
    assert caught.value.step == "6 inclusion"
    assert str(caught.value).startswith("receipt failed at step 6 inclusion: ")


def test_another_entry_fails_the_entry_step(export: Export) -> None:
    proof, _ = receipt_files(export, STANDARD.sales[0])
    _, other = receipt_files(export, STANDARD.sales[1])
    with pytest.raises(ReceiptError) as caught:
        verify_receipt_files(proof, other)
    assert caught.value.step == "2 entry"


def test_policy_of_another_key_fails_signatures(export: Export, tmp_path: Path) -> None:
    policy = tmp_path / "other.policy"
    policy.write_bytes(make_policy(Ed25519Signer.from_seed(ORIGIN, b"\x03" * 32)))
    proof, entry = receipt_files(export, STANDARD.sales[0])
    with pytest.raises(ReceiptError) as caught:
        verify_receipt_files(proof, entry, policy)
    assert caught.value.step == "4 signatures"


def test_quorum_not_met_fails_quorum(tmp_path: Path) -> None:
    notaries = notary_signers(3)
    export = STANDARD.write(tmp_path / "e", notaries=notaries, cosigners=notaries[:1], quorum=2)
    proof, entry = receipt_files(export, STANDARD.sales[0])
    with pytest.raises(ReceiptError) as caught:
        verify_receipt_files(proof, entry)
    assert caught.value.step == "5 quorum"


def test_forged_actor_signature_fails_the_actor_step(tmp_path: Path) -> None:
    builder = LedgerBuilder()
    builder.run("live", "Vase", *live_lot(builder.last_t + SECOND))
    seq = builder.sales[0]
    entries = list(builder.entry_bytes())
    sale = builder.entries[seq]
    forged = build_entry(
        seq=seq,
        prev=sale.prev,
        time_us=sale.time_us,
        entry_type=sale.type,
        body=sale.body,
        actor=sign_actor(sale.type, sale.body, builder.kid, house_key("forger")),
    )
    entries[seq] = forged.to_bytes()
    export = write_export(
        tmp_path / "e", entries[: seq + 1], builder.signer, [seq + 1], receipts=[seq]
    )
    proof, entry = receipt_files(export, seq)
    with pytest.raises(ReceiptError) as caught:
        verify_receipt_files(proof, entry)
    assert caught.value.step == "7 actor"


def test_actor_of_another_key_is_noted_not_checked(tmp_path: Path) -> None:
    builder = LedgerBuilder(kid="bidder-key-1")
    builder.run("live", "Vase", *live_lot(builder.last_t + SECOND))
    export = builder.write(tmp_path / "e")
    proof, entry = receipt_files(export, builder.sales[0])
    report = verify_receipt_files(proof, entry)
    assert not report.actor_checked
    assert any("not checked" in note for note in report.notes)


def test_without_a_policy_the_receipt_asks_for_one(export: Export, tmp_path: Path) -> None:
    proof, entry = receipt_files(export, STANDARD.sales[0])
    alone = tmp_path / "alone" / "deeper"
    alone.mkdir(parents=True)
    (alone / "r.tlog-proof").write_bytes(proof.read_bytes())
    with pytest.raises(NoVerdict, match="--policy"):
        verify_receipt_files(alone / "r.tlog-proof", entry)
    with pytest.raises(MissingFileError):
        verify_receipt_files(alone / "missing.tlog-proof", entry, export.directory / "policy")
