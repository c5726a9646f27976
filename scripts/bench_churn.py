"""Kill, restart and add `gavel serve` instances while bidders bid, and time it as a bidder.

Each run: a fresh PostgreSQL schema and Redis database, instances `a` and `b`, four lots (one
hot), bidders spread over both instances bidding at `--rate` signed bids/s in all. After
`--warmup` seconds (the history the takeover has to deal with) the instance writing the hot lot
gets SIGKILL; its bidders reconnect to a live instance and resend what was not acknowledged.
`--restart-after` seconds later the killed instance is started again, then a third instance
`c` joins, both while the bidding goes on; then bidding stops and everything is checked.

Figures per run: whether every start succeeded (and its error if not), the ledger size and the
hot lot's command count at the kill, seconds from the kill until `lot_owners` names a new
writer, until the first accepted ack of a bid the new writer stored (its entry's ingress time is
after the kill), the longest wait of a bid in flight at the kill; and the checks: every accepted
ack is in the ledger with its bidder's request, no bid twice, every lot replays, and the exported
ledger passes `gavel audit verify`.

    .venv/bin/python -m scripts.bench_churn --runs 10 --json /tmp/churn.json
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import random
import statistics
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import psycopg
import websockets
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from auction.client import Ack, BidderClient, ClientError
from auction.storage import Storage

from .bench_cluster_storage import entry_ingress, lot_owners, pg_schema, redis_database, wait_owned
from .bench_cluster_workload import (
    CURRENCY,
    HTTP_TIMEOUT,
    SECOND_US,
    SERVER_FLAGS,
    START_PRICE,
    create_lots,
    make_bidders,
    wait_open,
)
from .harness.processes import GavelServer, StartError, gavel_command

HOT = "hot"
LOTS = [HOT, "l1", "l2", "l3"]


@dataclass
class Settings:
    runs: int = 1
    rate: float = 300.0  # signed bids per second, all bidders together
    bidders: int = 40
    warmup: float = 20.0  # seconds of bidding before the kill
    restart_after: float = 10.0
    tail: float = 5.0  # seconds of bidding after the join
    port_base: int = 0  # 0: any free ports; else this and the next two
    logs: Path | None = None


@dataclass
class Sent:
    account: str
    key: str
    lot: str
    sent: float
    ack: Ack | None = None
    at: float = 0.0


@dataclass
class Bidding:
    live: list[str]
    rate: float
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    sent: list[Sent] = field(default_factory=list)
    min_next: dict[str, int] = field(default_factory=lambda: dict.fromkeys(LOTS, START_PRICE))
    reconnects: int = 0
    failures: list[str] = field(default_factory=list)

    async def run(self, client: BidderClient, rng: random.Random, period: float) -> None:
        loop = asyncio.get_running_loop()
        next_at = loop.time() + rng.uniform(0, period)
        while not self.stop.is_set():
            await asyncio.sleep(max(0.0, next_at - loop.time()))
            next_at += period
            lot = HOT if rng.random() < 0.7 else rng.choice(LOTS[1:])
            message = client.signed_bid(lot, self.min_next[lot], CURRENCY)
            record = Sent(client.account or "", message["idempotency_key"], lot, time.monotonic())
            self.sent.append(record)
            try:
                ack = await client.send_bid(message, timeout=30)
            except (ClientError, TimeoutError, OSError, websockets.WebSocketException):
                ack = await self._resend(client, record.key, rng)
                if ack is None:
                    continue
            record.ack, record.at = ack, time.monotonic()
            if ack.min_next is not None:
                self.min_next[lot] = max(self.min_next[lot], ack.min_next)

    async def _resend(self, client: BidderClient, key: str, rng: random.Random) -> Ack | None:
        """The instance went away: reconnect to a live one (which resends the bid)."""
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                await client.reconnect(base_url=rng.choice(self.live))
                self.reconnects += 1
                return await client.wait_ack(key, timeout=20)
            except (ClientError, TimeoutError, OSError, websockets.WebSocketException) as exc:
                await asyncio.sleep(0.1)
                last = f"{type(exc).__name__}: {exc}"
        self.failures.append(f"bid {key} never answered: {last}")
        return None


def _server(name: str, database_url: str, redis_url: str, log: Path, port: int) -> GavelServer:
    where = ["--db", database_url, "--instance", name, "--redis", redis_url]
    return GavelServer(
        where, log, flags=SERVER_FLAGS, name=name, port=port or None, new_session=True
    )


def _ledger_end(database_url: str) -> int:
    with psycopg.connect(database_url, connect_timeout=5) as connection:
        row = connection.execute("SELECT max(seq) FROM ledger_entries").fetchone()
    return 0 if row is None or row[0] is None else int(row[0]) + 1


def _lot_commands(database_url: str, lot: str) -> int:
    with psycopg.connect(database_url, connect_timeout=5) as connection:
        row = connection.execute(
            "SELECT count(*) FROM history WHERE lot_id = %s", (lot,)
        ).fetchone()
    return int(row[0]) if row is not None else 0


def _start(server: GavelServer) -> tuple[bool, float, str]:
    """Start `server` (again); (started, seconds, the end of its log if it did not)."""
    server.stop(5.0)  # reap the killed process of a restart
    began = time.monotonic()
    try:
        server.start()
    except (StartError, RuntimeError) as exc:
        return False, time.monotonic() - began, str(exc)[-600:]
    return True, time.monotonic() - began, ""


def check_ledger(database_url: str, sent: list[Sent], workdir: Path) -> dict[str, Any]:
    """Every accepted ack stored as acknowledged, no bid twice, lots replay, audit passes."""
    with Storage.open(database_url, read_only=True) as store:
        size = store.ledger_size()
        entries = [json.loads(raw) for raw in store.ledger_entries_opened(0, size)]
        replayed = all(store.load_lot(lot) is not None for lot in LOTS)  # raises if diverged
    seen: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for entry in entries:
        body = entry["body"]
        request = body.get("request") if isinstance(body, dict) else None
        if request is not None:
            payload = request["payload"]
            seen.setdefault((payload["account"], payload["idempotency_key"]), []).append(entry)
    twice = sum(len(found) > 1 for found in seen.values())
    lost = changed = 0
    for record in sent:
        ack = record.ack
        if ack is None or not ack.accepted:
            continue
        found = seen.get((record.account, record.key))
        if not found:
            lost += 1
            continue
        entry = found[0]
        accepted = any(e.get("type") == "BidAccepted" for e in entry["body"]["events"])
        if entry["seq"] != ack.entry or not accepted or entry["body"]["lot"] != record.lot:
            changed += 1
    out = workdir / "export"
    export = subprocess.run(
        gavel_command("ledger", "export", "--db", database_url, "--out", str(out)),
        capture_output=True,
        text=True,
        timeout=600,
    )
    audit = export.returncode == 0 and (
        subprocess.run(
            gavel_command("audit", "verify", str(out)), capture_output=True, text=True, timeout=900
        ).returncode
        == 0
    )
    return {
        "ledger_size": size,
        "lost": lost,
        "duplicated": twice,
        "changed": changed,
        "replayed": replayed,
        "audit_passed": audit,
    }


async def churn_run(settings: Settings, workdir: Path, run: int = 0) -> dict[str, Any]:
    """One run on a fresh schema and Redis database (see the module's docstring)."""
    with pg_schema() as database_url, redis_database() as redis_url:
        return await churn_on(settings, workdir, database_url, redis_url, run)


async def churn_on(
    settings: Settings, workdir: Path, database_url: str, redis_url: str, run: int = 0
) -> dict[str, Any]:
    """One run on an empty database schema and Redis database; returns its figures."""
    logs = settings.logs or workdir
    ports = [settings.port_base + i if settings.port_base else 0 for i in range(3)]
    a, b, c = (
        _server(name, database_url, redis_url, logs / f"churn{run}-{name}.log", port)
        for name, port in zip("abc", ports, strict=True)
    )
    try:
        for server in (a, b):
            server.start()
        async with aiohttp.ClientSession(timeout=HTTP_TIMEOUT) as http:
            await create_lots(http, a.url, a.token, LOTS, start_in=3.0)
        before = await wait_owned(database_url, LOTS)
        made = await make_bidders([a.url, b.url], settings.bidders, LOTS)
        await wait_open(b.url, LOTS)
        clients = [
            await BidderClient.connect(
                m["url"],
                account=m["account"],
                key=Ed25519PrivateKey.from_private_bytes(base64.b64decode(m["seed"])),
                session=m["session"],
            )
            for m in made
        ]
        return await _bid_and_churn(settings, workdir, database_url, (a, b, c), before, clients)
    finally:
        for server in (a, b, c):
            server.stop(20.0)


async def _bid_and_churn(
    settings: Settings,
    workdir: Path,
    database_url: str,
    servers: tuple[GavelServer, GavelServer, GavelServer],
    before: dict[str, tuple[str | None, int, int]],
    clients: list[BidderClient],
) -> dict[str, Any]:
    a, b, c = servers
    victim, survivor = (a, b) if before[HOT][0] == "a" else (b, a)
    bidding = Bidding(live=[a.url, b.url], rate=settings.rate)
    rng = random.Random(20261207)
    period = len(clients) / settings.rate
    tasks = [
        asyncio.create_task(bidding.run(client, random.Random(rng.random()), period))
        for client in clients
    ]
    result: dict[str, Any] = {}
    try:
        began = time.monotonic()
        await asyncio.sleep(settings.warmup)
        acked = sum(r.ack is not None for r in bidding.sent)
        result["bids_per_s_before_kill"] = round(acked / (time.monotonic() - began), 1)
        result["hot_commands_at_kill"] = await asyncio.to_thread(_lot_commands, database_url, HOT)
        kill_wall_us = int(time.time() * SECOND_US)
        killed_at = time.monotonic()
        victim.sigkill()
        bidding.live = [survivor.url]
        result["ledger_size_at_kill"] = await asyncio.to_thread(_ledger_end, database_url)
        in_flight = [r for r in bidding.sent if r.ack is None and r.sent < killed_at]
        owner_s = None
        while time.monotonic() - killed_at < 30:
            owners = await asyncio.to_thread(lot_owners, database_url)
            if owners[HOT][0] == survivor.name:
                owner_s = time.monotonic() - killed_at
                break
            await asyncio.sleep(0.01)
        result["owner_s"] = owner_s
        await asyncio.sleep(max(0.0, settings.restart_after - (time.monotonic() - killed_at)))
        late = [
            r
            for r in bidding.sent
            if r.lot == HOT and r.ack is not None and r.ack.accepted and r.at >= killed_at
        ]
        seqs = [r.ack.entry for r in late if r.ack is not None and r.ack.entry is not None]
        ingress = await asyncio.to_thread(entry_ingress, database_url, seqs)
        new = [
            r.at - killed_at
            for r in late
            if r.ack is not None and ingress.get(r.ack.entry or -1, 0) > kill_wall_us + 1000
        ]
        result["first_ack_s"] = min(new) if new else None
        waits = [r.at - killed_at for r in in_flight if r.ack is not None]
        result["in_flight_at_kill"] = len(in_flight)
        result["in_flight_answered"] = len(waits)
        result["in_flight_longest_s"] = max(waits) if waits else None
        # restart the killed instance, then add a third one, while the bidding goes on
        restarted, restart_s, restart_error = await asyncio.to_thread(_start, victim)
        if restarted:
            bidding.live.append(victim.url)
        joined, join_s, join_error = await asyncio.to_thread(_start, c)
        if joined:
            bidding.live.append(c.url)
        result.update(
            restart_ok=restarted,
            restart_s=round(restart_s, 2),
            restart_error=restart_error,
            join_ok=joined,
            join_s=round(join_s, 2),
            join_error=join_error,
        )
        await asyncio.sleep(settings.tail)
    finally:
        bidding.stop.set()
        await asyncio.wait(tasks, timeout=40)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await asyncio.gather(*(client.close() for client in clients), return_exceptions=True)
    result["acked"] = sum(r.ack is not None for r in bidding.sent)
    result["accepted"] = sum(r.ack is not None and r.ack.accepted for r in bidding.sent)
    result["unanswered"] = bidding.failures
    result.update(await asyncio.to_thread(check_ledger, database_url, bidding.sent, workdir))
    return result


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    def values(name: str) -> list[float]:
        return sorted(float(r[name]) for r in runs if r.get(name) is not None)

    summary: dict[str, Any] = {"runs": len(runs)}
    for name in ("owner_s", "first_ack_s", "in_flight_longest_s", "restart_s", "join_s"):
        found = values(name)
        if found:
            summary[name] = {
                "median": round(statistics.median(found), 3),
                "max": round(found[-1], 3),
                # p99 of so few runs is their maximum
                "p99": round(found[min(len(found) - 1, int(0.99 * len(found)))], 3),
            }
    summary["failed_starts"] = sum((not r["restart_ok"]) + (not r["join_ok"]) for r in runs)
    for name in ("lost", "duplicated", "changed"):
        summary[name] = sum(int(r[name]) for r in runs)
    summary["audits_passed"] = sum(bool(r["audit_passed"]) for r in runs)
    return summary


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    defaults = Settings()
    parser.add_argument("--runs", type=int, default=defaults.runs)
    parser.add_argument("--rate", type=float, default=defaults.rate, help="bids/s in all")
    parser.add_argument("--bidders", type=int, default=defaults.bidders)
    parser.add_argument("--warmup", type=float, default=defaults.warmup)
    parser.add_argument("--restart-after", type=float, default=defaults.restart_after)
    parser.add_argument("--tail", type=float, default=defaults.tail)
    parser.add_argument("--port-base", type=int, default=0)
    parser.add_argument("--logs", type=Path)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    settings = Settings(
        runs=args.runs,
        rate=args.rate,
        bidders=args.bidders,
        warmup=args.warmup,
        restart_after=args.restart_after,
        tail=args.tail,
        port_base=args.port_base,
        logs=args.logs,
    )
    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="gavel-churn-") as tmp:
        for run in range(settings.runs):
            workdir = Path(tmp) / f"run{run}"
            workdir.mkdir()
            found = asyncio.run(churn_run(settings, workdir, run))
            runs.append(found)
            print(json.dumps({"run": run + 1, **found}), flush=True)
    summary = summarize(runs)
    print(json.dumps(summary, indent=2))
    if args.json is not None:
        args.json.write_text(json.dumps({"runs": runs, "summary": summary}, indent=2))
    return 0 if summary["failed_starts"] == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
