#!/usr/bin/env python3
"""Benchmark: viewers against server CPU and delivered frame rate, for aiortc's default
per-viewer encode and for the shared-encode path, in the same run; glass-to-glass latency
in headless Chromium from the capture time drawn into each frame.

    .venv/bin/python -m scripts.bench_stream [--quick] [--out bench_stream.json]

Layout (2 cores): the server (`python -m streaming.devserver`, one lot, the 480p30 test
pattern with sensor-like noise, VP8) is pinned to CPU 0; this script, the receivers
(`python -m streaming.loadtest`, other processes) and Chromium are pinned to CPU 1. The
first receiver of each step decodes every frame; the others count completed frames (RTP
marker bits) after SRTP, without jitter buffer or decoder, so one core can drive hundreds.

Per step: connect N viewers, warm up, then measure over a window: server CPU (utime+stime of
the server process, all threads, from /proc), the receivers' own CPU, frames per second of
every viewer (min / median), and lag growth (arrival − media time over the window: queueing).
A ladder stops once the median rate falls below 25 fps or the receivers' core saturates.
Everything runs under timeouts and is stopped by PID.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from .harness.machine import core_busy, core_times, cpu_seconds, machine
from .harness.processes import ROOT, ChildProcess, StartError
from .harness.report import write_json
from .harness.stats import least_squares

PYTHON = sys.executable
SERVER_CPU = "0"
CLIENT_CPU = 1
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--use-fake-ui-for-media-stream",
    "--allow-loopback-in-peer-connection",
]


def prioritize(pid: int, nice: int) -> None:
    """Give the process's autogroup the niceness `nice`. With kernel.sched_autogroup_enabled
    (Debian's default), plain nice values only rank processes within one session: against
    other sessions' work only the autogroup's niceness counts. Needs root for < 0."""
    if nice:
        try:
            Path(f"/proc/{pid}/autogroup").write_text(str(nice))
        except OSError as exc:
            print(f"# cannot set the autogroup niceness of {pid}: {exc}", file=sys.stderr)


class Server(ChildProcess):
    """The video development server, pinned to CPU 0 in a session of its own (its own
    autogroup) with the autogroup niceness `nice`; started."""

    def __init__(self, port: int, mode: str, duration: float, nice: int) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.nice = nice
        command = [
            "taskset", "-c", SERVER_CPU, PYTHON, "-m", "streaming.devserver",
            "--port", str(port), "--renditions", "480p", "--source", "854x480",
            "--encode-mode", mode, "--duration", str(duration), "--max-viewers", "2000",
        ]  # fmt: skip
        super().__init__("streaming.devserver", command, None, new_session=True)
        try:
            self.start(r"^READY")
        except StartError as exc:
            raise RuntimeError(f"the server did not start: {exc}") from exc
        assert self.process is not None
        prioritize(self.process.pid, nice)

    def stop(self, timeout: float = 15.0) -> int | None:
        return super().stop(timeout)


def foreign_load(server_pid: int, seconds: float = 1.0) -> float:
    """CPU % (of both cores together, 0..200) used by processes other than the idle server."""
    cores, cpu = core_times(), cpu_seconds(server_pid)
    time.sleep(seconds)
    busy = sum(core_busy(cores).values())
    return busy - (cpu_seconds(server_pid) - cpu) / seconds * 100


def wait_for_quiet(server_pid: int, max_wait: float) -> float:
    """This machine may be shared: wait (up to `max_wait` s) until other processes use less
    than 15 % of a core, so a step measures our server, not a neighbour. Returns the foreign
    load seen last (reported with the step)."""
    deadline = time.monotonic() + max_wait
    load = foreign_load(server_pid)
    while load > 15 and time.monotonic() < deadline:
        time.sleep(4)
        load = foreign_load(server_pid)
    return round(load, 1)


def run_step(
    server: Server, viewers: int, warmup: float, window: float, max_wait: float
) -> dict[str, Any]:
    quiet_before = wait_for_quiet(server.process.pid, max_wait=max_wait)
    command = [
        PYTHON, "-m", "streaming.loadtest", "--url", server.url, "--lot", "lot-1",
        "--viewers", str(viewers), "--decoders", "1", "--warmup", str(warmup),
        "--window", str(window), "--markers", "--connect-concurrency", "16",
    ]  # fmt: skip
    process = subprocess.Popen(
        command,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    prioritize(process.pid, server.nice)
    assert process.stdout is not None
    server_cpu: float | None = None
    result: dict[str, Any] = {}
    start_cpu = start_wall = 0.0
    cores = core_times()
    busy: dict[str, float] = {}
    watchdog = threading.Timer(warmup + window + 120 + viewers * 0.2, process.kill)
    watchdog.start()
    try:
        for line in process.stdout:
            if line.startswith("#window-start"):
                start_cpu, start_wall = cpu_seconds(server.process.pid), time.monotonic()
                cores = core_times()
            elif line.startswith("#window-end"):
                elapsed = time.monotonic() - start_wall
                server_cpu = (cpu_seconds(server.process.pid) - start_cpu) / elapsed * 100
                busy = core_busy(cores)
            elif line.startswith("{"):
                result = json.loads(line)
        process.wait(30)
    finally:
        watchdog.cancel()
        if process.poll() is None:
            process.kill()
            process.wait(5)
    result["server_cpu_percent"] = round(server_cpu, 1) if server_cpu is not None else None
    # Busy % of each core during the window, all processes: when the server's core is busy
    # well beyond the server's own share, something else (not ours) competed for it.
    result["core_busy_percent"] = busy
    result["load_average"] = round(os.getloadavg()[0], 2)
    result["foreign_cpu_percent_before"] = quiet_before
    return result


async def chromium_latency(
    url: str, seconds: float, executable: str = "/usr/bin/chromium"
) -> dict[str, Any]:
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=executable, headless=True, args=CHROMIUM_ARGS
        )
        try:
            page = await (await browser.new_context()).new_page()
            await page.goto(f"{url}/stream/static/viewer.html?lot=lot-1&measure=1")
            await page.wait_for_function(
                "window.gavel && (window.gavel.ready || window.gavel.error)", timeout=20_000
            )
            await page.wait_for_function("window.gavel.stream.stats.frames > 30", timeout=20_000)
            await asyncio.sleep(2)
            frames = await page.evaluate("window.gavel.stream.stats.frames")
            count = len(await page.evaluate("window.gavel.stream.stats.latenciesMs"))
            await asyncio.sleep(seconds)
            stats = await page.evaluate("window.gavel.stream.stats")
        finally:
            await browser.close()
    samples = sorted(stats["latenciesMs"][count:] if count < 2000 else stats["latenciesMs"])

    def q(p: float) -> float | None:
        return round(samples[int(p * (len(samples) - 1))], 1) if samples else None

    return {
        "rvfc_per_s": round((stats["frames"] - frames) / seconds, 1),
        "samples": len(samples),
        "latency_ms_p50": q(0.5),
        "latency_ms_p95": q(0.95),
        "latency_ms_max": q(1.0),
    }


def ladder(
    mode: str,
    steps: list[int],
    port: int,
    warmup: float,
    window: float,
    latency_at: list[int],
    max_wait: float,
    nice: int,
) -> dict[str, Any]:
    rows: list[dict[str, Any]] = []
    latency: list[dict[str, Any]] = []
    server = Server(port, mode, duration=3600, nice=nice)
    note = ""
    try:
        time.sleep(2)
        for viewers in steps:
            row = run_step(server, viewers, warmup, window, max_wait)
            row["mode"] = mode
            rows.append(row)
            print(json.dumps(row), flush=True)
            if (row.get("fps_median") or 0) < 25:
                note = f"stopped at {viewers} viewers: median rate below 25 fps"
                break
            if row.get("receiver_cpu_percent", 0) >= 95:
                note = f"stopped at {viewers} viewers: the receivers' core is saturated"
                break
        for extra in latency_at:
            latency.append(measure_latency(server, extra, mode, max_wait))
    finally:
        server.stop()
    good = [
        (r["viewers"], r["server_cpu_percent"])
        for r in rows
        if r.get("server_cpu_percent") is not None and (r.get("fps_min") or 0) >= 29
    ]
    fit = least_squares(good)
    line = None if fit is None else (fit[1], fit[0])
    summary: dict[str, Any] = {"mode": mode, "rows": rows, "latency": latency, "note": note}
    if line is not None:
        intercept, slope = line
        summary["cpu_percent_fixed"] = round(intercept, 2)
        summary["cpu_percent_per_viewer"] = round(slope, 3)
        summary["viewers_per_core_extrapolated"] = (
            int((100 - intercept) / slope) if slope > 0 else None
        )
    return summary


def measure_latency(
    server: Server, background_viewers: int, mode: str, max_wait: float
) -> dict[str, Any]:
    """Chromium latency while `background_viewers` aiortc viewers also watch."""
    wait_for_quiet(server.process.pid, max_wait=max_wait)
    background: subprocess.Popen[bytes] | None = None
    if background_viewers:
        background = subprocess.Popen(
            [
                PYTHON,
                "-m",
                "streaming.loadtest",
                "--url",
                server.url,
                "--lot",
                "lot-1",
                "--viewers",
                str(background_viewers),
                "--decoders",
                "0",
                "--warmup",
                "40",
                "--window",
                "1",
            ],  # fmt: skip
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        prioritize(background.pid, server.nice)
        time.sleep(4 + background_viewers * 0.03)
    start_cpu, start = cpu_seconds(server.process.pid), time.monotonic()
    cores = core_times()
    try:
        result = asyncio.run(chromium_latency(server.url, seconds=10))
    except Exception as exc:  # reported in the results; the run goes on
        result = {"error": f"{type(exc).__name__}: {str(exc)[:200]}"}
    finally:
        cpu = (cpu_seconds(server.process.pid) - start_cpu) / (time.monotonic() - start) * 100
        busy = core_busy(cores)
        if background is not None:
            background.kill()
            background.wait(10)
    result.update(
        {
            "mode": mode,
            "background_viewers": background_viewers,
            "server_cpu_percent": round(cpu, 1),
            "core_busy_percent": busy,
        }
    )
    print(json.dumps(result), flush=True)
    return result


def table(summary: dict[str, Any]) -> str:
    lines = [
        f"### {summary['mode']}",
        "",
        "| viewers | server CPU % | fps min | fps median | decoded fps | lag growth ms "
        "| receivers CPU % | core 0 / core 1 busy % |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in summary["rows"]:
        lines.append(
            f"| {r['viewers']} ({r.get('connected')}) | {r['server_cpu_percent']} | "
            f"{r.get('fps_min')} | {r.get('fps_median')} | {r.get('decoded_fps')} | "
            f"{r.get('lag_growth_ms_max')} | {r.get('receiver_cpu_percent')} | "
            f"{r['core_busy_percent'].get('cpu0')} / {r['core_busy_percent'].get('cpu1')} |"
        )
    if "cpu_percent_per_viewer" in summary:
        lines.append(
            f"\nfit over steps at >= 29 fps: {summary['cpu_percent_fixed']} % + "
            f"{summary['cpu_percent_per_viewer']} % per viewer → about "
            f"{summary['viewers_per_core_extrapolated']} viewers per core"
        )
    if summary["note"]:
        lines.append(f"\n{summary['note']}")
    for lat in summary["latency"]:
        if "error" in lat:
            lines.append(
                f"\nChromium with {lat['background_viewers']} other viewers: {lat['error']}"
            )
            continue
        lines.append(
            f"\nChromium with {lat['background_viewers']} other viewers: rVFC "
            f"{lat['rvfc_per_s']}/s, capture→display p50 {lat['latency_ms_p50']} ms, "
            f"p95 {lat['latency_ms_p95']} ms (server {lat['server_cpu_percent']} %)"
        )
    return "\n".join(lines)


def bench_scaling(frames: int, rounds: int) -> dict[str, Any]:
    """720p -> 360p bilinear scaling of the test pattern, milliseconds of the thread's CPU per
    frame: PyAV's `VideoFrame.reformat`, which sets up a new scaler for every source frame
    (what the live path did before), against `FrameProcessor.scaled`, which keeps one
    `VideoReformatter` per rendition across frames. Every timed frame is a new frame object,
    as in the live path (PyAV caches a scaler on the frame object it reformats, so scaling the
    same frames again would flatter the baseline); the copies are made before the clock
    starts. Both paths in this process, alternating in every round (which goes first
    alternates too), so machine noise falls on both alike."""
    import av

    from streaming.encoder import FrameProcessor
    from streaming.model import R360P, R720P
    from streaming.sources import PatternSource

    source = PatternSource(R720P.width, R720P.height, 30)
    pool = [source.render(i).to_ndarray() for i in range(30)]
    processor = FrameProcessor((R360P, R720P), encode=False, clock_strip=False)

    def new_scaler(frame: Any) -> Any:
        return frame.reformat(
            width=R360P.width, height=R360P.height, format="yuv420p", interpolation="BILINEAR"
        )

    def kept_scaler(frame: Any) -> Any:
        return processor.scaled(frame, R360P)

    paths = {"new_scaler_per_frame": new_scaler, "kept_scaler": kept_scaler}
    per_frame_ms: dict[str, list[float]] = {name: [] for name in paths}
    for round_index in range(rounds):
        order = list(paths) if round_index % 2 == 0 else list(reversed(paths))
        for name in order:
            scale = paths[name]
            batch = [
                av.VideoFrame.from_ndarray(pool[i % len(pool)], format="yuv420p")
                for i in range(frames + 1)
            ]
            scale(batch.pop())  # warm: the first call of a round is not timed
            started = time.thread_time()
            for frame in batch:
                out = scale(frame)
            per_frame_ms[name].append((time.thread_time() - started) / frames * 1e3)
            assert (out.width, out.height) == (R360P.width, R360P.height)
            del batch
    processor.close()
    medians = {name: sorted(values)[len(values) // 2] for name, values in per_frame_ms.items()}
    return {
        "frames_per_round": frames,
        "rounds": rounds,
        "per_frame_ms": {
            name: [round(v, 4) for v in values] for name, values in per_frame_ms.items()
        },
        "median_ms": {name: round(v, 4) for name, v in medians.items()},
        "ratio_new_over_kept": round(medians["new_scaler_per_frame"] / medians["kept_scaler"], 2),
    }


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "--scaling",
        action="store_true",
        help="only the scaling comparison (720p -> 360p, a new scaler per frame against one "
        "kept across frames); no servers, no viewers",
    )
    parser.add_argument("--scaling-frames", type=int, default=150)
    parser.add_argument("--scaling-rounds", type=int, default=9)
    parser.add_argument("--quick", action="store_true", help="a short ladder (smoke test)")
    parser.add_argument("--out", default=None, help="write the JSON results here")
    parser.add_argument("--port", type=int, default=8470)
    parser.add_argument(
        "--max-wait", type=float, default=30.0, help="seconds to wait for a quiet machine"
    )
    parser.add_argument(
        "--nice",
        type=int,
        default=0,
        help="autogroup niceness of the server, the receivers and Chromium (e.g. -10 on a "
        "shared machine, as root): without it, other sessions' work on the server's core "
        "competes on equal terms and is measured too",
    )
    args = parser.parse_args()
    if args.scaling:
        scaling = bench_scaling(args.scaling_frames, args.scaling_rounds)
        scaling["machine"] = machine()
        print(json.dumps(scaling, indent=2))
        if args.out:
            write_json(args.out, scaling)
        return 0
    os.sched_setaffinity(0, {CLIENT_CPU})  # children (receivers, Chromium) inherit CPU 1
    prioritize(os.getpid(), args.nice)  # this script's autogroup: Chromium runs in it
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # run the finally blocks: stop servers
    if args.quick:
        default_steps, shared_steps, warmup, window = [1, 4], [1, 20], 3.0, 4.0
        default_latency, shared_latency = [0], [0]
    else:
        default_steps = [1, 2, 3, 4, 6, 8, 12]
        shared_steps = [1, 25, 50, 75, 100, 125, 150, 200, 250, 300]
        warmup, window = 5.0, 8.0
        default_latency, shared_latency = [2], [0, 50]
    results: dict[str, Any] = {
        "machine": {**machine(), "nice": args.nice},
        "default": ladder(
            "per_viewer",
            default_steps,
            args.port,
            warmup,
            window,
            default_latency,
            args.max_wait,
            args.nice,
        ),
        "shared": ladder(
            "shared",
            shared_steps,
            args.port + 1,
            warmup,
            window,
            shared_latency,
            args.max_wait,
            args.nice,
        ),
    }
    default_capacity = results["default"].get("viewers_per_core_extrapolated")
    shared_capacity = results["shared"].get("viewers_per_core_extrapolated")
    if default_capacity and shared_capacity:
        results["capacity_ratio"] = round(shared_capacity / default_capacity, 1)
    measured = {
        name: max(
            (r["viewers"] for r in results[name]["rows"] if (r.get("fps_min") or 0) >= 29),
            default=0,
        )
        for name in ("default", "shared")
    }
    results["max_viewers_at_29fps"] = measured
    if measured["default"]:
        results["measured_ratio"] = round(measured["shared"] / measured["default"], 1)
    print()
    print(table(results["default"]))
    print()
    print(table(results["shared"]))
    if "capacity_ratio" in results:
        print(f"\nshared / default viewers per core (fits): {results['capacity_ratio']}x")
    print(f"most viewers measured at >= 29 fps: {results['max_viewers_at_29fps']}")
    if args.out:
        write_json(args.out, results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
