"""One live lot: its source, its shared encoders (one per rendition), the fan-out to viewer
tracks (`streaming.feeds`), the evidence recorder and the timed-metadata channels.

Concurrency: one task per lot (owned here, cancelled and awaited by `stop`) reads the source,
runs the blocking overlay, scaling and encoding on the lot's own worker thread, and pushes the
packets to every viewer's bounded queue without awaiting anything: a slow viewer only loses
its own packets (and then waits for a keyframe), it never delays the lot or the other viewers.
The lot's own thread (rather than the default executor) means a frame's jobs never queue
behind the server's database reads or the other way round, and the megabytes of frame buffers
allocated and freed per second all come from one C-allocator arena instead of being spread
over every executor thread's arena (which a long-running server keeps and fragments).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import json
import logging
from collections.abc import Callable
from pathlib import Path

import av
from aiortc import RTCDataChannel
from aiortc.contrib.media import MediaRelay
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from streaming.encoder import EncodedPacket, FrameProcessor
from streaming.errors import ConfigurationError
from streaming.fanout import KeyframePolicy
from streaming.feeds import LatestFrameTrack, RenditionFeed, ViewerTrack, rendition_info
from streaming.model import (
    GENESIS_SHA256,
    CameraSource,
    FileSource,
    OverlayState,
    SlideshowSource,
    SourceSpec,
    TestPatternSource,
    metadata_message,
)
from streaming.recorder import SegmentRecorder
from streaming.settings import StreamSettings
from streaming.signaling import parse_channel_message
from streaming.slideshow import SlideshowFrames
from streaming.sources import (
    CameraFeed,
    DecodedFileSource,
    FrameSource,
    PassthroughFileSource,
    PatternSource,
)

log = logging.getLogger(__name__)

METADATA_CHANNEL = "gavel-meta"
CHANNEL_BUFFER_LIMIT = 64 * 1024
PASSTHROUGH_RENDITION = "source"


class LotStream:
    """A live lot. Create, `start()`, feed `update_overlay`, `await stop()`.

    Encoding follows demand: a rendition is encoded only for frames that a viewer or the
    recorder takes (its first frame after a pause is a keyframe), and a lot that nobody
    watches and that is not recorded does not even read its source (except a published
    camera, whose frames are read and dropped so that they do not pile up). `record=False`
    streams without an evidence recording."""

    def __init__(
        self,
        lot_id: str,
        spec: SourceSpec,
        settings: StreamSettings,
        *,
        first_segment_index: int = 0,
        prev_segment_sha256_hex: str = GENESIS_SHA256,
        record: bool = True,
    ) -> None:
        self.lot_id = lot_id
        self.spec = spec
        self._settings = settings
        self._state: OverlayState | None = None
        self._announced: tuple[OverlayState, int] | None = None
        self.channels: set[RTCDataChannel] = set()
        self._task: asyncio.Task[None] | None = None
        self._camera: CameraFeed | None = None
        self._next_camera: CameraFeed | None = None
        self.frames_out = 0
        self.frames_encoded = 0  # frames encoded in at least one rendition
        self._demand = asyncio.Event()
        self._next_fallback: FrameSource | None = None
        self.failed: str | None = None
        self._first_capture_us: int | None = None
        self._last_pts = -1
        self.frame_tracks: dict[str, LatestFrameTrack] = {}
        self.relay: MediaRelay | None = None
        self.feeds: dict[str, RenditionFeed] = {}
        self._passthrough: PassthroughFileSource | None = None
        self._fallback: FrameSource | None = None
        self._processor: FrameProcessor | None = None
        self._worker: concurrent.futures.ThreadPoolExecutor | None = None
        self.shared = settings.encode_mode == "shared"
        renditions = settings.renditions
        self._encode_order = sorted(renditions, key=lambda r: r.width * r.height)
        if isinstance(spec, FileSource) and spec.passthrough:
            source = PassthroughFileSource(spec.path, loop=spec.loop)
            self._passthrough = source
            self.codec = source.codec
            self.overlay = False
            self.feeds[PASSTHROUGH_RENDITION] = RenditionFeed(
                name=PASSTHROUGH_RENDITION,
                codec=source.codec,
                width=source.width,
                height=source.height,
                keyframes=None,
            )
            self.default_rendition = PASSTHROUGH_RENDITION
            record_name: str | None = PASSTHROUGH_RENDITION
        else:
            self.codec = "VP8"
            self.overlay = True
            self._fallback = _frame_source(spec)
            self._processor = FrameProcessor(
                renditions, encode=self.shared, clock_strip=settings.clock_strip
            )
            for rendition in renditions:
                self.feeds[rendition.name] = RenditionFeed(
                    name=rendition.name,
                    codec="VP8",
                    width=rendition.width,
                    height=rendition.height,
                    keyframes=_policy(settings) if self.shared else None,
                )
                if not self.shared:
                    self.frame_tracks[rendition.name] = LatestFrameTrack()
            if not self.shared:
                self.relay = MediaRelay()
            self.default_rendition = settings.default_rendition
            record_name = (
                settings.record_rendition or max(renditions, key=lambda r: r.width * r.height).name
            )
        self._recorder: SegmentRecorder | None = None
        if (
            record
            and settings.recording_dir is not None
            and settings.segment_sink is not None
            and (self.shared or self._passthrough is not None)
        ):
            assert record_name is not None
            feed = self.feeds[record_name]
            self._recorder = SegmentRecorder(
                directory=Path(settings.recording_dir) / lot_id / feed.name,
                lot_id=lot_id,
                rendition=feed.name,
                codec=feed.codec,
                width=feed.width,
                height=feed.height,
                segment_us=int(settings.segment_seconds * 1_000_000),
                sink=settings.segment_sink,
                first_index=first_segment_index,
                prev_sha256_hex=prev_segment_sha256_hex,
            )
            feed.recorder = self._recorder
        for feed in self.feeds.values():
            feed.on_demand = self._demand.set

    # --- control (called by the hub) -------------------------------------------------------

    def start(self) -> None:
        if self._processor is not None and self._worker is None:
            self._worker = concurrent.futures.ThreadPoolExecutor(
                max_workers=1, thread_name_prefix=f"video-{self.lot_id}"
            )
            if isinstance(self._fallback, SlideshowFrames):
                self._fallback.use_executor(self._worker)
        self._task = asyncio.ensure_future(self._run())

    async def stop(self) -> None:
        """Stop reading and encoding, end every viewer track, close the last segment and wait
        until the sink has seen it."""
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        for feed in self.feeds.values():
            for viewer in list(feed.viewers):
                viewer.stop()
        for track in self.frame_tracks.values():
            track.stop()
        sources = (self._camera, self._next_camera, self._fallback, self._next_fallback)
        for source in (*sources, self._passthrough):
            if source is not None:
                source.close()
        if self._worker is not None:
            # The cancelled task may have left a job running: wait for it, off the loop.
            worker, self._worker = self._worker, None
            await asyncio.to_thread(worker.shutdown, wait=True)
        if self._processor is not None:
            self._processor.close()
        if self._recorder is not None:
            await self._recorder.close()

    def update_overlay(self, state: OverlayState) -> None:
        """Show `state` from the next frame on. An older `seq` than the current one is
        ignored (late delivery must not roll the picture back)."""
        if self._state is not None and state.seq < self._state.seq:
            return
        self._state = state
        if not self.overlay:  # passthrough: no picture to wait for; announce now
            self._announce(state, None)

    @property
    def overlay_state(self) -> OverlayState | None:
        return self._state

    def attach_camera(self, track: MediaStreamTrack, first_frame: av.VideoFrame) -> None:
        """Show the published camera from `first_frame` on (replacing a previous camera)."""
        if self._next_camera is not None:
            self._next_camera.close()
        self._next_camera = CameraFeed(track, first_frame=first_frame)
        self._demand.set()  # its frames are read even while nobody watches

    def replace_source(self, spec: SourceSpec) -> None:
        """Show `spec` instead of the current source from its first frame on (viewers, the
        overlay and the recording go on). Raises `ConfigurationError` for a lot that passes
        a file through or for a passthrough file, `SourceError` for a file that cannot be
        read."""
        if self._processor is None or (isinstance(spec, FileSource) and spec.passthrough):
            raise ConfigurationError("a passed-through file cannot be switched to or from")
        source = _frame_source(spec, self._worker)
        if self._next_fallback is not None:
            self._next_fallback.close()
        self._next_fallback = source
        self.spec = spec

    @property
    def recording(self) -> bool:
        return self._recorder is not None

    @property
    def encoding(self) -> bool:
        """Whether anyone needs the lot's frames encoded now (a viewer or the recorder)."""
        return not self.shared or any(feed.wanted for feed in self.feeds.values())

    @property
    def camera_connected(self) -> bool:
        return self._camera is not None or self._next_camera is not None

    def subscribe(self, rendition: str) -> MediaStreamTrack:
        """A new viewer's track for `rendition` (which must be one of `feeds`)."""
        if self.shared or self._passthrough is not None:
            return ViewerTrack(self.feeds[rendition], self._settings.viewer_queue_packets)
        assert self.relay is not None
        return self.relay.subscribe(self.frame_tracks[rendition], buffered=False)

    def viewer_count(self) -> dict[str, int]:
        return {name: len(feed.viewers) for name, feed in self.feeds.items()}

    # --- timed metadata ------------------------------------------------------------------

    def attach_channel(self, channel: RTCDataChannel, track: MediaStreamTrack) -> None:
        """Send the lot's timed metadata on `channel` and accept rendition switches on it."""
        self.channels.add(channel)

        @channel.on("message")
        def on_message(message: str | bytes) -> None:
            request = parse_channel_message(message)
            if request is None or not isinstance(track, ViewerTrack):
                return
            feed = self.feeds.get(request.name)
            if feed is None:
                return
            track.switch(feed)
            self._send(
                channel,
                json.dumps(
                    {
                        "type": "rendition",
                        "name": feed.name,
                        "width": feed.width,
                        "height": feed.height,
                    }
                ),
            )

        @channel.on("close")
        def on_close() -> None:
            self.channels.discard(channel)

        if self._announced is not None:
            state, frame_ts = self._announced
            self._send(channel, json.dumps(metadata_message(self.lot_id, state, frame_ts)))

    def _announce(self, state: OverlayState, frame_ts_ms: int | None) -> None:
        self._announced = (state, frame_ts_ms if frame_ts_ms is not None else state.server_ts_ms)
        message = json.dumps(metadata_message(self.lot_id, state, self._announced[1]))
        for channel in list(self.channels):
            self._send(channel, message)

    def _send(self, channel: RTCDataChannel, message: str) -> None:
        # A viewer that does not read its channel only misses states: each message is a
        # full snapshot, so skipping is coalescing (STYLE rule 9).
        if channel.readyState == "open" and channel.bufferedAmount < CHANNEL_BUFFER_LIMIT:
            channel.send(message)

    # --- the lot's task ------------------------------------------------------------------

    async def _run(self) -> None:
        try:
            if self._passthrough is not None:
                await self._run_packets(self._passthrough)
            else:
                await self._run_frames()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a broken source must not take the server down
            self.failed = f"{type(exc).__name__}: {exc}"
            log.exception("stream of lot %s stopped", self.lot_id)

    def _pts(self, capture_us: int) -> int:
        if self._first_capture_us is None:
            self._first_capture_us = capture_us
        pts = max(self._last_pts + 1, (capture_us - self._first_capture_us) * 9 // 100)
        self._last_pts = pts
        return pts

    async def _next_frame(self) -> tuple[av.VideoFrame, int] | None:
        if self._next_camera is not None:
            if self._camera is not None:
                self._camera.close()
            self._camera, self._next_camera = self._next_camera, None
        if self._camera is not None:
            try:
                return await self._camera.next_frame()
            except MediaStreamError:
                log.info("camera of lot %s left; back to the fallback picture", self.lot_id)
                self._camera.close()
                self._camera = None
        if self._next_fallback is not None:
            if self._fallback is not None:
                self._fallback.close()
            self._fallback, self._next_fallback = self._next_fallback, None
            if isinstance(self._fallback, SlideshowFrames) and self._worker is not None:
                self._fallback.use_executor(self._worker)
        assert self._fallback is not None
        try:
            return await self._fallback.next_frame()
        except MediaStreamError:
            return None

    async def _run_frames(self) -> None:
        loop = asyncio.get_running_loop()
        processor, worker = self._processor, self._worker
        assert processor is not None and worker is not None
        while True:
            if not self.encoding and not self.camera_connected:
                self._demand.clear()
                await self._demand.wait()  # nobody watches and nothing records: no work
            captured = await self._next_frame()
            if captured is None:
                return
            frame, capture_us = captured
            if not self.encoding:  # a camera's frame read while nobody needs it
                continue
            if processor.needs_aspect_fit(frame):
                frame = await loop.run_in_executor(worker, processor.fit_aspect, frame)
            pts = self._pts(capture_us)
            state = self._state
            if self.shared:
                # Smallest rendition first, each published as soon as it is encoded: a
                # viewer of 360p does not wait for the 720p encode.
                await loop.run_in_executor(
                    worker, processor.burn_in, frame, state, capture_us // 1000
                )
                for rendition in self._encode_order:
                    feed = self.feeds[rendition.name]
                    if not feed.wanted:
                        feed.idle = True
                        continue
                    policy = feed.keyframes
                    keyframe = feed.idle or (policy is not None and policy.should_force(capture_us))
                    feed.idle = False
                    job: Callable[[], list[EncodedPacket]] = functools.partial(
                        processor.encode_rendition,
                        frame,
                        rendition,
                        pts=pts,
                        capture_us=capture_us,
                        keyframe=keyframe,
                    )
                    for item in await loop.run_in_executor(worker, job):
                        if policy is not None:
                            policy.emitted(capture_us, is_keyframe=item.keyframe)
                        feed.publish(item)
                self.frames_encoded += 1
            else:
                frames = await loop.run_in_executor(
                    worker,
                    functools.partial(
                        processor.frames, frame, state=state, pts=pts, capture_us=capture_us
                    ),
                )
                for name, scaled in frames.items():
                    self.frame_tracks[name].offer(scaled)
            self.frames_out += 1
            if state is not None and (self._announced is None or self._announced[0] is not state):
                self._announce(state, capture_us // 1000)

    async def _run_packets(self, source: PassthroughFileSource) -> None:
        feed = self.feeds[PASSTHROUGH_RENDITION]
        while True:
            try:
                packet, send_us = await source.next_packet()
            except MediaStreamError:
                return
            assert packet.pts is not None
            feed.publish(
                EncodedPacket(
                    packet=packet,
                    data=bytes(packet),
                    keyframe=packet.is_keyframe,
                    pts=packet.pts,
                    capture_us=send_us,
                )
            )
            self.frames_out += 1


def _policy(settings: StreamSettings) -> KeyframePolicy:
    return KeyframePolicy(
        min_interval_us=int(settings.keyframe_min_interval_s * 1_000_000),
        max_interval_us=int(settings.gop_seconds * 1_000_000),
        overflow_interval_us=int(settings.keyframe_overflow_interval_s * 1_000_000),
    )


def _frame_source(
    spec: SourceSpec, executor: concurrent.futures.Executor | None = None
) -> FrameSource:
    if isinstance(spec, SlideshowSource):
        return SlideshowFrames(spec, executor)
    if isinstance(spec, TestPatternSource):
        return PatternSource(spec.width, spec.height, spec.fps, noise=spec.noise)
    if isinstance(spec, CameraSource):
        fallback = spec.fallback
        return PatternSource(fallback.width, fallback.height, fallback.fps, noise=fallback.noise)
    assert isinstance(spec, FileSource)
    return DecodedFileSource(spec.path, loop=spec.loop)


__all__ = [
    "METADATA_CHANNEL",
    "LotStream",
    "RenditionFeed",
    "ViewerTrack",
    "rendition_info",
]
