"""Signed notes, vkeys, cosignatures and checkpoints."""

from __future__ import annotations

import base64

import pytest
from chain_kit import FUZZ, ORIGIN, PROPERTY, log_signer, notary_signers, seed
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from hypothesis import given
from hypothesis import strategies as st

from chain import (
    ALG_COSIGNATURE_V1,
    ALG_ED25519,
    EMPTY_ROOT,
    ChainError,
    Checkpoint,
    ConfigurationError,
    CosignatureSigner,
    CosignatureVerifier,
    Ed25519Signer,
    MalformedError,
    Note,
    NoteSignature,
    SignatureError,
    TooLargeError,
    UnknownOriginError,
    VerifiedSignature,
    add_cosignatures,
    cosignature_message,
    key_id,
    open_checkpoint,
    open_note,
    parse_checkpoint_text,
    parse_note,
    parse_signature_lines,
    parse_signer_key,
    parse_vkey,
    sign_checkpoint,
)

# golang.org/x/mod/sumdb/note note_test.go: a known key and signature (data only).
GO_SKEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
GO_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
GO_TEXT = (
    "If you think cryptography is the answer to your problem,\n"
    "then you don't know what your problem is.\n"
)
GO_SIGNED = (
    GO_TEXT + "\n— PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXg"
    "KvqfqdngotpRZb6KE6RyyBwJnAM=\n"
).encode()

ROOT = bytes(range(32))


def test_sumdb_note_known_answer() -> None:
    signer = parse_signer_key(GO_SKEY)
    assert isinstance(signer, Ed25519Signer)
    assert signer.vkey == GO_VKEY
    assert signer.signer_key == GO_SKEY
    assert signer.sign_note(Note(GO_TEXT)).to_bytes() == GO_SIGNED
    verifier = parse_vkey(GO_VKEY)
    opened = open_note(GO_SIGNED, [verifier])
    assert opened.note.text == GO_TEXT
    assert [s.name for s in opened.verified] == ["PeterNeumann"]
    assert verifier.key_id.hex() == "c74f20a3"


def test_key_ids_follow_signed_note() -> None:
    signer = log_signer()
    import hashlib

    expected = hashlib.sha256(ORIGIN.encode() + b"\n\x01" + signer.public_key).digest()[:4]
    assert signer.key_id == expected == key_id(ORIGIN, ALG_ED25519, signer.public_key)
    cosigner = CosignatureSigner.from_seed(ORIGIN, seed("x"))
    assert (
        cosigner.key_id
        == hashlib.sha256(ORIGIN.encode() + b"\n\x04" + cosigner.public_key).digest()[:4]
    )


@pytest.mark.parametrize("signer_class", [Ed25519Signer, CosignatureSigner])
def test_key_text_round_trips(signer_class: type[Ed25519Signer] | type[CosignatureSigner]) -> None:
    for i in range(20):  # some of these base64 keys contain "+"
        signer = signer_class.from_seed(f"example.org/key{i}", seed(f"k{i}"))
        loaded = parse_signer_key(signer.signer_key)
        assert type(loaded) is signer_class
        assert loaded.public_key == signer.public_key
        verifier = parse_vkey(signer.vkey)
        assert verifier == signer.verifier
        assert verifier.algorithm == signer.algorithm
        secret = base64.b64encode(bytes([signer.algorithm]) + seed(f"k{i}")).decode()
        assert secret in signer.signer_key
        assert secret not in repr(signer) and "PRIVATE" not in repr(signer)


BAD_VKEYS = [
    "",
    "PeterNeumann",
    "PeterNeumann+c74f20a3",
    "PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  # wrong id
    "PeterNeumann+c74f20a+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  # short id
    "PeterNeumann+g74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  # not hex
    "Peter Neumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
    "+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
    "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10T",  # bad base64
    "PeterNeumann+cc469956+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TWBADKEY==",
    "PeterNeumann+173116ae+ZRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  # unknown type
    "x" * 2000,
]


@pytest.mark.parametrize("text", BAD_VKEYS)
def test_bad_vkeys_are_rejected(text: str) -> None:
    with pytest.raises(MalformedError):
        parse_vkey(text)


