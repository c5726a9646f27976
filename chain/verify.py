"""Verifying RFC 9162 inclusion and consistency proofs: bytes in, :class:`ProofError` out.

Verification never touches a store (transparency-dev/merkle ``proof/verify.go``). Every function
checks sizes, hash lengths and the exact proof length before hashing, so a truncated, extended or
reordered proof fails as surely as a flipped bit. The functions return ``None`` on success:
the caller may then rely on the leaf (or the old tree) being committed to by the root it passed.
"""

from __future__ import annotations

from collections.abc import Sequence

from .compact import MAX_TREE_SIZE
from .errors import ProofError
from .hashing import EMPTY_ROOT, HASH_SIZE, node_hash

__all__ = [
    "root_from_consistency_proof",
    "root_from_inclusion_proof",
    "verify_consistency",
    "verify_inclusion",
]


def _check_hash(value: bytes, what: str) -> None:
    if not isinstance(value, bytes | bytearray) or len(value) != HASH_SIZE:
        raise ProofError(f"{what} is not a 32-byte hash")


def _check_proof(proof: Sequence[bytes]) -> None:
    if len(proof) > 64:
        raise ProofError("proof has more than 64 hashes")
    for position, digest in enumerate(proof):
        _check_hash(digest, f"proof hash {position}")


def _check_size(size: int, what: str) -> None:
    if isinstance(size, bool) or not isinstance(size, int) or not 0 <= size <= MAX_TREE_SIZE:
        raise ProofError(f"{what} {size!r} out of range")


def _decompose_inclusion(index: int, size: int) -> tuple[int, int]:
    # Where the paths to `index` and to `size - 1` diverge (verify.go decompInclProof).
    inner = (index ^ (size - 1)).bit_length()
    border = (index >> inner).bit_count()
    return inner, border


def _chain_inner(seed: bytes, proof: Sequence[bytes], index: int) -> bytes:
    for i, digest in enumerate(proof):
        if (index >> i) & 1 == 0:
            seed = node_hash(seed, digest)
        else:
            seed = node_hash(digest, seed)
    return seed


def _chain_inner_right(seed: bytes, proof: Sequence[bytes], index: int) -> bytes:
    for i, digest in enumerate(proof):
        if (index >> i) & 1 == 1:
            seed = node_hash(digest, seed)
    return seed


def _chain_border_right(seed: bytes, proof: Sequence[bytes]) -> bytes:
    for digest in proof:
        seed = node_hash(digest, seed)
    return seed


def root_from_inclusion_proof(
    index: int, size: int, leaf_hash: bytes, proof: Sequence[bytes]
) -> bytes:
    """Return the root implied by an inclusion proof (RFC 9162 2.1.3.2).

    Raises :class:`ProofError` if ``index >= size`` or the proof has the wrong length. The
    caller compares the result with a trusted root (or uses :func:`verify_inclusion`).
    """
    _check_size(size, "tree size")
    _check_size(index, "leaf index")
    if index >= size:
        raise ProofError(f"leaf index {index} is not below tree size {size}")
    _check_hash(leaf_hash, "leaf hash")
    _check_proof(proof)
    inner, border = _decompose_inclusion(index, size)
    if len(proof) != inner + border:
        raise ProofError(f"inclusion proof has {len(proof)} hashes, expected {inner + border}")
    digest = _chain_inner(bytes(leaf_hash), proof[:inner], index)
    return _chain_border_right(digest, proof[inner:])


def verify_inclusion(
    index: int, size: int, leaf_hash: bytes, proof: Sequence[bytes], root: bytes
) -> None:
    """Check that ``leaf_hash`` is leaf ``index`` of the tree of ``size`` with ``root``.

    Raises :class:`ProofError` on any mismatch. The caller must have authenticated ``root`` and
    ``size`` (a signed checkpoint) and computed ``leaf_hash`` itself from the entry bytes.
    """
    _check_hash(root, "root")
    if root_from_inclusion_proof(index, size, leaf_hash, proof) != root:
        raise ProofError(f"inclusion proof for index {index} does not match the root")


def root_from_consistency_proof(
    size1: int, size2: int, proof: Sequence[bytes], root1: bytes
) -> bytes:
    """Return the root of tree ``size2`` implied by a consistency proof from ``(size1, root1)``.

    RFC 9162 2.1.4.2. Checks ``root1`` on the way and raises :class:`ProofError` on any
    mismatch. From ``size1 == 0`` no root is determined, so that raises too (use
    :func:`verify_consistency`, which accepts the empty old tree). The caller compares the
    result with the signed ``size2`` root.
    """
    _check_size(size1, "old size")
    _check_size(size2, "new size")
    _check_hash(root1, "old root")
    _check_proof(proof)
    if size2 < size1:
        raise ProofError(f"new size {size2} is smaller than old size {size1}")
    if size1 == size2:
        if proof:
            raise ProofError("consistency proof between equal sizes must be empty")
        return bytes(root1)
    if size1 == 0:
        raise ProofError("a consistency proof from the empty tree does not determine a root")
    if not proof:
        raise ProofError("empty consistency proof")

    inner, border = _decompose_inclusion(size1 - 1, size2)
    shift = (size1 & -size1).bit_length() - 1
    inner -= shift
    if size1 == 1 << shift:
        seed, start = bytes(root1), 0
    else:
        seed, start = proof[0], 1
    if len(proof) != start + inner + border:
        raise ProofError(
            f"consistency proof has {len(proof)} hashes, expected {start + inner + border}"
        )
    rest = proof[start:]
    mask = (size1 - 1) >> shift
    old = _chain_inner_right(seed, rest[:inner], mask)
    old = _chain_border_right(old, rest[inner:])
    if old != root1:
        raise ProofError(f"consistency proof does not match the root of size {size1}")
    new = _chain_inner(seed, rest[:inner], mask)
    return _chain_border_right(new, rest[inner:])


def verify_consistency(
    size1: int, size2: int, proof: Sequence[bytes], root1: bytes, root2: bytes
) -> None:
    """Check that the tree ``(size2, root2)`` extends the tree ``(size1, root1)``.

    Raises :class:`ProofError` on any mismatch. Rules at the edges (C2SP tlog-witness):
    ``size1 == size2`` needs an empty proof and equal roots; ``size1 == 0`` needs an empty
    proof and ``root1 == EMPTY_ROOT`` (every tree extends the empty tree). The caller then
    records ``(size2, root2)`` as its latest view.
    """
    _check_size(size1, "old size")
    _check_size(size2, "new size")
    _check_hash(root1, "old root")
    _check_hash(root2, "new root")
    _check_proof(proof)
    if size1 == 0:
        if proof:
            raise ProofError("consistency proof from size 0 must be empty")
        if root1 != EMPTY_ROOT:
            raise ProofError("the root of the empty tree is SHA-256 of nothing")
        if size2 == 0 and root2 != EMPTY_ROOT:
            raise ProofError("the root of the empty tree is SHA-256 of nothing")
        return
    if root_from_consistency_proof(size1, size2, proof, root1) != root2:
        raise ProofError(f"consistency proof does not match the root of size {size2}")
