"""Shared helpers for the tests of ``chain`` (settings, deterministic keys, sample data)."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, settings

from chain import (
    Actor,
    Checkpoint,
    CosignatureSigner,
    Ed25519Signer,
    Entry,
    EntryType,
    JSONValue,
    MemoryTree,
    add_cosignatures,
    build_entry,
    sign_actor,
    sign_checkpoint,
)

PROPERTY = settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
"""Settings for the properties of the ledger: at least 200 examples, no timing."""

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
"""Settings for the parser fuzzers."""

ORIGIN = "auction.example.org/gavel/test-ledger"
BASE_TIME_US = 1_795_000_000_000_000  # 2026-11-18T...


def seed(label: str) -> bytes:
    """A deterministic 32-byte seed for test keys."""
    return hashlib.sha256(b"gavel test key " + label.encode()).digest()


def log_signer(origin: str = ORIGIN) -> Ed25519Signer:
    return Ed25519Signer.from_seed(origin, seed("log " + origin))


def notary_signers(count: int = 3) -> list[CosignatureSigner]:
    return [
        CosignatureSigner.from_seed(f"notary{i}.example.org", seed(f"notary {i}"))
        for i in range(1, count + 1)
    ]


def actor_key(label: str = "bidder") -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(seed("actor " + label))


def make_entries(count: int, start: int = 0) -> list[Entry]:
    """A hash-chained run of signed bid entries, seq ``start`` to ``start + count - 1``."""
    key = actor_key()
    entries: list[Entry] = []
    prev = b""
    for seq in range(start, start + count):
        body: dict[str, JSONValue] = {
            "lot": "L-1",
            "amount": 100_000 + seq * 500,
            "currency": "EUR",
            "bid_id": seq,
        }
        entry = build_entry(
            seq=seq,
            prev=prev,
            time_us=BASE_TIME_US + seq * 1_000,
            entry_type=EntryType.BID,
            body=body,
            actor=sign_actor(EntryType.BID, body, "bidder-1", key),
        )
        entries.append(entry)
        prev = entry.leaf_hash()
    return entries


def tree_of(entries: Sequence[bytes]) -> MemoryTree:
    tree = MemoryTree()
    for entry in entries:
        tree.append(entry)
    return tree


def cosigned_checkpoint(
    tree: MemoryTree,
    cosigners: Sequence[CosignatureSigner],
    *,
    timestamp: int = 1_795_000_000,
    origin: str = ORIGIN,
) -> bytes:
    """Sign the tree's current checkpoint with the log key and add the cosignatures."""
    checkpoint = Checkpoint(origin, tree.size, tree.root())
    signed = sign_checkpoint(checkpoint, log_signer(origin))
    lines = [c.cosign(checkpoint.text_bytes(), timestamp + i) for i, c in enumerate(cosigners)]
    return add_cosignatures(signed, lines)


__all__ = [
    "BASE_TIME_US",
    "FUZZ",
    "ORIGIN",
    "PROPERTY",
    "Actor",
    "actor_key",
    "cosigned_checkpoint",
    "log_signer",
    "make_entries",
    "notary_signers",
    "seed",
    "tree_of",
]