@pytest.mark.parametrize(
    "text",
    [
        GO_SKEY.replace("PRIVATE", "PUBLIC"),
        GO_SKEY.replace("c74f20a3", "c74f20a4"),
        GO_SKEY[:-4],
        GO_VKEY,
        "PRIVATE+KEY+a b+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz",
    ],
)
def test_bad_signer_keys_are_rejected_without_leaking(text: str) -> None:
    with pytest.raises(MalformedError) as error:
        parse_signer_key(text)
    assert "AYEKFALVFGyNhPJEMzD1QIDr" not in str(error.value)


@pytest.mark.parametrize(
    "name",
    ["", "a b", "a+b", "a\tb", "a\u00a0b", "a\u2003b", "a\nb", "a\x01b", "x" * 256, "\ud800"],
)
def test_invalid_key_names(name: str) -> None:
    with pytest.raises(MalformedError):
        Ed25519Signer.from_seed(name, seed("n"))


def test_open_note_rules() -> None:
    log = log_signer()
    other = Ed25519Signer.from_seed(ORIGIN, seed("impostor"))  # same name, other key
    stranger = Ed25519Signer.from_seed("stranger.example", seed("stranger"))
    text = "hello\n"
    note = Note(text)
    signed = log.sign_note(note)
    # Unknown keys (same name but different id, or different name) are ignored.
    mixed = signed.with_signatures(other.sign(note.text_bytes), stranger.sign(note.text_bytes))
    opened = open_note(mixed.to_bytes(), [log.verifier])
    assert len(opened.verified) == 1 and len(opened.unverified) == 2
    # No known key: rejected.
    with pytest.raises(SignatureError):
        open_note(signed.to_bytes(), [stranger.verifier])
    # Tampered text: rejected.
    with pytest.raises(SignatureError):
        open_note(signed.to_bytes().replace(b"hello", b"jello"), [log.verifier])
    # A known key whose signature fails rejects the whole note, even if another key verifies.
    forged = NoteSignature(stranger.name, stranger.key_id, b"\x00" * 64)
    with pytest.raises(SignatureError):
        open_note(signed.with_signatures(forged).to_bytes(), [log.verifier, stranger.verifier])
    # Two trusted keys with one name and id is a configuration error.
    with pytest.raises(ConfigurationError):
        open_note(signed.to_bytes(), [log.verifier, _FakeVerifier(log.name, log.key_id)])


class _FakeVerifier:
    def __init__(self, name: str, key: bytes) -> None:
        self.name = name
        self.key_id = key

    def verify(self, text: bytes, signature: bytes) -> VerifiedSignature:
        raise AssertionError("never called")


def test_note_text_may_contain_blank_lines() -> None:
    log = log_signer()
    note = log.sign_note(Note("a\n\nb\n"))
    parsed = parse_note(note.to_bytes())
    assert parsed.text == "a\n\nb\n"
    open_note(note.to_bytes(), [log.verifier])


BAD_NOTES = [
    b"",
    b"text\n",
    b"text\n\n",
    b"text\n\n\xe2\x80\x94 name AAAAAA==\n",  # a key id and no signature
    b"text\n\n- name AAAAAAAAAA==\n",  # hyphen instead of em dash
    b"text\n\n\xe2\x80\x94 name AAAAAAAAAA==",  # no final newline
    b"text\n\n\xe2\x80\x94 name AAAAAAAAAA==\n\n",
    b"text\n\n\xe2\x80\x94 na me AAAAAAAAAA==\n",
    b"text\n\n\xe2\x80\x94 na+me AAAAAAAAAA==\n",
    b"text\n\n\xe2\x80\x94 name AAAAAAAAAA=\n",
    b"text\n\n\xe2\x80\x94 name  AAAAAAAAAA==\n",
    b"text\n\n\xe2\x80\x94  AAAAAAAAAA==\n",
    b"te\rxt\n\n\xe2\x80\x94 name AAAAAAAAAA==\n",
    b"te\x00xt\n\n\xe2\x80\x94 name AAAAAAAAAA==\n",
    b"te\xffxt\n\n\xe2\x80\x94 name AAAAAAAAAA==\n",
    b"\n\n\xe2\x80\x94 name AAAAAAAAAA==\n" + b"\xe2\x80\x94 name AAAAAAAAAA==\n" * 100,
]


