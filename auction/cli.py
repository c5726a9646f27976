"""`gavel`: the command line (STYLE rule 12: `main(argv=None)`, catch only our base errors).

    gavel demo [--data DIR] [--db URL] [--host 127.0.0.1] [--port 8080] [--bots N]
               [--duration SECONDS] [--seed N]
    gavel ledger export (--data DIR | --db URL | --url URL) --out OUT [--all-receipts] [--force]

Without `--duration` the demo serves until SIGINT or SIGTERM, then shuts down cleanly; with it,
it runs that long. Either way it prints a summary read back from storage and exits 0.
`gavel ledger export` writes the ledger as a static, verified tlog-tiles tree with its policy,
every published checkpoint and receipts for every sale (`auction.ledger_export`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from aiohttp import web

from chain import ChainError
from notary.cli import register as register_notary
from notary.cli import run as run_notary

from .audit_cli import register as register_audit
from .audit_cli import run as run_audit
from .demo import DemoError, summary
from .ledger_export import ExportError, export_ledger, open_source
from .rules import RulesError
from .service import ServiceError
from .storage import Storage, StorageError
from .web import Settings, create_app

#: The errors `main` turns into a message and exit status 1; anything else is a bug.
EXPECTED_ERRORS = (ServiceError, StorageError, RulesError)

#: The same for `gavel ledger ...` (a chain error is a ledger that does not verify).
LEDGER_ERRORS = (ExportError, StorageError, ChainError)


def _positive_seconds(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError("must be a positive number of seconds")
    return value


def _non_negative(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError("must be ≥ 0")
    return value


def _port(text: str) -> int:
    value = int(text)
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError("must be 0..65535 (0 picks a free port)")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of `gavel`."""
    parser = argparse.ArgumentParser(
        prog="gavel", description="Live-streamed online property auctions on a notarized ledger."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    demo = commands.add_parser(
        "demo",
        help="serve seeded lots with bidding bots on http://127.0.0.1:8080/",
        description="Serve seeded lots (one per format, and a three-lot judicial sale with "
        "staggered closes) with simulated bidders and a scripted clerk.",
    )
    demo.add_argument(
        "--data",
        type=Path,
        default=Path("gavel-data"),
        metavar="DIR",
        help="data directory for the SQLite database (default: ./gavel-data)",
    )
    demo.add_argument(
        "--db", metavar="URL", help="use this database instead, e.g. postgresql://user@host/db"
    )
    demo.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default: %(default)s)"
    )
    demo.add_argument(
        "--port",
        type=_port,
        default=8080,
        help="port to listen on; 0 picks a free one (default: 8080)",
    )
    demo.add_argument(
        "--bots", type=_non_negative, default=5, metavar="N", help="simulated bidders (default: 5)"
    )
    demo.add_argument(
        "--duration",
        type=_positive_seconds,
        metavar="SECONDS",
        help="run this long (timed lots close within the first half), print a summary, exit",
    )
    demo.add_argument("--seed", type=int, metavar="N", help="seed of the bots' random choices")
    _add_ledger_commands(commands)
    register_notary(commands)
    register_audit(commands)
    return parser


def _add_ledger_commands(commands: Any) -> None:
    ledger = commands.add_parser(
        "ledger",
        help="work with the transparency log",
        description="Work with the auction's transparency log (RFC 9162, C2SP tlog-tiles).",
    )
    ledger_commands = ledger.add_subparsers(dest="ledger_command", required=True, metavar="COMMAND")
    export = ledger_commands.add_parser(
        "export",
        help="write the ledger as a static, verified tlog-tiles tree",
        description="Write OUT/checkpoint, OUT/tile/..., OUT/policy, OUT/checkpoints/<size> "
        "and OUT/receipts/<seq>.tlog-proof + .entry for every sale, after verifying all of it.",
    )
    source = export.add_mutually_exclusive_group(required=True)
    source.add_argument("--data", type=Path, metavar="DIR", help="a gavel data directory")
    source.add_argument("--db", metavar="URL", help="a gavel database, e.g. postgresql://...")
    source.add_argument("--url", metavar="URL", help="a running gavel server, e.g. http://...")
    export.add_argument("--out", type=Path, required=True, metavar="OUT", help="where to write")
    export.add_argument(
        "--all-receipts", action="store_true", help="write a receipt for every entry"
    )
    export.add_argument("--force", action="store_true", help="replace a non-empty OUT")


def main(argv: Sequence[str] | None = None) -> int:
    """Run `gavel` with `argv` (default: the process arguments); returns the exit status."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="gavel: %(levelname)s %(name)s: %(message)s")
    if args.command == "ledger":
        return _ledger_main(args)
    if args.command == "notary":
        return run_notary(args)
    if args.command == "audit":
        return run_audit(args)
    settings = Settings(
        data_dir=args.data,
        database_url=args.db,
        host=args.host,
        port=args.port,
        bots=args.bots,
        duration=args.duration,
        seed=args.seed,
    )
    try:
        print(asyncio.run(run_demo(settings)), flush=True)
    except EXPECTED_ERRORS as exc:
        print(f"gavel: error: {exc}", file=sys.stderr, flush=True)
        return 1
    return 0


def _ledger_main(args: argparse.Namespace) -> int:
    """`gavel ledger export`: the only ledger command so far."""
    try:
        source = open_source(data=args.data, db=args.db, url=args.url)
        try:
            result = export_ledger(
                source, args.out, all_receipts=args.all_receipts, force=args.force
            )
        finally:
            source.close()
    except LEDGER_ERRORS as exc:
        print(f"gavel: error: {exc}", file=sys.stderr, flush=True)
        return 1
    print(
        f"gavel ledger export: {result.origin}, {result.size} entries, {result.checkpoints} "
        f"checkpoints, {result.receipts} receipts ({result.sales} sales) written to {result.out}",
        flush=True,
    )
    return 0


async def run_demo(settings: Settings) -> str:
    """Serve the demo until SIGINT/SIGTERM or `settings.duration` seconds, shut down cleanly,
    and return the summary read back from storage."""
    stop = asyncio.Event()
    with _stop_on_signals(stop):  # installed first: a signal at any point means "shut down"
        runner = web.AppRunner(create_app(settings), handle_signals=False)
        try:
            await runner.setup()
            site = web.TCPSite(runner, settings.host, settings.port)
            try:
                await site.start()
            except OSError as exc:
                where = f"{settings.host}:{settings.port}"
                raise DemoError(f"cannot listen on {where}: {exc.strerror or exc}") from exc
            port = runner.addresses[0][1]
            print(f"gavel demo: serving http://{settings.host}:{port}/", flush=True)
            if settings.duration is None:
                print("gavel demo: press Ctrl-C to stop", flush=True)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), settings.duration)
        finally:
            await runner.cleanup()
    return await asyncio.to_thread(_read_summary, settings)


@contextlib.contextmanager
def _stop_on_signals(stop: asyncio.Event) -> Iterator[None]:
    """Set `stop` on SIGINT or SIGTERM while inside the block."""
    loop = asyncio.get_running_loop()
    signals = (signal.SIGINT, signal.SIGTERM)
    for signum in signals:
        loop.add_signal_handler(signum, stop.set)
    try:
        yield
    finally:
        for signum in signals:
            loop.remove_signal_handler(signum)


def _read_summary(settings: Settings) -> str:
    with Storage.open(settings.storage_target) as store:
        return summary(store.load(), store.counts(), store.location)


if __name__ == "__main__":
    sys.exit(main())
