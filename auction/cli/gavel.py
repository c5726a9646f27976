"""`gavel`'s parser and `main`: options, `--config FILE`, logging, then the command."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from aiohttp.http_exceptions import HttpProcessingError

from notary.cli import port_number, positive_int, run_serving
from notary.cli import register as register_notary
from notary.cli import run as run_notary

from ..accounts import Role
from ..audit.cli import register as register_audit
from ..audit.cli import run as run_audit
from ..cluster import ClusterError
from ..config import ConfigError, subcommand_parser, with_config
from ..demo.living import wipe_demo_data
from ..demo.showcase import DEMO_NOTARIES, DEMO_QUORUM, DemoError
from ..errors import GavelError
from ..evidence.cli import register as register_evidence
from ..evidence.cli import run as run_evidence
from ..gateway import BIDS_PER_SECOND
from ..logs import LOG_FORMATS, LOG_LEVELS, configure
from ..printable import escape_log_output, printable
from ..throttle import WriteLimits
from ..web import Settings
from ..web.ws import MAX_CONNECTIONS_PER_ADDRESS
from . import ledger, staff
from .demo import run_demo
from .serve import add_cluster_options, cluster_settings, run_server

#: The errors `main` turns into a message and exit status 1; anything else is a bug.
EXPECTED_ERRORS = (GavelError,)


def _drop_malformed_requests(record: logging.LogRecord) -> bool:
    """aiohttp answers a malformed HTTP request with 400 and also logs it with a traceback at
    ERROR: anyone could fill the log that way. The 400 is enough."""
    error = record.exc_info[1] if record.exc_info else None
    return not isinstance(error, HttpProcessingError)


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


def _speed(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError("must be a number") from None
    if not 1 <= value <= 1000:
        raise argparse.ArgumentTypeError("must be within 1..1000")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of `gavel`."""
    parser = argparse.ArgumentParser(
        prog="gavel", description="Live-streamed online property auctions on a notarized ledger."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    demo = commands.add_parser(
        "demo",
        help="serve a living catalogue with bidding bots on http://127.0.0.1:8080/",
        description="Serve a living catalogue (court-ordered property lots opening every few "
        "minutes, a live auction whose ring takes a new lot every few minutes, the results of "
        "the closed ones) with simulated bidders and a scripted auctioneer; with --duration "
        "alone, the short showcase (one lot per format and a three-lot judicial sale with "
        "staggered closes).",
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
        type=port_number,
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
    demo.add_argument(
        "--seed",
        type=int,
        metavar="N",
        help="seed of the bots' random choices and, on a new data directory, of the schedule",
    )
    demo.add_argument(
        "--speed",
        type=_speed,
        metavar="F",
        help="run the living catalogue's schedule F times faster (1..1000; default 1); with "
        "--duration, run it rather than the showcase. A data directory keeps the speed it was "
        "made with",
    )
    demo.add_argument(
        "--fresh",
        action="store_true",
        help="delete the data directory first (only one a demo made) and start afresh",
    )
    demo.add_argument(
        "--notaries",
        type=_non_negative,
        default=DEMO_NOTARIES,
        metavar="N",
        help=f"notary processes to run, quorum min(N, {DEMO_QUORUM}); 0: none, checkpoints are "
        "published unsigned by notaries (default: %(default)s)",
    )
    serve = commands.add_parser(
        "serve",
        help="serve the auction (REST, websocket, pages, ledger) until stopped",
        description="Serve the auction on a data directory or a database until SIGINT or "
        "SIGTERM. Prints the URL and the auctioneer's console URL (with a session token).",
    )
    where = serve.add_mutually_exclusive_group(required=True)
    where.add_argument("--data", type=Path, metavar="DIR", help="data directory (SQLite)")
    where.add_argument("--db", metavar="URL", help="a database, e.g. postgresql://user@host/db")
    serve.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default: %(default)s)"
    )
    serve.add_argument(
        "--port", type=port_number, default=8080, help="port to listen on; 0 picks a free one"
    )
    serve.add_argument(
        "--bids-per-second",
        type=positive_int,
        default=BIDS_PER_SECOND,
        metavar="N",
        help="bids each account may send per second (default: %(default)s)",
    )
    serve.add_argument(
        "--connections-per-address",
        type=positive_int,
        default=MAX_CONNECTIONS_PER_ADDRESS,
        metavar="N",
        help="websocket connections one client address may hold (default: %(default)s)",
    )
    serve.add_argument(
        "--no-write-limits",
        action="store_true",
        help="no limits on account creation, identity checks, registrations and deposits per "
        "address, session or account (benchmarks and load tests on loopback only)",
    )
    serve.add_argument(
        "--policy",
        type=Path,
        metavar="FILE",
        help="a tlog-policy naming this log's key, its notaries and the quorum: checkpoints "
        "are published once the quorum co-signed (several instances: give each the same file)",
    )
    add_cluster_options(serve)
    add_cluster_options(demo)
    staff = commands.add_parser(
        "staff",
        help="create a staff session (auctioneer, compliance, auditor, court or admin) and "
        "print its token",
        description="Create an account without a bidding key and a 12-hour session with ROLE "
        "in the server's database; print the bearer token (and, for an auctioneer, the console "
        "path). Works while the server runs.",
    )
    staff_where = staff.add_mutually_exclusive_group(required=True)
    staff_where.add_argument("--data", type=Path, metavar="DIR", help="the server's data directory")
    staff_where.add_argument("--db", metavar="URL", help="the server's database URL")
    staff.add_argument(
        "--role",
        required=True,
        choices=[Role.AUCTIONEER, Role.COMPLIANCE, Role.AUDITOR, Role.COURT, Role.ADMIN],
    )
    ledger.register(commands)
    register_notary(commands)
    register_audit(commands)
    register_evidence(commands)
    serve.add_argument(
        "--metrics-port",
        type=port_number,
        metavar="PORT",
        help="also serve GET /metrics without a token on this admin port (default: only to "
        "admin and auditor sessions on the main port)",
    )
    serve.add_argument(
        "--metrics-host",
        default="127.0.0.1",
        metavar="HOST",
        help="address of the metrics port (default: %(default)s)",
    )
    for words in CONFIGURABLE:
        _add_operations_options(subcommand_parser(parser, words))
    return parser


