"""``gavel evidence LOT``: one lot's evidence package, a self-contained directory a court keeps.

Layout of ``OUT`` (every file is checked by ``gavel audit evidence OUT``,
:mod:`auction.audit.evidence_package`)::

    manifest.json                   what the package holds (derived from the entries)
    policy                          the log's trust policy (C2SP tlog-policy)
    keys/log.vkey                   the log's key, and keys/notaries.vkeys the notaries' keys
    checkpoint                      ONE co-signed checkpoint every entry is proven against
    latest-checkpoint               the latest published checkpoint when the package was made
    consistency                     the RFC 9162 consistency proof from the one to the other
    entries/<seq>.entry             the lot's entries (and the house, key and idv entries its
    entries/<seq>.tlog-proof        signed bids need), each with a c2sp.org/tlog-proof receipt
    recording/<rendition>/seg-*.gvs the recording's segment files (``--with-recording``)
    report.txt, report.html         the lot's history in plain words, with entry numbers

The lot's history is self-contained: the engine replays it from these entries alone. Nothing
is written that was not verified first (log signature and quorum of both checkpoints, the tree
recomputed from all entries against the latest root, every receipt); the package is built in
a temporary directory beside ``OUT`` and renamed into place.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from chain import (
    Entry,
    EntryType,
    Policy,
    ProofError,
    SignedCheckpoint,
    canonical_json,
    consistency_proof,
    entry_bundles_for_size,
    inclusion_proof,
    leaf_hash,
    make_receipt,
    parse_entry,
    parse_entry_bundle,
    parse_policy,
    tree_root,
    verify_receipt,
)

from ..ledger_export import ExportError, LedgerSource, _Tree
from .report import history, render_html, render_text

__all__ = [
    "CONSISTENCY_HEADER",
    "DEFAULT_MAX_RECORDING_BYTES",
    "EVIDENCE_VERSION",
    "EvidenceSummary",
    "build_evidence",
    "consistency_text",
    "keys_text",
    "select_entries",
    "summarize",
]

EVIDENCE_VERSION: Final = "gavel/evidence/v1"
CONSISTENCY_HEADER: Final = "gavel/consistency/v1"
DEFAULT_MAX_RECORDING_BYTES: Final = 1024 * 1024 * 1024
"""A recording larger than this (all its files) is left out of the package; its segment
hashes are in the package either way."""

_LOT_TYPES: Final = frozenset(
    {
        EntryType.LOT,
        EntryType.LOT_STATE,
        EntryType.REGISTRATION,
        EntryType.DEPOSIT,
        EntryType.BID,
        EntryType.SALE,
        EntryType.REVEAL,
        EntryType.STREAM_SEGMENT,
        EntryType.DOCUMENT,
    }
)


@dataclass(frozen=True, slots=True)
class EvidenceSummary:
    """What :func:`build_evidence` wrote."""

    out: Path
    lot: str
    entries: int
    anchor_size: int
    latest_size: int
    segments: int
    recording_files: int
    history_lines: int


# --- pure parts, shared with the verifier ----------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _bidders(body: Mapping[str, Any]) -> set[str]:
    command = body.get("command")
    found: set[str] = set()
    if isinstance(command, Mapping):
        for key in ("bidder", "account", "on_behalf_of"):
            value = command.get(key)
            if isinstance(value, str):
                found.add(value)
    return found


def _idv_account(entry: Entry, opened: Mapping[int, Mapping[str, Any]]) -> Any:
    sealed = opened.get(entry.seq, {}).get("account")
    if isinstance(sealed, Mapping):
        return sealed.get("value")
    return entry.body.get("account")


def _marks(lot_id: str) -> tuple[bytes, ...]:
    """Byte strings one of which every candidate entry's canonical JSON holds: the lot's id as
    a ``lot`` value, or the ``key`` / ``idv`` type (the others are skipped unparsed)."""
    return (
        b'"lot":' + json.dumps(lot_id, ensure_ascii=False).encode(),
        b'"type":"key"',
        b'"type":"idv"',
    )


def select_entries(
    entries: Iterable[Entry],
    lot_id: str,
    openings: Mapping[int, Mapping[str, Any]] | None = None,
) -> list[Entry]:
    """The entries of the lot's self-contained history, in log order: entry 0 (the house),
    the lot's own entries, and, before its last one, every ``key`` entry and the ``idv``
    entries of its bidders (what its signed bids are checked against). With `openings`,
    sealed values (docs/ledger.md) are followed: the lot's aliases to their accounts, and
    each `idv` entry's sealed account."""
    entries = list(entries)
    opened = openings or {}
    bidders: set[str] = set()
    last = -1
    for entry in entries:
        if entry.type in _LOT_TYPES and entry.body.get("lot") == lot_id:
            bidders |= _bidders(entry.body)
            for item in opened.get(entry.seq, {}).values():
                value = item.get("value") if isinstance(item, Mapping) else None
                if isinstance(value, Mapping) and isinstance(value.get("account"), str):
                    bidders.add(value["account"])
            last = entry.seq
    chosen: list[Entry] = []
    for entry in entries:
        own = entry.type in _LOT_TYPES and entry.body.get("lot") == lot_id
        needed = entry.seq < last and (
            entry.type == EntryType.KEY
            or (entry.type == EntryType.IDV and _idv_account(entry, opened) in bidders)
        )
        if entry.seq == 0 or own or needed:
            chosen.append(entry)
    return chosen