@pytest.mark.parametrize("data", BAD_NOTES)
def test_malformed_notes_are_rejected(data: bytes) -> None:
    with pytest.raises(MalformedError):
        parse_note(data)


def test_note_size_bound() -> None:
    with pytest.raises(TooLargeError):
        parse_note(b"x" * (128 * 1024 + 1))


def test_sixteen_signatures_are_accepted() -> None:
    signers = [Ed25519Signer.from_seed(f"k{i}.example", seed(f"s{i}")) for i in range(16)]
    note = Note("sixteen\n")
    for signer in signers:
        note = signer.sign_note(note)
    opened = open_note(note.to_bytes(), [s.verifier for s in signers])
    assert len(opened.verified) == 16


# ---------------------------------------------------------------------------------------------
# Cosignatures


def test_cosignature_format_is_tlog_cosignature_v1() -> None:
    cosigner = notary_signers(1)[0]
    body = Checkpoint(ORIGIN, 5, ROOT).text_bytes()
    line = cosigner.cosign(body, 1_679_315_147)
    raw = line.key_id + line.signature
    assert line.key_id == key_id(cosigner.name, ALG_COSIGNATURE_V1, cosigner.public_key)
    assert len(raw) == 4 + 8 + 64
    assert int.from_bytes(raw[4:12], "big") == 1_679_315_147
    message = b"cosignature/v1\ntime 1679315147\n" + body
    assert cosignature_message(body, 1_679_315_147) == message
    Ed25519PublicKey.from_public_bytes(cosigner.public_key).verify(raw[12:], message)
    verified = cosigner.verifier.verify(body, line.signature)
    assert verified.timestamp == 1_679_315_147
    assert line.to_line() == f"— {cosigner.name} {base64.b64encode(raw).decode()}\n"


def test_tampered_cosignatures_fail() -> None:
    cosigner = notary_signers(1)[0]
    body = Checkpoint(ORIGIN, 5, ROOT).text_bytes()
    line = cosigner.cosign(body, 1000)
    later = (1001).to_bytes(8, "big") + line.signature[8:]
    with pytest.raises(SignatureError):
        cosigner.verifier.verify(body, later)
    with pytest.raises(SignatureError):
        cosigner.verifier.verify(body.replace(b"5", b"6"), line.signature)
    with pytest.raises(SignatureError):
        cosigner.verifier.verify(body, line.signature[:-1])
    with pytest.raises(SignatureError):
        cosigner.verifier.verify(body, (1 << 63).to_bytes(8, "big") + line.signature[8:])
    # A plain Ed25519 signature by the same key is not a cosignature (domain separation).
    plain = Ed25519Signer.from_seed(cosigner.name, seed("notary 1")).sign(body)
    with pytest.raises(SignatureError):
        cosigner.verifier.verify(body, b"\x00" * 8 + plain.signature)
    with pytest.raises(MalformedError):
        cosigner.cosign(body, -1)


def test_witness_response_lines_parse() -> None:
    cosigners = notary_signers(3)
    body = Checkpoint(ORIGIN, 5, ROOT).text_bytes()
    lines = [c.cosign(body, 1000 + i) for i, c in enumerate(cosigners)]
    response = "".join(line.to_line() for line in lines).encode()
    assert parse_signature_lines(response) == tuple(lines)
    with pytest.raises(MalformedError):
        parse_signature_lines(response[:-1])
    with pytest.raises(MalformedError):
        parse_signature_lines(b"")


# ---------------------------------------------------------------------------------------------
# Checkpoints


def test_checkpoint_round_trip_with_cosignatures() -> None:
    log = log_signer()
    cosigners = notary_signers(3)
    checkpoint = Checkpoint(ORIGIN, 20852163, ROOT)
    assert checkpoint.text() == f"{ORIGIN}\n20852163\n{base64.b64encode(ROOT).decode()}\n"
    signed = sign_checkpoint(checkpoint, log)
    lines = [c.cosign(checkpoint.text_bytes(), 1700000000 + i) for i, c in enumerate(cosigners)]
    full = add_cosignatures(signed, lines[:2])
    opened = open_checkpoint(full, log.verifier, [c.verifier for c in cosigners])
    assert opened.checkpoint == checkpoint
    assert opened.cosigner_names == {cosigners[0].name, cosigners[1].name}
    assert [s.timestamp for s in opened.cosignatures] == [1700000000, 1700000001]
    assert opened.to_bytes() == full
    # Without cosigner keys the cosignatures are ignored, not failed.
    assert open_checkpoint(full, log.verifier).cosignatures == ()
    # Adding the same lines again does not duplicate them.
    assert add_cosignatures(full, lines[:2]) == full