#: The commands that take `--config FILE`, `--log-format` and `--log-level`.
CONFIGURABLE = (("serve",), ("notary", "serve"))


def _add_operations_options(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--config",
        type=Path,
        metavar="FILE",
        help="read options from a TOML file (keys are the long options without '--'); "
        "options on the command line win",
    )
    command.add_argument(
        "--log-format",
        choices=LOG_FORMATS,
        default="text",
        help="log lines as text or as one JSON object per line (default: %(default)s)",
    )
    command.add_argument(
        "--log-level",
        choices=LOG_LEVELS,
        type=str.upper,
        help="least severe level logged (default: GAVEL_LOG_LEVEL, else WARNING)",
    )


def _with_config(parser: argparse.ArgumentParser, argv: Sequence[str]) -> list[str]:
    """`argv` with the options of a configurable command's `--config FILE` put first."""
    for words in CONFIGURABLE:
        if tuple(argv[: len(words)]) == words:
            return with_config(subcommand_parser(parser, words), argv, len(words))
    return list(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run `gavel` with `argv` (default: the process arguments); returns the exit status."""
    parser = build_parser()
    words = list(sys.argv[1:] if argv is None else argv)
    try:
        words = _with_config(parser, words)
    except ConfigError as exc:
        print(f"gavel: error: {printable(exc)}", file=sys.stderr, flush=True)
        return 2
    args = parser.parse_args(words)
    # GAVEL_LOG_LEVEL=INFO (or --log-level INFO) shows e.g. takeovers
    configure(getattr(args, "log_format", "text"), getattr(args, "log_level", None))
    escape_log_output()  # titles, ids and reasons in log lines: no raw control characters
    logging.getLogger("aiohttp.server").addFilter(_drop_malformed_requests)
    if args.command == "ledger":
        return ledger.run(args)
    if args.command == "staff":
        return staff.run(args)
    if args.command == "notary":
        return run_notary(args)
    if args.command == "audit":
        return run_audit(args)
    if args.command == "evidence":
        return run_evidence(args)
    try:
        cluster = cluster_settings(args)
        policy = args.policy.read_bytes() if getattr(args, "policy", None) else None
    except (ClusterError, OSError) as exc:
        print(f"gavel: error: {printable(exc)}", file=sys.stderr, flush=True)
        return 2
    if args.command == "serve":
        served = Settings(
            hold_checkpoints=True,
            data_dir=args.data or Path("gavel-data"),
            database_url=args.db,
            host=args.host,
            port=args.port,
            demo=False,
            bids_per_second=args.bids_per_second,
            connections_per_address=args.connections_per_address,
            write_limits=WriteLimits.off() if args.no_write_limits else WriteLimits(),
            policy=policy,
            cluster=cluster,
            metrics_port=args.metrics_port,
            metrics_host=args.metrics_host,
        )
        try:
            run_serving(run_server(served), "gavel serve")
        except EXPECTED_ERRORS as exc:
            print(f"gavel: error: {printable(exc)}", file=sys.stderr, flush=True)
            return 1
        return 0
    settings = Settings(
        data_dir=args.data,
        database_url=args.db,
        host=args.host,
        port=args.port,
        bots=args.bots,
        duration=args.duration,
        seed=args.seed,
        speed=args.speed,
        cluster=cluster,
        hold_checkpoints=True,
    )
    try:
        if args.fresh:
            if args.db:
                raise DemoError("--fresh deletes a data directory; with --db, drop the database")
            if wipe_demo_data(args.data):
                print(f"gavel demo: deleted {args.data} (--fresh)", flush=True)
        print(run_serving(run_demo(settings, notaries=args.notaries), "gavel demo"), flush=True)
    except EXPECTED_ERRORS as exc:
        print(f"gavel: error: {printable(exc)}", file=sys.stderr, flush=True)
        return 1
    return 0
