"""Frozen value objects that cross the seams of `streaming` (no I/O, no asyncio, no av).

The auction server feeds `OverlayState` into `StreamHub.update_overlay`; the hub reports
`ClosedSegment` to a `SegmentSink`; the auditor passes `ExpectedSegment`s to
`evidence.verify_recording`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from streaming.errors import ConfigurationError

LOT_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
GENESIS_SHA256 = "0" * 64
SHA256_HEX = re.compile(r"[0-9a-f]{64}")

MAX_TITLE = 120
MAX_SHORT_TEXT = 40


def is_valid_lot_id(lot_id: str) -> bool:
    """Lot ids become directory names of recordings, so they are restricted to a safe set."""
    return LOT_ID_PATTERN.fullmatch(lot_id) is not None


def check_lot_id(lot_id: str) -> str:
    if not is_valid_lot_id(lot_id):
        raise ConfigurationError(f"invalid lot id {lot_id!r}: use [A-Za-z0-9._-], at most 64")
    return lot_id


@dataclass(frozen=True, slots=True)
class Rendition:
    """One shared encoding of a lot: every viewer of the rendition receives the same packets.

    Bitrates are fixed and conservative: a shared encode cannot follow one viewer's
    congestion feedback, so a viewer on a weak link switches to a smaller rendition instead.
    """

    name: str
    width: int
    height: int
    bitrate: int
    fps: int = 30

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[0-9a-z]{1,16}", self.name):
            raise ConfigurationError(f"rendition name {self.name!r}: use [0-9a-z], at most 16")
        if self.width % 2 or self.height % 2 or not (16 <= self.width <= 3840):
            raise ConfigurationError(f"rendition {self.name}: even sizes 16..3840 required")
        if not (16 <= self.height <= 2160):
            raise ConfigurationError(f"rendition {self.name}: height 16..2160 required")
        if not (50_000 <= self.bitrate <= 20_000_000):
            raise ConfigurationError(f"rendition {self.name}: bitrate 50k..20M required")
        if not (1 <= self.fps <= 60):
            raise ConfigurationError(f"rendition {self.name}: fps 1..60 required")


R360P = Rendition("360p", 640, 360, 450_000)
R480P = Rendition("480p", 854, 480, 650_000)
R720P = Rendition("720p", 1280, 720, 1_300_000)
STANDARD_RENDITIONS = (R360P, R480P, R720P)


@dataclass(frozen=True, slots=True)
class OverlayState:
    """What the picture shows about the lot, as plain values from the auction side.

    `seq` is the lot's event sequence number (C14.4); it must not go backwards. `price_text`
    is already formatted for display ("£900,000"); `ask_minor` is the machine value that goes
    into the timed metadata. `ends_at_ms` (server UTC ms) drives the countdown, which the
    overlay re-renders once a second by itself: send a new state only when something changes.
    """

    seq: int
    server_ts_ms: int
    title: str
    price_text: str
    phase: str
    ask_minor: int | None = None
    leader_code: str | None = None
    ends_at_ms: int | None = None
    extended: bool = False

    def __post_init__(self) -> None:
        if self.seq < 0 or self.server_ts_ms < 0:
            raise ConfigurationError("seq and server_ts_ms must not be negative")
        if len(self.title) > MAX_TITLE:
            raise ConfigurationError(f"title longer than {MAX_TITLE} characters")
        for name in ("price_text", "phase"):
            if len(getattr(self, name)) > MAX_SHORT_TEXT:
                raise ConfigurationError(f"{name} longer than {MAX_SHORT_TEXT} characters")
        if self.leader_code is not None and len(self.leader_code) > MAX_SHORT_TEXT:
            raise ConfigurationError(f"leader_code longer than {MAX_SHORT_TEXT} characters")

    def time_left_s(self, now_ms: int) -> int | None:
        """Whole seconds left at `now_ms` (rounded up, never negative), None without a clock."""
        if self.ends_at_ms is None:
            return None
        return max(0, -(-(self.ends_at_ms - now_ms) // 1000))


def bidder_words(code: str) -> str:
    """A bidder's code as a viewer reads it: a sale-room bidder (`floor:<paddle>`) by paddle."""
    return f"paddle {code[6:]} in the room" if code.startswith("floor:") else code


def time_left_words(seconds: int) -> str:
    """`1:05` under an hour, `3:01:05` under a day, `59d 23h` beyond (a fixed-price sale)."""
    days, rest = divmod(seconds, 86_400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}:{minutes:02d}:{seconds:02d}"
    return f"{minutes}:{seconds:02d}"


