"""`LedgerSegmentSink`: each closed segment of a lot's recording becomes a `stream_segment`
entry, appended by one writer task so that the media path never waits for the database."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from chain import EntryType
from streaming.model import GENESIS_SHA256, ClosedSegment

from ..service import ServiceError
from ..storage import StorageError
from .segments import SegmentHeads, segment_body

__all__ = ["LedgerSegmentSink", "RecordEntry"]

logger = logging.getLogger(__name__)

RecordEntry = Callable[[EntryType, dict[str, Any]], Awaitable[int]]


class LedgerSegmentSink:
    """The hub's `SegmentSink`: each closed segment becomes a `stream_segment` entry.

    `segment_closed` only queues (bounded, never waits); one writer task appends the entries
    in order. A failed append is retried `retries` times; then (or when the queue is full)
    the segment is counted as not anchored and the lot's later segments are not appended
    either, so the lot's entries stay one unbroken chain that its recording verifies against.
    """

    def __init__(self, capacity: int, *, retries: int = 3, retry_seconds: float = 0.2) -> None:
        self._queue: asyncio.Queue[ClosedSegment] = asyncio.Queue(capacity)
        self._retries = retries
        self._retry_seconds = retry_seconds
        self._record: RecordEntry | None = None
        self._task: asyncio.Task[None] | None = None
        self.appended: list[int] = []
        self.failed = 0
        self.dropped = 0
        self.skipped = 0
        self.broken: set[tuple[str, str]] = set()
        self.heads: SegmentHeads = {}
        self._appending = 0

    @property
    def pending(self) -> int:
        """Closed segments waiting for their entry (queued or being appended)."""
        return self._queue.qsize() + self._appending

    def start(self, record: RecordEntry) -> None:
        """Start the writer; `record` appends one entry and returns its seq."""
        self._record = record
        self._task = asyncio.ensure_future(self._run())

    async def segment_closed(self, segment: ClosedSegment) -> None:
        try:
            self._queue.put_nowait(segment)
        except asyncio.QueueFull:
            self.dropped += 1
            self.broken.add((segment.lot_id, segment.rendition))
            logger.error(
                "ledger queue full: segment %d of lot %s is not anchored",
                segment.index,
                segment.lot_id,
            )

    async def flushed(self, timeout: float) -> bool:
        """Wait up to `timeout` seconds until every queued segment was appended (or given
        up); returns whether the queue is empty."""
        if self._task is None:
            return self._queue.empty()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._queue.join(), timeout)
        return self.pending == 0

    def resume(self, lot_id: str, rendition: str) -> tuple[int, str]:
        """Where the lot rendition's recording continues: the index after the last anchored
        segment and its digest. Anchoring starts again if it had stopped after a failure
        (call this only while the lot does not stream and after `flushed`)."""
        self.broken.discard((lot_id, rendition))
        head = self.heads.get((lot_id, rendition))
        return (head[0] + 1, head[1]) if head is not None else (0, GENESIS_SHA256)

    async def close(self, timeout: float) -> None:
        """Wait up to `timeout` seconds for the queued entries, then stop the writer."""
        if self._task is None:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._queue.join(), timeout)
        if self._queue.qsize():
            logger.error("%d stream segments not anchored at shutdown", self._queue.qsize())
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None

    async def _run(self) -> None:
        while True:
            segment = await self._queue.get()
            self._appending = 1
            try:
                await self._append(segment)
            finally:
                self._appending = 0
                self._queue.task_done()

    async def _append(self, segment: ClosedSegment) -> None:
        key = (segment.lot_id, segment.rendition)
        if key in self.broken:
            self.skipped += 1
            return
        assert self._record is not None
        body = segment_body(segment)
        for attempt in range(1, self._retries + 1):
            try:
                seq = await self._record(EntryType.STREAM_SEGMENT, body)
            except (ServiceError, StorageError) as exc:
                logger.warning(
                    "stream_segment %d of lot %s: append failed (try %d): %s",
                    segment.index,
                    segment.lot_id,
                    attempt,
                    exc,
                )
                if attempt < self._retries:
                    await asyncio.sleep(self._retry_seconds * attempt)
                continue
            except Exception:  # the store is foreign code: never let the writer die
                logger.exception("stream_segment %d of lot %s", segment.index, segment.lot_id)
                break
            self.appended.append(seq)
            self.heads[key] = (segment.index, segment.sha256_hex)
            return
        self.failed += 1
        self.broken.add(key)
        logger.error(
            "segment %d of lot %s is not anchored; later segments of the lot are not either",
            segment.index,
            segment.lot_id,
        )
