"""The writer's view of the tree: :class:`LedgerState` (the tip of the stored tree, resumed
from storage and checked) and :class:`LedgerBatch` (entries sequenced on top of it, not yet
stored)."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from sqlalchemy import func, select
from sqlalchemy.engine import Connection

from ..compact import CompactRange, NodeID, range_nodes
from ..entry import EntryType, JSONValue
from ..errors import MalformedError
from ..hashing import EMPTY_ROOT
from ..proof import tree_root
from ..tiles import TILE_HEIGHT
from . import rows
from .checkpoints import read_signed
from .entries import EntrySigner, entry_bytes
from .errors import StoredDataError
from .rows import (
    checked_entry,
    entry_pages,
    node_hashes,
    read_entries,
    read_tile_checked,
    stored_size,
)
from .schema import ENTRIES, HASHES, StoredEntry
from .subtrees import SubtreeReader, expand_tile

__all__ = ["LedgerBatch", "LedgerState"]


def _tile_level_nodes(compact: CompactRange, leaf: bytes) -> list[tuple[NodeID, bytes]]:
    """Append ``leaf`` to ``compact``; return the perfect subtrees it completed at the levels
    tiles are made of (8, 16, ...), which are stored with the entries."""
    return [
        (node, digest)
        for node, digest in compact.append(leaf)
        if node.level and node.level % TILE_HEIGHT == 0
    ]


class _Tip:
    """The tip of a tree: its compact range ``[0, size)``, last leaf hash and last entry time."""

    __slots__ = ("_last_time_us", "_prev", "_range")

    def __init__(self, compact_range: CompactRange, prev: bytes, last_time_us: int) -> None:
        self._range = compact_range
        self._prev = prev
        self._last_time_us = last_time_us

    @property
    def size(self) -> int:
        """Number of entries in the tree."""
        return self._range.end

    @property
    def prev(self) -> bytes:
        """The leaf hash of the last entry (``b""`` when empty): the next entry's ``prev``."""
        return self._prev

    @property
    def last_time_us(self) -> int:
        """The ``t`` of the last entry (0 when empty); the next entry's ``t`` is never earlier."""
        return self._last_time_us

    def root(self) -> bytes:
        """The root of the tree (``EMPTY_ROOT`` when empty)."""
        return self._range.root()


class LedgerBatch(_Tip):
    """Entries sequenced on top of a :class:`LedgerState`, not yet stored.

    Build it with :meth:`LedgerState.batch`, :meth:`add` entries, write :attr:`entries` and
    :attr:`nodes` with :func:`append_entries` inside the caller's transaction, and only after the
    commit call :meth:`LedgerState.advance`. A batch whose transaction failed is dropped.
    """

    __slots__ = ("_base_size", "entries", "nodes")

    def __init__(self, state: LedgerState) -> None:
        super().__init__(state.compact_range.copy(), state.prev, state.last_time_us)
        self._base_size = state.size
        self.entries: list[StoredEntry] = []
        #: Completed perfect subtrees at tile levels (8, 16, ...) to store with the entries.
        self.nodes: list[tuple[NodeID, bytes]] = []

    @property
    def base_size(self) -> int:
        """The tree size this batch was sequenced on."""
        return self._base_size

    def add(
        self,
        entry_type: EntryType,
        body: Mapping[str, JSONValue],
        time_us: int,
        signer: EntrySigner,
    ) -> StoredEntry:
        """Sequence one entry: next ``seq``, ``prev`` = the last leaf hash, ``t`` = ``time_us``
        raised to the last entry's time if earlier (times never go backwards), the actor
        signature of ``signer`` over ``"gavel/<type>/v1\\n" || JCS(body)``; then hash its bytes
        and integrate the leaf. Returns the entry (its ``seq`` is what later entries cite).

        The bytes equal ``chain.build_entry(...).to_bytes()``: plain bodies take a fast
        canonical-JSON path, anything else the strict one. Raises :class:`MalformedError` /
        :class:`TooLargeError` for bodies no entry may hold.
        """
        kind = EntryType(entry_type)
        seq = self._range.end
        time_us = max(time_us, self._last_time_us)
        entry = StoredEntry(seq, entry_bytes(seq, self._prev, time_us, kind, body, signer), time_us)
        self.nodes.extend(_tile_level_nodes(self._range, entry.leaf_hash))
        self._prev = entry.leaf_hash
        self._last_time_us = time_us
        self.entries.append(entry)
        return entry


