"""Entry bytes for the writer: the key that signs entries as their actor, and the bytes of
``chain.build_entry(...).to_bytes()`` written directly from the body's canonical encoding
(:mod:`chain.canonical`, the same encoder entries use; a property test holds them equal)."""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ..canonical import canonical
from ..entry import (
    ENTRY_VERSION,
    MAX_ENTRY_BYTES,
    Actor,
    EntryType,
    JSONValue,
    format_time,
)
from ..errors import MalformedError, TooLargeError

__all__ = ["EntrySigner", "entry_bytes"]


class EntrySigner:
    """The key that signs entries as their actor (``actor.kid``, ``actor.sig``).

    ``kid`` is whatever the verifier resolves to this key (the auction uses its house vkey).
    """

    __slots__ = ("_kid", "_kid_json", "_private_key")

    def __init__(self, kid: str, private_key: Ed25519PrivateKey) -> None:
        Actor(kid, bytes(64))  # validates the kid the way every entry will
        self._kid = kid
        self._kid_json = json.dumps(kid, ensure_ascii=False).encode("utf-8")
        self._private_key = private_key

    @classmethod
    def from_seed(cls, kid: str, seed: bytes) -> EntrySigner:
        """Load the Ed25519 key from its 32-byte RFC 8032 seed."""
        if not isinstance(seed, bytes) or len(seed) != 32:
            raise MalformedError("Ed25519 seed must be 32 bytes")
        return cls(kid, Ed25519PrivateKey.from_private_bytes(seed))

    @property
    def kid(self) -> str:
        """The key id written into ``actor.kid``."""
        return self._kid

    @property
    def kid_json(self) -> bytes:
        """``kid`` as a JSON string (RFC 8785: it holds no control characters)."""
        return self._kid_json

    @property
    def private_key(self) -> Ed25519PrivateKey:
        """The Ed25519 key (for :func:`chain.sign_actor`)."""
        return self._private_key

    def sign(self, message: bytes) -> bytes:
        """Ed25519 signature over ``message`` (the actor message of an entry)."""
        return self._private_key.sign(message)

    def __repr__(self) -> str:
        return f"EntrySigner(kid={self._kid!r})"


def _b64(data: bytes) -> bytes:
    return base64.b64encode(data)


def entry_bytes(
    seq: int,
    prev: bytes,
    time_us: int,
    kind: EntryType,
    body: Mapping[str, JSONValue],
    signer: EntrySigner,
) -> bytes:
    """The bytes of the entry ``seq`` after the leaf hash ``prev``, signed by ``signer``: equal
    to ``chain.build_entry(...).to_bytes()``. Raises :class:`MalformedError` /
    :class:`TooLargeError` for bodies no entry may hold."""
    body_bytes = canonical(body, 1)
    signature = signer.sign(b"gavel/" + kind.value.encode("ascii") + b"/v1\n" + body_bytes)
    data = b"".join(
        (
            b'{"actor":{"kid":',
            signer.kid_json,
            b',"sig":"',
            _b64(signature),
            b'"},"body":',
            body_bytes,
            b',"prev":"',
            _b64(prev),
            b'","seq":',
            str(seq).encode("ascii"),
            b',"t":"',
            format_time(time_us).encode("ascii"),
            b'","type":"',
            kind.value.encode("ascii"),
            b'","v":"',
            ENTRY_VERSION.encode("ascii"),
            b'"}',
        )
    )
    if len(data) > MAX_ENTRY_BYTES:
        raise TooLargeError(f"entry larger than {MAX_ENTRY_BYTES} bytes")
    return data
