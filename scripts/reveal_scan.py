#!/usr/bin/env python3
"""Sealed maxima and reserves on a public log: a demo-like run scanned as the public sees it.

An auction service with its `/log/` routes on 127.0.0.1, `--lots` English timed lots (every
other one with a hidden reserve, above any price the run reaches) and `--bidders` bidders;
`--commands` commands at random (40 % proxy maxima, the rest bids at the minimum). Every 40
commands and after each lot's close, every entry bundle of the signed tree is fetched with no
credentials and counted by status, and its entries are checked: no `SetMax` or `MaxSet` amount
in the clear, no `lot` entry with its reserve in the clear, no maximum of an open lot that no
bid has reached and no reserve of an open lot in any byte. The lots then close one by one (each
writes its `reveal`); the export is audited with its openings, and the public entries are
replayed without them, which must reach the same outcomes.

Usage: .venv/bin/python -m scripts.reveal_scan [--lots N] [--bidders N] [--commands N]
                                               [--seed N]
Prints one JSON object of counts.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from auction.audit import DirectorySource, verify_ledger
from auction.ledger_export import StoreSource, export_ledger
from auction.rules import (
    SECOND,
    CloseLot,
    PlaceBid,
    RegisterBidder,
    Rejected,
    SetMax,
    english_timed,
)
from auction.service import AuctionService
from auction.storage import Storage, system_clock
from auction.verify import LedgerReplay
from auction.web.log import add_log_routes
from chain import TILE_WIDTH, EntryBundle, parse_entry, parse_entry_bundle


class _Clock:
    """The real clock plus an offset moved forward to close the lots."""

    def __init__(self) -> None:
        self.offset_us = 0

    def __call__(self) -> int:
        return system_clock() + self.offset_us


def _plain(value: Any) -> Any:
    return json.loads(json.dumps(value, default=dict))


async def _scan(
    url: str,
    service: AuctionService,
    http: aiohttp.ClientSession,
    unreached: dict[str, set[int]],
    reserves: dict[str, int],
    stats: Counter[str],
) -> None:
    assert await service.settle(10)
    head = service.signed_checkpoint
    assert head is not None
    for index in range((head.size + TILE_WIDTH - 1) // TILE_WIDTH):
        bundle = EntryBundle(index, min(TILE_WIDTH, head.size - index * TILE_WIDTH))
        async with http.get(f"{url}/log/{bundle.path}") as response:
            data = await response.read()
            stats["bundles fetched"] += 1
            stats[f"status {response.status}"] += 1
        if response.status != 200:
            continue
        for raw in parse_entry_bundle(bundle, data):
            body = json.loads(raw)["body"]
            command = body.get("command") or {}
            clear = command.get("type") == "SetMax" and "amount" in command
            events = body.get("events") or []
            clear |= any(e.get("type") == "MaxSet" and "amount" in e for e in events)
            stats["maxima in the clear"] += clear
            rules = body.get("rules") if json.loads(raw)["type"] == "lot" else None
            stats["reserves in the clear"] += isinstance(rules, dict) and (
                rules.get("reserve") is not None
            )
        text = data.decode("utf-8", "replace")
        for lot, amounts in unreached.items():
            view = service.view(lot)
            if view is None or not view.active:
                continue
            for amount in amounts:
                if f'"amount":{amount},' in text or f'"amount":{amount}}}' in text:
                    stats["open maxima readable"] += 1
            reserve = reserves.get(lot)
            if reserve is not None and str(reserve) in text:
                stats["open reserves readable"] += 1


async def run(lots: int, bidders: int, commands: int, seed: int) -> dict[str, Any]:
    rng = random.Random(seed)
    names = [f"lot-{i}" for i in range(lots)]
    accounts = [f"acct-{i}" for i in range(bidders)]
    stats: Counter[str] = Counter(
        {
            "status 403": 0,
            "maxima in the clear": 0,
            "open maxima readable": 0,
            "reserves in the clear": 0,
            "open reserves readable": 0,
        }
    )
    #: every other lot's hidden reserve: distinctive figures no price of the run reaches
    reserves = {lot: 90_000_000 + 7_919 * i for i, lot in enumerate(names) if i % 2 == 0}
    unreached: dict[str, set[int]] = {lot: set() for lot in names}
    tmp = Path(tempfile.mkdtemp(prefix="reveal-scan-"))
    clock = _Clock()
    store = Storage.open(tmp / "data")
    service = AuctionService(store, clock=clock, checkpoint_delay=0.05)
    app = web.Application()
    add_log_routes(app, lambda request: service)
    runner = web.AppRunner(app)
    await service.start()
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        url = f"http://127.0.0.1:{runner.addresses[0][1]}"
        now = service.now()
        for i, lot in enumerate(names):
            end = now + (600 + 60 * i) * SECOND
            rules = english_timed(
                start_price=10_000, start_at=now, end_at=end, reserve=reserves.get(lot)
            )
            await service.add_lot(lot, rules, lot)
            for account in accounts:
                await service.submit(lot, RegisterBidder(account, f"C{account[5:]}-{i}", True))
        began = time.perf_counter()
        async with aiohttp.ClientSession() as http:
            for n in range(commands):
                lot, account = rng.choice(names), rng.choice(accounts)
                view, state = service.view(lot), service.state(lot)
                assert view is not None and state is not None
                if rng.random() < 0.4:
                    rules = state.rules
                    wanted = view.min_next + rng.randrange(0, 400_000)
                    top = rules.increment.floor_to_grid(rules.start_price, wanted)
                    assert top is not None
                    events = await service.submit(lot, SetMax(account, top, "USD"))
                    if not isinstance(events[0], Rejected):
                        unreached[lot].add(top)
                    stats["SetMax commands"] += 1
                else:
                    await service.submit(lot, PlaceBid(account, view.min_next, "USD"))
                    stats["PlaceBid commands"] += 1
                if n % 40 == 39:
                    for name in names:  # a maximum a bid has reached is public by the rules
                        price = (service.view(name) or view).price or 0
                        unreached[name] = {a for a in unreached[name] if a > price}
                    await _scan(url, service, http, unreached, reserves, stats)
            for i, lot in enumerate(names):
                clock.offset_us = (700 + 60 * i) * SECOND
                await service.submit(lot, CloseLot())
                unreached[lot] = set()
                await _scan(url, service, http, unreached, reserves, stats)
        seconds = round(time.perf_counter() - began, 1)
        size = store.ledger_size()
        entries = [parse_entry(raw) for raw in store.ledger_entries(0, size)]
        openings = store.ledger_openings(0, size)
    finally:
        await service.stop()
        await runner.cleanup()
    stats["entries written"] = len(entries)
    stats["reveal entries"] = sum(e.type == "reveal" for e in entries)
    stats["entries with a sealed maximum"] = sum(
        "max" in _plain(e.body).get("sealed", {}) for e in entries
    )
    out = tmp / "export"
    with contextlib.closing(StoreSource(tmp / "data")) as source:
        export_ledger(source, out)
    result: dict[str, Any] = dict(stats)
    result["seconds"] = seconds
    result["audit with openings ok"] = verify_ledger(DirectorySource(out), workers=0).ok
    public, opened = LedgerReplay(), LedgerReplay(openings=openings.get)
    for entry in entries:
        for replay in (public, opened):
            replay.add(
                entry.seq, entry.type.value, entry.time_us, _plain(entry.body), entry.actor.kid
            )
    result["public replay equals opened replay"] = public.outcomes() == opened.outcomes()
    result["maxima revealed"] = getattr(public, "revealed_maxima", None)  # None: before reveals
    result["lots with a reserve"] = len(reserves)
    # None: before reserves were sealed (the replay had them in the clear)
    result["reserves revealed"] = getattr(public, "revealed_reserves", None)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lots", type=int, default=6)
    parser.add_argument("--bidders", type=int, default=8)
    parser.add_argument("--commands", type=int, default=600)
    parser.add_argument("--seed", type=int, default=20)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(run(args.lots, args.bidders, args.commands, args.seed)), indent=1))


if __name__ == "__main__":
    main()
