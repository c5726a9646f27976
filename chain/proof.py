"""Which nodes a proof needs (index math), and building proofs from stored hashes.

This is the layer between index math and verification (transparency-dev/merkle
``proof/proof.go``): :func:`inclusion_nodes` and :func:`consistency_nodes` say which *stored*
node hashes (perfect subtrees only) a proof is built from; :meth:`ProofNodes.rehash` folds the
ones that stand for the single ephemeral node (a non-perfect subtree on the right border).

A store that can batch its reads does::

    nodes = inclusion_nodes(index, size)
    proof = nodes.rehash(store.read_many(nodes.ids))

and one that reads node by node passes a :class:`HashReader` to :func:`inclusion_proof`,
:func:`consistency_proof` or :func:`tree_root`. Nothing here verifies anything: proofs are checked
by :mod:`chain.verify`, which takes bytes, never a store.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from .compact import MAX_TREE_SIZE, NodeID, range_nodes
from .errors import ProofError
from .hashing import EMPTY_ROOT, node_hash

__all__ = [
    "HashReader",
    "ProofNodes",
    "consistency_nodes",
    "consistency_proof",
    "inclusion_nodes",
    "inclusion_proof",
    "tree_root",
]


class HashReader(Protocol):
    """Returns the stored hash of the perfect subtree ``(level, index)``.

    Level 0 holds leaf hashes. Only nodes of complete subtrees are ever requested. An
    implementation raises a :class:`chain.errors.ChainError` subclass (or its own storage error)
    when the node is missing.
    """

    def __call__(self, level: int, index: int) -> bytes: ...


@dataclass(frozen=True, slots=True)
class ProofNodes:
    """The stored nodes a proof is made of, in proof order.

    ``ids[ephemeral_begin:ephemeral_end]`` (possibly empty) are the children of one ephemeral
    node and are folded into it by :meth:`rehash`.
    """

    ids: tuple[NodeID, ...]
    ephemeral_begin: int
    ephemeral_end: int

    def rehash(self, hashes: Sequence[bytes]) -> list[bytes]:
        """Turn the hashes of ``ids`` (same order) into the proof, folding the ephemeral node.

        Raises ``ValueError`` if the number of hashes does not match ``ids``.
        """
        if len(hashes) != len(self.ids):
            raise ValueError(f"got {len(hashes)} hashes for {len(self.ids)} nodes")
        proof: list[bytes] = []
        i = 0
        while i < len(hashes):
            digest = hashes[i]
            if self.ephemeral_begin <= i < self.ephemeral_end:
                i += 1
                while i < self.ephemeral_end:
                    digest = node_hash(hashes[i], digest)
                    i += 1
                i -= 1
            proof.append(digest)
            i += 1
        return proof

    def _skip_first(self) -> ProofNodes:
        begin, end = self.ephemeral_begin, self.ephemeral_end
        if begin < end:
            begin, end = begin - 1, end - 1
        return ProofNodes(self.ids[1:], begin, end)


def _nodes(index: int, level: int, size: int) -> ProofNodes:
    """Nodes proving that node ``(level, index)`` is in the tree of ``size`` (proof.go nodes)."""
    inner = (index ^ (size >> level)).bit_length() - 1
    fork = NodeID(level + inner, index >> inner)
    begin, end = fork.coverage()
    node = NodeID(level, index)
    ids = [node]
    while node.level < fork.level:
        ids.append(node.sibling())
        node = node.parent()
    first = len(ids)
    ids.extend(reversed(range_nodes(end, size)))
    second = len(ids)
    ids.extend(reversed(range_nodes(0, begin)))
    if second - first < 2:
        # Nothing to fold: a single node covering the right part is stored as it is.
        first = second = 0
    return ProofNodes(tuple(ids), first, second)


def inclusion_nodes(index: int, size: int) -> ProofNodes:
    """Return the nodes of the inclusion proof of leaf ``index`` in a tree of ``size`` leaves.

    RFC 9162 2.1.3.1. Raises :class:`ProofError` unless ``0 <= index < size``.
    """
    if not 0 <= index < size <= MAX_TREE_SIZE:
        raise ProofError(f"no inclusion proof for index {index} in a tree of size {size}")
    return _nodes(index, 0, size)._skip_first()


def consistency_nodes(size1: int, size2: int) -> ProofNodes:
    """Return the nodes of the consistency proof from ``size1`` to ``size2``.

    RFC 9162 2.1.4.1. Empty when ``size1`` is 0 or equal to ``size2`` (C2SP tlog-witness: the
    proof from size 0 is empty). Raises :class:`ProofError` unless ``0 <= size1 <= size2``.
    """
    if not 0 <= size1 <= size2 <= MAX_TREE_SIZE:
        raise ProofError(f"no consistency proof from size {size1} to size {size2}")
    if size1 == 0 or size1 == size2:
        return ProofNodes((), 0, 0)
    level = (size1 & -size1).bit_length() - 1
    index = (size1 - 1) >> level
    nodes = _nodes(index, level, size2)
    if size1 & (size1 - 1) == 0:
        # size1 is a power of two: its root is the first node, which the verifier knows.
        return nodes._skip_first()
    return nodes


def _read(nodes: ProofNodes, get_node: HashReader) -> list[bytes]:
    return nodes.rehash([get_node(node.level, node.index) for node in nodes.ids])


def inclusion_proof(index: int, size: int, get_node: HashReader) -> list[bytes]:
    """Build the RFC 9162 inclusion proof for leaf ``index`` in the tree of ``size``.

    Serve it as is (e.g. in a tlog-proof receipt); the receiver checks it with
    :func:`chain.verify.verify_inclusion`.
    """
    return _read(inclusion_nodes(index, size), get_node)


def consistency_proof(size1: int, size2: int, get_node: HashReader) -> list[bytes]:
    """Build the RFC 9162 consistency proof from ``size1`` to ``size2`` (empty if trivial).

    Send it (e.g. in a tlog-witness add-checkpoint request); the receiver checks it with
    :func:`chain.verify.verify_consistency`.
    """
    return _read(consistency_nodes(size1, size2), get_node)


def tree_root(size: int, get_node: HashReader) -> bytes:
    """Return the root of the tree of ``size`` from its stored perfect subtrees.

    Compare it with the checkpoint before trusting any hash ``get_node`` returned.
    """
    if not 0 <= size <= MAX_TREE_SIZE:
        raise ProofError(f"invalid tree size {size}")
    hashes = [get_node(node.level, node.index) for node in range_nodes(0, size)]
    if not hashes:
        return EMPTY_ROOT
    digest = hashes[-1]
    for left in reversed(hashes[:-1]):
        digest = node_hash(left, digest)
    return digest
