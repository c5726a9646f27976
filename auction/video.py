"""Live video of the lots: the streaming package wired to the auction service and the ledger.

`install_video(app, service_key, settings)` is the one entry point; the composition root calls
it right after the cleanup context that starts the service. It

* mounts the streaming sub-application (`/stream/static/player.js`) and its signaling routes
  (`POST /api/lots/{lot_id}/stream/offer`, `GET /api/lots/{lot_id}/stream`, ...);
* adds one cleanup context that starts the stream hub, then a `LotVideo` driver: one
  `service.subscribe()` task that opens a lot's stream (the synthetic test pattern) while the
  lot is open (`LIVE_AUCTIONEER` lots only, or every lot), burns the lot's state into the
  picture, and closes the stream a short tail after the lot closed;
* records the streamed packets of one rendition as evidence segments under
  `<recordings_dir>/<lot_id>/<rendition>/` and appends each finished segment to the ledger as a
  house-signed `stream_segment` entry (`LedgerSegmentSink`: a bounded queue and one writer
  task, so the media path never waits for the database).

At shutdown the cleanup runs before the service stops: the driver stops, every lot's last
segment is closed and its entry written (bounded by `VideoSettings.drain_seconds`), then the
service stops.

The decisions (which lot streams, what the picture says, what an entry holds, which entries a
recording is checked against) are pure functions and the `VideoDirector` state machine; the
classes below them are adapters.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

from aiohttp import web

from chain import EntryType, format_time, parse_entry
from streaming.app import HUB, mount_streaming
from streaming.errors import RecordingError, SegmentMalformed, SourceError
from streaming.evidence import (
    TIME_BASE,
    RecordingReport,
    SegmentDigest,
    parse_segment,
    segment_files,
    verify_digests,
)
from streaming.hub import StreamHub
from streaming.model import (
    GENESIS_SHA256,
    MAX_SHORT_TEXT,
    MAX_TITLE,
    SHA256_HEX,
    ClosedSegment,
    ExpectedSegment,
    OverlayState,
    Rendition,
    TestPatternSource,
    is_valid_lot_id,
)
from streaming.settings import IceServer, StreamSettings

from .presentation import LotFacts, facts_of
from .rules import Format
from .service import AuctionService, LotView, ServiceError, Subscription
from .storage import StorageError
from .video_sources import (
    PRESENTATION_360P,
    LotSources,
    SourceChoice,
    SourceChoiceError,
    default_choice,
)
from .words import lot_state_words

logger = logging.getLogger(__name__)

#: Version of the `stream_segment` entry body.
SEGMENT_BODY_VERSION = 1

#: Lot statuses during which a lot's stream runs (rules C11: a paused lot keeps its picture).
STREAMING_STATUSES = frozenset({"OPEN", "PAUSED", "SUSPENDED"})

#: Minor-unit digits of currencies that do not have two (ISO 4217).
CURRENCY_DIGITS = {"JPY": 0, "KRW": 0, "VND": 0, "CLP": 0, "ISK": 0, "BHD": 3, "KWD": 3}
CURRENCY_SYMBOLS = {"GBP": "£", "USD": "$", "EUR": "€", "CNY": "¥", "JPY": "¥"}

_DEFAULT_STREAM = StreamSettings()

__all__ = [
    "SEGMENT_BODY_VERSION",
    "VIDEO",
    "LedgerSegmentSink",
    "LotVideo",
    "StreamAudit",
    "Video",
    "VideoDirector",
    "VideoSettings",
    "expected_segments",
    "format_price",
    "install_video",
    "overlay_for",
    "segment_body",
    "verify_stream",
    "wants_stream",
]


# --- settings --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class VideoSettings:
    """How the server streams its lots.

    * `enabled`: False mounts nothing (offers then get 404 from the auction server).
    * `recordings_dir`: evidence segments go to `<recordings_dir>/<lot_id>/<rendition>/`.
    * `lots`: "all" streams every lot while it is open (a timed lot for its whole bidding
      window, a live sale's lot while in the ring); "live" only live sales' lots.
    * `presentation_renditions`: the encodes of every lot that is not a live sale's (360p at
      15 fps); its default source is its presentation (`auction.video_sources`).
    * `media_dir`: the video files the console may choose, and where uploads go (None:
      `media` beside `recordings_dir`); `max_upload_bytes`: the largest upload.
    * `record`: record every streaming lot's largest rendition as evidence (a property lot's
      360p at 15 fps: what its bidders saw, at the rate they saw it).
    * `renditions`, `default_rendition`, `record_rendition` (None: the largest),
      `segment_seconds`, `gop_seconds`, `keyframe_min_interval_s`: the streaming package's
      defaults unless set.
    * `ice_servers` / `client_ice_servers`: STUN/TURN for the server and for browsers.
      `loopback_only`: 127.0.0.1 candidates only (tests; patches aioice process-wide).
    * `close_tail_seconds`: how long a closed lot's picture (its result) stays on air.
    * `ledger_queue`: closed segments waiting for their ledger entry, at most; beyond that a
      segment is not anchored (logged and counted). `ledger_retries`: tries per entry.
    * `drain_seconds`: at shutdown, how long to wait for the last entries.
    """

    enabled: bool = True
    recordings_dir: Path = Path("gavel-data") / "recordings"
    lots: Literal["live", "all"] = "all"
    presentation_renditions: tuple[Rendition, ...] = (PRESENTATION_360P,)
    media_dir: Path | None = None
    max_upload_bytes: int = 64 * 1024 * 1024
    record: bool = True
    pattern: TestPatternSource = field(default_factory=TestPatternSource)
    renditions: tuple[Rendition, ...] = _DEFAULT_STREAM.renditions
    default_rendition: str = _DEFAULT_STREAM.default_rendition
    record_rendition: str | None = None
    segment_seconds: float = _DEFAULT_STREAM.segment_seconds
    gop_seconds: float = _DEFAULT_STREAM.gop_seconds
    keyframe_min_interval_s: float = _DEFAULT_STREAM.keyframe_min_interval_s
    ice_servers: tuple[IceServer, ...] = ()
    client_ice_servers: tuple[IceServer, ...] = ()
    loopback_only: bool = False
    close_tail_seconds: float = 3.0
    ledger_queue: int = 256
    ledger_retries: int = 3
    ledger_retry_seconds: float = 0.2
    drain_seconds: float = 10.0
    #: Viewer sessions one client address may hold on one lot at once (beyond: 429).
    max_viewers_per_address: int = _DEFAULT_STREAM.max_viewers_per_address

    def __post_init__(self) -> None:
        if self.lots not in ("live", "all"):
            raise ValueError("lots is 'live' or 'all'")
        if self.close_tail_seconds < 0 or self.drain_seconds < 0:
            raise ValueError("close_tail_seconds and drain_seconds must not be negative")
        if self.ledger_queue < 1 or self.ledger_retries < 1:
            raise ValueError("ledger_queue and ledger_retries must be at least 1")

    @property
    def media_directory(self) -> Path:
        if self.media_dir is not None:
            return self.media_dir
        return self.recordings_dir.parent / "media"

    @property
    def recorded_rendition(self) -> str:
        """The rendition whose packets are recorded (what the streaming pipeline picks)."""
        if self.record_rendition is not None:
            return self.record_rendition
        return max(self.renditions, key=lambda r: r.width * r.height).name

    def stream_settings(self, sink: LedgerSegmentSink) -> StreamSettings:
        """The streaming package's settings, recording into `sink`."""
        return StreamSettings(
            renditions=self.renditions,
            default_rendition=self.default_rendition,
            record_rendition=self.record_rendition,
            recording_dir=self.recordings_dir,
            segment_sink=sink,
            segment_seconds=self.segment_seconds,
            gop_seconds=self.gop_seconds,
            keyframe_min_interval_s=self.keyframe_min_interval_s,
            keyframe_overflow_interval_s=max(
                _DEFAULT_STREAM.keyframe_overflow_interval_s, self.keyframe_min_interval_s
            ),
            ice_servers=self.ice_servers,
            client_ice_servers=self.client_ice_servers,
            loopback_only=self.loopback_only,
            max_viewers_per_address=self.max_viewers_per_address,
        )


