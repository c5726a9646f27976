"""Merkle layers (hashing, compact ranges, proof index math, verification) against the oracle."""

from __future__ import annotations

import hashlib

import pytest
from chain_kit import PROPERTY
from hypothesis import assume, given
from hypothesis import strategies as st
from oracle_kit import mth, path, proof

from chain import (
    EMPTY_ROOT,
    CompactRange,
    MalformedError,
    MemoryTree,
    NodeID,
    ProofError,
    consistency_nodes,
    consistency_proof,
    inclusion_nodes,
    inclusion_proof,
    leaf_hash,
    node_hash,
    range_nodes,
    root_from_consistency_proof,
    root_from_hashes,
    root_from_inclusion_proof,
    tree_root,
    verify_consistency,
    verify_inclusion,
)

MAX_SIZE = 600

# transparency-dev/merkle testonly/constants.go: leaf inputs and the roots of every prefix.
KNOWN_LEAVES = [
    bytes.fromhex(h)
    for h in [
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    ]
]
KNOWN_ROOTS = [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]


def entries_for(size: int, salt: int) -> list[bytes]:
    return [b"entry %d/%d" % (salt, i) for i in range(size)]


def memory_tree(entries: list[bytes]) -> MemoryTree:
    tree = MemoryTree()
    for entry in entries:
        tree.append(entry)
    return tree


sizes = st.integers(min_value=0, max_value=MAX_SIZE)
salts = st.integers(min_value=0, max_value=2**32)


# ---------------------------------------------------------------------------------------------
# Hashing


def test_hashing_follows_rfc9162_prefixes() -> None:
    assert EMPTY_ROOT == hashlib.sha256(b"").digest()
    assert leaf_hash(b"abc") == hashlib.sha256(b"\x00abc").digest()
    left, right = b"L" * 32, b"R" * 32
    assert node_hash(left, right) == hashlib.sha256(b"\x01" + left + right).digest()


def test_known_roots_from_transparency_dev() -> None:
    tree = CompactRange()
    assert tree.root().hex() == KNOWN_ROOTS[0]
    for size, entry in enumerate(KNOWN_LEAVES, start=1):
        tree.append(leaf_hash(entry))
        assert tree.root().hex() == KNOWN_ROOTS[size]
        assert mth(KNOWN_LEAVES[:size]).hex() == KNOWN_ROOTS[size]


# ---------------------------------------------------------------------------------------------
# Compact ranges


@PROPERTY
@given(size=sizes, salt=salts)
def test_compact_range_root_equals_oracle(size: int, salt: int) -> None:
    entries = entries_for(size, salt)
    tree = CompactRange()
    for entry in entries:
        tree.append(leaf_hash(entry))
    expected = mth(entries)
    assert tree.end == size
    assert tree.root() == expected
    assert root_from_hashes([leaf_hash(e) for e in entries]) == expected
    rebuilt = CompactRange.from_hashes(0, size, tree.hashes)
    assert rebuilt.root() == expected


@PROPERTY
@given(size=st.integers(min_value=1, max_value=300), salt=salts)
def test_compact_range_reports_exactly_the_completed_subtrees(size: int, salt: int) -> None:
    entries = entries_for(size, salt)
    tree = CompactRange()
    reported: dict[NodeID, bytes] = {}
    for index, entry in enumerate(entries):
        completed = tree.append(leaf_hash(entry))
        assert completed[0] == (NodeID(0, index), leaf_hash(entry))
        for node, digest in completed:
            assert node not in reported
            reported[node] = digest
            assert node.coverage()[1] == index + 1  # completed by this very leaf
    expected = {
        NodeID(level, index) for level in range(size.bit_length()) for index in range(size >> level)
    }
    assert set(reported) == expected
    for node, digest in reported.items():
        begin, end = node.coverage()
        assert digest == mth(entries[begin:end])


@PROPERTY
@given(size=sizes, split=st.integers(min_value=0, max_value=MAX_SIZE), salt=salts)
def test_compact_ranges_merge(size: int, split: int, salt: int) -> None:
    split = min(split, size)
    entries = entries_for(size, salt)
    left, right = CompactRange(0), CompactRange(split)
    for entry in entries[:split]:
        left.append(leaf_hash(entry))
    for entry in entries[split:]:
        right.append(leaf_hash(entry))
    assert [len(h) for h in right.hashes] == [32] * len(range_nodes(split, size))
    for node, digest in zip(range_nodes(split, size), right.hashes, strict=True):
        begin, end = node.coverage()
        assert digest == mth(entries[begin:end])
    left.extend(right)
    assert left.end == size
    assert left.root() == mth(entries)