def overlay_lines(state: OverlayState, now_ms: int) -> tuple[str, str]:
    """The two lines of the overlay banner at `now_ms` (pure; the renderer draws them)."""
    first = state.title
    parts = [state.price_text]
    if state.leader_code:
        parts.append(f"leader {bidder_words(state.leader_code)}")
    left = state.time_left_s(now_ms)
    if left is not None:
        parts.append(f"{time_left_words(left)} left")
    if state.extended:
        parts.append("EXTENDED")
    if state.phase:
        parts.append(state.phase)
    return first, "  ·  ".join(parts)


def metadata_message(
    lot_id: str, state: OverlayState, frame_ts_ms: int | None
) -> dict[str, object]:
    """The timed metadata of C14.4 `(lot_id, seq, ask, leader_code, phase, server_ts)`, plus
    `frame_ts`: the capture time (server ms) of the first video frame showing this state."""
    return {
        "type": "state",
        "lot_id": lot_id,
        "seq": state.seq,
        "ask": state.ask_minor,
        "leader_code": state.leader_code,
        "phase": state.phase,
        "server_ts": state.server_ts_ms,
        "frame_ts": frame_ts_ms,
        "price_text": state.price_text,
        "ends_at": state.ends_at_ms,
        "extended": state.extended,
    }


# --- sources --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TestPatternSource:
    """A synthetic moving picture (demo, tests, benchmark). `noise` is the amplitude of a
    sensor-like luma noise (0 makes encoding much cheaper than a real camera)."""

    __test__ = False  # not a pytest class
    width: int = 1280
    height: int = 720
    fps: int = 30
    noise: int = 1


@dataclass(frozen=True, slots=True)
class FileSource:
    """A video file, looped. `passthrough=True` forwards the file's own packets without
    decoding (VP8, or H.264 which is turned into Annex-B); no overlay can be burned in then.
    `passthrough=False` decodes once and encodes once per rendition, with the overlay."""

    path: Path
    passthrough: bool = False
    loop: bool = True


@dataclass(frozen=True, slots=True)
class CameraSource:
    """The lot waits for the auctioneer's console to publish; until then (and after the
    console leaves) the `fallback` picture is streamed."""

    fallback: TestPatternSource = field(default_factory=TestPatternSource)


@dataclass(frozen=True, slots=True)
class SlideshowSource:
    """A presentation: still pictures (PNG or JPEG bytes, any size; each is cropped to fill
    the picture) shown in turn for `seconds_per_slide`, each with a slow pan and zoom. What a
    property lot shows when nobody is in front of a camera. Cheap: 360p at 15 fps by default."""

    slides: tuple[bytes, ...]
    width: int = 640
    height: int = 360
    fps: int = 15
    seconds_per_slide: float = 6.0

    def __post_init__(self) -> None:
        if not self.slides:
            raise ConfigurationError("a slideshow needs at least one picture")
        if self.width % 2 or self.height % 2 or not (16 <= self.width <= 3840):
            raise ConfigurationError("slideshow: even sizes 16..3840 required")
        if not (1 <= self.fps <= 60) or self.seconds_per_slide <= 0:
            raise ConfigurationError("slideshow: fps 1..60 and a positive time per slide")


SourceSpec = TestPatternSource | FileSource | CameraSource | SlideshowSource

StreamPhase = Literal["declared", "live", "ended"]


# --- evidence ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ClosedSegment:
    """One finished evidence segment. The server turns it into a `stream_segment` ledger
    entry; `sha256_hex` covers the whole file, whose header embeds `prev_sha256_hex`.
    `started_us`/`ended_us` are server capture times (UTC µs); `start_pts`/`end_pts` the
    media times in the segment's time base (1/90000): where it begins and where the next
    segment begins (just after the last packet for the stream's last segment)."""

    lot_id: str
    rendition: str
    index: int
    sha256_hex: str
    prev_sha256_hex: str
    started_us: int
    ended_us: int
    path: Path
    packets: int
    size_bytes: int
    codec: str
    start_pts: int = 0
    end_pts: int = 0


@dataclass(frozen=True, slots=True)
class ExpectedSegment:
    """One `stream_segment` entry as read back from the ledger export."""

    index: int
    sha256_hex: str
    prev_sha256_hex: str

    def __post_init__(self) -> None:
        if self.index < 0:
            raise ConfigurationError("segment index must not be negative")
        for value in (self.sha256_hex, self.prev_sha256_hex):
            if not SHA256_HEX.fullmatch(value):
                raise ConfigurationError(f"not a lowercase SHA-256 hex digest: {value!r}")
