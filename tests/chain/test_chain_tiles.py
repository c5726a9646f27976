"""The tlog-tiles layout: paths, which tiles exist, tile bytes, entry bundles, reading back."""

from __future__ import annotations

import pytest
from chain_kit import FUZZ, PROPERTY
from hypothesis import given
from hypothesis import strategies as st
from oracle_kit import mth

from chain import (
    ChainError,
    EntryBundle,
    MalformedError,
    MemoryTree,
    NodeID,
    Tile,
    TileHashReader,
    build_entry_bundle,
    entry_bundles_for_size,
    inclusion_proof,
    leaf_hash,
    new_entry_bundles,
    new_tiles,
    parse_entry_bundle,
    parse_tile,
    parse_tile_path,
    root_from_hashes,
    tile_for_node,
    tiles_for_size,
    tree_root,
)
from chain.store import expand_tile, expanded_hash

# ---------------------------------------------------------------------------------------------
# Paths


@pytest.mark.parametrize(
    ("tile", "path"),
    [
        (Tile(0, 0), "tile/0/000"),
        (Tile(0, 1234067), "tile/0/x001/x234/067"),
        (Tile(0, 1234067, 8), "tile/0/x001/x234/067.p/8"),
        (Tile(1, 999), "tile/1/999"),
        (Tile(1, 1000), "tile/1/x001/000"),
        (Tile(2, 0, 1), "tile/2/000.p/1"),
        (Tile(7, 0, 127), "tile/7/000.p/127"),
        (EntryBundle(0), "tile/entries/000"),
        (EntryBundle(1234067, 255), "tile/entries/x001/x234/067.p/255"),
    ],
)
def test_tile_paths(tile: Tile | EntryBundle, path: str) -> None:
    assert tile.path == path
    assert parse_tile_path(path) == tile


MAX_INDEX_AT_LEVEL_0 = ((1 << 63) - 1) // 256 - 1


@PROPERTY
@given(
    data=st.data(),
    level=st.integers(min_value=0, max_value=6),
    width=st.integers(min_value=1, max_value=256),
)
def test_tile_path_round_trip(data: st.DataObject, level: int, width: int) -> None:
    largest = (((1 << 63) - 1) >> (8 * level)) // 256 - 1
    index = data.draw(st.integers(min_value=0, max_value=largest), label="index")
    tile = Tile(level, index, width)
    assert parse_tile_path(tile.path) == tile
    bundle = EntryBundle(index, width)
    assert parse_tile_path(bundle.path) == bundle


def test_largest_tiles_round_trip() -> None:
    tile = Tile(0, MAX_INDEX_AT_LEVEL_0)
    assert parse_tile_path(tile.path) == tile
    with pytest.raises(MalformedError):
        Tile(0, MAX_INDEX_AT_LEVEL_0 + 1)
    with pytest.raises(MalformedError):
        parse_tile_path("tile/8/000.p/1")  # level-64 nodes cannot exist below 2**63 leaves


BAD_PATHS = [
    "",
    "tile",
    "tile/",
    "tile/0",
    "tile/0/",
    "/tile/0/000",
    "tile/0/000/",
    "tile//0/000",
    "tile/00/000",
    "tile/01/000",
    "tile/64/000",
    "tile/100/000",
    "tile/-1/000",
    "tile/+1/000",
    "tile/ 0/000",
    "tile/0/0",
    "tile/0/00",
    "tile/0/0000",
    "tile/0/x000/001",
    "tile/0/x001",
    "tile/0/001/x234",
    "tile/0/x1/234",
    "tile/0/X001/234",
    "tile/0/001.p/0",
    "tile/0/001.p/256",
    "tile/0/001.p/01",
    "tile/0/001.p/",
    "tile/0/001.p",
    "tile/0/001.P/5",
    "tile/0/001.p/5/",
    "tile/0/001.p/-5",
    "tile/0/../../etc/passwd",
    "tile/0/x001/../234",
    "tile/0/./000",
    "tile/../tile/0/000",
    "tile/0/%2e%2e/000",
    "tile%2F0%2F000",
    "tile\\0\\000",
    "tile/0\\000",
    "tile/0/000\n",
    "tile/0/000\x00",
    " tile/0/000",
    "tile/0/000 ",
    "TILE/0/000",
    "tiles/0/000",
    "tile/data/000",
    "tile/8/0/000",  # sumdb's tile/H/L/N is not the C2SP layout
    "tile/entries",
    "tile/entries/",
    "tile/entries/0000",
    "tile/entries/x000/000",
    "tile/entries/000.p/256",
    "tile/entries/000.p/0",
    "tile/Entries/000",
    "tile/0/\u0660\u0660\u0660",  # Arabic-Indic digits
    "tile/\uff10/000",  # fullwidth zero
    "tile/0/x001/x002/x003/x004/x005/x006/x007/000",
    "tile/0/" + "x999/" * 30 + "999",
]


@pytest.mark.parametrize("path", BAD_PATHS)
def test_malformed_tile_paths_are_rejected(path: str) -> None:
    with pytest.raises(MalformedError):
        parse_tile_path(path)


