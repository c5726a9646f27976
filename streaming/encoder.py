"""The shared encode: one libvpx (VP8) context per lot rendition, fed once per frame.

Every viewer of the rendition is sent the very `av.Packet` objects this produces (aiortc's
`RTCRtpSender` only packetizes a `Packet`, it encodes only a `Frame`: `_next_encoded_frame`
in aiortc/rtcrtpsender.py). Bitrates are fixed (CBR) and conservative: the receivers' REMB
feedback cannot steer an encoder shared by hundreds of viewers.
"""

from __future__ import annotations

import fractions
from dataclasses import dataclass
from typing import Any

import av
from av.video.reformatter import VideoReformatter

from streaming.model import OverlayState, Rendition
from streaming.overlay import OverlayRenderer, plane_view
from streaming.packetizer import Payloads
from streaming.sources import VIDEO_TIME_BASE

KEYFRAME_MAX_DISTANCE = 100_000  # keyframes are decided by KeyframePolicy, not by libvpx


@dataclass(frozen=True, slots=True)
class EncodedPacket:
    """One encoded frame of a rendition, shared read-only by every viewer and the recorder."""

    packet: av.Packet[Any]
    data: bytes
    keyframe: bool
    pts: int
    capture_us: int
    payloads: Payloads | None = None


class Vp8Encoder:
    """libvpx in real-time CBR mode with aiortc's settings (codecs/vpx.py), except that the
    bitrate is fixed and keyframes come only when asked for."""

    def __init__(self, rendition: Rendition, *, threads: int = 1) -> None:
        self.rendition = rendition
        self._threads = threads
        self._context: av.video.codeccontext.VideoCodecContext | None = None

    def _open(self) -> av.video.codeccontext.VideoCodecContext:
        rendition = self.rendition
        context = av.CodecContext.create("libvpx", "w")
        assert isinstance(context, av.video.codeccontext.VideoCodecContext)
        context.width = rendition.width
        context.height = rendition.height
        context.bit_rate = rendition.bitrate
        context.pix_fmt = "yuv420p"
        context.time_base = VIDEO_TIME_BASE
        context.framerate = fractions.Fraction(rendition.fps, 1)
        context.gop_size = KEYFRAME_MAX_DISTANCE
        context.qmin = 2
        context.qmax = 56
        context.thread_count = self._threads
        context.options = {
            "bufsize": str(rendition.bitrate),
            "cpu-used": "-6",
            "deadline": "realtime",
            "lag-in-frames": "0",
            "minrate": str(rendition.bitrate),
            "maxrate": str(rendition.bitrate),
            "noise-sensitivity": "4",
            "overshoot-pct": "15",
            "partitions": "0",
            "static-thresh": "1",
            "undershoot-pct": "100",
        }
        return context

    def encode(
        self, frame: av.VideoFrame, *, pts: int, capture_us: int, keyframe: bool
    ) -> list[EncodedPacket]:
        """Encode one frame of this rendition's size (pts in 1/90000). Blocking: call it from
        the executor."""
        if self._context is None:
            self._context = self._open()
        frame.pts = pts
        frame.time_base = VIDEO_TIME_BASE
        frame.pict_type = (
            av.video.frame.PictureType.I if keyframe else av.video.frame.PictureType.NONE
        )
        out: list[EncodedPacket] = []
        for packet in self._context.encode(frame):
            packet.pts = pts
            packet.dts = pts
            packet.time_base = VIDEO_TIME_BASE
            out.append(
                EncodedPacket(
                    packet=packet,
                    data=bytes(packet),
                    keyframe=packet.is_keyframe,
                    pts=pts,
                    capture_us=capture_us,
                )
            )
        return out

    def close(self) -> None:
        self._context = None