# --- pure core: what streams, what the picture says ------------------------------------------


def recorded_rendition(renditions: tuple[Rendition, ...], settings: VideoSettings) -> str:
    """Which of a lot's renditions is recorded: the settings' choice for lots that use the
    settings' renditions, otherwise the largest (what the hub's pipeline does)."""
    if renditions == settings.renditions:
        return settings.recorded_rendition
    return max(renditions, key=lambda r: r.width * r.height).name


def wants_stream(view: LotView, lots: Literal["live", "all"]) -> bool:
    """Whether the lot's stream should run now."""
    if not is_valid_lot_id(view.lot_id):
        return False
    if lots == "live" and view.format != Format.LIVE_AUCTIONEER.value:
        return False
    return view.status in STREAMING_STATUSES


def streamable(view: LotView, lots: Literal["live", "all"]) -> bool:
    """Whether the lot ever streams under `lots` (its offers then get 409 until it does)."""
    if not is_valid_lot_id(view.lot_id):
        return False
    return lots == "all" or view.format == Format.LIVE_AUCTIONEER.value


def format_price(amount: int, currency: str) -> str:
    """`800000, "GBP"` → `"£8,000.00"`; unknown symbols: `"CHF 8,000.00"`."""
    digits = CURRENCY_DIGITS.get(currency, 2)
    whole, fraction = divmod(amount, 10**digits)
    text = f"{whole:,}" + (f".{fraction:0{digits}d}" if digits else "")
    symbol = CURRENCY_SYMBOLS.get(currency)
    return f"{symbol}{text}" if symbol else f"{currency} {text}"


