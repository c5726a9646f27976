"""Step 10 of ``gavel audit verify``: the receipts of an export directory.

An export (``gavel ledger export``) holds ``receipts/<seq>.tlog-proof`` and
``receipts/<seq>.entry`` pairs. After steps 1-9 verified the whole log, each pair must be
what it claims: the entry file holds exactly the log's entry ``seq`` (its leaf hash is the one
recomputed from the log), the receipt proves that very index, its checkpoint is signed by the
log key with the policy's quorum (``chain.verify_receipt``), and that checkpoint is one of the
log's: its root is the root of the verified tree at its size (so it is a published checkpoint
or consistent with them). Every failure names the file at fault.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Final

from chain import (
    MAX_ENTRY_BYTES,
    MAX_RECEIPT_SIZE,
    ChainError,
    HashReader,
    Policy,
    leaf_hash,
    tree_root,
    verify_receipt,
)

__all__ = ["RECEIPTS_FOLDER", "check_receipts"]


class _Unreadable(Exception):
    pass


RECEIPTS_FOLDER: Final = "receipts"
_NAME = re.compile(r"(0|[1-9][0-9]{0,18})\.(tlog-proof|entry)")

Finding = tuple[int | None, str, str]
"""``(seq, file, message)``: one receipt that does not verify."""


def check_receipts(export: Path, policy: Policy, tree: HashReader, size: int) -> Iterator[Finding]:
    """Check every receipt in ``export/receipts/`` against the verified tree of ``size``
    entries (``tree``: its node hashes). Yields one finding per bad receipt pair, in ``seq``
    order; nothing when all verify (or the export has no ``receipts/``)."""
    folder = export / RECEIPTS_FOLDER
    if folder.is_symlink():
        yield None, RECEIPTS_FOLDER, "is a symbolic link, not a folder of the export"
        return
    if not folder.is_dir():
        return
    pairs: dict[int, set[str]] = {}
    for name in sorted(item.name for item in os.scandir(folder)):
        match = _NAME.fullmatch(name)
        if match is None:
            yield None, f"{RECEIPTS_FOLDER}/{name}", "not a receipt or entry file name"
            continue
        pairs.setdefault(int(match.group(1)), set()).add(match.group(2))
    for seq in sorted(pairs):
        finding = _check_pair(folder, policy, tree, size, seq, pairs[seq])
        if finding is not None:
            yield finding


def _read(path: Path, limit: int) -> bytes:
    """A regular file (no symlink, no FIFO) of at most ``limit`` bytes."""
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC)
        with os.fdopen(descriptor, "rb") as handle:
            if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
                raise _Unreadable("is not a regular file")
            data = handle.read(limit + 1)
    except OSError as exc:
        raise _Unreadable(f"cannot be read: {exc.strerror or exc}") from exc
    if len(data) > limit:
        raise _Unreadable(f"is larger than {limit} bytes")
    return data


def _check_pair(
    folder: Path,
    policy: Policy,
    tree: HashReader,
    size: int,
    seq: int,
    kinds: set[str],
) -> Finding | None:
    proof_name = f"{RECEIPTS_FOLDER}/{seq}.tlog-proof"
    entry_name = f"{RECEIPTS_FOLDER}/{seq}.entry"
    if "tlog-proof" not in kinds:
        return seq, entry_name, f"has no receipt {proof_name}"
    if "entry" not in kinds:
        return seq, proof_name, f"has no entry file {entry_name}"
    try:
        entry = _read(folder / f"{seq}.entry", MAX_ENTRY_BYTES)
    except _Unreadable as exc:
        return seq, entry_name, str(exc)
    try:
        receipt = _read(folder / f"{seq}.tlog-proof", MAX_RECEIPT_SIZE)
    except _Unreadable as exc:
        return seq, proof_name, str(exc)
    if seq >= size:
        return seq, proof_name, f"entry {seq} is not in the log of {size} entries"
    if leaf_hash(entry) != tree(0, seq):
        return seq, entry_name, f"is not the log's entry {seq} (its leaf hash differs)"
    try:
        verified = verify_receipt(receipt, entry, None, policy)
    except ChainError as exc:
        return seq, proof_name, f"receipt step {exc.step or '1 parse'}: {exc.message}"
    if verified.index != seq:
        return seq, proof_name, f"proves entry {verified.index}, not entry {seq}"
    checkpoint = verified.checkpoint.checkpoint
    if checkpoint.size > size:
        return (
            seq,
            proof_name,
            f"its checkpoint (size {checkpoint.size}) is larger than the latest ({size})",
        )
    try:
        root = tree_root(checkpoint.size, tree)
    except ChainError as exc:
        return seq, proof_name, exc.message
    if root != checkpoint.root:
        return (
            seq,
            proof_name,
            f"its checkpoint of size {checkpoint.size} is not consistent with the log's "
            "checkpoints (different root)",
        )
    return None
