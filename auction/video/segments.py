"""The lots' video in the ledger: the body of a `stream_segment` entry, the chain heads the
ledger anchored, and a recording checked against the entries (pure or blocking, no asyncio)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from chain import EntryType, format_time, parse_entry
from streaming.errors import RecordingError, SegmentMalformed
from streaming.evidence import (
    TIME_BASE,
    RecordingReport,
    SegmentDigest,
    parse_segment,
    segment_files,
    verify_digests,
)
from streaming.model import SHA256_HEX, ClosedSegment, ExpectedSegment

__all__ = [
    "SEGMENT_BODY_VERSION",
    "LedgerEntries",
    "SegmentHeads",
    "StreamAudit",
    "expected_segments",
    "read_segment_heads",
    "segment_body",
    "segment_heads",
    "set_aside_unanchored",
    "verify_stream",
]

#: Version of the `stream_segment` entry body.
SEGMENT_BODY_VERSION = 1


def segment_body(segment: ClosedSegment) -> dict[str, Any]:
    """The body of the `stream_segment` entry for one closed segment: which lot and rendition,
    its place in the lot's segment chain (`index`, `prev`), the file's SHA-256, its media
    times (`media_start`/`media_end` in `time_base`) and server capture times, its size. No
    personal data: the picture's bidder codes are not repeated here."""
    return {
        "v": SEGMENT_BODY_VERSION,
        "lot": segment.lot_id,
        "rendition": segment.rendition,
        "codec": segment.codec,
        "index": segment.index,
        "sha256": segment.sha256_hex,
        "prev": segment.prev_sha256_hex,
        "time_base": TIME_BASE,
        "media_start": segment.start_pts,
        "media_end": segment.end_pts,
        "start": format_time(segment.started_us),
        "end": format_time(segment.ended_us),
        "bytes": segment.size_bytes,
        "packets": segment.packets,
    }


def expected_segments(
    bodies: Iterable[Mapping[str, Any]], lot_id: str, rendition: str
) -> list[ExpectedSegment]:
    """The `stream_segment` bodies (in log order) of `lot_id`/`rendition`, as what a recording
    must hold. A body of that lot that is not well-formed raises `RecordingError`."""
    out: list[ExpectedSegment] = []
    for body in bodies:
        if body.get("lot") != lot_id or body.get("rendition") != rendition:
            continue
        index, digest, prev = body.get("index"), body.get("sha256"), body.get("prev")
        if (
            not isinstance(index, int)
            or isinstance(index, bool)
            or index < 0
            or not isinstance(digest, str)
            or not isinstance(prev, str)
            or not SHA256_HEX.fullmatch(digest)
            or not SHA256_HEX.fullmatch(prev)
        ):
            raise RecordingError(
                f"a stream_segment entry of lot {lot_id} is malformed: {body!r:.120}"
            )
        out.append(ExpectedSegment(index=index, sha256_hex=digest, prev_sha256_hex=prev))
    return out


@dataclass(frozen=True, slots=True)
class StreamAudit:
    """A recording that matches the ledger: `report` covers the anchored segments;
    `unanchored` names files after the ledger's last segment (their entries never landed:
    they prove nothing, but do not cast doubt on what did land)."""

    report: RecordingReport
    unanchored: tuple[str, ...]

    def summary(self) -> str:
        text = self.report.summary()
        if self.unanchored:
            text += (
                f"\n  note: {len(self.unanchored)} later segment file(s) have no ledger entry "
                f"(not anchored): {', '.join(self.unanchored)}"
            )
        return text


def recording_identity(recording_dir: Path) -> tuple[str, str] | None:
    """`(lot_id, rendition)` from the header of the first segment file, if any parses."""
    for path in segment_files(recording_dir):
        try:
            header, _ = parse_segment(path.read_bytes())
        except (OSError, SegmentMalformed):
            continue
        return header.lot_id, header.rendition
    return None


