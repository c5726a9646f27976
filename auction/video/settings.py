"""How the server streams its lots (`VideoSettings`), and the streaming package's settings made
from them."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from streaming.model import Rendition, TestPatternSource
from streaming.recorder import SegmentSink
from streaming.settings import IceServer, StreamSettings

from .sources import PRESENTATION_360P

__all__ = ["VideoSettings", "largest_rendition"]

_DEFAULT_STREAM = StreamSettings()


def largest_rendition(renditions: tuple[Rendition, ...]) -> str:
    """The name of the rendition with the most pixels (the one recorded unless chosen)."""
    return max(renditions, key=lambda r: r.width * r.height).name


@dataclass(frozen=True, slots=True)
class VideoSettings:
    """How the server streams its lots.

    * `enabled`: False mounts nothing (offers then get 404 from the auction server).
    * `recordings_dir`: evidence segments go to `<recordings_dir>/<lot_id>/<rendition>/`.
    * `lots`: "all" streams every lot while it is open (a timed lot for its whole bidding
      window, a live sale's lot while in the ring); "live" only live sales' lots.
    * `presentation_renditions`: the encodes of every lot that is not a live sale's (360p at
      15 fps); its default source is its presentation (`auction.video.sources`).
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
        return largest_rendition(self.renditions)

    def stream_settings(self, sink: SegmentSink) -> StreamSettings:
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
