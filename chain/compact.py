"""Node ids and compact ranges: the index-math layer under proofs and tiles.

A *compact range* for leaves ``[begin, end)`` is the minimal list of perfect subtree hashes that
cover the range, left to right (transparency-dev/merkle ``compact/range.go``). Appending a leaf
to it costs O(log n) time and memory and reports every perfect subtree that the leaf completes,
which is exactly what a store must persist to serve tiles and proofs later.

Typical use by a log::

    tree = CompactRange.from_hashes(0, size, hashes_of(range_nodes(0, size)))
    for entry in batch:
        for node, digest in tree.append(leaf_hash(entry)):
            store.put(node.level, node.index, digest)
    root = tree.root()        # sign a checkpoint over (tree.end, root)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .errors import MalformedError
from .hashing import EMPTY_ROOT, HASH_SIZE, node_hash

__all__ = [
    "MAX_TREE_SIZE",
    "CompactRange",
    "NodeID",
    "decompose",
    "range_nodes",
    "root_from_hashes",
]

MAX_TREE_SIZE = (1 << 63) - 1
"""Largest tree size (and leaf count) accepted anywhere in ``chain`` (int64, as in Go)."""

_MASK64 = (1 << 64) - 1


def _len64(x: int) -> int:
    return (x & _MASK64).bit_length()


def _trailing_zeros64(x: int) -> int:
    x &= _MASK64
    if x == 0:
        return 64
    return (x & -x).bit_length() - 1


@dataclass(frozen=True, slots=True, order=True)
class NodeID:
    """A node of the tree: ``level`` 0 holds leaves; ``index`` counts from the left.

    The node covers leaves ``[index << level, (index + 1) << level)``.
    """

    level: int
    index: int

    def __post_init__(self) -> None:
        if not 0 <= self.level <= 64 or self.index < 0:
            raise ValueError(f"invalid node id ({self.level}, {self.index})")

    def parent(self) -> NodeID:
        """Return the node one level up that contains this one."""
        return NodeID(self.level + 1, self.index >> 1)

    def sibling(self) -> NodeID:
        """Return the other child of this node's parent."""
        return NodeID(self.level, self.index ^ 1)

    def coverage(self) -> tuple[int, int]:
        """Return ``(begin, end)``: the leaves under this node."""
        return self.index << self.level, (self.index + 1) << self.level


def decompose(begin: int, end: int) -> tuple[int, int]:
    """Split ``[begin, end)`` into perfect subtrees; return them as (left, right) bit masks.

    A 1 bit k in ``left`` (read from low to high) or in ``right`` (read from high to low) stands
    for one subtree of 2**k leaves (transparency-dev ``compact.Decompose``).
    """
    if begin == 0:
        return 0, end
    xbegin = begin - 1
    d = _len64(xbegin ^ end) - 1
    mask = (1 << d) - 1
    return ~xbegin & mask, end & mask


def range_nodes(begin: int, end: int) -> list[NodeID]:
    """Return the ids of the perfect subtrees covering ``[begin, end)``, left to right.

    For ``begin == 0`` these are the nodes whose hashes, folded right to left, give the root of
    the tree of size ``end``: fetch them from the store to rebuild a :class:`CompactRange`.
    """
    if not 0 <= begin <= end <= MAX_TREE_SIZE:
        raise ValueError(f"invalid range [{begin}, {end})")
    left, right = decompose(begin, end)
    ids: list[NodeID] = []
    position = begin
    while left:
        level = _trailing_zeros64(left)
        bit = 1 << level
        ids.append(NodeID(level, position >> level))
        position += bit
        left ^= bit
    while right:
        level = right.bit_length() - 1
        bit = 1 << level
        ids.append(NodeID(level, position >> level))
        position += bit
        right ^= bit
    return ids


def _merge_path(begin: int, middle: int, end: int) -> tuple[int, int]:
    low = _trailing_zeros64(middle)
    high = 64
    if begin != 0:
        high = _len64(middle ^ (begin - 1))
    high2 = _len64((middle - 1) ^ end)
    high = min(high, high2)
    return low, high - 1


