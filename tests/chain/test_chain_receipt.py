"""tlog-proof receipts: making, parsing and the numbered verification pipeline."""

from __future__ import annotations

import base64

import pytest
from chain_kit import (
    FUZZ,
    ORIGIN,
    PROPERTY,
    cosigned_checkpoint,
    log_signer,
    make_entries,
    notary_signers,
    tree_of,
)
from hypothesis import given
from hypothesis import strategies as st

from chain import (
    ChainError,
    Checkpoint,
    EntryError,
    MalformedError,
    Policy,
    PolicyError,
    PolicyLog,
    ProofError,
    Receipt,
    ReceiptStep,
    SignatureError,
    Threshold,
    TooLargeError,
    UnknownOriginError,
    WitnessRule,
    format_receipt,
    make_receipt,
    parse_note,
    parse_receipt,
    sign_checkpoint,
    verify_receipt,
)

ENTRIES = make_entries(40)
ENTRY_BYTES = [entry.to_bytes() for entry in ENTRIES]
TREE = tree_of(ENTRY_BYTES)
NOTARIES = notary_signers(3)
LOG = log_signer()


def policy(k: int = 2, with_log: bool = True) -> Policy:
    witnesses = tuple(WitnessRule(f"N{i}", n.verifier) for i, n in enumerate(NOTARIES, 1))
    quorum = Threshold("notaries", k, witnesses)
    logs = (PolicyLog(LOG.verifier),) if with_log else ()
    return Policy(logs, witnesses, quorum, (quorum,))


CHECKPOINT_2_OF_3 = cosigned_checkpoint(TREE, NOTARIES[:2])
CHECKPOINT_1_OF_3 = cosigned_checkpoint(TREE, NOTARIES[:1])


def receipt_for(index: int, checkpoint: bytes = CHECKPOINT_2_OF_3) -> bytes:
    return make_receipt(index, TREE.inclusion_proof(index), checkpoint)


def test_receipt_text_format() -> None:
    data = receipt_for(7)
    lines = data.decode().split("\n")
    assert lines[0] == "c2sp.org/tlog-proof@v1"
    assert lines[1] == "index 7"
    proof = TREE.inclusion_proof(7)
    assert lines[2 : 2 + len(proof)] == [base64.b64encode(h).decode() for h in proof]
    assert lines[2 + len(proof)] == ""
    assert data.endswith(CHECKPOINT_2_OF_3)
    parsed = parse_receipt(data)
    assert parsed.index == 7 and list(parsed.proof) == proof and parsed.extra is None
    assert format_receipt(parsed) == data
    with_extra = make_receipt(7, proof, CHECKPOINT_2_OF_3, extra=b"context")
    assert with_extra.split(b"\n")[1] == b"extra " + base64.b64encode(b"context")
    assert parse_receipt(with_extra).extra == b"context"


@PROPERTY
@given(index=st.integers(min_value=0, max_value=len(ENTRIES) - 1))
def test_receipts_verify(index: int) -> None:
    verified = verify_receipt(receipt_for(index), ENTRY_BYTES[index], LOG.verifier, policy())
    assert verified.index == index
    assert verified.entry == ENTRIES[index]
    assert verified.witnesses == {"N1", "N2"}
    assert verified.checkpoint.checkpoint.size == TREE.size
    # The log key may also come from the policy.
    verify_receipt(receipt_for(index), ENTRY_BYTES[index], None, policy())


def _step_of(error: pytest.ExceptionInfo[ChainError]) -> str | None:
    return error.value.step


def test_each_step_fails_closed() -> None:
    index = 11
    good = receipt_for(index)
    entry = ENTRY_BYTES[index]

    with pytest.raises(MalformedError) as malformed:
        verify_receipt(good[1:], entry, LOG.verifier, policy())
    assert _step_of(malformed) == ReceiptStep.PARSE.label == "1 parse"

    with pytest.raises(EntryError) as wrong_entry:
        verify_receipt(good, ENTRY_BYTES[index + 1], LOG.verifier, policy())
    assert _step_of(wrong_entry) == "2 entry"
    with pytest.raises(MalformedError) as not_an_entry:
        verify_receipt(good, b'{"not": "an entry"}', LOG.verifier, policy())
    assert _step_of(not_an_entry) == "2 entry"

    other_log = log_signer("other.example/log")
    with pytest.raises(UnknownOriginError) as origin:
        verify_receipt(good, entry, other_log.verifier, policy())
    assert _step_of(origin) == "3 checkpoint"
    foreign_policy = Policy((PolicyLog(other_log.verifier),), (), policy().quorum)
    with pytest.raises(UnknownOriginError):
        verify_receipt(good, entry, None, foreign_policy)

    impostor = log_signer()
    impostor_checkpoint = sign_checkpoint(
        Checkpoint(ORIGIN, TREE.size, TREE.root()), type(impostor).from_seed(ORIGIN, b"\x07" * 32)
    )
    with pytest.raises(SignatureError) as signature:
        verify_receipt(receipt_for(index, impostor_checkpoint), entry, LOG.verifier, policy())
    assert _step_of(signature) == "4 signatures"

    with pytest.raises(PolicyError) as quorum:
        verify_receipt(receipt_for(index, CHECKPOINT_1_OF_3), entry, LOG.verifier, policy())
    assert _step_of(quorum) == "5 quorum"
    verify_receipt(receipt_for(index, CHECKPOINT_1_OF_3), entry, LOG.verifier, policy(k=1))

    proof = TREE.inclusion_proof(index)
    proof[0] = bytes(32)
    with pytest.raises(ProofError) as inclusion:
        verify_receipt(make_receipt(index, proof, CHECKPOINT_2_OF_3), entry, LOG.verifier, policy())
    assert _step_of(inclusion) == "6 inclusion"
    assert str(inclusion.value).startswith("step 6 inclusion: ")


