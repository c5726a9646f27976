"""The soak's load on one server: lots created as others close, bidders bidding on them over
their websockets, watchers, live-video viewers; what it counts (`Stats`)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import sys
import time
from dataclasses import dataclass, field

import aiohttp
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from auction.client import BidderClient, ClientError
from streaming.loadtest import Viewer

from .harness.bidders import key_of, make_bidder, register_bidder

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
        made = await make_bidder(http, self.url, n, lots=())
        key = key_of(made["seed"])
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