@FUZZ
@given(st.text(max_size=120))
def test_tile_path_parser_only_accepts_canonical_paths(path: str) -> None:
    try:
        result = parse_tile_path(path)
    except MalformedError:
        return
    assert result.path == path


@FUZZ
@given(
    st.from_regex(
        r"tile/([0-9]{1,3}|entries)/((x[0-9]{1,4}/){0,3}[0-9]{1,4})(\.p/[0-9]{1,4})?",
        fullmatch=True,
    )
)
def test_tile_path_parser_on_near_misses(path: str) -> None:
    try:
        result = parse_tile_path(path)
    except MalformedError:
        return
    assert result.path == path


def test_parse_tile_path_rejects_non_text() -> None:
    with pytest.raises(MalformedError):
        parse_tile_path(b"tile/0/000")  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------
# Which tiles exist


def test_tiles_for_size_matches_the_spec_example() -> None:
    tiles = tiles_for_size(70_000)
    level0 = [t for t in tiles if t.level == 0]
    assert len([t for t in level0 if not t.is_partial]) == 273
    assert [t for t in level0 if t.is_partial] == [Tile(0, 273, 112)]
    assert [t for t in tiles if t.level == 1] == [Tile(1, 0), Tile(1, 1, 17)]
    assert [t for t in tiles if t.level == 2] == [Tile(2, 0, 1)]
    assert len(tiles) == 273 + 1 + 2 + 1
    assert tiles_for_size(256) == [Tile(0, 0), Tile(1, 0, 1)]
    assert tiles_for_size(0) == []
    assert entry_bundles_for_size(70_000)[-1] == EntryBundle(273, 112)


@PROPERTY
@given(
    old=st.integers(min_value=0, max_value=200_000),
    growth=st.integers(min_value=0, max_value=100_000),
)
def test_new_tiles(old: int, growth: int) -> None:
    new = old + growth
    created = new_tiles(old, new)
    final = set(tiles_for_size(new))
    before = set(tiles_for_size(old))
    # Everything needed at the new size is either new or was already there.
    assert final <= set(created) | before
    # Nothing is written twice, nothing written is outside the new tree.
    assert len(created) == len(set(created))
    assert set(created) <= final
    assert not (set(created) & before)
    bundles = new_entry_bundles(old, new)
    assert {(b.index, b.width) for b in bundles} == {
        (t.index, t.width) for t in created if t.level == 0
    }


# ---------------------------------------------------------------------------------------------
# Tile contents


def _tree(size: int) -> tuple[MemoryTree, list[bytes]]:
    entries = [b"tile entry %d" % i for i in range(size)]
    tree = MemoryTree()
    for entry in entries:
        tree.append(entry)
    return tree, entries


BOUNDARY_SIZES = [1, 2, 255, 256, 257, 511, 512, 513, 65535, 65536, 65537, 70_000]


@pytest.fixture(scope="module")
def big_tree() -> tuple[MemoryTree, list[bytes], list[bytes]]:
    tree, entries = _tree(70_000)
    return tree, entries, [leaf_hash(entry) for entry in entries]


@pytest.mark.parametrize("size", BOUNDARY_SIZES)
def test_tile_contents_are_the_subtree_hashes(
    size: int, big_tree: tuple[MemoryTree, list[bytes], list[bytes]]
) -> None:
    tree, _, leaves = big_tree
    reader = tree.tile_reader(size)
    for tile in tiles_for_size(size):
        data = tree.tile(tile)
        assert len(data) == tile.width * 32
        span = 256**tile.level
        hashes = parse_tile(tile, data)
        for i, digest in enumerate(hashes):
            begin = (tile.index * 256 + i) * span
            # tlog-tiles: MTH(D[(n*256 + i) * 256**l : (n*256 + i + 1) * 256**l])
            assert digest == root_from_hashes(leaves[begin : begin + span])
        assert reader.tile_hashes(tile) == hashes
    assert tree_root(size, reader) == root_from_hashes(leaves[:size])


@pytest.mark.parametrize("size", [1, 3, 255, 256, 257, 300, 513])
def test_tile_contents_agree_with_the_oracle(size: int) -> None:
    tree, entries = _tree(size)
    for tile in tiles_for_size(size):
        span = 256**tile.level
        for i, digest in enumerate(parse_tile(tile, tree.tile(tile))):
            begin = (tile.index * 256 + i) * span
            assert digest == mth(entries[begin : begin + span])


@PROPERTY
@given(data=st.data(), size=st.integers(min_value=1, max_value=70_000))
def test_tile_hash_reader_serves_any_node_and_proof(
    data: st.DataObject, size: int, big_tree: tuple[MemoryTree, list[bytes], list[bytes]]
) -> None:
    tree, _, leaves = big_tree
    reader = tree.tile_reader(size)
    level = data.draw(st.integers(min_value=0, max_value=size.bit_length() - 1), label="level")
    index = data.draw(st.integers(min_value=0, max_value=(size >> level) - 1), label="index")
    begin, end = NodeID(level, index).coverage()
    assert reader(level, index) == tree.get_node(level, index)
    assert reader(level, index) == root_from_hashes(leaves[begin:end])
    tile, offset, count = tile_for_node(level, index, size)
    assert count == 1 << (level % 8) and tile.level == level // 8
    assert offset + count <= tile.width
    leaf = data.draw(st.integers(min_value=0, max_value=size - 1), label="leaf")
    assert inclusion_proof(leaf, size, reader) == tree.inclusion_proof(leaf, size)


