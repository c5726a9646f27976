"""`gavel`: the command line (STYLE rule 12: `main(argv=None)`, catch only our base errors).

    gavel demo [--data DIR] [--db URL] [--host 127.0.0.1] [--port 8080] [--bots N]
               [--duration SECONDS] [--seed N] [--speed F] [--fresh] [--notaries N]
               [--instance NAME [--redis URL] [--advertise URL]]
    gavel serve (--data DIR | --db URL) [--host 127.0.0.1] [--port 8080] [--policy FILE]
                [--instance NAME [--redis URL] [--advertise URL]]
    gavel ledger export (--data DIR | --db URL | --url URL) --out OUT [--all-receipts] [--force]
    gavel evidence LOT (--data DIR | --db URL | --url URL) --out OUT [--with-recording]

Without `--duration` the demo keeps a living catalogue (`auction.demo.living`: the schedule's
start, seed and speed in DIR/demo-schedule.json, continued on a restart; `--fresh` deletes DIR
first) and serves until SIGINT or SIGTERM, then shuts down cleanly; with `--duration` alone it
runs the short showcase catalogue that long (`--speed` with it: the living catalogue). Either
way it prints a summary read back from storage and exits 0. The demo runs `--notaries` notary
processes (default 3; keys and state in DIR/notaries/n1..) and writes
DIR/policy with the log key, the notaries and a quorum of 2: a checkpoint is published only
once two of them co-signed it.
`gavel ledger export` writes the ledger as a static, verified tlog-tiles tree with its policy,
every published checkpoint and receipts for every sale (`auction.ledger_export`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import logging
import os
import signal
import sys
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from chain import ChainError, format_time
from notary.cli import positive_int
from notary.cli import register as register_notary
from notary.cli import run as run_notary

from .accounts import AccountError, AccountStore, Role
from .audit_cli import register as register_audit
from .audit_cli import run as run_audit
from .cluster import ClusterError, ClusterSettings
from .config import ConfigError, subcommand_parser, with_config
from .demo.living import wipe_demo_data
from .demo.showcase import (
    DEMO_NOTARIES,
    DEMO_QUORUM,
    DemoError,
    DemoNotary,
    free_port,
    prepare_notaries,
    start_notaries,
    stop_notaries,
    summary,
)
from .errors import GavelError
from .evidence.cli import register as register_evidence
from .evidence.cli import run as run_evidence
from .gateway import BIDS_PER_SECOND
from .ledger_export import ExportError, export_ledger, open_source
from .logs import LOG_FORMATS, LOG_LEVELS, AccessLogger, configure
from .printable import escape_log_output, printable
from .storage import POLICY_FILE, SQLITE_FILE, Storage, StorageError, system_clock
from .throttle import WriteLimits
from .web import DRIVERS, SERVICE, Settings, create_app
from .web.app import GATEWAY, LIVING, METRICS_PORT
from .web.limits import GuardedRunner
from .web.ws import MAX_CONNECTIONS_PER_ADDRESS

#: Seconds the demo waits at the end for its last checkpoint to be co-signed and published.
SETTLE_TIMEOUT = 10.0

#: The errors `main` turns into a message and exit status 1; anything else is a bug.
EXPECTED_ERRORS = (GavelError,)

#: The same for `gavel ledger ...` (a chain error is a ledger that does not verify).
LEDGER_ERRORS = (ExportError, StorageError, ChainError)


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
        "--port", type=_port, default=8080, help="port to listen on; 0 picks a free one"
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
    _add_cluster_options(serve)
    _add_cluster_options(demo)
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
    _add_ledger_commands(commands)
    register_notary(commands)
    register_audit(commands)
    register_evidence(commands)
    serve.add_argument(
        "--metrics-port",
        type=_port,
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


def _add_cluster_options(command: argparse.ArgumentParser) -> None:
    group = command.add_argument_group(
        "several instances",
        "run this server as one instance of several on one PostgreSQL database (--db): each "
        "lot is written by one instance at a time, any instance serves any client "
        "(README: Running at scale)",
    )
    group.add_argument(
        "--instance", metavar="NAME", help="this instance's name (a-z, 0-9, '-'), unique"
    )
    group.add_argument(
        "--redis",
        metavar="URL",
        help="Redis for lot updates between instances, e.g. redis://127.0.0.1:6379/0 "
        "(without it, instances read new entries from PostgreSQL every 0.25 s)",
    )
    group.add_argument(
        "--advertise",
        metavar="URL",
        help="where the other instances reach this one (default: http://HOST:PORT)",
    )


def _cluster_settings(args: argparse.Namespace) -> ClusterSettings | None:
    """The cluster settings of `serve`/`demo`; raises `ClusterError` for a wrong combination."""
    if args.instance is None:
        if args.redis is not None or args.advertise is not None:
            raise ClusterError("--redis and --advertise need --instance NAME")
        return None
    if not args.db or not str(args.db).startswith("postgresql"):
        raise ClusterError("--instance needs --db postgresql://... (one database for all)")
    if args.port == 0 and args.advertise is None:
        raise ClusterError("--instance needs a fixed --port (or --advertise URL)")
    url = args.advertise or f"http://{args.host}:{args.port}"
    return ClusterSettings(instance=args.instance, url=url, redis_url=args.redis)


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
    export.add_argument(
        "--token",
        default=os.environ.get("GAVEL_TOKEN"),
        metavar="TOKEN",
        help="with --url: an auditor session (`gavel staff --role auditor`) to read the sealed "
        "entries of open lots (default: $GAVEL_TOKEN)",
    )
    export.add_argument("--out", type=Path, required=True, metavar="OUT", help="where to write")
    export.add_argument(
        "--all-receipts", action="store_true", help="write a receipt for every entry"
    )
    export.add_argument("--force", action="store_true", help="replace a non-empty OUT")


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
        return _ledger_main(args)
    if args.command == "staff":
        return _staff_main(args)
    if args.command == "notary":
        return run_notary(args)
    if args.command == "audit":
        return run_audit(args)
    if args.command == "evidence":
        return run_evidence(args)
    try:
        cluster = _cluster_settings(args)
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
            asyncio.run(run_server(served))
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
        print(asyncio.run(run_demo(settings, notaries=args.notaries)), flush=True)
    except EXPECTED_ERRORS as exc:
        print(f"gavel: error: {printable(exc)}", file=sys.stderr, flush=True)
        return 1
    return 0


def _staff_main(args: argparse.Namespace) -> int:
    """`gavel staff`: a staff session in the server's accounts table."""
    if args.data is not None and not (args.data / SQLITE_FILE).exists():
        print(f"gavel: error: no gavel database in {args.data}", file=sys.stderr, flush=True)
        return 1
    try:
        accounts = AccountStore.open(args.db or args.data)
        try:
            now = system_clock()
            account = accounts.create_account(None, now)
            token, expires = accounts.create_session(account, Role(args.role), now)
        finally:
            accounts.close()
    except AccountError as exc:
        print(f"gavel: error: {printable(exc)}", file=sys.stderr, flush=True)
        return 1
    print(f"gavel staff: {args.role} session for {account}, valid until {format_time(expires)}")
    print(f"token {token}")
    if args.role == Role.AUCTIONEER:
        print(f"console /console#token={token}")
    elif args.role == Role.ADMIN:
        print(f"staff sessions /console/staff#token={token}")
    else:
        print(f"use it as: Authorization: Bearer {token}")
    return 0