class CompactRange:
    """The minimal set of perfect subtree hashes covering leaves ``[begin, end)``.

    Mutable: :meth:`append` grows it in place. Use :meth:`copy` before speculative appends.
    """

    __slots__ = ("_begin", "_end", "_hashes")

    def __init__(self, begin: int = 0) -> None:
        """Create the empty range ``[begin, begin)``; appends then grow it to the right."""
        if not 0 <= begin <= MAX_TREE_SIZE:
            raise ValueError(f"invalid begin {begin}")
        self._begin = begin
        self._end = begin
        self._hashes: list[bytes] = []

    @classmethod
    def from_hashes(cls, begin: int, end: int, hashes: Sequence[bytes]) -> CompactRange:
        """Rebuild a range from the hashes of ``range_nodes(begin, end)``, in that order.

        Raises :class:`MalformedError` if the count or a hash length is wrong. The hashes are
        not authenticated here: compare ``root()`` with a signed checkpoint before trusting it.
        """
        if not 0 <= begin <= end <= MAX_TREE_SIZE:
            raise MalformedError(f"invalid range [{begin}, {end})")
        left, right = decompose(begin, end)
        want = left.bit_count() + right.bit_count()
        if len(hashes) != want:
            raise MalformedError(f"compact range [{begin}, {end}) needs {want} hashes")
        for digest in hashes:
            if len(digest) != HASH_SIZE:
                raise MalformedError("hash of wrong length in compact range")
        result = cls(begin)
        result._end = end
        result._hashes = [bytes(digest) for digest in hashes]
        return result

    @property
    def begin(self) -> int:
        """First leaf index covered (inclusive)."""
        return self._begin

    @property
    def end(self) -> int:
        """One past the last leaf covered: the tree size when ``begin == 0``."""
        return self._end

    @property
    def hashes(self) -> tuple[bytes, ...]:
        """The subtree hashes, left to right, matching ``range_nodes(begin, end)``."""
        return tuple(self._hashes)

    def copy(self) -> CompactRange:
        """Return an independent copy."""
        return CompactRange.from_hashes(self._begin, self._end, self._hashes)

    def append(self, leaf: bytes) -> list[tuple[NodeID, bytes]]:
        """Append one leaf hash; return the nodes it completes, lowest level first.

        The list always starts with the leaf itself (level 0) and then every perfect subtree
        completed by it. The caller persists them all (they are the hashes tiles are made of)
        before it signs a checkpoint covering the new size.
        """
        if len(leaf) != HASH_SIZE:
            raise MalformedError("leaf hash must be 32 bytes")
        if self._end >= MAX_TREE_SIZE:
            raise MalformedError("tree is full")
        completed = [(NodeID(0, self._end), bytes(leaf))]
        self._merge(self._end + 1, bytes(leaf), [], completed)
        return completed

    def extend(self, other: CompactRange) -> list[tuple[NodeID, bytes]]:
        """Merge the adjacent range ``other`` (``other.begin == self.end``) into this one.

        Returns the interior nodes created by the merge (not the ones ``other`` already held).
        """
        if other._begin != self._end:
            raise ValueError(f"ranges are not adjacent: {other._begin} != {self._end}")
        if not other._hashes:
            return []
        completed: list[tuple[NodeID, bytes]] = []
        self._merge(other._end, other._hashes[0], other._hashes[1:], completed)
        return completed

    def _merge(
        self, end: int, seed: bytes, hashes: list[bytes], completed: list[tuple[NodeID, bytes]]
    ) -> None:
        # transparency-dev/merkle compact/range.go appendImpl.
        low, high = _merge_path(self._begin, self._end, end)
        high = max(high, low)
        index = self._end >> low
        left_index = len(self._hashes)
        right_index = 0
        for level in range(low, high):
            if index & 1 == 0:
                seed = node_hash(seed, hashes[right_index])
                right_index += 1
            else:
                left_index -= 1
                seed = node_hash(self._hashes[left_index], seed)
            index >>= 1
            completed.append((NodeID(level + 1, index), seed))
        self._hashes = [*self._hashes[:left_index], seed, *hashes[right_index:]]
        self._end = end

    def root(self) -> bytes:
        """Return the RFC 9162 root hash of the tree ``[0, end)``; EMPTY_ROOT when empty.

        Only defined for ranges starting at 0 (raises ``ValueError`` otherwise).
        """
        if self._begin != 0:
            raise ValueError("root() needs a range that starts at leaf 0")
        if not self._hashes:
            return EMPTY_ROOT
        digest = self._hashes[-1]
        for left in reversed(self._hashes[:-1]):
            digest = node_hash(left, digest)
        return digest


def root_from_hashes(leaf_hashes: Sequence[bytes]) -> bytes:
    """Return MTH over the given leaf hashes (any count; EMPTY_ROOT for none).

    Also gives the hash of any node whose leaf hashes (or lower-level subtree hashes of equal
    height) are listed, e.g. a subtree inside a tile. Raises :class:`MalformedError` on a hash
    of the wrong length.
    """
    tree = CompactRange()
    for digest in leaf_hashes:
        if len(digest) != HASH_SIZE:
            raise MalformedError("hash of wrong length")
        tree._merge(tree._end + 1, bytes(digest), [], [])
    return tree.root()
