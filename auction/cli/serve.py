"""`gavel serve`: serve the auction until SIGINT or SIGTERM; the options and the
announcements `gavel demo` shares with it.
"""

from __future__ import annotations

import argparse
import asyncio

from aiohttp import web

from notary.cli import stop_on_signals

from ..accounts import Role
from ..cluster import ClusterError, ClusterSettings
from ..demo.showcase import DemoError
from ..logs import AccessLogger
from ..web import SERVICE, Settings, create_app
from ..web.app import GATEWAY, METRICS_PORT
from ..web.limits import GuardedRunner


def add_cluster_options(command: argparse.ArgumentParser) -> None:
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


def cluster_settings(args: argparse.Namespace) -> ClusterSettings | None:
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


async def run_server(settings: Settings) -> None:
    """`gavel serve`: serve until SIGINT or SIGTERM, then shut down cleanly."""
    stop = asyncio.Event()
    with stop_on_signals(stop):
        app = create_app(settings)
        runner = GuardedRunner(app, handle_signals=False, access_log_class=AccessLogger)
        try:
            await runner.setup()
            port = await listen(runner, settings)
            await announce(app, "gavel serve", settings.host, port)
            metrics_port = app.get(METRICS_PORT)
            if metrics_port is not None:
                where = f"http://{settings.metrics_host}:{metrics_port}/metrics"
                print(f"gavel serve: metrics {where}", flush=True)
            print("gavel serve: press Ctrl-C to stop", flush=True)
            await stop.wait()
        finally:
            await runner.cleanup()


async def listen(runner: web.AppRunner, settings: Settings) -> int:
    """Listen, then let the checkpoints start (the notaries fetch the entries from here)."""
    site = web.TCPSite(runner, settings.host, settings.port)
    try:
        await site.start()
    except OSError as exc:
        where = f"{settings.host}:{settings.port}"
        raise DemoError(f"cannot listen on {where}: {exc.strerror or exc}") from exc
    runner.app[SERVICE].release_checkpoints()
    return int(runner.addresses[0][1])


async def announce(app: web.Application, prefix: str, host: str, port: int) -> None:
    """Print the URL, then the console URL with a fresh auctioneer session (I6)."""
    print(f"{prefix}: serving http://{host}:{port}/", flush=True)
    _, token, _ = await app[GATEWAY].create_staff_session(Role.AUCTIONEER)
    print(f"{prefix}: console http://{host}:{port}/console#token={token}", flush=True)
