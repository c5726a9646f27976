"""The heap trimmer (`auction.heap`): freed C-heap memory really goes back to the system, the
trimmer runs on its interval until cancelled, the server wires it (or not), and a live lot's
video jobs run on the lot's own thread, which ends with the lot."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from repo_kit import REPO
from script_kit import load_script
from stream_kit import PATTERN, stream_settings, wait_until

from auction import heap
from auction.web.app import HEAP, Settings, _heap_context, create_app
from streaming.encoder import FrameProcessor
from streaming.model import R360P, R720P
from streaming.pipeline import LotStream
from streaming.sources import PatternSource

ROOT = REPO

needs_glibc = pytest.mark.skipif(
    not heap.available(), reason="malloc_trim exists only in glibc (this C library has none)"
)

# In a fresh interpreter: 192 MiB of 64 KiB blocks (below glibc's mmap threshold, so from the
# heap), all freed but the topmost one, which pins the heap's top so that free() alone cannot
# shrink it. RssAnon is read before and after `heap.trim()`.
FRAGMENT = """
import sys
from auction import heap

def anon_kib():
    for line in open("/proc/self/status"):
        if line.startswith("RssAnon:"):
            return int(line.split()[1])

blocks = [bytearray(64 * 1024) for _ in range(3072)]
top = blocks[-1]
del blocks[:-1]
before = anon_kib()
released = heap.trim()
after = anon_kib()
print(before, after, int(released))
"""


@needs_glibc
def test_trim_gives_freed_heap_memory_back_to_the_system() -> None:
    done = subprocess.run(
        [sys.executable, "-c", FRAGMENT],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert done.returncode == 0, done.stderr
    before, after, released = (int(x) for x in done.stdout.split())
    assert released == 1
    assert before - after > 150 * 1024, (before, after)  # KiB: most of the 192 MiB freed


def test_a_trim_interval_must_be_positive() -> None:
    for bad in (0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="positive"):
            heap.HeapTrimmer(bad)


@needs_glibc
async def test_the_trimmer_runs_on_its_interval_until_cancelled() -> None:
    trimmer = heap.HeapTrimmer(0.02)
    task = asyncio.create_task(trimmer.run())
    await wait_until(lambda: trimmer.runs >= 3, 10)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    runs = trimmer.runs
    await asyncio.sleep(0.1)
    assert trimmer.runs == runs
    assert trimmer.last_ms >= 0


def test_the_server_trims_unless_told_not_to(tmp_path: Path) -> None:
    assert Settings().heap_trim_s == 60.0
    assert _heap_context in create_app(Settings(data_dir=tmp_path)).cleanup_ctx
    app = create_app(Settings(data_dir=tmp_path, heap_trim_s=0))
    assert _heap_context not in app.cleanup_ctx
    assert HEAP not in app


def _video_threads(lot: str) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith(f"video-{lot}")]


async def test_a_live_lot_encodes_on_its_own_thread_which_ends_with_it() -> None:
    stream = LotStream("lot-w", PATTERN, stream_settings())
    stream.start()
    try:
        stream.subscribe("360p")  # nothing is encoded before someone watches
        await wait_until(lambda: stream.frames_out >= 5, 20)
        assert len(_video_threads("lot-w")) == 1
    finally:
        await stream.stop()
    assert _video_threads("lot-w") == []


def test_a_kept_scaler_gives_the_pixels_a_new_scaler_gives() -> None:
    # The live path keeps one scaler per rendition (no set-up and no small allocations per
    # frame); the pictures must be the ones a fresh scaler makes, frame after frame, and
    # after the source changes size.
    processor = FrameProcessor((R360P, R720P), encode=False, clock_strip=False)
    try:
        for width, height in ((1280, 720), (1280, 720), (1920, 1080), (1280, 720)):
            source = PatternSource(width, height, 30)
            for index in range(3):
                frame = source.render(index)
                kept = processor.scaled(frame, R360P)
                fresh = frame.reformat(
                    width=R360P.width,
                    height=R360P.height,
                    format="yuv420p",
                    interpolation="BILINEAR",
                )
                assert (kept.width, kept.height) == (R360P.width, R360P.height)
                for a, b in zip(kept.planes, fresh.planes, strict=True):
                    assert bytes(a) == bytes(b)
    finally:
        processor.close()


def test_the_scaling_benchmark_runs() -> None:
    result = load_script("bench_stream").bench_scaling(frames=5, rounds=2)
    assert set(result["median_ms"]) == {"new_scaler_per_frame", "kept_scaler"}
    assert all(len(v) == 2 and min(v) > 0 for v in result["per_frame_ms"].values())
