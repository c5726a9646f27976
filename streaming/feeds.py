"""A lot's renditions and their subscribers: `RenditionFeed` (one rendition's viewers and
recorder), `ViewerTrack` (one viewer's bounded queue of shared packets) and `LatestFrameTrack`
(per-viewer encoding mode only). Publishing never awaits: a slow viewer only loses its own
packets (and then waits for a keyframe)."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable
from typing import Any

import av
from aiortc import RTCRtpSender
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from streaming.encoder import EncodedPacket
from streaming.evidence import SegmentPacket
from streaming.fanout import DropToKeyframeQueue, KeyframePolicy, PushOutcome
from streaming.packetizer import FeedPacketizer, Payloads
from streaming.packetizer import install as install_prepacked
from streaming.recorder import SegmentRecorder

__all__ = ["LatestFrameTrack", "RenditionFeed", "ViewerTrack", "rendition_info"]


class ViewerTrack(MediaStreamTrack):
    """One viewer's video track: returns the shared `av.Packet`s of its rendition, so the
    viewer's `RTCRtpSender` only packetizes and encrypts. Bounded; drops to the next keyframe
    when the viewer falls behind (`fanout.DropToKeyframeQueue`)."""

    kind = "video"

    def __init__(self, feed: RenditionFeed, capacity: int) -> None:
        super().__init__()
        self._queue: DropToKeyframeQueue[EncodedPacket] = DropToKeyframeQueue(capacity)
        self._wake = asyncio.Event()
        self.feed = feed
        self.prepacked = False
        feed.subscribe(self)

    def use_prepacked(self, sender: RTCRtpSender) -> None:
        """Hand `sender` payloads packetized once per rendition (see `packetizer`)."""
        self.prepacked = install_prepacked(sender, self.feed.codec)
        if self.prepacked:
            self.feed.prepacked_viewers += 1

    @property
    def queue(self) -> DropToKeyframeQueue[EncodedPacket]:
        return self._queue

    def deliver(self, item: EncodedPacket) -> None:
        outcome = self._queue.push(item, is_keyframe=item.keyframe)
        if outcome is PushOutcome.QUEUED:
            self._wake.set()
        elif outcome is PushOutcome.OVERFLOWED:
            self.feed.request_keyframe(overflow=True)

    async def recv(self) -> av.Packet[Any] | Payloads:  # type: ignore[override]
        while True:
            if self.readyState != "live":
                raise MediaStreamError("the stream ended")
            item = self._queue.pop()
            if item is not None:
                if self.prepacked and item.payloads is not None:
                    return item.payloads
                return item.packet
            self._wake.clear()
            await self._wake.wait()

    def switch(self, feed: RenditionFeed) -> None:
        """Move to another rendition: wait for its next keyframe (requested now)."""
        if feed is self.feed:
            return
        self.feed.unsubscribe(self)
        self._queue.restart()
        self.feed = feed
        feed.subscribe(self)

    def stop(self) -> None:
        super().stop()
        self.feed.unsubscribe(self)
        self._wake.set()


class LatestFrameTrack(MediaStreamTrack):
    """Per-viewer (aiortc default) mode only: the latest overlaid frame of a rendition, read
    by a `MediaRelay`, whose every subscriber's sender encodes it again."""

    kind = "video"

    def __init__(self) -> None:
        super().__init__()
        self._frame: av.VideoFrame | None = None
        self._ready = asyncio.Event()

    def offer(self, frame: av.VideoFrame) -> None:
        self._frame = frame
        self._ready.set()

    async def recv(self) -> av.VideoFrame:
        while self._frame is None:
            if self.readyState != "live":
                raise MediaStreamError("the stream ended")
            self._ready.clear()
            await self._ready.wait()
        frame, self._frame = self._frame, None
        return frame

    def stop(self) -> None:
        super().stop()
        self._ready.set()


class RenditionFeed:
    """The subscribers of one rendition: viewer tracks and the recorder."""

    def __init__(
        self,
        *,
        name: str,
        codec: str,
        width: int,
        height: int,
        keyframes: KeyframePolicy | None,
    ) -> None:
        self.name = name
        self.codec = codec
        self.width = width
        self.height = height
        self.keyframes = keyframes
        self.viewers: set[ViewerTrack] = set()
        self.recorder: SegmentRecorder | None = None
        self.packets = 0
        self.keyframe_packets = 0
        self.prepacked_viewers = 0
        self.idle = True  # not encoded for the last frame: the next encode is a keyframe
        self.on_demand: Callable[[], None] | None = None
        self._packetizer = FeedPacketizer(codec)

    @property
    def wanted(self) -> bool:
        """Whether anyone needs this rendition encoded: a viewer or the recorder."""
        return bool(self.viewers) or self.recorder is not None

    def subscribe(self, track: ViewerTrack) -> None:
        self.viewers.add(track)
        if track.prepacked:
            self.prepacked_viewers += 1
        self.request_keyframe()
        if self.on_demand is not None:
            self.on_demand()

    def unsubscribe(self, track: ViewerTrack) -> None:
        if track in self.viewers:
            self.viewers.discard(track)
            if track.prepacked:
                self.prepacked_viewers -= 1

    def request_keyframe(self, *, overflow: bool = False) -> None:
        """From a new viewer, an overflowed queue (`overflow`), or a PLI/FIR of any viewer's
        receiver. Rate-limited by the policy; a passthrough source cannot be asked (it has
        its own keyframe interval)."""
        if self.keyframes is not None:
            self.keyframes.request(overflow=overflow)

    def publish(self, item: EncodedPacket) -> None:
        self.packets += 1
        if item.keyframe:
            self.keyframe_packets += 1
        if self.prepacked_viewers:  # packetized once here, not once per viewer
            payloads = self._packetizer.payloads(item.data, item.pts)
            item = dataclasses.replace(item, payloads=payloads)
        for viewer in list(self.viewers):
            viewer.deliver(item)
        if self.recorder is not None:
            self.recorder.write(
                SegmentPacket(
                    data=item.data, pts=item.pts, capture_us=item.capture_us, keyframe=item.keyframe
                )
            )


def rendition_info(feed: RenditionFeed) -> dict[str, object]:
    """What a viewer is told about a rendition: name, size and codec."""
    return {"name": feed.name, "width": feed.width, "height": feed.height, "codec": feed.codec}
