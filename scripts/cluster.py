"""`scripts/cluster`: the demo on several instances of one auction, on this machine.

Instance `a` runs `gavel demo` (its lots, bots, scripted clerk, notaries and live video) on
`--port`; instances `b`, `c`, ... run `gavel serve` on the following ports, all on one
PostgreSQL schema (made fresh, `gavel_cluster` by default) with Redis between them. Any
instance serves any page, bid or video: open several in a browser. Lots are spread over the
instances; stop one (Ctrl-C in its own terminal is not possible here: use `kill -9 PID`, the
PIDs are printed) and another takes its lots over within about a second.

Stops after `--duration` seconds (the demo then prints its summary) or on Ctrl-C.
Loopback only.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import string
from pathlib import Path
from urllib.parse import quote

import psycopg

from .harness.processes import ChildProcess, StartError, gavel_command


def fresh_schema(admin_url: str, schema: str, keep: bool) -> str:
    """Create `schema` (dropping an old one unless `keep`); the URL that uses it."""
    with psycopg.connect(admin_url, autocommit=True) as connection:
        if not keep:
            connection.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        connection.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
    separator = "&" if "?" in admin_url else "?"
    return f"{admin_url}{separator}options={quote(f'-csearch_path={schema}')}"


async def start(name: str, command: list[str]) -> ChildProcess:
    """Start instance `name` (its output echoed here, each line after `[name]`) and wait
    until it says it is serving."""
    member = ChildProcess(name, command, None, cwd=Path.cwd(), new_session=True, echo=name)
    try:
        await asyncio.to_thread(member.start, "serving http", 120.0)
    except StartError:
        raise SystemExit(f"cluster: instance {name} did not start") from None
    print(f"cluster: instance {name} is pid {member.pid}", flush=True)
    return member


async def run(args: argparse.Namespace) -> int:
    url = await asyncio.to_thread(fresh_schema, args.db, args.schema, args.keep)
    names = list(string.ascii_lowercase[: args.instances])
    common = ["--db", url, "--redis", args.redis, "--host", "127.0.0.1"]
    demo = [
        "demo",
        *common,
        "--instance",
        names[0],
        "--port",
        str(args.port),
        "--data",
        str(args.data),
        "--bots",
        str(args.bots),
        "--notaries",
        str(args.notaries),
    ]
    if args.duration is not None:
        demo += ["--duration", str(args.duration)]
    members: list[ChildProcess] = []
    code: int | None = None
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stopping.set)
    try:
        first = await start(names[0], gavel_command(*demo))
        members.append(first)
        for offset, name in enumerate(names[1:], start=1):
            serve = [
                "serve",
                *common,
                "--instance",
                name,
                "--port",
                str(args.port + offset),
                "--policy",
                str(args.data / "policy"),
            ]
            members.append(await start(name, gavel_command(*serve)))
        print(
            "cluster: "
            + ", ".join(f"{n} http://127.0.0.1:{args.port + i}/" for i, n in enumerate(names)),
            flush=True,
        )
        assert first.process is not None
        demo_done = asyncio.create_task(asyncio.to_thread(first.process.wait))
        stop_asked = asyncio.create_task(stopping.wait())
        await asyncio.wait({demo_done, stop_asked}, return_when=asyncio.FIRST_COMPLETED)
        stop_asked.cancel()
    finally:
        for member in reversed(members[1:]):  # the others first: the demo's summary is last
            await asyncio.to_thread(member.stop, 30.0)
        code = await asyncio.to_thread(members[0].stop, 120.0) if members else None
    return code or 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--instances", type=int, default=2, choices=range(1, 10))
    parser.add_argument(
        "--db",
        default="postgresql://postgres@127.0.0.1:5432/test",
        help="PostgreSQL database (default: %(default)s); a fresh schema in it is used",
    )
    parser.add_argument(
        "--schema", default="gavel_cluster", help="the schema (default: %(default)s)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the schema's data from last time")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    parser.add_argument(
        "--data", type=Path, default=Path("gavel-cluster"), help="keys, policy, video"
    )
    parser.add_argument("--port", type=int, default=8080, help="instance a's port; b: +1, ...")
    parser.add_argument("--bots", type=int, default=5)
    parser.add_argument("--notaries", type=int, default=3)
    parser.add_argument("--duration", type=float, help="run this long (seconds), then stop")
    return asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    raise SystemExit(main())
