"""The ledger's storage adapter: entries, tile hashes, checkpoints and the signed-head lock in SQL.

The one part of ``chain`` that touches a database, through SQLAlchemy Core only (no ORM, no
asyncio): SQLite or PostgreSQL, in the same database as the caller's own tables. Every function
takes a SQLAlchemy :class:`~sqlalchemy.engine.Connection`, so the caller owns the transaction:
the auction appends entries in the very transaction that stores the commands they record, and
signs a checkpoint in a transaction that first moves the signed-head lock.

Modules:

- :mod:`~chain.store.schema`: the tables (on :data:`LEDGER_METADATA`; :func:`create_tables`
  makes them) and the values their rows are read back as:

  - ``ledger_entries(seq, data, leaf_hash, t_us)``: entry bytes and their RFC 9162 leaf hash,
    which is always computed here from the bytes (:class:`StoredEntry`), never taken from a
    caller;
  - ``ledger_hashes(level, node_index, hash)``: the perfect subtrees at levels 8, 16, ... (the
    hashes that tiles of level 1, 2, ... are made of; level-0 tiles come from ``leaf_hash``);
  - ``ledger_checkpoints(size, root, note, signed_us, published_us)``: every signed checkpoint,
    ``published_us`` set once it may be served (after the notary quorum);
  - ``ledger_signed(id = 1, size, root, updated_us)``: one row, the largest tree ever signed.

- :mod:`~chain.store.entries`: :class:`EntrySigner` and the bytes of a new entry;
- :mod:`~chain.store.state`: :class:`LedgerState` and :class:`LedgerBatch` (the writer);
- :mod:`~chain.store.rows`: appending rows, reading entries, tiles and entry bundles back;
- :mod:`~chain.store.subtrees`: proofs over the stored tiles (:func:`hash_reader`);
- :mod:`~chain.store.checkpoints`: the signed-head lock (:func:`cas_signed`, a compare-and-swap,
  so two processes can never sign diverging heads) and the checkpoints.

Writing, with :class:`LedgerState` (the tip of the tree, resumed from storage)::

    state = LedgerState.load(connection)             # recomputes the tail's leaf hashes
    # (LedgerState.load(connection, each_entry=f) re-hashes and checks the whole log)
    batch = state.batch()
    batch.add(EntryType.BID, body, ingress_us, signer)  # sequences, signs, hashes, integrates
    append_entries(connection, batch.entries, batch.nodes)
    # ... commit ..., then:
    state.advance(batch)

Reading: :func:`read_tile`, :func:`read_entry_bundle`, :func:`read_entries`, and proofs through
:func:`hash_reader` (a :class:`SubtreeReader`: each tile it needs is read and hashed up once).

Errors: :class:`SignedHeadConflict` (another signer moved the lock) and :class:`StoredDataError`
(rows missing, or a recomputed hash differs from what is stored). SQLAlchemy's own exceptions
pass through untranslated: the caller's adapter translates them once, with its own.
"""

from __future__ import annotations

from .checkpoints import (
    cas_signed,
    checkpoint_sizes,
    latest_checkpoint,
    publish_checkpoint,
    read_checkpoint,
    read_signed,
    store_checkpoint,
)
from .entries import EntrySigner
from .errors import SignedHeadConflict, StoredDataError
from .rows import (
    REBUILD_PAGE,
    append_entries,
    read_entries,
    read_entry_bundle,
    read_tile,
    stored_size,
)
from .schema import (
    CHECKPOINTS,
    ENTRIES,
    HASHES,
    LEDGER_METADATA,
    SIGNED,
    SignedHead,
    StoredCheckpoint,
    StoredEntry,
    create_tables,
)
from .state import LedgerBatch, LedgerState
from .subtrees import (
    ExpandedTile,
    SubtreeReader,
    consistency_proof,
    expand_tile,
    expanded_hash,
    hash_reader,
    inclusion_proof,
    tree_root,
)

__all__ = [
    "CHECKPOINTS",
    "ENTRIES",
    "HASHES",
    "LEDGER_METADATA",
    "REBUILD_PAGE",
    "SIGNED",
    "EntrySigner",
    "ExpandedTile",
    "LedgerBatch",
    "LedgerState",
    "SignedHead",
    "SignedHeadConflict",
    "StoredCheckpoint",
    "StoredDataError",
    "StoredEntry",
    "SubtreeReader",
    "append_entries",
    "cas_signed",
    "checkpoint_sizes",
    "consistency_proof",
    "create_tables",
    "expand_tile",
    "expanded_hash",
    "hash_reader",
    "inclusion_proof",
    "latest_checkpoint",
    "publish_checkpoint",
    "read_checkpoint",
    "read_entries",
    "read_entry_bundle",
    "read_signed",
    "read_tile",
    "store_checkpoint",
    "stored_size",
    "tree_root",
]
