"""Signers: a log's note key (Ed25519, type 0x01) and a notary's cosigner key (type 0x04), and
:func:`parse_signer_key`. Private keys never appear in ``repr`` or errors."""

from __future__ import annotations

from typing import Self

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ..errors import ConfigurationError, MalformedError
from .keys import (
    ALG_COSIGNATURE_V1,
    ALG_ED25519,
    MAX_TIMESTAMP,
    b64decode,
    b64encode,
    cosignature_message,
    key_id,
    load_seed,
    parse_key_id,
    raw_public_key,
    split_key_text,
    validate_key_name,
    vkey_text,
)
from .text import Note, NoteSignature
from .verifiers import CosignatureVerifier, Ed25519Verifier

__all__ = ["CosignatureSigner", "Ed25519Signer", "parse_signer_key"]


class _SignerBase:
    __slots__ = ("_name", "_private_key", "_public_key")
    algorithm: int = 0

    def __init__(self, name: str, private_key: Ed25519PrivateKey) -> None:
        validate_key_name(name)
        if not isinstance(private_key, Ed25519PrivateKey):
            raise ConfigurationError("signer needs an Ed25519 private key")
        self._name = name
        self._private_key = private_key
        self._public_key = raw_public_key(private_key)

    @classmethod
    def generate(cls, name: str) -> Self:
        """Create a fresh key. Store :attr:`signer_key` secretly and publish :attr:`vkey`."""
        return cls(name, Ed25519PrivateKey.generate())

    @classmethod
    def from_seed(cls, name: str, seed: bytes) -> Self:
        """Load a key from its 32-byte RFC 8032 seed (deterministic tests, key files)."""
        return cls(name, load_seed(seed))

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
        return vkey_text(self._name, self.algorithm, self._public_key)

    @property
    def signer_key(self) -> str:
        """``PRIVATE+KEY+name+hexid+base64(type || seed)``: store it as a secret."""
        seed = self._private_key.private_bytes_raw()
        encoded = b64encode(bytes([self.algorithm]) + seed)
        return f"PRIVATE+KEY+{self._name}+{self.key_id.hex()}+{encoded}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self._name!r}, key_id={self.key_id.hex()})"


class Ed25519Signer(_SignerBase):
    """A note signing key (type 0x01): the log signs checkpoints with it."""

    __slots__ = ()
    algorithm = ALG_ED25519

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
    fields = split_key_text(text, 5, "signer key")
    if fields[0] != "PRIVATE" or fields[1] != "KEY":
        raise MalformedError("signer key must start with PRIVATE+KEY+")
    name, id_text, key_text = fields[2:]
    validate_key_name(name)
    claimed = parse_key_id(id_text)
    raw = b64decode(key_text, "signer key")
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
