"""One writer for every lot: waiting batches go to storage in one transaction."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from typing import Any

from ..storage import (
    HistoryRecord,
    LedgerEntryRefused,
    LedgerRecord,
    LotFenced,
)
from .errors import ServiceClosed
from .ports import Store
from .tasks import STOP, Stop, take_batch


class GroupCommitter:
    """One writer for every lot: whatever batches are waiting go to storage in one transaction.

    `append` returns when the batch is committed, or raises what storage raised (every batch of
    a failed transaction gets the error; none of it was written). When storage refuses an entry
    (`LedgerEntryRefused`, raised before anything is written), the waiting batches are
    committed one by one instead, so that only the batch at fault fails.
    """

    def __init__(
        self,
        store: Store,
        run_blocking: Callable[..., Any],
        max_rows: int = 5000,
        on_commit: Callable[[Sequence[HistoryRecord | LedgerRecord]], None] | None = None,
    ) -> None:
        self._store = store
        self._run_blocking = run_blocking
        self._max_rows = max_rows
        self._on_commit = on_commit
        self._queue: asyncio.Queue[
            tuple[Sequence[HistoryRecord | LedgerRecord], asyncio.Future[Sequence[int]]] | Stop
        ] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        #: Transactions committed and rows written, for measurements.
        self.commits = 0
        self.rows = 0
        #: Called after each commit with (appends merged, rows written): `auction.web.metrics`.
        self.on_batch: Callable[[int, int], None] | None = None

    def start(self) -> None:
        """Start the writer task; call `stop()` later."""
        self._task = asyncio.get_running_loop().create_task(self._run(), name="group-commit")

    async def stop(self) -> None:
        """Write what is queued, then end the writer task. Call after every actor stopped."""
        if self._task is None:
            return
        self._queue.put_nowait(STOP)
        try:
            await self._task
        finally:
            self._task = None

    async def append(self, records: Sequence[HistoryRecord | LedgerRecord]) -> Sequence[int]:
        """Store `records` durably (with whatever else is waiting) and return when committed,
        with the ledger entry seq of each record (empty if the store does not report them)."""
        if self._task is None:
            raise ServiceClosed("the storage writer is not running")
        future: asyncio.Future[Sequence[int]] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((records, future))
        return await future

    async def _run(self) -> None:
        while True:
            batch, stopping = await take_batch(self._queue, self._max_rows, _rows)
            if not batch:
                return
            try:
                await self._commit(batch)
            except (LedgerEntryRefused, LotFenced):  # nothing written: only the one at fault fails
                for waiting in batch:
                    with contextlib.suppress(Exception):  # its waiter has the error
                        await self._commit([waiting])
            except Exception:  # every waiter has the error; go on with the next batch
                pass
            if stopping:
                return

    async def _commit(
        self,
        batch: Sequence[
            tuple[Sequence[HistoryRecord | LedgerRecord], asyncio.Future[Sequence[int]]]
        ],
    ) -> None:
        """One transaction for `batch`; resolves its futures, or fails them with the error
        (raised again) unless it is a refusal that another split of the batch may avoid."""
        records = [record for records, _ in batch for record in records]
        try:
            seqs = await self._run_blocking(self._store.append, records)
        except Exception as exc:
            if not (isinstance(exc, LedgerEntryRefused | LotFenced) and len(batch) > 1):
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
            raise
        self.commits += 1
        self.rows += len(records)
        if self.on_batch is not None:
            self.on_batch(len(batch), len(records))
        if self._on_commit is not None:
            self._on_commit(records)
        offset = 0
        for waiting, future in batch:
            mine: Sequence[int] = ()
            if seqs is not None and len(seqs) == len(records):
                mine = tuple(seqs[offset : offset + len(waiting)])
            offset += len(waiting)
            if not future.done():
                future.set_result(mine)


def _rows(item: tuple[Sequence[HistoryRecord | LedgerRecord], Any]) -> int:
    return len(item[0])