def _phase_text(view: LotView) -> str:
    """The lot's state in words, as the lot room says it ("Open", "In the ring", "Sold")."""
    return lot_state_words(view.status, view.phase, view.result)


def overlay_for(view: LotView, *, now_us: int, scheduled_end_us: int | None) -> OverlayState:
    """What the picture shows for `view`: the title, the price (or the opening price), the
    leader's bidder code, the time left to the server's end time (timed lots while open), an
    EXTENDED marker once the end moved past `scheduled_end_us`, and the phase."""
    if view.price is not None:
        price_text = format_price(view.price, view.currency)
    else:
        price_text = "start " + format_price(view.start_price, view.currency)
    timed = view.format != Format.LIVE_AUCTIONEER.value
    ends_at_ms = view.end // 1000 if timed and view.status in STREAMING_STATUSES else None
    extended = timed and scheduled_end_us is not None and view.end > scheduled_end_us
    leader = view.leader_code[:MAX_SHORT_TEXT] if view.leader_code else None
    return OverlayState(
        seq=view.seq,
        server_ts_ms=now_us // 1000,
        title=view.title[:MAX_TITLE],
        price_text=price_text[:MAX_SHORT_TEXT],
        phase=_phase_text(view)[:MAX_SHORT_TEXT],
        ask_minor=view.min_next if view.status in STREAMING_STATUSES else None,
        leader_code=leader,
        ends_at_ms=ends_at_ms,
        extended=extended,
    )


@dataclass(frozen=True, slots=True)
class DeclareStream:
    lot_id: str


@dataclass(frozen=True, slots=True)
class StartStream:
    lot_id: str
    overlay: OverlayState


@dataclass(frozen=True, slots=True)
class ShowState:
    lot_id: str
    overlay: OverlayState


@dataclass(frozen=True, slots=True)
class StopStreamLater:
    """Close the stream after the tail (the picture keeps the final state until then)."""

    lot_id: str


@dataclass(frozen=True, slots=True)
class KeepStream:
    """The lot is open again before its tail ended: cancel the pending close."""

    lot_id: str


VideoAction = DeclareStream | StartStream | ShowState | StopStreamLater | KeepStream


class VideoDirector:
    """Which lot streams, as a state machine over lot views (no I/O, no clock).

    Per lot: unknown → (declared) → live ⇄ ending → unknown again once the adapter reports
    `stream_stopped`. Feed every view with `observe`; carry out the returned actions in order.
    """

    def __init__(self, lots: Literal["live", "all"]) -> None:
        self._lots = lots
        self._declared: set[str] = set()
        self._streams: dict[str, Literal["live", "ending"]] = {}

    def observe(
        self, view: LotView, *, now_us: int, scheduled_end_us: int | None
    ) -> list[VideoAction]:
        lot_id = view.lot_id
        if not streamable(view, self._lots):
            return []
        actions: list[VideoAction] = []
        if lot_id not in self._declared:
            self._declared.add(lot_id)
            actions.append(DeclareStream(lot_id))
        wanted = wants_stream(view, self._lots)
        overlay = overlay_for(view, now_us=now_us, scheduled_end_us=scheduled_end_us)
        stream = self._streams.get(lot_id)
        if stream is None:
            if wanted:
                self._streams[lot_id] = "live"
                actions.append(StartStream(lot_id, overlay))
            return actions
        if stream == "ending" and wanted:
            self._streams[lot_id] = "live"
            actions.append(KeepStream(lot_id))
        actions.append(ShowState(lot_id, overlay))
        if stream == "live" and not wanted:
            self._streams[lot_id] = "ending"
            actions.append(StopStreamLater(lot_id))
        return actions

    def stream_stopped(self, lot_id: str) -> None:
        """The adapter closed the lot's stream (after its tail)."""
        self._streams.pop(lot_id, None)

    def streaming(self, lot_id: str) -> bool:
        return lot_id in self._streams


