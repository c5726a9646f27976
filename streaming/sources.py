"""Media sources of a lot: what the shared encoders (or the passthrough fan-out) consume.

* `PatternSource`: a synthetic moving picture, paced by the clock (demo, tests, benchmark).
* `DecodedFileSource`: a file decoded once (so the overlay can be burned in), paced by pts.
* `CameraFeed`: frames of the auctioneer's camera, decoded once by aiortc's receiver.
* `PassthroughFileSource`: a file's own VP8 or H.264 packets, never decoded; MP4/MOV H.264
  goes through the `h264_mp4toannexb` bitstream filter, because aiortc's H.264 packetizer
  splits on Annex-B start codes and silently sends nothing for AVCC (aiortc #747).

Frame sources return `(frame, capture_us)`: a yuv420p `av.VideoFrame` made for this call
(never shared with anyone else, so the pipeline may draw into it) and the server UTC time.
"""

from __future__ import annotations

import asyncio
import fractions
import time
from pathlib import Path
from typing import Any, Protocol

import av
import av.bitstream
import numpy as np
import numpy.typing as npt
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from streaming.errors import SourceError
from streaming.overlay import plane_view

VIDEO_TIME_BASE = fractions.Fraction(1, 90000)
PASSTHROUGH_CODECS = {"h264": "H264", "vp8": "VP8"}


def wall_clock_us() -> int:
    return time.time_ns() // 1000


class FrameSource(Protocol):
    async def next_frame(self) -> tuple[av.VideoFrame, int]:
        """The next frame to show and its capture time (server UTC µs). Raises
        `MediaStreamError` when the source has ended."""
        ...

    def close(self) -> None: ...


class Pacer:
    """Sleeps until the next tick of a fixed frame rate, skipping ticks it is late for."""

    def __init__(self, fps: int) -> None:
        self._interval = 1.0 / fps
        self._start: float | None = None
        self._tick = 0

    async def wait(self) -> None:
        now = time.monotonic()
        if self._start is None:
            self._start = now
            return
        self._tick += 1
        due = self._start + self._tick * self._interval
        if now > due + self._interval:  # late by more than a frame: skip to the present
            self._tick = int((now - self._start) / self._interval) + 1
            due = self._start + self._tick * self._interval
        await asyncio.sleep(max(0.0, due - now))


