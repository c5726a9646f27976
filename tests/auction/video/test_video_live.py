"""The auction server's live video (`auction.video`) end to end: a real `AuctionService` on
SQLite, the streaming sub-application installed with `install_video`, real aiortc viewers over
127.0.0.1, `stream_segment` entries in the ledger, and `gavel audit stream` on the export."""

from __future__ import annotations

import asyncio
import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from stream_kit import wait_until
from video_kit import Running, ledger_segments, running_server, video_settings

from auction.cli import main as gavel
from auction.ledger_export import StoreSource, export_ledger
from auction.rules import (
    SECOND,
    FairWarning,
    FloorBid,
    Hammer,
    OpenRing,
    PlaceBid,
    RegisterBidder,
    SoftClose,
    english_timed,
    live_auctioneer,
)
from auction.service import AuctionService
from chain import parse_time
from streaming.evidence import parse_segment, segment_files
from streaming.loadtest import Viewer
from streaming.overlay import OverlayRenderer

LOT = "painting-7"
BODY_KEYS = {
    "v",
    "lot",
    "rendition",
    "codec",
    "index",
    "sha256",
    "prev",
    "time_base",
    "media_start",
    "media_end",
    "start",
    "end",
    "bytes",
    "packets",
}


def banner_mask(viewer: Viewer) -> np.ndarray[Any, np.dtype[np.bool_]]:
    """The bright (text) pixels of the banner of the viewer's last decoded frame."""
    frame = viewer.last_frame
    assert frame is not None
    y = frame.to_ndarray(format="gray")
    rows = OverlayRenderer(frame.width, frame.height).banner_rows
    mask: np.ndarray[Any, np.dtype[np.bool_]] = y[:rows] > 150
    return mask


async def offer_status(running: Running) -> int:
    sdp = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\n"
    async with running.session.post(
        f"{running.base_url}/api/lots/{LOT}/stream/offer", json={"sdp": sdp, "type": "offer"}
    ) as response:
        return response.status


