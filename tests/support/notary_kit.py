"""A small, misbehaving-on-demand log for the notary tests, and notary processes to test.

- :class:`SimulatedLog` builds a ledger the way the server does: entry 0 is ``house``, then lots
  run by the rules engine (registrations, opening, bids at the minimum, proxy maxima, refused
  low bids, the close at the end, a ``sale`` entry when sold), every entry signed by the house
  key, times in the past and never going backwards. It signs checkpoints with the house key
  (key name = origin) and builds tlog-witness request bodies. It can grow, roll back
  (:meth:`SimulatedLog.rollback`), fork (:meth:`SimulatedLog.fork`) and append a rule-breaking
  entry re-signed consistently (:meth:`SimulatedLog.inject_low_bid`).
- :class:`LogServer` serves a log over 127.0.0.1 at ``/log/checkpoint``, ``/log/tile/...``
  (tlog-tiles hash tiles and entry bundles) and ``/log/policy``.
- :class:`NotaryProcess` runs ``gavel notary serve`` as a real subprocess on a free port;
  :func:`notary_group`, :func:`quorum_policy`, :func:`start_notaries` and :func:`stop_notaries` set
  up a group of them in front of a real server, :func:`open_lot` opens a lot on that server.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import json
import os
import re
import signal
import socket
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiohttp import web
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from auction.rules import (
    SECOND,
    BidAccepted,
    CloseLot,
    LotClosed,
    LotState,
    LotStatus,
    OpenLot,
    PlaceBid,
    PriceChanged,
    RegisterBidder,
    Result,
    SetMax,
    SoftClose,
    apply,
    encode,
    english_timed,
)
from auction.verify import (
    command_body,
    confirmation_document,
    entry_type_for,
    house_body,
    lot_body,
    sale_body,
)
from chain import (
    Checkpoint,
    CosignatureVerifier,
    Ed25519Signer,
    Ed25519Verifier,
    Entry,
    EntryBundle,
    EntryType,
    MemoryTree,
    Policy,
    PolicyLog,
    Threshold,
    WitnessRule,
    build_entry,
    format_policy,
    parse_tile_path,
    parse_vkey,
    sign_actor,
    sign_checkpoint,
)
from notary.core import format_add_checkpoint

if TYPE_CHECKING:
    from auction.service import AuctionService

ORIGIN = "auction.example.org/gavel/notary-test"
HOUSE_NAME = "Gavel Notary Test Auctions"
REPO = Path(__file__).resolve().parents[2]
MILLISECOND = SECOND // 1000


def house_key(label: str = "house") -> Ed25519PrivateKey:
    """A deterministic house key."""
    return Ed25519PrivateKey.from_private_bytes(
        hashlib.sha256(b"gavel notary test key " + label.encode()).digest()
    )


@dataclasses.dataclass
class _Lot:
    lot_id: str
    title: str
    state: LotState
    n: int = 0
    rounds: int = 10
    step: int = 0
    last_bid_seq: dict[str, int] = dataclasses.field(default_factory=dict)


class SimulatedLog:
    """An in-memory ledger with the server's entry bodies, signed by the house key."""

    def __init__(
        self,
        *,
        origin: str = ORIGIN,
        key: Ed25519PrivateKey | None = None,
        start_us: int | None = None,
        lot_prefix: str = "lot",
        rounds: int = 10,
    ) -> None:
        self.origin = origin
        self.private_key = key or house_key()
        self.signer = Ed25519Signer(origin, self.private_key)
        self.kid = self.signer.key_id.hex()
        self.actor_key = self.private_key  # signs entries as their actor (rotatable)
        self.entries: list[Entry] = []
        self.tree = MemoryTree()
        self.lot_prefix = lot_prefix
        self.rounds = rounds
        self._lot: _Lot | None = None
        self._lots_made = 0
        default_start = int((time.time() - 86_400) * SECOND)
        self.last_t = default_start if start_us is None else start_us
        self.published: bytes | None = None
        self.policy_bytes = b""
        self.append(EntryType.HOUSE, house_body(origin, HOUSE_NAME, self.signer.vkey))

    # --- entries ---------------------------------------------------------------------------

    @property
    def size(self) -> int:
        return len(self.entries)

    def append(self, entry_type: EntryType, body: dict[str, Any], time_us: int = 0) -> Entry:
        """Append an entry signed by the house key; ``t`` never goes backwards."""
        self.last_t = max(self.last_t + MILLISECOND, time_us)
        entry = build_entry(
            seq=self.size,
            prev=self.entries[-1].leaf_hash() if self.entries else b"",
            time_us=self.last_t,
            entry_type=entry_type,
            body=body,
            actor=sign_actor(entry_type, body, self.kid, self.actor_key),
        )
        self.entries.append(entry)
        self.tree.append(entry.to_bytes())
        return entry

    def _new_lot(self) -> _Lot:
        self._lots_made += 1
        lot_id = f"{self.lot_prefix}-{self._lots_made:06d}"
        start = self.last_t + MILLISECOND
        rules = english_timed(
            start_price=100_000,
            start_at=start,
            end_at=start + 2 * SECOND,
            soft_close=SoftClose(window=SECOND // 2, extend=SECOND // 2),
        )
        lot = _Lot(lot_id, f"Lot {self._lots_made}", LotState.create(lot_id, rules))
        lot.rounds = self.rounds
        self.append(EntryType.LOT, lot_body(lot_id, rules, lot.title, None, start), start)
        return lot

    def command(self, lot: _Lot, command: Any, now: int | None = None) -> tuple[Any, ...]:
        """Apply ``command`` with the engine and log it (accepted or not), then a sale."""
        now = max(self.last_t + MILLISECOND, now or 0)
        lot.state, events = apply(lot.state, command, now)
        body = command_body(lot.lot_id, lot.n, now, command, events)
        lot.n += 1
        entry = self.append(entry_type_for(command), body, now)
        for event in events:
            if isinstance(event, BidAccepted):
                lot.last_bid_seq[event.bidder] = entry.seq
            if isinstance(event, LotClosed) and event.result is Result.SOLD:
                currency = lot.state.rules.currency
                document = confirmation_document(lot.lot_id, lot.title, event, currency, entry.seq)
                winning = lot.last_bid_seq.get(event.winner or "")
                sale = sale_body(lot.lot_id, event, currency, entry.seq, winning, document)
                self.append(EntryType.SALE, sale, entry.time_us)
        return events

    def _step(self) -> None:
        lot = self._lot
        if lot is None:
            self._lot = self._new_lot()
            return
        bidders = ("alice", "bob", "carol", "dave")
        step = lot.step
        lot.step += 1
        if step < len(bidders):
            bidder = bidders[step]
            self.command(lot, RegisterBidder(bidder, f"C{step:02d}-{bidder}", True))
        elif step == len(bidders):
            self.command(lot, OpenLot(), lot.state.rules.start_at)
        elif step < len(bidders) + 1 + lot.rounds * len(bidders):
            bidder = bidders[step % len(bidders)]
            if step % 11 == 0:
                self.command(lot, PlaceBid(bidder, 1_000, "USD"))  # refused: below the minimum
            elif step % 7 == 0:
                self.command(lot, SetMax(bidder, lot.state.min_next + 10_000, "USD"))
            else:
                self.command(lot, PlaceBid(bidder, lot.state.min_next, "USD"))
        else:
            self.command(lot, CloseLot(), lot.state.end)
            if lot.state.status is not LotStatus.OPEN:
                self._lot = None

    def grow(self, count: int) -> int:
        """Append at least ``count`` entries of auction activity; return the new size."""
        target = self.size + count
        while self.size < target:
            self._step()
        return self.size

    def open_lot(self) -> _Lot:
        """The lot currently taking bids (creating and opening one if needed)."""
        while self._lot is None or self._lot.state.status is not LotStatus.OPEN:
            self._step()
        return self._lot

    def inject_low_bid(self) -> Entry:
        """Append a bid *accepted* below the minimum: the body claims the engine accepted it,
        which it would not; the entry is signed and chained consistently."""
        lot = self.open_lot()
        low = lot.state.min_next - 1_000
        now = self.last_t + MILLISECOND
        valid_state, events = apply(lot.state, PlaceBid("alice", lot.state.min_next, "USD"), now)
        forged: list[Any] = []
        for event in events:
            if isinstance(event, BidAccepted):
                event = dataclasses.replace(event, amount=low)
            if isinstance(event, PriceChanged):
                event = dataclasses.replace(event, price=low)
            forged.append(event)
        body = command_body(lot.lot_id, lot.n, now, PlaceBid("alice", low, "USD"), ())
        body["accepted"] = True
        body["events"] = [encode(event) for event in forged]
        lot.n += 1
        lot.state = valid_state
        return self.append(EntryType.BID, body, now)

    def rotate_actor_key(self, key: Ed25519PrivateKey, name: str = "actors.example.org") -> Entry:
        """A ``key`` entry (signed by the current actor key) adding ``key`` and revoking the
        current one; later entries are signed by ``key`` with its vkey as ``actor.kid``."""
        vkey = Ed25519Signer(name, key).vkey
        entry = self.append(EntryType.KEY, {"v": 1, "vkey": vkey, "revoke": [self.kid]})
        self.actor_key, self.kid = key, vkey
        return entry

    def inject_future_entry(self, seconds: float) -> Entry:
        """Append a lot entry dated ``seconds`` ahead of the real clock."""
        self._lot = None
        self._lots_made += 1
        t = int((time.time() + seconds) * SECOND)
        lot_id = f"{self.lot_prefix}-future-{self._lots_made}"
        rules = english_timed(start_price=100_000, start_at=t, end_at=t + 60 * SECOND)
        return self.append(EntryType.LOT, lot_body(lot_id, rules, "Future", None, t), t)

    def rollback(self, size: int) -> None:
        """Forget every entry from ``size`` on (a log restored from an old backup)."""
        self.entries = self.entries[:size]
        self.tree = MemoryTree()
        for entry in self.entries:
            self.tree.append(entry.to_bytes())
        self.last_t = self.entries[-1].time_us
        self._lot = None
        self.lot_prefix += "-r"

    def fork(self, size: int, lot_prefix: str = "fork") -> SimulatedLog:
        """Another log with the same key and the first ``size`` entries, growing apart."""
        other = SimulatedLog(
            origin=self.origin, key=self.private_key, lot_prefix=lot_prefix, rounds=self.rounds
        )
        other.entries = list(self.entries[:size])
        other.tree = MemoryTree()
        for entry in other.entries:
            other.tree.append(entry.to_bytes())
        other.last_t = self.entries[size - 1].time_us
        other.policy_bytes = self.policy_bytes
        return other

    def bid_seqs(self) -> list[int]:
        """The seqs of accepted bid entries (what a bidder was acknowledged)."""
        return [e.seq for e in self.entries if e.type is EntryType.BID and e.body.get("accepted")]

    # --- checkpoints -----------------------------------------------------------------------

    def checkpoint(self, size: int | None = None) -> bytes:
        """The log-signed checkpoint of the tree at ``size`` (default: current)."""
        size = self.size if size is None else size
        return sign_checkpoint(Checkpoint(self.origin, size, self.tree.root_at(size)), self.signer)

    def proof(self, old: int, size: int | None = None) -> list[bytes]:
        """The consistency proof from ``old`` to ``size`` (empty from 0, as tlog-witness says)."""
        size = self.size if size is None else size
        if old == 0 or old >= size:
            return []
        return self.tree.consistency_proof(old, size)

    def body(self, old: int, size: int | None = None) -> bytes:
        """A tlog-witness add-checkpoint body from ``old`` to ``size``."""
        return format_add_checkpoint(old, self.proof(old, size), self.checkpoint(size))

    # --- policy ----------------------------------------------------------------------------

    def make_policy(
        self,
        notaries: Sequence[tuple[str, str, str | None]],
        quorum: int,
        log_url: str | None = None,
    ) -> bytes:
        """A tlog-policy: this log, ``(name, vkey, url)`` notaries, ``quorum`` of them."""
        self.policy_bytes = _policy(self.signer.verifier, notaries, quorum, log_url)
        return self.policy_bytes


# --------------------------------------------------------------------------------------------
# Serving a log


class LogServer:
    """Serves ``log`` (replaceable: ``server.log = other``) on 127.0.0.1 at ``/log/...``.

    ``/log/checkpoint`` is ``log.published`` or, if unset, the latest checkpoint.
    ``requests`` counts requests per path; ``down`` makes every request fail with 503.
    """

    def __init__(self, log: SimulatedLog) -> None:
        self.log = log
        self.requests: dict[str, int] = {}
        self.down = False
        self.partial_gone = False  # 404 for partial tiles once the full tile exists
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def _tile(self, request: web.Request) -> web.Response:
        path = request.match_info["path"]
        self.requests[path] = self.requests.get(path, 0) + 1
        if self.down:
            return web.Response(status=503)
        try:
            tile = parse_tile_path(path)
        except Exception:
            return web.Response(status=404)
        tree = self.log.tree
        if tile.leaf_end > tree.size:
            return web.Response(status=404)
        full_end = tile.leaf_begin + (256 << (8 * getattr(tile, "level", 0)))
        if self.partial_gone and tile.is_partial and full_end <= tree.size:
            return web.Response(status=404)
        data = tree.entry_bundle(tile) if isinstance(tile, EntryBundle) else tree.tile(tile)
        return web.Response(body=data, content_type="application/octet-stream")

    async def _checkpoint(self, request: web.Request) -> web.Response:
        if self.down:
            return web.Response(status=503)
        body = self.log.published or self.log.checkpoint()
        return web.Response(body=body, content_type="text/plain")

    async def _policy(self, request: web.Request) -> web.Response:
        return web.Response(body=self.log.policy_bytes, content_type="text/plain")

    async def start(self) -> str:
        app = web.Application()
        app.router.add_get("/log/checkpoint", self._checkpoint)
        app.router.add_get("/log/policy", self._policy)
        app.router.add_get("/log/{path:tile/.+}", self._tile)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"
        return self.url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


# --------------------------------------------------------------------------------------------
# Notary processes


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def gavel_command(*arguments: str) -> list[str]:
    """The command line of ``gavel ...`` with this interpreter."""
    return [sys.executable, "-m", "auction.cli", *arguments]


class NotaryProcess:
    """``gavel notary serve`` as a subprocess on a fixed free port (kept across restarts)."""

    def __init__(self, directory: Path, name: str) -> None:
        from notary.datadir import init_data_dir

        self.directory = directory
        self.name = name
        self.signer = init_data_dir(directory, name)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: asyncio.subprocess.Process | None = None
        self.arguments: list[str] = []

    @property
    def vkey(self) -> str:
        return self.signer.vkey

    async def start(
        self,
        log_url: str,
        policy: Path,
        *extra: str,
        peer_interval: float = 30.0,
        max_skew: float = 2.0,
    ) -> None:
        """Start serving and wait for the line that says it listens."""
        self.arguments = [
            "notary", "serve", "--dir", str(self.directory), "--port", str(self.port),
            "--log", log_url, "--policy", str(policy), "--peer-interval", str(peer_interval),
            "--max-skew", str(max_skew), "--fetch-timeout", "5", *extra,
        ]  # fmt: skip
        await self.restart()

    async def restart(self) -> None:
        assert self.process is None, "already running"
        stderr = open(self.directory / "stderr.log", "ab")  # noqa: SIM115 - owned by the child
        try:
            self.process = await asyncio.create_subprocess_exec(
                *gavel_command(*self.arguments),
                cwd=REPO,
                stdout=asyncio.subprocess.PIPE,
                stderr=stderr,
                env={**os.environ, "PYTHONPATH": str(REPO)},
            )
        finally:
            stderr.close()
        assert self.process.stdout is not None
        try:
            line = await asyncio.wait_for(self.process.stdout.readline(), 30)
        except TimeoutError:
            await self.kill()
            raise AssertionError(f"{self.name} did not start: {self.stderr()}") from None
        if not re.search(rb"on http://127\.0\.0\.1:\d+/", line):
            await self.kill()
            raise AssertionError(f"{self.name} did not start: {line!r} {self.stderr()}")

    def stderr(self) -> str:
        with contextlib.suppress(OSError):
            return (self.directory / "stderr.log").read_text()
        return ""

    async def kill(self) -> None:
        """kill -9: no chance to clean up."""
        if self.process is not None:
            with contextlib.suppress(ProcessLookupError):
                self.process.kill()
            await self.process.wait()
            self.process = None

    async def stop(self) -> int:
        """SIGTERM and wait; return the exit status."""
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(self.process.wait(), 20)
        self.process = None
        return code

    def status(self) -> dict[str, Any]:
        """``gavel notary status --json`` read from the data directory (works while running)."""
        import subprocess

        result = subprocess.run(
            gavel_command("notary", "status", "--dir", str(self.directory), "--json"),
            cwd=REPO,
            capture_output=True,
            check=True,
            timeout=60,
        )
        value: dict[str, Any] = json.loads(result.stdout)
        return value


def notary_group(directory: Path, count: int = 3, **directories: Path) -> list[NotaryProcess]:
    """``count`` notaries ``notary1.test``, ``notary2.test``, ... with their data in
    ``directory / "n1"``, ``directory / "n2"``, ... (``n2=path`` puts n2's elsewhere)."""
    return [
        NotaryProcess(directories.get(f"n{i}", directory / f"n{i}"), f"notary{i}.test")
        for i in range(1, count + 1)
    ]


def quorum_policy(
    log_vkey: str,
    witnesses: Sequence[NotaryProcess],
    urls: Sequence[str] | None = None,
    quorum: int = 2,
) -> bytes:
    """A tlog-policy: the log of ``log_vkey`` and ``quorum`` of ``witnesses``, each reached at
    its own URL or at the one ``urls`` gives in its place."""
    if urls is None:
        urls = [notary.url for notary in witnesses]
    log_verifier = parse_vkey(log_vkey)
    assert isinstance(log_verifier, Ed25519Verifier)
    triples = [(n.name, n.vkey, url) for n, url in zip(witnesses, urls, strict=True)]
    return _policy(log_verifier, triples, quorum)


def _policy(
    log_verifier: Ed25519Verifier,
    notaries: Sequence[tuple[str, str, str | None]],
    quorum: int,
    log_url: str | None = None,
) -> bytes:
    """A tlog-policy: the log of ``log_verifier``, ``(name, vkey, url)`` notaries, ``quorum``
    of them."""
    witnesses = []
    for name, vkey, url in notaries:
        verifier = parse_vkey(vkey)
        assert isinstance(verifier, CosignatureVerifier)
        witnesses.append(WitnessRule(name, verifier, url))
    group = Threshold("notaries", quorum, tuple(witnesses))
    log = PolicyLog(log_verifier, log_url)
    return format_policy(Policy((log,), tuple(witnesses), group, (group,)))


async def start_notaries(
    group: Sequence[NotaryProcess], log_urls: Sequence[str], policy: Path
) -> list[NotaryProcess]:
    """Start every notary of ``group`` at once, each reading the log at its URL in
    ``log_urls``; return them once all of them listen."""
    await asyncio.gather(
        *(notary.start(url, policy) for notary, url in zip(group, log_urls, strict=True))
    )
    return list(group)


async def stop_notaries(group: Sequence[NotaryProcess], *, kill: bool = False) -> None:
    """Stop, one after the other, those of ``group`` still running: SIGTERM, or kill -9."""
    for notary in group:
        if notary.process is None:
            continue
        if kill:
            await notary.kill()
        else:
            await notary.stop()


async def open_lot(service: AuctionService, seconds: int = 120, reserve: int | None = None) -> str:
    """Add ``lot-1`` (with a hidden `reserve`, if given), taking bids from a fifth of a second
    from now until ``seconds`` from now, register alice and bob, and wait until it is open;
    return its id."""
    now = service.now()
    rules = english_timed(
        start_price=100_000,
        start_at=now + SECOND // 5,
        end_at=now + seconds * SECOND,
        reserve=reserve,
    )
    await service.add_lot("lot-1", rules, "A lot")
    for bidder in ("alice", "bob"):
        await service.submit("lot-1", RegisterBidder(bidder, f"C-{bidder}", True))
    for _ in range(100):
        view = service.view("lot-1")
        if view is not None and view.status == "OPEN":
            return "lot-1"
        await asyncio.sleep(0.05)
    raise AssertionError("the lot did not open")
