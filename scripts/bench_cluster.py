#!/usr/bin/env python3
"""Signed bids against one and two `gavel serve` instances, and the time a killed writer's lot
takes to be written again. Everything on 127.0.0.1, in one run on one machine.

Configurations (each on fresh storage: a temporary SQLite directory, or a fresh PostgreSQL
schema of the database `test` and an empty Redis logical database):

  sqlite    one instance, `gavel serve --data DIR`
  pg-1      one instance, `gavel serve --db URL --instance a --redis URL`
  pg-2      two instances, `--instance a` and `--instance b`, same database and Redis

Workloads, in each configuration, with the same --bidders bidders (made over REST, each at
the instance its websocket will use; connections spread evenly over the instances) running
in --clients client processes, one bid in flight per bidder, for --seconds each:

  spread    --lots ENGLISH_TIMED lots (CNY); each bid goes to a random lot
  hot       one ENGLISH_TIMED lot; with two instances, the bids of the bidders connected to
            the instance that does not write it are forwarded to the writer over HTTP

Every bid is a signed request over a real websocket (`auction.client.BidderClient`) for the
lot's `min_next` as last learnt from an acknowledgement (the bidders of one client process
share what their acks told them; a bidder does not bid on a lot its own ack said it leads).
Reported: acknowledgements/s (every acknowledged bid, accepted or rejected, is a durable
ledger entry), accepted bids/s, rejections by reason, acknowledgement latency p50/p95/p99
(send to ack, in the client), with two instances also for bids answered by the writer
itself ("local") and forwarded ones. Where the time goes, in % of one core: CPU of the
servers, of the client processes, of PostgreSQL (every `postgres` process of the machine)
and of everything else ("other": the rest of a shared machine's work); and, with PostgreSQL,
the share of 20 ms samples of `pg_locks` in which the ledger's advisory lock (`LEDGER_LOCK`)
was held, and in which a second writer waited for it, and how often `lot_owners` was read
(`pg_stat_user_tables`).

Takeover (--kills times, each with fresh processes on a fresh schema): two instances, the
hot lot, --takeover-bidders bidders split over both; after a few seconds of bidding the
instance writing the hot lot gets SIGKILL. Reported: seconds from the kill until
`lot_owners.owner` names the survivor (polled every 10 ms; and `lot_owners.since_us` minus
the kill time, the survivor's own clock), and until the first accepted acknowledgement, on
a client connected to the survivor, of a bid written by the survivor (its ledger entry's
ingress time is after the kill: acks of entries the killed instance stored just before it
died do not count).

Every server gets `--bids-per-second 1000` (the per-account limit does not interfere) and
a high `--connections-per-address` and `--no-write-limits` (all clients come from
127.0.0.1). Every process this
script starts is stopped (SIGTERM, then SIGKILL) on the way out, errors included; schemas
are dropped and the Redis databases flushed.

With BENCH_PROFILE_DIR=DIR every server runs under cProfile and writes DIR/<name>.prof when
it stops (the main thread only: waits on the storage thread show as `epoll`).

Usage: .venv/bin/python -m scripts.bench_cluster [--seconds 15] [--kills 3] [--bidders 64]
       [--lots 8] [--clients 2] [--configs sqlite,pg-1,pg-2] [--quick] [--json FILE]
       [--logs DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import os
import platform
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import psycopg
import redis

from .bench_cluster_storage import (
    PG_ADMIN_URL,
    REDIS_HOST,
    REDIS_PORT,
    lot_owners,
    pg_schema,
    redis_database,
    wait_owned,
)
from .bench_cluster_takeover import fmt_s, run_takeovers
from .bench_cluster_workload import (
    HOT,
    HTTP_TIMEOUT,
    create_lots,
    instance,
    make_bidders,
    run_workload,
    servers,
    wait_open,
)
from .harness.machine import cpu_model, ram_gib
from .harness.processes import ROOT, GavelServer
from .harness.report import write_json

CONFIGS = ("sqlite", "pg-1", "pg-2")


# --- the machine ----------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    model = cpu_model() or "?"
    postgres = redis_version = "?"
    with contextlib.suppress(Exception), psycopg.connect(PG_ADMIN_URL, connect_timeout=3) as pg:
        row = pg.execute("SHOW server_version").fetchone()
        postgres = str(row[0]) if row else "?"
    with contextlib.suppress(Exception):
        info = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, socket_timeout=3).info("server")
        redis_version = str(info.get("redis_version", "?"))
    return {
        "commit": source_version(),
        "code_digest": code_digest(),
        "nproc": os.cpu_count(),
        "cpu": model,
        "ram_gib": round(ram_gib(), 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "postgresql": postgres,
        "redis": redis_version,
        "load_before": os.getloadavg(),
    }


def code_digest() -> str:
    """A digest of the product code (`auction/`, `chain/`): the checkout may change while
    this runs (other work in the same directory)."""
    digest = hashlib.sha256()
    for path in sorted([*ROOT.glob("auction/**/*.py"), *ROOT.glob("chain/**/*.py")]):
        with contextlib.suppress(OSError):
            digest.update(str(path.relative_to(ROOT)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:12]


def source_version() -> str:
    """The checkout's commit, and whether the product code differs from it."""
    commit = "?"
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        )
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "auction", "chain"],
            cwd=ROOT,
            capture_output=True,
            text=True,
        )
        commit = head.stdout.strip() + (" (auction/chain modified)" if dirty.stdout else "")
    return commit


