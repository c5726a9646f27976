"""Evidence from a live stream: keyframe-aligned segment files of the packets sent, chained
by SHA-256 through the sink, verified against the expected list; a cut, a swap and a single
flipped byte are named; the audit CLI."""

from __future__ import annotations

import argparse
import asyncio
import shutil
import time
from pathlib import Path

import av
import pytest
from stream_kit import PATTERN, running_stream_app, stream_settings, wait_until

from streaming import cli_register, verify_recording
from streaming.cli import main as audit_main
from streaming.errors import SegmentAltered, SegmentMissing, SegmentOutOfOrder
from streaming.evidence import parse_segment, segment_files
from streaming.model import GENESIS_SHA256, ClosedSegment, ExpectedSegment, OverlayState
from streaming.overlay import decode_strip, plane_view, sample_strip
from streaming.pipeline import LotStream
from streaming.recorder import JsonlSegmentSink, MemorySegmentSink


def _expected(segments: list[ClosedSegment]) -> list[ExpectedSegment]:
    return [ExpectedSegment(s.index, s.sha256_hex, s.prev_sha256_hex) for s in segments]


async def _wait_for_frames(lot: LotStream | None, frames: int) -> None:
    assert lot is not None
    await wait_until(lambda: lot.frames_out >= frames, 10)


@pytest.fixture(scope="module")
def recording(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[ClosedSegment]]:
    """Stream a lot for ~2.5 s with segments of 0.5 s, twice (the second run continues the
    chain, as after a server restart), and return the 720p recording and the sink's list."""
    root = tmp_path_factory.mktemp("evidence")
    sink = MemorySegmentSink()

    async def stream() -> None:
        settings = stream_settings(
            recording_dir=root,
            segment_sink=sink,
            segment_seconds=0.5,
            gop_seconds=0.5,
        )
        for run in range(2):
            async with running_stream_app(settings) as running:
                last = sink.segments[-1] if sink.segments else None
                running.hub.open_lot(
                    "lot-1",
                    PATTERN,
                    OverlayState(
                        seq=1, server_ts_ms=0, title="Flat", price_text="£1", phase="OPEN"
                    ),
                    first_segment_index=last.index + 1 if last else 0,
                    prev_segment_sha256_hex=last.sha256_hex if last else GENESIS_SHA256,
                )
                await _wait_for_frames(running.hub.lot("lot-1"), 30 + 15 * run)
                running.hub.update_overlay(
                    "lot-1",
                    OverlayState(
                        seq=2, server_ts_ms=0, title="Flat", price_text="£2", phase="OPEN"
                    ),
                )
                await asyncio.sleep(0.6)
                await running.hub.close_lot("lot-1")

    asyncio.run(stream())
    return root / "lot-1" / "720p", list(sink.segments)


def test_segments_are_chained_keyframe_aligned_and_decodable(
    recording: tuple[Path, list[ClosedSegment]],
) -> None:
    directory, segments = recording
    assert len(segments) >= 4
    assert segments[0].prev_sha256_hex == GENESIS_SHA256
    for before, after in zip(segments, segments[1:], strict=False):
        assert after.index == before.index + 1 and after.prev_sha256_hex == before.sha256_hex
        assert after.started_us >= before.started_us
    report = verify_recording(directory, _expected(segments))
    assert report.segments == len(segments) and report.codec == "VP8"
    for segment in segments:
        header, packets = parse_segment(segment.path.read_bytes())
        assert header.index == segment.index and packets[0].keyframe
        decoder = av.CodecContext.create("libvpx", "r")
        frames = []
        for packet in packets:  # each segment decodes on its own, from its first keyframe
            frames += decoder.decode(av.Packet(packet.data))
        assert len(frames) == len(packets)
        y_plane = frames[-1].planes[0]
        y = plane_view(
            y_plane, width=y_plane.width, height=y_plane.height, line_size=y_plane.line_size
        )
        stamp = decode_strip(sample_strip(y), packets[-1].capture_us // 1000)
        assert stamp == packets[-1].capture_us // 1000  # the recording shows the capture clock


def _copy(directory: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "copy"
    shutil.copytree(directory, copy)
    return copy


def test_a_cut_is_named(recording: tuple[Path, list[ClosedSegment]], tmp_path: Path) -> None:
    directory, segments = recording
    copy = _copy(directory, tmp_path)
    segment_files(copy)[2].unlink()
    with pytest.raises(SegmentMissing) as caught:
        verify_recording(copy, _expected(segments))
    assert caught.value.index == segments[2].index


def test_a_swap_is_named(recording: tuple[Path, list[ClosedSegment]], tmp_path: Path) -> None:
    directory, segments = recording
    copy = _copy(directory, tmp_path)
    first, second = segment_files(copy)[1:3]
    a, b = first.read_bytes(), second.read_bytes()
    first.write_bytes(b)
    second.write_bytes(a)
    with pytest.raises(SegmentOutOfOrder) as caught:
        verify_recording(copy, _expected(segments))
    assert caught.value.index == segments[1].index


def test_a_single_flipped_byte_is_named(
    recording: tuple[Path, list[ClosedSegment]], tmp_path: Path
) -> None:
    directory, segments = recording
    copy = _copy(directory, tmp_path)
    target = segment_files(copy)[3]
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0x01
    target.write_bytes(bytes(data))
    with pytest.raises(SegmentAltered) as caught:
        verify_recording(copy, _expected(segments))
    assert caught.value.index == segments[3].index


def test_the_audit_cli(
    recording: tuple[Path, list[ClosedSegment]],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    directory, segments = recording
    ledger = tmp_path / "segments.jsonl"
    sink = JsonlSegmentSink(ledger)

    async def write() -> None:
        for segment in segments:
            await sink.segment_closed(segment)

    asyncio.run(write())
    assert audit_main([str(directory), "--expected", str(ledger)]) == 0
    assert "OK: lot lot-1 rendition 720p" in capsys.readouterr().out

    copy = _copy(directory, tmp_path)
    segment_files(copy)[1].unlink()
    assert audit_main([str(copy), "--expected", str(ledger)]) == 1
    assert f"FAILED (segment {segments[1].index}): cut" in capsys.readouterr().err

    # the way `gavel audit stream RECORDING_DIR --ledger EXPORT` mounts it
    parser = argparse.ArgumentParser(prog="gavel")
    audit = parser.add_subparsers(dest="command").add_parser("audit")
    loaded: list[Path] = []

    def from_ledger(path: Path, lot: str | None, rendition: str | None) -> list[ExpectedSegment]:
        loaded.append(path)
        return _expected(segments)

    cli_register(audit.add_subparsers(dest="what"), from_ledger)
    args = parser.parse_args(["audit", "stream", str(directory), "--ledger", "export.json"])
    assert args.func(args) == 0 and loaded == [Path("export.json")]


def test_recording_costs_little(recording: tuple[Path, list[ClosedSegment]]) -> None:
    """Verification reads each file once; a few MB verify in well under a second."""
    directory, segments = recording
    started = time.perf_counter()
    verify_recording(directory, _expected(segments))
    assert time.perf_counter() - started < 2.0
