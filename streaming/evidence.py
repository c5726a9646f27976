"""Evidence recordings: the encoded packets that were streamed, in keyframe-aligned segment
files whose SHA-256 digests form a hash chain that the ledger records.

Segment file format, version 1 (all integers big-endian):

    b"GAVELSG1"                       magic
    u32 header_length, header         canonical JSON (sorted keys, no spaces):
                                      codec, height, index, lot_id, prev_sha256, rendition,
                                      time_base ("1/90000"), version (1), width
    records, until the end of file:
      b"P" u8 flags (bit 0: keyframe) i64 pts i64 capture_us u32 length, `length` bytes

`pts` is in the header's time base; `capture_us` is the server's UTC capture time. A segment
starts with a keyframe, so it decodes on its own. The header names the segment's index and
its predecessor's digest, so the file digest chains the segments (the ledger's
`stream_segment` entry records both). Nothing is re-encoded for the record: these are the
bytes every viewer was sent.

`SegmentChain` is the pure writer core (boundaries, framing, hashing); `recorder.py` writes
its chunks to files. `verify_recording` checks a directory against the ledger's list in a
numbered, fail-closed pipeline that raises a `RecordingError` naming the segment.
"""

from __future__ import annotations

import hashlib
import json
import re
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from streaming.errors import (
    ConfigurationError,
    ExpectedChainBroken,
    SegmentAltered,
    SegmentMalformed,
    SegmentMissing,
    SegmentOutOfOrder,
    UnexpectedSegment,
)
from streaming.model import GENESIS_SHA256, SHA256_HEX, ExpectedSegment

MAGIC = b"GAVELSG1"
FORMAT_VERSION = 1
TIME_BASE = "1/90000"
MAX_HEADER = 4096
MAX_PACKET = 16 * 1024 * 1024
RECORD = struct.Struct(">cBqqI")
RECORD_TAG = b"P"
FLAG_KEYFRAME = 1
SEGMENT_NAME = re.compile(r"seg-(\d{8})\.gvs")


def segment_file_name(index: int) -> str:
    return f"seg-{index:08d}.gvs"


@dataclass(frozen=True, slots=True)
class SegmentHeader:
    lot_id: str
    rendition: str
    index: int
    prev_sha256_hex: str
    codec: str
    width: int
    height: int

    def encode(self) -> bytes:
        document = {
            "codec": self.codec,
            "height": self.height,
            "index": self.index,
            "lot_id": self.lot_id,
            "prev_sha256": self.prev_sha256_hex,
            "rendition": self.rendition,
            "time_base": TIME_BASE,
            "version": FORMAT_VERSION,
            "width": self.width,
        }
        body = json.dumps(document, sort_keys=True, separators=(",", ":")).encode()
        return MAGIC + struct.pack(">I", len(body)) + body


@dataclass(frozen=True, slots=True)
class SegmentPacket:
    data: bytes
    pts: int
    capture_us: int
    keyframe: bool

    def encode(self) -> bytes:
        flags = FLAG_KEYFRAME if self.keyframe else 0
        return RECORD.pack(RECORD_TAG, flags, self.pts, self.capture_us, len(self.data)) + self.data


@dataclass(frozen=True, slots=True)
class FinishedSegment:
    index: int
    sha256_hex: str
    prev_sha256_hex: str
    started_us: int
    ended_us: int
    packets: int
    size_bytes: int
    start_pts: int = 0
    end_pts: int = 0


@dataclass(slots=True)
class ChainStep:
    """What the writer adapter must do for one packet, in this order: finish the open file
    (`close`), open a new file for `open_index`, write `chunks` to the open file."""

    close: FinishedSegment | None = None
    open_index: int | None = None
    chunks: list[bytes] = field(default_factory=list)


