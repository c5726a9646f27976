#!/usr/bin/env python3
"""Auditor throughput: `auction.audit.verify_ledger` over an N-entry export, serial and parallel.

Builds a realistic export (interleaved English lots: registrations, bids, proxy maxima, a pause,
closes and sales; every entry's actor signed by the house key; a checkpoint every K entries) in a
temporary directory with `tests/support/ledger_kit.py`, then verifies it with every step (all
signatures checked, rules replayed) twice: in-process (`workers=0`) and with worker processes
(`workers=W`, default one per core). Prints entries/s, wall seconds and CPU seconds (this process
plus its workers: on a shared machine wall time varies, CPU time much less).

Usage: .venv/bin/python -m scripts.bench_audit [--entries N] [--workers W] [--checkpoint-every K]
                                               [--skip-serial] [--keep DIR] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from auction.audit import AuditStep, DirectorySource, verify_ledger
from tests.support.ledger_kit import bulk_ledger


def build(directory: Path, entries: int, every: int) -> dict[str, Any]:
    """Write an export of at least `entries` entries to `directory`; returns its figures."""
    started = time.perf_counter()
    builder = bulk_ledger(entries, keep_entries=False)
    builder.checkpoint_sizes = list(range(every, builder.size, every))
    export = builder.write(directory)
    return {
        "entries": builder.size,
        "checkpoints": len(export.checkpoints),
        "sales": len(builder.sales),
        "lots": len(builder.lots),
        "build_seconds": round(time.perf_counter() - started, 2),
    }


def measure(directory: Path, workers: int) -> dict[str, Any]:
    """One `verify_ledger` run: wall and CPU seconds, entries per second."""
    before = os.times()
    started = time.perf_counter()
    report = verify_ledger(DirectorySource(directory), workers=workers)
    wall = time.perf_counter() - started
    after = os.times()
    cpu = (after.user - before.user) + (after.system - before.system)
    cpu += (after.children_user - before.children_user) + (
        after.children_system - before.children_system
    )
    return {
        "workers": workers,
        "seconds": round(wall, 2),
        "entries_per_second": round(report.entries / wall),
        "cpu_seconds": round(cpu, 2),
        "steps_passed": len(report.steps_passed),
        "sales": report.sales,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--entries", type=int, default=1_000_000, metavar="N")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, metavar="W")
    parser.add_argument("--checkpoint-every", type=int, default=1_000, metavar="K")
    parser.add_argument("--skip-serial", action="store_true", help="only the parallel run")
    parser.add_argument("--keep", type=Path, metavar="DIR", help="build here (reused if present)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args(argv)

    temporary = None
    if args.keep is not None:
        directory = args.keep
    else:
        temporary = tempfile.mkdtemp(prefix="gavel-bench-audit-")
        directory = Path(temporary) / "export"
    try:
        if (directory / "checkpoint").exists():
            figures: dict[str, Any] = {"entries": None, "build_seconds": None, "reused": True}
        else:
            figures = build(directory, args.entries, args.checkpoint_every)
        runs = []
        if not args.skip_serial:
            runs.append(measure(directory, 0))
        runs.append(measure(directory, args.workers))
    finally:
        if temporary is not None:
            shutil.rmtree(temporary, ignore_errors=True)
    result = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "export": figures,
        "runs": runs,
    }
    if args.json:
        print(json.dumps(result, indent=2, sort_keys=True))
        return 0
    entries = figures["entries"]
    print(
        f"export: {entries if entries is not None else '(reused)'} entries, "
        f"{figures.get('checkpoints', '?')} checkpoints, {figures.get('lots', '?')} lots, "
        f"{figures.get('sales', '?')} sales; built in {figures['build_seconds']} s"
    )
    for run in runs:
        label = "serial  " if run["workers"] == 0 else "parallel"
        print(
            f"{label} (workers={run['workers']}): {run['seconds']:.2f} s, "
            f"{run['entries_per_second']:,} entries/s, cpu {run['cpu_seconds']:.2f} s "
            f"({run['steps_passed']}/{len(AuditStep)} steps)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
