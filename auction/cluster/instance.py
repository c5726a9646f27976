"""This instance's membership in the cluster: start (catch up, then claim
lots and follow the ledger) and stop (hand the lots over, leave).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

import aiohttp

from .ownership import fenced_out
from .routes import InternalRoutes

logger = logging.getLogger(__name__)


class Cluster(InternalRoutes):
    """This instance's membership: lot ownership, forwarding, the followers' feed. Built by
    the composition root when `gavel serve` gets `--instance`, which also hands the store
    `fence` and `entries_stored`, the service `forward_command` and `signer`, the gateway
    `forward_bid`; then `await start()`, and `await stop()` (which hands its lots over and
    fences this instance out) before the service stops."""

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        house = self.store.house
        origin = house.origin if house is not None else "gavel"
        self._channel = f"gavel:{origin}:ledger"
        await self._blocking(self._locks.connect)
        self._session = aiohttp.ClientSession()
        self._running = True
        await self.catch_up()
        self._tasks = [
            asyncio.create_task(self._claim_loop(), name="cluster-claim"),
            asyncio.create_task(self._poll_loop(), name="cluster-poll"),
        ]
        if self.settings.redis_url:
            self._tasks.append(asyncio.create_task(self._redis_loop(), name="cluster-redis"))
            self._tasks.append(asyncio.create_task(self._publisher(), name="cluster-publish"))
        logger.info("instance %s joined the cluster at %s", self.name, self.settings.url)

    async def stop(self) -> None:
        """Hand the lots over: stop writing them (what is queued is stored first), release
        the locks (another instance takes them at its next round), leave the cluster."""
        self._running = False
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        for lot_id in list(self._tokens):
            await self.service.step_down(lot_id)
        self._tokens.clear()
        self.store.fence = fenced_out
        with contextlib.suppress(Exception):
            await self._blocking(self._leave)
        await self._blocking(self._locks.close)
        self.store.on_entries = None
        if self._redis is not None:
            with contextlib.suppress(Exception):
                await self._redis.aclose()
        if self._session is not None:
            await self._session.close()
        self._executor.shutdown(wait=True)


@contextlib.asynccontextmanager
async def running(cluster: Cluster) -> AsyncIterator[Cluster]:
    await cluster.start()
    try:
        yield cluster
    finally:
        await cluster.stop()
