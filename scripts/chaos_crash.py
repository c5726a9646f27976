#!/usr/bin/env python3
"""Crash recovery under load: SIGKILL `gavel serve` at random moments while bidders bid.

One run, on 127.0.0.1 only, stops by itself:

1. a data directory with three notaries (keys made as `gavel demo` makes them, `DATA/policy`
   naming them with a quorum of 2) and one `gavel notary serve` process each; between the
   server and every notary a loopback TCP proxy in this script delays the notary's answers
   (`--notary-delay`), so that a cosignature round lasts long enough to be killed inside;
2. `python -m auction.cli serve --data DATA --port P`; lots created through the console REST
   API; N bidders made through the REST API (account, identity with a synthetic PRC number,
   registration, deposit);
3. the bidders bid continuously over websockets (`auction.client.BidderClient`), recording
   every acknowledged bid (accepted or rejected, its idempotency key, amount and `entry`);
4. `--kills` times: SIGKILL the server at a moment picked by the kill mode (cycled):
   `random`           a random delay (0.05-1.5 s) into the bidding;
   `commit`           a few ms after an ack arrived while other bids are in flight (inside the
                      next group commit);
   `cosign-request`   while a checkpoint is being co-signed: after the proxy forwarded the
                      server's request to a notary, before the answer is back;
   `cosign-answer`    right after a notary's cosignature reached the server (between the quorum
                      and the publication);
   then restart the server on the same data (a restart that fails is a violation: the server
   replays and checks every lot on start); the bidders reconnect and resend their
   unacknowledged bids with their original keys;
5. after each restart: the notaries co-sign a checkpoint (quorum of cosignatures) covering
   the whole log as it was at the restart, never smaller than any checkpoint published
   before; every `--check-every` restarts (and at the end) the published ledger is exported
   (`gavel ledger export --url`) and every acknowledged bid covered by it is checked: its
   entry holds the same request (account, lot, idempotency key, amount) and the same result,
   an accepted bid is in the lot's history (`GET /api/lots/{lot}/bids`); no idempotency key
   has two entries (no bid applied twice, resends after a restart included); every
   `--audit-every` checks the export is verified with `gavel audit verify`.

Exit 0 when nothing was violated, 1 otherwise. Figures go to stdout (and, with `--json FILE`,
as JSON).

Usage: .venv/bin/python scripts/chaos_crash.py [--kills 50] [--bidders 6] [--lots 2]
       [--seed N] [--notary-delay 0.15] [--pause 0.05] [--check-every 1] [--audit-every 5]
       [--data DIR] [--json FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import os
import random
import re
import shutil
import signal
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import aiohttp  # noqa: E402
import websockets  # noqa: E402
from bench_bids import make_bidder as rest_bidder  # noqa: E402  (scripts/ is on sys.path)
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey  # noqa: E402

from auction.client import Ack, BidderClient, ClientError  # noqa: E402
from auction.demo import free_port, prepare_notaries  # noqa: E402
from auction.storage import POLICY_FILE, Storage  # noqa: E402
from chain.checkpoint import parse_checkpoint_text  # noqa: E402
from chain.errors import ChainError  # noqa: E402
from chain.note import parse_note  # noqa: E402
from chain.tiles import entry_bundles_for_size, parse_entry_bundle  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CURRENCY = "CNY"
START_PRICE = 1_000_000
STEP = 1_000
QUORUM = 2
NOTARIES = 3
MODES = ("random", "commit", "cosign-request", "cosign-answer")

#: Seconds: the server has to start; the notaries to co-sign after a restart; a bid's ack.
START_TIMEOUT = 60.0
COSIGN_TIMEOUT = 30.0
ACK_TIMEOUT = 30.0
#: Seconds a kill mode waits for its moment before it kills anyway (counted as a fallback).
MOMENT_TIMEOUT = 5.0
#: Violations printed as they happen (all are counted).
MAX_SHOWN = 40

SERVER_ERRORS = (ClientError, websockets.WebSocketException, OSError, TimeoutError)


class ChaosError(Exception):
    """The run could not go on (a process did not start, an API refused a setup call)."""


# --- records --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AckedBid:
    """One acknowledged bid, as the bidder saw it."""

    account: str
    lot: str
    key: str
    amount: int
    result: str
    reason: str | None
    entry: int | None
    resent: bool
    round: int


@dataclass
class Figures:
    kills: int = 0
    modes: Counter[str] = field(default_factory=Counter)
    fallbacks: int = 0
    kills_with_bids_in_flight: int = 0
    kills_during_cosigning: int = 0
    restarts: int = 0
    restart_seconds: list[float] = field(default_factory=list)
    cosign_seconds: list[float] = field(default_factory=list)
    acknowledged: int = 0
    accepted: int = 0
    resent: int = 0
    lost_ack_resends: int = 0
    checked: int = 0
    without_entry: int = 0
    lost: int = 0
    duplicates: int = 0
    applied_twice: int = 0
    audits: int = 0
    audits_failed: int = 0
    entries: int = 0
    violations: list[str] = field(default_factory=list)

    def violate(self, message: str) -> None:
        self.violations.append(message)
        if len(self.violations) <= MAX_SHOWN:
            print(f"VIOLATION: {message}", flush=True)
        elif len(self.violations) == MAX_SHOWN + 1:
            print(f"VIOLATION: ... (only the first {MAX_SHOWN} are shown)", flush=True)


# --- processes ------------------------------------------------------------------------------


async def _first_line(stream: asyncio.StreamReader, pattern: str, timeout: float) -> str | None:
    """Read lines until one matches `pattern` (returns the match's group 1 or the line)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        left = deadline - loop.time()
        if left <= 0:
            return None
        try:
            raw = await asyncio.wait_for(stream.readline(), left)
        except TimeoutError:
            return None
        if not raw:
            return None
        found = re.search(pattern, raw.decode("utf-8", "replace"))
        if found:
            return found.group(1) if found.groups() else found.group(0)


async def _drain(stream: asyncio.StreamReader, log: Path) -> None:
    with log.open("ab") as out:
        while line := await stream.readline():
            out.write(line)
            out.flush()


class Process:
    """A child process whose stdout is read until a line says it is ready, then logged."""

    def __init__(self, name: str, command: list[str], log: Path) -> None:
        self.name = name
        self.command = command
        self.log = log
        self.process: asyncio.subprocess.Process | None = None
        self._drainer: asyncio.Task[None] | None = None

    async def start(self, ready: str, timeout: float = START_TIMEOUT) -> str:
        """Start it and return what `ready` matched; `ChaosError` if it does not say so."""
        with self.log.open("ab") as err:
            self.process = await asyncio.create_subprocess_exec(
                *self.command,
                cwd=ROOT,
                stdout=asyncio.subprocess.PIPE,
                stderr=err,
                start_new_session=True,
            )
        assert self.process.stdout is not None
        found = await _first_line(self.process.stdout, ready, timeout)
        if found is None:
            await self.kill()
            raise ChaosError(f"{self.name} did not start (see {self.log})")
        self._drainer = asyncio.get_running_loop().create_task(
            _drain(self.process.stdout, self.log)
        )
        return found

    @property
    def pid(self) -> int | None:
        process = self.process
        return process.pid if process is not None and process.returncode is None else None

    def sigkill(self) -> None:
        pid = self.pid
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    async def kill(self) -> int | None:
        self.sigkill()
        return await self._reap()

    async def stop(self, timeout: float = 30.0) -> int | None:
        pid = self.pid
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
            assert self.process is not None
            try:
                await asyncio.wait_for(self.process.wait(), timeout)
            except TimeoutError:
                self.sigkill()
        return await self._reap()

    async def _reap(self) -> int | None:
        process, self.process = self.process, None
        code = None if process is None else await process.wait()
        drainer, self._drainer = self._drainer, None
        if drainer is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait_for(drainer, 5)
        return code


# --- the notary proxy -----------------------------------------------------------------------


class NotaryProxy:
    """A loopback TCP proxy in front of one notary: the server's requests go through as they
    are, the notary's answers are held `delay` seconds. `on_request` / `on_answer` are called
    (synchronously) when bytes go one way or the other; `in_flight` counts requests whose
    answer has not been forwarded yet."""

    def __init__(self, listen_port: int, target_port: int, delay: float) -> None:
        self.listen_port = listen_port
        self.target_port = target_port
        self.delay = delay
        self.in_flight = 0
        self.requests = 0
        self.on_request: Callable[[], None] | None = None
        self.on_answer: Callable[[], None] | None = None
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.listen_port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.close()
            self._tasks.discard(task)
            return
        waiting = [0]

        async def upstream() -> None:
            while data := await reader.read(65536):
                waiting[0] += 1
                self.in_flight += 1
                self.requests += 1
                if self.on_request is not None:
                    self.on_request()
                up_writer.write(data)
                await up_writer.drain()

        async def downstream() -> None:
            while data := await up_reader.read(65536):
                await asyncio.sleep(self.delay)
                writer.write(data)
                await writer.drain()
                if waiting[0]:
                    waiting[0] -= 1
                    self.in_flight -= 1
                if self.on_answer is not None:
                    self.on_answer()

        try:
            await asyncio.gather(upstream(), downstream())
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            self.in_flight -= waiting[0]
            for w in (writer, up_writer):
                w.close()
            self._tasks.discard(task)


# --- REST setup -----------------------------------------------------------------------------


async def _json(response: aiohttp.ClientResponse, expected: int, what: str) -> Any:
    if response.status != expected:
        raise ChaosError(f"{what}: HTTP {response.status} {await response.text()}")
    return await response.json()


async def create_lots(http: aiohttp.ClientSession, url: str, token: str, count: int) -> list[str]:
    async with http.get(f"{url}/api/lots") as response:
        now = (await _json(response, 200, "list lots"))["now_us"]
    start = now + 1_500_000
    lots = []
    for n in range(count):
        lot = f"chaos-{n + 1}"
        body = {
            "preset": "JUDICIAL_CN",
            "lot": lot,
            "title": f"Crash-recovery lot {n + 1}",
            "parameters": {
                "start_price": START_PRICE,
                "step": STEP,
                "start_at": start,
                "end_at": start + 24 * 3600 * 1_000_000,
                "min_duration": 0,
            },
        }
        headers = {"Authorization": f"Bearer {token}"}
        async with http.post(f"{url}/api/console/lots", json=body, headers=headers) as response:
            await _json(response, 201, f"create lot {lot}")
        lots.append(lot)
    return lots


@dataclass
class Bidder:
    index: int
    account: str
    session: str
    key: Ed25519PrivateKey
    client: BidderClient | None = None
    generation: int = -1
    #: Sent, not acknowledged: idempotency key → (lot, amount).
    outstanding: dict[str, tuple[str, int]] = field(default_factory=dict)
    min_next: dict[str, int] = field(default_factory=dict)
    #: Signed messages by idempotency key until acknowledged; the last acknowledged one.
    messages: dict[str, dict[str, Any]] = field(default_factory=dict)
    last_acked: tuple[dict[str, Any], AckedBid] | None = None


async def make_bidder(http: aiohttp.ClientSession, url: str, n: int, lots: list[str]) -> Bidder:
    """Account, identity, registrations and deposits (`bench_bids.make_bidder`); a refusal
    stops the run as a violation, as every other setup step does."""
    try:
        made = await rest_bidder(http, url, n, lots, deposit_key="dep-{lot}")
    except RuntimeError as exc:
        raise ChaosError(f"bidder {n}: {exc}") from exc
    key = Ed25519PrivateKey.from_private_bytes(base64.b64decode(made["seed"]))
    return Bidder(n, made["account"], made["session"], key)


async def wait_ready(
    http: aiohttp.ClientSession, url: str, bidders: list[Bidder], lots: list[str]
) -> None:
    """Every deposit frozen and every lot open."""
    deadline = time.monotonic() + 60
    for bidder in bidders:
        auth = {"Authorization": f"Bearer {bidder.session}"}
        while True:
            async with http.get(f"{url}/api/me", headers=auth) as response:
                me = await _json(response, 200, "me")
            states = {r["lot"]: r["deposit"]["state"] for r in me["registrations"]}
            if all(states.get(lot) in ("FROZEN", "NOT_REQUIRED") for lot in lots):
                break
            if time.monotonic() > deadline:
                raise ChaosError(f"deposits not frozen within 60 s: {states}")
            await asyncio.sleep(0.05)
    for lot in lots:
        while True:
            async with http.get(f"{url}/api/lots/{lot}") as response:
                view = (await _json(response, 200, f"lot {lot}"))["lot"]
            if view["status"] == "OPEN":
                break
            if time.monotonic() > deadline:
                raise ChaosError(f"lot {lot} did not open")
            await asyncio.sleep(0.05)


# --- the ledger as published ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LedgerBid:
    seq: int
    account: str
    lot: str
    key: str
    amount: int
    accepted: bool


def read_export(out: Path) -> tuple[int, dict[int, LedgerBid], int]:
    """The checkpoint size, every signed bid entry by seq, and the number of entries."""
    note = (out / "checkpoint").read_bytes()
    size = parse_checkpoint_text(parse_note(note).text).size
    bids: dict[int, LedgerBid] = {}
    for bundle in entry_bundles_for_size(size):
        entries = parse_entry_bundle(bundle, (out / bundle.path).read_bytes())
        for seq, raw in enumerate(entries, start=bundle.leaf_begin):
            entry = json.loads(raw)
            body = entry.get("body", {})
            request = body.get("request") if isinstance(body, dict) else None
            if entry.get("seq") != seq:
                raise ChaosError(f"entry {seq} says it is {entry.get('seq')}")
            if not isinstance(request, dict):
                continue
            payload = request["payload"]
            bids[seq] = LedgerBid(
                seq,
                payload["account"],
                payload["lot"],
                payload["idempotency_key"],
                payload["amount"],
                bool(body["accepted"]),
            )
    return size, bids, size


def cosigners(note: bytes, notary_names: set[str]) -> int:
    try:
        parsed = parse_note(note)
    except ChainError:
        return 0
    return len({s.name for s in parsed.signatures} & notary_names)


# --- the run --------------------------------------------------------------------------------


class Chaos:
    def __init__(self, args: argparse.Namespace, data: Path) -> None:
        self.args = args
        self.data = data
        self.rng = random.Random(args.seed)
        self.figures = Figures()
        self.acked: list[AckedBid] = []
        self.up = asyncio.Event()
        self.generation = 0
        self.round = 0
        self.done = False
        self.ack_seen = asyncio.Event()
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = Process(
            "gavel serve",
            [
                sys.executable, "-m", "auction.cli", "serve", "--data", str(data),
                "--host", "127.0.0.1", "--port", str(self.port),
                "--bids-per-second", "1000", "--connections-per-address", "1000",
                "--no-write-limits",
            ],
            data.parent / "server.log",
        )  # fmt: skip
        self.notaries: list[Process] = []
        self.proxies: list[NotaryProxy] = []
        self.notary_names: set[str] = set()
        self.lots: list[str] = []
        self.bidders: list[Bidder] = []
        self.token = ""
        self.published_max = 0  # the largest checkpoint seen published so far
        self.checked_upto = 0  # acked bids before this index have been checked
        self.checks = 0
        self.reported: set[tuple[str, str, str]] = set()  # duplicate keys already reported

    # -- setup --

    async def setup(self, http: aiohttp.ClientSession) -> None:
        await asyncio.to_thread(self._write_policy)
        for proxy in self.proxies:
            await proxy.start()
        await asyncio.gather(*(n.start(r" on (http://\S+)") for n in self.notaries))
        await self.start_server()
        self.lots = await create_lots(http, self.url, self.token, self.args.lots)
        self.bidders = [
            await make_bidder(http, self.url, n, self.lots) for n in range(self.args.bidders)
        ]
        await wait_ready(http, self.url, self.bidders, self.lots)
        for bidder in self.bidders:
            bidder.min_next = {lot: START_PRICE for lot in self.lots}

    def _write_policy(self) -> None:
        """Notary keys and `DATA/policy` as `gavel demo` makes them, except that each notary's
        URL in the policy is its proxy's: the notary itself listens on another port."""
        with Storage.open(self.data) as store:
            house = store.house
            assert house is not None
            prepared, policy = prepare_notaries(self.data, house.vkey, NOTARIES, QUORUM)
            store.use_policy(policy)
        (self.data / POLICY_FILE).write_bytes(policy)
        for notary in prepared:
            self.notary_names.add(notary.name)
            real = free_port()
            self.proxies.append(NotaryProxy(notary.port, real, self.args.notary_delay))
            self.notaries.append(
                Process(
                    notary.name,
                    [
                        sys.executable,
                        "-m",
                        "auction.cli",
                        "notary",
                        "serve",
                        "--dir",
                        str(notary.directory),
                        "--port",
                        str(real),
                        "--log",
                        self.url,
                        "--policy",
                        str(self.data / POLICY_FILE),
                    ],
                    notary.directory / "chaos.log",
                )  # fmt: skip
            )

    async def start_server(self) -> float:
        began = time.monotonic()
        try:
            token = await self.server.start(r"#token=(\S+)")
        except ChaosError as exc:
            self.figures.violate(f"restart failed: {exc}")
            raise
        if not self.token:
            self.token = token
        return time.monotonic() - began

    async def teardown(self) -> None:
        self.done = True
        await self.server.stop()
        await asyncio.gather(*(n.stop() for n in self.notaries))
        for proxy in self.proxies:
            await proxy.stop()

    # -- bidders --

    def _record(self, bidder: Bidder, key: str, ack: Ack, resent: bool) -> None:
        sent = bidder.outstanding.pop(key, None)
        if sent is None:
            return
        lot, amount = sent
        acked = AckedBid(
            bidder.account, lot, key, amount, ack.result, ack.reason, ack.entry, resent, self.round
        )
        self.acked.append(acked)
        message = bidder.messages.pop(key, None)
        if message is not None and acked.entry is not None:
            bidder.last_acked = (message, acked)
        self.figures.acknowledged += 1
        self.figures.accepted += ack.accepted
        self.figures.resent += resent
        self.figures.without_entry += ack.entry is None
        if ack.min_next is not None and ack.min_next > bidder.min_next[lot]:
            bidder.min_next[lot] = ack.min_next
        self.ack_seen.set()

    async def _connect(self, bidder: Bidder) -> None:
        if bidder.client is None:
            bidder.client = await BidderClient.connect(
                self.url, account=bidder.account, key=bidder.key, session=bidder.session
            )
        else:
            await bidder.client.reconnect()  # resends every unacknowledged bid, same keys
        bidder.generation = self.generation
        for key in list(bidder.outstanding):
            try:
                ack = await bidder.client.wait_ack(key, ACK_TIMEOUT)
            except ClientError:
                continue  # answered on the old connection already, or not resent
            self._record(bidder, key, ack, resent=True)
        if bidder.last_acked is not None and self.args.lost_acks:
            await self._resend_acknowledged(bidder, *bidder.last_acked)
            bidder.last_acked = None

    async def _resend_acknowledged(
        self, bidder: Bidder, message: dict[str, Any], acked: AckedBid
    ) -> None:
        """As if the kill had swallowed this bid's ack: resend it with its key after the
        restart. The answer must be the original one (same entry, same result), and the
        ledger must get no second entry for it."""
        assert bidder.client is not None
        ack = await bidder.client.send_bid(message, timeout=ACK_TIMEOUT)
        self.figures.lost_ack_resends += 1
        if ack.entry != acked.entry or ack.result != acked.result:
            self.figures.violate(
                f"round {self.round}: a resend of acknowledged bid {acked.key!r} "
                f"(entry {acked.entry}, {acked.result}) after the restart was answered "
                f"entry {ack.entry}, {ack.result} {ack.reason or ''}"
            )

    async def run_bidder(self, bidder: Bidder) -> None:
        rng = random.Random(self.rng.random())
        while not self.done:
            await self.up.wait()
            if self.done:
                return
            generation = self.generation
            try:
                if bidder.generation != generation:
                    await self._connect(bidder)
                assert bidder.client is not None
                lot = rng.choice(self.lots)
                amount = bidder.min_next[lot] + STEP * rng.choice((0, 0, 1, 2))
                message = bidder.client.signed_bid(lot, amount, CURRENCY)
                key = message["idempotency_key"]
                bidder.outstanding[key] = (lot, amount)
                bidder.messages[key] = message
                ack = await bidder.client.send_bid(message, timeout=ACK_TIMEOUT)
                self._record(bidder, key, ack, resent=False)
                await asyncio.sleep(rng.uniform(0, 2 * self.args.pause))
            except SERVER_ERRORS as exc:
                if self.args.verbose:
                    print(f"bidder {bidder.index}: {exc!r}", flush=True)
                # The server went away: wait for the next one (or, if this one is still up,
                # a second), then reconnect and resend before the next bid.
                bidder.generation = -1
                loop = asyncio.get_running_loop()
                until = loop.time() + 1.0
                while not self.done and self.generation == generation and loop.time() < until:
                    await asyncio.sleep(0.01)

    # -- kills --

    async def _moment(self, mode: str) -> bool:
        """Wait for the moment `mode` kills at; False if it did not come (kill anyway)."""
        loop = asyncio.get_running_loop()
        if mode == "random":
            await asyncio.sleep(self.rng.uniform(0.05, 1.5))
            return True
        await asyncio.sleep(self.rng.uniform(0.1, 0.6))
        moment: asyncio.Future[None] = loop.create_future()

        def hit() -> None:
            if not moment.done():
                moment.set_result(None)

        if mode == "commit":

            async def watch() -> None:
                while True:
                    self.ack_seen.clear()
                    await self.ack_seen.wait()
                    if any(b.outstanding for b in self.bidders):
                        hit()
                        return

            watcher = loop.create_task(watch())
            wait = self.rng.uniform(0, 0.004)
        else:
            watcher = None
            for proxy in self.proxies:
                if mode == "cosign-request":
                    proxy.on_request = hit
                else:
                    proxy.on_answer = hit
            wait = self.rng.uniform(0, self.args.notary_delay * 0.9)
            if mode == "cosign-answer":
                wait = self.rng.uniform(0, 0.003)
        try:
            await asyncio.wait_for(moment, MOMENT_TIMEOUT)
        except TimeoutError:
            return False
        finally:
            if watcher is not None:
                watcher.cancel()
            for proxy in self.proxies:
                proxy.on_request = proxy.on_answer = None
        await asyncio.sleep(wait)
        return True

    async def kill_and_restart(self, mode: str) -> None:
        figures = self.figures
        if not await self._moment(mode):
            figures.fallbacks += 1
        cosigning = any(p.in_flight > 0 for p in self.proxies)
        in_flight = any(b.outstanding for b in self.bidders)
        self.server.sigkill()
        self.up.clear()
        self.generation += 1
        code = await self.server.kill()
        figures.kills += 1
        figures.modes[mode] += 1
        figures.kills_during_cosigning += cosigning
        figures.kills_with_bids_in_flight += in_flight
        if code != -signal.SIGKILL:
            figures.violate(f"kill {figures.kills}: the server had already exited ({code})")
        took = await self.start_server()
        figures.restarts += 1
        figures.restart_seconds.append(took)
        self.round += 1
        self.up.set()

    # -- checks --

    async def watch_published(self, http: aiohttp.ClientSession) -> None:
        """Keep `published_max` up to date while the server is up (every 0.1 s)."""
        while not self.done:
            if self.up.is_set():
                with contextlib.suppress(aiohttp.ClientError, TimeoutError, ChainError):
                    async with http.get(f"{self.url}/log/checkpoint") as response:
                        if response.status == 200:
                            note = await response.read()
                            size = parse_checkpoint_text(parse_note(note).text).size
                            if size < self.published_max:
                                self.figures.violate(
                                    f"round {self.round}: /log/checkpoint went back from "
                                    f"{self.published_max} to {size}"
                                )
                            self.published_max = max(self.published_max, size)
            await asyncio.sleep(0.1)

    async def check_cosigned(self, http: aiohttp.ClientSession) -> None:
        """After a restart: a checkpoint co-signed by the quorum covers the log as it was at
        the restart, and is not smaller than any checkpoint published before the kill."""
        async with http.get(f"{self.url}/api/auditor") as response:
            size_now = (await _json(response, 200, "auditor"))["log_size"]
        entries = [a.entry for a in self.acked if a.entry is not None]
        if entries and max(entries) >= size_now:
            self.figures.violate(
                f"round {self.round}: the log has {size_now} entries after the restart, but "
                f"entry {max(entries)} was acknowledged"
            )
        began = time.monotonic()
        deadline = began + COSIGN_TIMEOUT
        seen = (0, 0)
        while time.monotonic() < deadline:
            async with http.get(f"{self.url}/log/checkpoint") as response:
                if response.status == 200:
                    note = await response.read()
                    size = parse_checkpoint_text(parse_note(note).text).size
                    count = cosigners(note, self.notary_names)
                    seen = (size, count)
                    if size < self.published_max:
                        self.figures.violate(
                            f"round {self.round}: published checkpoint {size} is smaller than "
                            f"{self.published_max}, published before"
                        )
                        return
                    if size >= size_now and count >= QUORUM:
                        self.published_max = size
                        self.figures.cosign_seconds.append(time.monotonic() - began)
                        return
            await asyncio.sleep(0.05)
        self.figures.violate(
            f"round {self.round}: no checkpoint co-signed by {QUORUM} notaries covers size "
            f"{size_now} within {COSIGN_TIMEOUT:g} s (last: size {seen[0]}, {seen[1]} cosigners)"
        )

    async def check_ledger(self, http: aiohttp.ClientSession, *, audit: bool, final: bool) -> None:
        """Export the published ledger and check every acknowledged bid it covers."""
        self.checks += 1
        out = self.data.parent / "export"
        shutil.rmtree(out, ignore_errors=True)
        export = await _run(
            [sys.executable, "-m", "auction.cli", "ledger", "export", "--url", self.url,
             "--out", str(out)]
        )  # fmt: skip
        if export[0] != 0:
            self.figures.violate(f"ledger export failed: {export[1][-500:]}")
            return
        size, bids, entries = await asyncio.to_thread(read_export, out)
        self.figures.entries = max(self.figures.entries, entries)
        if audit:
            self.figures.audits += 1
            code, output = await _run(
                [sys.executable, "-m", "auction.cli", "audit", "verify", str(out)]
            )
            if code != 0:
                self.figures.audits_failed += 1
                self.figures.violate(f"gavel audit verify failed at {size}: {output[-800:]}")
        by_key: dict[tuple[str, str, str], list[LedgerBid]] = defaultdict(list)
        for bid in bids.values():
            by_key[(bid.account, bid.lot, bid.key)].append(bid)
        duplicates = {k: v for k, v in by_key.items() if len(v) > 1}
        twice = {k: v for k, v in duplicates.items() if sum(b.accepted for b in v) > 1}
        self.figures.duplicates = len(duplicates)
        self.figures.applied_twice = len(twice)
        for k, v in duplicates.items():
            if k in self.reported or len(self.reported) >= 10:
                continue
            self.reported.add(k)
            shown = ", ".join(f"{b.seq}:{'accepted' if b.accepted else 'rejected'}" for b in v)
            self.figures.violate(
                f"idempotency key {k[2]!r} of {k[0]} on {k[1]} has {len(v)} entries ({shown})"
            )
        histories: dict[str, set[int]] = {}
        for lot in self.lots:
            async with http.get(f"{self.url}/api/lots/{lot}/bids") as response:
                history = await _json(response, 200, f"bids of {lot}")
            histories[lot] = {b["amount"] for b in history["bids"]}
        accepted_in_ledger: dict[str, list[int]] = defaultdict(list)
        for bid in bids.values():
            if bid.accepted:
                accepted_in_ledger[bid.lot].append(bid.amount)
        for lot in self.lots:
            missing = set(accepted_in_ledger[lot]) - histories[lot]
            if missing:
                self.figures.violate(
                    f"{lot}: accepted in the ledger, not in its history: {sorted(missing)[:5]}"
                )
        if final:
            for lot in self.lots:
                async with http.get(f"{self.url}/api/lots/{lot}") as response:
                    view = (await _json(response, 200, f"lot {lot}"))["lot"]
                amounts = accepted_in_ledger[lot]
                if view["price"] != (max(amounts) if amounts else None):
                    self.figures.violate(
                        f"{lot}: price {view['price']}, the ledger's last accepted bid "
                        f"{max(amounts) if amounts else None}"
                    )
                if len(histories[lot]) != len(amounts):
                    self.figures.violate(
                        f"{lot}: {len(histories[lot])} bids in its history, {len(amounts)} "
                        "accepted in the ledger"
                    )
        start = self.checked_upto
        for index in range(start, len(self.acked)):
            acked = self.acked[index]
            if acked.entry is None:
                self.checked_upto = index + 1
                continue
            if acked.entry >= size:
                if final:
                    self._lost(acked, "beyond the final checkpoint")
                    continue
                break
            self.checked_upto = index + 1
            self.figures.checked += 1
            stored = bids.get(acked.entry)
            expected = (
                acked.account,
                acked.lot,
                acked.key,
                acked.amount,
                acked.result == "accepted",
            )
            if stored is None:
                self._lost(acked, "no signed bid at its entry")
            elif (
                stored.account,
                stored.lot,
                stored.key,
                stored.amount,
                stored.accepted,
            ) != expected:
                self._lost(acked, f"entry {acked.entry} holds {stored}")
            elif stored.accepted and acked.amount not in histories[acked.lot]:
                self._lost(acked, "not in the lot's history")

    def _lost(self, acked: AckedBid, why: str) -> None:
        self.figures.lost += 1
        if self.figures.lost <= 5:
            self.figures.violate(f"acknowledged bid lost ({why}): {acked}")

    # -- the whole run --

    async def run(self) -> None:
        timeout = aiohttp.ClientTimeout(total=30)
        async with aiohttp.ClientSession(timeout=timeout) as http:
            await self.setup(http)
            self.up.set()
            tasks = [asyncio.create_task(self.run_bidder(b)) for b in self.bidders]
            tasks.append(asyncio.create_task(self.watch_published(http)))
            try:
                for k in range(self.args.kills):
                    await self.kill_and_restart(MODES[k % len(MODES)])
                    await self.check_cosigned(http)
                    if (k + 1) % self.args.check_every == 0:
                        audit = self.checks % self.args.audit_every == self.args.audit_every - 1
                        await self.check_ledger(http, audit=audit, final=False)
                    print(
                        f"kill {self.figures.kills:>3} {MODES[k % len(MODES)]:<15} "
                        f"restart {self.figures.restart_seconds[-1]:.2f}s  "
                        f"acknowledged {self.figures.acknowledged}  checked {self.figures.checked}"
                        f"  violations {len(self.figures.violations)}",
                        flush=True,
                    )
                    if self.figures.violations and self.args.stop_on_violation:
                        break
                await asyncio.sleep(0.5)
            finally:
                self.done = True
                self.up.set()
                await asyncio.gather(*tasks, return_exceptions=True)
            for bidder in self.bidders:
                if bidder.outstanding:
                    self.figures.violate(
                        f"{bidder.account}: {len(bidder.outstanding)} bids never acknowledged"
                    )
                if bidder.client is not None:
                    with contextlib.suppress(*SERVER_ERRORS):
                        await bidder.client.close()
            # let the notaries co-sign everything, then check the whole published ledger
            await self.check_cosigned(http)
            await self.check_ledger(http, audit=True, final=True)


async def _run(command: list[str]) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        *command, cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    output, _ = await process.communicate()
    return int(process.returncode or 0), output.decode("utf-8", "replace")


def mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else float("nan")


def report(figures: Figures, elapsed: float) -> dict[str, Any]:
    return {
        "kill_points": figures.kills,
        "kill_modes": dict(figures.modes),
        "kill_fallbacks": figures.fallbacks,
        "kills_with_bids_in_flight": figures.kills_with_bids_in_flight,
        "kills_during_cosigning": figures.kills_during_cosigning,
        "restarts": figures.restarts,
        "mean_restart_s": round(mean(figures.restart_seconds), 3),
        "max_restart_s": round(max(figures.restart_seconds, default=float("nan")), 3),
        "mean_cosign_after_restart_s": round(mean(figures.cosign_seconds), 3),
        "acknowledged": figures.acknowledged,
        "accepted": figures.accepted,
        "resent_acknowledged": figures.resent,
        "lost_ack_resends": figures.lost_ack_resends,
        "acknowledged_without_entry": figures.without_entry,
        "checked": figures.checked,
        "lost": figures.lost,
        "duplicates": figures.duplicates,
        "applied_twice": figures.applied_twice,
        "ledger_entries": figures.entries,
        "audits": figures.audits,
        "audit": "pass" if figures.audits and not figures.audits_failed else "FAIL",
        "violations": len(figures.violations),
        "seconds": round(elapsed, 1),
    }


async def amain(args: argparse.Namespace) -> int:
    began = time.monotonic()
    with contextlib.ExitStack() as stack:
        if args.data is None:
            root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="gavel-chaos-")))
        else:
            root = Path(args.data)
            if root.exists() and any(root.iterdir()):
                print(f"chaos_crash: {root} is not empty", file=sys.stderr)
                return 2
            root.mkdir(parents=True, exist_ok=True)
        data = root / "data"
        data.mkdir()
        chaos = Chaos(args, data)
        print(
            f"# chaos_crash: {args.kills} kills, {args.bidders} bidders, {args.lots} lots, "
            f"notary answers delayed {args.notary_delay * 1000:.0f} ms, seed {args.seed}, "
            f"data {root}",
            flush=True,
        )
        try:
            await asyncio.wait_for(chaos.run(), args.time_limit)
        except TimeoutError:
            chaos.figures.violate(f"the run did not finish within {args.time_limit:g} s")
        except ChaosError as exc:
            chaos.figures.violate(f"stopped: {exc}")
        finally:
            await chaos.teardown()
        figures = report(chaos.figures, time.monotonic() - began)
        for name, value in figures.items():
            print(f"{name:<28} {value}", flush=True)
        if args.json is not None:
            Path(args.json).write_text(json.dumps(figures, indent=2) + "\n")
        if chaos.figures.violations:
            print(f"chaos_crash: FAILED, {len(chaos.figures.violations)} violations", flush=True)
            return 1
        print("chaos_crash: OK", flush=True)
        return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=50)
    parser.add_argument("--bidders", type=int, default=6)
    parser.add_argument("--lots", type=int, default=2)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--notary-delay", type=float, default=0.15, help="seconds")
    parser.add_argument("--pause", type=float, default=0.05, help="mean pause between bids, s")
    parser.add_argument("--check-every", type=int, default=1, help="export and check every N")
    parser.add_argument("--audit-every", type=int, default=5, help="audit every N checks")
    parser.add_argument("--time-limit", type=float, default=1800.0, help="seconds")
    parser.add_argument("--stop-on-violation", action="store_true")
    parser.add_argument("--verbose", action="store_true", help="print the bidders' errors")
    parser.add_argument(
        "--no-lost-acks",
        dest="lost_acks",
        action="store_false",
        help="do not resend an acknowledged bid after each restart (a lost ack)",
    )
    parser.add_argument("--data", default=None, help="an empty directory to keep (else a temp)")
    parser.add_argument("--json", default=None, help="also write the figures here")
    args = parser.parse_args()
    if args.seed is None:
        args.seed = random.SystemRandom().randrange(2**32)
    return asyncio.run(amain(args))


if __name__ == "__main__":
    sys.exit(main())
