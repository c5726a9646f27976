"""Entry and hash rows: appending them, and reading entries, tiles and entry bundles back.

Every entry read back has its leaf hash recomputed from its bytes and compared with the stored
one (:func:`checked_entry`); :class:`StoredDataError` when a row is missing or differs.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from sqlalchemy import func, insert, select
from sqlalchemy.engine import Connection

from ..compact import NodeID
from ..errors import MalformedError
from ..hashing import HASH_SIZE
from ..tiles import TILE_WIDTH, EntryBundle, Tile, build_entry_bundle
from .errors import StoredDataError
from .schema import ENTRIES, HASHES, StoredEntry

__all__ = [
    "REBUILD_PAGE",
    "append_entries",
    "checked_entry",
    "entry_pages",
    "node_hashes",
    "read_entries",
    "read_entry_bundle",
    "read_tile",
    "read_tile_checked",
    "stored_size",
]


def append_entries(
    connection: Connection,
    entries: Sequence[StoredEntry],
    nodes: Sequence[tuple[NodeID, bytes]] = (),
) -> None:
    """Insert sequenced entries and the tile-level subtree hashes they completed (bulk inserts).

    Run it inside the caller's transaction; a duplicate ``seq`` (someone else appended) makes
    the database refuse the whole transaction.
    """
    if entries:
        connection.execute(
            insert(ENTRIES),
            [
                {"seq": e.seq, "data": e.data, "leaf_hash": e.leaf_hash, "t_us": e.time_us}
                for e in entries
            ],
        )
    if nodes:
        connection.execute(
            insert(HASHES),
            [{"level": n.level, "node_index": n.index, "hash": digest} for n, digest in nodes],
        )


def stored_size(connection: Connection) -> int:
    """The number of stored entries; raises :class:`StoredDataError` if ``seq`` has a gap."""
    count, highest = connection.execute(select(func.count(), func.max(ENTRIES.c.seq))).one()
    size = 0 if highest is None else int(highest) + 1
    if count != size:
        raise StoredDataError(f"{count} entries stored but the highest seq is {size - 1}")
    return size


#: Rows per page when the whole log is read back (`LedgerState.load(each_entry=...)`).
REBUILD_PAGE = 1000


def entry_pages(connection: Connection) -> Iterator[Any]:
    """Every stored entry row (seq, data, leaf_hash, t_us) in seq order, read in pages of
    `REBUILD_PAGE` rows by seq (keyset), each page an ordinary fetched query."""
    after = -1
    while True:
        rows = connection.execute(
            select(ENTRIES.c.seq, ENTRIES.c.data, ENTRIES.c.leaf_hash, ENTRIES.c.t_us)
            .where(ENTRIES.c.seq > after)
            .order_by(ENTRIES.c.seq)
            .limit(REBUILD_PAGE)
        ).all()
        yield from rows
        if len(rows) < REBUILD_PAGE:
            return
        after = int(rows[-1].seq)


def checked_entry(row: Any) -> StoredEntry:
    """The entry of a stored row (seq, data, t_us, leaf_hash), its leaf hash recomputed from
    the bytes. Raises :class:`StoredDataError` if it differs from the stored one."""
    entry = StoredEntry(int(row.seq), bytes(row.data), int(row.t_us))
    if entry.leaf_hash != bytes(row.leaf_hash):
        raise StoredDataError(f"entry {entry.seq}: stored leaf hash differs from its bytes")
    return entry


def read_entries(connection: Connection, begin: int, end: int) -> list[StoredEntry]:
    """Entries ``[begin, end)``, their leaf hashes recomputed from the bytes and checked
    against the stored ones. Raises :class:`StoredDataError` if one is missing or differs."""
    if not 0 <= begin <= end:
        raise MalformedError(f"invalid entry range [{begin}, {end})")
    rows = connection.execute(
        select(ENTRIES.c.seq, ENTRIES.c.data, ENTRIES.c.leaf_hash, ENTRIES.c.t_us)
        .where(ENTRIES.c.seq >= begin, ENTRIES.c.seq < end)
        .order_by(ENTRIES.c.seq)
    ).all()
    entries: list[StoredEntry] = []
    for expected, row in enumerate(rows, start=begin):
        if row.seq != expected:
            break
        entries.append(checked_entry(row))
    if len(entries) != end - begin:
        raise StoredDataError(f"entries [{begin}, {end}) are not all stored")
    return entries


def _leaf_hashes(connection: Connection, begin: int, end: int) -> list[bytes]:
    rows = connection.execute(
        select(ENTRIES.c.seq, ENTRIES.c.leaf_hash)
        .where(ENTRIES.c.seq >= begin, ENTRIES.c.seq < end)
        .order_by(ENTRIES.c.seq)
    ).all()
    if [row.seq for row in rows] != list(range(begin, end)):
        raise StoredDataError(f"leaf hashes [{begin}, {end}) are not all stored")
    return [bytes(row.leaf_hash) for row in rows]


def node_hashes(connection: Connection, level: int, begin: int, end: int) -> list[bytes]:
    """The stored hashes of nodes ``[begin, end)`` of ``level``; :class:`StoredDataError` if
    one is missing."""
    rows = connection.execute(
        select(HASHES.c.node_index, HASHES.c.hash)
        .where(
            HASHES.c.level == level,
            HASHES.c.node_index >= begin,
            HASHES.c.node_index < end,
        )
        .order_by(HASHES.c.node_index)
    ).all()
    if [row.node_index for row in rows] != list(range(begin, end)):
        raise StoredDataError(f"hashes [{begin}, {end}) of level {level} are not all stored")
    return [bytes(row.hash) for row in rows]


def read_tile(connection: Connection, tile: Tile) -> bytes:
    """The bytes of ``tile`` (full or partial) from the stored hashes.

    The caller checks first that the tile lies within a tree it may serve (a published
    checkpoint); :class:`StoredDataError` here means stored data is missing.
    """
    first = tile.index * TILE_WIDTH
    if tile.level == 0:
        hashes = _leaf_hashes(connection, first, first + tile.width)
    else:
        hashes = node_hashes(connection, tile.node_level, first, first + tile.width)
    if any(len(digest) != HASH_SIZE for digest in hashes):
        raise StoredDataError(f"{tile.path}: a stored hash has the wrong length")
    return b"".join(hashes)


def read_tile_checked(connection: Connection, tile: Tile) -> bytes:
    """Like :func:`read_tile`, but level-0 hashes are recomputed from the entry bytes."""
    if tile.level != 0:
        return read_tile(connection, tile)
    first = tile.index * TILE_WIDTH
    return b"".join(e.leaf_hash for e in read_entries(connection, first, first + tile.width))


def read_entry_bundle(connection: Connection, bundle: EntryBundle) -> bytes:
    """The bytes of an entry bundle (tlog-tiles ``tile/entries/...``), leaf hashes checked."""
    entries = read_entries(connection, bundle.leaf_begin, bundle.leaf_end)
    return build_entry_bundle([entry.data for entry in entries])
