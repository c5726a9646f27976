#!/usr/bin/env python3
"""Rules-engine throughput on one core: commands per second through `auction.rules.apply`.

Scenarios (all in one run, so they share the machine's state at that moment):
  hot-proxy    one ENGLISH_TIMED lot, 50 proxy bidders raising their maxima in turn
  hot-judicial one JUDICIAL_CN lot, 50 bidders placing the minimum next bid in turn
  many-lots    10,000 open JUDICIAL_CN lots, 3 bidders each, bids spread round-robin
  baseline     a loop that builds the same command objects without applying them (the floor)

Usage: .venv/bin/python -m scripts.bench_engine [--commands N] [--repeat R] [--clock cpu] [--json]

`--clock cpu` times each run by the process's CPU time instead of the wall clock: on a machine
shared with other work the wall clock counts the time the benchmark waited for a core. The
script uses only the package's public API, so one copy of it can time another checkout of the
code (`PYTHONPATH=<checkout> python <this file>`): a paired before/after with the same loop.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from collections.abc import Callable

from auction import rules as r

HOUR = r.HOUR


def english_lot(bidders: int) -> r.LotState:
    rules = r.english_timed(start_price=1_000, start_at=0, end_at=10**15, increment=r.Fixed(100))
    return _seed(r.LotState.create("hot", rules), bidders)


def judicial_lot(lot_id: str, bidders: int) -> r.LotState:
    rules = r.judicial(
        start_price=1_000_000, step=10_000, start_at=0, end_at=10**15, deposit_unit=1
    )
    return _seed(r.LotState.create(lot_id, rules), bidders)


def _seed(state: r.LotState, bidders: int) -> r.LotState:
    for i in range(bidders):
        name = f"b{i}"
        state, _ = r.apply(state, r.RegisterBidder(name, f"C-{i:04d}", True), 0)
        if state.bidders[name].deposit is r.DepositState.REQUIRED:
            state, _ = r.apply(state, r.DepositFrozen(name, state.rules.deposit, f"tx{i}"), 0)
    state, _ = r.apply(state, r.OpenLot(), 0)
    return state


def hot_proxy(n: int) -> tuple[int, int]:
    state = english_lot(50)
    accepted = 0
    for k in range(n):
        bidder = f"b{k % 50}"
        current = state.bidders[bidder].max
        floor = max(state.price or state.rules.start_price, current.amount if current else 0)
        state, events = r.apply(state, r.SetMax(bidder, floor + 100 * (1 + k % 7), "USD"), k + 1)
        accepted += not isinstance(events[0], r.Rejected)
    return n, accepted


def hot_judicial(n: int) -> tuple[int, int]:
    state = judicial_lot("hot", 50)
    accepted = 0
    for k in range(n):
        bidder = f"b{k % 50}"
        state, events = r.apply(state, r.PlaceBid(bidder, state.min_next, "CNY"), k + 1)
        accepted += not isinstance(events[0], r.Rejected)
    return n, accepted


def many_lots(n: int, lots: int = 10_000) -> tuple[int, int]:
    states = {f"lot{i}": judicial_lot(f"lot{i}", 3) for i in range(lots)}
    ids = list(states)
    accepted = 0
    for k in range(n):
        lot_id = ids[k % lots]
        state = states[lot_id]
        bidder = f"b{(k // lots) % 3}"
        state, events = r.apply(state, r.PlaceBid(bidder, state.min_next, "CNY"), k + 1)
        states[lot_id] = state
        accepted += not isinstance(events[0], r.Rejected)
    return n, accepted


def baseline(n: int) -> tuple[int, int]:
    made = 0
    for k in range(n):
        r.PlaceBid(f"b{k % 50}", 1_000_000 + k, "CNY")
        made += 1
    return n, made


SCENARIOS: dict[str, Callable[[int], tuple[int, int]]] = {
    "hot-proxy": hot_proxy,
    "hot-judicial": hot_judicial,
    "many-lots": many_lots,
    "baseline": baseline,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commands", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    results = {}
    for name, scenario in SCENARIOS.items():
        rates = []
        accepted = 0
        for _ in range(args.repeat):
            start = clock()
            count, accepted = scenario(args.commands)
            rates.append(count / (clock() - start))
        results[name] = {
            "median_per_s": round(statistics.median(rates)),
            "min_per_s": round(min(rates)),
            "max_per_s": round(max(rates)),
            "accepted": accepted,
            "commands": args.commands,
        }
    machine = f"{platform.machine()} {platform.python_implementation()} {platform.python_version()}"
    if args.json:
        code = os.path.abspath(os.path.join(os.path.dirname(r.__file__), "..", ".."))
        out = {"machine": machine, "clock": args.clock, "code": code, "results": results}
        print(json.dumps(out, indent=2))
        return
    print(
        f"machine: {machine}; {args.commands} commands x {args.repeat} runs per scenario; "
        f"{args.clock} clock"
    )
    for name, row in results.items():
        print(
            f"{name:13s} median {row['median_per_s']:>9,}/s  (min {row['min_per_s']:,}, "
            f"max {row['max_per_s']:,}; accepted {row['accepted']:,}/{row['commands']:,})"
        )


if __name__ == "__main__":
    main()