def test_receipt_for_another_index_fails() -> None:
    # The proof of index 3 relabelled as index 4, with entry 4: the entry matches the index,
    # the proof does not.
    proof = TREE.inclusion_proof(3)
    forged = make_receipt(4, proof, CHECKPOINT_2_OF_3)
    with pytest.raises(ProofError):
        verify_receipt(forged, ENTRY_BYTES[4], LOG.verifier, policy())


def test_receipt_against_an_older_checkpoint_fails_with_a_newer_proof() -> None:
    old_tree = tree_of(ENTRY_BYTES[:20])
    old_checkpoint = cosigned_checkpoint(old_tree, NOTARIES)
    mixed = make_receipt(5, TREE.inclusion_proof(5), old_checkpoint)
    with pytest.raises(ProofError):
        verify_receipt(mixed, ENTRY_BYTES[5], LOG.verifier, policy())
    good_old = make_receipt(5, old_tree.inclusion_proof(5), old_checkpoint)
    verify_receipt(good_old, ENTRY_BYTES[5], LOG.verifier, policy(k=3))
    beyond = make_receipt(25, TREE.inclusion_proof(25)[:5], old_checkpoint)
    with pytest.raises(ProofError):
        verify_receipt(beyond, ENTRY_BYTES[25], LOG.verifier, policy())


PROOF_LINE = base64.b64encode(bytes(32)).decode()


@pytest.mark.parametrize(
    "header",
    [
        "",
        "c2sp.org/tlog-proof@v2\nindex 1\n",
        "c2sp.org/tlog-proof@v1\n",
        "c2sp.org/tlog-proof@v1\nindex 01\n",
        "c2sp.org/tlog-proof@v1\nindex -1\n",
        "c2sp.org/tlog-proof@v1\nindex  1\n",
        "c2sp.org/tlog-proof@v1\nindex 9223372036854775807\n",
        "c2sp.org/tlog-proof@v1\nindex 1\nnot base64\n",
        "c2sp.org/tlog-proof@v1\nindex 1\n" + base64.b64encode(bytes(31)).decode() + "\n",
        "c2sp.org/tlog-proof@v1\nindex 1\n" + (PROOF_LINE + "\n") * 64,
        "c2sp.org/tlog-proof@v1\nextra !!\nindex 1\n",
        "c2sp.org/tlog-proof@v1\nindex 1\nextra AAAA\n",
        "c2sp.org/tlog-proof@v1\r\nindex 1\n",
        "c2sp.org/tlog-proof@v1\nindex \u0661\n",
    ],
)
def test_malformed_receipts(header: str) -> None:
    with pytest.raises(MalformedError):
        parse_receipt(header.encode() + b"\n" + CHECKPOINT_2_OF_3)


def test_receipt_bounds() -> None:
    with pytest.raises(TooLargeError):
        parse_receipt(b"c" * (200 * 1024))
    with pytest.raises(TooLargeError):
        Receipt(0, (), parse_note(CHECKPOINT_2_OF_3), extra=b"x" * 5000)
    with pytest.raises(MalformedError):
        parse_receipt(b"c2sp.org/tlog-proof@v1\nindex 1\n\nnot a note")


@FUZZ
@given(st.binary(max_size=500))
def test_fuzz_receipt_parsers(data: bytes) -> None:
    for call in (
        lambda: parse_receipt(data),
        lambda: verify_receipt(data, ENTRY_BYTES[0], LOG.verifier, policy()),
        lambda: verify_receipt(receipt_for(0), data, LOG.verifier, policy()),
    ):
        try:
            call()
        except ChainError:
            pass


GOOD_RECEIPT = receipt_for(9)


@FUZZ
@given(
    position=st.integers(min_value=0, max_value=len(GOOD_RECEIPT) - 1),
    value=st.integers(min_value=0, max_value=255),
    cut=st.integers(min_value=0, max_value=len(GOOD_RECEIPT) - 1),
)
def test_fuzz_mutated_receipts_fail_closed(position: int, value: int, cut: int) -> None:
    mutated = bytearray(GOOD_RECEIPT)
    mutated[position] = value
    for candidate in (bytes(mutated), GOOD_RECEIPT[:cut]):
        if candidate == GOOD_RECEIPT:
            continue
        try:
            verified = verify_receipt(candidate, ENTRY_BYTES[9], LOG.verifier, policy())
        except ChainError:
            continue
        # Survivable changes only touch unauthenticated framing that does not change meaning
        # (e.g. the name on a cosignature line of a non-required cosigner is not possible with
        # 2 of 2 cosignatures present and k = 2).
        assert verified.index == 9 and verified.witnesses == {"N1", "N2"}
