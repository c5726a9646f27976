"""The pure decisions of `auction.video` (which lot streams, what its picture says, what a
`stream_segment` entry holds, which entries a recording is checked against) and the ledger
sink's failure handling against a real service on SQLite."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from auction.rules import SECOND
from auction.service import AuctionService, LotView
from auction.storage import Storage, StorageError
from auction.video import (
    VIDEO,
    DeclareStream,
    KeepStream,
    LedgerSegmentSink,
    ShowState,
    StartStream,
    StopStreamLater,
    VideoDirector,
    VideoSettings,
    expected_segments,
    format_price,
    install_video,
    overlay_for,
    segment_body,
    wants_stream,
)
from chain import EntryType, canonical_json, parse_entry
from streaming.errors import RecordingError
from streaming.model import GENESIS_SHA256, ClosedSegment, ExpectedSegment

T0 = 1_795_000_000 * SECOND


def view(**changes: Any) -> LotView:
    base = LotView(
        lot_id="lot-1",
        sale_id=None,
        sale_title=None,
        title="Flat 1502, Hangzhou",
        format="LIVE_AUCTIONEER",
        currency="GBP",
        legal_timezone="Europe/London",
        status="SCHEDULED",
        phase=None,
        start_price=800_000,
        price=None,
        leader_code=None,
        min_next=800_000,
        start_at=T0,
        end=T0,
        hammer_not_before=None,
        reserve_met=None,
        bids=0,
        seq=0,
        result=None,
        closed_at=None,
    )
    return dataclasses.replace(base, **changes)


def test_prices_are_formatted_from_minor_units() -> None:
    assert format_price(800_000, "GBP") == "£8,000.00"
    assert format_price(210_000_000, "CNY") == "¥2,100,000.00"
    assert format_price(1_500, "JPY") == "¥1,500"
    assert format_price(12_345, "KWD") == "KWD 12.345"
    assert format_price(5, "CHF") == "CHF 0.05"


def test_which_lots_stream() -> None:
    live = view(status="OPEN", phase="IN_RING")
    timed = view(status="OPEN", format="ENGLISH_TIMED")
    assert wants_stream(live, "live") and not wants_stream(timed, "live")
    assert wants_stream(timed, "all")
    assert wants_stream(view(status="PAUSED"), "live")
    for status in ("SCHEDULED", "SOLD", "FAILED", "CANCELLED"):
        assert not wants_stream(view(status=status), "all")
    assert not wants_stream(view(status="OPEN", lot_id="../etc"), "all")


def test_the_picture_of_a_timed_lot_counts_down_and_shows_an_extension() -> None:
    open_lot = view(
        format="ENGLISH_TIMED",
        currency="USD",
        status="OPEN",
        price=350_000,
        leader_code="K7Q2",
        min_next=360_000,
        end=T0 + 60 * SECOND,
        seq=7,
    )
    state = overlay_for(open_lot, now_us=T0, scheduled_end_us=T0 + 60 * SECOND)
    assert (state.seq, state.server_ts_ms) == (7, T0 // 1000)
    assert state.price_text == "$3,500.00" and state.leader_code == "K7Q2"
    assert state.ask_minor == 360_000 and state.phase == "Open"
    assert state.ends_at_ms == (T0 + 60 * SECOND) // 1000 and not state.extended
    assert state.time_left_s(T0 // 1000) == 60
    later = dataclasses.replace(open_lot, end=T0 + 90 * SECOND, seq=9)
    extended = overlay_for(later, now_us=T0, scheduled_end_us=T0 + 60 * SECOND)
    assert extended.extended and extended.ends_at_ms == (T0 + 90 * SECOND) // 1000
    sold = overlay_for(
        dataclasses.replace(later, status="SOLD"), now_us=T0, scheduled_end_us=T0 + 60 * SECOND
    )
    assert sold.phase == "Sold" and sold.ends_at_ms is None and sold.ask_minor is None


def test_the_picture_of_a_live_lot_shows_the_ring_phase_not_a_clock() -> None:
    ring = view(status="OPEN", phase="FAIR_WARNING", price=900_000, leader_code="floor:101")
    state = overlay_for(ring, now_us=T0, scheduled_end_us=T0)
    assert state.phase == "Fair warning" and state.price_text == "£9,000.00"
    assert state.ends_at_ms is None and not state.extended
    waiting = overlay_for(view(), now_us=T0, scheduled_end_us=T0)
    assert waiting.price_text == "start £8,000.00" and waiting.phase == "Scheduled"


def test_the_director_opens_shows_and_closes_after_the_tail() -> None:
    director = VideoDirector("live")
    kinds = [type(a) for a in director.observe(view(), now_us=T0, scheduled_end_us=T0)]
    assert kinds == [DeclareStream]
    actions = director.observe(
        view(status="OPEN", phase="IN_RING", seq=2), now_us=T0, scheduled_end_us=T0
    )
    assert [type(a) for a in actions] == [StartStream]
    assert isinstance(actions[0], StartStream) and actions[0].overlay.seq == 2
    actions = director.observe(view(status="OPEN", price=1, seq=3), now_us=T0, scheduled_end_us=T0)
    assert [type(a) for a in actions] == [ShowState]
    actions = director.observe(view(status="SOLD", seq=4), now_us=T0, scheduled_end_us=T0)
    assert [type(a) for a in actions] == [ShowState, StopStreamLater]
    # re-opened before the tail ended (rules C14 reopen): the close is cancelled
    actions = director.observe(view(status="OPEN", seq=5), now_us=T0, scheduled_end_us=T0)
    assert [type(a) for a in actions] == [KeepStream, ShowState]
    director.observe(view(status="SOLD", seq=6), now_us=T0, scheduled_end_us=T0)
    director.stream_stopped("lot-1")
    assert not director.streaming("lot-1")
    assert director.observe(view(status="SOLD", seq=6), now_us=T0, scheduled_end_us=T0) == []
    timed = VideoDirector("live")
    assert (
        timed.observe(view(format="JUDICIAL_CN", status="OPEN"), now_us=T0, scheduled_end_us=T0)
        == []
    )


def segment(index: int, prev: str, digest: str, lot_id: str = "lot-1") -> ClosedSegment:
    return ClosedSegment(
        lot_id=lot_id,
        rendition="720p",
        index=index,
        sha256_hex=digest,
        prev_sha256_hex=prev,
        started_us=T0 + index * SECOND,
        ended_us=T0 + (index + 1) * SECOND,
        path=Path(f"/nowhere/seg-{index:08d}.gvs"),
        packets=30,
        size_bytes=12_345,
        codec="VP8",
        start_pts=index * 90_000,
        end_pts=(index + 1) * 90_000,
    )


def test_a_segment_body_is_canonical_json_without_personal_data() -> None:
    body = segment_body(segment(3, "a" * 64, "b" * 64))
    assert body == {
        "v": 1,
        "lot": "lot-1",
        "rendition": "720p",
        "codec": "VP8",
        "index": 3,
        "sha256": "b" * 64,
        "prev": "a" * 64,
        "time_base": "1/90000",
        "media_start": 270_000,
        "media_end": 360_000,
        "start": "2026-11-18T11:06:43.000000Z",
        "end": "2026-11-18T11:06:44.000000Z",
        "bytes": 12_345,
        "packets": 30,
    }
    canonical_json(body)  # no floats, nothing the ledger cannot hold
    assert "path" not in body  # where the file lives is the server's business


def test_expected_segments_are_the_lot_and_rendition_entries_in_log_order() -> None:
    bodies = [
        segment_body(segment(0, GENESIS_SHA256, "1" * 64)),
        segment_body(segment(0, GENESIS_SHA256, "9" * 64, lot_id="lot-2")),
        segment_body(segment(1, "1" * 64, "2" * 64)),
    ]
    assert expected_segments(bodies, "lot-1", "720p") == [
        ExpectedSegment(0, "1" * 64, GENESIS_SHA256),
        ExpectedSegment(1, "2" * 64, "1" * 64),
    ]
    assert expected_segments(bodies, "lot-1", "360p") == []
    broken = dict(bodies[2], sha256="not hex")
    with pytest.raises(RecordingError, match="malformed"):
        expected_segments([bodies[0], broken], "lot-1", "720p")


def test_video_settings_refuse_nonsense_and_follow_streaming_defaults(tmp_path: Path) -> None:
    settings = VideoSettings(recordings_dir=tmp_path)
    assert settings.recorded_rendition == "720p" and settings.lots == "all"
    sink = LedgerSegmentSink(4)
    stream = settings.stream_settings(sink)
    assert stream.segment_sink is sink and stream.recording_dir == tmp_path
    assert stream.ice_servers == () and not stream.loopback_only
    with pytest.raises(ValueError):
        VideoSettings(lots="some")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        VideoSettings(ledger_queue=0)


class FlakyLedger:
    """The real service's `record`, refusing the appends whose segment index is in `refuse`
    (as a database that is briefly unavailable would)."""

    def __init__(self, service: AuctionService, refuse: set[int]) -> None:
        self.service = service
        self.refuse = refuse
        self.calls = 0

    async def record(self, entry_type: EntryType, body: dict[str, Any]) -> int:
        self.calls += 1
        if body["index"] in self.refuse:
            raise StorageError("database unavailable")
        return await self.service.record(entry_type, body)


async def test_a_failed_append_is_counted_and_the_lot_chain_stays_unbroken(tmp_path: Path) -> None:
    store = await asyncio.to_thread(Storage.open, tmp_path / "data")
    async with AuctionService(store) as service:
        ledger = FlakyLedger(service, refuse={2})
        sink = LedgerSegmentSink(8, retries=2, retry_seconds=0.01)
        sink.start(ledger.record)
        digests = [f"{n:x}" * 64 for n in range(1, 6)]
        prev = GENESIS_SHA256
        for index, digest in enumerate(digests):
            await sink.segment_closed(segment(index, prev, digest))
            prev = digest
        await sink.segment_closed(segment(0, GENESIS_SHA256, "f" * 64, lot_id="lot-2"))
        await sink.close(5)
        assert sink.failed == 1 and sink.skipped == 2 and sink.dropped == 0
        assert ledger.calls == 2 + 2 + 1  # segments 0, 1; two tries of 2; lot-2's
        assert sink.broken == {("lot-1", "720p")}
        assert len(sink.appended) == 3
        seqs = sink.appended
    with Storage.open(tmp_path / "data", read_only=True) as reader:
        entries = [parse_entry(raw) for raw in reader.ledger_entries(0, reader.ledger_size())]
    landed = [e for e in entries if e.type == EntryType.STREAM_SEGMENT]
    assert [e.seq for e in landed] == seqs
    assert [(e.body["lot"], e.body["index"]) for e in landed] == [
        ("lot-1", 0),
        ("lot-1", 1),
        ("lot-2", 0),
    ]
    # what did land is one chain: a recording of segments 0..1 verifies against it
    assert expected_segments([e.body for e in landed], "lot-1", "720p")[-1].index == 1


async def test_a_full_queue_drops_instead_of_waiting(tmp_path: Path) -> None:
    sink = LedgerSegmentSink(2)  # not started: nothing drains the queue
    for index in range(4):
        await asyncio.wait_for(sink.segment_closed(segment(index, "0" * 64, "1" * 64)), 0.1)
    assert sink.dropped == 2 and sink.broken == {("lot-1", "720p")}


def test_disabled_video_mounts_nothing(tmp_path: Path) -> None:
    key = web.AppKey("service", AuctionService)
    app = web.Application()
    install_video(app, key, VideoSettings(enabled=False, recordings_dir=tmp_path))
    assert VIDEO not in app and not app.cleanup_ctx
    assert [r.canonical for r in app.router.resources()] == []
    enabled = web.Application()
    install_video(enabled, key, VideoSettings(recordings_dir=tmp_path))
    routes = {r.canonical for r in enabled.router.resources()}
    assert {"/stream", "/api/lots/{lot_id}/stream/offer", "/api/lots/{lot_id}/stream"} <= routes
    assert VIDEO in enabled and len(enabled.cleanup_ctx) == 1
