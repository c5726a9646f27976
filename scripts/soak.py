#!/usr/bin/env python3
"""Soak: `gavel serve` under steady mixed load for a long time, memory and latency sampled.

One `gavel serve` process (SQLite in a fresh data directory) with `--notaries` real
`gavel notary serve` processes (a quorum of 2, as the demo) co-signing its checkpoints, and
in this process:

  lots      --lots judicial lots (created through the console API, `POST /api/console/lots`),
            each running --lot-seconds; when one closes (sold or failed, co-signed) the next
            is created in its place, so lots are created and closed all run long
  bidders   --bidders verified accounts, registered with a frozen deposit on every lot, each
            bidding the minimum next amount on a random open lot at --rate bids/s over its
            own websocket (signed bids); bidding stops a few seconds before a lot's soft-close
            window so that lots do close
  watchers  --watchers websocket watchers subscribed to every lot
  viewers   --viewers live-video viewers (default 3; 0: none, and no live lot): one
            `LIVE_AUCTIONEER` lot is created through the console API and brought into the ring
            (`OpenRing`) before the load starts, and stays there for the whole run (no timer
            drives a live lot: only the clerk's commands move it, and the soak sends none after
            `OpenRing`), so the server streams it all along (the test pattern with the lot's
            state burned in, recorded under DATA/recordings, one `stream_segment` ledger entry
            per segment). Each viewer is a real aiortc receiver (`streaming.loadtest.Viewer`,
            decode mode, the default rendition) that posts its offer to
            `/api/lots/{lot}/stream/offer` and counts the frames it decodes. A viewer whose
            connection fails (the offer is refused, the peer connection fails or closes, the
            track ends) is counted as an error and reconnected, once per viewer at most; a
            live-lot stream that is no longer live at a sample is an error too.

Every --interval seconds it samples the server process (VmRSS and RssAnon from
/proc/PID/status, open file descriptors from /proc/PID/fd, and where the anonymous memory is
from /proc/PID/smaps: glibc's main heap, its thread arenas, the rest), the acknowledgement
latency of the bids answered since the last sample (p50, p99), the watchers' update age
(the watcher's receive time minus the server time `t` of the `BidAccepted` event; same
clock, this is loopback), the ledger size and the latest published (co-signed) checkpoint,
the viewers (how many are connected, the *fewest* frames per second one of them decoded
over the interval, how many decoded none), and prints one table row.

At the end it prints the table and a verdict. PASS needs all of:
  * no errors: every bid answered within 10 s, no `UNAVAILABLE` / `RATE_LIMITED` /
    protocol refusal, no dropped connection, no failed lot creation or registration, no
    failed viewer connection, and no viewer that stopped receiving: every viewer decoded at
    least one frame in every interval after the first (the first one is the stream's
    warm-up: ICE, DTLS, the first keyframe); each viewer and interval without a frame is
    one error;
  * memory flat: the least-squares slope of the anonymous RSS (RssAnon, the heap: VmRSS
    also counts library and database file pages, which come and go with the page cache) over
    the second half of the samples is at most --rss-slope KiB/min. Default 256: at the
    default load of 20 bids/s, anything kept per bid from 220 bytes up fails; the first half
    (warm-up: caches, pools, the allocator's arenas) is not judged;
  * file descriptors flat: the floor of open fds (the fewest in a quarter of the run: the
    sockets of requests in flight come and go, leaked ones raise the floor) grows by at most
    --fd-growth from the second quarter to the last;
  * checkpoints co-signed: the published checkpoint kept advancing (with notaries).

--json OUT writes the samples (the table's columns, unrounded: `viewers` connected,
`viewer_fps` the fewest frames/s a viewer decoded, `viewers_stalled`, `heap_kib`,
`arenas_kib`, `arenas`, `other_anon_kib`), the verdict, the counts,
the errors, `viewers`, `live_lot`, `viewer_frames` (decoded, per viewer) and
`viewer_reconnects` (0, null, [] and 0 without viewers).

Usage: .venv/bin/python scripts/soak.py [--minutes 30] [--seconds S] [--bidders 10]
       [--watchers 5] [--viewers 3] [--lots 3] [--rate 2] [--notaries 3] [--interval 10]
       [--json OUT]
Exit status 0 on PASS, 1 on FAIL. Everything talks to 127.0.0.1 and stops by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import math
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.append(str(Path(__file__).resolve().parent))  # bench_bids, also when imported (tests)

import aiohttp  # noqa: E402
from bench_bids import make_bidder as rest_bidder  # noqa: E402
from bench_bids import register_bidder  # noqa: E402
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey  # noqa: E402

from auction.client import BidderClient, ClientError  # noqa: E402
from auction.demo import (  # noqa: E402
    DEMO_QUORUM,
    DemoNotary,
    free_port,
    prepare_notaries,
    start_notaries,
    stop_notaries,
)
from auction.storage import POLICY_FILE, Storage  # noqa: E402
from streaming.loadtest import Viewer  # noqa: E402
from streaming.loopback import loopback_only_ice  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
START_PRICE = 1_000_000
STEP = 10_000
CURRENCY = "CNY"
#: The lots' soft-close window and extension (µs); bidders stop GUARD_US before the window.
WINDOW_US = 3_000_000
GUARD_US = 2_000_000
#: Engine refusals that are a normal part of racing bidders (someone bid first).
RACE_REASONS = frozenset({"BELOW_MIN", "SELF_OUTBID", "LATE", "NOT_OPEN", "OFF_GRID"})
ACK_TIMEOUT = 10.0
#: How long the live lot's stream may take to go live after `OpenRing`, and how often a
#: viewer's connection is looked at.
LIVE_TIMEOUT = 20.0
VIEWER_CHECK_S = 0.5


# --- the verdict (pure) -----------------------------------------------------------------------


@dataclass(frozen=True)
class Sample:
    """One sampling point: seconds since the load started and what was measured."""

    t_s: float
    rss_kib: int
    fds: int
    anon_kib: int = 0  # RssAnon: the heap; what the memory verdict is about
    acks: int = 0
    ack_p50_ms: float = float("nan")
    ack_p99_ms: float = float("nan")
    age_p50_ms: float = float("nan")
    age_p99_ms: float = float("nan")
    log_size: int = 0
    published: int = 0
    cosignatures: int = 0
    lots_closed: int = 0
    errors: int = 0
    viewers: int = 0  # viewers whose peer connection is connected
    viewer_fps: float = float("nan")  # the fewest frames/s a viewer decoded over the interval
    viewers_stalled: int = 0  # viewers that decoded no frame over the interval
    # Where the anonymous memory is (`anon_breakdown`): glibc's main heap, its thread arenas
    # (and how many), and the rest (mmapped blocks, thread stacks, CPython's object arenas).
    heap_kib: int = 0
    arenas_kib: int = 0
    arenas: int = 0
    other_anon_kib: int = 0


@dataclass(frozen=True)
class Verdict:
    passed: bool
    rss_slope_kib_per_min: float
    fd_growth: int
    reasons: tuple[str, ...]


def slope_per_minute(points: Sequence[tuple[float, float]]) -> float:
    """Least-squares slope of `(seconds, value)` points, in value units per minute."""
    if len(points) < 2:
        return 0.0
    n = len(points)
    mean_t = sum(t for t, _ in points) / n
    mean_v = sum(v for _, v in points) / n
    var = sum((t - mean_t) ** 2 for t, _ in points)
    if var == 0:
        return 0.0
    cov = sum((t - mean_t) * (v - mean_v) for t, v in points)
    return cov / var * 60.0


def judge(
    samples: Sequence[Sample],
    *,
    errors: int,
    rss_slope_limit: float = 256.0,
    fd_growth_limit: int = 8,
    need_checkpoints: bool = True,
) -> Verdict:
    """PASS or FAIL for a run (see the module docstring)."""
    reasons: list[str] = []
    # a viewer that stopped receiving: no frame over an interval (the first is the warm-up)
    stalled = sum(s.viewers_stalled for s in samples[1:])
    if len(samples) < 4:
        reasons.append(f"only {len(samples)} samples: run longer than 4 intervals")
    second = list(samples[len(samples) // 2 :])
    slope = slope_per_minute([(s.t_s, float(s.anon_kib or s.rss_kib)) for s in second])
    quarter = max(1, len(samples) // 4)
    growth = 0
    if len(samples) >= 4:
        base = min(s.fds for s in samples[quarter : 2 * quarter])
        growth = min(s.fds for s in samples[-quarter:]) - base
    if errors or stalled:
        detail = f" ({stalled} of them: a viewer decoded no frame over an interval)"
        reasons.append(f"{errors + stalled} errors" + (detail if stalled else ""))
    if slope > rss_slope_limit:
        reasons.append(
            f"memory grows: anonymous RSS slope {slope:.0f} KiB/min over the second half "
            f"(limit {rss_slope_limit:.0f})"
        )
    if growth > fd_growth_limit:
        reasons.append(f"the open fds' floor grew by {growth} (limit {fd_growth_limit})")
    if need_checkpoints and second and second[-1].published <= samples[0].published:
        reasons.append("no checkpoint was published during the run")
    return Verdict(not reasons, slope, growth, tuple(reasons))


def percentile(values: Sequence[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


COLUMNS = (
    ("t_s", 7), ("rss_MiB", 8), ("anon_MiB", 8), ("fds", 5), ("acks", 6), ("ack_p50", 8),
    ("ack_p99", 8), ("age_p50", 8), ("age_p99", 8), ("log", 7), ("publ", 7), ("cosig", 5),
    ("lots", 5), ("err", 4), ("vwrs", 4), ("vfps", 5), ("stall", 5),
)  # fmt: skip


def table(samples: Sequence[Sample]) -> str:
    head = " ".join(f"{name:>{width}}" for name, width in COLUMNS)
    return "\n".join([head, *(row(s) for s in samples)])


def row(s: Sample) -> str:
    values = (
        f"{s.t_s:.0f}", f"{s.rss_kib / 1024:.1f}", f"{s.anon_kib / 1024:.1f}", str(s.fds),
        str(s.acks), f"{s.ack_p50_ms:.1f}", f"{s.ack_p99_ms:.1f}", f"{s.age_p50_ms:.1f}",
        f"{s.age_p99_ms:.1f}", str(s.log_size), str(s.published), str(s.cosignatures),
        str(s.lots_closed), str(s.errors), str(s.viewers), f"{s.viewer_fps:.1f}",
        str(s.viewers_stalled),
    )  # fmt: skip
    return " ".join(f"{v:>{width}}" for v, (_, width) in zip(values, COLUMNS, strict=True))


# --- processes --------------------------------------------------------------------------------


def proc_status(pid: int) -> tuple[int, int, int]:
    """(VmRSS, RssAnon in KiB, open file descriptors) of process `pid`. RssAnon is the heap;
    VmRSS also counts file pages (libraries, the database) that the page cache may drop."""
    fields: dict[str, int] = {}
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            name, _, value = line.partition(":")
            if name in ("VmRSS", "RssAnon"):
                fields[name] = int(value.split()[0])
    return fields.get("VmRSS", 0), fields.get("RssAnon", 0), len(os.listdir(f"/proc/{pid}/fd"))


#: glibc maps each heap of a thread arena at a multiple of this (HEAP_MAX_SIZE on 64-bit).
GLIBC_HEAP_ALIGN = 64 << 20

_SMAPS_RANGE = re.compile(r"([0-9a-f]+)-([0-9a-f]+) (\S+) \S+ \S+ \S+ *(.*)")


def anon_breakdown(smaps: str) -> tuple[int, int, int, int]:
    """Anonymous memory in KiB from the text of /proc/PID/smaps: `(main heap, thread arenas,
    number of thread-arena heaps, the rest)`, summing to the process's anonymous pages. The
    main heap is the `[heap]` mapping (glibc's main arena); a thread arena's heap is an
    unnamed mapping that starts at a multiple of 64 MiB and ends inside it (glibc's layout);
    the rest is everything else: mmapped blocks, thread stacks, CPython's object arenas
    (pymalloc maps its own), copied pages of libraries. On another C library the first two
    are 0."""
    heap = arenas = count = rest = 0
    kind = "rest"
    for line in smaps.splitlines():
        match = _SMAPS_RANGE.fullmatch(line)
        if match is not None:
            start, end, name = int(match[1], 16), int(match[2], 16), match[4].strip()
            if name == "[heap]":
                kind = "heap"
            elif (
                not name
                and start % GLIBC_HEAP_ALIGN == 0
                and end - start <= GLIBC_HEAP_ALIGN
                and match[3].startswith("rw")
            ):
                kind = "arena"
                count += 1
            else:
                kind = "rest"
        elif line.startswith("Anonymous:"):
            kib = int(line.split()[1])
            if kind == "heap":
                heap += kib
            elif kind == "arena":
                arenas += kib
            else:
                rest += kib
    return heap, arenas, count, rest


def proc_anon_breakdown(pid: int) -> tuple[int, int, int, int]:
    """`anon_breakdown` of process `pid` (zeros if its smaps cannot be read)."""
    try:
        with open(f"/proc/{pid}/smaps") as smaps:
            return anon_breakdown(smaps.read())
    except OSError:
        return 0, 0, 0, 0


def prepare(data: Path, notaries: int) -> list[DemoNotary]:
    """Create the store (signed bids, as `gavel serve`) and, with notaries, DATA/policy."""
    with Storage.open(data, signed_bids=True) as store:
        if not notaries:
            return []
        assert store.house is not None
        prepared, policy = prepare_notaries(data, store.house.vkey, notaries, DEMO_QUORUM)
        store.use_policy(policy)
    return prepared


class Server:
    """`gavel serve` in its own process."""

    def __init__(self, data: Path, port: int) -> None:
        self.url = f"http://127.0.0.1:{port}"
        self.log = open(data / "serve.log", "w")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "auction.cli",
                "serve",
                "--data",
                str(data),
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--bids-per-second",
                "50",
                "--connections-per-address",
                "1000",
                "--no-write-limits",
            ],  # fmt: skip
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=self.log,
            text=True,
        )
        self.token = ""

    async def wait_ready(self) -> None:
        assert self.process.stdout is not None
        stdout = self.process.stdout
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = await asyncio.to_thread(stdout.readline)
            if not line:
                raise RuntimeError(f"gavel serve exited with {self.process.wait()}")
            found = re.search(r"#token=(\S+)", line)
            if found:
                self.token = found.group(1)
                return
        raise RuntimeError("gavel serve did not print its console URL in 60 s")

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()
        return self.process.returncode


# --- the load ---------------------------------------------------------------------------------


@dataclass
class LotState:
    end_us: int
    min_next: int = START_PRICE


@dataclass
class Stats:
    acks: list[float] = field(default_factory=list)  # ms, since the last sample
    ages: list[float] = field(default_factory=list)  # ms, since the last sample
    accepted: int = 0
    rejected: int = 0
    answered: int = 0
    lots_created: int = 0
    lots_closed: int = 0
    viewer_reconnects: int = 0
    errors: list[str] = field(default_factory=list)

    def error(self, message: str) -> None:
        if len(self.errors) < 50:
            print(f"soak: error: {message}", file=sys.stderr, flush=True)
        self.errors.append(message)


@dataclass
class Bidder:
    key: Ed25519PrivateKey
    account: str
    session: str
    client: BidderClient | None = None

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.session}"}


@dataclass
class ViewerSlot:
    """One of the --viewers: its current `Viewer` and the frames it decoded so far."""

    index: int
    viewer: Viewer | None = None
    replaced_frames: int = 0  # frames decoded by the viewers this one replaced
    sampled_frames: int = 0  # `frames` at the last sample
    reconnects: int = 0

    @property
    def frames(self) -> int:
        current = self.viewer.stats.frames if self.viewer is not None else 0
        return self.replaced_frames + current

    @property
    def connected(self) -> bool:
        return self.viewer is not None and self.viewer.pc.connectionState == "connected"


def viewer_failure(viewer: Viewer) -> str | None:
    """Why a connected viewer can no longer receive (None: it can)."""
    state = viewer.pc.connectionState
    if state in ("failed", "closed"):
        return f"peer connection {state}"
    for receiver in viewer.pc.getReceivers():
        if receiver.track is not None and receiver.track.readyState == "ended":
            return "the video track ended"
    return None


class Load:
    def __init__(self, url: str, token: str, args: argparse.Namespace) -> None:
        self.url = url
        self.token = token
        self.args = args
        self.stats = Stats()
        self.open: dict[str, LotState] = {}
        self.bidders: list[Bidder] = []
        self.watchers: list[BidderClient] = []
        self.live_lot: str | None = None
        self.viewers: list[ViewerSlot] = []
        self.stop = asyncio.Event()
        self.rng = random.Random(args.seed)

    async def now_us(self, http: aiohttp.ClientSession) -> int:
        async with http.get(f"{self.url}/api/lots") as response:
            return int((await response.json())["now_us"])

    async def make_bidder(self, http: aiohttp.ClientSession, n: int) -> Bidder:
        """An account with its identity, registered for no lot yet (`register` does that as
        lots are created), connected over its websocket."""
        made = await rest_bidder(http, self.url, n, lots=())
        key = Ed25519PrivateKey.from_private_bytes(base64.b64decode(made["seed"]))
        bidder = Bidder(key, made["account"], made["session"])
        bidder.client = await BidderClient.connect(
            self.url, account=bidder.account, key=key, session=bidder.session
        )
        return bidder

    async def register(self, http: aiohttp.ClientSession, bidder: Bidder, lot: str) -> None:
        """Register `bidder` for `lot` and wait until its deposit, if one is asked, is frozen."""
        registration = await register_bidder(http, self.url, bidder.session, lot, f"dep-{lot}")
        if registration["deposit"]["state"] != "REQUIRED":
            return
        for _ in range(200):
            async with http.get(f"{self.url}/api/me", headers=bidder.auth) as response:
                me = await response.json()
            states = {r["lot"]: r["deposit"]["state"] for r in me["registrations"]}
            if states.get(lot) == "FROZEN":
                return
            await asyncio.sleep(0.05)
        raise RuntimeError(f"the deposit of {bidder.account} for {lot} was not frozen")

    async def lot_slot(self, http: aiohttp.ClientSession, slot: int) -> None:
        """Create a lot, register everyone, let it run and close; again, until stopped."""
        generation = 0
        while not self.stop.is_set():
            lot = f"soak-{slot}-{generation}"
            generation += 1
            try:
                start = await self.now_us(http) + 1_000_000
                end = start + int(self.args.lot_seconds * 1e6)
                body = {
                    "preset": "JUDICIAL_CN",
                    "lot": lot,
                    "title": f"Soak lot {lot}",
                    "parameters": {
                        "start_price": START_PRICE, "step": STEP, "start_at": start,
                        "end_at": end, "min_duration": 0, "window": WINDOW_US,
                        "extend": WINDOW_US,
                    },
                }  # fmt: skip
                headers = {"Authorization": f"Bearer {self.token}"}
                async with http.post(
                    f"{self.url}/api/console/lots", json=body, headers=headers
                ) as response:
                    if response.status != 201:
                        raise RuntimeError(f"lot refused: {await response.text()}")
                self.stats.lots_created += 1
                for watcher in self.watchers:
                    await watcher.subscribe(lot)
                await asyncio.gather(*(self.register(http, b, lot) for b in self.bidders))
                self.open[lot] = LotState(end)
                await self.wait_closed(http, lot)
            except (RuntimeError, aiohttp.ClientError, OSError, ClientError) as exc:
                self.stats.error(f"lot {lot}: {exc}")
                await asyncio.sleep(1)
            finally:
                self.open.pop(lot, None)

    async def wait_closed(self, http: aiohttp.ClientSession, lot: str) -> None:
        while True:
            state = self.open[lot]
            wait = max(0.5, (state.end_us - await self.now_us(http)) / 1e6)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop.wait(), wait)
            if self.stop.is_set():
                return
            async with http.get(f"{self.url}/api/lots/{lot}") as response:
                view = (await response.json())["lot"]
            if view["status"] not in ("SCHEDULED", "OPEN", "PAUSED", "SUSPENDED"):
                self.stats.lots_closed += 1
                for watcher in self.watchers:
                    await watcher.unsubscribe(lot)
                return
            state.end_us = max(state.end_us, int(view["end"]))
            await asyncio.sleep(0.5)

    async def open_live_lot(self, http: aiohttp.ClientSession) -> str:
        """Create the `LIVE_AUCTIONEER` lot, bring it into the ring and wait until the server
        streams it. No timer drives a live lot: it stays in the ring until a clerk's command
        moves it, and the soak sends none after `OpenRing`."""
        lot = "soak-live-0"
        headers = {"Authorization": f"Bearer {self.token}"}
        body = {
            "preset": "LIVE_AUCTIONEER",
            "lot": lot,
            "title": f"Soak live lot {lot}",
            "parameters": {
                "start_price": START_PRICE, "start_at": await self.now_us(http) + 3_600_000_000,
                "currency": CURRENCY,
            },
        }  # fmt: skip
        async with http.post(
            f"{self.url}/api/console/lots", json=body, headers=headers
        ) as response:
            if response.status != 201:
                raise RuntimeError(f"live lot refused: {await response.text()}")
        command = {"type": "OpenRing", "ask": START_PRICE}
        async with http.post(
            f"{self.url}/api/console/lots/{lot}/commands", json=command, headers=headers
        ) as response:
            if response.status != 200:
                raise RuntimeError(f"OpenRing refused: {await response.text()}")
        deadline = time.monotonic() + LIVE_TIMEOUT
        while time.monotonic() < deadline:
            if await self.stream_live(http, lot):
                return lot
            await asyncio.sleep(0.2)
        raise RuntimeError(f"the stream of {lot} was not live {LIVE_TIMEOUT:.0f} s after OpenRing")

    async def stream_live(self, http: aiohttp.ClientSession, lot: str) -> bool:
        async with http.get(f"{self.url}/api/lots/{lot}/stream") as response:
            return response.status == 200 and bool((await response.json()).get("live"))

    async def viewer_loop(self, http: aiohttp.ClientSession, slot: ViewerSlot) -> None:
        """Keep one viewer connected to the live lot until stopped; a failure is an error,
        and the viewer is reconnected once."""
        assert self.live_lot is not None
        while not self.stop.is_set():
            viewer = Viewer(http, self.url, self.live_lot)
            slot.viewer = viewer
            try:
                await viewer.connect()
                reason = await self.watch_viewer(viewer)
            except Exception as exc:  # aiohttp, aiortc, the answer: all count the same
                reason = f"connection failed: {exc!r}"[:300]
            if reason is None:
                return  # stopped; run() closes the viewer
            self.stats.error(f"viewer {slot.index} on {self.live_lot}: {reason}")
            slot.replaced_frames += viewer.stats.frames
            slot.viewer = None
            with contextlib.suppress(Exception):
                await viewer.close()
            if slot.reconnects >= 1:
                return  # given up: it decodes no more frames, every interval counts
            slot.reconnects += 1
            self.stats.viewer_reconnects += 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop.wait(), 1.0)

    async def watch_viewer(self, viewer: Viewer) -> str | None:
        """Wait until stopped (None) or until the viewer fails (why)."""
        while not self.stop.is_set():
            reason = viewer_failure(viewer)
            if reason is not None:
                return reason
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop.wait(), VIEWER_CHECK_S)
        return None

    def sample_viewers(self, seconds: float) -> tuple[int, float, int]:
        """(viewers connected, the fewest frames/s one decoded, viewers with no frame) over
        the last `seconds`; starts the next interval."""
        if not self.viewers:
            return 0, float("nan"), 0
        fps: list[float] = []
        for slot in self.viewers:
            frames = slot.frames
            fps.append((frames - slot.sampled_frames) / max(seconds, 1e-3))
            slot.sampled_frames = frames
            if slot.viewer is not None:  # keep the viewer's own records bounded
                slot.viewer.stats.latencies_ms.clear()
                slot.viewer.stats.messages.clear()
        connected = sum(slot.connected for slot in self.viewers)
        return connected, min(fps), sum(rate == 0 for rate in fps)

    def biddable(self) -> list[str]:
        now = int(time.time() * 1e6)
        return [lot for lot, s in self.open.items() if now < s.end_us - WINDOW_US - GUARD_US]

    async def bidder_loop(self, bidder: Bidder) -> None:
        loop = asyncio.get_running_loop()
        period = 1.0 / self.args.rate
        next_at = loop.time() + self.rng.random() * period
        assert bidder.client is not None
        while not self.stop.is_set():
            next_at += period
            await asyncio.sleep(max(0.0, next_at - loop.time()))
            lots = self.biddable()
            if not lots:
                continue
            lot = self.rng.choice(lots)
            amount = self.open[lot].min_next if lot in self.open else START_PRICE
            started = time.perf_counter()
            try:
                ack = await bidder.client.bid(lot, amount, CURRENCY, timeout=ACK_TIMEOUT)
            except (ClientError, TimeoutError) as exc:
                self.stats.error(f"bid by {bidder.account} on {lot}: {exc!r}")
                with contextlib.suppress(ClientError):
                    await bidder.client.reconnect()
                continue
            self.stats.acks.append((time.perf_counter() - started) * 1000)
            self.stats.answered += 1
            if ack.accepted:
                self.stats.accepted += 1
            elif ack.reason in RACE_REASONS:
                self.stats.rejected += 1
            else:
                self.stats.error(f"bid on {lot} refused: {ack.reason} {ack.raw.get('message')}")
            state = self.open.get(lot)
            if state is not None and ack.min_next is not None:
                state.min_next = max(state.min_next, ack.min_next)
                if ack.end_us is not None:
                    state.end_us = max(state.end_us, ack.end_us)

    async def watcher_loop(self, watcher: BidderClient) -> None:
        while not self.stop.is_set():
            try:
                message = await watcher.next_update(timeout=1.0)
            except TimeoutError:
                if watcher.closed.is_set():
                    self.stats.error(f"watcher closed ({watcher.close_code})")
                    return
                continue
            kind = message.get("type")
            if kind == "error":
                self.stats.error(f"watcher error: {message}")
                continue
            if kind != "update":
                continue
            received = time.time() * 1e6
            for event in message.get("events", ()):
                if event.get("type") == "BidAccepted" and not message.get("replayed"):
                    self.stats.ages.append((received - event["t"]) / 1000)
            state = self.open.get(message.get("lot", ""))
            view = message.get("view") or {}
            if state is not None and isinstance(view.get("min_next"), int):
                state.min_next = max(state.min_next, view["min_next"])
                state.end_us = max(state.end_us, int(view.get("end", 0)))


async def auditor(http: aiohttp.ClientSession, url: str) -> tuple[int, int, int]:
    async with http.get(f"{url}/api/auditor") as response:
        body = await response.json()
    checkpoint = body.get("checkpoint") or {}
    cosignatures = checkpoint.get("cosignatures")
    count = len(cosignatures) if isinstance(cosignatures, list) else int(cosignatures or 0)
    return int(body.get("log_size") or 0), int(checkpoint.get("size") or 0), count


async def run(args: argparse.Namespace, data: Path) -> tuple[list[Sample], Stats, dict[str, Any]]:
    notaries = await asyncio.to_thread(prepare, data, args.notaries)
    port = free_port()
    server = Server(data, port)
    samples: list[Sample] = []
    load: Load | None = None
    try:
        await server.wait_ready()
        if notaries:
            await start_notaries(notaries, server.url, data / POLICY_FILE)
        load = Load(server.url, server.token, args)
        limit = asyncio.Semaphore(8)
        async with aiohttp.ClientSession() as http:

            async def one(n: int) -> Bidder:
                async with limit:
                    return await load.make_bidder(http, n)

            tasks: list[asyncio.Task[None]] = []
            if args.viewers:  # first: the stream warms up while the bidders are made
                try:
                    load.live_lot = await load.open_live_lot(http)
                except (RuntimeError, aiohttp.ClientError, OSError) as exc:
                    load.stats.error(f"live lot: {exc}")
                else:
                    load.viewers = [ViewerSlot(n) for n in range(args.viewers)]
                    tasks += [
                        asyncio.create_task(load.viewer_loop(http, slot)) for slot in load.viewers
                    ]
            load.bidders = list(await asyncio.gather(*(one(n) for n in range(args.bidders))))
            load.watchers = [await BidderClient.connect(server.url) for _ in range(args.watchers)]
            tasks += [asyncio.create_task(load.lot_slot(http, slot)) for slot in range(args.lots)]
            tasks += [asyncio.create_task(load.bidder_loop(b)) for b in load.bidders]
            tasks += [asyncio.create_task(load.watcher_loop(w)) for w in load.watchers]
            began = time.monotonic()
            load.sample_viewers(1.0)  # the first interval starts now
            previous = 0.0
            live_ended = False
            total = args.seconds if args.seconds is not None else args.minutes * 60
            print(table([]), flush=True)
            while True:
                elapsed = time.monotonic() - began
                await asyncio.sleep(min(args.interval, max(0.0, total - elapsed)))
                elapsed = time.monotonic() - began
                if server.process.poll() is not None:
                    load.stats.error(f"gavel serve exited with {server.process.returncode}")
                    break
                rss, anon, fds = proc_status(server.process.pid)
                heap, arena_kib, arena_count, other = proc_anon_breakdown(server.process.pid)
                acks, load.stats.acks = load.stats.acks, []
                ages, load.stats.ages = load.stats.ages, []
                viewers, viewer_fps, stalled = load.sample_viewers(elapsed - previous)
                previous = elapsed
                log_size, published, cosigs = await auditor(http, server.url)
                if load.live_lot is not None and not live_ended:
                    live_ended = not await load.stream_live(http, load.live_lot)
                    if live_ended:
                        load.stats.error(f"the stream of {load.live_lot} is no longer live")
                sample = Sample(
                    elapsed, rss, fds, anon, len(acks), percentile(acks, 50),
                    percentile(acks, 99), percentile(ages, 50), percentile(ages, 99), log_size,
                    published, cosigs, load.stats.lots_closed, len(load.stats.errors), viewers,
                    viewer_fps, stalled, heap, arena_kib, arena_count, other,
                )  # fmt: skip
                samples.append(sample)
                print(row(sample), flush=True)
                if elapsed >= total - 0.5:
                    break
            load.stop.set()
            await asyncio.gather(*tasks)
            for bidder in load.bidders:
                if bidder.client is not None:
                    await bidder.client.close()
            for watcher in load.watchers:
                await watcher.close()
    finally:
        for slot in load.viewers if load is not None else ():
            if slot.viewer is not None:
                with contextlib.suppress(Exception):
                    await slot.viewer.close()
        code = await asyncio.to_thread(server.stop)
        await stop_notaries(notaries)
    stats = load.stats if load is not None else Stats(errors=["the load did not start"])
    if code != 0:
        stats.error(f"gavel serve stopped with status {code}")
    slots = load.viewers if load is not None else []
    extra = {
        "notaries": len(notaries),
        "server_exit": code,
        "viewers": len(slots),
        "live_lot": load.live_lot if load is not None else None,
        "viewer_frames": [slot.frames for slot in slots],
        "viewer_reconnects": stats.viewer_reconnects,
    }
    return samples, stats, extra


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--seconds", type=float, default=None, help="overrides --minutes")
    parser.add_argument("--bidders", type=int, default=10)
    parser.add_argument("--watchers", type=int, default=5)
    parser.add_argument(
        "--viewers", type=int, default=3, help="live-video viewers of one live lot; 0: none"
    )
    parser.add_argument("--lots", type=int, default=3)
    parser.add_argument("--lot-seconds", type=float, default=60.0)
    parser.add_argument("--rate", type=float, default=2.0, help="bids/s per bidder")
    parser.add_argument("--notaries", type=int, default=3)
    parser.add_argument("--interval", type=float, default=10.0)
    parser.add_argument("--rss-slope", type=float, default=256.0, help="KiB/min limit")
    parser.add_argument("--fd-growth", type=int, default=8)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--data", type=Path, default=None, help="kept; default: a temp dir")
    parser.add_argument("--json", type=Path, default=None, help="write samples and verdict")
    args = parser.parse_args(argv)
    if args.viewers < 0:
        parser.error("--viewers must not be negative")
    with contextlib.ExitStack() as stack:
        data = args.data
        if data is None:
            data = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="gavel-soak-")))
        data.mkdir(parents=True, exist_ok=True)
        if args.viewers:  # aioice skips 127.0.0.1 otherwise; everything here is loopback
            stack.enter_context(loopback_only_ice())
        samples, stats, extra = asyncio.run(run(args, data))
    verdict = judge(
        samples,
        errors=len(stats.errors),
        rss_slope_limit=args.rss_slope,
        fd_growth_limit=args.fd_growth,
        need_checkpoints=True,
    )
    print()
    print(table(samples))
    print(
        f"\nsoak: {stats.answered} bids answered ({stats.accepted} accepted, {stats.rejected} "
        f"refused by the rules as racing), {stats.lots_created} lots created, "
        f"{stats.lots_closed} closed, {len(stats.errors)} errors, {extra['notaries']} notaries"
    )
    if extra["viewers"]:
        stalls = sum(s.viewers_stalled for s in samples[1:])
        print(
            f"soak: {extra['viewers']} viewers of {extra['live_lot']} decoded "
            f"{sum(extra['viewer_frames'])} frames ({extra['viewer_frames']}), "
            f"{stats.viewer_reconnects} reconnected; {stalls} times a viewer decoded no frame "
            f"over an interval after the first"
        )
    if samples:
        first, last = samples[0], samples[-1]
        print(
            f"soak: RSS {first.rss_kib / 1024:.1f} -> {last.rss_kib / 1024:.1f} MiB, anonymous "
            f"{first.anon_kib / 1024:.1f} -> {last.anon_kib / 1024:.1f} MiB, slope over "
            f"the second half {verdict.rss_slope_kib_per_min:.1f} KiB/min "
            f"(limit {args.rss_slope:.0f}); fds {first.fds} -> {last.fds}, floor growth "
            f"{verdict.fd_growth} (limit {args.fd_growth})"
        )
        print(
            "soak: anonymous memory, first -> last sample: "
            + "; ".join(
                f"{name} {a / 1024:.1f} -> {b / 1024:.1f} MiB"
                for name, a, b in (
                    ("main heap", first.heap_kib, last.heap_kib),
                    (f"thread arenas ({last.arenas})", first.arenas_kib, last.arenas_kib),
                    ("the rest", first.other_anon_kib, last.other_anon_kib),
                )
            )
        )
    word = "PASS" if verdict.passed else "FAIL: " + "; ".join(verdict.reasons)
    print(f"soak: verdict {word}", flush=True)
    if args.json is not None:
        report = {
            "samples": [
                {
                    k: (None if isinstance(v, float) and math.isnan(v) else v)
                    for k, v in asdict(s).items()
                }
                for s in samples
            ],
            "verdict": asdict(verdict),
            "answered": stats.answered,
            "accepted": stats.accepted,
            "rejected": stats.rejected,
            "lots_created": stats.lots_created,
            "lots_closed": stats.lots_closed,
            "errors": stats.errors[:100],
            **extra,
        }
        args.json.write_text(json.dumps(report, indent=1))
    return 0 if verdict.passed else 1


if __name__ == "__main__":
    sys.exit(main())
