"""Fuzzing a real notary process over HTTP: ``POST /add-checkpoint`` (C2SP tlog-witness).

The parser and envelope checks are fuzzed in-process in `test_fuzz_notes.py`; this runs
`gavel notary serve` as a process on 127.0.0.1 beside a simulated log (`tests/notary_log.py`)
and posts mutated add-checkpoint bodies. Documented answers: 200 (a cosignature line), 400,
403, 404, 409 (with the notary's size), 413 and 422 as plain text; never a 500, never a
crash, and the notary keeps working afterwards (it co-signs the log's next checkpoint and
its ``/checkpoint`` verifies).
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import tempfile
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fuzz_kit import Check, bounded, mutated, run_fuzzer
from hypothesis import strategies as st
from notary_kit import LogServer, NotaryProcess, SimulatedLog, house_key

from chain import ChainError, open_checkpoint, parse_signature_lines
from notary import format_add_checkpoint

DOCUMENTED = (200, 400, 403, 404, 409, 413, 422)


class _NotaryThread:
    """A simulated log and a real notary process, owned by an event loop in a thread."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.log = SimulatedLog()
        self.notary: NotaryProcess | None = None
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None
        self.returncode: int | None = None
        self._thread = threading.Thread(target=self._run, name="fuzz-notary", daemon=True)

    def __enter__(self) -> _NotaryThread:
        self._thread.start()
        if not self._ready.wait(90) or self._error is not None:
            raise RuntimeError("the notary did not start") from self._error
        return self

    def __exit__(self, *exc: object) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(60)

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:
            self._error = exc
            self._ready.set()

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        self.log.grow(300)
        server = LogServer(self.log)
        log_url = await server.start()
        notary = NotaryProcess(self.folder / "notary", "notary1.example.org")
        self.notary = notary
        policy = self.folder / "policy"
        policy.write_bytes(self.log.make_policy([("notary1", notary.vkey, notary.url)], 1, log_url))
        try:
            await notary.start(log_url, policy)
            self._ready.set()
            await self._stop.wait()
            assert notary.process is not None
            self.returncode = notary.process.returncode  # None: still running
            await notary.stop()
        finally:
            await notary.kill()
            await server.stop()


def _post(url: str, body: bytes) -> tuple[int, str, bytes]:
    request = urllib.request.Request(
        url + "/add-checkpoint",
        data=body,
        method="POST",
        headers={"Content-Type": "text/plain; charset=utf-8"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.headers["Content-Type"], response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers["Content-Type"], error.read()


@contextlib.contextmanager
def notary_endpoint() -> Iterator[tuple[st.SearchStrategy[Any], Check]]:
    folder = Path(tempfile.mkdtemp(prefix="gavel-fuzz-notary-"))
    try:
        with _NotaryThread(folder) as running:
            log = running.log
            notary = running.notary
            assert notary is not None
            other = SimulatedLog(origin="other.example.org/log", key=house_key("other"))
            other.grow(5)
            seeds = [
                log.body(0, 100),
                log.body(0, 200),
                log.body(100, 300),
                log.body(0),
                format_add_checkpoint(0, [], log.checkpoint(300)),
                other.body(0),
            ]

            def check(body: bytes) -> None:
                with bounded(20.0, "POST /add-checkpoint"):
                    status, content_type, answer = _post(notary.url, body)
                assert status in DOCUMENTED, (status, answer[:300])
                assert content_type.startswith(("text/plain", "text/x.tlog.size")), content_type
                if status == 200:
                    parse_signature_lines(answer)
                if status == 409:
                    assert answer.rstrip(b"\n").isdigit()

            yield st.one_of(st.binary(max_size=400), mutated(seeds, max_ops=4)), check
            # Still working: a correct request from where the notary stands is co-signed.
            status, _, answer = _post(notary.url, log.body(0))
            if status == 409:
                status, _, answer = _post(notary.url, log.body(int(answer)))
            assert status == 200, (status, answer[:300])
            with urllib.request.urlopen(notary.url + "/checkpoint", timeout=30) as response:
                note = response.read()
            try:
                open_checkpoint(note, log.signer.verifier, [notary.signer.verifier])
            except ChainError as exc:
                raise AssertionError(f"the notary's checkpoint no longer verifies: {exc}") from exc
        assert running.returncode is None, "the notary process died during the fuzzing"
    finally:
        shutil.rmtree(folder, ignore_errors=True)


CONTEXT_FUZZERS = {"notary POST /add-checkpoint": notary_endpoint}


@pytest.mark.slow
def test_fuzz_notary_add_checkpoint_over_http() -> None:
    with notary_endpoint() as (strategy, check):
        run_fuzzer({"notary": (strategy, check)}, "notary", 150)
