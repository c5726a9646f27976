"""Real aiortc peer connections on 127.0.0.1 against the streaming app: decodable frames at
full rate, isolation from a stalled viewer, keyframe recovery, rendition switching, the
timed-metadata channel, the published camera and file passthrough."""

from __future__ import annotations

import asyncio
import fractions
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import av
import numpy as np
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import VideoStreamTrack
from repo_kit import REPO
from stream_kit import PATTERN, Running, running_stream_app, stream_settings, wait_until

from streaming.loadtest import Viewer
from streaming.model import FileSource, OverlayState
from streaming.pipeline import ViewerTrack

ROOT = REPO


def _state(seq: int, price: str) -> OverlayState:
    return OverlayState(
        seq=seq,
        server_ts_ms=int(time.time() * 1000),
        title="Flat 1502, Hangzhou",
        price_text=price,
        ask_minor=seq * 100,
        leader_code=f"C0{seq}",
        phase="OPEN",
    )


async def _fps(viewers: list[Viewer], seconds: float, *, tries: int = 3) -> list[float]:
    """Frames per second of each viewer over a window; the best of up to `tries` windows
    (this 2-core machine may be busy with other work for a moment)."""
    best: list[float] = []
    for _ in range(tries):
        before = [v.stats.frames for v in viewers]
        await asyncio.sleep(seconds)
        rates = [v.fps_between(b, seconds) for v, b in zip(viewers, before, strict=True)]
        if not best or min(rates) > min(best):
            best = rates
        if min(best) >= 25:
            break
    return best


async def _connect(
    running: Running, *, rendition: str | None = None, mode: str = "decode"
) -> Viewer:
    viewer = Viewer(running.session, running.base_url, "lot-1", rendition=rendition, mode=mode)
    await viewer.connect()
    return viewer


async def test_viewers_receive_decodable_frames_at_full_rate_and_timed_metadata() -> None:
    async with running_stream_app(stream_settings()) as running:
        running.hub.open_lot("lot-1", PATTERN, _state(1, "£900,000"))
        viewers = [
            await _connect(running),
            await _connect(running, rendition="360p"),
            await _connect(running, rendition="720p"),
        ]
        try:
            await wait_until(lambda: all(v.stats.frames > 5 for v in viewers), 8)
            fps = await _fps(viewers, 2.0)
            assert min(fps) >= 25, fps
            assert viewers[0].stats.widths == {640} and viewers[2].stats.widths == {1280}
            # the clock strip of decoded frames reads back: capture -> decode latency
            latencies = viewers[0].stats.latencies_ms
            assert latencies and 0 <= sorted(latencies)[len(latencies) // 2] < 500
            # timed metadata: the current state at once, then every change
            await wait_until(lambda: any(m.get("seq") == 1 for m in viewers[0].stats.messages), 3)
            running.hub.update_overlay("lot-1", _state(2, "£950,000"))
            await wait_until(lambda: any(m.get("seq") == 2 for m in viewers[1].stats.messages), 3)
            message = next(m for m in viewers[1].stats.messages if m.get("seq") == 2)
            assert message["lot_id"] == "lot-1" and message["ask"] == 200
            assert message["leader_code"] == "C02" and message["phase"] == "OPEN"
            assert message["frame_ts"] >= message["server_ts"]
            status = running.hub.status("lot-1")
            assert status.viewers == 3
            lot = running.hub.lot("lot-1")
            assert lot is not None  # each packet was packetized once, not once per viewer
            assert lot.feeds["360p"].prepacked_viewers == 2
            assert lot.feeds["720p"].prepacked_viewers == 1
        finally:
            await asyncio.gather(*(v.close() for v in viewers))
        await wait_until(lambda: running.hub.status("lot-1").viewers == 0, 5)


async def test_a_stalled_viewer_does_not_slow_the_others() -> None:
    """One viewer's process is frozen (SIGSTOP: it reads nothing, answers nothing); the
    in-process viewers keep full rate. Then a server-side track that is never read stays
    bounded."""
    async with running_stream_app(stream_settings(viewer_queue_packets=8)) as running:
        running.hub.open_lot("lot-1", PATTERN, _state(1, "£1"))
        frozen = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "streaming.loadtest",
                "--url",
                running.base_url,
                "--lot",
                "lot-1",
                "--viewers",
                "1",
                "--warmup",
                "20",
                "--window",
                "1",
            ],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        viewers: list[Viewer] = []
        try:
            await wait_until(lambda: running.hub.status("lot-1").viewers == 1, 15)
            await asyncio.sleep(1.0)  # let it connect and receive
            os.kill(frozen.pid, signal.SIGSTOP)
            viewers = [await _connect(running), await _connect(running, rendition="720p")]
            stalled = running.hub.lot("lot-1")
            assert stalled is not None
            never_read = stalled.subscribe("360p")  # as if this viewer's sender hung
            assert isinstance(never_read, ViewerTrack)
            await wait_until(lambda: all(v.stats.frames > 5 for v in viewers), 8)
            fps = await _fps(viewers, 2.5)
            assert min(fps) >= 25, fps
            assert len(never_read.queue) <= never_read.queue.capacity
            assert never_read.queue.overflows >= 1
            never_read.stop()
        finally:
            os.kill(frozen.pid, signal.SIGKILL)
            frozen.wait(5)
            await asyncio.gather(*(v.close() for v in viewers))


