"""The crash-recovery run: server, notaries and proxies, bidders bidding, kills and restarts,
and the checks after each restart."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import re
import shutil
import signal
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import aiohttp

from auction.client import Ack, BidderClient, ClientError
from auction.storage import POLICY_FILE
from chain.checkpoint import parse_checkpoint_text
from chain.errors import ChainError
from chain.note import parse_note

from .chaos_records import (
    ACK_TIMEOUT,
    COSIGN_TIMEOUT,
    CURRENCY,
    MODES,
    MOMENT_TIMEOUT,
    NOTARIES,
    QUORUM,
    SERVER_ERRORS,
    START_PRICE,
    START_TIMEOUT,
    STEP,
    AckedBid,
    ChaosError,
    Figures,
    LedgerBid,
    cosigners,
    read_export,
)
from .chaos_setup import Bidder, create_lots, expect_json, make_chaos_bidder, wait_ready
from .harness.notaries import NOTARY_READY, NotaryProxy, notary_process, prepare
from .harness.processes import ROOT, TOKEN_LINE, ChildProcess, GavelServer, StartError, free_port


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
        self.server = GavelServer(
            ["--data", str(data)],
            data.parent / "server.log",
            flags=[
                "--bids-per-second", "1000", "--connections-per-address", "1000",
                "--no-write-limits",
            ],
            new_session=True,
        )  # fmt: skip
        self.port = self.server.port
        self.url = self.server.url
        self.notaries: list[ChildProcess] = []
        self.proxies: list[NotaryProxy] = []
        self.notary_names: set[str] = set()
        self.lots: list[str] = []
        self.bidders: list[Bidder] = []
        self.token = ""
        self.auditor = ""  # an auditor session: the exports carry the openings
        self.published_max = 0  # the largest checkpoint seen published so far
        self.checked_upto = 0  # acked bids before this index have been checked
        self.checks = 0
        self.reported: set[tuple[str, str, str]] = set()  # duplicate keys already reported

    # -- setup --

    async def setup(self, http: aiohttp.ClientSession) -> None:
        await asyncio.to_thread(self._write_policy)
        for proxy in self.proxies:
            await proxy.start()
        await asyncio.gather(*(self._start(n, NOTARY_READY) for n in self.notaries))
        await self.start_server()
        self.lots = await create_lots(http, self.url, self.token, self.args.lots)
        self.auditor = await self.auditor_session()
        self.bidders = [
            await make_chaos_bidder(http, self.url, n, self.lots) for n in range(self.args.bidders)
        ]
        await wait_ready(http, self.url, self.bidders, self.lots)
        for bidder in self.bidders:
            bidder.min_next = {lot: START_PRICE for lot in self.lots}

    async def auditor_session(self) -> str:
        """A new auditor session (`gavel staff --role auditor`) for the exports: with it they
        carry the openings of the ledger's sealed values, so bids are checked by account."""
        code, output = await _run(
            [sys.executable, "-m", "auction.cli", "staff", "--data", str(self.data),
             "--role", "auditor"]
        )  # fmt: skip
        match = re.search(r"^token (\S+)$", output, re.MULTILINE)
        if code != 0 or match is None:
            raise ChaosError(f"gavel staff --role auditor failed: {output[-500:]}")
        return match.group(1)

    def _write_policy(self) -> None:
        """Notary keys and `DATA/policy` as `gavel demo` makes them, except that each notary's
        URL in the policy is its proxy's: the notary itself listens on another port."""
        prepared = prepare(self.data, NOTARIES, QUORUM)
        for notary in prepared:
            self.notary_names.add(notary.name)
            real = free_port()
            self.proxies.append(NotaryProxy(notary.port, real, self.args.notary_delay))
            policy = self.data / POLICY_FILE
            log = notary.directory / "chaos.log"
            self.notaries.append(notary_process(notary, real, self.url, policy, log))

    @staticmethod
    async def _start(process: ChildProcess, ready: str) -> str:
        """Start `process` (on a thread: the bidders go on meanwhile); `ChaosError` if it
        does not say it is ready."""
        try:
            return await asyncio.to_thread(process.start, ready, START_TIMEOUT)
        except StartError as exc:
            raise ChaosError(str(exc)) from exc

    async def start_server(self) -> float:
        began = time.monotonic()
        try:
            token = await self._start(self.server, TOKEN_LINE)
        except ChaosError as exc:
            self.figures.violate(f"restart failed: {exc}")
            raise
        if not self.token:
            self.token = token
        return time.monotonic() - began

    async def teardown(self) -> None:
        self.done = True
        await asyncio.to_thread(self.server.stop)
        await asyncio.gather(*(asyncio.to_thread(n.stop) for n in self.notaries))
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
        code = await asyncio.to_thread(self.server.kill)
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
            size_now = (await expect_json(response, 200, "auditor"))["log_size"]
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
             "--out", str(out)],
            env={**os.environ, "GAVEL_TOKEN": self.auditor},
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
                history = await expect_json(response, 200, f"bids of {lot}")
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
                    view = (await expect_json(response, 200, f"lot {lot}"))["lot"]
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


async def _run(command: list[str], env: dict[str, str] | None = None) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        *command,
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await process.communicate()
    return int(process.returncode or 0), output.decode("utf-8", "replace")