class SegmentChain:
    """Pure writer core: decides segment boundaries (a keyframe at least `segment_us` after
    the segment began), frames packets, hashes what is written and links the digests.

    Packets before the first keyframe are skipped (they cannot be decoded on their own).
    """

    def __init__(
        self,
        *,
        lot_id: str,
        rendition: str,
        codec: str,
        width: int,
        height: int,
        segment_us: int,
        first_index: int = 0,
        prev_sha256_hex: str = GENESIS_SHA256,
    ) -> None:
        if segment_us <= 0 or first_index < 0 or not SHA256_HEX.fullmatch(prev_sha256_hex):
            raise ConfigurationError("segment_us > 0, first_index >= 0, prev a SHA-256 hex")
        self._lot_id = lot_id
        self._rendition = rendition
        self._codec = codec
        self._width = width
        self._height = height
        self._segment_us = segment_us
        self.next_index = first_index
        self.prev_sha256_hex = prev_sha256_hex
        self._hash: hashlib._Hash | None = None
        self._started_us = 0
        self._last_us = 0
        self._first_pts = 0
        self._last_pts = 0
        self._packets = 0
        self._size = 0
        self.skipped = 0

    @property
    def open(self) -> bool:
        return self._hash is not None

    def add(self, packet: SegmentPacket) -> ChainStep:
        step = ChainStep()
        if packet.keyframe and (
            self._hash is None or packet.capture_us - self._started_us >= self._segment_us
        ):
            step.close = self._finish(ended_us=packet.capture_us, end_pts=packet.pts)
            header = SegmentHeader(
                lot_id=self._lot_id,
                rendition=self._rendition,
                index=self.next_index,
                prev_sha256_hex=self.prev_sha256_hex,
                codec=self._codec,
                width=self._width,
                height=self._height,
            ).encode()
            self._hash = hashlib.sha256(header)
            self._started_us = packet.capture_us
            self._first_pts = packet.pts
            self._packets = 0
            self._size = len(header)
            step.open_index = self.next_index
            step.chunks.append(header)
        if self._hash is None:
            self.skipped += 1
            return step
        record = packet.encode()
        self._hash.update(record)
        self._size += len(record)
        self._packets += 1
        self._last_us = packet.capture_us
        self._last_pts = packet.pts
        step.chunks.append(record)
        return step

    def finish(self, *, ended_us: int | None = None) -> FinishedSegment | None:
        """Close the open segment (at the end of the stream); None if none is open."""
        return self._finish(ended_us=ended_us)

    def _finish(
        self, *, ended_us: int | None, end_pts: int | None = None
    ) -> FinishedSegment | None:
        """`ended_us` / `end_pts`: where the next segment begins (capture time and media
        time); at the end of the stream, just after the last packet."""
        if self._hash is None:
            return None
        if ended_us is None:
            ended_us = self._last_us + 1
        if end_pts is None:
            end_pts = self._last_pts + 1
        finished = FinishedSegment(
            index=self.next_index,
            sha256_hex=self._hash.hexdigest(),
            prev_sha256_hex=self.prev_sha256_hex,
            started_us=self._started_us,
            ended_us=max(ended_us, self._last_us),
            packets=self._packets,
            size_bytes=self._size,
            start_pts=self._first_pts,
            end_pts=max(end_pts, self._last_pts),
        )
        self.prev_sha256_hex = finished.sha256_hex
        self.next_index += 1
        self._hash = None
        return finished


# --- reading --------------------------------------------------------------------------------


def parse_segment(data: bytes) -> tuple[SegmentHeader, list[SegmentPacket]]:
    """Parse one segment file. Bounded; raises only `SegmentMalformed` (index None: the
    caller knows which segment it asked about)."""
    if not data.startswith(MAGIC):
        raise SegmentMalformed("not a Gavel segment (bad magic)")
    offset = len(MAGIC)
    if len(data) < offset + 4:
        raise SegmentMalformed("truncated header length")
    (header_length,) = struct.unpack_from(">I", data, offset)
    offset += 4
    if header_length > MAX_HEADER or len(data) < offset + header_length:
        raise SegmentMalformed("header too long or truncated")
    try:
        document = json.loads(data[offset : offset + header_length].decode("utf-8"))
        header = SegmentHeader(
            lot_id=_str(document, "lot_id"),
            rendition=_str(document, "rendition"),
            index=_int(document, "index"),
            prev_sha256_hex=_str(document, "prev_sha256"),
            codec=_str(document, "codec"),
            width=_int(document, "width"),
            height=_int(document, "height"),
        )
        if document.get("version") != FORMAT_VERSION or document.get("time_base") != TIME_BASE:
            raise SegmentMalformed("unsupported segment version or time base")
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError, AttributeError) as exc:
        raise SegmentMalformed("header is not the expected JSON object") from exc
    offset += header_length
    packets: list[SegmentPacket] = []
    while offset < len(data):
        if len(data) < offset + RECORD.size:
            raise SegmentMalformed(f"truncated packet record at byte {offset}")
        tag, flags, pts, capture_us, length = RECORD.unpack_from(data, offset)
        if tag != RECORD_TAG or flags & ~FLAG_KEYFRAME or length > MAX_PACKET:
            raise SegmentMalformed(f"bad packet record at byte {offset}")
        offset += RECORD.size
        if len(data) < offset + length:
            raise SegmentMalformed(f"truncated packet data at byte {offset}")
        packets.append(
            SegmentPacket(
                data=data[offset : offset + length],
                pts=pts,
                capture_us=capture_us,
                keyframe=bool(flags & FLAG_KEYFRAME),
            )
        )
        offset += length
    if not packets or not packets[0].keyframe:
        raise SegmentMalformed("a segment must start with a keyframe")
    return header, packets


