"""The soak (`python -m scripts.soak`, reliability part 6): its verdict logic, and a short real run.

The long run (30 minutes, `--minutes 30`) is documented in RELIABILITY.md; here the same script
runs for ~40 s against a real `gavel serve` with three notaries and one live-video viewer and
must see no error at all.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
from pathlib import Path

import pytest
from repo_kit import REPO
from script_kit import load_script, script_command

soak = load_script("soak")


def series(rss: list[int], fds: list[int] | None = None, published: int = 100) -> list:  # type: ignore[type-arg]
    return [
        soak.Sample(
            t_s=10.0 * (i + 1),
            rss_kib=value + 20_000,
            anon_kib=value,
            fds=(fds[i] if fds else 50),
            published=published * (i + 1),
        )
        for i, value in enumerate(rss)
    ]


def test_slope_is_least_squares_per_minute() -> None:
    assert soak.slope_per_minute([(0, 100), (60, 160), (120, 220)]) == pytest.approx(60)
    assert soak.slope_per_minute([(0, 5), (30, 5)]) == 0
    assert soak.slope_per_minute([(0, 5)]) == 0
    noisy = [(10.0 * i, 1000 + (7 if i % 2 else -7)) for i in range(20)]
    assert abs(soak.slope_per_minute(noisy)) < 5


def test_flat_memory_passes_and_growth_fails() -> None:
    warm_then_flat = [100_000 + 2_000 * i for i in range(5)] + [
        110_000 + (i % 3) * 40 for i in range(15)
    ]
    verdict = soak.judge(series(warm_then_flat), errors=0)
    assert verdict.passed, verdict.reasons  # warm-up in the first half does not count
    leaking = [100_000 + 100 * i for i in range(20)]  # 100 KiB per 10 s: 600 KiB/min
    verdict = soak.judge(series(leaking), errors=0)
    assert not verdict.passed
    assert verdict.rss_slope_kib_per_min == pytest.approx(600)
    assert any("memory grows" in reason for reason in verdict.reasons)
    slow_leak = [100_000 + 30 * i for i in range(20)]  # 180 KiB/min: under the 256 limit
    assert soak.judge(series(slow_leak), errors=0).passed
    assert not soak.judge(series(slow_leak), errors=0, rss_slope_limit=100).passed


def test_errors_fds_checkpoints_and_short_runs_fail() -> None:
    flat = [100_000] * 12
    assert soak.judge(series(flat), errors=0).passed
    assert "1 errors" in soak.judge(series(flat), errors=1).reasons
    growing_fds = list(range(50, 50 + 12 * 5, 5))
    verdict = soak.judge(series(flat, fds=growing_fds), errors=0)
    assert not verdict.passed and verdict.fd_growth == 30  # floor 65 -> 95
    spikes = [50 + (30 if i % 3 == 0 else 0) for i in range(12)]  # requests come and go
    assert soak.judge(series(flat, fds=spikes), errors=0).passed
    stuck = soak.judge(series(flat, published=0), errors=0)
    assert not stuck.passed and any("checkpoint" in reason for reason in stuck.reasons)
    assert soak.judge(series(flat, published=0), errors=0, need_checkpoints=False).passed
    assert not soak.judge(series(flat[:3]), errors=0).passed


def test_a_viewer_without_frames_after_the_first_interval_is_an_error() -> None:
    def watched(stalled: list[int]) -> list:  # type: ignore[type-arg]
        return [
            dataclasses.replace(sample, viewers=2, viewer_fps=0.0 if n else 25.0, viewers_stalled=n)
            for sample, n in zip(series([100_000] * len(stalled)), stalled, strict=True)
        ]

    assert soak.judge(watched([0] * 8), errors=0).passed
    assert soak.judge(watched([2] + [0] * 7), errors=0).passed  # the first interval: warm-up
    verdict = soak.judge(watched([0, 0, 0, 1, 0, 2, 0, 0]), errors=0)
    assert not verdict.passed
    assert verdict.reasons == ("3 errors (3 of them: a viewer decoded no frame over an interval)",)
    both = soak.judge(watched([0, 0, 0, 1, 0, 0, 0, 0]), errors=2)
    assert both.reasons == ("3 errors (1 of them: a viewer decoded no frame over an interval)",)


def smaps(*mappings: tuple[str, str, str, int]) -> str:
    """/proc/PID/smaps text: (address range, permissions, name, anonymous KiB) per mapping."""
    return "".join(
        f"{span} {perms} 00000000 00:00 0 {name}\nSize: 4 kB\nAnonymous: {kib} kB\n"
        "AnonHugePages: 0 kB\n"
        for span, perms, name, kib in mappings
    )


SMAPS = smaps(
    ("55d0c0a00000-55d0c0b21000", "rw-p", "[heap]", 1100),
    ("7f5228000000-7f5228021000", "rw-p", "", 120),  # a thread arena's heap, grown a little
    ("7f5228021000-7f522c000000", "---p", "", 0),  # and its reserve
    ("7f5260000000-7f5264000000", "rw-p", "", 65536),  # a thread arena's heap, full size
    ("7f523cffb000-7f523d7fb000", "rw-p", "", 40),  # a thread stack
    ("7f5269c00000-7f526a0b9000", "rw-p", "", 4056),  # mmapped blocks, pymalloc's arenas
    ("7f526a3a0000-7f526a3a4000", "rw-p", "/usr/lib/x86_64-linux-gnu/libc.so.6", 16),
    ("7f5270000000-7f5270001000", "r--p", "/usr/lib/locale/C.utf8/LC_CTYPE", 0),
    ("7ffc00000000-7ffc00021000", "rw-p", "[stack]", 132),
)


def test_anonymous_memory_is_split_into_main_heap_thread_arenas_and_the_rest() -> None:
    heap, arenas, count, rest = soak.anon_breakdown(SMAPS)
    assert heap == 1100
    # two thread-arena heaps (64 MiB-aligned, inside 64 MiB); the reserve after one has none
    assert (arenas, count) == (120 + 65536, 2)
    # a thread stack, pymalloc-like blocks, a library's copied page, the process stack
    assert rest == 40 + 4056 + 16 + 132
    assert soak.anon_breakdown("") == (0, 0, 0, 0)


@pytest.mark.slow
def test_a_short_soak_has_no_errors(tmp_path: Path) -> None:
    out = tmp_path / "soak.json"
    result = subprocess.run(
        [
            *script_command("soak"),
            "--seconds",
            "28",
            "--interval",
            "3.5",
            "--bidders",
            "4",
            "--watchers",
            "2",
            "--viewers",
            "1",
            "--lots",
            "2",
            "--lot-seconds",
            "10",
            "--rate",
            "3",
            "--notaries",
            "3",
            "--json",
            str(out),
        ],  # fmt: skip
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert result.returncode in (0, 1), result.stdout + result.stderr
    report = json.loads(out.read_text())
    assert report["errors"] == [], report["errors"]
    assert report["server_exit"] == 0 and report["notaries"] == 3
    samples = [
        soak.Sample(**{k: (v if v is not None else float("nan")) for k, v in s.items()})
        for s in report["samples"]
    ]
    assert len(samples) >= 7
    assert all(s.rss_kib > 10_000 and s.fds > 5 for s in samples)
    # the breakdown covers the anonymous memory (read a moment apart from RssAnon)
    for s in samples:
        parts = s.heap_kib + s.arenas_kib + s.other_anon_kib
        assert s.heap_kib > 0 and s.other_anon_kib > 0
        assert abs(parts - s.anon_kib) <= 0.1 * s.anon_kib, (parts, s.anon_kib)
    assert sum(s.acks > 0 for s in samples) >= len(samples) // 2  # lots close, new ones open
    assert samples[-1].published > samples[0].published  # co-signed checkpoints kept coming
    assert samples[-1].cosignatures >= 2
    assert report["lots_closed"] >= 2 and report["accepted"] > 50
    # the live lot streamed all along and the viewer decoded its frames
    assert report["viewers"] == 1 and report["viewer_reconnects"] == 0
    assert report["viewer_frames"][0] > 0
    assert any(s.viewer_fps > 0 for s in samples)
    assert all(s.viewers_stalled == 0 for s in samples[1:])
    # the verdict printed is the verdict of the samples
    again = soak.judge(samples, errors=0)
    assert report["verdict"]["passed"] == again.passed
    assert report["verdict"]["rss_slope_kib_per_min"] == pytest.approx(again.rss_slope_kib_per_min)
    assert (result.returncode == 0) == again.passed
    assert "soak: verdict" in result.stdout