def keys_text(policy: Policy) -> tuple[str, str]:
    """``keys/log.vkey`` and ``keys/notaries.vkeys``: the policy's keys, one vkey a line."""
    logs = "".join(log.verifier.vkey + "\n" for log in policy.logs)
    notaries = "".join(witness.verifier.vkey + "\n" for witness in policy.witnesses)
    return logs, notaries


def consistency_text(size1: int, size2: int, proof: Sequence[bytes]) -> str:
    """The ``consistency`` file: header, ``old``/``new`` sizes, one base64 hash a line."""
    lines = [CONSISTENCY_HEADER, f"old {size1}", f"new {size2}", *(_b64(h) for h in proof)]
    return "\n".join(lines) + "\n"


def summarize(
    lot_id: str,
    entries: Sequence[Entry],
    policy: Policy,
    anchor: SignedCheckpoint,
    latest: SignedCheckpoint,
    recording: Mapping[int, str],
) -> dict[str, Any]:
    """``manifest.json``'s content, from the verified entries (``recording``: segment entry
    seq -> the file of the package that holds it)."""
    documents: list[dict[str, Any]] = []
    segments: list[dict[str, Any]] = []
    sale: dict[str, Any] | None = None
    for entry in entries:
        body = entry.body
        if body.get("lot") != lot_id:
            continue
        if entry.type == EntryType.DOCUMENT:
            documents.append(
                {
                    "seq": entry.seq,
                    "kind": body.get("kind"),
                    "name": body.get("name"),
                    "size": body.get("size"),
                    "sha256": body.get("sha256"),
                }
            )
        elif entry.type == EntryType.STREAM_SEGMENT:
            segments.append(
                {
                    "seq": entry.seq,
                    "rendition": body.get("rendition"),
                    "index": body.get("index"),
                    "sha256": body.get("sha256"),
                    "bytes": body.get("bytes"),
                    "file": recording.get(entry.seq),
                }
            )
        elif entry.type == EntryType.SALE:
            sale = {
                "seq": entry.seq,
                "price": body.get("price"),
                "currency": body.get("currency"),
                "buyer_code": body.get("buyer_code"),
                "confirmation_sha256": body.get("confirmation_sha256"),
            }
    if sale is not None:
        confirmation = [d for d in documents if d["kind"] == "sale_confirmation"]
        sale["confirmation_document"] = confirmation[-1] if confirmation else None
    point = anchor.checkpoint
    head = latest.checkpoint
    return {
        "v": EVIDENCE_VERSION,
        "lot": lot_id,
        "origin": point.origin,
        "checkpoint": {
            "size": point.size,
            "root": _b64(point.root),
            "cosigners": sorted(policy.witness_names(anchor)),
        },
        "latest": {
            "size": head.size,
            "root": _b64(head.root),
            "cosigners": sorted(policy.witness_names(latest)),
        },
        "entries": [
            {"seq": e.seq, "type": e.type.value, "leaf": _b64(leaf_hash(e.to_bytes()))}
            for e in entries
        ],
        "documents": documents,
        "segments": segments,
        "sale": sale,
        "last_t": max((e.time_us for e in entries), default=0),
    }


def manifest_bytes(summary: Mapping[str, Any]) -> bytes:
    return (json.dumps(summary, sort_keys=True, indent=2, ensure_ascii=False) + "\n").encode()


def reports(summary: Mapping[str, Any], entries: Sequence[Entry]) -> tuple[bytes, bytes]:
    """``report.txt`` and ``report.html`` for the verified entries."""
    title, lines = history(entries, str(summary["lot"]))
    return (
        render_text(summary, title, lines).encode(),
        render_html(summary, title, lines).encode(),
    )


# --- building ------------------------------------------------------------------------------


def _recording_files(
    recordings: Path | None, lot_id: str, segments: Sequence[Entry], limit: int
) -> dict[int, tuple[Path, str]]:
    """Segment entry seq -> (file on disk, its path in the package), when every file is
    there and all together fit in ``limit`` bytes; else nothing."""
    if recordings is None:
        return {}
    from streaming.evidence import segment_file_name

    found: dict[int, tuple[Path, str]] = {}
    total = 0
    for entry in segments:
        rendition, index = entry.body.get("rendition"), entry.body.get("index")
        if not isinstance(rendition, str) or not isinstance(index, int) or "/" in rendition:
            continue
        path = recordings / lot_id / rendition / segment_file_name(index)
        if path.is_file():
            total += path.stat().st_size
            found[entry.seq] = (path, f"recording/{rendition}/{path.name}")
    return found if total <= limit else {}


