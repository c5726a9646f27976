"""Receipts: one ``c2sp.org/tlog-proof`` receipt and its entry offline
(:func:`verify_receipt_files`), and step 10 of ``gavel audit verify``, the receipts of an
export directory (:func:`check_receipts`).

An export (``gavel ledger export``) holds ``receipts/<seq>.tlog-proof`` and
``receipts/<seq>.entry`` pairs. After steps 1-9 verified the whole log, each pair must be
what it claims: the entry file holds exactly the log's entry ``seq`` (its leaf hash is the
one recomputed from the log), the receipt proves that very index, its checkpoint is signed
by the log key with the policy's quorum (``chain.verify_receipt``), and that checkpoint is
one of the log's: its root is the root of the verified tree at its size (so it is a
published checkpoint or consistent with them). Every failure names the file at fault.
"""

from __future__ import annotations

import json
import os
import re
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from chain import (
    MAX_ENTRY_BYTES,
    MAX_POLICY_SIZE,
    MAX_RECEIPT_SIZE,
    ActorSignatureError,
    ChainError,
    HashReader,
    Policy,
    leaf_hash,
    parse_policy,
    tree_root,
    verify_actor,
    verify_receipt,
)

from ..verify.keys import ActorKeys
from .errors import MissingFileError, NoVerdict, OversizeError, ReceiptError, SourceError
from .report import b64


@dataclass(frozen=True)
class ReceiptReport:
    """A verified receipt: ``entry`` is leaf ``seq`` of the quorum-signed tree."""

    seq: int
    entry_type: str
    lot: str | None
    origin: str
    checkpoint_size: int
    checkpoint_root: bytes
    witnesses: tuple[str, ...]
    actor_checked: bool
    notes: tuple[str, ...]

    def to_json(self) -> str:
        """Deterministic JSON text."""
        value = {
            "ok": True,
            "seq": self.seq,
            "type": self.entry_type,
            "lot": self.lot,
            "origin": self.origin,
            "checkpoint": {"size": self.checkpoint_size, "root": b64(self.checkpoint_root)},
            "witnesses": list(self.witnesses),
            "actor_checked": self.actor_checked,
            "notes": list(self.notes),
        }
        return json.dumps(value, sort_keys=True, indent=2, ensure_ascii=False) + "\n"


def _read_file(path: Path, limit: int, what: str) -> bytes:
    try:
        with path.open("rb") as handle:
            data = handle.read(limit + 1)
    except FileNotFoundError:
        raise MissingFileError(f"{what} {path} does not exist", path=str(path)) from None
    except OSError as exc:
        raise SourceError(
            f"cannot read {what} {path}: {exc.strerror or exc}", path=str(path)
        ) from exc
    if len(data) > limit:
        raise OversizeError(f"{what} {path} is larger than {limit} bytes", path=str(path))
    return data


def verify_receipt_files(
    proof_path: str | os.PathLike[str],
    entry_path: str | os.PathLike[str],
    policy_path: str | os.PathLike[str] | None = None,
) -> ReceiptReport:
    """Verify a ``.tlog-proof`` receipt and its ``.entry`` offline, against a trust policy.

    The policy is required: a receipt names its log key only by name and id, so trust must
    come from elsewhere. Without ``policy_path`` a file named ``policy`` next to the receipt
    or one directory up (the export layout: ``receipts/`` beside ``policy``) is used; if there
    is none, or it does not parse, :class:`NoVerdict` asks for one.

    Steps 1-6 are ``chain.verify_receipt`` (parse, entry, checkpoint, signatures, quorum,
    inclusion); step ``7 actor`` checks the entry's actor signature when its kid names the
    log's (house) key, the only key known offline; otherwise the report notes it was not
    checked. Raises :class:`ReceiptError` at the first failing step, :class:`NoVerdict`
    (:class:`SourceError`) when a file cannot be read or no policy is available.
    """
    proof_file, entry_file = Path(proof_path), Path(entry_path)
    if policy_path is None:
        candidates = [proof_file.parent / "policy", proof_file.parent.parent / "policy"]
        found = next((c for c in candidates if c.is_file()), None)
        if found is None:
            raise NoVerdict("no trust policy found next to the receipt: pass --policy FILE")
        policy_file = found
    else:
        policy_file = Path(policy_path)
    receipt_bytes = _read_file(proof_file, MAX_RECEIPT_SIZE, "receipt")
    entry_bytes = _read_file(entry_file, MAX_ENTRY_BYTES, "entry")
    policy_bytes = _read_file(policy_file, MAX_POLICY_SIZE, "policy")
    try:
        policy = parse_policy(policy_bytes)
    except ChainError as exc:
        raise NoVerdict(f"policy {policy_file}: {exc.message}") from exc
    try:
        verified = verify_receipt(receipt_bytes, entry_bytes, None, policy)
    except ChainError as exc:
        raise ReceiptError(exc.step or "1 parse", exc.message) from exc
    entry = verified.entry
    checkpoint = verified.checkpoint.checkpoint
    notes: list[str] = []
    house_keys = ActorKeys(
        tuple(log.verifier for log in policy.logs if log.verifier.name == checkpoint.origin)
    )
    matching = house_keys.resolve(entry.actor.kid)
    for public_key in matching:
        try:
            verify_actor(entry, public_key)
            break
        except ActorSignatureError:
            continue
    else:
        if matching:
            raise ReceiptError(
                "7 actor", f"actor signature does not verify for kid {entry.actor.kid!r}"
            )
        notes.append(
            f"actor signature not checked: kid {entry.actor.kid!r} is not the log's key "
            "(other keys need the whole ledger: gavel audit verify)"
        )
    if not policy.witnesses:
        notes.append("no notaries in policy")
    lot = entry.body.get("lot")
    return ReceiptReport(
        seq=entry.seq,
        entry_type=entry.type.value,
        lot=lot if isinstance(lot, str) else None,
        origin=checkpoint.origin,
        checkpoint_size=checkpoint.size,
        checkpoint_root=checkpoint.root,
        witnesses=tuple(sorted(verified.witnesses)),
        actor_checked=bool(matching),
        notes=tuple(notes),
    )


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
