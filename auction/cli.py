"""`gavel`: the command line (STYLE rule 12: `main(argv=None)`, catch only our base errors).

    gavel demo [--data DIR] [--db URL] [--host 127.0.0.1] [--port 8080] [--bots N]
               [--duration SECONDS] [--seed N]

Without `--duration` the demo serves until SIGINT or SIGTERM, then shuts down cleanly; with it,
it runs that long. Either way it prints a summary read back from storage and exits 0.
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

from aiohttp import web

from .demo import DemoError, summary
from .rules import RulesError
from .service import ServiceError
from .storage import Storage, StorageError
from .web import Settings, create_app

#: The errors `main` turns into a message and exit status 1; anything else is a bug.
EXPECTED_ERRORS = (ServiceError, StorageError, RulesError)


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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run `gavel` with `argv` (default: the process arguments); returns the exit status."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="gavel: %(levelname)s %(name)s: %(message)s")
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