def build_evidence(
    source: LedgerSource,
    lot_id: str,
    out: Path,
    *,
    recordings: Path | None = None,
    max_recording_bytes: int = DEFAULT_MAX_RECORDING_BYTES,
    force: bool = False,
) -> EvidenceSummary:
    """Verify what ``source`` serves and write the evidence package of ``lot_id`` to ``out``.

    ``recordings``: the data directory's ``recordings/`` (``--with-recording``). Raises
    ``ExportError`` (unknown lot, no co-signed checkpoint covering it, ``out`` not empty) or a
    ``chain.ChainError``; ``out`` is then left as it was.
    """
    out = Path(out)
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not force)):
        raise ExportError(f"{out} exists and is not an empty directory (use --force)")
    policy_bytes = source.policy()
    policy = parse_policy(policy_bytes)
    latest_note = source.checkpoint()
    latest = policy.verify_checkpoint(latest_note)
    size = latest.checkpoint.size
    tree = _Tree()
    parsed: list[Entry] = []
    raw: dict[int, bytes] = {}
    marks = _marks(lot_id)
    for bundle in entry_bundles_for_size(size):
        for seq, data in enumerate(
            parse_entry_bundle(bundle, source.tile(bundle)), bundle.leaf_begin
        ):
            tree.append(data)
            if seq == 0 or any(mark in data for mark in marks):  # parse only candidates
                entry = parse_entry(data)
                parsed.append(entry)
                raw[entry.seq] = data
    if tree.size != size or tree.root() != latest.checkpoint.root:
        raise ProofError(f"the entries do not make the tree of checkpoint {size}")
    chosen = select_entries(parsed, lot_id, source.openings(0, size) if parsed else None)
    if not any(e.type == EntryType.LOT and e.body.get("lot") == lot_id for e in chosen):
        raise ExportError(f"the log has no lot {lot_id!r}")
    needed = max(e.seq for e in chosen) + 1
    reader = tree.reader(size)
    anchor_size = min(s for s in [*source.checkpoint_sizes(), size] if s >= needed)
    anchor_note = latest_note if anchor_size == size else source.checkpoint_at(anchor_size)
    anchor = policy.verify_checkpoint(anchor_note)
    if anchor.checkpoint.size != anchor_size or tree_root(anchor_size, reader) != (
        anchor.checkpoint.root
    ):
        raise ProofError(f"checkpoint {anchor_size} is not consistent with checkpoint {size}")
    segments = [
        e for e in chosen if e.type == EntryType.STREAM_SEGMENT and e.body.get("lot") == lot_id
    ]
    files = _recording_files(recordings, lot_id, segments, max_recording_bytes)
    summary = summarize(
        lot_id, chosen, policy, anchor, latest, {seq: name for seq, (_, name) in files.items()}
    )
    text, page = reports(summary, chosen)
    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        os.chmod(work, 0o755)
        for entry in chosen:
            receipt = make_receipt(
                entry.seq, inclusion_proof(entry.seq, anchor_size, reader), anchor_note
            )
            verify_receipt(receipt, raw[entry.seq], None, policy)
            _write(work / "entries" / f"{entry.seq}.entry", raw[entry.seq])
            _write(work / "entries" / f"{entry.seq}.tlog-proof", receipt)
        if chosen:  # the openings of the lot's sealed values (docs/ledger.md)
            found = source.openings(chosen[0].seq, chosen[-1].seq + 1)
            mine = {str(e.seq): found[e.seq] for e in chosen if e.seq in found}
            if mine:
                _write(work / "openings.json", canonical_json({"v": 1, "openings": mine}))
        proof = consistency_proof(anchor_size, size, reader)
        _write(work / "consistency", consistency_text(anchor_size, size, proof).encode())
        logs, notaries = keys_text(policy)
        _write(work / "keys" / "log.vkey", logs.encode())
        _write(work / "keys" / "notaries.vkeys", notaries.encode())
        _write(work / "policy", policy_bytes)
        _write(work / "checkpoint", anchor_note)
        _write(work / "latest-checkpoint", latest_note)
        for path, name in files.values():
            target = work / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target)
        _write(work / "manifest.json", manifest_bytes(summary))
        _write(work / "report.txt", text)
        _write(work / "report.html", page)
        if out.exists():
            shutil.rmtree(out)
        os.replace(work, out)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return EvidenceSummary(
        out,
        lot_id,
        len(chosen),
        anchor_size,
        size,
        len(segments),
        len(files),
        text.decode().count(" — entry "),
    )


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
