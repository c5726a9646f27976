"""Entry bytes for the writer: the key that signs entries as their actor, and a fast path that
writes exactly the bytes of ``chain.build_entry(...).to_bytes()`` for plain bodies through the C
JSON encoder instead of the pure-Python RFC 8785 one (anything unusual takes the reference
path; a property test holds them equal)."""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from typing import Any, Final

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ..entry import (
    ENTRY_VERSION,
    MAX_BODY_DEPTH,
    MAX_ENTRY_BYTES,
    Actor,
    EntryType,
    JSONValue,
    build_entry,
    format_time,
    sign_actor,
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


# --- canonical JSON, fast path --------------------------------------------------------------------

_MAX_INTEGER: Final = 2**53 - 1


def _plain(value: Any, depth: int) -> bool:
    """Whether ``json.dumps`` of ``value`` gives exactly its RFC 8785 encoding.

    True for None, bools, strings, integers within the I-JSON range, and lists and dicts of
    those whose keys are ASCII (so that code-point order is UTF-16 order, RFC 8785 3.2.3) and
    that nest at most MAX_BODY_DEPTH deep. Strings are escaped alike by both (RFC 8785 3.2.2.2:
    only ``"``, ``\\`` and controls; controls as ``\\b \\t \\n \\f \\r`` or lowercase
    ``\\u00xx``); lone surrogates fail at UTF-8 encoding and take the slow path.
    """
    kind = type(value)
    if kind is dict:
        if depth >= MAX_BODY_DEPTH:
            return False
        for key, item in value.items():
            if type(key) is not str or not key.isascii() or not _plain_item(item, depth):
                return False
        return True
    if kind is list or kind is tuple:
        if depth >= MAX_BODY_DEPTH:
            return False
        return all(_plain_item(item, depth) for item in value)
    return _plain_item(value, depth - 1)


def _plain_item(item: Any, depth: int) -> bool:
    """:func:`_plain` for a member of a container at ``depth`` (scalars without recursion)."""
    kind = type(item)
    if kind is str or kind is bool or item is None:
        return True
    if kind is int:
        return bool(-_MAX_INTEGER <= item <= _MAX_INTEGER)
    if kind is dict or kind is list or kind is tuple:
        return _plain(item, depth + 1)
    return False


def _fast_canonical(value: Mapping[str, JSONValue]) -> bytes | None:
    """RFC 8785 bytes of ``value`` via the C JSON encoder, or ``None`` if it might differ."""
    if not _plain(value, 1):
        return None
    text = json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate: let the strict path reject it
        return None


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
    body_bytes = _fast_canonical(body)
    if body_bytes is None:
        actor = sign_actor(kind, body, signer.kid, signer.private_key)
        entry = build_entry(
            seq=seq, prev=prev, time_us=time_us, entry_type=kind, body=body, actor=actor
        )
        return entry.to_bytes()
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
