"""The C2SP tlog-tiles layout: tile paths, tile bytes, entry bundles, and reading hashes back.

A log serves its tree as *tiles* (c2sp.org/tlog-tiles): ``tile/<L>/<N>[.p/<W>]`` holds up to 256
consecutive hashes of level ``8 * L`` nodes, and ``tile/entries/<N>[.p/<W>]`` holds the matching
entries, each prefixed by its big-endian uint16 length. ``<N>`` is written in 3-digit path
elements, all but the last prefixed with ``x`` (1234067 is ``x001/x234/067``).

- A log calls :func:`new_tiles` / :func:`new_entry_bundles` after each checkpoint and writes
  :func:`build_tile` / :func:`build_entry_bundle` for each; an HTTP adapter calls
  :func:`parse_tile_path` on the request path (it rejects anything non-canonical, including
  traversal) and serves the stored bytes.
- A client (notary, auditor) fetches the tiles of a checkpoint and builds proofs with a
  :class:`TileHashReader`; what it reads is authenticated only once a root or proof computed
  from it matches the signed checkpoint.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from .compact import MAX_TREE_SIZE, NodeID, root_from_hashes
from .errors import MalformedError, TooLargeError
from .hashing import HASH_SIZE
from .proof import HashReader

__all__ = [
    "MAX_ENTRY_SIZE",
    "MAX_TILE_PATH_LENGTH",
    "TILE_HEIGHT",
    "TILE_WIDTH",
    "EntryBundle",
    "Tile",
    "TileHashReader",
    "build_entry_bundle",
    "build_tile",
    "entry_bundles_for_size",
    "new_entry_bundles",
    "new_tiles",
    "parse_entry_bundle",
    "parse_tile",
    "parse_tile_path",
    "tile_for_node",
    "tiles_for_size",
]

TILE_HEIGHT = 8
"""Levels of the tree spanned by one tile."""

TILE_WIDTH = 1 << TILE_HEIGHT
"""Hashes in a full tile (256; 8,192 bytes)."""

MAX_ENTRY_SIZE = 0xFFFF
"""Largest entry an entry bundle can frame (uint16 length prefix)."""

MAX_TILE_PATH_LENGTH = 96
"""Longer request paths are rejected before parsing."""

_PATH_PATTERN = re.compile(
    r"tile/(?P<level>[0-9]{1,2}|entries)/(?P<index>(?:x[0-9]{3}/){0,6}[0-9]{3})"
    r"(?:\.p/(?P<width>[0-9]{1,3}))?"
)


def _encode_index(index: int) -> str:
    text = f"{index % 1000:03d}"
    index //= 1000
    while index > 0:
        text = f"x{index % 1000:03d}/{text}"
        index //= 1000
    return text


def _width_suffix(width: int) -> str:
    return "" if width == TILE_WIDTH else f".p/{width}"


@dataclass(frozen=True, slots=True, order=True)
class Tile:
    """Tile ``index`` at tile level ``level``: ``width`` hashes of tree level ``8 * level``.

    Hash ``i`` is the root of leaves ``[(index*256 + i) * 256**level, (... + 1) * 256**level)``.
    Raises :class:`MalformedError` for coordinates no tree of at most 2**63 - 1 leaves has.
    """

    level: int
    index: int
    width: int = TILE_WIDTH

    def __post_init__(self) -> None:
        if not 0 <= self.level <= 63 or self.index < 0 or not 1 <= self.width <= TILE_WIDTH:
            raise MalformedError(f"invalid tile ({self.level}, {self.index}, {self.width})")
        if self.leaf_end > MAX_TREE_SIZE:
            raise MalformedError("tile lies beyond the largest possible tree")

    @property
    def path(self) -> str:
        """The tlog-tiles path relative to the log prefix, e.g. ``tile/0/x001/234.p/7``."""
        return f"tile/{self.level}/{_encode_index(self.index)}{_width_suffix(self.width)}"

    @property
    def is_partial(self) -> bool:
        """Whether the tile holds fewer than 256 hashes."""
        return self.width < TILE_WIDTH

    @property
    def node_level(self) -> int:
        """The tree level of the hashes in this tile."""
        return self.level * TILE_HEIGHT

    @property
    def leaf_begin(self) -> int:
        """First leaf covered by this tile."""
        return (self.index * TILE_WIDTH) << self.node_level

    @property
    def leaf_end(self) -> int:
        """One past the last leaf covered by this tile (as wide as it is)."""
        return (self.index * TILE_WIDTH + self.width) << self.node_level

    def node_ids(self) -> list[NodeID]:
        """The ids of the nodes whose hashes make up this tile, in order."""
        first = self.index * TILE_WIDTH
        return [NodeID(self.node_level, first + i) for i in range(self.width)]


@dataclass(frozen=True, slots=True, order=True)
class EntryBundle:
    """Entry bundle ``index``: entries ``[index*256, index*256 + width)``."""

    index: int
    width: int = TILE_WIDTH

    def __post_init__(self) -> None:
        if self.index < 0 or not 1 <= self.width <= TILE_WIDTH:
            raise MalformedError(f"invalid entry bundle ({self.index}, {self.width})")
        if self.leaf_end > MAX_TREE_SIZE:
            raise MalformedError("entry bundle lies beyond the largest possible tree")

    @property
    def path(self) -> str:
        """The tlog-tiles path relative to the log prefix, e.g. ``tile/entries/000.p/3``."""
        return f"tile/entries/{_encode_index(self.index)}{_width_suffix(self.width)}"

    @property
    def is_partial(self) -> bool:
        """Whether the bundle holds fewer than 256 entries."""
        return self.width < TILE_WIDTH

    @property
    def leaf_begin(self) -> int:
        """Index of the first entry in the bundle."""
        return self.index * TILE_WIDTH

    @property
    def leaf_end(self) -> int:
        """One past the index of the last entry in the bundle."""
        return self.index * TILE_WIDTH + self.width


def _canonical_number(text: str, what: str) -> int:
    if len(text) > 1 and text[0] == "0":
        raise MalformedError(f"{what} has a leading zero")
    return int(text)


def parse_tile_path(path: str) -> Tile | EntryBundle:
    """Parse a tlog-tiles path (relative to the log prefix, no leading slash).

    Accepts exactly the canonical form: ``tile/<L>/<N>[.p/<W>]`` with ``0 <= L <= 63`` and
    ``1 <= W <= 255``, or ``tile/entries/<N>[.p/<W>]``. Anything else (leading zeros, ``..``,
    ``%2e``, backslashes, a ``.p/256`` full width, non-ASCII digits, over-long input) raises
    :class:`MalformedError`. The caller then looks the tile up by value, never by path.
    """
    if not isinstance(path, str):
        raise MalformedError("tile path must be text")
    if len(path) > MAX_TILE_PATH_LENGTH:
        raise TooLargeError("tile path too long")
    match = _PATH_PATTERN.fullmatch(path)
    if match is None:
        raise MalformedError("not a tile path")
    width_text = match["width"]
    width = TILE_WIDTH
    if width_text is not None:
        width = _canonical_number(width_text, "tile width")
        if not 1 <= width < TILE_WIDTH:
            raise MalformedError("partial tile width must be between 1 and 255")
    index = 0
    for element in match["index"].split("/"):
        index = index * 1000 + int(element.removeprefix("x"))
    result: Tile | EntryBundle
    if match["level"] == "entries":
        result = EntryBundle(index, width)
    else:
        level = _canonical_number(match["level"], "tile level")
        if level > 63:
            raise MalformedError("tile level above 63")
        result = Tile(level, index, width)
    if result.path != path:  # belt and braces: only canonical paths round-trip
        raise MalformedError("tile path is not canonical")
    return result


def _check_size(size: int) -> None:
    if not 0 <= size <= MAX_TREE_SIZE:
        raise MalformedError(f"invalid tree size {size}")


def _tiles_between(old_size: int, new_size: int) -> Iterator[Tile]:
    _check_size(old_size)
    _check_size(new_size)
    if old_size > new_size:
        raise MalformedError(f"old size {old_size} above new size {new_size}")
    level = 0
    while True:
        shift = level * TILE_HEIGHT
        new_count = new_size >> shift
        if new_count == 0:
            return
        old_count = old_size >> shift
        for index in range(old_count // TILE_WIDTH, new_count // TILE_WIDTH):
            yield Tile(level, index)
        width = new_count % TILE_WIDTH
        if width and new_count != old_count:
            yield Tile(level, new_count // TILE_WIDTH, width)
        level += 1


def tiles_for_size(size: int) -> list[Tile]:
    """All tiles (full and partial) that make up the tree of ``size`` leaves.

    Example (tlog-tiles): size 70,000 has 273 full level-0 tiles, one of width 112, one full
    level-1 tile, one of width 17 and one level-2 tile of width 1.
    """
    return list(_tiles_between(0, size))


def new_tiles(old_size: int, new_size: int) -> list[Tile]:
    """The tiles a log must write when it grows from ``old_size`` to ``new_size``.

    Full tiles completed by the growth, plus the partial tiles of ``new_size`` (tlog-tiles:
    partial tiles must be served for every checkpointed size). Write them before publishing
    the checkpoint of ``new_size``.
    """
    return list(_tiles_between(old_size, new_size))


def entry_bundles_for_size(size: int) -> list[EntryBundle]:
    """All entry bundles (full and partial) for a log of ``size`` entries."""
    return new_entry_bundles(0, size)


def new_entry_bundles(old_size: int, new_size: int) -> list[EntryBundle]:
    """The entry bundles a log must write when it grows from ``old_size`` to ``new_size``."""
    return [
        EntryBundle(tile.index, tile.width)
        for tile in _tiles_between(old_size, new_size)
        if tile.level == 0
    ]


def tile_for_node(level: int, index: int, size: int) -> tuple[Tile, int, int]:
    """Locate node ``(level, index)`` of the tree of ``size`` in the tiles of that tree.

    Returns ``(tile, offset, count)``: the node is the root of the ``count`` (a power of two)
    hashes at ``offset`` in ``tile``. The tile's width is the one served for ``size``.
    Raises :class:`MalformedError` if the node is not a complete subtree of that tree.
    """
    _check_size(size)
    if level < 0 or index < 0 or (index + 1) << level > size:
        raise MalformedError(f"node ({level}, {index}) is not in the tree of size {size}")
    tile_level, within = divmod(level, TILE_HEIGHT)
    first = index << within
    tile_index, offset = divmod(first, TILE_WIDTH)
    available = (size >> (tile_level * TILE_HEIGHT)) - tile_index * TILE_WIDTH
    width = min(TILE_WIDTH, available)
    return Tile(tile_level, tile_index, width), offset, 1 << within


def build_tile(tile: Tile, get_node: HashReader) -> bytes:
    """Return the bytes of ``tile``: its ``width`` hashes concatenated.

    ``get_node`` is the store's reader of persisted nodes (see :class:`CompactRange.append`).
    """
    data = b"".join(get_node(node.level, node.index) for node in tile.node_ids())
    if len(data) != tile.width * HASH_SIZE:
        raise MalformedError("hash reader returned a hash of the wrong length")
    return data


def parse_tile(tile: Tile, data: bytes) -> list[bytes]:
    """Split the bytes of ``tile`` into its hashes.

    Raises :class:`MalformedError` unless ``data`` is exactly ``tile.width`` hashes long.
    The hashes are not authenticated: check a root or proof built from them.
    """
    if len(data) != tile.width * HASH_SIZE:
        raise MalformedError(f"{tile.path} must be {tile.width * HASH_SIZE} bytes")
    return [bytes(data[i : i + HASH_SIZE]) for i in range(0, len(data), HASH_SIZE)]


def build_entry_bundle(entries: Sequence[bytes]) -> bytes:
    """Frame up to 256 entries as a tlog-tiles entry bundle (uint16 big-endian lengths)."""
    if not 1 <= len(entries) <= TILE_WIDTH:
        raise MalformedError("an entry bundle holds 1 to 256 entries")
    parts: list[bytes] = []
    for entry in entries:
        if len(entry) > MAX_ENTRY_SIZE:
            raise TooLargeError("entry longer than 65535 bytes")
        parts.append(len(entry).to_bytes(2, "big"))
        parts.append(bytes(entry))
    return b"".join(parts)


def parse_entry_bundle(bundle: EntryBundle, data: bytes) -> list[bytes]:
    """Split an entry bundle into exactly ``bundle.width`` entries.

    Raises :class:`MalformedError` on a short read, trailing bytes, or the wrong count. The
    caller recomputes each entry's leaf hash and checks it against the level-0 tile.
    """
    if len(data) > bundle.width * (2 + MAX_ENTRY_SIZE):
        raise TooLargeError("entry bundle too large")
    entries: list[bytes] = []
    position = 0
    while position < len(data):
        if len(entries) == bundle.width:
            raise MalformedError(f"{bundle.path} has trailing data")
        if position + 2 > len(data):
            raise MalformedError(f"{bundle.path} ends inside a length prefix")
        length = int.from_bytes(data[position : position + 2], "big")
        position += 2
        if position + length > len(data):
            raise MalformedError(f"{bundle.path} ends inside an entry")
        entries.append(bytes(data[position : position + length]))
        position += length
    if len(entries) != bundle.width:
        raise MalformedError(f"{bundle.path} has {len(entries)} entries, not {bundle.width}")
    return entries


class TileHashReader:
    """A :class:`HashReader` over the tiles of one tree size, for building proofs client-side.

    ``read_tile(tile)`` fetches the bytes of a tile (from disk or HTTP). Hashes returned are
    *not* authenticated by this class: the caller verifies the root or proof it builds from them
    against a signed checkpoint of ``size`` (``tree_root(size, reader) == checkpoint.root``).
    """

    def __init__(self, size: int, read_tile: Callable[[Tile], bytes], *, cache_size: int = 64):
        _check_size(size)
        self._size = size
        self._read_tile = read_tile
        self._cache: dict[Tile, list[bytes]] = {}
        self._cache_size = cache_size

    @property
    def size(self) -> int:
        """The tree size whose tiles are read."""
        return self._size

    def tile_hashes(self, tile: Tile) -> list[bytes]:
        """Return the hashes of ``tile`` (fetched once, then cached)."""
        hashes = self._cache.get(tile)
        if hashes is None:
            hashes = parse_tile(tile, self._read_tile(tile))
            if len(self._cache) >= self._cache_size:
                self._cache.clear()
            self._cache[tile] = hashes
        return hashes

    def __call__(self, level: int, index: int) -> bytes:
        """Return the hash of node ``(level, index)``, computed from one tile."""
        tile, offset, count = tile_for_node(level, index, self._size)
        hashes = self.tile_hashes(tile)
        if count == 1:
            return hashes[offset]
        return root_from_hashes(hashes[offset : offset + count])
