"""Note keys: key names, key ids, the text forms of keys, and the cosignature/v1 message.

Verifiers come from *vkeys* ``<name>+<hex key id>+base64(type || public key)`` (the
golang.org/x/mod/sumdb/note format), signers from ``PRIVATE+KEY+<name>+<hex key
id>+base64(type || seed)``; the key id is ``SHA-256(name || "\\n" || type || public key)[:4]``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from typing import Final

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from ..errors import MalformedError, TooLargeError

__all__ = [
    "ALG_COSIGNATURE_V1",
    "ALG_ED25519",
    "cosignature_message",
    "key_id",
    "validate_key_name",
]

ALG_ED25519: Final = 0x01
"""Signature type of plain Ed25519 note signatures (signed-note)."""

ALG_COSIGNATURE_V1: Final = 0x04
"""Signature type of timestamped Ed25519 cosignatures (tlog-cosignature)."""

MAX_KEY_NAME_BYTES: Final = 255
"""Longest key name accepted in keys we create or load (fits tlog-cosignature's name<1..255>)."""

MAX_KEY_TEXT: Final = 1024
"""Longest vkey / signer key text accepted."""

MAX_TIMESTAMP: Final = (1 << 63) - 1
"""tlog-cosignature: the timestamp MUST NOT exceed 2**63 - 1."""

_COSIGNATURE_HEADER = b"cosignature/v1\n"


def b64decode(text: str, what: str) -> bytes:
    """``text`` as base64; :class:`MalformedError` naming ``what`` if it is not."""
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError) as exc:
        raise MalformedError(f"{what} is not valid base64") from exc


def b64encode(data: bytes) -> str:
    """``data`` as base64 text."""
    return base64.b64encode(data).decode("ascii")


def _has_bad_name_character(name: str) -> bool:
    # signed-note: no Unicode spaces, no "+", and (note-wide) no control characters.
    return any(ch == "+" or ch.isspace() or ord(ch) < 0x20 or ch == "\x7f" for ch in name)


def is_valid_signature_name(name: str) -> bool:
    """Whether ``name`` may appear on a signature line (non-empty, no space, ``+`` or control)."""
    return bool(name) and not _has_bad_name_character(name)


def validate_key_name(name: str) -> None:
    """Raise :class:`MalformedError` unless ``name`` is a valid key name we accept for a key.

    Non-empty, at most 255 UTF-8 bytes, valid UTF-8 (no lone surrogates), no Unicode white
    space, no ``+``, no control characters (signed-note "Format").
    """
    if not isinstance(name, str) or not is_valid_signature_name(name):
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


def vkey_text(name: str, algorithm: int, public_key: bytes) -> str:
    """The verifier key text ``name+hexid+base64(type || public key)``."""
    encoded = b64encode(bytes([algorithm]) + public_key)
    return f"{name}+{key_id(name, algorithm, public_key).hex()}+{encoded}"


def raw_public_key(private_key: Ed25519PrivateKey) -> bytes:
    """The raw 32-byte public key of ``private_key``."""
    return private_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def load_public_key(public_key: bytes) -> Ed25519PublicKey:
    """An Ed25519 public key from its 32 raw bytes; :class:`MalformedError` otherwise."""
    if not isinstance(public_key, bytes) or len(public_key) != 32:
        raise MalformedError("Ed25519 public key must be 32 bytes")
    try:
        return Ed25519PublicKey.from_public_bytes(public_key)
    except ValueError as exc:  # pragma: no cover - every 32-byte string loads
        raise MalformedError("invalid Ed25519 public key") from exc


def load_seed(seed: bytes) -> Ed25519PrivateKey:
    """An Ed25519 key from its 32-byte RFC 8032 seed; :class:`MalformedError` otherwise."""
    if not isinstance(seed, bytes) or len(seed) != 32:
        raise MalformedError("Ed25519 seed must be 32 bytes")
    return Ed25519PrivateKey.from_private_bytes(seed)


def split_key_text(text: str, parts: int, what: str) -> list[str]:
    """The ``parts`` ``+``-separated fields of a key text (bounded)."""
    if not isinstance(text, str):
        raise MalformedError(f"{what} must be text")
    if len(text) > MAX_KEY_TEXT:
        raise TooLargeError(f"{what} too long")
    # The base64 key may itself contain "+": split only at the first parts - 1 separators.
    fields = text.split("+", parts - 1)
    if len(fields) != parts:
        raise MalformedError(f"{what} must have {parts} '+'-separated fields")
    return fields


def parse_key_id(text: str) -> bytes:
    """A key id from its 8 hex digits."""
    if len(text) != 8 or any(ch not in "0123456789abcdefABCDEF" for ch in text):
        raise MalformedError("key id must be 8 hex digits")
    return bytes.fromhex(text)
