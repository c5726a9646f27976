"""Fuzzing C2SP signed notes, checkpoints, keys and policies (`chain`), and the notary's
tlog-witness ``add-checkpoint`` body (`notary.core`).

Documented errors: every `chain` parser raises `ChainError` subclasses only; the notary's
`parse_add_checkpoint` raises `RequestError`/`RequestTooLargeError` and `check_envelope`
raises `NotaryError` subclasses only. Seeds are made by the real code: a checkpoint of a real
tree signed by the log key and cosigned by three notaries, the policy naming them, and the
add-checkpoint body a log sends (old size, the RFC 9162 consistency proof, the note).

Beyond "no other exception", the checks hold the parsers to their meaning: a note or a
checkpoint that parses prints back to the same text (strict, canonical); and a mutated
note that still opens under the log key has exactly the text the log signed (a signature
cannot be moved to other text), so an accepted add-checkpoint is the real one.
"""

from __future__ import annotations

import base64

from fuzz_kit import Fuzzers, bounded, mutated, run_fuzzer
from hypothesis import strategies as st

from chain import (
    ChainError,
    Checkpoint,
    CosignatureSigner,
    Ed25519Signer,
    MemoryTree,
    Policy,
    PolicyLog,
    Threshold,
    WitnessRule,
    add_cosignatures,
    format_policy,
    open_checkpoint,
    parse_checkpoint_text,
    parse_note,
    parse_policy,
    parse_signature_lines,
    parse_signer_key,
    parse_vkey,
    range_nodes,
    sign_checkpoint,
)
from notary.core import (
    LogTrust,
    NotaryState,
    check_envelope,
    format_add_checkpoint,
    parse_add_checkpoint,
)
from notary.errors import NotaryError, RequestError, RequestTooLargeError

ORIGIN = "fuzz.example.org/log"
LOG = Ed25519Signer.from_seed(ORIGIN, bytes(32))
NOTARIES = tuple(
    CosignatureSigner.from_seed(f"notary{i}.example.org", bytes([i]) * 32) for i in (1, 2, 3)
)
WITNESSES = tuple(WitnessRule(f"n{i}", n.verifier) for i, n in enumerate(NOTARIES, 1))
POLICY = Policy(
    (PolicyLog(LOG.verifier),),
    WITNESSES,
    Threshold("notaries", 2, WITNESSES),
    (Threshold("notaries", 2, WITNESSES),),
)
POLICY_BYTES = format_policy(POLICY)

TREE = MemoryTree()
for _i in range(37):
    TREE.append(b"entry %d" % _i)
OLD, NEW = 20, 37


def _signed(size: int, cosigners: tuple[CosignatureSigner, ...] = NOTARIES) -> bytes:
    signed = sign_checkpoint(Checkpoint(ORIGIN, size, TREE.root_at(size)), LOG)
    text = parse_note(signed).text_bytes
    return add_cosignatures(signed, [c.cosign(text, 1_795_000_000 + size) for c in cosigners])


SIGNED = _signed(NEW)
SIGNED_TEXT = parse_note(SIGNED).text
NOTES = (
    SIGNED,
    _signed(OLD),
    _signed(1, NOTARIES[:1]),
    sign_checkpoint(Checkpoint(ORIGIN, 0, TREE.root_at(0)), LOG),
)
BODY = format_add_checkpoint(OLD, TREE.consistency_proof(OLD, NEW), SIGNED)
BODIES = (BODY, format_add_checkpoint(NEW, [], SIGNED), format_add_checkpoint(0, [], NOTES[2]))
STATE = NotaryState(
    ORIGIN,
    OLD,
    TREE.root_at(OLD),
    tuple(TREE.get_node(node.level, node.index) for node in range_nodes(0, OLD)),
)
TRUST = LogTrust.from_policy(POLICY)


def check_note(data: bytes) -> None:
    """`parse_note` and `open_checkpoint`: `ChainError` only; sound when they accept."""
    with bounded(1.0, "parse_note/open_checkpoint"):
        try:
            note = parse_note(data)
        except ChainError:
            note = None
        try:
            signed = open_checkpoint(data, LOG.verifier, [n.verifier for n in NOTARIES])
        except ChainError:
            signed = None
        try:
            parse_signature_lines(data)
        except ChainError:
            pass
    if note is not None:
        # Signature lines are read like Go's note package (base64 padding bits not checked),
        # so the bytes may differ there; the text and the decoded signatures must not.
        assert parse_note(note.to_bytes()) == note
        assert data.startswith(note.text_bytes + b"\n")
    if signed is not None:
        assert note is not None and signed.note.text == note.text
        assert note.text in {parse_note(seed).text for seed in NOTES}, "forged text accepted"
        for cosignature in signed.cosignatures:
            assert cosignature.name in {n.name for n in NOTARIES}