# --- pure core: ledger entries ---------------------------------------------------------------


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


# --- adapters --------------------------------------------------------------------------------


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


class LotVideo:
    """Drives the hub from the service's lot updates. `await start()` after the service and
    the hub started; `await stop()` before they stop."""

    def __init__(
        self,
        service: AuctionService,
        hub: StreamHub,
        sink: LedgerSegmentSink,
        settings: VideoSettings,
        facts_for: Callable[[object], LotFacts] = facts_of,
    ) -> None:
        self.service = service
        self.hub = hub
        self.sink = sink
        self.settings = settings
        self.director = VideoDirector(settings.lots)
        self.sources = LotSources(
            facts_for=facts_for,
            media_dir=settings.media_directory,
            pattern=settings.pattern,
            live_renditions=settings.renditions,
            presentation_renditions=settings.presentation_renditions,
        )
        self._subscription: Subscription | None = None
        self._task: asyncio.Task[None] | None = None
        self._tails: dict[str, asyncio.Task[None]] = {}
        self._closing: set[asyncio.Task[None]] = set()
        self._lock = asyncio.Lock()

    async def start(self) -> None:
        ledger = self.service.ledger
        if isinstance(ledger, LedgerEntries):  # where each lot's evidence chain continues
            heads = await self.service.read(read_segment_heads, ledger)
            self.sink.heads = {**heads, **self.sink.heads}
        self._subscription = self.service.subscribe()
        views = self.service.views()
        await asyncio.to_thread(self._draw_presentations, views)  # every lot's, at start-up
        for view in views:
            await self._observe(view)
        self._task = asyncio.ensure_future(self._run(self._subscription))

    async def stop(self) -> None:
        """Stop following the lots and close every stream (its last segment included)."""
        if self._subscription is not None:
            self.service.unsubscribe(self._subscription)
            self._subscription = None
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        for task in list(self._tails.values()):
            task.cancel()
        await asyncio.gather(*self._tails.values(), return_exceptions=True)
        await asyncio.gather(*self._closing, return_exceptions=True)
        await self.hub.close()

    def _draw_presentations(self, views: Sequence[LotView]) -> None:
        for view in views:
            if streamable(view, self.settings.lots) and (
                view.status in STREAMING_STATUSES or view.status == "SCHEDULED"
            ):
                self.sources.prepare(view)

    async def set_source(self, lot_id: str, choice: SourceChoice) -> None:
        """Make `choice` the lot's source; a streaming lot shows it from its first frame on.
        Raises `SourceChoiceError` (no such file) or `SourceError` (a file that cannot be
        decoded), having changed nothing."""
        view = self.service.view(lot_id)
        if view is None:
            raise LookupError(lot_id)
        spec = await asyncio.to_thread(self.sources.spec, view, choice)
        async with self._lock:
            if self.hub.lot(lot_id) is not None:
                self.hub.switch_source(lot_id, spec)
            self.sources.choose(lot_id, choice)

    async def _run(self, subscription: Subscription) -> None:
        async for updates in subscription:
            for update in updates:
                try:
                    await self._observe(update.view)
                except asyncio.CancelledError:
                    raise
                except Exception:  # one lot's stream must not stop the others'
                    logger.exception("video of lot %s", update.lot_id)

    def _scheduled_end(self, lot_id: str) -> int | None:
        state = self.service.state(lot_id)
        return state.rules.end_at if state is not None else None

    async def _observe(self, view: LotView) -> None:
        if not self.service.leads(view.lot_id):
            return  # several instances: the lot's writer streams and records it
        async with self._lock:
            actions = self.director.observe(
                view,
                now_us=self.service.now(),
                scheduled_end_us=self._scheduled_end(view.lot_id),
            )
            for action in actions:
                await self._carry_out(action)

    async def _carry_out(self, action: VideoAction) -> None:
        hub = self.hub
        if isinstance(action, DeclareStream):
            hub.declare_lot(action.lot_id)
        elif isinstance(action, StartStream):
            view = self.service.view(action.lot_id)
            format_value = view.format if view is not None else Format.LIVE_AUCTIONEER.value
            renditions = self.sources.renditions(format_value)
            rendition = recorded_rendition(renditions, self.settings)
            directory = self.settings.recordings_dir / action.lot_id / rendition
            await self.sink.flushed(self.settings.drain_seconds)
            index, prev = self.sink.resume(action.lot_id, rendition)
            aside = await asyncio.to_thread(set_aside_unanchored, directory, index)
            if aside is not None:
                logger.warning("segments of %s not in the ledger moved to %s", action.lot_id, aside)
            try:  # the presentation drawn again: the lot's pictures may have changed
                spec = await asyncio.to_thread(self.sources.spec, view, None, fresh=True)
            except (SourceChoiceError, SourceError) as exc:  # the file went away meanwhile
                logger.warning("lot %s: its video source cannot be used: %s", action.lot_id, exc)
                spec = await asyncio.to_thread(
                    self.sources.spec, view, default_choice(format_value)
                )
            hub.open_lot(
                action.lot_id,
                spec,
                action.overlay,
                first_segment_index=index,
                prev_segment_sha256_hex=prev,
                renditions=renditions,
                record=self.settings.record,
            )
        elif isinstance(action, ShowState):
            hub.update_overlay(action.lot_id, action.overlay)
        elif isinstance(action, StopStreamLater):
            self._tails[action.lot_id] = asyncio.ensure_future(self._tail(action.lot_id))
        else:
            tail = self._tails.pop(action.lot_id, None)
            if tail is not None:
                tail.cancel()

    async def _tail(self, lot_id: str) -> None:
        await asyncio.sleep(self.settings.close_tail_seconds)
        self._tails.pop(lot_id, None)
        closing = asyncio.ensure_future(self._close(lot_id))
        self._closing.add(closing)
        closing.add_done_callback(self._closing.discard)
        await asyncio.shield(closing)

    async def _close(self, lot_id: str) -> None:
        await self.hub.close_lot(lot_id)
        async with self._lock:
            self.director.stream_stopped(lot_id)
        view = self.service.view(lot_id)
        if view is not None and self._task is not None:  # opened again meanwhile
            await self._observe(view)


