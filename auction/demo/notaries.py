"""The demo's notaries: their data directories, policy and processes (`gavel demo` runs three).

Blocking helpers (`prepare_notaries`, `free_port`) and the processes' start and stop.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import signal
import socket
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from chain import (
    ChainError,
    CosignatureVerifier,
    Ed25519Verifier,
    Policy,
    PolicyLog,
    Threshold,
    WitnessRule,
    format_policy,
    parse_policy,
    parse_vkey,
)
from notary.datadir import KEY_FILE, DataDir, init_data_dir
from notary.errors import NotaryError

from ..service import ServiceError


class DemoError(ServiceError):
    """The demo cannot run as asked (for instance the port is taken)."""


#: The demo's notaries and quorum (ledger spec section 5: 2 of 3 in the demo).
DEMO_NOTARIES = 3
DEMO_QUORUM = 2

#: Seconds a notary process has to start, and to stop after SIGTERM before it is killed.
NOTARY_START_TIMEOUT = 30.0
NOTARY_STOP_TIMEOUT = 10.0


_PR_SET_PDEATHSIG = 1


def _end_with_parent() -> None:
    """In the notary child before it runs: on Linux, be sent SIGTERM when the demo dies, even
    by SIGKILL (a killed demo would otherwise leave its notaries running on their ports)."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


@dataclass(slots=True)
class DemoNotary:
    """One notary of the demo: its key name, data directory, loopback port and process."""

    name: str
    vkey: str
    directory: Path
    port: int
    process: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def free_port(preferred: int | None = None) -> int:
    """`preferred` if it can be bound on 127.0.0.1 now, else a free port."""
    for port in (preferred, 0):
        if port is None:
            continue
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return int(probe.getsockname()[1])
    raise DemoError("no free port on 127.0.0.1")


def _previous_ports(policy_file: Path) -> dict[str, int]:
    """The notary ports of an earlier run's policy (reused when still free)."""
    try:
        policy = parse_policy(policy_file.read_bytes())
    except (OSError, ChainError):
        return {}
    ports: dict[str, int] = {}
    for witness in policy.witnesses:
        if witness.url and witness.url.startswith("http://127.0.0.1:"):
            with contextlib.suppress(ValueError):
                ports[witness.name] = int(witness.url.rsplit(":", 1)[1].strip("/"))
    return ports


def prepare_notaries(
    data_dir: Path, log_vkey: str, count: int = DEMO_NOTARIES, quorum: int = DEMO_QUORUM
) -> tuple[list[DemoNotary], bytes]:
    """Create (or, on a restart, reuse) `count` notary data directories under
    `data_dir/notaries/n1..`, each with its own key, pick loopback ports, and return them with
    the tlog-policy naming the log key `log_vkey`, the notaries (vkey and URL) and the quorum
    `quorum` of them. Blocking (file I/O)."""
    log_verifier = parse_vkey(log_vkey)
    if not isinstance(log_verifier, Ed25519Verifier):
        raise DemoError("the log key is not an Ed25519 key")
    ports = _previous_ports(data_dir / "policy")
    notaries: list[DemoNotary] = []
    witnesses: list[WitnessRule] = []
    for index in range(1, count + 1):
        directory = data_dir / "notaries" / f"n{index}"
        try:
            if (directory / KEY_FILE).exists():
                name, vkey = DataDir(directory).identity()
            else:
                signer = init_data_dir(directory, f"notary{index}.gavel.demo")
                name, vkey = signer.name, signer.vkey
        except NotaryError as exc:
            raise DemoError(f"notary n{index}: {exc}") from exc
        verifier = parse_vkey(vkey)
        if not isinstance(verifier, CosignatureVerifier):
            raise DemoError(f"{directory}: not a cosignature key")
        notary = DemoNotary(name, vkey, directory, free_port(ports.get(name)))
        notaries.append(notary)
        witnesses.append(WitnessRule(name, verifier, notary.url))
    group = Threshold("notaries", quorum, tuple(witnesses))
    policy = Policy((PolicyLog(log_verifier),), tuple(witnesses), group, (group,))
    return notaries, format_policy(policy)


async def start_notaries(notaries: Sequence[DemoNotary], log_url: str, policy: Path) -> None:
    """Start `gavel notary serve` for each notary (separate processes) and wait until each
    listens. On failure the ones started are stopped and `DemoError` is raised."""
    try:
        await asyncio.gather(*(_start_notary(notary, log_url, policy) for notary in notaries))
    except BaseException:
        await stop_notaries(notaries)
        raise


async def _start_notary(notary: DemoNotary, log_url: str, policy: Path) -> None:
    command = [
        sys.executable, "-m", "auction.cli", "notary", "serve", "--dir", str(notary.directory),
        "--port", str(notary.port), "--log", log_url, "--policy", str(policy),
    ]  # fmt: skip
    log_file = open(notary.directory / "stderr.log", "ab")  # noqa: SIM115 - the child owns it
    try:
        notary.process = await asyncio.create_subprocess_exec(
            *command,
            stdout=asyncio.subprocess.PIPE,
            stderr=log_file,
            env=dict(os.environ),
            start_new_session=True,  # Ctrl-C reaches the demo, which stops them in order
            preexec_fn=_end_with_parent,
        )
    finally:
        log_file.close()
    assert notary.process.stdout is not None
    try:
        line = await asyncio.wait_for(notary.process.stdout.readline(), NOTARY_START_TIMEOUT)
    except TimeoutError:
        line = b""
    if b" on http://" not in line:
        raise DemoError(
            f"notary {notary.name} did not start (see {notary.directory / 'stderr.log'})"
        )


async def stop_notaries(notaries: Sequence[DemoNotary]) -> None:
    """SIGTERM every running notary, wait, and kill those still running after a timeout."""
    await asyncio.gather(*(_stop_notary(notary) for notary in notaries))


async def _stop_notary(notary: DemoNotary) -> None:
    process, notary.process = notary.process, None
    if process is None or process.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        process.send_signal(signal.SIGTERM)
    try:
        await asyncio.wait_for(process.wait(), NOTARY_STOP_TIMEOUT)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()
