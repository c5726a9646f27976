"""C2SP signed notes, Ed25519 note keys (type 0x01) and cosignature/v1 keys (type 0x04).

A signed note (c2sp.org/signed-note) is UTF-8 text ending in a newline, a blank line, then
signature lines ``— <key name> base64(key id || signature)``. The key id is
``SHA-256(name || "\\n" || type || public key)[:4]``.

- The log signs checkpoints with an :class:`Ed25519Signer` (signature = Ed25519 over the text).
- A notary cosigns with a :class:`CosignatureSigner` (c2sp.org/tlog-cosignature,
  ``cosignature/v1``): the signature bytes are ``8-byte big-endian timestamp || Ed25519 over
  "cosignature/v1\\ntime <t>\\n" || text``.
- Verifiers (:class:`Ed25519Verifier`, :class:`CosignatureVerifier`) come from *vkeys*
  ``<name>+<hex key id>+base64(type || public key)`` (the golang.org/x/mod/sumdb/note format),
  signers from ``PRIVATE+KEY+<name>+<hex key id>+base64(type || seed)``.

:func:`parse_note` splits a note (bounded, strict); :func:`open_note` also verifies it: it
ignores unknown keys, rejects the whole note if a known key's signature fails, and requires at
least one known key to have signed. Private keys never appear in ``repr`` or errors.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final, Protocol

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from .errors import ConfigurationError, MalformedError, SignatureError, TooLargeError

__all__ = [
    "ALG_COSIGNATURE_V1",
    "ALG_ED25519",
    "MAX_NOTE_SIZE",
    "MAX_SIGNATURES",
    "CosignatureSigner",
    "CosignatureVerifier",
    "Ed25519Signer",
    "Ed25519Verifier",
    "Note",
    "NoteSignature",
    "NoteVerifier",
    "OpenedNote",
    "VerifiedSignature",
    "cosignature_message",
    "key_id",
    "open_note",
    "parse_note",
    "parse_signature_lines",
    "parse_signer_key",
    "parse_vkey",
    "validate_key_name",
]

ALG_ED25519: Final = 0x01
"""Signature type of plain Ed25519 note signatures (signed-note)."""

ALG_COSIGNATURE_V1: Final = 0x04
"""Signature type of timestamped Ed25519 cosignatures (tlog-cosignature)."""

MAX_NOTE_SIZE: Final = 128 * 1024
"""Notes larger than this are rejected before parsing (room for 16+ post-quantum signatures)."""

MAX_SIGNATURES: Final = 100
"""At most this many signature lines per note (signed-note: verifiers must accept 16)."""

MAX_KEY_NAME_BYTES: Final = 255
"""Longest key name accepted in keys we create or load (fits tlog-cosignature's name<1..255>)."""

MAX_KEY_TEXT: Final = 1024
"""Longest vkey / signer key text accepted."""

MAX_TIMESTAMP: Final = (1 << 63) - 1
"""tlog-cosignature: the timestamp MUST NOT exceed 2**63 - 1."""

_SIGNATURE_PREFIX = "\u2014 "  # em dash U+2014, space
_COSIGNATURE_HEADER = b"cosignature/v1\n"


def _b64decode(text: str, what: str) -> bytes:
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError) as exc:
        raise MalformedError(f"{what} is not valid base64") from exc


