"""Small helpers for the service's queue-owning tasks."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any


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