class FrameProcessor:
    """Per frame: burn in the overlay once (at source size), scale once per rendition, and
    either encode (shared mode) or hand out the scaled frames (per-viewer mode). Used from one
    executor job at a time, so its caches need no lock."""

    def __init__(
        self, renditions: tuple[Rendition, ...], *, encode: bool, clock_strip: bool
    ) -> None:
        self.renditions = renditions
        self._encoders = {r.name: Vp8Encoder(r) for r in renditions} if encode else {}
        self._clock_strip = clock_strip
        self._renderers: dict[tuple[int, int], OverlayRenderer] = {}
        # One scaler per rendition, kept across frames: `frame.reformat` makes a new one per
        # source frame, and setting one up costs as much as the scaling itself (and ~55
        # small allocations per frame, which fragment the C heap of a long-running server).
        self._scalers = {r.name: VideoReformatter() for r in renditions}

    def needs_aspect_fit(self, frame: av.VideoFrame) -> bool:
        target = self.renditions[0].width / self.renditions[0].height
        return abs(frame.width / frame.height - target) / target > 0.02

    def fit_aspect(self, frame: av.VideoFrame) -> av.VideoFrame:
        """Centre-crop a frame whose aspect ratio differs from the renditions' (a 4:3 camera
        for 16:9 renditions), so scaling does not stretch it. Blocking; cheap plane copies."""
        if not self.needs_aspect_fit(frame):
            return frame
        target = self.renditions[0].width / self.renditions[0].height
        width, height = frame.width, frame.height
        if width / height > target:
            new_width, new_height = int(height * target) // 2 * 2, height
        else:
            new_width, new_height = width, int(width / target) // 2 * 2
        left = (width - new_width) // 4 * 2
        top = (height - new_height) // 4 * 2
        cropped = av.VideoFrame(new_width, new_height, "yuv420p")
        for plane_index, (source, target_plane) in enumerate(
            zip(frame.planes, cropped.planes, strict=True)
        ):
            shift = 0 if plane_index == 0 else 1
            source_view = plane_view(
                source, width=source.width, height=source.height, line_size=source.line_size
            )
            target_view = plane_view(
                target_plane,
                width=target_plane.width,
                height=target_plane.height,
                line_size=target_plane.line_size,
            )
            target_view[:] = source_view[
                top >> shift : (top >> shift) + target_plane.height,
                left >> shift : (left >> shift) + target_plane.width,
            ]
        return cropped

    def burn_in(self, frame: av.VideoFrame, state: OverlayState | None, capture_ms: int) -> None:
        key = (frame.width, frame.height)
        renderer = self._renderers.get(key)
        if renderer is None:
            self._renderers.clear()
            renderer = OverlayRenderer(frame.width, frame.height, clock_strip=self._clock_strip)
            self._renderers[key] = renderer
        y, u, v = (
            plane_view(p, width=p.width, height=p.height, line_size=p.line_size)
            for p in frame.planes
        )
        renderer.apply(y, u, v, state, capture_ms)

    def scaled(self, frame: av.VideoFrame, rendition: Rendition) -> av.VideoFrame:
        if frame.width == rendition.width and frame.height == rendition.height:
            return frame
        return self._scalers[rendition.name].reformat(
            frame,
            width=rendition.width,
            height=rendition.height,
            format="yuv420p",
            interpolation="BILINEAR",
        )

    def encode_rendition(
        self,
        frame: av.VideoFrame,
        rendition: Rendition,
        *,
        pts: int,
        capture_us: int,
        keyframe: bool,
    ) -> list[EncodedPacket]:
        """Scale the (already overlaid) frame to `rendition` and encode it. Blocking."""
        scaled = self.scaled(frame, rendition)
        return self._encoders[rendition.name].encode(
            scaled, pts=pts, capture_us=capture_us, keyframe=keyframe
        )

    def frames(
        self, frame: av.VideoFrame, *, state: OverlayState | None, pts: int, capture_us: int
    ) -> dict[str, av.VideoFrame]:
        """Per-viewer (aiortc default) mode: overlaid, scaled frames that every viewer's own
        encoder will encode again."""
        self.burn_in(frame, state, capture_us // 1000)
        out: dict[str, av.VideoFrame] = {}
        for rendition in self.renditions:
            scaled = self.scaled(frame, rendition)
            if scaled is frame and len(self.renditions) > 1:
                scaled = self._scalers[rendition.name].reformat(
                    frame, format="yuv420p", width=frame.width
                )
            scaled.pts = pts
            scaled.time_base = VIDEO_TIME_BASE
            out[rendition.name] = scaled
        return out

    def close(self) -> None:
        for encoder in self._encoders.values():
            encoder.close()