def _b64encode(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _has_bad_name_character(name: str) -> bool:
    # signed-note: no Unicode spaces, no "+", and (note-wide) no control characters.
    return any(ch == "+" or ch.isspace() or ord(ch) < 0x20 or ch == "\x7f" for ch in name)


def _is_valid_signature_name(name: str) -> bool:
    return bool(name) and not _has_bad_name_character(name)


def validate_key_name(name: str) -> None:
    """Raise :class:`MalformedError` unless ``name`` is a valid key name we accept for a key.

    Non-empty, at most 255 UTF-8 bytes, valid UTF-8 (no lone surrogates), no Unicode white
    space, no ``+``, no control characters (signed-note "Format").
    """
    if not isinstance(name, str) or not _is_valid_signature_name(name):
        raise MalformedError("invalid key name")
    try:
        encoded = name.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise MalformedError("key name is not valid UTF-8") from exc
    if len(encoded) > MAX_KEY_NAME_BYTES:
        raise MalformedError("key name longer than 255 bytes")


def key_id(name: str, algorithm: int, public_key: bytes) -> bytes:
    """Return the 4-byte key id ``SHA-256(name || 0x0A || algorithm || public_key)[:4]``."""
    digest = hashlib.sha256(name.encode("utf-8") + b"\n" + bytes([algorithm]) + public_key)
    return digest.digest()[:4]


def cosignature_message(text: bytes, timestamp: int) -> bytes:
    """Return what a cosignature/v1 signs: ``cosignature/v1\\ntime <t>\\n`` + note text."""
    return _COSIGNATURE_HEADER + b"time %d\n" % timestamp + text


def _raw_public_key(private_key: Ed25519PrivateKey) -> bytes:
    return private_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def _load_public_key(public_key: bytes) -> Ed25519PublicKey:
    if not isinstance(public_key, bytes) or len(public_key) != 32:
        raise MalformedError("Ed25519 public key must be 32 bytes")
    try:
        return Ed25519PublicKey.from_public_bytes(public_key)
    except ValueError as exc:  # pragma: no cover - every 32-byte string loads
        raise MalformedError("invalid Ed25519 public key") from exc


def _load_seed(seed: bytes) -> Ed25519PrivateKey:
    if not isinstance(seed, bytes) or len(seed) != 32:
        raise MalformedError("Ed25519 seed must be 32 bytes")
    return Ed25519PrivateKey.from_private_bytes(seed)


# --------------------------------------------------------------------------------------------
# Notes


@dataclass(frozen=True, slots=True)
class NoteSignature:
    """One signature line: key ``name``, 4-byte ``key_id`` and the signature bytes after it."""

    name: str
    key_id: bytes
    signature: bytes

    def __post_init__(self) -> None:
        if not _is_valid_signature_name(self.name):
            raise MalformedError("invalid key name in signature")
        if len(self.key_id) != 4 or not self.signature:
            raise MalformedError("signature needs a 4-byte key id and a non-empty signature")

    def to_line(self) -> str:
        """Return ``"— <name> <base64>\\n"``, e.g. for a tlog-witness response body."""
        return f"{_SIGNATURE_PREFIX}{self.name} {_b64encode(self.key_id + self.signature)}\n"


@dataclass(frozen=True, slots=True)
class Note:
    """A signed note: ``text`` (ending in a newline) and its signatures, in order."""

    text: str
    signatures: tuple[NoteSignature, ...] = ()

    def __post_init__(self) -> None:
        if not self.text.endswith("\n"):
            raise MalformedError("note text must end with a newline")
        if any(ord(ch) < 0x20 and ch != "\n" for ch in self.text):
            raise MalformedError("note text contains a control character")
        try:
            self.text.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise MalformedError("note text is not valid UTF-8") from exc
        if len(self.signatures) > MAX_SIGNATURES:
            raise MalformedError("too many signatures")

    @property
    def text_bytes(self) -> bytes:
        """The signed message of plain note signatures: the UTF-8 text with its final newline."""
        return self.text.encode("utf-8")

    def with_signatures(self, *signatures: NoteSignature) -> Note:
        """Return a copy with ``signatures`` appended, skipping ones already present.

        Use it to add a log signature or to merge cosignature lines from notaries.
        """
        merged = list(self.signatures)
        for signature in signatures:
            if signature not in merged:
                merged.append(signature)
        return Note(self.text, tuple(merged))

    def to_bytes(self) -> bytes:
        """Serialise as text, blank line, signature lines. Needs at least one signature."""
        if not self.signatures:
            raise MalformedError("a signed note needs at least one signature")
        lines = "".join(signature.to_line() for signature in self.signatures)
        data = (self.text + "\n" + lines).encode("utf-8")
        if len(data) > MAX_NOTE_SIZE:
            raise TooLargeError("note too large")
        return data


def _decode_note_text(data: bytes, limit: int) -> str:
    if not isinstance(data, bytes | bytearray):
        raise MalformedError("note must be bytes")
    if len(data) > limit:
        raise TooLargeError(f"note larger than {limit} bytes")
    try:
        text = bytes(data).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MalformedError("note is not valid UTF-8") from exc
    for ch in text:
        if ord(ch) < 0x20 and ch != "\n":
            raise MalformedError("note contains a control character")
    return text


def _parse_signature_line(line: str) -> NoteSignature:
    if not line.startswith(_SIGNATURE_PREFIX):
        raise MalformedError("signature line does not start with an em dash and a space")
    name, space, encoded = line[len(_SIGNATURE_PREFIX) :].partition(" ")
    if not space or not encoded or not _is_valid_signature_name(name):
        raise MalformedError("malformed signature line")
    raw = _b64decode(encoded, "signature")
    if len(raw) < 5:
        raise MalformedError("signature shorter than a key id and one byte")
    return NoteSignature(name, raw[:4], raw[4:])


def parse_signature_lines(data: bytes) -> tuple[NoteSignature, ...]:
    """Parse newline-terminated signature lines (e.g. a tlog-witness add-checkpoint response).

    Raises :class:`MalformedError` / :class:`TooLargeError`. The caller adds them to its note
    with :meth:`Note.with_signatures` and then verifies with :func:`open_note`.
    """
    text = _decode_note_text(data, MAX_NOTE_SIZE)
    if not text or not text.endswith("\n"):
        raise MalformedError("signature lines must end with a newline")
    lines = text[:-1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise MalformedError("too many signatures")
    return tuple(_parse_signature_line(line) for line in lines)


def parse_note(data: bytes) -> Note:
    """Split a signed note into text and signatures without verifying anything.

    Strict and bounded (:data:`MAX_NOTE_SIZE`, :data:`MAX_SIGNATURES`): valid UTF-8, no control
    characters but newline, the text ends at the *last* blank line, every later line is a
    signature line. Raises :class:`MalformedError`. Never trust the text before
    :func:`open_note` has verified it.
    """
    text = _decode_note_text(data, MAX_NOTE_SIZE)
    split = text.rfind("\n\n")
    if split < 0:
        raise MalformedError("note has no blank line before its signatures")
    body, signature_block = text[: split + 1], text[split + 2 :]
    if not signature_block or not signature_block.endswith("\n"):
        raise MalformedError("note has no signature lines")
    lines = signature_block[:-1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise MalformedError("too many signatures")
    return Note(body, tuple(_parse_signature_line(line) for line in lines))


# --------------------------------------------------------------------------------------------
# Verifiers


@dataclass(frozen=True, slots=True)
class VerifiedSignature:
    """A signature that verified: who signed and, for cosignatures, when (POSIX seconds)."""

    name: str
    key_id: bytes
    algorithm: int
    timestamp: int | None = None


class NoteVerifier(Protocol):
    """A trusted key that can check signature lines carrying its ``(name, key_id)``."""

    @property
    def name(self) -> str: ...

    @property
    def key_id(self) -> bytes: ...

    def verify(self, text: bytes, signature: bytes) -> VerifiedSignature:
        """Check ``signature`` (the bytes after the key id) over note ``text``.

        Raises :class:`SignatureError` if it does not verify.
        """
        ...


@dataclass(frozen=True, slots=True)
class Ed25519Verifier:
    """A trusted Ed25519 note key (type 0x01), e.g. the log's checkpoint key."""

    name: str
    public_key: bytes

    algorithm = ALG_ED25519

    def __post_init__(self) -> None:
        validate_key_name(self.name)
        _load_public_key(self.public_key)

    @property
    def key_id(self) -> bytes:
        """The 4-byte key id for type 0x01."""
        return key_id(self.name, ALG_ED25519, self.public_key)

    @property
    def vkey(self) -> str:
        """The verifier key text ``name+hexid+base64(0x01 || public key)``: publish it."""
        encoded = _b64encode(bytes([ALG_ED25519]) + self.public_key)
        return f"{self.name}+{self.key_id.hex()}+{encoded}"

    def verify(self, text: bytes, signature: bytes) -> VerifiedSignature:
        """Verify an Ed25519 signature over the note text; raise :class:`SignatureError`."""
        if len(signature) != 64:
            raise SignatureError(f"signature by {self.name} has the wrong length")
        try:
            _load_public_key(self.public_key).verify(signature, text)
        except InvalidSignature as exc:
            raise SignatureError(f"signature by {self.name} does not verify") from exc
        return VerifiedSignature(self.name, self.key_id, ALG_ED25519)


@dataclass(frozen=True, slots=True)
class CosignatureVerifier:
    """A trusted cosigner key (type 0x04, tlog-cosignature ``cosignature/v1``), e.g. a notary.

    :meth:`verify` returns the cosignature's timestamp. A caller that wants to reject
    timestamps in the future (allowed by the spec) compares it with its own clock.
    """

    name: str
    public_key: bytes

    algorithm = ALG_COSIGNATURE_V1

    def __post_init__(self) -> None:
        validate_key_name(self.name)
        _load_public_key(self.public_key)

    @property
    def key_id(self) -> bytes:
        """The 4-byte key id for type 0x04."""
        return key_id(self.name, ALG_COSIGNATURE_V1, self.public_key)

    @property
    def vkey(self) -> str:
        """The verifier key text ``name+hexid+base64(0x04 || public key)``."""
        encoded = _b64encode(bytes([ALG_COSIGNATURE_V1]) + self.public_key)
        return f"{self.name}+{self.key_id.hex()}+{encoded}"

    def verify(self, text: bytes, signature: bytes) -> VerifiedSignature:
        """Verify ``timestamp[8] || sig[64]`` over ``cosignature/v1\\ntime <t>\\n || text``."""
        if len(signature) != 8 + 64:
            raise SignatureError(f"cosignature by {self.name} has the wrong length")
        timestamp = int.from_bytes(signature[:8], "big")
        if timestamp > MAX_TIMESTAMP:
            raise SignatureError(f"cosignature by {self.name} has a timestamp above 2**63-1")
        try:
            _load_public_key(self.public_key).verify(
                signature[8:], cosignature_message(text, timestamp)
            )
        except InvalidSignature as exc:
            raise SignatureError(f"cosignature by {self.name} does not verify") from exc
        return VerifiedSignature(self.name, self.key_id, ALG_COSIGNATURE_V1, timestamp)


def _split_key_text(text: str, parts: int, what: str) -> list[str]:
    if not isinstance(text, str):
        raise MalformedError(f"{what} must be text")
    if len(text) > MAX_KEY_TEXT:
        raise TooLargeError(f"{what} too long")
    # The base64 key may itself contain "+": split only at the first parts - 1 separators.
    fields = text.split("+", parts - 1)
    if len(fields) != parts:
        raise MalformedError(f"{what} must have {parts} '+'-separated fields")
    return fields


def _parse_key_id(text: str) -> bytes:
    if len(text) != 8 or any(ch not in "0123456789abcdefABCDEF" for ch in text):
        raise MalformedError("key id must be 8 hex digits")
    return bytes.fromhex(text)


def parse_vkey(text: str) -> Ed25519Verifier | CosignatureVerifier:
    """Parse a vkey ``name+hexid+base64(type || key)`` of type 0x01 or 0x04.

    Checks that the key id matches the name and key. Raises :class:`MalformedError` for
    anything else (including other signature types, which ``chain`` does not support).
    """
    name, id_text, key_text = _split_key_text(text, 3, "vkey")
    validate_key_name(name)
    claimed = _parse_key_id(id_text)
    raw = _b64decode(key_text, "vkey key")
    if len(raw) != 33:
        raise MalformedError("vkey must hold a type byte and a 32-byte Ed25519 key")
    algorithm, public_key = raw[0], raw[1:]
    verifier: Ed25519Verifier | CosignatureVerifier
    if algorithm == ALG_ED25519:
        verifier = Ed25519Verifier(name, public_key)
    elif algorithm == ALG_COSIGNATURE_V1:
        verifier = CosignatureVerifier(name, public_key)
    else:
        raise MalformedError(f"unsupported vkey signature type 0x{algorithm:02x}")
    if verifier.key_id != claimed:
        raise MalformedError("vkey key id does not match its name and key")
    return verifier


# --------------------------------------------------------------------------------------------
# Signers


class _SignerBase:
    __slots__ = ("_name", "_private_key", "_public_key")
    algorithm: int = 0

    def __init__(self, name: str, private_key: Ed25519PrivateKey) -> None:
        validate_key_name(name)
        if not isinstance(private_key, Ed25519PrivateKey):
            raise ConfigurationError("signer needs an Ed25519 private key")
        self._name = name
        self._private_key = private_key
        self._public_key = _raw_public_key(private_key)

    @property
    def name(self) -> str:
        """The key name that appears on signature lines."""
        return self._name

    @property
    def public_key(self) -> bytes:
        """The raw 32-byte Ed25519 public key."""
        return self._public_key

    @property
    def key_id(self) -> bytes:
        """The 4-byte key id for this signer's type."""
        return key_id(self._name, self.algorithm, self._public_key)

    @property
    def vkey(self) -> str:
        """The matching verifier key text, to publish (policy file, notary configuration)."""
        encoded = _b64encode(bytes([self.algorithm]) + self._public_key)
        return f"{self._name}+{self.key_id.hex()}+{encoded}"

    @property
    def signer_key(self) -> str:
        """``PRIVATE+KEY+name+hexid+base64(type || seed)``: store it as a secret."""
        seed = self._private_key.private_bytes_raw()
        encoded = _b64encode(bytes([self.algorithm]) + seed)
        return f"PRIVATE+KEY+{self._name}+{self.key_id.hex()}+{encoded}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self._name!r}, key_id={self.key_id.hex()})"


class Ed25519Signer(_SignerBase):
    """A note signing key (type 0x01): the log signs checkpoints with it."""

    __slots__ = ()
    algorithm = ALG_ED25519

    @classmethod
    def generate(cls, name: str) -> Ed25519Signer:
        """Create a fresh key. Store :attr:`signer_key` secretly and publish :attr:`vkey`."""
        return cls(name, Ed25519PrivateKey.generate())

    @classmethod
    def from_seed(cls, name: str, seed: bytes) -> Ed25519Signer:
        """Load a key from its 32-byte RFC 8032 seed (deterministic tests, key files)."""
        return cls(name, _load_seed(seed))

    @property
    def verifier(self) -> Ed25519Verifier:
        """The verifier matching this signer."""
        return Ed25519Verifier(self._name, self._public_key)

    def sign(self, text: bytes) -> NoteSignature:
        """Sign note ``text`` (UTF-8, ending in a newline); add the result to the note."""
        return NoteSignature(self._name, self.key_id, self._private_key.sign(text))

    def sign_note(self, note: Note) -> Note:
        """Return ``note`` with this key's signature appended."""
        return note.with_signatures(self.sign(note.text_bytes))


class CosignatureSigner(_SignerBase):
    """A cosigner key (type 0x04): a notary cosigns checkpoints with it (cosignature/v1)."""

    __slots__ = ()
    algorithm = ALG_COSIGNATURE_V1

    @classmethod
    def generate(cls, name: str) -> CosignatureSigner:
        """Create a fresh key. Store :attr:`signer_key` secretly and publish :attr:`vkey`."""
        return cls(name, Ed25519PrivateKey.generate())

    @classmethod
    def from_seed(cls, name: str, seed: bytes) -> CosignatureSigner:
        """Load a key from its 32-byte RFC 8032 seed."""
        return cls(name, _load_seed(seed))

    @property
    def verifier(self) -> CosignatureVerifier:
        """The verifier matching this signer."""
        return CosignatureVerifier(self._name, self._public_key)

    def cosign(self, text: bytes, timestamp: int) -> NoteSignature:
        """Cosign checkpoint ``text`` as of ``timestamp`` (POSIX seconds, from the caller's clock).

        The caller must have verified the checkpoint's consistency with its stored state and
        persisted the new state *before* it hands out the returned signature (tlog-witness).
        """
        if isinstance(timestamp, bool) or not 0 <= timestamp <= MAX_TIMESTAMP:
            raise MalformedError("cosignature timestamp out of range")
        signature = self._private_key.sign(cosignature_message(text, timestamp))
        return NoteSignature(self._name, self.key_id, timestamp.to_bytes(8, "big") + signature)


def parse_signer_key(text: str) -> Ed25519Signer | CosignatureSigner:
    """Parse ``PRIVATE+KEY+name+hexid+base64(type || seed)`` of type 0x01 or 0x04.

    Raises :class:`MalformedError` (never echoing key material) if anything is off, including a
    key id that does not match the derived public key.
    """
    fields = _split_key_text(text, 5, "signer key")
    if fields[0] != "PRIVATE" or fields[1] != "KEY":
        raise MalformedError("signer key must start with PRIVATE+KEY+")
    name, id_text, key_text = fields[2:]
    validate_key_name(name)
    claimed = _parse_key_id(id_text)
    raw = _b64decode(key_text, "signer key")
    if len(raw) != 33:
        raise MalformedError("signer key must hold a type byte and a 32-byte seed")
    algorithm, seed = raw[0], raw[1:]
    signer: Ed25519Signer | CosignatureSigner
    if algorithm == ALG_ED25519:
        signer = Ed25519Signer.from_seed(name, seed)
    elif algorithm == ALG_COSIGNATURE_V1:
        signer = CosignatureSigner.from_seed(name, seed)
    else:
        raise MalformedError(f"unsupported signer key type 0x{algorithm:02x}")
    if signer.key_id != claimed:
        raise MalformedError("signer key id does not match its name and key")
    return signer


# --------------------------------------------------------------------------------------------
# Opening notes


@dataclass(frozen=True, slots=True)
class OpenedNote:
    """A note whose known-key signatures all verified.

    ``verified`` lists one entry per known key that signed (duplicates dropped);
    ``unverified`` the signatures from keys the caller does not know (kept, never trusted).
    """

    note: Note
    verified: tuple[VerifiedSignature, ...]
    unverified: tuple[NoteSignature, ...]

    def signed_by(self, verifier: NoteVerifier) -> VerifiedSignature | None:
        """Return the verified signature of ``verifier``'s key, or ``None``."""
        for signature in self.verified:
            if signature.name == verifier.name and signature.key_id == verifier.key_id:
                return signature
        return None


def _index_verifiers(verifiers: Iterable[NoteVerifier]) -> dict[tuple[str, bytes], NoteVerifier]:
    known: dict[tuple[str, bytes], NoteVerifier] = {}
    for verifier in verifiers:
        slot = (verifier.name, verifier.key_id)
        if slot in known and known[slot] != verifier:
            raise ConfigurationError(f"two trusted keys share name and id {verifier.name}")
        known[slot] = verifier
    return known


def open_note(data: bytes | Note, verifiers: Sequence[NoteVerifier]) -> OpenedNote:
    """Parse ``data`` and verify every signature from a key in ``verifiers``.

    signed-note rules: signatures whose (name, key id) is unknown are ignored; if a known key's
    signature fails the whole note is rejected (:class:`SignatureError`); if no known key signed,
    the note is rejected (:class:`SignatureError`). Malformed input raises
    :class:`MalformedError`. The caller then trusts :attr:`OpenedNote.note` ``.text`` and checks
    *which* keys signed (a checkpoint needs the log's own key).
    """
    note = data if isinstance(data, Note) else parse_note(data)
    known = _index_verifiers(verifiers)
    text = note.text_bytes
    verified: list[VerifiedSignature] = []
    seen: set[tuple[str, bytes]] = set()
    unverified: list[NoteSignature] = []
    for signature in note.signatures:
        slot = (signature.name, signature.key_id)
        verifier = known.get(slot)
        if verifier is None:
            if signature not in unverified:
                unverified.append(signature)
            continue
        if slot in seen:
            # A second signature line for a key we already verified: it must verify as well.
            verifier.verify(text, signature.signature)
            continue
        seen.add(slot)
        verified.append(verifier.verify(text, signature.signature))
    if not verified:
        raise SignatureError("note has no signature from a trusted key")
    return OpenedNote(note, tuple(verified), tuple(unverified))