def test_checkpoint_failures() -> None:
    log = log_signer()
    cosigner = notary_signers(1)[0]
    checkpoint = Checkpoint(ORIGIN, 7, ROOT)
    signed = sign_checkpoint(checkpoint, log)
    other_log = log_signer("other.example/log")
    with pytest.raises(UnknownOriginError):
        open_checkpoint(signed, other_log.verifier)
    impostor = Ed25519Signer.from_seed(ORIGIN, seed("impostor"))
    with pytest.raises(SignatureError):
        open_checkpoint(sign_checkpoint(checkpoint, impostor), log.verifier)
    with pytest.raises(SignatureError):
        open_checkpoint(signed.replace(b"\n7\n", b"\n8\n"), log.verifier)
    # A bad cosignature from a trusted cosigner fails the whole checkpoint.
    forged = NoteSignature(cosigner.name, cosigner.key_id, b"\x00" * 72)
    with pytest.raises(SignatureError):
        open_checkpoint(add_cosignatures(signed, [forged]), log.verifier, [cosigner.verifier])
    # Only cosignatures: the log signature is required.
    only_cosigned = Note(checkpoint.text(), (cosigner.cosign(checkpoint.text_bytes(), 5),))
    with pytest.raises(SignatureError):
        open_checkpoint(only_cosigned.to_bytes(), log.verifier, [cosigner.verifier])


def test_we_never_sign_extension_lines_but_parse_them() -> None:
    log = log_signer()
    with pytest.raises(MalformedError):
        sign_checkpoint(Checkpoint(ORIGIN, 1, ROOT, ("ext",)), log)
    with pytest.raises(MalformedError):
        sign_checkpoint(Checkpoint("other.example", 1, ROOT), log)
    text = f"{ORIGIN}\n1\n{base64.b64encode(ROOT).decode()}\nextension one\n"
    parsed = parse_checkpoint_text(text)
    assert parsed.extensions == ("extension one",)
    assert parsed.text() == text
    # A checkpoint with extension lines signed by someone else still opens.
    note = log.sign_note(Note(text)).to_bytes()
    assert open_checkpoint(note, log.verifier).checkpoint.extensions == ("extension one",)


B64_ROOT = base64.b64encode(ROOT).decode()


@pytest.mark.parametrize(
    "text",
    [
        "",
        f"{ORIGIN}\n1\n",
        f"{ORIGIN}\n1\n{B64_ROOT}",
        f"\n1\n{B64_ROOT}\n",
        f"{ORIGIN}\n01\n{B64_ROOT}\n",
        f"{ORIGIN}\n+1\n{B64_ROOT}\n",
        f"{ORIGIN}\n-1\n{B64_ROOT}\n",
        f"{ORIGIN}\n1.0\n{B64_ROOT}\n",
        f"{ORIGIN}\n9223372036854775808\n{B64_ROOT}\n",
        f"{ORIGIN}\n99999999999999999999\n{B64_ROOT}\n",
        f"{ORIGIN}\n1\n{B64_ROOT[:-1]}\n",
        f"{ORIGIN}\n1\n{B64_ROOT[:-2]}9=\n",  # non-canonical trailing bits
        f"{ORIGIN}\n1\n{base64.b64encode(ROOT[:31]).decode()}\n",
        f"{ORIGIN}\n1\n{B64_ROOT}\n\n",  # empty extension line
        f"{ORIGIN}\n0\n{B64_ROOT}\n",  # size 0 needs the empty root
        f"{ORIGIN}\n\u0661\n{B64_ROOT}\n",
    ],
)
def test_malformed_checkpoint_texts(text: str) -> None:
    with pytest.raises(MalformedError):
        parse_checkpoint_text(text)