def verify_stream(
    recording_dir: Path,
    bodies: Sequence[Mapping[str, Any]],
    *,
    lot_id: str | None = None,
    rendition: str | None = None,
) -> StreamAudit:
    """Check a recording directory against the `stream_segment` entry bodies of a verified
    ledger (in log order). The lot and rendition default to the first segment's header.
    Raises `RecordingError` naming the first bad segment (cut, swap, edit, malformed)."""
    if lot_id is None or rendition is None:
        identity = recording_identity(recording_dir)
        if identity is None:
            raise RecordingError(
                f"{recording_dir} holds no readable segment: name the lot with --lot"
            )
        lot_id = lot_id or identity[0]
        rendition = rendition or identity[1]
    expected = expected_segments(bodies, lot_id, rendition)
    try:
        digests = [SegmentDigest.of(p.name, p.read_bytes()) for p in segment_files(recording_dir)]
    except OSError as exc:
        raise SegmentMalformed(f"cannot read recording {recording_dir}: {exc}") from exc
    anchored, tail = digests[: len(expected)], digests[len(expected) :]
    report = verify_digests(anchored, expected)
    if report.lot_id != lot_id or report.rendition != rendition:
        raise SegmentMalformed(
            f"the recording is of {report.lot_id}/{report.rendition}, not {lot_id}/{rendition}"
        )
    return StreamAudit(report, tuple(d.name for d in tail))


SegmentHeads = dict[tuple[str, str], tuple[int, str]]
"""Per `(lot, rendition)`: the index and digest of the last segment the ledger anchored."""


def segment_heads(entries: Iterable[bytes]) -> SegmentHeads:
    """The anchored chain head of every lot rendition, from ledger entry bytes in log order
    (pure; entries that are not `stream_segment` are skipped without being parsed)."""
    heads: SegmentHeads = {}
    for raw in entries:
        if b'"stream_segment"' not in raw:
            continue
        entry = parse_entry(raw)
        if entry.type != EntryType.STREAM_SEGMENT:
            continue
        body = entry.body
        lot, rendition = body.get("lot"), body.get("rendition")
        index, digest = body.get("index"), body.get("sha256")
        if (
            isinstance(lot, str)
            and isinstance(rendition, str)
            and isinstance(index, int)
            and isinstance(digest, str)
        ):
            heads[(lot, rendition)] = (index, digest)
    return heads


@runtime_checkable
class LedgerEntries(Protocol):
    """The store's raw entry reads (`auction.storage.Storage`); blocking."""

    def ledger_size(self) -> int: ...

    def ledger_entries(self, begin: int, end: int) -> list[bytes]: ...


def read_segment_heads(store: LedgerEntries, chunk: int = 4096) -> SegmentHeads:
    """`segment_heads` of the whole stored ledger. Blocking: run it on a reader thread."""
    size = store.ledger_size()
    heads: SegmentHeads = {}
    for begin in range(0, size, chunk):
        heads.update(segment_heads(store.ledger_entries(begin, min(size, begin + chunk))))
    return heads


def set_aside_unanchored(directory: Path, first_index: int) -> Path | None:
    """Move the segment files of `directory` that the ledger does not anchor (index at or
    after `first_index`, or unreadable: a segment cut short by a crash) to a sibling
    directory `<name>.unanchored-<n>`, so that the recording continues with `first_index`
    and verifies. Returns where they went (None: nothing to move). Blocking."""
    if not directory.is_dir():
        return None
    moving: list[Path] = []
    for path in segment_files(directory):
        try:
            header, _ = parse_segment(path.read_bytes())
        except SegmentMalformed:
            moving.append(path)
            continue
        if header.index >= first_index:
            moving.append(path)
    if not moving:
        return None
    number = 1
    while (aside := directory.with_name(f"{directory.name}.unanchored-{number}")).exists():
        number += 1
    aside.mkdir(parents=True)
    for path in moving:
        path.rename(aside / path.name)
    return aside