def _str(document: object, key: str) -> str:
    if not isinstance(document, dict) or not isinstance(document.get(key), str):
        raise SegmentMalformed(f"header field {key!r} missing or not a string")
    value: str = document[key]
    return value


def _int(document: object, key: str) -> int:
    if not isinstance(document, dict):
        raise SegmentMalformed("header is not an object")
    value = document.get(key)
    if not isinstance(value, int) or isinstance(value, bool):
        raise SegmentMalformed(f"header field {key!r} missing or not an integer")
    return value


# --- verification ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SegmentDigest:
    """What verification needs of one file: its name, digest, and parse outcome."""

    name: str
    sha256_hex: str
    header: SegmentHeader | None
    packets: int
    started_us: int
    ended_us: int
    size_bytes: int
    problem: str | None

    @classmethod
    def of(cls, name: str, data: bytes) -> SegmentDigest:
        digest = hashlib.sha256(data).hexdigest()
        try:
            header, packets = parse_segment(data)
        except SegmentMalformed as exc:
            return cls(name, digest, None, 0, 0, 0, len(data), str(exc))
        return cls(
            name,
            digest,
            header,
            len(packets),
            packets[0].capture_us,
            packets[-1].capture_us,
            len(data),
            _pts_problem(packets),
        )


def _pts_problem(packets: Sequence[SegmentPacket]) -> str | None:
    for before, after in zip(packets, packets[1:], strict=False):
        if after.pts < before.pts or after.capture_us < before.capture_us:
            return "packet timestamps go backwards"
    return None


@dataclass(frozen=True, slots=True)
class RecordingReport:
    """A verified recording: every segment the ledger lists, in order, byte for byte."""

    lot_id: str
    rendition: str
    codec: str
    segments: int
    packets: int
    first_index: int
    last_index: int
    head_sha256_hex: str
    started_us: int
    ended_us: int
    size_bytes: int

    def summary(self) -> str:
        seconds = (self.ended_us - self.started_us) / 1e6
        return (
            f"OK: lot {self.lot_id} rendition {self.rendition} ({self.codec}): "
            f"segments {self.first_index}..{self.last_index} ({self.segments}), "
            f"{self.packets} packets, {seconds:.1f} s, {self.size_bytes} bytes; "
            f"chain head {self.head_sha256_hex}"
        )