class Video:
    """What `install_video` keeps on the app: the hub, the ledger sink, and (while the app
    runs) the driver."""

    def __init__(self, hub: StreamHub, sink: LedgerSegmentSink, settings: VideoSettings) -> None:
        self.hub = hub
        self.sink = sink
        self.settings = settings
        self.driver: LotVideo | None = None
        #: What a lot's presentation is drawn from (blocking; set by the composition root to
        #: read the lot's stored facts and pictures).
        self.facts_for: Callable[[object], LotFacts] = facts_of


VIDEO = web.AppKey("video", Video)


StaffCheck = Callable[[str], Awaitable[bool | None]]
"""Whether a bearer token is a staff session that may run the lots' video (an auctioneer's):
None when the token is no valid session at all."""


def install_video(
    app: web.Application,
    service_key: web.AppKey[AuctionService],
    settings: VideoSettings,
    staff: StaffCheck | None = None,
) -> None:
    """Mount the streaming sub-application on `app` and follow the service's lots. Call it
    right after the cleanup context that sets `app[service_key]` (the video's cleanup then
    runs before the service stops). With `staff`, a staff token may publish a lot's camera
    (`POST /api/lots/{lot}/stream/publish`; the console's source routes are
    `auction.web.video_api`). With `settings.enabled` False it does nothing."""
    if not settings.enabled:
        return
    sink = LedgerSegmentSink(
        settings.ledger_queue,
        retries=settings.ledger_retries,
        retry_seconds=settings.ledger_retry_seconds,
    )
    stream_settings = settings.stream_settings(sink)
    if staff is not None:
        check = staff

        async def publisher(lot_id: str, token: str) -> bool:
            return bool(await check(token))

        stream_settings = dataclasses.replace(stream_settings, publisher_authorizer=publisher)
    stream_app = mount_streaming(app, stream_settings, manage_hub=False)
    app[VIDEO] = Video(stream_app[HUB], sink, settings)

    async def video_context(app: web.Application) -> AsyncIterator[None]:
        video = app[VIDEO]
        service = app[service_key]
        video.sink.start(service.record)
        await video.hub.start()
        driver = LotVideo(service, video.hub, video.sink, video.settings, video.facts_for)
        try:
            await driver.start()
        except BaseException:
            await driver.stop()
            await video.sink.close(video.settings.drain_seconds)
            raise
        video.driver = driver
        yield
        video.driver = None
        await driver.stop()
        await video.sink.close(video.settings.drain_seconds)

    app.cleanup_ctx.append(video_context)
