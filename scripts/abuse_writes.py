#!/usr/bin/env python3
"""How fast can one abusive client grow the ledger? With and without the write limits.

Runs `gavel serve` (its own process, SQLite in a fresh temporary directory, loopback only)
with a judicial lot (deposit required) and a timed lot, then an abusive client that, from one
client address (or `--addresses N` loopback addresses 127.0.0.1..N), as fast as it can with
`--concurrency` requests in flight, in a loop: creates an account (a new session), checks its
identity, registers it for both lots, asks for the deposit, then repeats the identity check,
the registrations and the deposit (new request keys) `--repeats` times on that session. Each
mode runs `--seconds` (and at most `--max-requests` requests), then the server is stopped and
its ledger read back: entries written (bids are none), entries a second, and the entries per
account (idv, registrations, deposits).

    .venv/bin/python -m scripts.abuse_writes --seconds 10            # both modes
    .venv/bin/python -m scripts.abuse_writes --mode limited --json

`unlimited` is `gavel serve --no-write-limits`; `limited` the defaults (docs/protocol.md §1.1);
`--before CHECKOUT` also runs the `gavel serve` of another checkout first (mode `before`).
Everything stops by itself; the server is stopped (SIGTERM, then SIGKILL) on every way out.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import json
import sqlite3
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from auction.identity.provider import prc_check_character
from auction.storage import SQLITE_FILE
from auction.throttle import WriteLimits, account_entries
from auction.verify import LinkBook, open_body

from .harness.bidders import public_key_text
from .harness.machine import machine
from .harness.processes import ROOT, GavelServer

LOTS = ("abuse-flat", "abuse-watch")
#: The entry types whose bodies may hold sealed values or bidder aliases (auction.sealed).
SEALING_TYPES = frozenset({"idv", "bid", "registration", "deposit", "lot_state"})


def start_server(data: Path, limited: bool, root: Path = ROOT) -> GavelServer:
    """`gavel serve` of the checkout `root` (`-m` imports its `auction`) in its own process,
    started; its output goes to `DATA/../server.log`."""
    flags = [] if limited or root != ROOT else ["--no-write-limits"]
    server = GavelServer(["--data", str(data)], data.parent / "server.log", flags=flags, cwd=root)
    server.start()
    return server


async def create_lots(url: str, token: str) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{url}/api/lots") as response:
            now = (await response.json())["now_us"]
        start, end = now + 3_600_000_000, now + 7_200_000_000  # scheduled: registration open
        lots = [
            {
                "preset": "JUDICIAL_CN", "lot": LOTS[0], "title": "A flat",
                "parameters": {"start_price": 1_000_000, "step": 10_000, "start_at": start,
                               "end_at": end, "min_duration": 0},
            },
            {
                "preset": "ENGLISH_TIMED", "lot": LOTS[1], "title": "A watch",
                "parameters": {"start_price": 10_000, "start_at": start, "end_at": end},
            },
        ]  # fmt: skip
        for body in lots:
            async with http.post(f"{url}/api/console/lots", json=body, headers=headers) as answer:
                if answer.status != 201:
                    raise RuntimeError(f"cannot create a lot: {await answer.text()}")


def prc_id(n: int) -> str:
    first17 = f"110105{1960 + n % 40:04d}0101{n % 1000:03d}"
    return first17 + prc_check_character(first17)


@dataclass
class Tally:
    requests: int = 0
    statuses: collections.Counter[str] = field(default_factory=collections.Counter)
    accounts: int = 0

    def saw(self, what: str, status: int) -> None:
        self.requests += 1
        self.statuses[f"{what} {status}"] += 1


class Abuser:
    """The abusive client: `concurrency` loops until the deadline or `max_requests`."""

    def __init__(
        self, url: str, *, seconds: float, max_requests: int, repeats: int, addresses: int
    ) -> None:
        self.url = url
        self.deadline = time.monotonic() + seconds
        self.max_requests = max_requests
        self.repeats = repeats
        self.addresses = addresses
        self.tally = Tally()
        self._serial = 0

    def _going(self) -> bool:
        return time.monotonic() < self.deadline and self.tally.requests < self.max_requests

    async def _post(
        self, http: aiohttp.ClientSession, what: str, path: str, body: Any, token: str | None
    ) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        timeout = aiohttp.ClientTimeout(total=max(1.0, self.deadline - time.monotonic() + 5))
        async with http.post(
            f"{self.url}{path}", json=body, headers=headers, timeout=timeout
        ) as response:
            self.tally.saw(what, response.status)
            return response.status, await response.json()

    async def _one_account(self, http: aiohttp.ClientSession) -> None:
        self._serial += 1
        n = self._serial
        account = {"public_key": public_key_text(Ed25519PrivateKey.generate())}
        status, body = await self._post(http, "account", "/api/accounts", account, None)
        if status != 201:
            return
        self.tally.accounts += 1
        token = body["session"]
        identity = {"name": "张三丰", "document_type": "PRC_RESIDENT_ID", "document": prc_id(n)}
        for round_ in range(1 + self.repeats):
            if not self._going():
                return
            await self._post(http, "identity", "/api/identity", identity, token)
            for lot in LOTS:
                await self._post(http, "registration", f"/api/lots/{lot}/registrations", {}, token)
            key = {"idempotency_key": f"dep-{n}-{round_}"}
            if round_ == 0:  # the bidding notice (竞买须知) comes before the deposit
                notice = f"/api/lots/{LOTS[0]}/notice"
                await self._post(http, "notice", notice, {"accept": True}, token)
            await self._post(http, "deposit", f"/api/lots/{LOTS[0]}/deposit", key, token)

    async def _loop(self, index: int) -> None:
        address = f"127.0.0.{1 + index % self.addresses}"
        connector = aiohttp.TCPConnector(local_addr=(address, 0), limit=1)
        async with aiohttp.ClientSession(connector=connector) as http:
            while self._going():
                try:
                    await self._one_account(http)
                except (aiohttp.ClientError, TimeoutError) as exc:
                    self.tally.saw(f"error {type(exc).__name__}", 0)

    async def run(self, concurrency: int) -> Tally:
        await asyncio.gather(*(self._loop(i) for i in range(concurrency)))
        return self.tally


def ledger_entries(data: Path, start: int = 0) -> list[bytes]:
    """The ledger's entries from `start`, read with SQLite itself (read-only), so that the
    database of another checkout's server (`--before`, any schema version) reads too. Their
    sealed values are opened (`ledger_openings`, each opening checked against its commitment,
    from the first entry on: the links of the lots' aliases), so that the entries name the
    accounts behind the per-lot aliases and the identity checks their accounts."""
    uri = f"file:{data / SQLITE_FILE}?mode=ro"
    with contextlib.closing(sqlite3.connect(uri, uri=True)) as db:
        rows = db.execute("SELECT data FROM ledger_entries ORDER BY seq").fetchall()
        sealed = db.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'ledger_openings'"
        ).fetchone()
        found = db.execute("SELECT seq, openings FROM ledger_openings").fetchall() if sealed else []
    openings = {int(seq): json.loads(text) for seq, text in found}
    links = LinkBook()
    entries = []
    for seq, (raw,) in enumerate(rows):
        entry = json.loads(bytes(raw))
        if entry.get("type") in SEALING_TYPES and isinstance(entry.get("body"), dict):
            entry["body"] = open_body(entry["type"], entry["body"], openings.get(seq), links)
        entries.append(
            json.dumps(entry, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
        )
    return entries[start:]


def ledger_growth(data: Path, start: int, seconds: float) -> dict[str, Any]:
    """What the run added to the ledger, read back from the stopped server's database."""
    entries = ledger_entries(data, start)
    kinds = collections.Counter(json.loads(raw)["type"] for raw in entries)
    per_account = collections.Counter(account for account, _ in account_entries(entries))
    counts = sorted(per_account.values())
    return {
        "entries": len(entries),
        "entries_per_s": round(len(entries) / seconds, 1),
        "by_type": dict(sorted(kinds.items())),
        "accounts_with_entries": len(counts),
        "entries_per_account_max": counts[-1] if counts else 0,
        "entries_per_account_mean": round(sum(counts) / len(counts), 2) if counts else 0.0,
    }


def run_mode(
    limited: bool,
    *,
    root: Path = ROOT,
    seconds: float,
    max_requests: int,
    concurrency: int,
    repeats: int,
    addresses: int,
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="gavel-abuse-") as tmp:
        data = Path(tmp) / "data"
        server = start_server(data, limited, root)
        try:
            asyncio.run(create_lots(server.url, server.token))
            start = len(ledger_entries(data))
            abuser = Abuser(
                server.url,
                seconds=seconds,
                max_requests=max_requests,
                repeats=repeats,
                addresses=addresses,
            )
            began = time.monotonic()
            tally = asyncio.run(abuser.run(concurrency))
            elapsed = time.monotonic() - began
            time.sleep(0.3)  # the payment provider's callbacks (50 ms) land
        finally:
            server.stop()
        growth = ledger_growth(data, start, elapsed)
    return {
        "mode": "before" if root != ROOT else "limited" if limited else "unlimited",
        "seconds": round(elapsed, 2),
        "requests": tally.requests,
        "requests_per_s": round(tally.requests / elapsed, 1),
        "accounts_created": tally.accounts,
        "answers": dict(sorted(tally.statuses.items())),
        "ledger": growth,
    }


def documented_bound(seconds: float, addresses: int = 1) -> dict[str, int]:
    """The most non-bid entries the default limits let `addresses` client addresses write in
    `seconds` (docs/protocol.md §1.1): idv ≤ identity checks allowed per address, one entry
    per registration, two per deposit; and per account, the hourly bound."""
    limits = WriteLimits()
    assert limits.identity_per_address and limits.registrations_per_address
    assert limits.deposits_per_address and limits.entries_per_account_hour
    per_address = (
        limits.identity_per_address.allowed(seconds)
        + limits.registrations_per_address.allowed(seconds)
        + 2 * limits.deposits_per_address.allowed(seconds)
    )
    return {
        "entries": addresses * per_address,
        "entries_per_account": limits.entries_per_account_hour,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mode", choices=("both", "limited", "unlimited"), default="both")
    parser.add_argument("--seconds", type=float, default=10.0, help="per mode (default 10)")
    parser.add_argument("--max-requests", type=int, default=50_000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3, help="repeats per session")
    parser.add_argument("--addresses", type=int, default=1, help="loopback client addresses")
    parser.add_argument(
        "--before",
        type=Path,
        metavar="CHECKOUT",
        help="also run the server of another checkout (e.g. one without the limits)",
    )
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args(argv)
    if not 0 < args.seconds <= 600 or not 1 <= args.addresses <= 250:
        parser.error("--seconds must be in (0, 600], --addresses in [1, 250]")
    modes = {"both": (False, True), "limited": (True,), "unlimited": (False,)}[args.mode]
    roots = [(False, args.before.resolve())] if args.before else []
    results = [
        run_mode(
            limited,
            root=root,
            seconds=args.seconds,
            max_requests=args.max_requests,
            concurrency=args.concurrency,
            repeats=args.repeats,
            addresses=args.addresses,
        )
        for limited, root in [*roots, *((limited, ROOT) for limited in modes)]
    ]
    report = {
        "machine": machine(),
        "bound": documented_bound(args.seconds, args.addresses),
        "runs": results,
    }
    if args.json:
        print(json.dumps(report, indent=2, ensure_ascii=False))
        return 0
    print(f"machine: {report['machine']['cpus']} CPUs, {report['machine']['uname']}")
    for run in results:
        ledger = run["ledger"]
        print(
            f"{run['mode']:>9}: {run['requests']} requests in {run['seconds']} s "
            f"({run['requests_per_s']}/s), {run['accounts_created']} accounts; ledger "
            f"+{ledger['entries']} entries ({ledger['entries_per_s']}/s), per account "
            f"max {ledger['entries_per_account_max']}, mean {ledger['entries_per_account_mean']}"
        )
    bound = report["bound"]
    print(
        f"documented bound for {args.seconds:g} s from {args.addresses} address(es): "
        f"{bound['entries']} entries, {bound['entries_per_account']} per account per hour"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
