"""Child processes that print a line when they are ready: `gavel serve`, `gavel notary serve`,
the video development server. Stdout is read on a thread until the ready line, then drained
into the log (with stderr), so a chatty child never blocks on a full pipe."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO

ROOT = Path(__file__).resolve().parents[2]
#: What `gavel serve` prints once it listens: its console URL with the console token.
TOKEN_LINE = r"#token=(\S+)"


class StartError(RuntimeError):
    """A child process exited or did not say it was ready in time (the message ends with the
    tail of its log)."""


def free_port() -> int:
    """A TCP port of 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def gavel_command(*arguments: str, profile: str | None = None) -> list[str]:
    """`python -m auction.cli ARGUMENTS`; with `profile`, under cProfile writing that file
    when the process stops (SIGTERM): timed by wall time, or with BENCH_PROFILE_CLOCK=cpu by
    the main thread's CPU time (`scripts.harness.profiled`)."""
    if profile and os.environ.get("BENCH_PROFILE_CLOCK") == "cpu":
        profiled = ["-m", "scripts.harness.profiled", profile, "auction.cli"]
        return [sys.executable, *profiled, *arguments]
    profiler = ["-m", "cProfile", "-o", profile] if profile else []
    return [sys.executable, *profiler, "-m", "auction.cli", *arguments]


class ChildProcess:
    """One child process. `start` waits for its ready line; `stop` sends SIGTERM and, after
    `timeout`, SIGKILL; `sigkill` kills it at once. Its output (stdout and stderr) goes to
    `log`; with `echo`, to this process's stdout instead, each line after `[ECHO] `; with
    neither, it is dropped."""

    def __init__(
        self,
        name: str,
        command: Sequence[str],
        log: Path | None,
        *,
        cwd: Path = ROOT,
        new_session: bool = False,
        echo: str | None = None,
    ) -> None:
        self.name = name
        self.command = list(command)
        self.log = log
        self.cwd = cwd
        self.new_session = new_session
        self.echo = echo
        self.process: subprocess.Popen[bytes] | None = None
        self._drainer: threading.Thread | None = None

    def start(self, ready: str, timeout: float = 60.0) -> str:
        """Start it and return what the pattern `ready` matched in its output (group 1 if it
        has one); `StartError` if it exits or does not print it within `timeout` s."""
        if self.echo is not None:
            self.process = self._popen(subprocess.STDOUT)
        elif self.log is None:
            self.process = self._popen(subprocess.DEVNULL)
        else:
            with self.log.open("ab") as err:
                self.process = self._popen(err)
        stdout = self.process.stdout
        assert stdout is not None
        found: list[str] = []
        said = threading.Event()

        def drain() -> None:
            with contextlib.ExitStack() as stack:
                stack.enter_context(stdout)  # closed at the end of the output
                out = stack.enter_context(self.log.open("ab")) if self.log else None
                for raw in stdout:
                    if not said.is_set():
                        match = re.search(ready, raw.decode("utf-8", "replace"))
                        if match:
                            found.append(match.group(1) if match.groups() else match.group(0))
                            said.set()
                    if self.echo is not None:
                        text = raw.decode("utf-8", "replace").rstrip()
                        print(f"[{self.echo}] {text}", flush=True)
                    elif out is not None:
                        out.write(raw)
                        out.flush()
            said.set()

        self._drainer = threading.Thread(target=drain, name=f"stdout-{self.name}", daemon=True)
        self._drainer.start()
        if not said.wait(timeout) or not found:
            code = self.process.poll()
            self.sigkill()
            self.process.wait()
            state = "did not start" if code is None else f"exited with {code}"
            raise StartError(f"{self.name} {state} in {timeout:.0f} s{self._tail()}")
        return found[0]

    def _popen(self, stderr: int | IO[bytes]) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            self.command,
            cwd=self.cwd,
            stdout=subprocess.PIPE,
            stderr=stderr,
            start_new_session=self.new_session,
        )

    def _tail(self) -> str:
        if self.log is None:
            return ""
        with contextlib.suppress(OSError):
            return (
                f" (see {self.log}); its log ends:\n" + self.log.read_text(errors="replace")[-2000:]
            )
        return ""

    @property
    def pid(self) -> int | None:
        """The process id while it runs; None before it starts and once it has ended."""
        process = self.process
        return process.pid if process is not None and process.poll() is None else None

    def alive(self) -> bool:
        return self.pid is not None

    def sigkill(self) -> None:
        pid = self.pid
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    def kill(self) -> int | None:
        """SIGKILL, then reap it; its exit status (None if it never started)."""
        self.sigkill()
        return self._reap()

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM, SIGKILL after `timeout` s, then reap it; its exit status."""
        process = self.process
        if process is not None and process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.sigkill()
        return self._reap()

    def _reap(self) -> int | None:
        process = self.process
        code = None if process is None else process.wait()
        if self._drainer is not None:
            self._drainer.join(5)
            self._drainer = None
        return code


class GavelServer(ChildProcess):
    """`gavel serve WHERE --host 127.0.0.1 --port PORT FLAGS` (WHERE: `--data DIR`, or
    `--db URL --instance NAME ...`). After `start`, `token` is the console token."""

    def __init__(
        self,
        where: Sequence[str],
        log: Path | None,
        *,
        flags: Sequence[str] = (),
        port: int | None = None,
        name: str = "gavel serve",
        profile: str | None = None,
        cwd: Path = ROOT,
        new_session: bool = False,
    ) -> None:
        self.port = port if port is not None else free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.token = ""
        listen = ["--host", "127.0.0.1", "--port", str(self.port)]
        command = gavel_command("serve", *where, *listen, *flags, profile=profile)
        super().__init__(name, command, log, cwd=cwd, new_session=new_session)

    def start(self, ready: str = TOKEN_LINE, timeout: float = 60.0) -> str:
        """Start it and wait for its console URL; returns (and keeps) the console token."""
        self.token = super().start(ready, timeout)
        return self.token


def wait_listening(port: int, timeout: float = 30.0) -> bool:
    """Wait until something accepts TCP connections on 127.0.0.1:`port`; False on timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port)):
            return True
        time.sleep(0.05)
    return False