def test_compact_range_rejects_bad_input() -> None:
    with pytest.raises(MalformedError):
        CompactRange().append(b"short")
    with pytest.raises(MalformedError):
        CompactRange.from_hashes(0, 3, [b"\x00" * 32])  # size 3 needs two hashes
    with pytest.raises(MalformedError):
        CompactRange.from_hashes(0, 1, [b"\x00" * 31])
    with pytest.raises(ValueError):
        CompactRange(5).root()


# ---------------------------------------------------------------------------------------------
# Proof generation and verification


@PROPERTY
@given(data=st.data(), size=st.integers(min_value=1, max_value=MAX_SIZE), salt=salts)
def test_inclusion_proofs_equal_oracle_and_verify(
    data: st.DataObject, size: int, salt: int
) -> None:
    entries = entries_for(size, salt)
    tree = memory_tree(entries)
    index = data.draw(st.integers(min_value=0, max_value=size - 1), label="index")
    generated = tree.inclusion_proof(index)
    assert generated == path(index, entries)
    root = mth(entries)
    verify_inclusion(index, size, leaf_hash(entries[index]), generated, root)
    assert root_from_inclusion_proof(index, size, leaf_hash(entries[index]), generated) == root
    # The same proof from the tiles of the tree.
    assert inclusion_proof(index, size, tree.tile_reader()) == generated


@PROPERTY
@given(data=st.data(), size2=st.integers(min_value=0, max_value=MAX_SIZE), salt=salts)
def test_consistency_proofs_equal_oracle_and_verify(
    data: st.DataObject, size2: int, salt: int
) -> None:
    entries = entries_for(size2, salt)
    tree = memory_tree(entries)
    size1 = data.draw(st.integers(min_value=0, max_value=size2), label="size1")
    generated = tree.consistency_proof(size1, size2)
    expected = proof(size1, entries) if size1 > 0 else []
    assert generated == expected
    root1, root2 = mth(entries[:size1]), mth(entries)
    assert tree.root_at(size1) == root1
    verify_consistency(size1, size2, generated, root1, root2)
    if size1 > 0:
        assert root_from_consistency_proof(size1, size2, generated, root1) == root2
    assert consistency_proof(size1, size2, tree.tile_reader()) == generated


@PROPERTY
@given(size=sizes, salt=salts)
def test_tree_root_from_stored_nodes(size: int, salt: int) -> None:
    entries = entries_for(size, salt)
    tree = memory_tree(entries)
    assert tree_root(size, tree.get_node) == mth(entries)
    assert tree_root(size, tree.tile_reader()) == mth(entries)


def _ids(*pairs: tuple[int, int]) -> tuple[NodeID, ...]:
    return tuple(NodeID(level, index) for level, index in pairs)


# Expected node ids and ephemeral ranges: transparency-dev/merkle proof/proof_test.go.
INCLUSION_TABLE = [
    (0, 1, (), 0, 0),
    (0, 2, _ids((0, 1)), 0, 0),
    (1, 3, _ids((0, 0), (0, 2)), 0, 0),
    (0, 7, _ids((0, 1), (1, 1), (0, 6), (1, 2)), 2, 4),
    (3, 7, _ids((0, 2), (1, 0), (0, 6), (1, 2)), 2, 4),
    (4, 7, _ids((0, 5), (0, 6), (2, 0)), 0, 0),
    (6, 7, _ids((1, 2), (2, 0)), 0, 0),
    (3, 5, _ids((0, 2), (1, 0), (0, 4)), 0, 0),
    (10, 15, _ids((0, 11), (1, 4), (0, 14), (1, 6), (3, 0)), 2, 4),
    (24, 31, _ids((0, 25), (1, 13), (0, 30), (1, 14), (3, 2), (4, 0)), 2, 4),
    (81, 95, _ids((0, 80), (1, 41), (2, 21), (0, 94), (1, 46), (2, 22), (4, 4), (6, 0)), 3, 6),
]
CONSISTENCY_TABLE = [
    (1, 2, _ids((0, 1)), 0, 0),
    (1, 6, _ids((0, 1), (1, 1), (1, 2)), 0, 0),
    (2, 8, _ids((1, 1), (2, 1)), 0, 0),
    (3, 7, _ids((0, 2), (0, 3), (1, 0), (0, 6), (1, 2)), 3, 5),
    (4, 7, _ids((0, 6), (1, 2)), 0, 2),
    (5, 7, _ids((0, 4), (0, 5), (0, 6), (2, 0)), 0, 0),
    (7, 8, _ids((0, 6), (0, 7), (1, 2), (2, 0)), 0, 0),
    (5, 5, (), 0, 0),
    (10, 15, _ids((1, 4), (1, 5), (0, 14), (1, 6), (3, 0)), 2, 4),
    (24, 31, _ids((3, 2), (0, 30), (1, 14), (2, 6), (4, 0)), 1, 4),
    (
        81,
        95,
        _ids((0, 80), (0, 81), (1, 41), (2, 21), (0, 94), (1, 46), (2, 22), (4, 4), (6, 0)),
        4,
        7,
    ),
]


