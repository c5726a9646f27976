"""RFC 9162 Merkle tree hashing (section 2.1.1), the bottom layer of the Merkle code.

Callers hash an entry with :func:`leaf_hash` before anything else touches it (recompute it from
the stored bytes, never trust a stored leaf hash), and combine subtree hashes with
:func:`node_hash`. Everything else in ``chain`` builds on these two functions.
"""

from __future__ import annotations

import hashlib

__all__ = ["EMPTY_ROOT", "HASH_SIZE", "leaf_hash", "node_hash"]

HASH_SIZE = 32
"""Size in bytes of every hash in the tree (SHA-256)."""

EMPTY_ROOT = hashlib.sha256(b"").digest()
"""Root of the empty tree: MTH({}) = SHA-256() (RFC 9162 2.1.1)."""

_LEAF_PREFIX = b"\x00"
_NODE_PREFIX = b"\x01"


def leaf_hash(entry: bytes) -> bytes:
    """Return MTH({d}) = SHA-256(0x00 || d) for one entry (RFC 9162 2.1.1).

    The 0x00 / 0x01 prefixes make a leaf hash and an interior node hash different functions,
    which defeats second-preimage attacks where an interior node is presented as a leaf.
    """
    return hashlib.sha256(_LEAF_PREFIX + entry).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """Return SHA-256(0x01 || left || right), the hash of an interior node (RFC 9162 2.1.1).

    Both arguments must be 32-byte hashes; callers that got them from the network validate the
    length first (the verify functions do).
    """
    return hashlib.sha256(_NODE_PREFIX + left + right).digest()