def verify_digests(
    digests: Sequence[SegmentDigest], expected: Sequence[ExpectedSegment]
) -> RecordingReport:
    """Check a recording (its files in playback order) against the ledger's list.

    1. The expected list is one chain: contiguous indices, each `prev` the digest before it,
       the first `prev` the genesis value when the index is 0.
    2. Position by position, the file digest is the expected digest. Otherwise: the expected
       digest elsewhere is a swap (`SegmentOutOfOrder`); a file holding a later segment while
       the expected one is nowhere is a cut (`SegmentMissing`); a digest the ledger never saw
       is an edit (`SegmentAltered`); files past the end are `UnexpectedSegment`.
    3. Every file is a well-formed segment that names its own index and predecessor, from
       one lot, rendition and codec, starting with a keyframe.
    Raises the first `RecordingError` found; returns the report only when all steps pass.
    """
    # 1. the ledger's list is one chain
    if not expected:
        raise ExpectedChainBroken("the ledger lists no segment for this recording")
    first = expected[0]
    if first.index == 0 and first.prev_sha256_hex != GENESIS_SHA256:
        raise ExpectedChainBroken("segment 0 must chain to the genesis value", index=0)
    for before, after in zip(expected, expected[1:], strict=False):
        if after.index != before.index + 1:
            raise ExpectedChainBroken(
                f"the ledger jumps from segment {before.index} to {after.index}",
                index=before.index + 1,
            )
        if after.prev_sha256_hex != before.sha256_hex:
            raise ExpectedChainBroken(
                f"segment {after.index} does not chain to segment {before.index}",
                index=after.index,
            )

    # 2. every position holds the segment the ledger lists there
    actual_position = {d.sha256_hex: position for position, d in enumerate(digests)}
    expected_index = {e.sha256_hex: e.index for e in expected}
    for position, wanted in enumerate(expected):
        if position >= len(digests):
            raise SegmentMissing(
                f"cut: segment {wanted.index} (and any after it) is missing; the recording "
                f"ends after {len(digests)} segment(s)",
                index=wanted.index,
            )
        found = digests[position]
        if found.sha256_hex == wanted.sha256_hex:
            continue
        elsewhere = actual_position.get(wanted.sha256_hex)
        if elsewhere is not None:
            raise SegmentOutOfOrder(
                f"swap: segment {wanted.index} is at position {elsewhere} "
                f"({digests[elsewhere].name}), not {position} ({found.name})",
                index=wanted.index,
                found_at=elsewhere,
            )
        if found.sha256_hex in expected_index:
            raise SegmentMissing(
                f"cut: segment {wanted.index} is missing ({found.name} at its place holds "
                f"segment {expected_index[found.sha256_hex]})",
                index=wanted.index,
            )
        raise SegmentAltered(
            f"edit: {found.name} at the place of segment {wanted.index} has SHA-256 "
            f"{found.sha256_hex}, the ledger recorded {wanted.sha256_hex}",
            index=wanted.index,
            expected=wanted.sha256_hex,
            actual=found.sha256_hex,
        )
    if len(digests) > len(expected):
        extra = digests[len(expected)]
        raise UnexpectedSegment(
            f"{extra.name} is not in the ledger (the ledger ends at segment {expected[-1].index})",
            index=expected[-1].index + 1,
        )

    # 3. every segment is well-formed and names its own place in the chain
    reference = digests[0].header
    for wanted, found in zip(expected, digests, strict=True):
        header = found.header
        if header is None or found.problem is not None:
            raise SegmentMalformed(
                f"segment {wanted.index} ({found.name}): {found.problem}", index=wanted.index
            )
        assert reference is not None
        if header.index != wanted.index or header.prev_sha256_hex != wanted.prev_sha256_hex:
            raise SegmentMalformed(
                f"segment {wanted.index} ({found.name}) names index {header.index} and a "
                "different predecessor",
                index=wanted.index,
            )
        if (header.lot_id, header.rendition, header.codec) != (
            reference.lot_id,
            reference.rendition,
            reference.codec,
        ):
            raise SegmentMalformed(
                f"segment {wanted.index} ({found.name}) is from another lot, rendition or codec",
                index=wanted.index,
            )
    assert reference is not None
    return RecordingReport(
        lot_id=reference.lot_id,
        rendition=reference.rendition,
        codec=reference.codec,
        segments=len(digests),
        packets=sum(d.packets for d in digests),
        first_index=expected[0].index,
        last_index=expected[-1].index,
        head_sha256_hex=expected[-1].sha256_hex,
        started_us=digests[0].started_us,
        ended_us=digests[-1].ended_us,
        size_bytes=sum(d.size_bytes for d in digests),
    )


def segment_files(recording_dir: Path) -> list[Path]:
    """The segment files of a recording directory, in playback (name) order."""
    return sorted(
        (p for p in recording_dir.iterdir() if SEGMENT_NAME.fullmatch(p.name) and p.is_file()),
        key=lambda p: p.name,
    )


def verify_recording(
    recording_dir: Path | str, expected: Iterable[ExpectedSegment]
) -> RecordingReport:
    """Verify a recording directory (one lot and rendition, `seg-NNNNNNNN.gvs` files) against
    the `stream_segment` entries of the ledger, given as `ExpectedSegment`s in index order.
    Reads each file once. Raises a `RecordingError` naming the segment at fault; on success,
    print or store the returned report."""
    directory = Path(recording_dir)
    try:
        paths = segment_files(directory)
        digests = [SegmentDigest.of(p.name, p.read_bytes()) for p in paths]
    except OSError as exc:
        raise SegmentMalformed(f"cannot read recording {directory}: {exc}") from exc
    return verify_digests(digests, list(expected))


def expected_from_json(document: object) -> list[ExpectedSegment]:
    """Read `[{"index", "sha256", "prev_sha256"}, ...]` (also what `JsonlSegmentSink` writes,
    one object per line). Raises `ExpectedChainBroken` on anything else."""
    if not isinstance(document, list):
        raise ExpectedChainBroken("expected a JSON list of segments")
    out: list[ExpectedSegment] = []
    for item in document:
        try:
            out.append(
                ExpectedSegment(
                    index=int(item["index"]),
                    sha256_hex=str(item["sha256"]),
                    prev_sha256_hex=str(item["prev_sha256"]),
                )
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ExpectedChainBroken(f"not a segment entry: {item!r:.80}") from exc
    return sorted(out, key=lambda e: e.index)
