"""An in-memory tree store: the reference (and test fake) for what a durable store must do.

It keeps the entries, every perfect-subtree hash reported by :meth:`CompactRange.append`, and
the compact range of the current tree. Durable stores (SQLite, PostgreSQL) implement the same
calls in the ``auction`` adapters; notary and auditor tests use this one.
"""

from __future__ import annotations

from .compact import CompactRange
from .errors import MalformedError, ProofError
from .hashing import leaf_hash
from .proof import consistency_proof, inclusion_proof, tree_root
from .tiles import (
    EntryBundle,
    Tile,
    TileHashReader,
    build_entry_bundle,
    build_tile,
)

__all__ = ["MemoryTree"]


class MemoryTree:
    """Append-only tree in memory. Not thread-safe; one writer."""

    __slots__ = ("_entries", "_nodes", "_range")

    def __init__(self) -> None:
        self._entries: list[bytes] = []
        self._nodes: dict[tuple[int, int], bytes] = {}
        self._range = CompactRange()

    @property
    def size(self) -> int:
        """Number of leaves."""
        return self._range.end

    def append(self, entry: bytes) -> int:
        """Append entry bytes (hashing them here, from the bytes); return the leaf index."""
        index = self._range.end
        for node, digest in self._range.append(leaf_hash(entry)):
            self._nodes[(node.level, node.index)] = digest
        self._entries.append(bytes(entry))
        return index

    def entry(self, index: int) -> bytes:
        """Return the stored bytes of entry ``index``."""
        if not 0 <= index < len(self._entries):
            raise MalformedError(f"no entry {index}")
        return self._entries[index]

    def root(self) -> bytes:
        """Root of the current tree."""
        return self._range.root()

    def get_node(self, level: int, index: int) -> bytes:
        """A :class:`chain.proof.HashReader`: the stored hash of a perfect subtree."""
        try:
            return self._nodes[(level, index)]
        except KeyError:
            raise ProofError(f"node ({level}, {index}) is not stored") from None

    def root_at(self, size: int) -> bytes:
        """Root of the tree as it was at ``size`` leaves."""
        if size > self.size:
            raise ProofError(f"tree has only {self.size} leaves")
        return tree_root(size, self.get_node)

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        """Inclusion proof of leaf ``index`` in the tree of ``size`` (default: current)."""
        size = self.size if size is None else size
        if size > self.size:
            raise ProofError(f"tree has only {self.size} leaves")
        return inclusion_proof(index, size, self.get_node)

    def consistency_proof(self, size1: int, size2: int | None = None) -> list[bytes]:
        """Consistency proof from ``size1`` to ``size2`` (default: current)."""
        size2 = self.size if size2 is None else size2
        if size2 > self.size:
            raise ProofError(f"tree has only {self.size} leaves")
        return consistency_proof(size1, size2, self.get_node)

    def tile(self, tile: Tile) -> bytes:
        """The bytes of ``tile`` (it must lie within the current tree)."""
        if tile.leaf_end > self.size:
            raise MalformedError(f"{tile.path} is beyond the tree of size {self.size}")
        return build_tile(tile, self.get_node)

    def entry_bundle(self, bundle: EntryBundle) -> bytes:
        """The bytes of entry bundle ``bundle``."""
        if bundle.leaf_end > self.size:
            raise MalformedError(f"{bundle.path} is beyond the tree of size {self.size}")
        return build_entry_bundle(self._entries[bundle.leaf_begin : bundle.leaf_end])

    def tile_reader(self, size: int | None = None) -> TileHashReader:
        """A :class:`TileHashReader` over this tree's tiles at ``size`` (default: current)."""
        return TileHashReader(self.size if size is None else size, self.tile)
