#!/usr/bin/env python3
"""Ledger throughput on this machine: durable batched appends, proofs, receipts.

  appends       entries sequenced, signed by the house key and committed to SQLite
                (WAL, synchronous=FULL) in batches of --batch; one transaction per batch
  appends-raw   the same rows committed without building or signing entries (the storage floor)
  proofs        inclusion proofs generated from the stored tree (random leaves)
  verify        inclusion proofs verified (chain.verify_inclusion)
  receipt       one c2sp.org/tlog-proof receipt verified (chain.verify_receipt), in ms

Usage: .venv/bin/python -m scripts.bench_ledger [--entries N] [--batch B] [--repeat R]
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import statistics
import tempfile
import time
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import create_engine, event, insert

import chain
from chain import store


def sqlite_engine(path: Path):  # type: ignore[no-untyped-def]
    engine = create_engine(f"sqlite:///{path}")

    @event.listens_for(engine, "connect")
    def _pragmas(connection, _record):  # type: ignore[no-untyped-def]
        cursor = connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.close()

    with engine.begin() as connection:
        store.create_tables(connection)
    return engine


def body(n: int) -> dict[str, object]:
    return {
        "v": 1,
        "lot": f"lot-{n % 97}",
        "n": n,
        "ingress": chain.format_time(1_795_000_000_000_000 + n),
        "command": {
            "type": "PlaceBid",
            "bidder": f"acct-{n % 50}",
            "amount": 1_000_000 + n,
            "currency": "CNY",
            "idempotency_key": f"k{n}",
            "confirm_jump": False,
        },
        "accepted": True,
        "events": [],
    }


def bench_appends(workdir: Path, entries: int, batch: int) -> tuple[float, float, object]:
    signer_key = Ed25519PrivateKey.generate()
    signer = store.EntrySigner("bench.gavel.local+00000000+AAAA", signer_key)
    engine = sqlite_engine(workdir / "signed.db")
    state = store.LedgerState()
    start = time.perf_counter()
    for first in range(0, entries, batch):
        pending = state.batch()
        for n in range(first, min(entries, first + batch)):
            pending.add(chain.EntryType.BID, body(n), 1_795_000_000_000_000 + n, signer)
        with engine.begin() as connection:
            store.append_entries(connection, pending.entries, pending.nodes)
        state.advance(pending)
    signed_rate = entries / (time.perf_counter() - start)
    raw_engine = sqlite_engine(workdir / "raw.db")
    rows = [
        {"seq": n, "data": b"x" * 420, "leaf_hash": bytes(32), "t_us": n} for n in range(entries)
    ]
    start = time.perf_counter()
    for first in range(0, entries, batch):
        with raw_engine.begin() as connection:
            connection.execute(insert(store.ENTRIES), rows[first : first + batch])
    raw_rate = entries / (time.perf_counter() - start)
    return signed_rate, raw_rate, (engine, state)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=50_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--proofs", type=int, default=20_000)
    args = parser.parse_args()
    appends, raws, proofs, verifies, receipts = [], [], [], [], []
    for _ in range(args.repeat):
        with tempfile.TemporaryDirectory() as tmp:
            signed_rate, raw_rate, (engine, state) = bench_appends(
                Path(tmp), args.entries, args.batch
            )
            appends.append(signed_rate)
            raws.append(raw_rate)
            size = state.size  # type: ignore[attr-defined]
            root = state.root()  # type: ignore[attr-defined]
            rng = random.Random(7)
            indices = [rng.randrange(size) for _ in range(args.proofs)]
            with engine.connect() as connection:  # type: ignore[attr-defined]
                reader = store.hash_reader(connection, size)
                leaves = {
                    i: e.leaf_hash
                    for i in indices[:2000]
                    for e in store.read_entries(connection, i, i + 1)
                }
                start = time.perf_counter()
                generated = [chain.inclusion_proof(i, size, reader) for i in indices]
                proofs.append(len(indices) / (time.perf_counter() - start))
                start = time.perf_counter()
                for i, proof in zip(indices[:2000], generated[:2000], strict=True):
                    chain.verify_inclusion(i, size, leaves[i], proof, root)
                verifies.append(2000 / (time.perf_counter() - start))
                # one receipt, end to end
                log_signer = chain.Ed25519Signer.generate("bench.gavel.local")
                note = chain.sign_checkpoint(
                    chain.Checkpoint("bench.gavel.local", size, root), log_signer
                )
                (entry,) = store.read_entries(connection, indices[0], indices[0] + 1)
                receipt = chain.make_receipt(indices[0], generated[0], note)
                policy = chain.parse_policy(f"log {log_signer.vkey}\nquorum none\n".encode())
                timings = []
                for _ in range(50):
                    start = time.perf_counter()
                    chain.verify_receipt(receipt, entry.data, None, policy)
                    timings.append((time.perf_counter() - start) * 1000)
                receipts.append(statistics.median(timings))
            engine.dispose()  # type: ignore[attr-defined]
    print(
        f"machine: {platform.machine()} {platform.python_implementation()} "
        f"{platform.python_version()}, {os.cpu_count()} CPUs; {args.entries} entries, "
        f"batches of {args.batch}, {args.repeat} runs (median, min-max)"
    )
    for name, values, unit in (
        ("appends (signed, durable)", appends, "entries/s"),
        ("appends-raw (storage floor)", raws, "rows/s"),
        ("inclusion proofs generated", proofs, "proofs/s"),
        ("inclusion proofs verified", verifies, "proofs/s"),
        ("one receipt verified", receipts, "ms"),
    ):
        print(
            f"{name:30s} {statistics.median(values):>12,.1f} {unit}  "
            f"({min(values):,.1f} - {max(values):,.1f})"
        )


if __name__ == "__main__":
    main()
