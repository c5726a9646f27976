"""The signed-head lock and the signed checkpoints.

:func:`cas_signed` moves the lock with a compare-and-swap, so two processes can never sign
diverging heads (the Sunlight "lock backend" idea); a checkpoint is stored in the same
transaction and published once it may be served.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.engine import Connection

from ..errors import MalformedError
from ..hashing import HASH_SIZE
from .errors import SignedHeadConflict, StoredDataError
from .schema import CHECKPOINTS, SIGNED, SignedHead, StoredCheckpoint

__all__ = [
    "cas_signed",
    "checkpoint_sizes",
    "latest_checkpoint",
    "publish_checkpoint",
    "read_checkpoint",
    "read_signed",
    "store_checkpoint",
]


def read_signed(connection: Connection) -> SignedHead:
    """The signed-head lock: the largest size ever signed and its root."""
    row = connection.execute(select(SIGNED.c.size, SIGNED.c.root).where(SIGNED.c.id == 1)).first()
    if row is None:
        raise StoredDataError("the signed-head row is missing (create_tables was not run)")
    return SignedHead(int(row.size), bytes(row.root))


def cas_signed(
    connection: Connection, old_size: int, new_size: int, root: bytes, now_us: int
) -> None:
    """Move the signed-head lock from ``old_size`` to ``new_size`` with ``root``, atomically.

    Call it in the transaction that stores the checkpoint, *before* signing; sign only if it
    returns. Raises :class:`SignedHeadConflict` unless the lock is still at ``old_size`` and
    ``new_size > old_size`` (a size is signed once, with one root). The conditional UPDATE is
    the compare-and-swap: SQLite serialises writers, PostgreSQL re-checks the condition on the
    latest row version, so of two signers with the same ``old_size`` only one succeeds.
    """
    if new_size <= old_size:
        raise SignedHeadConflict(f"refusing to sign size {new_size} after size {old_size}")
    if len(root) != HASH_SIZE:
        raise MalformedError("root must be 32 bytes")
    result = connection.execute(
        update(SIGNED)
        .where(SIGNED.c.id == 1, SIGNED.c.size == old_size)
        .values(size=new_size, root=root, updated_us=now_us)
    )
    if result.rowcount != 1:
        current = read_signed(connection)
        raise SignedHeadConflict(
            f"the signed head is at size {current.size}, not {old_size}: another signer is active"
        )


def store_checkpoint(
    connection: Connection, size: int, root: bytes, note: bytes, now_us: int
) -> None:
    """Store a signed checkpoint (not yet published), in the transaction of :func:`cas_signed`."""
    connection.execute(
        insert(CHECKPOINTS).values(
            size=size, root=root, note=note, signed_us=now_us, published_us=None
        )
    )


def publish_checkpoint(connection: Connection, size: int, note: bytes, now_us: int) -> None:
    """Mark the checkpoint of ``size`` published, with ``note`` (the signed note plus any
    cosignatures). Raises :class:`StoredDataError` if no checkpoint of that size is stored."""
    result = connection.execute(
        update(CHECKPOINTS).where(CHECKPOINTS.c.size == size).values(note=note, published_us=now_us)
    )
    if result.rowcount != 1:
        raise StoredDataError(f"no signed checkpoint of size {size} to publish")


def _checkpoint(row: Any) -> StoredCheckpoint:
    published = None if row.published_us is None else int(row.published_us)
    return StoredCheckpoint(
        int(row.size), bytes(row.root), bytes(row.note), int(row.signed_us), published
    )


def latest_checkpoint(connection: Connection, *, published: bool = True) -> StoredCheckpoint | None:
    """The checkpoint of the largest size (only published ones by default), or ``None``."""
    query = select(CHECKPOINTS).order_by(CHECKPOINTS.c.size.desc()).limit(1)
    if published:
        query = query.where(CHECKPOINTS.c.published_us.is_not(None))
    row = connection.execute(query).first()
    return None if row is None else _checkpoint(row)


def read_checkpoint(connection: Connection, size: int) -> StoredCheckpoint | None:
    """The stored checkpoint of ``size`` (published or not), or ``None``."""
    row = connection.execute(select(CHECKPOINTS).where(CHECKPOINTS.c.size == size)).first()
    return None if row is None else _checkpoint(row)


def checkpoint_sizes(connection: Connection, *, published: bool = True) -> list[int]:
    """The sizes of the stored checkpoints (only published ones by default), ascending."""
    query = select(CHECKPOINTS.c.size).order_by(CHECKPOINTS.c.size)
    if published:
        query = query.where(CHECKPOINTS.c.published_us.is_not(None))
    return [int(size) for size in connection.execute(query).scalars()]
