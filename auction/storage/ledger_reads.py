"""Reading the ledger: entries, tiles (cached), receipts, policy, final sales."""

from __future__ import annotations

import functools

from sqlalchemy import func, select
from sqlalchemy.engine import Connection

from chain import (
    ChainError,
    EntryBundle,
    EntryType,
    Tile,
    inclusion_proof,
    make_receipt,
    parse_entry,
)
from chain import store as ledger_store

from ..verify import IdentityBook
from .base import _StoreCore
from .errors import LedgerCorrupt, StorageError, _translated
from .house import _house_entry, _log_policy
from .keyfiles import _policy_file
from .records import LedgerHead

#: Full hash tiles kept in memory, hashed up, for receipts and notaries (16 KiB each as
#: `chain.store.ExpandedTile`: 16 MiB at most).
TILE_CACHE_SIZE = 1024

#: Partial hash tiles kept likewise: each new tree size makes new ones, wanted only while that
#: size is the newest (receipts and notaries' checks against the latest checkpoint).
PARTIAL_TILE_CACHE_SIZE = 32


class _LedgerReads(_StoreCore):
    """Reading the ledger (any thread): its policy, size, entries, tiles from a bounded
    cache, receipts, final sales, and what the signed-bid rules know at its end."""

    def identity_book(self) -> IdentityBook:
        """A copy of what the signed-bid rules know at the end of the ledger (whether bids
        must be signed, the identity providers, each account's key). The service checks bid
        requests against it before they reach a lot; keep it up to date with what you record."""
        with self._ledger_lock:
            return self._ledger_writer().book.copy()

    def ledger_policy(self) -> bytes:
        """The tlog-policy file naming the log key (from the house key, or from entry 0)."""
        if self._policy is None:
            with _translated("reading the ledger policy"), self._engine.connect() as connection:
                verifier = _house_entry(connection)[1]
            kept = _policy_file(self._directory, verifier)
            self._policy = kept if kept is not None else _log_policy(verifier)
        return self._policy

    def final_sales(self) -> list[str]:
        """The lots whose `sale` entry is in the latest published (co-signed) checkpoint's
        tree: those sales are final (ledger spec section 3: no quorum, no final sale)."""
        with _translated("reading sale entries"), self._engine.connect() as connection:
            latest = ledger_store.latest_checkpoint(connection)
            if latest is None:
                return []
            entries = ledger_store.read_entries(connection, 0, latest.size)
        lots: list[str] = []
        for stored in entries:
            try:
                entry = parse_entry(stored.data)
            except ChainError as exc:
                raise LedgerCorrupt(f"entry {stored.seq}: {exc}") from exc
            if entry.type is EntryType.SALE and isinstance(entry.body.get("lot"), str):
                lots.append(str(entry.body["lot"]))
        return lots

    def ledger_size(self) -> int:
        """The number of stored ledger entries (some may not be in a checkpoint yet)."""
        with _translated("reading the ledger size"), self._engine.connect() as connection:
            return ledger_store.stored_size(connection)

    def ledger_end(self) -> int:
        """The seq after the last stored entry (entries are committed in seq order, so this
        is the stored size; cheaper than `ledger_size`, which also checks for gaps)."""
        with _translated("reading the ledger size"), self._engine.connect() as connection:
            highest = connection.execute(select(func.max(ledger_store.ENTRIES.c.seq))).scalar()
        return 0 if highest is None else int(highest) + 1

    def ledger_tile(self, tile: Tile | EntryBundle) -> bytes:
        """The bytes of a tlog-tiles tile or entry bundle. The caller checks first that it lies
        within a published checkpoint; `LedgerCorrupt` means stored data is missing."""
        with _translated(f"reading {tile.path}"), self._engine.connect() as connection:
            if isinstance(tile, EntryBundle):
                return ledger_store.read_entry_bundle(connection, tile)
            return self._expanded_tile(connection, tile)[0]

    def _expanded_tile(self, connection: Connection, tile: Tile) -> ledger_store.ExpandedTile:
        """A tile with its inner subtrees hashed, from a bounded in-memory cache: a tile of a
        given width never changes, so receipts mostly cost lookups. Partial tiles have a small
        cache of their own: every new tree size makes new ones, wanted only while that size is
        the newest, which would otherwise push the full tiles out of the cache."""
        if tile.is_partial:
            cache, limit = self._partial_tiles, PARTIAL_TILE_CACHE_SIZE
        else:
            cache, limit = self._tiles, TILE_CACHE_SIZE
        with self._tiles_lock:
            expanded = cache.get(tile)
            if expanded is not None:
                cache.move_to_end(tile)
                return expanded
        expanded = ledger_store.expand_tile(tile, ledger_store.read_tile(connection, tile))
        with self._tiles_lock:
            cache[tile] = expanded
            while len(cache) > limit:
                cache.popitem(last=False)
        return expanded

    def ledger_entries(self, begin: int, end: int) -> list[bytes]:
        """The bytes of entries `[begin, end)` (leaf hashes checked against the stored ones)."""
        with _translated("reading ledger entries"), self._engine.connect() as connection:
            return [entry.data for entry in ledger_store.read_entries(connection, begin, end)]

    def ledger_receipt(self, seq: int, head: LedgerHead) -> tuple[bytes, bytes]:
        """Entry `seq` and its C2SP tlog-proof receipt against the checkpoint `head`
        (`seq < head.size`): `(entry bytes, receipt bytes)`. Check it with
        `chain.verify_receipt` and the policy."""
        if not 0 <= seq < head.size:
            raise StorageError(f"entry {seq} is not in the tree of size {head.size}")
        with _translated(f"building the receipt of entry {seq}"), self._engine.connect() as conn:
            (entry,) = ledger_store.read_entries(conn, seq, seq + 1)
            reader = ledger_store.SubtreeReader(
                head.size, functools.partial(self._expanded_tile, conn)
            )
            proof = inclusion_proof(seq, head.size, reader)
            return entry.data, make_receipt(seq, proof, head.note)
