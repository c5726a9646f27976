"""Proofs from the stored tree: tiles expanded once into every subtree they hold, a
:class:`~chain.proof.HashReader` over them, and the root and RFC 9162 proofs of a stored tree."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy.engine import Connection

from ..hashing import HASH_SIZE, node_hash
from ..proof import consistency_proof as _consistency_proof
from ..proof import inclusion_proof as _inclusion_proof
from ..proof import tree_root as _tree_root
from ..tiles import Tile, parse_tile, tile_for_node
from .rows import read_tile

__all__ = [
    "ExpandedTile",
    "SubtreeReader",
    "consistency_proof",
    "expand_tile",
    "expanded_hash",
    "hash_reader",
    "inclusion_proof",
    "tree_root",
]

ExpandedTile = tuple[bytes, ...]
"""Every complete subtree inside a tile: level ``j`` is the concatenated roots (32 bytes each)
of ``2**j`` tile hashes; level 0 is the tile's own bytes. One string per level, not one per
hash: a full tile takes 16 KiB, not the ~37 KiB of 511 separate hash objects (RELIABILITY.md
§6: servers keep many of them)."""


def expand_tile(tile: Tile, data: bytes) -> ExpandedTile:
    """Hash a tile's ``width`` hashes up to the top of the tile, once (``width - 1`` node
    hashes), so that any node inside it is then a lookup (:func:`expanded_hash`). Raises
    :class:`MalformedError` if ``data`` is not ``width`` hashes."""
    level = parse_tile(tile, data)
    levels = [b"".join(level)]
    while len(level) > 1:
        level = [node_hash(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        levels.append(b"".join(level))
    return tuple(levels)


def expanded_hash(levels: ExpandedTile, height: int, index: int) -> bytes:
    """The root of the ``index``-th complete subtree of height ``height`` in an expanded tile."""
    start = index * HASH_SIZE
    digest = levels[height][start : start + HASH_SIZE]
    if len(digest) != HASH_SIZE:
        raise IndexError(f"no subtree {index} of height {height} in this tile")
    return digest


class SubtreeReader:
    """A :class:`~chain.proof.HashReader` over the tiles of the tree of ``size`` that expands
    each tile it needs once (:func:`expand_tile`): a proof costs a few tile reads and lookups.

    ``expanded(tile)`` returns the expanded tile; callers may cache full tiles across readers
    (they never change). The hashes are unauthenticated, as with :class:`~chain.TileHashReader`.
    """

    def __init__(self, size: int, expanded: Callable[[Tile], ExpandedTile]) -> None:
        self._size = size
        self._expanded = expanded
        self._local: dict[Tile, ExpandedTile] = {}

    def __call__(self, level: int, index: int) -> bytes:
        """The hash of node ``(level, index)`` of the tree of ``size``."""
        tile, offset, count = tile_for_node(level, index, self._size)
        levels = self._local.get(tile)
        if levels is None:
            levels = self._local[tile] = self._expanded(tile)
        height = count.bit_length() - 1
        return expanded_hash(levels, height, offset >> height)


def hash_reader(connection: Connection, size: int) -> SubtreeReader:
    """A :class:`~chain.proof.HashReader` over the stored tiles of the tree of ``size``.

    Valid while ``connection`` is; use it with :func:`chain.inclusion_proof` and friends.
    """
    return SubtreeReader(size, lambda tile: expand_tile(tile, read_tile(connection, tile)))


def tree_root(connection: Connection, size: int) -> bytes:
    """The root of the stored tree of ``size`` entries, from stored hashes."""
    return _tree_root(size, hash_reader(connection, size))


def inclusion_proof(connection: Connection, index: int, size: int) -> list[bytes]:
    """The RFC 9162 inclusion proof of entry ``index`` in the stored tree of ``size``."""
    return _inclusion_proof(index, size, hash_reader(connection, size))


def consistency_proof(connection: Connection, size1: int, size2: int) -> list[bytes]:
    """The RFC 9162 consistency proof from ``size1`` to ``size2`` over the stored tree."""
    return _consistency_proof(size1, size2, hash_reader(connection, size2))
