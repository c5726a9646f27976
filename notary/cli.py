"""``gavel notary``: the operator's commands (STYLE rule 12).

    gavel notary init --dir D --name NAME
    gavel notary serve --dir D --port P --log URL --policy FILE [--peer URL ...]
    gavel notary status --dir D [--json]
    gavel notary evidence --dir D --out FILE

``init`` creates the key (``D/notary.key``, mode 0600) and prints the policy line
``witness <name> <vkey>`` (append the notary's URL to it). ``serve`` runs until SIGINT or
SIGTERM and exits 0. ``status`` shows the last co-signed size and root, the lag behind the log,
refusals with reasons, peers and conflicts. ``evidence`` exports everything kept as evidence as
one JSON file. Errors are :class:`~notary.errors.NotaryError`: a message and exit status 1.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import json
import logging
import os
import signal
import sys
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

from aiohttp import web

from .core import DEFAULT_MAX_INCREMENT, DEFAULT_MAX_SKEW_US
from .datadir import DataDir, evidence_export, init_data_dir, status_report
from .errors import NotaryError, NotaryStateError
from .server import METRICS_PORT, NODE, Settings, create_app

__all__ = ["register", "run", "run_serving"]

T = TypeVar("T")

#: The environment variable that chooses the servers' event loop: `auto` (the default: uvloop
#: when it is installed, else asyncio's own), `uvloop` or `asyncio`.
EVENT_LOOP_VARIABLE = "GAVEL_EVENT_LOOP"
_log = logging.getLogger("gavel.loop")


def event_loop_factory() -> tuple[str, Callable[[], asyncio.AbstractEventLoop] | None]:
    """The event loop the servers run on, as (what to log, a factory; None: asyncio's own).

    uvloop when it is installed (`GAVEL_EVENT_LOOP=asyncio` asks for asyncio's own loop);
    `GAVEL_EVENT_LOOP=uvloop` without uvloop installed falls back to asyncio with a warning."""
    wanted = os.environ.get(EVENT_LOOP_VARIABLE, "auto").strip().lower() or "auto"
    if wanted not in ("auto", "uvloop", "asyncio"):
        _log.warning("%s=%r is not auto, uvloop or asyncio: auto", EVENT_LOOP_VARIABLE, wanted)
        wanted = "auto"
    if wanted != "asyncio":
        try:
            uvloop = importlib.import_module("uvloop")
        except ImportError:
            if wanted == "uvloop":
                _log.warning("%s=uvloop but uvloop is not installed", EVENT_LOOP_VARIABLE)
        else:
            factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
            return f"uvloop {getattr(uvloop, '__version__', '')}".strip(), factory
    return "asyncio", None


def run_serving(main: Coroutine[Any, Any, T], who: str) -> T:
    """Run a server's `main` to the end on the loop `event_loop_factory` picks (shared with
    `gavel serve`), logging which one at start-up."""
    name, factory = event_loop_factory()
    _log.info("%s: event loop %s", who, name)
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(main)


def port_number(text: str) -> int:
    """An argparse type: a TCP port, 0 for a free one (shared with `gavel`)."""
    value = int(text)
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError("must be 0..65535 (0 picks a free port)")
    return value


def _positive(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError("must be a positive number")
    return value


def _non_negative(text: str) -> float:
    value = float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError("must be ≥ 0")
    return value


def positive_int(text: str) -> int:
    """An argparse type: an integer ≥ 1 (shared with `gavel`'s own options)."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be ≥ 1")
    return value


def register(subparsers: Any) -> None:
    """Add ``notary init|serve|status|evidence`` to ``gavel``'s subcommands.

    ``subparsers`` is what ``ArgumentParser.add_subparsers`` returned. The caller dispatches
    ``args.command == "notary"`` to :func:`run`.
    """
    notary = subparsers.add_parser(
        "notary",
        help="run a notary node that co-signs the ledger's checkpoints",
        description="A notary: a C2SP tlog-witness that also mirrors the log, checks every "
        "entry and replays the auction rules before it co-signs.",
    )
    commands = notary.add_subparsers(dest="notary_command", required=True, metavar="COMMAND")
    directory = {"type": Path, "required": True, "metavar": "D", "help": "data directory"}

    init = commands.add_parser("init", help="create a notary key and data directory")
    init.add_argument("--dir", **directory)
    init.add_argument(
        "--name", required=True, help="the notary's key name, e.g. notary1.example.org"
    )

    serve = commands.add_parser("serve", help="serve add-checkpoint until SIGINT or SIGTERM")
    serve.add_argument("--dir", **directory)
    serve.add_argument("--host", default="127.0.0.1", help="address (default: %(default)s)")
    serve.add_argument("--port", type=port_number, default=0, help="port; 0 picks a free one")
    serve.add_argument("--log", required=True, metavar="URL", help="the log's base URL")
    serve.add_argument(
        "--policy", type=Path, required=True, metavar="FILE", help="the tlog-policy file"
    )
    serve.add_argument(
        "--peer",
        action="append",
        default=[],
        metavar="URL",
        help="another notary to compare views with (besides the policy's witness URLs)",
    )
    serve.add_argument(
        "--peer-interval",
        type=_positive,
        default=5.0,
        metavar="SECONDS",
        help="how often to compare views (default: %(default)s)",
    )
    serve.add_argument(
        "--max-skew",
        type=_non_negative,
        default=DEFAULT_MAX_SKEW_US / 1_000_000,
        metavar="SECONDS",
        help="how far entry times may be ahead of this clock (default: %(default)s)",
    )
    serve.add_argument(
        "--fetch-timeout",
        type=_positive,
        default=10.0,
        metavar="SECONDS",
        help="timeout of each request to the log or a peer (default: %(default)s)",
    )
    serve.add_argument(
        "--max-increment",
        type=positive_int,
        default=DEFAULT_MAX_INCREMENT,
        metavar="N",
        help="most new entries accepted in one checkpoint (default: %(default)s)",
    )

    serve.add_argument(
        "--metrics-port",
        type=port_number,
        metavar="PORT",
        help="serve GET /metrics (Prometheus) on this admin port; default: not served",
    )
    serve.add_argument(
        "--metrics-host",
        default="127.0.0.1",
        metavar="HOST",
        help="address of the metrics port (default: %(default)s)",
    )
    status = commands.add_parser("status", help="show the notary's state and refusals")
    status.add_argument("--dir", **directory)
    status.add_argument("--json", action="store_true", help="print JSON")

    evidence = commands.add_parser("evidence", help="export refusals and conflicts as JSON")
    evidence.add_argument("--dir", **directory)
    evidence.add_argument(
        "--out", type=Path, required=True, metavar="FILE", help="output file ('-': stdout)"
    )


def run(args: argparse.Namespace) -> int:
    """Run the parsed ``gavel notary`` command; return the exit status."""
    logging.basicConfig(level=logging.WARNING, format="gavel: %(levelname)s %(name)s: %(message)s")
    try:
        if args.notary_command == "init":
            return _init(args)
        if args.notary_command == "serve":
            return _serve(args)
        if args.notary_command == "status":
            return _status(args)
        return _evidence(args)
    except NotaryError as exc:
        print(f"gavel notary: error: {exc}", file=sys.stderr, flush=True)
        return 1


def _init(args: argparse.Namespace) -> int:
    signer = init_data_dir(args.dir, args.name)
    print(f"gavel notary: key created in {args.dir} (keep notary.key secret)", file=sys.stderr)
    print(
        "gavel notary: add this line to the policy, followed by the notary's URL:", file=sys.stderr
    )
    print(f"witness {signer.name} {signer.vkey}", flush=True)
    return 0


def _serve(args: argparse.Namespace) -> int:
    try:
        policy = args.policy.read_bytes()
    except OSError as exc:
        raise NotaryStateError(f"cannot read the policy {args.policy}: {exc.strerror}") from exc
    settings = Settings(
        data_dir=args.dir,
        log_url=args.log,
        policy=policy,
        host=args.host,
        port=args.port,
        peers=tuple(args.peer),
        peer_interval=args.peer_interval,
        max_skew=args.max_skew,
        fetch_timeout=args.fetch_timeout,
        max_increment=args.max_increment,
        metrics_port=args.metrics_port,
        metrics_host=args.metrics_host,
    )
    run_serving(serve(settings), "gavel notary serve")
    return 0


async def serve(settings: Settings) -> None:
    """Serve until SIGINT or SIGTERM, then shut down cleanly."""
    stop = asyncio.Event()
    with stop_on_signals(stop):
        app = create_app(settings)
        runner = web.AppRunner(app, handle_signals=False)
        try:
            await runner.setup()
            site = web.TCPSite(runner, settings.host, settings.port)
            try:
                await site.start()
            except OSError as exc:
                where = f"{settings.host}:{settings.port}"
                raise NotaryStateError(f"cannot listen on {where}: {exc.strerror or exc}") from exc
            port = runner.addresses[0][1]
            node = app[NODE]
            print(
                f"gavel notary: {node.name} co-signs {node.trust.origin} "
                f"(size {node.state.size}) on http://{settings.host}:{port}/",
                flush=True,
            )
            metrics_port = app.get(METRICS_PORT)
            if metrics_port is not None:
                print(
                    f"gavel notary: metrics on http://{settings.metrics_host}:{metrics_port}"
                    "/metrics",
                    flush=True,
                )
            await stop.wait()
        finally:
            await runner.cleanup()


@contextlib.contextmanager
def stop_on_signals(stop: asyncio.Event) -> Iterator[None]:
    """Set `stop` on SIGINT or SIGTERM while inside the block (shared with `gavel`)."""
    loop = asyncio.get_running_loop()
    signals = (signal.SIGINT, signal.SIGTERM)
    for signum in signals:
        loop.add_signal_handler(signum, stop.set)
    try:
        yield
    finally:
        for signum in signals:
            loop.remove_signal_handler(signum)


def _status(args: argparse.Namespace) -> int:
    data_dir = DataDir(args.dir)
    name, vkey = data_dir.identity()
    with data_dir.open_store(read_only=True) as store:
        report = status_report(store, name=name, vkey=vkey)
    if args.json:
        print(json.dumps(report, indent=2, sort_keys=True), flush=True)
        return 0
    print(format_status(report), flush=True)
    return 0


def format_status(report: dict[str, Any]) -> str:
    """The human form of :func:`notary.datadir.status_report`."""
    lines = [
        f"notary      {report['name']}",
        f"vkey        {report['vkey']}",
        f"log         {report['origin'] or '(nothing co-signed yet)'}",
        f"co-signed   size {report['size']}, root {report['root']}, at {report['cosigned_at']}",
    ]
    if report["log_size_seen"] is None:
        lines.append("lag         unknown (no larger log size seen)")
    else:
        lines.append(
            f"lag         {report['lag']} (largest log size seen {report['log_size_seen']})"
        )
    lines.append(f"mirror      {report['mirrored_entries']} entries")
    lines.append(f"refusals    {report['refusals']}")
    for refusal in report["recent_refusals"]:
        where = f" step {refusal['step']}" if refusal["step"] else ""
        where += f" seq {refusal['seq']}" if refusal["seq"] is not None else ""
        lines.append(
            f"  {refusal['at']} {refusal['status']} {refusal['reason']}{where}: "
            f"{refusal['message']}"
        )
    lines.append(f"peers       {len(report['peers'])}")
    for peer in report["peers"]:
        lines.append(f"  {peer['url']} {peer['status']}: {peer['message']} ({peer['seen_at']})")
    lines.append(f"conflicts   {len(report['conflicts'])}")
    for conflict in report["conflicts"]:
        lines.append(
            f"  {conflict['at']} from {conflict['source']}: {conflict['reason']} "
            f"(evidence/{conflict['file']})"
        )
    return "\n".join(lines)


def _evidence(args: argparse.Namespace) -> int:
    data_dir = DataDir(args.dir)
    name, vkey = data_dir.identity()
    with data_dir.open_store(read_only=True) as store:
        document = evidence_export(data_dir, store, name=name, vkey=vkey)
        refusals, conflicts = store.refusal_count(), len(store.conflicts())
    if str(args.out) == "-":
        sys.stdout.buffer.write(document)
        sys.stdout.flush()
        return 0
    try:
        args.out.write_bytes(document)
    except OSError as exc:
        raise NotaryStateError(f"cannot write {args.out}: {exc.strerror}") from exc
    print(
        f"gavel notary: wrote {refusals} refusals and {conflicts} conflicts to {args.out}",
        flush=True,
    )
    return 0
