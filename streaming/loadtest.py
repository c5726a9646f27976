"""aiortc viewers for tests and the benchmark: `python -m streaming.loadtest`.

A `Viewer` is a real receive-only `RTCPeerConnection` that POSTs its offer to
`/api/lots/{lot}/stream/offer`. In `decode` mode every frame goes through aiortc's jitter
buffer and libvpx decoder, and the clock strip of sampled frames gives the capture→decode
latency. In `count` mode (for hundreds of viewers on one receiver core) the receiver's RTP
handler is replaced by a counter of completed frames (RTP marker bits): packets are still
received, decrypted (SRTP) and parsed, but neither jitter-buffered nor decoded.

The CLI connects N viewers (the first one decoding), waits, measures for a window, prints
one JSON object and exits.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import av
from aiortc import RTCConfiguration, RTCDataChannel, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError
from aiortc.rtp import RtpPacket

from streaming.loopback import loopback_only_ice
from streaming.overlay import decode_strip, plane_view, sample_strip


@dataclass
class ViewerStats:
    frames: int = 0
    first_frame_s: float | None = None
    last_frame_s: float | None = None
    keyframes_seen: int = 0
    widths: set[int] = field(default_factory=set)
    latencies_ms: list[float] = field(default_factory=list)
    lag_ms: list[float] = field(default_factory=list)
    messages: list[dict[str, Any]] = field(default_factory=list)


class Viewer:
    def __init__(
        self,
        session: aiohttp.ClientSession,
        base_url: str,
        lot_id: str,
        *,
        rendition: str | None = None,
        mode: str = "decode",
        data_channel: bool = True,
        sample_every: int = 5,
    ) -> None:
        self._session = session
        self._url = f"{base_url}/api/lots/{lot_id}/stream/offer"
        if rendition:
            self._url += f"?rendition={rendition}"
        self.mode = mode
        self.stats = ViewerStats()
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self._want_channel = data_channel
        self.channel: RTCDataChannel | None = None
        self._task: asyncio.Task[None] | None = None
        self._sample_every = sample_every
        self.last_frame: av.VideoFrame | None = None

    async def connect(self) -> None:
        transceiver = self.pc.addTransceiver("video", direction="recvonly")
        if self._want_channel:
            channel = self.pc.createDataChannel("gavel-meta")
            self.channel = channel

            @channel.on("message")
            def on_message(message: str | bytes) -> None:
                try:
                    self.stats.messages.append(json.loads(message))
                except (ValueError, TypeError):
                    pass

        if self.mode == "count":
            transceiver.receiver._handle_rtp_packet = self._count_packet  # type: ignore[method-assign]
        await self.pc.setLocalDescription(await self.pc.createOffer())
        offer = self.pc.localDescription
        async with self._session.post(
            self._url, json={"sdp": offer.sdp, "type": offer.type}
        ) as response:
            body = await response.json()
            if response.status != 200:
                raise RuntimeError(f"offer refused: {response.status} {body}")
        await self.pc.setRemoteDescription(RTCSessionDescription(body["sdp"], body["type"]))
        if self.mode == "decode":
            self._task = asyncio.ensure_future(self._consume(transceiver.receiver.track))

    async def _count_packet(self, packet: RtpPacket, arrival_time_ms: int) -> None:
        if packet.marker:
            now = time.monotonic()
            stats = self.stats
            stats.frames += 1
            if stats.first_frame_s is None:
                stats.first_frame_s = now
            stats.last_frame_s = now
            if stats.frames % 30 == 0:
                stats.lag_ms.append(arrival_time_ms - packet.timestamp / 90)

    async def _consume(self, track: Any) -> None:
        stats = self.stats
        try:
            while True:
                frame = await track.recv()
                now = time.monotonic()
                stats.frames += 1
                if stats.first_frame_s is None:
                    stats.first_frame_s = now
                stats.last_frame_s = now
                if isinstance(frame, av.VideoFrame):
                    self.last_frame = frame
                    stats.widths.add(frame.width)
                    if stats.frames % self._sample_every == 0:
                        plane = frame.planes[0]
                        y = plane_view(
                            plane, width=plane.width, height=plane.height, line_size=plane.line_size
                        )
                        wall_ms = time.time() * 1000
                        stamp = decode_strip(sample_strip(y), int(wall_ms))
                        if stamp is not None:
                            stats.latencies_ms.append(wall_ms - stamp)
        except MediaStreamError:
            return

    def send(self, message: dict[str, Any]) -> None:
        if self.channel is not None and self.channel.readyState == "open":
            self.channel.send(json.dumps(message))

    def fps_between(self, frames_before: int, seconds: float) -> float:
        return (self.stats.frames - frames_before) / seconds

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        await self.pc.close()


def _cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system


def _percentile(values: Sequence[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


async def run(
    base_url: str,
    lot_id: str,
    viewers: int,
    *,
    decoders: int,
    rendition: str | None,
    warmup_s: float,
    window_s: float,
    connect_concurrency: int,
    data_channel: bool,
    markers: bool = False,
) -> dict[str, Any]:
    with loopback_only_ice():
        async with aiohttp.ClientSession() as session:
            group = [
                Viewer(
                    session,
                    base_url,
                    lot_id,
                    rendition=rendition,
                    mode="decode" if i < decoders else "count",
                    data_channel=data_channel,
                )
                for i in range(viewers)
            ]
            limit = asyncio.Semaphore(connect_concurrency)
            failures: list[str] = []

            async def connect(viewer: Viewer) -> None:
                async with limit:
                    try:
                        await viewer.connect()
                    except Exception as exc:  # reported, not fatal: the count says it
                        failures.append(f"{type(exc).__name__}: {exc}"[:200])

            started = time.monotonic()
            await asyncio.gather(*(connect(v) for v in group))
            connect_s = time.monotonic() - started
            await asyncio.sleep(warmup_s)
            before = [v.stats.frames for v in group]
            lag_before = [len(v.stats.lag_ms) for v in group]
            if markers:
                print("#window-start", flush=True)
            cpu_before = _cpu_seconds()
            t0 = time.monotonic()
            await asyncio.sleep(window_s)
            elapsed = time.monotonic() - t0
            cpu = (_cpu_seconds() - cpu_before) / elapsed * 100
            if markers:
                print("#window-end", flush=True)
            fps = [v.fps_between(b, elapsed) for v, b in zip(group, before, strict=True)]
            lag_growth = []
            for v, start in zip(group, lag_before, strict=True):
                window = v.stats.lag_ms[start:]
                if len(window) >= 2:
                    lag_growth.append(window[-1] - window[0])
            decoded = [v for v in group[:decoders]]
            latencies = [x for v in decoded for x in v.stats.latencies_ms[-150:]]
            await asyncio.gather(*(v.close() for v in group))
    connected = viewers - len(failures)
    return {
        "viewers": viewers,
        "connected": connected,
        "connect_seconds": round(connect_s, 2),
        "failures": failures[:5],
        "fps_min": round(min(fps), 2) if fps else None,
        "fps_median": round(statistics.median(fps), 2) if fps else None,
        "fps_max": round(max(fps), 2) if fps else None,
        "decoded_fps": [
            round(v.fps_between(b, elapsed), 2)
            for v, b in zip(decoded, before[:decoders], strict=True)
        ],
        "capture_to_decode_ms_p50": _percentile(latencies, 0.5),
        "capture_to_decode_ms_p95": _percentile(latencies, 0.95),
        "lag_growth_ms_max": round(max(lag_growth), 1) if lag_growth else None,
        "receiver_cpu_percent": round(cpu, 1),
        "window_s": round(elapsed, 2),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m streaming.loadtest")
    parser.add_argument("--url", required=True, help="http://127.0.0.1:PORT")
    parser.add_argument("--lot", required=True)
    parser.add_argument("--viewers", type=int, default=1)
    parser.add_argument("--decoders", type=int, default=1)
    parser.add_argument("--rendition", default=None)
    parser.add_argument("--warmup", type=float, default=4.0)
    parser.add_argument("--window", type=float, default=8.0)
    parser.add_argument("--connect-concurrency", type=int, default=16)
    parser.add_argument("--no-data-channel", action="store_true")
    parser.add_argument("--markers", action="store_true", help="print #window-start/-end")
    args = parser.parse_args(argv)
    result = asyncio.run(
        run(
            args.url,
            args.lot,
            args.viewers,
            decoders=args.decoders,
            rendition=args.rendition,
            warmup_s=args.warmup,
            window_s=args.window,
            connect_concurrency=args.connect_concurrency,
            data_channel=not args.no_data_channel,
            markers=args.markers,
        )
    )
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