async def test_a_live_lot_streams_its_state_and_its_recording_is_anchored(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data, recordings = tmp_path / "data", tmp_path / "recordings"

    async def seed(service: AuctionService) -> None:
        rules = live_auctioneer(
            start_price=800_000,
            currency="GBP",
            start_at=service.now() + 3600 * SECOND,
            fair_warning_dwell=2 * SECOND,
        )
        await service.add_lot(LOT, rules, "Portrait of a Lady, oil on canvas")

    async with running_server(data, video_settings(recordings), seed) as running:
        service, hub = running.service, running.video.hub
        assert hub.status(LOT).phase == "declared"
        assert await offer_status(running) == 409  # known, not live yet

        await service.submit(LOT, OpenRing(ask=800_000))
        await wait_until(lambda: hub.lot(LOT) is not None, 5)
        viewer = Viewer(running.session, running.base_url, LOT)
        await viewer.connect()
        try:
            await wait_until(lambda: viewer.stats.frames > 10, 10)
            assert viewer.stats.widths == {640}
            lot = hub.lot(LOT)
            assert lot is not None and lot.overlay_state is not None
            state = lot.overlay_state
            assert state.title == "Portrait of a Lady, oil on canvas"
            assert state.price_text == "start £8,000.00" and state.phase == "In the ring"
            assert state.leader_code is None and state.ends_at_ms is None
            frames = viewer.stats.frames
            await wait_until(lambda: viewer.stats.frames > frames + 3, 5)
            before = banner_mask(viewer)
            frames = viewer.stats.frames
            await wait_until(lambda: viewer.stats.frames > frames + 3, 5)
            steady = int((banner_mask(viewer) != before).sum())

            await service.submit(LOT, FloorBid(paddle="101"))
            await wait_until(
                lambda: (
                    lot.overlay_state is not None and lot.overlay_state.price_text == "£8,000.00"
                ),
                5,
            )
            assert lot.overlay_state is not None
            assert lot.overlay_state.leader_code == "floor:101"
            assert lot.overlay_state.ask_minor == 820_000  # rules clarification 1: 8,000 -> 8,200
            changed: list[int] = []

            def banner_changed() -> bool:
                changed.append(int((banner_mask(viewer) != before).sum()))
                return changed[-1] > max(300, 4 * steady)

            await wait_until(banner_changed, 5)

            await wait_until(lambda: len(running.video.sink.appended) >= 3, 15)
            await service.submit(LOT, FairWarning())
            await wait_until(lambda: lot.overlay_state.phase == "Fair warning", 5)  # type: ignore[union-attr]
            await asyncio.sleep(2.05)
            await service.submit(LOT, Hammer())
            assert service.view(LOT).status == "SOLD"  # type: ignore[union-attr]
            await wait_until(lambda: lot.overlay_state.phase == "Sold", 5)  # type: ignore[union-attr]
            await wait_until(lambda: hub.status(LOT).phase == "ended", 5)  # after the tail
            assert hub.lot(LOT) is None
            frames = viewer.stats.frames
            await asyncio.sleep(0.5)
            assert viewer.stats.frames == frames  # nothing is sent any more
            assert await offer_status(running) == 409
            sink = running.video.sink
            await wait_until(lambda: bool(sink.appended) and sink.pending == 0, 5)
            assert sink.failed == sink.dropped == sink.skipped == 0
        finally:
            await viewer.close()

    # stream_segment entries: one per segment file, in chain order, house-signed, no PII
    recording = recordings / LOT / "360p"
    files = segment_files(recording)
    segments = ledger_segments(data)
    assert len(segments) == len(files) >= 4
    previous = "0" * 64
    for position, ((_seq, body), path) in enumerate(zip(segments, files, strict=True)):
        assert set(body) == BODY_KEYS
        assert body["lot"] == LOT and body["rendition"] == "360p" and body["codec"] == "VP8"
        assert body["index"] == position and body["prev"] == previous
        content = path.read_bytes()
        assert body["sha256"] == hashlib.sha256(content).hexdigest()
        assert body["bytes"] == len(content)
        header, packets = parse_segment(content)
        assert header.index == position and body["packets"] == len(packets)
        assert body["media_start"] == packets[0].pts <= packets[-1].pts <= body["media_end"]
        assert parse_time(body["start"]) == packets[0].capture_us
        assert parse_time(body["start"]) < parse_time(body["end"])
        previous = body["sha256"]
    seqs = [seq for seq, _ in segments]
    assert seqs == sorted(seqs)
    for (_, earlier), (_, later) in zip(segments, segments[1:], strict=False):
        assert earlier["media_end"] == later["media_start"]
        assert earlier["end"] == later["start"]

    # the export verifies, and the recording verifies against it
    export = tmp_path / "export"
    source = StoreSource(data)
    try:
        export_ledger(source, export)
    finally:
        source.close()
    capsys.readouterr()
    assert gavel(["audit", "stream", str(recording), "--ledger", str(export)]) == 0
    output = capsys.readouterr().out
    assert f"lot {LOT} rendition 360p" in output and f"segments 0..{len(files) - 1}" in output

    def tampered(name: str) -> Path:
        copy = tmp_path / name
        shutil.copytree(recording, copy)
        return copy

    def audit_fails(copy: Path, segment: int, word: str) -> None:
        capsys.readouterr()
        assert gavel(["audit", "stream", str(copy), "--ledger", str(export)]) == 1
        error = capsys.readouterr().err
        assert f"failed at segment {segment}:" in error and word in error, error

    cut = tampered("cut")
    (cut / files[1].name).unlink()
    audit_fails(cut, 1, "cut")

    last = tampered("cut-last")
    (last / files[-1].name).unlink()
    audit_fails(last, len(files) - 1, "cut")

    swapped = tampered("swap")
    (swapped / files[1].name).rename(swapped / "tmp")
    (swapped / files[2].name).rename(swapped / files[1].name)
    (swapped / "tmp").rename(swapped / files[2].name)
    audit_fails(swapped, 1, "swap")

    flipped = tampered("flip")
    target = flipped / files[2].name
    flipped_bytes = bytearray(target.read_bytes())
    flipped_bytes[len(flipped_bytes) // 2] ^= 0x01
    target.write_bytes(bytes(flipped_bytes))
    audit_fails(flipped, 2, "edit")

    # a later file the ledger never anchored does not cast doubt on what it did anchor
    tail = tampered("tail")
    shutil.copyfile(files[0], tail / f"seg-{len(files):08d}.gvs")
    capsys.readouterr()
    assert gavel(["audit", "stream", str(tail), "--ledger", str(export)]) == 0
    assert "not anchored" in capsys.readouterr().out

    # a ledger that does not verify gives no pass either
    capsys.readouterr()
    assert gavel(["audit", "stream", str(recording), "--ledger", str(tmp_path / "none")]) == 2


async def test_every_lot_streams_with_its_countdown_and_extension(tmp_path: Path) -> None:
    """`lots="all"`: a timed lot streams from its opening (the service's own timer) to its
    close; the picture counts down to the server's end time and marks the soft-close
    extension a late bid causes (rules C6)."""
    data, recordings = tmp_path / "data", tmp_path / "recordings"
    timed = "watch-3"
    scheduled: list[int] = []

    async def seed(service: AuctionService) -> None:
        start = service.now() + SECOND // 2
        scheduled.append(start + 3 * SECOND)
        rules = english_timed(
            start_price=350_000,
            start_at=start,
            end_at=start + 3 * SECOND,
            soft_close=SoftClose(window=2 * SECOND, extend=2 * SECOND),
        )
        await service.add_lot(timed, rules, "Chronograph, steel, 1968")
        await service.submit(timed, RegisterBidder("u1", "K7Q2", kyc_verified=True))

    settings = video_settings(recordings, lots="all")
    async with running_server(data, settings, seed) as running:
        service, hub = running.service, running.video.hub
        assert hub.status(timed).phase == "declared"
        await wait_until(lambda: hub.lot(timed) is not None, 5)  # opened by the lot's timer
        lot = hub.lot(timed)
        assert lot is not None and lot.overlay_state is not None
        assert lot.overlay_state.ends_at_ms == scheduled[0] // 1000
        assert not lot.overlay_state.extended and lot.overlay_state.phase == "Open"
        await wait_until(lambda: service.now() > scheduled[0] - SECOND, 5)  # in the window
        events = await service.submit(timed, PlaceBid("u1", 350_000, "USD"))
        assert type(events[0]).__name__ == "BidAccepted", events
        view = service.view(timed)
        assert view is not None and view.end > scheduled[0]
        await wait_until(lambda: lot.overlay_state.extended, 5)  # type: ignore[union-attr]
        assert lot.overlay_state.ends_at_ms == view.end // 1000
        assert lot.overlay_state.leader_code == "K7Q2"
        assert lot.overlay_state.price_text == "$3,500.00"
        await wait_until(lambda: hub.status(timed).phase == "ended", 8)  # closed, tail over
        assert service.view(timed).status == "SOLD"  # type: ignore[union-attr]
    segments = ledger_segments(data)
    assert segments and [body["index"] for _, body in segments] == list(range(len(segments)))
    assert len(segment_files(recordings / timed / "360p")) == len(segments)


async def test_a_restarted_server_continues_the_lot_evidence_chain(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The server stops while a live lot is in the ring and starts again: the stream resumes
    and its segments continue the chain the ledger anchored; a segment file left behind that
    the ledger never anchored (cut short by a crash) is set aside, not chained."""
    data, recordings = tmp_path / "data", tmp_path / "recordings"
    recording = recordings / LOT / "360p"

    async def seed(service: AuctionService) -> None:
        rules = live_auctioneer(
            start_price=800_000, currency="GBP", start_at=service.now() + 3600 * SECOND
        )
        await service.add_lot(LOT, rules, "Still life with lemons")
        await service.submit(LOT, OpenRing(ask=800_000))

    async with running_server(data, video_settings(recordings), seed) as running:
        assert running.video.hub.lot(LOT) is not None  # in the ring at startup: streaming
        await wait_until(lambda: len(running.video.sink.appended) >= 2, 10)
    first_run = len(segment_files(recording))
    assert first_run == len(ledger_segments(data)) >= 3  # the last one closed at shutdown
    crashed = segment_files(recording)[-1].read_bytes()
    (recording / f"seg-{first_run:08d}.gvs").write_bytes(crashed[: len(crashed) // 2])

    async with running_server(data, video_settings(recordings)) as running:
        assert running.video.hub.lot(LOT) is not None
        await wait_until(lambda: len(running.video.sink.appended) >= 2, 10)
    aside = recordings / LOT / "360p.unanchored-1"
    assert [p.name for p in segment_files(aside)] == [f"seg-{first_run:08d}.gvs"]
    segments = ledger_segments(data)
    files = segment_files(recording)
    assert len(files) == len(segments) > first_run
    previous = "0" * 64
    for position, (_, body) in enumerate(segments):
        assert body["index"] == position and body["prev"] == previous
        previous = body["sha256"]

    export = tmp_path / "export"
    source = StoreSource(data)
    try:
        export_ledger(source, export)
    finally:
        source.close()
    capsys.readouterr()
    assert gavel(["audit", "stream", str(recording), "--ledger", str(export), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] and report["segments"] == len(files) and report["unanchored"] == []
    assert report["first_index"] == 0 and report["last_index"] == len(files) - 1