class LedgerState(_Tip):
    """The tip of the stored tree: its compact range, last leaf hash and last entry time.

    Resume it with :meth:`load`; it is mutated only by :meth:`advance`, after a commit. Not
    thread-safe: one writer.
    """

    __slots__ = ()

    def __init__(
        self, compact_range: CompactRange | None = None, prev: bytes = b"", last_time_us: int = 0
    ) -> None:
        super().__init__(
            compact_range if compact_range is not None else CompactRange(), prev, last_time_us
        )
        if self._range.begin != 0:
            raise MalformedError("a ledger state covers the tree from leaf 0")

    @classmethod
    def load(
        cls,
        connection: Connection,
        *,
        each_entry: Callable[[StoredEntry], None] | None = None,
    ) -> LedgerState:
        """Resume from storage and check it, fail-closed. Raises :class:`StoredDataError`.

        Quick (without ``each_entry``): reads the perfect subtrees of the stored tree, and for
        the level-0 tile at the tail the entry bytes, whose leaf hashes it recomputes (ledger
        spec section 2: recompute a leaf hash from the stored bytes before integrating it).

        Full (with ``each_entry``, called with every stored entry in order, e.g. to rebuild the
        caller's own bookkeeping in the same pass): recomputes *every* leaf hash from the bytes,
        rebuilds the tree from them, and requires every stored hash (leaf and tile level) to
        equal the recomputed one.

        Either way the tree at the signed head's size must have the signed root, and the signed
        size must not exceed the stored size.
        """
        size = stored_size(connection)
        signed = read_signed(connection)
        if signed.size > size:
            raise StoredDataError(
                f"a tree of {signed.size} entries was signed but only {size} are stored"
            )
        if each_entry is not None:
            state, signed_root = cls._rebuild(connection, signed.size, each_entry)
            if state.size != size:
                raise StoredDataError(f"read {state.size} entries, {size} stored")
        else:
            if size == 0:
                return cls()
            reader = SubtreeReader(
                size, lambda tile: expand_tile(tile, read_tile_checked(connection, tile))
            )
            nodes = range_nodes(0, size)
            compact = CompactRange.from_hashes(0, size, [reader(n.level, n.index) for n in nodes])
            (last,) = read_entries(connection, size - 1, size)
            state = cls(compact, last.leaf_hash, last.time_us)
            signed_root = compact.root() if signed.size == size else tree_root(signed.size, reader)
        if signed.size and signed_root != signed.root:
            raise StoredDataError(
                f"the stored tree of {signed.size} entries does not have the signed root"
            )
        return state

    @classmethod
    def _rebuild(
        cls, connection: Connection, signed_size: int, each_entry: Callable[[StoredEntry], None]
    ) -> tuple[LedgerState, bytes]:
        compact = CompactRange()
        computed: dict[tuple[int, int], bytes] = {}
        signed_root = EMPTY_ROOT
        last: StoredEntry | None = None
        # Pages by seq (not a server-side cursor): a connection lost meanwhile fails the next
        # page cleanly and leaves no cursor behind that can no longer be closed.
        for row in entry_pages(connection):
            if int(row.seq) != compact.end:
                raise StoredDataError(f"entry {compact.end} is missing")
            entry = checked_entry(row)
            for node, digest in _tile_level_nodes(compact, entry.leaf_hash):
                computed[(node.level, node.index)] = digest
            if compact.end == signed_size:
                signed_root = compact.root()
            last = entry
            each_entry(entry)
        stored = {
            (int(row.level), int(row.node_index)): bytes(row.hash)
            for row in connection.execute(select(HASHES))
        }
        if stored != computed:
            wrong = sorted(set(stored.items()) ^ set(computed.items()))[0][0]
            raise StoredDataError(f"stored hash of node {wrong} differs from the entries")
        if last is None:
            return cls(), signed_root
        return cls(compact, last.leaf_hash, last.time_us), signed_root

    @property
    def compact_range(self) -> CompactRange:
        """The compact range ``[0, size)`` (do not mutate; :meth:`batch` copies it)."""
        return self._range

    def batch(self) -> LedgerBatch:
        """Start a batch of entries on top of this state (the state itself is unchanged)."""
        return LedgerBatch(self)

    def catch_up(
        self,
        connection: Connection,
        *,
        each_entry: Callable[[StoredEntry], None] | None = None,
        page: int | None = None,
    ) -> int:
        """Integrate the entries another writer stored after this state's size (several
        writers of one database take turns under a lock and each catches up first). Each
        leaf hash is recomputed from the stored bytes and must equal the stored one, and the
        tile-level subtree hashes completed on the way must equal the stored ones
        (:class:`StoredDataError` otherwise; the state is then unchanged). Returns how many
        entries were integrated; ``each_entry`` sees each of them in order."""
        highest = connection.execute(select(func.max(ENTRIES.c.seq))).scalar()
        size = 0 if highest is None else int(highest) + 1
        if size <= self.size:
            return 0
        compact = self._range.copy()
        prev, last_time = self._prev, self._last_time_us
        entries: list[StoredEntry] = []
        step = page or rows.REBUILD_PAGE
        while compact.end < size:
            end = min(size, compact.end + step)
            stored_rows = connection.execute(
                select(ENTRIES)
                .where(ENTRIES.c.seq >= compact.end, ENTRIES.c.seq < end)
                .order_by(ENTRIES.c.seq)
            ).all()
            if len(stored_rows) != end - compact.end:
                raise StoredDataError(f"entries {compact.end}..{end - 1} are not all stored")
            for row in stored_rows:
                entry = checked_entry(row)
                for node, digest in _tile_level_nodes(compact, entry.leaf_hash):
                    stored = node_hashes(connection, node.level, node.index, node.index + 1)
                    if stored != [digest]:
                        raise StoredDataError(
                            f"stored hash of node {(node.level, node.index)} differs"
                        )
                prev, last_time = entry.leaf_hash, entry.time_us
                entries.append(entry)
        if each_entry is not None:
            for entry in entries:
                each_entry(entry)
        self._range, self._prev, self._last_time_us = compact, prev, last_time
        return len(entries)

    def advance(self, batch: LedgerBatch) -> None:
        """Take over ``batch`` once its transaction committed. Raises ``ValueError`` if the
        batch was sequenced on another size (the caller lost track of its own writes)."""
        if batch.base_size != self.size:
            raise ValueError(f"batch built on size {batch.base_size}, the tree has {self.size}")
        self._range = batch._range
        self._prev = batch.prev
        self._last_time_us = batch.last_time_us
