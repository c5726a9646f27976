"""Notaries for a server under test: their keys and the server's policy (as `gavel demo`
makes them), `gavel notary serve` processes, and a proxy that delays their answers."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

from auction.demo.showcase import DEMO_QUORUM, DemoNotary, prepare_notaries
from auction.storage import POLICY_FILE, Storage

from .processes import ChildProcess, gavel_command

#: What `gavel notary serve` prints once it listens (group 1: its URL).
NOTARY_READY = r" on (http://\S+)"


def prepare(
    data: Path, count: int, quorum: int = DEMO_QUORUM, *, signed_bids: bool = False
) -> list[DemoNotary]:
    """Create the store in `data` and, for `count` notaries, their keys and `DATA/policy`
    naming them with a quorum of `quorum` (nothing more without notaries)."""
    with Storage.open(data, signed_bids=signed_bids) as store:
        if not count:
            return []
        assert store.house is not None
        prepared, policy = prepare_notaries(data, store.house.vkey, count, quorum)
        store.use_policy(policy)
    (data / POLICY_FILE).write_bytes(policy)
    return prepared


def notary_process(
    notary: DemoNotary, port: int, server_url: str, policy: Path, log: Path
) -> ChildProcess:
    """`gavel notary serve` for `notary` on `port`, co-signing the log at `server_url`, in a
    session of its own, its output to `log`. Start it with `start(NOTARY_READY)`."""
    command = gavel_command(
        "notary", "serve", "--dir", str(notary.directory), "--port", str(port),
        "--log", server_url, "--policy", str(policy),
    )  # fmt: skip
    return ChildProcess(notary.name, command, log, new_session=True)


class NotaryProxy:
    """A loopback TCP proxy in front of one notary: the server's requests go through as they
    are, the notary's answers are held `delay` seconds. `on_request` / `on_answer` are called
    (synchronously) when bytes go one way or the other; `in_flight` counts requests whose
    answer has not been forwarded yet."""

    def __init__(self, listen_port: int, target_port: int, delay: float) -> None:
        self.listen_port = listen_port
        self.target_port = target_port
        self.delay = delay
        self.in_flight = 0
        self.requests = 0
        self.on_request: Callable[[], None] | None = None
        self.on_answer: Callable[[], None] | None = None
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.listen_port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.close()
            self._tasks.discard(task)
            return
        waiting = [0]

        async def upstream() -> None:
            while data := await reader.read(65536):
                waiting[0] += 1
                self.in_flight += 1
                self.requests += 1
                if self.on_request is not None:
                    self.on_request()
                up_writer.write(data)
                await up_writer.drain()

        async def downstream() -> None:
            while data := await up_reader.read(65536):
                await asyncio.sleep(self.delay)
                writer.write(data)
                await writer.drain()
                if waiting[0]:
                    waiting[0] -= 1
                    self.in_flight -= 1
                if self.on_answer is not None:
                    self.on_answer()

        try:
            await asyncio.gather(upstream(), downstream())
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            self.in_flight -= waiting[0]
            for w in (writer, up_writer):
                w.close()
            self._tasks.discard(task)
