"""Writes the evidence segments of one lot rendition to files and reports each closed segment
to the `SegmentSink` (the server turns it into a `stream_segment` ledger entry).

The pure `SegmentChain` decides boundaries and hashes; this adapter only opens, writes and
closes files. Writes are small buffered appends on the event loop; the flush + fsync of a
finished segment runs in the default executor, and sinks are called strictly in index order.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from pathlib import Path
from typing import BinaryIO, Protocol

from streaming.evidence import FinishedSegment, SegmentChain, SegmentPacket, segment_file_name
from streaming.model import GENESIS_SHA256, ClosedSegment

log = logging.getLogger(__name__)


class SegmentSink(Protocol):
    """Receives every closed evidence segment, in index order, exactly once. The auction
    server implements it by appending a `stream_segment` ledger entry chained to the lot's
    previous segment (`prev_sha256_hex`). An exception is logged and does not stop the
    stream; the recording on disk stays verifiable once the entry is written later."""

    async def segment_closed(self, segment: ClosedSegment) -> None: ...


class MemorySegmentSink:
    """Keeps closed segments in a list (tests and tools)."""

    def __init__(self) -> None:
        self.segments: list[ClosedSegment] = []

    async def segment_closed(self, segment: ClosedSegment) -> None:
        self.segments.append(segment)


class JsonlSegmentSink:
    """Appends one JSON object per closed segment to a file (the dev server's stand-in for the
    ledger; `python -m streaming.audit` reads it back as the expected list)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    async def segment_closed(self, segment: ClosedSegment) -> None:
        line = json.dumps(
            {
                "lot_id": segment.lot_id,
                "rendition": segment.rendition,
                "index": segment.index,
                "sha256": segment.sha256_hex,
                "prev_sha256": segment.prev_sha256_hex,
                "started_us": segment.started_us,
                "ended_us": segment.ended_us,
                "path": str(segment.path),
                "packets": segment.packets,
                "size_bytes": segment.size_bytes,
                "codec": segment.codec,
                "start_pts": segment.start_pts,
                "end_pts": segment.end_pts,
            },
            sort_keys=True,
        )
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(line + "\n")


def _flush_and_close(handle: BinaryIO) -> None:
    try:
        handle.flush()
        os.fsync(handle.fileno())
    finally:
        handle.close()


class SegmentRecorder:
    """Records the packets of one rendition of one lot. Call `write` for every packet the
    viewers are sent (from the fan-out, never dropping) and `await close()` when the stream
    ends; `close` finishes the last segment and waits until every sink call returned."""

    def __init__(
        self,
        *,
        directory: Path,
        lot_id: str,
        rendition: str,
        codec: str,
        width: int,
        height: int,
        segment_us: int,
        sink: SegmentSink,
        first_index: int = 0,
        prev_sha256_hex: str = GENESIS_SHA256,
    ) -> None:
        self.directory = directory
        self._lot_id = lot_id
        self._rendition = rendition
        self._codec = codec
        self._sink = sink
        self._chain = SegmentChain(
            lot_id=lot_id,
            rendition=rendition,
            codec=codec,
            width=width,
            height=height,
            segment_us=segment_us,
            first_index=first_index,
            prev_sha256_hex=prev_sha256_hex,
        )
        self._handle: BinaryIO | None = None
        self._path: Path | None = None
        self._tail: asyncio.Task[None] | None = None
        self.failed: str | None = None
        self.closed_segments = 0
        directory.mkdir(parents=True, exist_ok=True)

    @property
    def wants_keyframe(self) -> bool:
        """True until the first segment is open (the encoder should send a keyframe)."""
        return not self._chain.open

    def write(self, packet: SegmentPacket) -> None:
        if self.failed is not None:
            return
        try:
            step = self._chain.add(packet)
            if step.close is not None:
                self._hand_over(step.close)
            if step.open_index is not None:
                self._path = self.directory / segment_file_name(step.open_index)
                self._handle = self._path.open("xb", buffering=256 * 1024)
            if self._handle is not None:
                for chunk in step.chunks:
                    self._handle.write(chunk)
        except OSError as exc:
            self.failed = f"{type(exc).__name__}: {exc}"
            log.error("recording of %s/%s stopped: %s", self._lot_id, self._rendition, exc)

    def _hand_over(self, finished: FinishedSegment) -> None:
        handle, path = self._handle, self._path
        self._handle = None
        if handle is None or path is None:
            return
        previous = self._tail
        self._tail = asyncio.ensure_future(self._finalize(previous, handle, path, finished))

    async def _finalize(
        self,
        previous: asyncio.Task[None] | None,
        handle: BinaryIO,
        path: Path,
        finished: FinishedSegment,
    ) -> None:
        if previous is not None:
            await asyncio.wait([previous])  # in order; its own failure is logged by itself
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(None, _flush_and_close, handle)
        except OSError as exc:  # not reported: the segment may not be on disk
            self.failed = f"{type(exc).__name__}: {exc}"
            log.error("segment %d of %s not saved: %s", finished.index, self._lot_id, exc)
            return
        segment = ClosedSegment(
            lot_id=self._lot_id,
            rendition=self._rendition,
            index=finished.index,
            sha256_hex=finished.sha256_hex,
            prev_sha256_hex=finished.prev_sha256_hex,
            started_us=finished.started_us,
            ended_us=finished.ended_us,
            path=path,
            packets=finished.packets,
            size_bytes=finished.size_bytes,
            codec=self._codec,
            start_pts=finished.start_pts,
            end_pts=finished.end_pts,
        )
        try:
            await self._sink.segment_closed(segment)
        except Exception:  # the sink is foreign code; the stream must go on
            log.exception("segment sink failed for %s segment %d", self._lot_id, finished.index)
        self.closed_segments += 1

    async def close(self) -> None:
        finished = self._chain.finish()
        if finished is not None and self.failed is None:
            self._hand_over(finished)
        elif self._handle is not None:
            self._handle.close()
            self._handle = None
        if self._tail is not None:
            await self._tail
