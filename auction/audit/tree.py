"""The tree recomputed from the entries: every node hash, for roots and proofs."""

from __future__ import annotations

import hashlib

from chain import (
    HASH_SIZE,
    ProofError,
)


class TreeHashes:
    """Every node hash of the tree recomputed from the entries, one bytearray per level
    (64 bytes per entry in all). A :class:`chain.HashReader` for proofs and roots."""

    __slots__ = ("levels",)

    def __init__(self) -> None:
        self.levels: list[bytearray] = [bytearray()]

    @property
    def size(self) -> int:
        return len(self.levels[0]) // HASH_SIZE

    def extend(self, leaf_hashes: bytes) -> None:
        """Append leaf hashes and every interior node they complete (RFC 9162 2.1.1)."""
        self.levels[0] += leaf_hashes
        sha256 = hashlib.sha256
        level = 0
        while True:
            below = self.levels[level]
            complete = len(below) // (2 * HASH_SIZE)
            if complete == 0:
                return
            if level + 1 == len(self.levels):
                self.levels.append(bytearray())
            above = self.levels[level + 1]
            have = len(above) // HASH_SIZE
            if have == complete:
                return
            view = bytes(below[2 * HASH_SIZE * have : 2 * HASH_SIZE * complete])
            above += b"".join(
                sha256(b"\x01" + view[i : i + 2 * HASH_SIZE]).digest()
                for i in range(0, len(view), 2 * HASH_SIZE)
            )
            level += 1

    def hashes(self, level: int, begin: int, end: int) -> bytes:
        """The hashes of nodes ``begin..end-1`` of ``level`` that are complete."""
        if level >= len(self.levels):
            return b""
        return bytes(self.levels[level][begin * HASH_SIZE : end * HASH_SIZE])

    def __call__(self, level: int, index: int) -> bytes:
        digest = self.hashes(level, index, index + 1)
        if len(digest) != HASH_SIZE:
            raise ProofError(f"node ({level}, {index}) is not in the recomputed tree")
        return digest
