"""Settings of the streaming sub-application: plain values and the two seams the server
plugs in (who may publish, where evidence segments go)."""

from __future__ import annotations

from collections.abc import Awaitable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol

from streaming.errors import ConfigurationError
from streaming.model import R360P, R720P, Rendition

if TYPE_CHECKING:
    from streaming.recorder import SegmentSink


class PublisherAuthorizer(Protocol):
    """Decides whether a bearer token may publish the camera of a lot (the auctioneer's
    console). The auction server implements it with its session store."""

    def __call__(self, lot_id: str, token: str) -> Awaitable[bool]: ...


@dataclass(frozen=True, slots=True)
class IceServer:
    """A STUN or TURN server (RTCIceServer): `urls` like "stun:stun.example.org:3478" or
    "turn:turn.example.org:3478?transport=udp" with `username` and `credential`."""

    urls: tuple[str, ...]
    username: str | None = None
    credential: str | None = None


@dataclass(frozen=True, slots=True)
class StreamSettings:
    """Everything `create_stream_app` needs. Defaults suit a single small server; tests and the
    dev server set `loopback_only=True` and no ICE servers.

    * `renditions`: the shared encodes of every lot (viewers pick one with `?rendition=`).
    * `record_rendition`: which rendition is recorded as evidence (default: the largest).
      Recording happens only when both `recording_dir` and `segment_sink` are set.
    * `ice_servers`: STUN/TURN for real deployments. Empty means host candidates only; note
      that aiortc's own default (when given none) would be Google's public STUN server.
    * `client_ice_servers`: what browsers should use (returned by the status endpoint, which
      `player.js` reads when the page passes no `iceServers`); TURN credentials there should
      be short-lived.
    * `loopback_only`: gather and accept only 127.0.0.1 candidates (tests, benchmarks). It
      patches aioice process-wide while the app runs: never set it in production.
    * `encode_mode`: "shared" (one encode per rendition) or "per_viewer" (aiortc's default
      MediaRelay path, one encode per viewer; kept only to benchmark against).
    """

    renditions: tuple[Rendition, ...] = (R360P, R720P)
    default_rendition: str = "360p"
    record_rendition: str | None = None
    recording_dir: Path | None = None
    segment_sink: SegmentSink | None = None
    segment_seconds: float = 4.0
    ice_servers: tuple[IceServer, ...] = ()
    client_ice_servers: tuple[IceServer, ...] = ()
    loopback_only: bool = False
    publisher_authorizer: PublisherAuthorizer | None = None
    max_sdp_bytes: int = 64 * 1024
    max_viewers_per_lot: int = 1000
    #: Viewer sessions one client address may hold on one lot at once (beyond: 429).
    max_viewers_per_address: int = 4
    max_concurrent_negotiations: int = 32
    negotiation_timeout_s: float = 10.0
    connect_timeout_s: float = 20.0
    viewer_queue_packets: int = 30
    keyframe_min_interval_s: float = 0.5
    keyframe_overflow_interval_s: float = 1.0
    gop_seconds: float = 2.0
    clock_strip: bool = True
    encode_mode: Literal["shared", "per_viewer"] = "shared"

    def __post_init__(self) -> None:
        names = [r.name for r in self.renditions]
        if not names or len(set(names)) != len(names):
            raise ConfigurationError("renditions must be non-empty with unique names")
        if self.default_rendition not in names:
            raise ConfigurationError(f"default_rendition {self.default_rendition!r} not in {names}")
        if self.record_rendition is not None and self.record_rendition not in names:
            raise ConfigurationError(f"record_rendition {self.record_rendition!r} not in {names}")
        if not (1024 <= self.max_sdp_bytes <= 1024 * 1024):
            raise ConfigurationError("max_sdp_bytes must be within 1 KiB..1 MiB")
        if not (0 < self.keyframe_min_interval_s <= self.gop_seconds):
            raise ConfigurationError("0 < keyframe_min_interval_s <= gop_seconds")
        if self.keyframe_overflow_interval_s < self.keyframe_min_interval_s:
            raise ConfigurationError("keyframe_overflow_interval_s >= keyframe_min_interval_s")
        if self.segment_seconds <= 0:
            raise ConfigurationError("segment_seconds must be positive")
        if self.max_viewers_per_address < 1:
            raise ConfigurationError("max_viewers_per_address >= 1")
        if self.viewer_queue_packets < 2 or self.max_viewers_per_lot < 1:
            raise ConfigurationError("viewer_queue_packets >= 2 and max_viewers_per_lot >= 1")
        if self.encode_mode not in ("shared", "per_viewer"):
            raise ConfigurationError("encode_mode is 'shared' or 'per_viewer'")
