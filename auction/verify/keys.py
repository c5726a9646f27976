"""Actor keys: which keys an entry's ``actor.kid`` may name at a point of the log."""

from __future__ import annotations

from typing import Any

from chain import (
    ChainError,
    Ed25519Verifier,
    parse_vkey,
)


def kid_names_key(verifier: Ed25519Verifier, kid: str) -> bool:
    """The one rule for an entry's `actor.kid`, shared by the auditor and the notaries: it names
    a key when it equals the key's vkey, `<name>+<hex key id>`, its name, or its hex key id
    (any case). When several valid keys match, one of them must verify."""
    hex_id = verifier.key_id.hex()
    return kid in (verifier.vkey, f"{verifier.name}+{hex_id}", verifier.name) or (
        kid.lower() == hex_id
    )


def ed25519_vkey(text: Any, what: str) -> Ed25519Verifier:
    if not isinstance(text, str):
        raise ValueError(f"{what} must be a vkey string")
    try:
        verifier = parse_vkey(text)
    except ChainError as exc:
        raise ValueError(f"{what}: {exc.message}") from exc
    if not isinstance(verifier, Ed25519Verifier):
        raise ValueError(f"{what} is not an Ed25519 (type 0x01) key")
    return verifier