def check_checkpoint_text(text: str) -> None:
    """`parse_checkpoint_text`: `ChainError` only; an accepted text prints back unchanged."""
    with bounded(1.0, "parse_checkpoint_text"):
        try:
            checkpoint = parse_checkpoint_text(text)
        except ChainError:
            return
    assert checkpoint.text() == text
    assert 0 <= checkpoint.size and len(checkpoint.root) == 32


def check_key_text(text: str) -> None:
    """`parse_vkey` and `parse_signer_key`: `ChainError` only; an accepted vkey is the key."""
    with bounded(1.0, "parse_vkey/parse_signer_key"):
        try:
            verifier = parse_vkey(text)
        except ChainError:
            verifier = None
        try:
            parse_signer_key(text)
        except ChainError:
            pass
    if verifier is not None:
        # Like Go's note package, the key id may be upper-case hex and base64 padding bits are
        # not checked; name, id and key must still be exactly the ones written.
        name, key_id, _ = text.split("+")
        assert verifier.name == name and verifier.key_id.hex() == key_id.lower()
        assert parse_vkey(verifier.vkey) == verifier


def check_policy(data: bytes) -> None:
    """`parse_policy`: `ChainError` only; an accepted policy survives a format round trip."""
    with bounded(1.0, "parse_policy"):
        try:
            policy = parse_policy(data)
        except ChainError:
            return
        assert parse_policy(format_policy(policy)) == policy


def check_add_checkpoint(body: bytes) -> None:
    """The notary's add-checkpoint path up to co-signing: `NotaryError` only (400/413 from the
    body parser), and what it accepts is exactly the log's checkpoint with a valid proof."""
    with bounded(1.0, "parse_add_checkpoint/check_envelope"):
        try:
            request = parse_add_checkpoint(body)
        except NotaryError as exc:
            assert isinstance(exc, RequestError | RequestTooLargeError), type(exc)
            assert exc.http_status in (400, 413)
            return
        assert format_add_checkpoint(request.old_size, request.proof, request.checkpoint) == body
        try:
            accepted = check_envelope(request, TRUST, STATE)
        except NotaryError as exc:
            assert exc.http_status in (400, 403, 404, 409, 413, 422), (type(exc), exc)
            return
    assert accepted.checkpoint.text() == SIGNED_TEXT or accepted.checkpoint.size == OLD
    assert accepted.old_size == OLD


def _vkey_seeds() -> list[bytes]:
    keys = [LOG.vkey, *(n.vkey for n in NOTARIES), LOG.signer_key, NOTARIES[0].signer_key]
    return [key.encode() for key in keys]


FUZZERS: Fuzzers = {
    "signed note": (
        st.one_of(st.binary(max_size=600), mutated(NOTES, max_ops=5)),
        check_note,
    ),
    "checkpoint text": (
        st.one_of(
            st.text(max_size=200),
            mutated([parse_note(n).text_bytes for n in NOTES]).map(
                lambda b: b.decode("utf-8", "replace")
            ),
        ),
        check_checkpoint_text,
    ),
    "vkey and signer key": (
        st.one_of(
            st.text(max_size=200),
            mutated(_vkey_seeds()).map(lambda b: b.decode("utf-8", "replace")),
        ),
        check_key_text,
    ),
    "policy": (
        st.one_of(st.binary(max_size=600), mutated([POLICY_BYTES], max_ops=5)),
        check_policy,
    ),
    "add-checkpoint body": (
        st.one_of(st.binary(max_size=600), mutated(BODIES, max_ops=5)),
        check_add_checkpoint,
    ),
}


def test_fuzz_signed_notes() -> None:
    run_fuzzer(FUZZERS, "signed note", 400)


def test_fuzz_checkpoint_text() -> None:
    run_fuzzer(FUZZERS, "checkpoint text", 300)


def test_fuzz_keys() -> None:
    run_fuzzer(FUZZERS, "vkey and signer key", 200)


def test_fuzz_policies() -> None:
    run_fuzzer(FUZZERS, "policy", 300)


def test_fuzz_add_checkpoint_bodies() -> None:
    run_fuzzer(FUZZERS, "add-checkpoint body", 400)


def test_the_seeds_are_accepted() -> None:
    """The fuzzers start from inputs the real code accepts (so mutations test the near miss)."""
    accepted = check_envelope(parse_add_checkpoint(BODY), TRUST, STATE)
    assert accepted.checkpoint.size == NEW
    for note in NOTES:
        open_checkpoint(note, LOG.verifier, [n.verifier for n in NOTARIES])
    assert parse_policy(POLICY_BYTES) == POLICY
    assert base64.b64decode(LOG.vkey.split("+")[2])[0] == 1