@pytest.mark.parametrize(("index", "size", "ids", "begin", "end"), INCLUSION_TABLE)
def test_inclusion_nodes_match_transparency_dev(
    index: int, size: int, ids: tuple[NodeID, ...], begin: int, end: int
) -> None:
    nodes = inclusion_nodes(index, size)
    assert nodes.ids == ids
    assert (nodes.ephemeral_begin, nodes.ephemeral_end) == (begin, end)


@pytest.mark.parametrize(("size1", "size2", "ids", "begin", "end"), CONSISTENCY_TABLE)
def test_consistency_nodes_match_transparency_dev(
    size1: int, size2: int, ids: tuple[NodeID, ...], begin: int, end: int
) -> None:
    nodes = consistency_nodes(size1, size2)
    assert nodes.ids == ids
    assert (nodes.ephemeral_begin, nodes.ephemeral_end) == (begin, end)
    assert consistency_nodes(0, size2).ids == ()


def test_generation_rejects_impossible_requests() -> None:
    tree = memory_tree(entries_for(5, 0))
    with pytest.raises(ProofError):
        inclusion_nodes(5, 5)
    with pytest.raises(ProofError):
        consistency_nodes(6, 5)
    with pytest.raises(ProofError):
        tree.inclusion_proof(0, 6)
    with pytest.raises(ProofError):
        tree.get_node(3, 0)  # not a complete subtree of 5 leaves


# ---------------------------------------------------------------------------------------------
# Tampering: every change must fail


