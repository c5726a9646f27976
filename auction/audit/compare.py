"""Two views of one log: :func:`compare`, and equivocation evidence that anyone with the
log's vkey and an RFC 9162 implementation can check (:func:`write_evidence`,
:func:`verify_evidence`).
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from chain import (
    TILE_WIDTH,
    ChainError,
    EntryBundle,
    Note,
    Policy,
    SignedCheckpoint,
    TileHashReader,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    open_checkpoint,
    parse_checkpoint_text,
    parse_entry_bundle,
    parse_note,
    parse_policy,
    tree_root,
    verify_consistency,
    verify_inclusion,
)

from ..verify.keys import ed25519_vkey
from ..verify.steps import Step as AuditStep
from .errors import AuditError, EvidenceError, MissingFileError, OversizeError, SourceError
from .report import b64

if TYPE_CHECKING:
    from .sources import LedgerSource


EVIDENCE_VERSION: Final = "gavel/equivocation-evidence/v1"


@dataclass(frozen=True)
class _View:
    label: str
    source: LedgerSource
    latest: SignedCheckpoint
    checkpoints: tuple[SignedCheckpoint, ...]  # latest and history, by size
    reader: TileHashReader
    has_history: bool

    @property
    def size(self) -> int:
        return self.latest.checkpoint.size


@dataclass(frozen=True)
class ComparisonReport:
    """The result of :func:`compare`: ``status`` is ``"consistent"`` or ``"equivocation"``.

    For an equivocation, ``evidence`` is the self-contained evidence document: store it with
    :func:`write_evidence`, check it with :func:`verify_evidence`.
    """

    status: str
    origin: str
    sizes: tuple[int, int]
    roots: tuple[bytes, bytes]
    checked: int
    notes: tuple[str, ...]
    evidence: Mapping[str, Any] | None = None

    @property
    def consistent(self) -> bool:
        return self.status == "consistent"

    def to_json(self) -> str:
        """Deterministic JSON text."""
        value = {
            "status": self.status,
            "origin": self.origin,
            "sizes": list(self.sizes),
            "roots": [b64(root) for root in self.roots],
            "checkpoints_checked": self.checked,
            "notes": list(self.notes),
            "evidence": self.evidence,
        }
        return json.dumps(value, sort_keys=True, indent=2, ensure_ascii=False) + "\n"


def _open_view(label: str, source: LedgerSource, policy: Policy) -> _View:
    notes: list[Note] = []
    try:
        notes.append(parse_note(source.checkpoint()))
        history = source.checkpoints()
        for _, data in history or ():
            notes.append(parse_note(data))
        origin = parse_checkpoint_text(notes[0].text).origin
    except (ChainError, MissingFileError, OversizeError) as exc:
        raise AuditError(AuditStep.PARSE, None, f"{label} ({source.name}): {exc.message}") from exc
    signed: list[SignedCheckpoint] = []
    try:
        log_keys = policy.log_verifiers(origin)
        for note in notes:
            signed.append(open_checkpoint(note, log_keys, policy.cosigners()))
    except ChainError as exc:
        raise AuditError(
            AuditStep.LOG_SIGNATURES, None, f"{label} ({source.name}): {exc.message}"
        ) from exc
    latest = signed[0]
    reader = TileHashReader(
        latest.checkpoint.size, lambda tile: source.read(tile.path), cache_size=512
    )
    ordered = tuple(sorted(signed, key=lambda s: (s.checkpoint.size, s.checkpoint.root)))
    return _View(label, source, latest, ordered, reader, history is not None)


def _prefix_root(view: _View, size: int) -> bytes:
    try:
        return tree_root(size, view.reader)
    except MissingFileError as exc:
        raise AuditError(AuditStep.ROOTS, None, f"{view.label}: {exc.message}") from exc
    except ChainError as exc:
        raise AuditError(AuditStep.ROOTS, None, f"{view.label}: {exc.message}") from exc


def _proven_prefix(view: _View, size: int) -> tuple[bytes, list[bytes]]:
    """The root of the first ``size`` entries of ``view``'s tree and the consistency proof
    that ties it to the view's signed latest root (so the view's tiles cannot lie)."""
    root = _prefix_root(view, size)
    try:
        proof = consistency_proof(size, view.size, view.reader)
        verify_consistency(size, view.size, proof, root, view.latest.checkpoint.root)
    except (ChainError, MissingFileError) as exc:
        raise EvidenceError(
            f"{view.label} ({view.source.name}): its tiles do not match its own checkpoint: "
            f"{exc.message}"
        ) from exc
    return root, proof


def compare(a: LedgerSource, b: LedgerSource, *, policy: bytes | None = None) -> ComparisonReport:
    """Compare two views of one log (two mirrors, a server and an export, two exports).

    Both latest checkpoints and every checkpoint of both histories must be signed by the log
    key of ``policy`` (default: ``a``'s policy file). The view with the larger latest tree is
    the reference; every checkpoint of either view must be a prefix of it, which is proven
    with a consistency proof from the reference's tiles. Returns ``"consistent"``, or
    ``"equivocation"`` with a self-contained ``evidence`` document (both signed notes, the
    proof, and where they diverge with inclusion proofs and the entries). Raises
    :class:`AuditError` when a checkpoint does not verify, :class:`EvidenceError` when the
    views are of different logs or a view's tiles contradict its own checkpoint.
    """
    try:
        trust = parse_policy(policy if policy is not None else a.policy())
    except (ChainError, MissingFileError, OversizeError) as exc:
        raise AuditError(AuditStep.PARSE, None, f"policy: {exc.message}") from exc
    view_a, view_b = _open_view("A", a, trust), _open_view("B", b, trust)
    origin = view_a.latest.checkpoint.origin
    if view_b.latest.checkpoint.origin != origin:
        raise EvidenceError(
            f"A and B are different logs: {origin!r} and {view_b.latest.checkpoint.origin!r}"
        )
    reference, other = (view_b, view_a) if view_b.size > view_a.size else (view_a, view_b)
    if _prefix_root(reference, reference.size) != reference.latest.checkpoint.root:
        raise EvidenceError(
            f"{reference.label} ({reference.source.name}): its tiles do not give its root"
        )
    notes = [
        f"{view.label}: checkpoint history unavailable, latest only"
        for view in (view_a, view_b)
        if not view.has_history
    ]
    checked: set[tuple[int, bytes]] = set()
    for view in (other, reference):
        for signed in view.checkpoints:
            checkpoint = signed.checkpoint
            if (checkpoint.size, checkpoint.root) in checked:
                continue
            if checkpoint.size > reference.size:
                notes.append(
                    f"{view.label}: the checkpoint of size {checkpoint.size} in its history is "
                    "beyond both latest checkpoints and was not compared"
                )
                continue
            proven, proof = _proven_prefix(reference, checkpoint.size)
            checked.add((checkpoint.size, checkpoint.root))
            if proven != checkpoint.root:
                evidence = _evidence(trust, view, signed, reference, proven, proof)
                return ComparisonReport(
                    "equivocation",
                    origin,
                    (view_a.size, view_b.size),
                    (view_a.latest.checkpoint.root, view_b.latest.checkpoint.root),
                    len(checked),
                    tuple(notes),
                    evidence,
                )
    return ComparisonReport(
        "consistent",
        origin,
        (view_a.size, view_b.size),
        (view_a.latest.checkpoint.root, view_b.latest.checkpoint.root),
        len(checked),
        tuple(notes),
    )


def _first_difference(x: _View, y: _View, size: int) -> int:
    """The first leaf index below ``size`` where the two trees differ (prefix roots are equal
    exactly up to it); the caller knows they differ at ``size``."""
    low, high = 0, size
    while high - low > 1:
        middle = (low + high) // 2
        if _prefix_root(x, middle) == _prefix_root(y, middle):
            low = middle
        else:
            high = middle
    return high - 1


def _leaf_evidence(view: _View, index: int, size: int) -> dict[str, Any]:
    leaf = view.reader(0, index)
    proof = inclusion_proof(index, size, view.reader)
    root = _prefix_root(view, size)
    verify_inclusion(index, size, leaf, proof, root)
    bundle_index = index // TILE_WIDTH
    bundle = EntryBundle(bundle_index, min(TILE_WIDTH, view.size - bundle_index * TILE_WIDTH))
    entry: str | None = None
    try:
        raws = parse_entry_bundle(bundle, view.source.read(bundle.path))
        data = raws[index - bundle.leaf_begin]
        if leaf_hash(data) == leaf:
            entry = b64(data)
    except (ChainError, SourceError):
        entry = None
    return {
        "source": view.source.name,
        "leaf_hash": b64(leaf),
        "inclusion_proof": [b64(digest) for digest in proof],
        "entry": entry,
    }


def _evidence(
    policy: Policy,
    view: _View,
    signed: SignedCheckpoint,
    reference: _View,
    proven: bytes,
    proof: list[bytes],
) -> dict[str, Any]:
    first, second = signed.checkpoint, reference.latest.checkpoint
    log_keys = policy.log_verifiers(first.origin)
    try:
        verify_consistency(first.size, second.size, proof, first.root, second.root)
        failure = "none"  # unreachable: the roots differ
    except ChainError as exc:
        failure = exc.message
    divergence: dict[str, Any] | None = None
    if first.size and view.size >= first.size and _prefix_root(view, first.size) == first.root:
        _proven_prefix(view, first.size)
        index = _first_difference(view, reference, first.size)
        divergence = {
            "index": index,
            "first": _leaf_evidence(view, index, first.size),
            "second": _leaf_evidence(reference, index, second.size),
        }
    return {
        "v": EVIDENCE_VERSION,
        "origin": first.origin,
        "log_vkeys": [key.vkey for key in log_keys],
        "claim": ("the log signed two checkpoints that cannot both describe one append-only tree"),
        "checkpoints": [
            {
                "source": view.source.name,
                "size": first.size,
                "root": b64(first.root),
                "signed_note": signed.to_bytes().decode("utf-8"),
            },
            {
                "source": reference.source.name,
                "size": second.size,
                "root": b64(second.root),
                "signed_note": reference.latest.to_bytes().decode("utf-8"),
            },
        ],
        "consistency": {
            "from_size": first.size,
            "to_size": second.size,
            "proof": [b64(digest) for digest in proof],
            "from_root_signed": b64(first.root),
            "from_root_proven": b64(proven),
            "check": "verify_consistency(from_size, to_size, proof, from_root_signed, to_root)",
            "error": failure,
        },
        "divergence": divergence,
        "how_to_verify": [
            "1. both signed_note values verify under a log_vkey (C2SP signed-note, Ed25519)",
            "2. RFC 9162 consistency: proof leads from (from_size, from_root_proven) to the "
            "second checkpoint's root, yet from_root_proven differs from from_root_signed",
            "3. divergence (if present): each leaf_hash is at index under its checkpoint's "
            "root by its inclusion_proof (RFC 9162 2.1.3), and the leaf hashes differ",
        ],
    }


def write_evidence(report: ComparisonReport, path: str | os.PathLike[str]) -> Path:
    """Store the evidence of an equivocation as deterministic JSON at ``path``; return it."""
    if report.evidence is None:
        raise EvidenceError("the views are consistent: there is no evidence to write")
    target = Path(path)
    text = json.dumps(report.evidence, sort_keys=True, indent=2, ensure_ascii=False) + "\n"
    try:
        target.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise SourceError(f"cannot write {target}: {exc.strerror or exc}") from exc
    return target


def _unb64(value: Any, what: str) -> bytes:
    if not isinstance(value, str):
        raise EvidenceError(f"{what} must be base64 text")
    try:
        return base64.b64decode(value.encode("ascii"), validate=True)
    except ValueError as exc:
        raise EvidenceError(f"{what} is not base64") from exc


def _hash_list(value: Any, what: str) -> list[bytes]:
    if not isinstance(value, list) or len(value) > 64:
        raise EvidenceError(f"{what} must be a list of at most 64 hashes")
    return [_unb64(item, what) for item in value]


def verify_evidence(data: bytes) -> tuple[int, int]:
    """Check an equivocation evidence file on its own; return the two conflicting sizes.

    Both signed notes must verify under one of the file's log vkeys with the same origin;
    then either the sizes are equal with different roots, or the consistency proof ties a
    root other than the signed one to the second checkpoint, or (checked too when present)
    the divergent leaves are included at the same index under both roots and differ. Raises
    :class:`EvidenceError` if the file does not prove a fork.
    """
    try:
        value = json.loads(data)
        if not isinstance(value, dict) or value.get("v") != EVIDENCE_VERSION:
            raise EvidenceError(f"not a {EVIDENCE_VERSION} document")
        log_keys = [ed25519_vkey(text, "log vkey") for text in value["log_vkeys"]]
        opened = [
            open_checkpoint(item["signed_note"].encode("utf-8"), log_keys)
            for item in value["checkpoints"]
        ]
    except EvidenceError:
        raise
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise EvidenceError(f"malformed evidence: {exc}") from exc
    except ChainError as exc:
        raise EvidenceError(f"a checkpoint in the evidence does not verify: {exc.message}") from exc
    if len(opened) != 2:
        raise EvidenceError("evidence must hold exactly two checkpoints")
    in_order = [signed.checkpoint for signed in opened]
    first, second = in_order
    if first.origin != second.origin or first.origin != value.get("origin"):
        raise EvidenceError("the checkpoints are of different logs")
    if first.size > second.size:
        first, second = second, first
    if first.size == second.size:
        if first.root == second.root:
            raise EvidenceError("the checkpoints agree")
        return first.size, second.size
    consistency = value.get("consistency")
    if not isinstance(consistency, dict):
        raise EvidenceError("evidence has no consistency proof")
    proof = _hash_list(consistency.get("proof"), "consistency proof")
    proven = _unb64(consistency.get("from_root_proven"), "from_root_proven")
    try:
        verify_consistency(first.size, second.size, proof, proven, second.root)
    except ChainError as exc:
        raise EvidenceError(f"the consistency proof does not verify: {exc.message}") from exc
    if proven == first.root:
        raise EvidenceError("the first checkpoint is a prefix of the second: no fork")
    divergence = value.get("divergence")
    if divergence is not None:
        _check_divergence(divergence, in_order)
    return first.size, second.size


def _check_divergence(divergence: Any, checkpoints: Iterable[Any]) -> None:
    try:
        index = divergence["index"]
        sides = (divergence["first"], divergence["second"])
        leaves = []
        for side, checkpoint in zip(sides, checkpoints, strict=True):
            leaf = _unb64(side["leaf_hash"], "leaf hash")
            proof = _hash_list(side["inclusion_proof"], "inclusion proof")
            verify_inclusion(index, checkpoint.size, leaf, proof, checkpoint.root)
            if side.get("entry") is not None and leaf_hash(_unb64(side["entry"], "entry")) != leaf:
                raise EvidenceError("an entry does not hash to its leaf hash")
            leaves.append(leaf)
    except (KeyError, TypeError) as exc:
        raise EvidenceError(f"malformed divergence: {exc}") from exc
    except ChainError as exc:
        raise EvidenceError(f"a divergence inclusion proof does not verify: {exc.message}") from exc
    if leaves[0] == leaves[1]:
        raise EvidenceError("the divergent leaves are equal")
