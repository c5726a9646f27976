"""Helpers for the multi-instance tests: instances of one cluster on one PostgreSQL schema."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

from auction.cluster import ClusterSettings
from auction.web import SERVICE, Settings, create_app
from auction.web.app import CLUSTER, GATEWAY, STORE


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Instance:
    name: str
    app: web.Application
    url: str

    @property
    def service(self) -> Any:
        return self.app[SERVICE]

    @property
    def cluster(self) -> Any:
        return self.app[CLUSTER]

    @property
    def gateway(self) -> Any:
        return self.app[GATEWAY]


def cluster_settings(name: str, port: int, redis_url: str | None) -> ClusterSettings:
    return ClusterSettings(
        instance=name,
        url=f"http://127.0.0.1:{port}",
        redis_url=redis_url,
        heartbeat_s=0.2,
        orphan_grace_s=0.6,
        dead_after_s=1.5,
    )


@contextlib.asynccontextmanager
async def instance(
    tmp_path: Path, name: str, database_url: str, redis_url: str | None, **overrides: Any
) -> AsyncIterator[Instance]:
    port = free_port()
    settings = Settings(
        data_dir=tmp_path / name,
        database_url=database_url,
        port=port,
        demo=False,
        cluster=cluster_settings(name, port, redis_url),
        **overrides,
    )
    app = create_app(settings)
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", port).start()
        yield Instance(name, app, f"http://127.0.0.1:{port}")
    finally:
        await runner.cleanup()


async def wait_written(instances: list[Instance], *lots: str, timeout: float = 10.0) -> None:
    """Until each lot is written by one of `instances`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        if all(any(i.service.leads(lot) for i in instances) for lot in lots):
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"lots {lots} got no writer in {timeout} s")


async def wait_same(instances: list[Instance], timeout: float = 10.0) -> int:
    """Until every instance applied the whole ledger; returns its size."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    first = instances[0]
    while loop.time() < deadline:
        end = int(await first.service.read(first.app[STORE].ledger_end))
        if all(i.cluster.applied >= end for i in instances):
            return end
        await asyncio.sleep(0.05)
    raise AssertionError("the instances did not catch up with the ledger")


class InstanceProcess:
    """`gavel serve --instance NAME` as a separate process (killed with SIGKILL in tests)."""

    def __init__(self, name: str, database_url: str, redis_url: str | None, log: Path) -> None:
        self.name = name
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        self.command = [
            sys.executable,
            "-c",
            "from auction.cli import main; raise SystemExit(main())",
            "serve",
            "--db",
            database_url,
            "--port",
            str(self.port),
            "--instance",
            name,
            "--bids-per-second",
            "1000",
            "--no-write-limits",
        ]
        if redis_url is not None:
            self.command += ["--redis", redis_url]
        self.process: asyncio.subprocess.Process | None = None
        self._drain: asyncio.Task[None] | None = None

    async def start(self, timeout: float = 30.0) -> None:
        with self.log.open("ab") as err:
            self.process = await asyncio.create_subprocess_exec(
                *self.command,
                stdout=asyncio.subprocess.PIPE,
                stderr=err,
                start_new_session=True,
                env={**os.environ, "GAVEL_LOG_LEVEL": "INFO"},
            )
        assert self.process.stdout is not None
        stdout = self.process.stdout

        async def ready() -> None:
            while True:
                line = await stdout.readline()
                if not line:
                    raise AssertionError(f"instance {self.name} exited; see {self.log}")
                if b"serving http" in line:
                    return

        await asyncio.wait_for(ready(), timeout)

        async def drain() -> None:
            while await stdout.read(65536):
                pass

        self._drain = asyncio.get_running_loop().create_task(drain())

    def sigkill(self) -> None:
        if self.process is not None and self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.process.pid, signal.SIGKILL)

    async def stop(self) -> None:
        process = self.process
        if process is None:
            return
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), 20)
            except TimeoutError:
                self.sigkill()
        await process.wait()
        if self._drain is not None:
            self._drain.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._drain


@contextlib.asynccontextmanager
async def processes(*members: InstanceProcess) -> AsyncIterator[None]:
    try:
        for member in members:  # in turn: the first makes the keys and secrets
            await member.start()
        yield
    finally:
        await asyncio.gather(*(m.stop() for m in members if m.process is not None))


class RedisProcess:
    """A Redis server of the test's own (stopped and restarted by the test), no persistence."""

    def __init__(self, log: Path) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [
                    "redis-server",
                    "--port",
                    str(self.port),
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as probe,
            ):
                probe.sendall(b"PING\r\n")
                if probe.recv(16).startswith(b"+PONG"):
                    return
            time.sleep(0.05)
        raise AssertionError("redis-server did not start")

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None
