"""Signing, publishing and reading checkpoints of the ledger."""

from __future__ import annotations

from chain import MAX_TREE_SIZE, Checkpoint, sign_checkpoint
from chain import store as ledger_store

from .base import _StoreCore
from .errors import _translated
from .records import LedgerHead


class _Checkpoints(_StoreCore):
    """Checkpoints of the ledger: signing one behind the signed-head compare-and-swap,
    publishing it, and reading the signed and published ones and the proofs between them."""

    def sign_checkpoint(self) -> LedgerHead | None:
        """Sign a checkpoint of the current tree if it grew since the last one.

        In one transaction: the signed-head compare-and-swap from the last signed size (raises
        `CheckpointConflict` if another signer moved it), then the signature, then the stored
        (unpublished) checkpoint. Returns it, to be published with `publish_checkpoint` (once
        notaries exist: after they cosigned); `None` if there is nothing new. A checkpoint that
        was signed but never published (a crash in between) is returned again.
        """
        with self._ledger_lock:
            writer = self._ledger_writer()
            house = writer.house
            now = self._clock()
            with self._ledger_transaction("signing a checkpoint") as connection:
                if self._dialect == "postgresql":  # another instance may have written or signed
                    self._sequence(connection, writer)
                    writer.signed = ledger_store.read_signed(connection)
                size, root = writer.state.size, writer.state.root()
                if size == writer.signed.size:
                    latest = ledger_store.latest_checkpoint(connection, published=False)
                    if latest is None or latest.published_us is not None:
                        return None
                    return LedgerHead(latest.size, latest.root, latest.note)
                ledger_store.cas_signed(connection, writer.signed.size, size, root, now)
                note = sign_checkpoint(Checkpoint(house.origin, size, root), house.signer)
                ledger_store.store_checkpoint(connection, size, root, note, now)
            writer.signed = ledger_store.SignedHead(size, root)
        return LedgerHead(size, root, note)

    def publish_checkpoint(self, head: LedgerHead) -> None:
        """Mark a signed checkpoint published: from now on it is served and receipts use it."""
        with _translated("publishing a checkpoint"), self._engine.begin() as connection:
            ledger_store.publish_checkpoint(connection, head.size, head.note, self._clock())

    def published_checkpoint(self) -> LedgerHead | None:
        """The latest published checkpoint, or None before the first one."""
        with _translated("reading the checkpoint"), self._engine.connect() as connection:
            latest = ledger_store.latest_checkpoint(connection)
        return None if latest is None else LedgerHead(latest.size, latest.root, latest.note)

    def checkpoint_sizes(self) -> list[int]:
        """The tree sizes of every published checkpoint, ascending."""
        with _translated("listing checkpoints"), self._engine.connect() as connection:
            return ledger_store.checkpoint_sizes(connection)

    def checkpoint_note(self, size: int) -> bytes | None:
        """The published checkpoint of tree size `size` (signed note bytes), or None."""
        if not 0 <= size <= MAX_TREE_SIZE:
            return None
        with _translated("reading a checkpoint"), self._engine.connect() as connection:
            stored = ledger_store.read_checkpoint(connection, size)
        if stored is None or stored.published_us is None:
            return None
        return stored.note

    def ledger_consistency_proof(self, old_size: int, new_size: int) -> list[bytes]:
        """The consistency proof from `old_size` to `new_size` (a signed size); empty from 0
        or to the same size, as tlog-witness expects."""
        if old_size == 0 or old_size >= new_size:
            return []
        with _translated("building a consistency proof"), self._engine.connect() as connection:
            return ledger_store.consistency_proof(connection, old_size, new_size)

    def signed_checkpoint(self) -> LedgerHead | None:
        """The latest signed checkpoint, published or not (None before the first)."""
        with _translated("reading the checkpoint"), self._engine.connect() as connection:
            latest = ledger_store.latest_checkpoint(connection, published=False)
        return None if latest is None else LedgerHead(latest.size, latest.root, latest.note)
