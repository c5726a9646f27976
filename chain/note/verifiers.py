"""Verifiers: trusted keys that check signature lines, Ed25519 (type 0x01) and cosignature/v1
(type 0x04, c2sp.org/tlog-cosignature), and :func:`parse_vkey`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Protocol

from cryptography.exceptions import InvalidSignature

from ..errors import MalformedError, SignatureError
from .keys import (
    ALG_COSIGNATURE_V1,
    ALG_ED25519,
    MAX_TIMESTAMP,
    b64decode,
    cosignature_message,
    key_id,
    load_public_key,
    parse_key_id,
    split_key_text,
    validate_key_name,
    vkey_text,
)

__all__ = [
    "CosignatureVerifier",
    "Ed25519Verifier",
    "NoteVerifier",
    "VerifiedSignature",
    "parse_vkey",
]


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
class _VerifierKey:
    """A trusted public key of type :attr:`algorithm`, by name."""

    name: str
    public_key: bytes

    algorithm: ClassVar[int] = 0

    def __post_init__(self) -> None:
        validate_key_name(self.name)
        load_public_key(self.public_key)

    @property
    def key_id(self) -> bytes:
        """The 4-byte key id for this key's type."""
        return key_id(self.name, self.algorithm, self.public_key)

    @property
    def vkey(self) -> str:
        """The verifier key text ``name+hexid+base64(type || public key)``: publish it."""
        return vkey_text(self.name, self.algorithm, self.public_key)


@dataclass(frozen=True, slots=True)
class Ed25519Verifier(_VerifierKey):
    """A trusted Ed25519 note key (type 0x01), e.g. the log's checkpoint key."""

    algorithm: ClassVar[int] = ALG_ED25519

    def verify(self, text: bytes, signature: bytes) -> VerifiedSignature:
        """Verify an Ed25519 signature over the note text; raise :class:`SignatureError`."""
        if len(signature) != 64:
            raise SignatureError(f"signature by {self.name} has the wrong length")
        try:
            load_public_key(self.public_key).verify(signature, text)
        except InvalidSignature as exc:
            raise SignatureError(f"signature by {self.name} does not verify") from exc
        return VerifiedSignature(self.name, self.key_id, ALG_ED25519)


@dataclass(frozen=True, slots=True)
class CosignatureVerifier(_VerifierKey):
    """A trusted cosigner key (type 0x04, tlog-cosignature ``cosignature/v1``), e.g. a notary.

    :meth:`verify` returns the cosignature's timestamp. A caller that wants to reject
    timestamps in the future (allowed by the spec) compares it with its own clock.
    """

    algorithm: ClassVar[int] = ALG_COSIGNATURE_V1

    def verify(self, text: bytes, signature: bytes) -> VerifiedSignature:
        """Verify ``timestamp[8] || sig[64]`` over ``cosignature/v1\\ntime <t>\\n || text``."""
        if len(signature) != 8 + 64:
            raise SignatureError(f"cosignature by {self.name} has the wrong length")
        timestamp = int.from_bytes(signature[:8], "big")
        if timestamp > MAX_TIMESTAMP:
            raise SignatureError(f"cosignature by {self.name} has a timestamp above 2**63-1")
        try:
            load_public_key(self.public_key).verify(
                signature[8:], cosignature_message(text, timestamp)
            )
        except InvalidSignature as exc:
            raise SignatureError(f"cosignature by {self.name} does not verify") from exc
        return VerifiedSignature(self.name, self.key_id, ALG_COSIGNATURE_V1, timestamp)


def parse_vkey(text: str) -> Ed25519Verifier | CosignatureVerifier:
    """Parse a vkey ``name+hexid+base64(type || key)`` of type 0x01 or 0x04.

    Checks that the key id matches the name and key. Raises :class:`MalformedError` for
    anything else (including other signature types, which ``chain`` does not support).
    """
    name, id_text, key_text = split_key_text(text, 3, "vkey")
    validate_key_name(name)
    claimed = parse_key_id(id_text)
    raw = b64decode(key_text, "vkey key")
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