def _ledger_main(args: argparse.Namespace) -> int:
    """`gavel ledger export`: the only ledger command so far."""
    try:
        source = open_source(data=args.data, db=args.db, url=args.url, token=args.token)
        try:
            result = export_ledger(
                source, args.out, all_receipts=args.all_receipts, force=args.force
            )
        finally:
            source.close()
    except LEDGER_ERRORS as exc:
        print(f"gavel: error: {printable(exc)}", file=sys.stderr, flush=True)
        return 1
    print(
        f"gavel ledger export: {result.origin}, {result.size} entries, {result.checkpoints} "
        f"checkpoints, {result.receipts} receipts ({result.sales} sales) written to {result.out}",
        flush=True,
    )
    return 0


async def run_server(settings: Settings) -> None:
    """`gavel serve`: serve until SIGINT or SIGTERM, then shut down cleanly."""
    stop = asyncio.Event()
    with _stop_on_signals(stop):
        app = create_app(settings)
        runner = GuardedRunner(app, handle_signals=False, access_log_class=AccessLogger)
        try:
            await runner.setup()
            port = await _listen(runner, settings)
            await _announce(app, "gavel serve", settings.host, port)
            metrics_port = app.get(METRICS_PORT)
            if metrics_port is not None:
                where = f"http://{settings.metrics_host}:{metrics_port}/metrics"
                print(f"gavel serve: metrics {where}", flush=True)
            print("gavel serve: press Ctrl-C to stop", flush=True)
            await stop.wait()
        finally:
            await runner.cleanup()


