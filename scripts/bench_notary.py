#!/usr/bin/env python3
"""Notary throughput: add-checkpoint requests per second against one ``gavel notary serve``.

Builds a realistic log in memory with ``tests/support/notary_kit.py`` (English lots: registrations,
opening, bids at the minimum, proxy maxima, refused low bids, closes, sales; every actor signed
by the house key), serves its tiles from this process on 127.0.0.1, starts a notary process, and
measures over HTTP:

  full-replay        one add-checkpoint from 0 to N: fetch the bundles, recompute leaves and
                     root, parse, check seq/prev/time, verify every actor signature, replay the
                     rules, commit the mirror (entries replayed per second)
  plus-one           sequential requests, each adding one entry (fetch + checks + commit)
  same-size          sequential requests re-submitting the co-signed size (consistency only:
                     signature, sizes, root, co-signature, commit; nothing to replay)
  same-size-parallel the same from --clients concurrent clients (serialized by the notary)

and, in this process, where the time of a full replay goes (chain.parse_entry, actor
signatures serial and on two threads, LedgerReplay).

Usage: .venv/bin/python -m scripts.bench_notary [--entries N] [--requests K] [--clients C]
                                                [--repeat R] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import aiohttp

from auction.verify import LedgerReplay
from chain import parse_entry
from notary.content import verify_actor_checks
from notary.core import (
    ActorCheck,
    LogTrust,
    NotaryState,
    check_envelope,
    parse_add_checkpoint,
)
from tests.support.notary_kit import LogServer, NotaryProcess, SimulatedLog

GOAL_REQUESTS = 300
GOAL_ENTRIES = 10_000


async def _post(session: aiohttp.ClientSession, url: str, body: bytes) -> None:
    async with session.post(url + "/add-checkpoint", data=body) as response:
        answer = await response.read()
        if response.status != 200:
            raise SystemExit(
                f"notary answered {response.status}: {answer.decode(errors='replace')}"
            )


def _process_cpu_seconds(process: asyncio.subprocess.Process | None) -> float | None:
    """User plus system CPU seconds of a running process so far (None off Linux)."""
    if process is None:
        return None
    try:
        fields = Path(f"/proc/{process.pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def run(entries: int, requests: int, clients: int, repeat: int) -> dict[str, Any]:
    started = time.perf_counter()
    log = SimulatedLog()
    log.grow(entries - 1)
    base = log.size
    # the entries the plus-one requests add; `grow` ends on a whole auction step, so the log
    # may hold a few more: the notary co-signs exactly `cosigned` entries
    log.grow(requests)
    cosigned = base + requests
    build_seconds = time.perf_counter() - started
    server = LogServer(log)
    log_url = await server.start()
    work = Path(tempfile.mkdtemp(prefix="bench-notary-"))
    results: dict[str, Any] = {"entries": base, "build_seconds": round(build_seconds, 2)}
    full: list[float] = []
    full_cpu: list[float] = []
    try:
        async with aiohttp.ClientSession() as session:
            notary: NotaryProcess | None = None
            for index in range(repeat):
                policy = work / f"policy-{index}"
                notary = NotaryProcess(work / f"n-{index}", "bench.example.org")
                policy.write_bytes(log.make_policy([("bench", notary.vkey, notary.url)], 1))
                await notary.start(log_url, policy, peer_interval=3600.0, max_skew=60.0)
                body = log.body(0, base)
                cpu_began = _process_cpu_seconds(notary.process)
                began = time.perf_counter()
                await _post(session, notary.url, body)
                full.append(base / (time.perf_counter() - began))
                cpu_ended = _process_cpu_seconds(notary.process)
                if cpu_began is not None and cpu_ended is not None:
                    full_cpu.append(cpu_ended - cpu_began)
                if index < repeat - 1:
                    await notary.kill()
            assert notary is not None
            results["full_replay_entries_per_second"] = round(statistics.median(full))
            results["full_replay_runs"] = [round(value) for value in full]
            # the notary's own CPU for the request (fetch, checks, replay, commit): on a shared
            # machine it varies much less than the wall time
            results["full_replay_notary_cpu_seconds"] = [round(value, 2) for value in full_cpu]
            if full_cpu:
                cpu = statistics.median(full_cpu)
                results["full_replay_entries_per_notary_cpu_second"] = round(base / cpu)

            bodies = [log.body(base + i, base + i + 1) for i in range(requests)]
            began = time.perf_counter()
            for body in bodies:
                await _post(session, notary.url, body)
            results["plus_one_requests_per_second"] = round(
                requests / (time.perf_counter() - began)
            )

            # re-submit the size the notary co-signed last (a larger one is no re-submission:
            # the notary answers 409 with its size)
            same = log.body(cosigned, cosigned)
            began = time.perf_counter()
            for _ in range(requests):
                await _post(session, notary.url, same)
            results["same_size_requests_per_second"] = round(
                requests / (time.perf_counter() - began)
            )

            async def client(count: int) -> None:
                for _ in range(count):
                    await _post(session, notary.url, same)

            began = time.perf_counter()
            await asyncio.gather(*(client(requests // clients) for _ in range(clients)))
            done = (requests // clients) * clients
            results["same_size_parallel_requests_per_second"] = round(
                done / (time.perf_counter() - began)
            )
            results["clients"] = clients
            await notary.stop()
    finally:
        await server.stop()
        shutil.rmtree(work, ignore_errors=True)
    results["stages"] = stages(log, base)
    return results


def stages(log: SimulatedLog, size: int) -> dict[str, int]:
    """Entries per second of each stage of a full replay, measured in this process."""
    data = [entry.to_bytes() for entry in log.entries[:size]]
    figures: dict[str, int] = {}
    began = time.perf_counter()
    parsed = [parse_entry(item) for item in data]
    figures["parse_entry"] = round(size / (time.perf_counter() - began))
    key = log.signer.public_key
    checks = [ActorCheck(e.seq, key, e.actor.sig, e.signed_message(), e) for e in parsed]
    began = time.perf_counter()
    verify_actor_checks(checks)
    figures["signatures_serial"] = round(size / (time.perf_counter() - began))
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        half = len(checks) // 2
        began = time.perf_counter()
        list(pool.map(verify_actor_checks, [checks[:half], checks[half:]]))
        figures["signatures_two_threads"] = round(size / (time.perf_counter() - began))
    replay = LedgerReplay()
    began = time.perf_counter()
    for entry in parsed:
        replay.add(entry.seq, entry.type, entry.time_us, entry.body, entry.actor.kid)
    figures["ledger_replay"] = round(size / (time.perf_counter() - began))
    trust = LogTrust(log.origin, (log.signer.verifier,))
    request = parse_add_checkpoint(log.body(size, size))
    state = NotaryState(log.origin)
    began = time.perf_counter()
    rounds = 200
    for _ in range(rounds):
        try:
            check_envelope(request, trust, state)
        except Exception:  # noqa: BLE001 - 409 expected: the state is empty; the cost is what counts
            pass
    figures["envelope_checks"] = round(rounds / (time.perf_counter() - began))
    return figures


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--entries", type=int, default=20_000, help="log size for full replay")
    parser.add_argument("--requests", type=int, default=600, help="requests per request series")
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients")
    parser.add_argument("--repeat", type=int, default=3, help="full-replay runs (fresh notaries)")
    parser.add_argument("--json", action="store_true", help="print JSON only")
    args = parser.parse_args(argv)
    cpu_before = os.times()
    results = asyncio.run(run(args.entries, args.requests, args.clients, args.repeat))
    cpu_after = os.times()
    results["machine"] = {
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "bench_process_cpu_seconds": round(
            (cpu_after.user - cpu_before.user) + (cpu_after.system - cpu_before.system), 1
        ),
    }
    if args.json:
        print(json.dumps(results, indent=2, sort_keys=True))
        return 0
    print(f"log: {results['entries']} entries built in {results['build_seconds']} s")
    print(
        f"full replay       {results['full_replay_entries_per_second']:>8} entries/s "
        f"(runs {results['full_replay_runs']}; goal >= {GOAL_ENTRIES})"
    )
    if "full_replay_entries_per_notary_cpu_second" in results:
        print(
            f"full replay       {results['full_replay_entries_per_notary_cpu_second']:>8} "
            f"entries per notary CPU second (CPU s {results['full_replay_notary_cpu_seconds']})"
        )
    print(f"plus-one          {results['plus_one_requests_per_second']:>8} requests/s")
    print(
        f"same-size         {results['same_size_requests_per_second']:>8} requests/s "
        f"(goal >= {GOAL_REQUESTS})"
    )
    print(
        f"same-size x{results['clients']:<2}     "
        f"{results['same_size_parallel_requests_per_second']:>8} requests/s"
    )
    print("stages (in process, entries/s):")
    for stage, rate in results["stages"].items():
        print(f"  {stage:<24}{rate:>8}")
    print(f"machine: {results['machine']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