# --- configurations -------------------------------------------------------------------------


def run_configuration(config: str, args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    logs = args.logs or tmp
    spread = [f"s{i + 1}" for i in range(args.lots)]
    lots = [*spread, HOT]
    with contextlib.ExitStack() as stack:
        database_url: str | None = None
        if config == "sqlite":
            members: tuple[GavelServer, ...] = (
                instance("sqlite", ["--data", str(tmp / config / "data")], logs / f"{config}.log"),
            )
        else:
            database_url = stack.enter_context(pg_schema())
            redis_url = stack.enter_context(redis_database())
            names = ["a"] if config == "pg-1" else ["a", "b"]
            members = tuple(
                instance(
                    name,
                    ["--db", database_url, "--instance", name, "--redis", redis_url],
                    logs / f"{config}-{name}.log",
                )
                for name in names
            )
        (tmp / config).mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        stack.enter_context(servers(*members))
        first = members[0]
        urls = [m.url for m in members]

        async def prepare() -> list[dict[str, str]]:
            async with aiohttp.ClientSession(timeout=HTTP_TIMEOUT) as http:
                await create_lots(http, first.url, first.token, lots, start_in=3.0)
            if database_url is not None:
                await wait_owned(database_url, lots)
            made = await make_bidders(urls, args.bidders, lots)
            for url in urls:
                await wait_open(url, lots)
            return made

        bidders = asyncio.run(prepare())
        writers: dict[str, str | None] = {lot: None for lot in lots}
        split: dict[str, list[str]] = {}
        if database_url is not None:
            by_name = {m.name: m.url for m in members}
            for lot, (owner, _token, _since) in lot_owners(database_url).items():
                writers[lot] = by_name.get(owner or "")
                split.setdefault(owner or "-", []).append(lot)
        setup_s = time.monotonic() - started
        result: dict[str, Any] = {
            "instances": len(members),
            "writers": {k: sorted(v) for k, v in sorted(split.items())},
            "setup_s": round(setup_s, 1),
        }
        for workload, chosen in (("spread", spread), ("hot", [HOT])):
            print(f"  {config} {workload}: {args.seconds:g} s ...", flush=True)
            result[workload] = run_workload(
                bidders,
                chosen,
                writers,
                args.seconds,
                args.clients,
                members,
                database_url,
            )
            show_row(config, workload, result[workload])
        return result


# --- output ---------------------------------------------------------------------------------


HEADER = (
    f"{'config':<7} {'workload':<8} {'acks/s':>8} {'accepted/s':>10} {'p50 ms':>7} "
    f"{'p95 ms':>7} {'p99 ms':>7} {'fwd':>5} {'local p50':>9} {'fwd p50':>8} "
    f"{'CPU %: server':>13} {'clients':>7} {'pg':>4} {'other':>5}"
)


def show_row(config: str, workload: str, r: dict[str, Any]) -> None:
    cpu = "+".join(f"{v:.0f}" for v in r["server_cpu_pct"].values())
    print(
        f"{config:<7} {workload:<8} {r['acks_per_s']:>8,.0f} {r['accepted_per_s']:>10,.0f} "
        f"{r['ack_p50_ms']:>7.1f} {r['ack_p95_ms']:>7.1f} {r['ack_p99_ms']:>7.1f} "
        f"{100 * r['forwarded_share']:>4.0f}% {r['local_p50_ms']:>9.1f} "
        f"{r['forwarded_p50_ms']:>8.1f} {cpu:>13} {r['client_cpu_pct']:>7.0f} "
        f"{r['postgres_cpu_pct']:>4.0f} {r['other_cpu_pct']:>5.0f}",
        flush=True,
    )
    if r["rejections"]:
        print(f"          rejected: {r['rejections']}", flush=True)
    if r["ledger_lock"]:
        lock = r["ledger_lock"]
        print(
            f"          LEDGER_LOCK in {lock['samples']} samples: held {lock['held_pct']}%, "
            f"a second writer waiting {lock['waited_pct']}%; lot_owners read "
            f"{lock['lot_owners_reads']:,} times",
            flush=True,
        )
    if r["client_errors"]:
        print(f"          client errors: {r['client_errors']} {r['client_error_samples']}")


def _interrupted(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=15.0, help="per workload")
    parser.add_argument("--kills", type=int, default=3, help="takeover rounds")
    parser.add_argument("--bidders", type=int, default=64)
    parser.add_argument("--lots", type=int, default=8, help="lots of the spread workload")
    parser.add_argument("--clients", type=int, default=2, help="client processes")
    parser.add_argument("--takeover-bidders", type=int, default=16)
    parser.add_argument("--takeover-warmup", type=float, default=3.0, help="s before the kill")
    parser.add_argument("--configs", default=",".join(CONFIGS))
    parser.add_argument("--quick", action="store_true", help="4 s per workload, 1 kill")
    parser.add_argument("--json", type=Path, metavar="FILE", help="write the results here")
    parser.add_argument(
        "--logs", type=Path, metavar="DIR", help="keep the servers' logs here (default: dropped)"
    )
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, _interrupted)  # stop the servers on the way out
    if args.quick:
        args.seconds, args.kills, args.takeover_warmup = 4.0, 1, 2.0
    configs = [c for c in args.configs.split(",") if c]
    unknown = set(configs) - set(CONFIGS)
    if unknown:
        parser.error(f"unknown configurations {sorted(unknown)}; choose from {CONFIGS}")
    info = machine()
    print(
        f"# {info['nproc']} CPUs ({info['cpu']}), {info['ram_gib']} GiB RAM, Linux "
        f"{info['kernel']}, Python {info['python']}, SQLite {info['sqlite']}, PostgreSQL "
        f"{info['postgresql']}, Redis {info['redis']}; commit {info['commit']}; load "
        f"{info['load_before'][0]:.2f}",
        flush=True,
    )
    print(
        f"# {args.bidders} bidders in {args.clients} client processes, one bid in flight each; "
        f"{args.seconds:g} s per workload; spread over {args.lots} lots; {args.kills} kills",
        flush=True,
    )
    started = time.monotonic()
    output: dict[str, Any] = {
        "command": " ".join([".venv/bin/python", "-m", "scripts.bench_cluster", *sys.argv[1:]]),
        "machine": info,
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "configurations": {},
    }
    with tempfile.TemporaryDirectory(prefix="gavel-bench-cluster-") as name:
        tmp = Path(name)
        if args.logs is not None:
            args.logs.mkdir(parents=True, exist_ok=True)
        print(HEADER, flush=True)
        for config in configs:
            output["configurations"][config] = run_configuration(config, args, tmp)
        if args.kills > 0:
            print("# takeover: SIGKILL of the instance writing the hot lot", flush=True)
            output["takeover"] = run_takeovers(args, tmp)
    output["wall_s"] = round(time.monotonic() - started, 1)
    output["load_after"] = os.getloadavg()
    output["commit_after"] = source_version()
    output["code_digest_after"] = code_digest()
    if output["code_digest_after"] != info["code_digest"]:
        print(f"# warning: auction/ or chain/ changed during the run ({output['commit_after']})")
    print(f"\n{HEADER}")
    for config, result in output["configurations"].items():
        for workload in ("spread", "hot"):
            show_row(config, workload, result[workload])
        if result["writers"]:
            print(f"          writers: {result['writers']}")
    if "takeover" in output:
        t = output["takeover"]
        print(
            f"takeover medians over {len(t['rounds'])}: owner after {fmt_s(t['median_owner_s'])}"
            f" (since_us {fmt_s(t['median_since_s'])}), first accepted ack from the survivor "
            f"after {fmt_s(t['median_first_ack_s'])}"
        )
    print(f"# {output['wall_s']} s in all; load average after: {output['load_after'][0]:.2f}")
    if args.json is not None:
        write_json(args.json, output)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