class PatternSource:
    """A slowly panning backdrop with a box moving across it, like a room camera with a
    moving auctioneer: cheap to draw (numpy slicing) and not unrealistically cheap to encode."""

    def __init__(self, width: int, height: int, fps: int, *, noise: int = 3) -> None:
        self.width, self.height, self.fps = width, height, fps
        self._pacer = Pacer(fps)
        self._frame_index = 0
        period = 256
        ys, xs = np.mgrid[0:height, 0 : width + period]
        self._luma: npt.NDArray[np.uint8] = (
            48 + ((xs + ys // 2) % period) * 150 // period + ((ys // 40 + xs // 40) % 2) * 24
        ).astype(np.uint8)
        cys, cxs = np.mgrid[0 : height // 2, 0 : (width + period) // 2]
        self._u: npt.NDArray[np.uint8] = (96 + (cxs * 64 // (width // 2 + 1))).astype(np.uint8)
        self._v: npt.NDArray[np.uint8] = (160 - (cys * 64 // (height // 2 + 1))).astype(np.uint8)
        self._period = period
        # Sensor-like noise (a real camera is never clean; it is what makes encoding cost).
        generator = np.random.default_rng(7)
        self._noise: list[npt.NDArray[np.uint8]] = [
            generator.integers(0, 2 * noise + 1, size=(height, width), dtype=np.uint8)
            for _ in range(8 if noise else 0)
        ]
        self._luma = np.clip(self._luma.astype(np.int16) - noise, 0, 255 - 2 * noise).astype(
            np.uint8
        )

    async def next_frame(self) -> tuple[av.VideoFrame, int]:
        await self._pacer.wait()
        return self.render(self._frame_index), wall_clock_us()

    def render(self, index: int) -> av.VideoFrame:
        self._frame_index = index + 1
        width, height = self.width, self.height
        frame = av.VideoFrame(width, height, "yuv420p")
        offset = (index // 30 * 2) % self._period  # the backdrop pans slowly, like a camera
        y, u, v = (
            plane_view(p, width=p.width, height=p.height, line_size=p.line_size)
            for p in frame.planes
        )
        if self._noise:
            np.add(self._luma[:, offset : offset + width], self._noise[index % 8], out=y)
        else:
            y[:] = self._luma[:, offset : offset + width]
        u[:] = self._u[:, offset // 2 : offset // 2 + width // 2]
        v[:] = self._v[:, offset // 2 : offset // 2 + width // 2]
        size = height // 5
        x0 = (index * 7) % max(1, width - size)
        y0 = height // 2 - size // 2 + int(height / 6 * np.sin(index / 15))
        y[y0 : y0 + size, x0 : x0 + size] = 220
        u[y0 // 2 : (y0 + size) // 2, x0 // 2 : (x0 + size) // 2] = 64
        return frame

    def close(self) -> None:
        return None


class CameraFeed:
    """Frames of a remote (published) video track, decoded once by aiortc's receiver."""

    def __init__(
        self,
        track: MediaStreamTrack,
        *,
        first_frame: av.VideoFrame | None = None,
        stall_timeout_s: float = 2.0,
    ) -> None:
        self.track = track
        self._first = first_frame
        self._timeout = stall_timeout_s

    async def next_frame(self) -> tuple[av.VideoFrame, int]:
        frame: object
        if self._first is not None:
            frame, self._first = self._first, None
        else:
            try:
                frame = await asyncio.wait_for(self.track.recv(), self._timeout)
            except TimeoutError as exc:
                raise MediaStreamError("the camera sent no frame in time") from exc
        if not isinstance(frame, av.VideoFrame):
            raise MediaStreamError("the camera track did not return video frames")
        if frame.format.name != "yuv420p":
            frame = frame.reformat(format="yuv420p")
        return frame, wall_clock_us()

    def close(self) -> None:
        self.track.stop()


def _open(path: Path) -> av.container.InputContainer:
    try:
        container = av.open(str(path))
    except (OSError, av.error.FFmpegError) as exc:
        raise SourceError(f"cannot open video file {path}: {exc}") from exc
    if not container.streams.video:
        container.close()
        raise SourceError(f"{path} has no video stream")
    return container


class DecodedFileSource:
    """A file decoded once (in the default executor), looped, paced by its timestamps."""

    def __init__(self, path: Path, *, loop: bool = True) -> None:
        self.path = path
        self._loop = loop
        self._container = _open(path)
        stream = self._container.streams.video[0]
        self.width = stream.codec_context.width
        self.height = stream.codec_context.height
        self._frames = self._container.decode(stream)
        self._origin: float | None = None
        self._offset_s = 0.0
        self._last_s = 0.0

    def _read(self) -> av.VideoFrame | None:
        try:
            return next(self._frames)
        except StopIteration:
            if not self._loop:
                return None
            self._container.seek(0)
            self._frames = self._container.decode(self._container.streams.video[0])
            return next(self._frames, None)
        except av.error.FFmpegError as exc:
            raise SourceError(f"cannot decode {self.path}: {exc}") from exc

    async def next_frame(self) -> tuple[av.VideoFrame, int]:
        frame = await asyncio.get_running_loop().run_in_executor(None, self._read)
        if frame is None:
            raise MediaStreamError("end of file")
        media_s = float(frame.time or 0.0)
        if media_s + self._offset_s < self._last_s:  # looped: continue the timeline
            self._offset_s = self._last_s + 1 / 30 - media_s
        position = media_s + self._offset_s
        self._last_s = position
        now = time.monotonic()
        if self._origin is None or now - (self._origin + position) > 1.0:
            self._origin = now - position  # first frame, or read again after a pause
        await asyncio.sleep(max(0.0, self._origin + position - now))
        if frame.format.name != "yuv420p":
            frame = frame.reformat(format="yuv420p")
        return frame, wall_clock_us()

    def close(self) -> None:
        self._container.close()


class PassthroughFileSource:
    """A file's encoded packets, forwarded without decoding. Only VP8 and H.264 without
    B-frames (Baseline / Constrained Baseline) can go to browsers untouched; anything else
    raises `SourceError` (use `FileSource(passthrough=False)`, which decodes once)."""

    def __init__(self, path: Path, *, loop: bool = True) -> None:
        self.path = path
        self._loop = loop
        self._container = _open(path)
        self._stream = self._container.streams.video[0]
        context = self._stream.codec_context
        name = context.name
        if name not in PASSTHROUGH_CODECS:
            self._container.close()
            raise SourceError(f"{path}: {name} cannot be passed through; only VP8 and H.264")
        self.codec = PASSTHROUGH_CODECS[name]
        self.width = context.width
        self.height = context.height
        if self.codec == "H264" and (context.has_b_frames or "High" in (context.profile or "")):
            self._container.close()
            raise SourceError(
                f"{path}: H.264 {context.profile} with B-frames cannot be passed through"
            )
        self._filter: av.bitstream.BitStreamFilterContext | None = None
        if self.codec == "H264" and self._container.format.name.split(",")[0] in {
            "mov",
            "mp4",
            "m4a",
            "3gp",
            "matroska",
        }:
            self._filter = av.bitstream.BitStreamFilterContext("h264_mp4toannexb", self._stream)
        self._pending: list[av.Packet[Any]] = []
        self._demuxer = self._container.demux(self._stream)
        self._time_base = self._stream.time_base or fractions.Fraction(1, 90000)
        self._origin: float | None = None
        self._offset_90k = 0
        self._last_90k = -1

    def _read(self) -> av.Packet[Any] | None:
        while not self._pending:
            try:
                packet = next(self._demuxer)
            except StopIteration:
                if not self._loop:
                    return None
                self._container.seek(0)
                self._demuxer = self._container.demux(self._stream)
                continue
            except av.error.FFmpegError as exc:
                raise SourceError(f"cannot read {self.path}: {exc}") from exc
            if packet.size == 0 or packet.pts is None:
                continue  # the demuxer's flush packet at the end of a pass
            self._pending = self._filter.filter(packet) if self._filter else [packet]
        return self._pending.pop(0)

    async def next_packet(self) -> tuple[av.Packet[Any], int]:
        """The next packet (pts in 1/90000, time_base set: what aiortc's `pack` reads) and
        its send time (server UTC µs), paced by the file's timestamps."""
        packet = await asyncio.get_running_loop().run_in_executor(None, self._read)
        if packet is None:
            raise MediaStreamError("end of file")
        assert packet.pts is not None
        pts = int(packet.pts * self._time_base / VIDEO_TIME_BASE)
        if pts + self._offset_90k <= self._last_90k:  # looped: continue the timeline
            self._offset_90k = self._last_90k + 3000 - pts
        pts += self._offset_90k
        self._last_90k = pts
        packet.pts = pts
        packet.dts = pts
        packet.time_base = VIDEO_TIME_BASE
        now = time.monotonic()
        if self._origin is None:
            self._origin = now - pts / 90000
        await asyncio.sleep(max(0.0, self._origin + pts / 90000 - now))
        return packet, wall_clock_us()

    def close(self) -> None:
        self._container.close()