async def _listen(runner: web.AppRunner, settings: Settings) -> int:
    """Listen, then let the checkpoints start (the notaries fetch the entries from here)."""
    site = web.TCPSite(runner, settings.host, settings.port)
    try:
        await site.start()
    except OSError as exc:
        where = f"{settings.host}:{settings.port}"
        raise DemoError(f"cannot listen on {where}: {exc.strerror or exc}") from exc
    runner.app[SERVICE].release_checkpoints()
    return int(runner.addresses[0][1])


async def _announce(app: web.Application, prefix: str, host: str, port: int) -> None:
    """Print the URL, then the console URL with a fresh auctioneer session (I6)."""
    print(f"{prefix}: serving http://{host}:{port}/", flush=True)
    _, token, _ = await app[GATEWAY].create_staff_session(Role.AUCTIONEER)
    print(f"{prefix}: console http://{host}:{port}/console#token={token}", flush=True)


async def run_demo(settings: Settings, *, notaries: int = 0) -> str:
    """Serve the demo until SIGINT/SIGTERM or `settings.duration` seconds, shut down cleanly,
    and return the summary read back from storage.

    With `notaries` > 0: first make (or reuse) the notaries' keys under `DATA/notaries/`, write
    `DATA/policy` (log key, notaries, quorum min(notaries, 2)), start one `gavel notary serve`
    process per notary (on the port the server will use), then the server; at the end, stop
    the bots, let the last checkpoint be co-signed and published, stop the server, then the
    notaries (SIGTERM, killed after a timeout)."""
    stop = asyncio.Event()
    demo_notaries: list[DemoNotary] = []
    with _stop_on_signals(stop):  # installed first: a signal at any point means "shut down"
        async with _notaries_stopped(demo_notaries):
            if notaries:
                prepared, policy = await asyncio.to_thread(_prepare_notaries, settings, notaries)
                demo_notaries.extend(prepared)
                port = settings.port or await asyncio.to_thread(free_port)  # the notaries need it
                settings = dataclasses.replace(settings, policy=policy, port=port)
                host = "127.0.0.1" if settings.host in ("", "0.0.0.0", "::") else settings.host
                log_url = f"http://{host}:{port}"
                await start_notaries(demo_notaries, log_url, settings.data_dir / POLICY_FILE)
            app = create_app(settings)
            runner = GuardedRunner(app, handle_signals=False)
            try:
                await runner.setup()
                port = await _listen(runner, settings)
                await _announce(app, "gavel demo", settings.host, port)
                for notary in demo_notaries:
                    print(f"gavel demo: notary {notary.name} on {notary.url}", flush=True)
                living = app.get(LIVING)
                if living is not None:
                    print(f"gavel demo: living catalogue: {living.describe()}", flush=True)
                    print(f"gavel demo: data in {settings.data_dir.resolve()}", flush=True)
                if settings.duration is None:
                    print("gavel demo: press Ctrl-C to stop", flush=True)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), settings.duration)
                if demo_notaries:  # the bots stop, the last entries get co-signed and published
                    await app[DRIVERS].stop()
                    await app[SERVICE].settle(SETTLE_TIMEOUT)
            finally:
                await runner.cleanup()
    return await asyncio.to_thread(_read_summary, settings, demo_notaries)


@contextlib.asynccontextmanager
async def _notaries_stopped(notaries: Sequence[DemoNotary]) -> AsyncIterator[None]:
    """Stop the demo's notary processes (those started) when the block ends, however."""
    try:
        yield
    finally:
        await stop_notaries(notaries)


def _prepare_notaries(settings: Settings, count: int) -> tuple[list[DemoNotary], bytes]:
    """The demo's notaries and policy (blocking): the log key comes from the store (created on
    its first opening); the policy is written to `DATA/policy` for the notary processes."""
    with Storage.open(settings.storage_target, signed_bids=settings.signed_bids) as store:
        house = store.house
        assert house is not None  # opened writable
        notaries, policy = prepare_notaries(
            settings.data_dir, house.vkey, count, min(count, DEMO_QUORUM)
        )
        store.use_policy(policy)
    path = settings.data_dir / POLICY_FILE
    if not path.exists() or path.read_bytes() != policy:  # --db: no data directory
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(policy)
    return notaries, policy


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


def _read_summary(settings: Settings, notaries: Sequence[DemoNotary] = ()) -> str:
    with Storage.open(settings.storage_target, read_only=True) as store:
        return summary(store.load(), store.counts(), store.location, notaries, store.final_sales())


if __name__ == "__main__":
    sys.exit(main())