@pytest.mark.parametrize("size", [1, 5, 255, 256, 300])
def test_an_expanded_tile_holds_every_subtree_root_in_one_string_per_level(size: int) -> None:
    tree, entries = _tree(size)
    tile = Tile(0, 0, min(size, 256))
    levels = expand_tile(tile, tree.tile(tile))
    assert levels[0] == tree.tile(tile)
    for height, level in enumerate(levels):
        count = tile.width >> height
        assert isinstance(level, bytes) and len(level) == count * 32
        for i in range(count):
            span = 1 << height
            assert expanded_hash(levels, height, i) == mth(entries[i * span : (i + 1) * span])
        with pytest.raises(IndexError):
            expanded_hash(levels, height, count)
    # A full tile: 511 hashes in 9 strings, 16 KiB of hash bytes (not 511 objects).
    if tile.width == 256:
        assert len(levels) == 9 and sum(map(len, levels)) == 511 * 32


def test_tile_for_node_rejects_incomplete_nodes() -> None:
    with pytest.raises(MalformedError):
        tile_for_node(1, 2, 5)  # node (1, 2) covers leaves 4 and 5; the tree has 5 leaves
    with pytest.raises(MalformedError):
        tile_for_node(0, 5, 5)


def test_tile_bytes_of_the_wrong_length_are_rejected() -> None:
    tree, _ = _tree(300)
    reader = TileHashReader(300, lambda tile: tree.tile(tile)[:-1])
    with pytest.raises(MalformedError):
        reader(0, 0)
    with pytest.raises(MalformedError):
        parse_tile(Tile(0, 0, 5), b"\x00" * (32 * 5 + 1))
    # A partial tile is read at the width the tree size implies, not the full one.
    with pytest.raises(MalformedError):
        parse_tile(Tile(0, 1, 44), tree.tile(Tile(0, 0)))


def test_tiles_beyond_the_tree_are_refused() -> None:
    tree, _ = _tree(300)
    with pytest.raises(MalformedError):
        tree.tile(Tile(0, 1, 45))
    with pytest.raises(MalformedError):
        tree.entry_bundle(EntryBundle(1))


# ---------------------------------------------------------------------------------------------
# Entry bundles


@PROPERTY
@given(st.lists(st.binary(max_size=300), min_size=1, max_size=256))
def test_entry_bundle_round_trip(entries: list[bytes]) -> None:
    bundle = EntryBundle(0, len(entries))
    data = build_entry_bundle(entries)
    assert parse_entry_bundle(bundle, data) == entries


def test_entry_bundle_matches_level_zero_tile() -> None:
    tree, entries = _tree(600)
    for bundle in entry_bundles_for_size(600):
        tile = Tile(0, bundle.index, bundle.width)
        parsed = parse_entry_bundle(bundle, tree.entry_bundle(bundle))
        assert parsed == entries[bundle.leaf_begin : bundle.leaf_end]
        assert [leaf_hash(entry) for entry in parsed] == parse_tile(tile, tree.tile(tile))


@pytest.mark.parametrize(
    ("width", "data"),
    [
        (1, b""),  # no entry
        (1, b"\x00"),  # half a length prefix
        (1, b"\x00\x05abc"),  # short entry
        (1, b"\x00\x01a\x00"),  # trailing bytes
        (2, b"\x00\x01a"),  # one entry missing
        (1, b"\x00\x01a\x00\x01b"),  # one entry too many
    ],
)
def test_malformed_entry_bundles_are_rejected(width: int, data: bytes) -> None:
    with pytest.raises(MalformedError):
        parse_entry_bundle(EntryBundle(0, width), data)


def test_entry_bundle_limits() -> None:
    with pytest.raises(MalformedError):
        build_entry_bundle([b"x" * 65536])
    with pytest.raises(MalformedError):
        build_entry_bundle([])
    with pytest.raises(MalformedError):
        build_entry_bundle([b""] * 257)
    assert parse_entry_bundle(EntryBundle(0, 1), build_entry_bundle([b"x" * 65535])) == [
        b"x" * 65535
    ]


@FUZZ
@given(width=st.integers(min_value=1, max_value=256), data=st.binary(max_size=2000))
def test_entry_bundle_parser_only_raises_chain_errors(width: int, data: bytes) -> None:
    try:
        entries = parse_entry_bundle(EntryBundle(0, width), data)
    except ChainError:
        return
    assert build_entry_bundle(entries) == data


@FUZZ
@given(width=st.integers(min_value=1, max_value=256), data=st.binary(max_size=9000))
def test_fuzz_tile_parser(width: int, data: bytes) -> None:
    tile = Tile(0, 3, width)
    try:
        hashes = parse_tile(tile, data)
    except ChainError:
        return
    assert b"".join(hashes) == data and len(hashes) == width
