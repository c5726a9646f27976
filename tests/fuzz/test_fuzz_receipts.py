"""Fuzzing tlog-proof receipts and ledger entries: `chain.parse_receipt`,
`chain.verify_receipt`, `chain.parse_entry`, and the auditor's `verify_receipt_files`.

Documented errors: `chain` raises `ChainError` subclasses only, and `verify_receipt` names the
failing step on the error; `auction.audit.verify_receipt_files` raises `AuditFailure`
subclasses only. Seeds come from `tests/ledger_builder.py`: a judicial lot's real entries,
checkpointed, cosigned by two of three notaries, and the receipt of its sale entry.

Soundness: a mutated receipt or entry that still verifies must prove the very entry the log
committed at that index under the very checkpoint the log signed.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from fuzz_kit import Fuzzers, bounded, mutated, run_fuzzer
from hypothesis import strategies as st
from ledger_kit import (
    T0,
    LedgerBuilder,
    judicial_lot,
    make_policy,
    notary_signers,
    signed_checkpoint,
)

from auction.audit import AuditFailure, verify_receipt_files
from auction.rules import SECOND
from chain import (
    ChainError,
    format_receipt,
    make_receipt,
    parse_entry,
    parse_note,
    parse_policy,
    parse_receipt,
    verify_receipt,
)


def _ledger() -> tuple[list[bytes], bytes, bytes, dict[int, bytes]]:
    builder = LedgerBuilder()
    builder.run("judicial-flat", "Flat 1502, Hangzhou", *judicial_lot(T0 + SECOND))
    notaries = notary_signers(3)
    size = builder.size
    signed = signed_checkpoint(builder.tree, size, builder.signer, notaries[:2])
    policy = make_policy(builder.signer, notaries, 2)
    receipts = {
        seq: make_receipt(seq, builder.tree.inclusion_proof(seq, size), signed)
        for seq in (0, 1, size // 2, *builder.sales, size - 1)
    }
    return builder.entry_bytes(), signed, policy, receipts


ENTRIES, SIGNED, POLICY_BYTES, RECEIPTS = _ledger()
POLICY = parse_policy(POLICY_BYTES)
SIGNED_TEXT = parse_note(SIGNED).text
PAIRS = tuple((receipt, ENTRIES[seq]) for seq, receipt in RECEIPTS.items())


def check_receipt_bytes(data: bytes) -> None:
    """`parse_receipt`: `ChainError` only; an accepted receipt survives a format round trip."""
    with bounded(1.0, "parse_receipt"):
        try:
            receipt = parse_receipt(data)
        except ChainError:
            return
    assert parse_receipt(format_receipt(receipt)) == receipt


def check_receipt_pair(pair: tuple[bytes, bytes]) -> None:
    """`verify_receipt` over a (receipt, entry) pair: `ChainError` with a step, or a true proof."""
    receipt_bytes, entry_bytes = pair
    with bounded(1.0, "verify_receipt"):
        try:
            verified = verify_receipt(receipt_bytes, entry_bytes, None, POLICY)
        except ChainError as exc:
            assert exc.step is not None and exc.step[0] in "123456", exc.step
            return
    assert ENTRIES[verified.index] == entry_bytes, "a forged entry verified"
    assert verified.checkpoint.note.text == SIGNED_TEXT, "a forged checkpoint verified"
    assert len(verified.witnesses) >= 2


def check_entry(data: bytes) -> None:
    """`parse_entry`: `ChainError` only; an accepted entry is canonical (prints back)."""
    with bounded(1.0, "parse_entry"):
        try:
            entry = parse_entry(data)
        except ChainError:
            return
    assert entry.to_bytes() == data


def check_receipt_files(pair: tuple[bytes, bytes]) -> None:
    """`gavel audit receipt`'s core on files: `AuditFailure` only."""
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        (root / "r.tlog-proof").write_bytes(pair[0])
        (root / "r.entry").write_bytes(pair[1])
        (root / "policy").write_bytes(POLICY_BYTES)
        with bounded(2.0, "verify_receipt_files"):
            try:
                report = verify_receipt_files(root / "r.tlog-proof", root / "r.entry")
            except AuditFailure as exc:
                assert exc.exit_code in (1, 2) and str(exc)
                return
    assert ENTRIES[report.seq] == pair[1]


@st.composite
def receipt_pairs(draw: st.DrawFn) -> tuple[bytes, bytes]:
    receipt, entry = draw(st.sampled_from(PAIRS))
    which = draw(st.integers(min_value=0, max_value=3))
    if which in (0, 2):
        receipt = draw(mutated([receipt], max_ops=3))
    if which in (1, 2):
        entry = draw(mutated([entry], max_ops=3))
    if which == 3:  # a real receipt with another real entry
        entry = draw(st.sampled_from(ENTRIES))
    return receipt, entry


FUZZERS: Fuzzers = {
    "receipt": (
        st.one_of(st.binary(max_size=800), mutated(list(RECEIPTS.values()), max_ops=5)),
        check_receipt_bytes,
    ),
    "receipt with entry": (receipt_pairs(), check_receipt_pair),
    "ledger entry": (
        st.one_of(st.binary(max_size=800), mutated(ENTRIES[:40], max_ops=4)),
        check_entry,
    ),
    "receipt files": (receipt_pairs(), check_receipt_files),
}


def test_fuzz_receipts() -> None:
    run_fuzzer(FUZZERS, "receipt", 400)


def test_fuzz_receipt_verification() -> None:
    run_fuzzer(FUZZERS, "receipt with entry", 400)


def test_fuzz_ledger_entries() -> None:
    run_fuzzer(FUZZERS, "ledger entry", 400)


def test_fuzz_receipt_files() -> None:
    run_fuzzer(FUZZERS, "receipt files", 150)


def test_the_seed_receipts_verify() -> None:
    for receipt, entry in PAIRS:
        verified = verify_receipt(receipt, entry, None, POLICY)
        assert verified.entry.to_bytes() == entry
