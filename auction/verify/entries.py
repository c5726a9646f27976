"""Checks of one entry's bytes: the message its actor signed, and that signature."""

from __future__ import annotations

import functools
from typing import Final

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

_BODY_START: Final = b'},"body":'


_BODY_END: Final = b',"prev":'


def signed_message(entry_type: str, data: bytes) -> bytes:
    """``chain.actor_message(type, body)`` cut from entry bytes that ``parse_entry`` accepted.

    Canonical JSON (RFC 8785) orders the members actor, body, prev, seq, t, type, v, and a
    member nested in a canonical object is encoded exactly as on its own; inside strings every
    quote is escaped. So ``body`` starts after the first ``},"body":`` (the end of ``actor``,
    which holds two strings) and ends at the last ``,"prev":`` (only scalars follow it): the
    slice is ``JCS(body)`` without re-encoding it (the dominant cost of ``verify_actor``).
    """
    start = data.index(_BODY_START) + len(_BODY_START)
    end = data.rindex(_BODY_END)
    return b"gavel/" + entry_type.encode("ascii") + b"/v1\n" + data[start:end]


@functools.lru_cache(maxsize=64)
def _public_key(raw: bytes) -> Ed25519PublicKey:
    return Ed25519PublicKey.from_public_bytes(raw)


def signature_verifies(public_key: bytes, signature: bytes, message: bytes) -> bool:
    try:
        _public_key(public_key).verify(signature, message)
    except InvalidSignature:
        return False
    return True