def _flip(digest: bytes, bit: int) -> bytes:
    mutable = bytearray(digest)
    mutable[bit // 8] ^= 1 << (bit % 8)
    return bytes(mutable)


mutations = st.sampled_from(
    ["flip_proof", "flip_root", "flip_leaf", "truncate", "append", "insert", "reorder", "drop"]
)


def _mutate(
    draw: st.DataObject, kind: str, proof_hashes: list[bytes], extra: bytes
) -> list[bytes] | None:
    proof_hashes = list(proof_hashes)
    if kind == "flip_proof":
        if not proof_hashes:
            return None
        position = draw.draw(st.integers(0, len(proof_hashes) - 1), label="position")
        bit = draw.draw(st.integers(0, 255), label="bit")
        proof_hashes[position] = _flip(proof_hashes[position], bit)
    elif kind == "truncate":
        if not proof_hashes:
            return None
        cut = draw.draw(st.integers(0, len(proof_hashes) - 1), label="cut")
        proof_hashes = proof_hashes[:cut]
    elif kind == "drop":
        if not proof_hashes:
            return None
        position = draw.draw(st.integers(0, len(proof_hashes) - 1), label="position")
        del proof_hashes[position]
    elif kind == "append":
        proof_hashes.append(extra)
    elif kind == "insert":
        position = draw.draw(st.integers(0, len(proof_hashes)), label="position")
        proof_hashes.insert(position, extra)
    elif kind == "reorder":
        if len(proof_hashes) < 2:
            return None
        i = draw.draw(st.integers(0, len(proof_hashes) - 2), label="i")
        j = draw.draw(st.integers(i + 1, len(proof_hashes) - 1), label="j")
        if proof_hashes[i] == proof_hashes[j]:
            return None
        proof_hashes[i], proof_hashes[j] = proof_hashes[j], proof_hashes[i]
    return proof_hashes


@PROPERTY
@given(
    data=st.data(),
    size=st.integers(min_value=1, max_value=MAX_SIZE),
    salt=salts,
    kind=mutations,
    extra=st.binary(min_size=32, max_size=32),
)
def test_tampered_inclusion_proofs_fail(
    data: st.DataObject, size: int, salt: int, kind: str, extra: bytes
) -> None:
    entries = entries_for(size, salt)
    index = data.draw(st.integers(min_value=0, max_value=size - 1), label="index")
    good = path(index, entries)
    root = mth(entries)
    leaf = leaf_hash(entries[index])
    verify_inclusion(index, size, leaf, good, root)
    if kind == "flip_root":
        root = _flip(root, data.draw(st.integers(0, 255), label="bit"))
        bad = good
    elif kind == "flip_leaf":
        leaf = _flip(leaf, data.draw(st.integers(0, 255), label="bit"))
        bad = good
    else:
        mutated = _mutate(data, kind, good, extra)
        assume(mutated is not None)
        assert mutated is not None
        bad = mutated
    with pytest.raises(ProofError):
        verify_inclusion(index, size, leaf, bad, root)


@PROPERTY
@given(data=st.data(), size=st.integers(min_value=2, max_value=MAX_SIZE), salt=salts)
def test_inclusion_proof_for_another_index_fails(data: st.DataObject, size: int, salt: int) -> None:
    entries = entries_for(size, salt)
    index = data.draw(st.integers(min_value=0, max_value=size - 1), label="index")
    other = data.draw(st.integers(min_value=0, max_value=size - 1), label="other")
    assume(other != index)
    with pytest.raises(ProofError):
        verify_inclusion(other, size, leaf_hash(entries[index]), path(index, entries), mth(entries))


@PROPERTY
@given(
    data=st.data(),
    size2=st.integers(min_value=1, max_value=MAX_SIZE),
    salt=salts,
    kind=mutations,
    extra=st.binary(min_size=32, max_size=32),
)
def test_tampered_consistency_proofs_fail(
    data: st.DataObject, size2: int, salt: int, kind: str, extra: bytes
) -> None:
    entries = entries_for(size2, salt)
    size1 = data.draw(st.integers(min_value=1, max_value=size2), label="size1")
    good = proof(size1, entries)
    root1, root2 = mth(entries[:size1]), mth(entries)
    verify_consistency(size1, size2, good, root1, root2)
    if kind == "flip_root":
        which = data.draw(st.sampled_from(["root1", "root2"]), label="which")
        bit = data.draw(st.integers(0, 255), label="bit")
        if which == "root1":
            root1 = _flip(root1, bit)
        else:
            root2 = _flip(root2, bit)
        bad = good
    elif kind == "flip_leaf":  # for consistency: swap the two roots
        assume(root1 != root2)
        root1, root2 = root2, root1
        bad = good
    else:
        mutated = _mutate(data, kind, good, extra)
        assume(mutated is not None)
        assert mutated is not None
        bad = mutated
    with pytest.raises(ProofError):
        verify_consistency(size1, size2, bad, root1, root2)


@pytest.mark.parametrize(
    ("size1", "size2", "proof_hashes", "root1", "root2"),
    [
        (0, 5, [b"\x00" * 32], EMPTY_ROOT, b"\x11" * 32),  # proof from 0 must be empty
        (0, 5, [], b"\x11" * 32, b"\x22" * 32),  # size 0 has the empty root
        (0, 0, [], EMPTY_ROOT, b"\x22" * 32),
        (4, 4, [], b"\x11" * 32, b"\x22" * 32),  # same size, different root
        (4, 4, [b"\x00" * 32], b"\x11" * 32, b"\x11" * 32),  # same size, non-empty proof
        (5, 4, [], b"\x11" * 32, b"\x11" * 32),  # old > new
        (3, 5, [], b"\x11" * 32, b"\x22" * 32),  # empty proof
        (-1, 5, [], b"\x11" * 32, b"\x22" * 32),
        (1, 2**63, [b"\x00" * 32], b"\x11" * 32, b"\x22" * 32),
        (1, 2, [b"\x00" * 31], b"\x11" * 32, b"\x22" * 32),  # hash of the wrong length
        (1, 2, [b"\x00" * 32], b"\x11" * 31, b"\x22" * 32),
    ],
)
def test_consistency_edge_cases_fail(
    size1: int, size2: int, proof_hashes: list[bytes], root1: bytes, root2: bytes
) -> None:
    with pytest.raises(ProofError):
        verify_consistency(size1, size2, proof_hashes, root1, root2)


def test_consistency_trivial_cases_pass() -> None:
    verify_consistency(0, 0, [], EMPTY_ROOT, EMPTY_ROOT)
    verify_consistency(0, 7, [], EMPTY_ROOT, b"\x22" * 32)  # every tree extends the empty one
    verify_consistency(7, 7, [], b"\x22" * 32, b"\x22" * 32)


@pytest.mark.parametrize(
    ("index", "size", "leaf", "proof_hashes", "root"),
    [
        (0, 0, b"\x00" * 32, [], EMPTY_ROOT),
        (1, 1, b"\x00" * 32, [], b"\x00" * 32),
        (-1, 1, b"\x00" * 32, [], b"\x00" * 32),
        (0, 1, b"\x00" * 31, [], b"\x00" * 31),
        (0, 1, b"\x00" * 32, [], b"\x00" * 33),
        (0, 2, b"\x00" * 32, [b"\x00" * 32] * 65, b"\x00" * 32),
        (True, 2, b"\x00" * 32, [b"\x00" * 32], b"\x00" * 32),
    ],
)
def test_inclusion_edge_cases_fail(
    index: int, size: int, leaf: bytes, proof_hashes: list[bytes], root: bytes
) -> None:
    with pytest.raises(ProofError):
        verify_inclusion(index, size, leaf, proof_hashes, root)


def test_single_leaf_tree_inclusion() -> None:
    entry = b"only"
    verify_inclusion(0, 1, leaf_hash(entry), [], leaf_hash(entry))


# ---------------------------------------------------------------------------------------------
# Second preimage


def test_interior_node_presented_as_a_leaf_fails() -> None:
    entries = entries_for(4, 7)
    tree = memory_tree(entries)
    root = tree.root()
    left, right = leaf_hash(entries[0]), leaf_hash(entries[1])
    interior = node_hash(left, right)  # node (1, 0)
    sibling = tree.get_node(1, 1)
    forged_entry = left + right  # "an entry whose hash is the interior node"

    # Without the 0x00 / 0x01 prefixes this forgery would work: the unprefixed hash of the
    # forged entry equals the unprefixed interior node, and a 2-leaf tree over the interior
    # nodes has the same unprefixed root.
    def naive_node(a: bytes, b: bytes) -> bytes:
        return hashlib.sha256(a + b).digest()

    naive_leaves = [hashlib.sha256(e).digest() for e in entries]
    naive_root = naive_node(
        naive_node(naive_leaves[0], naive_leaves[1]), naive_node(naive_leaves[2], naive_leaves[3])
    )
    naive_forged_leaf = hashlib.sha256(naive_leaves[0] + naive_leaves[1]).digest()
    assert naive_node(naive_forged_leaf, naive_node(naive_leaves[2], naive_leaves[3])) == naive_root

    # With RFC 9162 hashing it fails, as a 2-leaf tree and at the real size alike.
    with pytest.raises(ProofError):
        verify_inclusion(0, 2, leaf_hash(forged_entry), [sibling], root)
    with pytest.raises(ProofError):
        verify_inclusion(0, 4, leaf_hash(forged_entry), [sibling], root)
    # And a caller that passes the interior node itself as a leaf hash fails at the real size:
    # the proof length is bound to (index, size).
    with pytest.raises(ProofError):
        verify_inclusion(0, 4, interior, [sibling], root)
    assert leaf_hash(forged_entry) != interior


def test_range_nodes_cover_the_range() -> None:
    for begin in range(0, 40):
        for end in range(begin, 80):
            covered: list[int] = []
            for node in range_nodes(begin, end):
                start, stop = node.coverage()
                assert (stop - start) == 1 << node.level
                covered.extend(range(start, stop))
            assert covered == list(range(begin, end))
