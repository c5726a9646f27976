"""Steps 1, 2 and 7 of the shared pipeline (:mod:`auction.verify.pipeline`) per entry, in
worker processes (or in-process): chunks of entries and the pool that checks them."""

from __future__ import annotations

import multiprocessing
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Final

from chain import (
    ChainError,
    leaf_hash,
    parse_entry,
)

from ..verify.errors import EntryRejected
from ..verify.pipeline import check_actor, check_link, signed_message
from ..verify.steps import Step as AuditStep
from .errors import NoVerdict

CHUNK_ENTRIES: Final = 1024
"""Entries per task sent to a worker process (four entry bundles)."""


AUTO_PARALLEL_FROM: Final = 4096
"""With ``workers=None``, logs smaller than this are checked in-process."""


EntryFinding = tuple[int, int, str]  # (step, seq, message)


@dataclass(frozen=True, slots=True)
class Chunk:
    """Consecutive entries for a worker, with the actor keys the main pass resolved."""

    first_seq: int
    prev_leaf: bytes
    entries: tuple[bytes, ...]
    keys: tuple[tuple[bytes, ...], ...]
    check_actors: bool


def check_chunk(chunk: Chunk) -> list[EntryFinding]:
    """Parse every entry (step 1), check seq and prev (step 2) and actor signatures (step 7).

    Returns the first finding of each step, in step order. Pure: safe in a worker process.
    """
    findings: list[EntryFinding] = []
    chain_finding: EntryFinding | None = None
    actor_finding: EntryFinding | None = None
    prev = chunk.prev_leaf
    for offset, data in enumerate(chunk.entries):
        seq = chunk.first_seq + offset
        try:
            entry = parse_entry(data)
        except ChainError as exc:
            findings.append((AuditStep.PARSE, seq, exc.message))
            break
        if chain_finding is None:
            try:
                check_link(seq, prev or None, entry)
            except EntryRejected as exc:
                chain_finding = (exc.step, exc.seq, exc.message)
        prev = leaf_hash(data)
        keys = chunk.keys[offset]
        if chunk.check_actors and actor_finding is None and keys:
            message = signed_message(entry.type.value, data)
            try:
                check_actor(seq, entry.actor.kid, keys, entry.actor.sig, message)
            except EntryRejected as exc:
                actor_finding = (exc.step, exc.seq, exc.message)
    findings.extend(found for found in (chain_finding, actor_finding) if found is not None)
    return findings


class EntryChecker:
    """Runs :func:`check_chunk` in worker processes (or in-process with no workers), a
    bounded number of chunks in flight; findings are handed back in submission order."""

    def __init__(self, workers: int, report: Callable[[EntryFinding], None]) -> None:
        self._report = report
        self._pending: deque[Future[list[EntryFinding]]] = deque()
        self._limit = 2 * workers + 1
        self._executor: ProcessPoolExecutor | None = None
        if workers > 0:
            # fork: no re-import of the caller's __main__ and no start-up cost. With fork the
            # pool starts every worker on the first submit: do it now, before the pass starts
            # its reader threads. Forking a process that runs other threads is unsafe (and
            # deprecated from Python 3.12): then start the workers afresh instead.
            methods = multiprocessing.get_all_start_methods()
            method = "fork" if "fork" in methods and threading.active_count() == 1 else "spawn"
            context = multiprocessing.get_context(method)
            self._executor = ProcessPoolExecutor(max_workers=workers, mp_context=context)
            self._executor.submit(check_chunk, Chunk(0, b"", (), (), False)).result()

    def submit(self, chunk: Chunk) -> None:
        if self._executor is None:
            self._deliver(check_chunk(chunk))
            return
        self._pending.append(self._executor.submit(check_chunk, chunk))
        while len(self._pending) > self._limit:
            self._collect()

    def drain(self) -> None:
        while self._pending:
            self._collect()

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None

    def _collect(self) -> None:
        future = self._pending.popleft()
        try:
            findings = future.result()
        except BrokenProcessPool as exc:
            raise NoVerdict(f"a worker process checking entries died: {exc}") from exc
        self._deliver(findings)

    def _deliver(self, findings: list[EntryFinding]) -> None:
        for finding in findings:
            self._report(finding)