def test_empty_tree_checkpoint() -> None:
    checkpoint = Checkpoint(ORIGIN, 0, EMPTY_ROOT)
    assert parse_checkpoint_text(checkpoint.text()) == checkpoint


@PROPERTY
@given(
    size=st.integers(min_value=1, max_value=(1 << 63) - 1),
    root=st.binary(min_size=32, max_size=32),
    timestamp=st.integers(min_value=0, max_value=(1 << 63) - 1),
)
def test_checkpoint_property_round_trip(size: int, root: bytes, timestamp: int) -> None:
    log = log_signer()
    cosigner = notary_signers(1)[0]
    checkpoint = Checkpoint(ORIGIN, size, root)
    signed = add_cosignatures(
        sign_checkpoint(checkpoint, log), [cosigner.cosign(checkpoint.text_bytes(), timestamp)]
    )
    opened = open_checkpoint(signed, log.verifier, [cosigner.verifier])
    assert opened.checkpoint == checkpoint
    assert opened.cosignatures[0].timestamp == timestamp


# ---------------------------------------------------------------------------------------------
# Fuzz: parsers only raise ChainError subclasses


@FUZZ
@given(st.binary(max_size=600))
def test_fuzz_note_parsers(data: bytes) -> None:
    log = log_signer()
    for parse in (
        parse_note,
        parse_signature_lines,
        lambda d: open_note(d, [log.verifier]),
        lambda d: open_checkpoint(d, log.verifier, [c.verifier for c in notary_signers(1)]),
    ):
        try:
            parse(data)
        except ChainError:
            pass


@FUZZ
@given(st.text(max_size=300))
def test_fuzz_key_and_text_parsers(text: str) -> None:
    for parse in (parse_vkey, parse_signer_key, parse_checkpoint_text):
        try:
            parse(text)
        except ChainError:
            pass


def _signed_checkpoint() -> bytes:
    checkpoint = Checkpoint(ORIGIN, 12345, ROOT)
    cosigner = notary_signers(1)[0]
    return add_cosignatures(
        sign_checkpoint(checkpoint, log_signer()), [cosigner.cosign(checkpoint.text_bytes(), 9)]
    )


SIGNED = _signed_checkpoint()


@FUZZ
@given(
    position=st.integers(min_value=0, max_value=len(SIGNED) - 1),
    value=st.integers(min_value=0, max_value=255),
    cut=st.integers(min_value=0, max_value=len(SIGNED)),
)
def test_fuzz_mutated_checkpoints_fail_closed(position: int, value: int, cut: int) -> None:
    mutated = bytearray(SIGNED)
    mutated[position] = value
    verifiers = [notary_signers(1)[0].verifier]
    for candidate in (bytes(mutated), SIGNED[:cut], SIGNED[:cut] + SIGNED):
        if candidate == SIGNED:
            continue
        try:
            opened = open_checkpoint(candidate, log_signer().verifier, verifiers)
        except ChainError:
            continue
        # Only changes to the cosignature line's *name* can still open (it becomes an
        # unknown signature, ignored); the signed content must be unchanged.
        assert opened.checkpoint == parse_checkpoint_text(parse_note(SIGNED).text)


def test_cosignature_verifier_from_vkey() -> None:
    cosigner = notary_signers(1)[0]
    parsed = parse_vkey(cosigner.vkey)
    assert isinstance(parsed, CosignatureVerifier)
    assert parsed.algorithm == ALG_COSIGNATURE_V1


NOTE_TEXT = st.text(
    alphabet=st.characters(blacklist_categories=["Cs"], min_codepoint=0x20) | st.just("\n"),
    max_size=200,
).map(lambda text: text + "\n")


@PROPERTY
@given(text=NOTE_TEXT, count=st.integers(min_value=1, max_value=4))
def test_note_round_trip(text: str, count: int) -> None:
    signers = [Ed25519Signer.from_seed(f"signer{i}.example", seed(f"rt{i}")) for i in range(count)]
    note = Note(text)
    for signer in signers:
        note = signer.sign_note(note)
    data = note.to_bytes()
    assert parse_note(data) == note
    opened = open_note(data, [s.verifier for s in signers])
    assert opened.note.text == text and len(opened.verified) == count
