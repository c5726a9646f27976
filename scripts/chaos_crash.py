#!/usr/bin/env python3
"""Crash recovery under load: SIGKILL `gavel serve` at random moments while bidders bid.

One run, on 127.0.0.1 only, stops by itself:

1. a data directory with three notaries (keys made as `gavel demo` makes them, `DATA/policy`
   naming them with a quorum of 2) and one `gavel notary serve` process each; between the
   server and every notary a loopback TCP proxy in this script delays the notary's answers
   (`--notary-delay`), so that a cosignature round lasts long enough to be killed inside;
2. `python -m auction.cli serve --data DATA --port P`; lots created through the console REST
   API; N bidders made through the REST API (account, identity with a synthetic PRC number,
   registration, deposit);
3. the bidders bid continuously over websockets (`auction.client.BidderClient`), recording
   every acknowledged bid (accepted or rejected, its idempotency key, amount and `entry`);
4. `--kills` times: SIGKILL the server at a moment picked by the kill mode (cycled):
   `random`           a random delay (0.05-1.5 s) into the bidding;
   `commit`           a few ms after an ack arrived while other bids are in flight (inside the
                      next group commit);
   `cosign-request`   while a checkpoint is being co-signed: after the proxy forwarded the
                      server's request to a notary, before the answer is back;
   `cosign-answer`    right after a notary's cosignature reached the server (between the quorum
                      and the publication);
   then restart the server on the same data (a restart that fails is a violation: the server
   replays and checks every lot on start); the bidders reconnect and resend their
   unacknowledged bids with their original keys;
5. after each restart: the notaries co-sign a checkpoint (quorum of cosignatures) covering
   the whole log as it was at the restart, never smaller than any checkpoint published
   before; every `--check-every` restarts (and at the end) the published ledger is exported
   (`gavel ledger export --url`) and every acknowledged bid covered by it is checked: its
   entry holds the same request (account, lot, idempotency key, amount) and the same result,
   an accepted bid is in the lot's history (`GET /api/lots/{lot}/bids`); no idempotency key
   has two entries (no bid applied twice, resends after a restart included); every
   `--audit-every` checks the export is verified with `gavel audit verify`.

Exit 0 when nothing was violated, 1 otherwise. Figures go to stdout (and, with `--json FILE`,
as JSON).

Usage: .venv/bin/python -m scripts.chaos_crash [--kills 50] [--bidders 6] [--lots 2]
       [--seed N] [--notary-delay 0.15] [--pause 0.05] [--check-every 1] [--audit-every 5]
       [--data DIR] [--json FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import sys
import tempfile
import time
from pathlib import Path

from .chaos_records import ChaosError, report
from .chaos_run import Chaos
from .harness.report import write_json


async def amain(args: argparse.Namespace) -> int:
    began = time.monotonic()
    with contextlib.ExitStack() as stack:
        if args.data is None:
            root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="gavel-chaos-")))
        else:
            root = Path(args.data)
            if root.exists() and any(root.iterdir()):
                print(f"chaos_crash: {root} is not empty", file=sys.stderr)
                return 2
            root.mkdir(parents=True, exist_ok=True)
        data = root / "data"
        data.mkdir()
        chaos = Chaos(args, data)
        print(
            f"# chaos_crash: {args.kills} kills, {args.bidders} bidders, {args.lots} lots, "
            f"notary answers delayed {args.notary_delay * 1000:.0f} ms, seed {args.seed}, "
            f"data {root}",
            flush=True,
        )
        try:
            await asyncio.wait_for(chaos.run(), args.time_limit)
        except TimeoutError:
            chaos.figures.violate(f"the run did not finish within {args.time_limit:g} s")
        except ChaosError as exc:
            chaos.figures.violate(f"stopped: {exc}")
        finally:
            await chaos.teardown()
        figures = report(chaos.figures, time.monotonic() - began)
        for name, value in figures.items():
            print(f"{name:<28} {value}", flush=True)
        if args.json is not None:
            write_json(args.json, figures)
        if chaos.figures.violations:
            print(f"chaos_crash: FAILED, {len(chaos.figures.violations)} violations", flush=True)
            return 1
        print("chaos_crash: OK", flush=True)
        return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=50)
    parser.add_argument("--bidders", type=int, default=6)
    parser.add_argument("--lots", type=int, default=2)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--notary-delay", type=float, default=0.15, help="seconds")
    parser.add_argument("--pause", type=float, default=0.05, help="mean pause between bids, s")
    parser.add_argument("--check-every", type=int, default=1, help="export and check every N")
    parser.add_argument("--audit-every", type=int, default=5, help="audit every N checks")
    parser.add_argument("--time-limit", type=float, default=1800.0, help="seconds")
    parser.add_argument("--stop-on-violation", action="store_true")
    parser.add_argument("--verbose", action="store_true", help="print the bidders' errors")
    parser.add_argument(
        "--no-lost-acks",
        dest="lost_acks",
        action="store_false",
        help="do not resend an acknowledged bid after each restart (a lost ack)",
    )
    parser.add_argument("--data", default=None, help="an empty directory to keep (else a temp)")
    parser.add_argument("--json", default=None, help="also write the figures here")
    args = parser.parse_args()
    if args.seed is None:
        args.seed = random.SystemRandom().randrange(2**32)
    return asyncio.run(amain(args))


if __name__ == "__main__":
    sys.exit(main())