async def test_keyframe_recovery_after_a_dropped_queue() -> None:
    """A viewer that fell a queue behind gets a forced keyframe (not the next periodic one)
    and decodes cleanly from it."""
    settings = stream_settings(gop_seconds=30.0, viewer_queue_packets=6)
    async with running_stream_app(settings) as running:
        running.hub.open_lot("lot-1", PATTERN, _state(1, "£1"))
        lot = running.hub.lot("lot-1")
        assert lot is not None
        track = lot.subscribe("360p")  # nothing is encoded before someone watches
        assert isinstance(track, ViewerTrack)
        await wait_until(lambda: lot.frames_out > 3, 5)
        policy = lot.feeds["360p"].keyframes
        assert policy is not None
        await asyncio.sleep(1.0)  # not reading: the queue overflows and drops
        assert track.queue.overflows >= 1
        forced_before = policy.forced
        decoder = av.CodecContext.create("libvpx", "r")
        first = await asyncio.wait_for(track.recv(), 2)
        assert isinstance(first, av.Packet)  # no viewer sender: not pre-packetized
        assert first.is_keyframe
        decoded = 0
        packet = first
        while decoded < 30:
            for frame in decoder.decode(packet):
                assert frame.width == 640
                decoded += 1
            received = await asyncio.wait_for(track.recv(), 2)
            assert isinstance(received, av.Packet)
            packet = received
        assert policy.forced > forced_before or policy.forced >= 2  # on request (gop is 30 s)
        assert lot.feeds["360p"].keyframe_packets >= 2
        track.stop()


async def test_a_viewer_pli_reaches_the_shared_encoder() -> None:
    settings = stream_settings(gop_seconds=30.0)
    async with running_stream_app(settings) as running:
        running.hub.open_lot("lot-1", PATTERN, _state(1, "£1"))
        viewer = await _connect(running)
        try:
            await wait_until(lambda: viewer.stats.frames > 5, 8)
            lot = running.hub.lot("lot-1")
            assert lot is not None
            policy = lot.feeds["360p"].keyframes
            assert policy is not None
            answer = viewer.pc.remoteDescription.sdp
            media_ssrc = int(re.findall(r"a=ssrc:(\d+)", answer)[0])
            requests, keyframes = policy.requests, lot.feeds["360p"].keyframe_packets
            receiver = viewer.pc.getTransceivers()[0].receiver
            await receiver._send_rtcp_pli(media_ssrc)  # what the receiver does on loss
            await wait_until(lambda: policy.requests > requests, 3)
            await wait_until(lambda: lot.feeds["360p"].keyframe_packets > keyframes, 3)
        finally:
            await viewer.close()


