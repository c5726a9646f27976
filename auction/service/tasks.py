"""Small helpers for the service's queue-owning tasks."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


class Stop:
    """The sentinel that tells a queue's owner to finish."""


STOP = Stop()


def fail(future: asyncio.Future[Any] | None, error: BaseException) -> None:
    if future is not None and not future.done():
        future.set_exception(error)


async def finish(task: asyncio.Task[Any], timeout: float) -> None:
    """Let `task` end by itself within `timeout` seconds (it is not cancelled meanwhile), then
    cancel it and wait. Not `wait_for(shield(task))`: on Python 3.11 that returns normally,
    dropping a cancellation of the caller that arrives as the task ends (the dormant-lot
    sweeper, cancelled by `stop` while stopping a lot, then ran on and stop hung)."""
    try:
        async with asyncio.timeout(timeout):
            await asyncio.shield(task)
    except TimeoutError:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def take_batch(
    queue: asyncio.Queue[T | Stop], limit: int, size: Callable[[T], int]
) -> tuple[list[T], bool]:
    """Wait for the next item, then take whatever else is queued, up to `limit` (each item
    counting `size(item)`). Returns the batch and whether `STOP` was reached: the owner handles
    the batch, then finishes."""
    first = await queue.get()
    if isinstance(first, Stop):
        return [], True
    batch, taken = [first], size(first)
    while taken < limit and not queue.empty():
        more = queue.get_nowait()
        if isinstance(more, Stop):
            return batch, True
        batch.append(more)
        taken += size(more)
    return batch, False
