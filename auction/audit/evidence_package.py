"""``gavel audit evidence DIR``: verify a lot's evidence package offline
(:mod:`auction.evidence.package`).

Seven numbered, fail-closed steps; the first failure names its step and the file at fault
(``evidence failed at step 3 inclusion, entries/12.tlog-proof: ...``):

1. parse: only the package's own files are there; the manifest, the policy, both checkpoints,
   the consistency proof and every entry parse; every listed entry has its two files;
2. signatures: both checkpoints carry the log's signature and the policy's notary quorum, and
   ``keys/`` holds exactly the policy's keys;
3. inclusion: every entry's receipt proves it under the one checkpoint of the package;
4. consistency: that checkpoint is a prefix of the latest one (RFC 9162 proof);
5. replay: the lot's history replays with the rules engine from these entries alone (its
   signed bids against the bidders' ``idv`` entries), and a sold lot has its sale entry;
6. segments: every recording file is the segment its ``stream_segment`` entry hashed;
7. report: ``manifest.json``, ``report.txt`` and ``report.html`` are what the entries give.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path
from typing import Any, Final

from chain import (
    MAX_ENTRY_BYTES,
    MAX_NOTE_SIZE,
    MAX_POLICY_SIZE,
    MAX_RECEIPT_SIZE,
    ChainError,
    Entry,
    EntryType,
    SignedCheckpoint,
    parse_checkpoint_text,
    parse_entry,
    parse_note,
    parse_policy,
    parse_receipt,
    verify_consistency,
    verify_inclusion,
    verify_receipt,
)

from ..evidence.package import (
    CONSISTENCY_HEADER,
    EVIDENCE_VERSION,
    keys_text,
    manifest_bytes,
    reports,
    summarize,
)
from ..verify.errors import ReplayError
from ..verify.replay import LedgerReplay
from .errors import AuditFailure

__all__ = ["EvidenceFailure", "EvidenceReport", "EvidenceStep", "verify_evidence_package"]


_MAX_TEXT: Final = 64 * 1024 * 1024


_FIXED: Final = frozenset(
    {
        "manifest.json",
        "policy",
        "keys/log.vkey",
        "keys/notaries.vkeys",
        "checkpoint",
        "latest-checkpoint",
        "consistency",
        "report.txt",
        "report.html",
        "openings.json",  # optional: the openings of the entries' sealed values
    }
)


_ENTRY_FILE = re.compile(r"entries/(0|[1-9][0-9]{0,18})\.(entry|tlog-proof)")


_SEGMENT_FILE = re.compile(r"recording/([A-Za-z0-9._-]+)/seg-([0-9]{8})\.gvs")


class EvidenceStep(IntEnum):
    PARSE = 1
    SIGNATURES = 2
    INCLUSION = 3
    CONSISTENCY = 4
    REPLAY = 5
    SEGMENTS = 6
    REPORT = 7

    @property
    def label(self) -> str:
        return f"{self.value} {self.name.lower()}"


class EvidenceFailure(AuditFailure):
    """The package does not verify: ``step``, the ``path`` at fault and why."""

    def __init__(self, step: EvidenceStep, path: str, message: str) -> None:
        super().__init__(message)
        self.step = step
        self.path = path

    def __str__(self) -> str:
        return f"evidence failed at step {self.step.label}, {self.path}: {self.message}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "step": int(self.step),
            "name": self.step.name.lower(),
            "file": self.path,
            "message": self.message,
        }


@dataclass(frozen=True)
class EvidenceReport:
    """A verified package."""

    lot: str
    origin: str
    entries: int
    anchor_size: int
    latest_size: int
    status: str
    price: int | None
    segments_checked: int
    bid_signatures: int
    steps: tuple[str, ...]

    def to_json(self) -> str:
        value = {"ok": True, **{k: getattr(self, k) for k in self.__dataclass_fields__}}
        value["steps"] = list(self.steps)
        return json.dumps(value, sort_keys=True, indent=2) + "\n"


class _Package:
    def __init__(self, root: Path) -> None:
        if not root.is_dir():
            raise EvidenceFailure(EvidenceStep.PARSE, str(root), "is not a directory")
        self.root = root.resolve()

    def files(self) -> list[str]:
        names: list[str] = []
        for directory, folders, files in os.walk(self.root):
            folders.sort()
            for name in sorted(files):
                names.append(Path(directory, name).relative_to(self.root).as_posix())
        return names

    def read(self, relative: str, limit: int) -> bytes:
        path = self.root / relative
        if path.is_symlink() or not path.is_file():
            raise EvidenceFailure(EvidenceStep.PARSE, relative, "is missing or not a regular file")
        with path.open("rb") as handle:
            data = handle.read(limit + 1)
        if len(data) > limit:
            raise EvidenceFailure(EvidenceStep.PARSE, relative, f"is larger than {limit} bytes")
        return data


def _fail(step: EvidenceStep, path: str, message: str) -> EvidenceFailure:
    return EvidenceFailure(step, path, message)


def _parse_consistency(data: bytes) -> tuple[int, int, list[bytes]]:
    lines = data.decode("ascii").split("\n")
    if lines[-1] != "" or lines[0] != CONSISTENCY_HEADER:
        raise ValueError("not a gavel/consistency/v1 file")
    old, new = lines[1].split(" "), lines[2].split(" ")
    if old[0] != "old" or new[0] != "new" or len(old) != 2 or len(new) != 2:
        raise ValueError("no old/new sizes")
    proof = [base64.b64decode(line, validate=True) for line in lines[3:-1]]
    if any(len(h) != 32 for h in proof):
        raise ValueError("a proof hash is not 32 bytes")
    return int(old[1]), int(new[1]), proof


def verify_evidence_package(directory: str | os.PathLike[str]) -> EvidenceReport:
    """Verify the package in ``directory``; raises :class:`EvidenceFailure` at the first
    failing step (module docstring)."""
    package = _Package(Path(directory))
    parse = EvidenceStep.PARSE
    # --- 1 parse
    seqs: dict[int, set[str]] = {}
    segment_files: dict[tuple[str, int], str] = {}
    for name in package.files():
        entry_match, segment_match = _ENTRY_FILE.fullmatch(name), _SEGMENT_FILE.fullmatch(name)
        if entry_match:
            seqs.setdefault(int(entry_match.group(1)), set()).add(entry_match.group(2))
        elif segment_match:
            segment_files[(segment_match.group(1), int(segment_match.group(2)))] = name
        elif name not in _FIXED:
            raise _fail(parse, name, "is not a file of an evidence package")
    try:
        manifest = json.loads(package.read("manifest.json", _MAX_TEXT))
        if not isinstance(manifest, dict) or manifest.get("v") != EVIDENCE_VERSION:
            raise ValueError(f"not a {EVIDENCE_VERSION} manifest")
        lot_id = manifest["lot"]
        listed = {int(item["seq"]): item for item in manifest["entries"]}
        if not isinstance(lot_id, str):
            raise ValueError("no lot")
    except (ValueError, KeyError, TypeError) as exc:
        raise _fail(parse, "manifest.json", f"unreadable: {exc}") from exc
    for seq in sorted(set(listed) | set(seqs)):
        for kind in ("entry", "tlog-proof"):
            if kind not in seqs.get(seq, set()):
                what = "listed in manifest.json" if seq in listed else "present"
                raise _fail(parse, f"entries/{seq}.{kind}", f"is missing (entry {seq} is {what})")
    policy_bytes = package.read("policy", MAX_POLICY_SIZE)
    try:
        policy = parse_policy(policy_bytes)
    except ChainError as exc:
        raise _fail(parse, "policy", exc.message) from exc
    notes = {}
    for name in ("checkpoint", "latest-checkpoint"):
        try:
            note = parse_note(package.read(name, MAX_NOTE_SIZE))
            notes[name] = (note, parse_checkpoint_text(note.text))
        except ChainError as exc:
            raise _fail(parse, name, exc.message) from exc
    try:
        old, new, proof = _parse_consistency(package.read("consistency", _MAX_TEXT))
    except (ValueError, UnicodeDecodeError, binascii.Error) as exc:
        raise _fail(parse, "consistency", str(exc)) from exc
    entries: dict[int, tuple[Entry, bytes]] = {}
    for seq in sorted(seqs):
        data = package.read(f"entries/{seq}.entry", MAX_ENTRY_BYTES)
        try:
            entry = parse_entry(data)
        except ChainError as exc:
            raise _fail(parse, f"entries/{seq}.entry", exc.message) from exc
        if entry.seq != seq:
            raise _fail(parse, f"entries/{seq}.entry", f"holds entry {entry.seq}")
        entries[seq] = (entry, data)

    # --- 2 signatures
    signatures = EvidenceStep.SIGNATURES
    logs, notaries = keys_text(policy)
    signed: dict[str, SignedCheckpoint] = {}
    for name in ("checkpoint", "latest-checkpoint"):
        try:
            signed[name] = policy.verify_checkpoint(notes[name][0])
        except ChainError as exc:
            blamed = name
            for key_file, expected in (("keys/log.vkey", logs), ("keys/notaries.vkeys", notaries)):
                if package.read(key_file, _MAX_TEXT) != expected.encode():
                    blamed = "policy"  # the policy's keys are not the ones published with it
            raise _fail(signatures, blamed, exc.message) from exc
    for key_file, expected in (("keys/log.vkey", logs), ("keys/notaries.vkeys", notaries)):
        if package.read(key_file, _MAX_TEXT) != expected.encode():
            raise _fail(signatures, key_file, "is not the keys of the policy")
    anchor, latest = signed["checkpoint"].checkpoint, signed["latest-checkpoint"].checkpoint
    if anchor.origin != latest.origin:
        raise _fail(signatures, "latest-checkpoint", "is a checkpoint of another log")

    # --- 3 inclusion
    inclusion = EvidenceStep.INCLUSION
    for seq, (_entry, data) in entries.items():
        proof_name = f"entries/{seq}.tlog-proof"
        receipt = package.read(proof_name, MAX_RECEIPT_SIZE)
        try:
            verified = verify_receipt(receipt, data, None, policy)
        except ChainError as exc:
            raise _fail(inclusion, _blame(seq, receipt, listed, anchor), exc.message) from exc
        point = verified.checkpoint.checkpoint
        if verified.index != seq or (point.size, point.root) != (anchor.size, anchor.root):
            raise _fail(inclusion, proof_name, "is not a proof against the package's checkpoint")

    # --- 4 consistency
    if (old, new) != (anchor.size, latest.size):
        raise _fail(
            EvidenceStep.CONSISTENCY, "consistency", "names other sizes than the checkpoints"
        )
    try:
        verify_consistency(old, new, proof, anchor.root, latest.root)
    except ChainError as exc:
        raise _fail(EvidenceStep.CONSISTENCY, "consistency", exc.message) from exc

    # --- 5 replay
    ordered = [entries[seq][0] for seq in sorted(entries)]
    opened: dict[int, Any] = {}
    if "openings.json" in package.files():  # sealed values (docs/ledger.md) are checked
        try:
            items = json.loads(package.read("openings.json", _MAX_TEXT))["openings"]
            opened = {int(seq): item for seq, item in items.items()}
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise _fail(EvidenceStep.REPLAY, "openings.json", f"unreadable: {exc}") from exc
    replay = LedgerReplay(openings=opened.get if opened else None)
    for entry in ordered:
        try:
            replay.add(entry.seq, entry.type.value, entry.time_us, entry.body, entry.actor.kid)
        except ReplayError as exc:
            where = f"entries/{exc.seq}.entry" if exc.seq in entries else "manifest.json"
            raise _fail(EvidenceStep.REPLAY, where, str(exc)) from exc
    if lot_id not in replay.lots:
        raise _fail(EvidenceStep.REPLAY, "manifest.json", f"the package holds no lot {lot_id!r}")
    if lot_id in replay.unsold_closures():
        close = replay.lots[lot_id].close_entry
        raise _fail(EvidenceStep.REPLAY, f"entries/{close}.entry", "sold, but no sale entry")
    outcome = replay.outcomes()[lot_id]

    # --- 6 segments
    recording = _segments(package, ordered, lot_id, segment_files)

    # --- 7 report
    summary = summarize(
        lot_id, ordered, policy, signed["checkpoint"], signed["latest-checkpoint"], recording
    )
    report_text, report_page = reports(summary, ordered)
    derived: tuple[tuple[str, bytes], ...] = (
        ("manifest.json", manifest_bytes(summary)),
        ("report.txt", report_text),
        ("report.html", report_page),
    )
    for name, made in derived:
        if package.read(name, _MAX_TEXT) != made:
            raise _fail(EvidenceStep.REPORT, name, "is not what the package's entries give")
    return EvidenceReport(
        lot=lot_id,
        origin=anchor.origin,
        entries=len(entries),
        anchor_size=anchor.size,
        latest_size=latest.size,
        status=str(outcome["status"]).lower(),
        price=outcome["price"],
        segments_checked=len(recording),
        bid_signatures=replay.verified_bid_signatures,
        steps=tuple(step.label for step in EvidenceStep),
    )


def _blame(seq: int, receipt: bytes, listed: Mapping[int, Any], anchor: Any) -> str:
    """An inclusion failure is the entry file's when the receipt proves the leaf hash the
    manifest lists for it; else the receipt's."""
    try:
        leaf = base64.b64decode(listed[seq]["leaf"], validate=True)
        parsed = parse_receipt(receipt)
        verify_inclusion(seq, anchor.size, leaf, list(parsed.proof), anchor.root)
    except (KeyError, TypeError, ValueError, binascii.Error, ChainError):
        return f"entries/{seq}.tlog-proof"
    return f"entries/{seq}.entry"