async def test_switching_rendition_on_the_metadata_channel() -> None:
    async with running_stream_app(stream_settings()) as running:
        running.hub.open_lot("lot-1", PATTERN, _state(1, "£1"))
        viewer = await _connect(running, rendition="360p")
        try:
            await wait_until(lambda: viewer.stats.frames > 5, 8)
            viewer.send({"type": "rendition", "name": "720p"})
            await wait_until(lambda: 1280 in viewer.stats.widths, 5)
            ack = [m for m in viewer.stats.messages if m.get("type") == "rendition"]
            assert ack and ack[-1]["name"] == "720p"
            status = running.hub.status("lot-1")
            assert {r["name"]: r["viewers"] for r in status.renditions} == {"360p": 0, "720p": 1}
        finally:
            await viewer.close()


class _Camera(VideoStreamTrack):
    """A console camera: a flat grey picture (luma 200) with a dark square."""

    async def recv(self) -> av.VideoFrame:
        pts, time_base = await self.next_timestamp()
        image = np.full((480, 640, 3), 200, dtype=np.uint8)
        image[200:280, 280:360] = 30
        frame = av.VideoFrame.from_ndarray(image, format="rgb24")
        frame.pts, frame.time_base = pts, time_base
        return frame


async def _allow(lot_id: str, token: str) -> bool:
    return token == "console-secret"


async def test_the_published_camera_replaces_the_picture_once() -> None:
    async with running_stream_app(stream_settings(publisher_authorizer=_allow)) as running:
        running.hub.open_lot("lot-1", PATTERN, _state(1, "£1"))
        viewer = await _connect(running)
        publisher = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        try:
            publisher.addTransceiver(_Camera(), direction="sendonly")
            await publisher.setLocalDescription(await publisher.createOffer())
            async with running.session.post(
                running.base_url + "/api/lots/lot-1/stream/publish",
                json={"sdp": publisher.localDescription.sdp, "type": "offer"},
                headers={"Authorization": "Bearer console-secret"},
            ) as response:
                assert response.status == 200, await response.text()
                answer = await response.json()
            await publisher.setRemoteDescription(RTCSessionDescription(**answer))
            await wait_until(lambda: running.hub.status("lot-1").camera, 10)
            samples: list[int] = []

            def centre_is_camera() -> bool:
                frame = viewer.last_frame
                if frame is None:
                    return False
                y = frame.to_ndarray(format="gray")
                samples.append(int(y[y.shape[0] // 2, y.shape[1] // 2]))
                return samples[-1] < 60 and int(y[y.shape[0] // 2, 20]) > 170

            await wait_until(centre_is_camera, 8)
            fps = await _fps([viewer], 1.5)
            assert fps[0] >= 25
        finally:
            await publisher.close()
            await viewer.close()
        await wait_until(lambda: not running.hub.status("lot-1").camera, 8)


def _make_mp4(path: Path, frames: int = 60) -> None:
    """A Constrained Baseline H.264 MP4 (AVCC inside, as cameras and editors write it)."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = 320, 240, "yuv420p"
        stream.codec_context.profile = "Baseline"
        stream.codec_context.options = {"tune": "zerolatency", "g": "15", "bf": "0"}
        for index in range(frames):
            image = np.zeros((240, 320, 3), dtype=np.uint8)
            image[:, (index * 5) % 320 :] = (30, 160, 220)
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts, frame.time_base = index, fractions.Fraction(1, 30)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


async def test_an_h264_mp4_is_passed_through_without_decoding(tmp_path: Path) -> None:
    clip = tmp_path / "clip.mp4"
    _make_mp4(clip)
    async with running_stream_app(stream_settings()) as running:
        running.hub.open_lot("lot-1", FileSource(clip, passthrough=True))
        status = running.hub.status("lot-1")
        assert status.codec == "H264" and not status.overlay
        assert [r["name"] for r in status.renditions] == ["source"]
        viewer = Viewer(running.session, running.base_url, "lot-1")
        await viewer.connect()
        try:
            await wait_until(lambda: viewer.stats.frames > 10, 8)
            fps = await _fps([viewer], 2.0)
            assert fps[0] >= 25 and viewer.stats.widths == {320}
            assert "H264" in viewer.pc.remoteDescription.sdp
        finally:
            await viewer.close()