def _segments(
    package: _Package, ordered: list[Entry], lot_id: str, files: Mapping[tuple[str, int], str]
) -> dict[int, str]:
    step = EvidenceStep.SEGMENTS
    seen: dict[tuple[str, int], int] = {}
    previous: dict[str, str] = {}
    for entry in ordered:
        if entry.type != EntryType.STREAM_SEGMENT or entry.body.get("lot") != lot_id:
            continue
        rendition, index = str(entry.body.get("rendition")), entry.body.get("index")
        digest, prev = entry.body.get("sha256"), entry.body.get("prev")
        if rendition in previous and prev != previous[rendition]:
            raise _fail(step, f"entries/{entry.seq}.entry", "breaks the segment chain")
        previous[rendition] = str(digest)
        if isinstance(index, int):
            seen[(rendition, index)] = entry.seq
    bodies = {entry.seq: entry.body for entry in ordered}
    recording: dict[int, str] = {}
    for key, name in sorted(files.items()):
        seq = seen.get(key)
        if seq is None:
            raise _fail(step, name, "has no stream_segment entry in the package")
        with (package.root / name).open("rb") as handle:  # hashed in chunks: any size
            digest = hashlib.file_digest(handle, "sha256").hexdigest()
        if digest != bodies[seq].get("sha256"):
            raise _fail(step, name, f"is not the segment entry {seq} hashed (SHA-256 differs)")
        recording[seq] = name
    return recording
