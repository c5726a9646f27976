"""The followers' feed: every stored entry reaches every instance (Redis
right after the commit, PostgreSQL when a message is missing, when Redis
is down, or as a safety net) and is applied to its copies of the lots.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Sequence

from chain import EntryType, parse_time

from ..rules import RulesError, decode
from ..verify import SignedBidError
from .state import ClusterState, first_line

logger = logging.getLogger(__name__)


#: Command entry types: their bodies carry `lot`, `n`, `ingress`, `command`, `events`.
_COMMAND_TYPES = frozenset(
    {EntryType.BID, EntryType.REGISTRATION, EntryType.DEPOSIT, EntryType.LOT_STATE}
)


def encode_entries(begin: int, entries: Sequence[bytes]) -> bytes:
    """A Redis message: the first seq, then the entries' bytes, one per line (canonical
    JSON has no raw newline)."""
    return b"\n".join((str(begin).encode("ascii"), *entries))


def decode_entries(message: bytes) -> tuple[int, list[bytes]]:
    """The inverse of `encode_entries`; raises `ValueError` for anything else."""
    head, _, rest = message.partition(b"\n")
    begin = int(head)
    if begin < 0:
        raise ValueError("negative seq")
    return begin, rest.split(b"\n") if rest else []


class Follower(ClusterState):
    """Applies what other instances store to this instance's copies."""

    def entries_stored(self, begin: int, entries: list[bytes]) -> None:
        """`Storage.on_entries` (the storage thread): hand the batch to the loop."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        with contextlib.suppress(RuntimeError):  # the loop is closing
            loop.call_soon_threadsafe(self._stored, begin, entries)

    def _stored(self, begin: int, entries: list[bytes]) -> None:
        self._own_end = max(self._own_end, begin + len(entries))
        if self.settings.redis_url:
            with contextlib.suppress(asyncio.QueueFull):  # followers poll what is dropped
                self._outbox.put_nowait(encode_entries(begin, entries))
        task = asyncio.get_running_loop().create_task(self._apply(begin, entries, own=True))
        self._tasks.append(task)
        task.add_done_callback(self._forget_task)

    def _forget_task(self, task: asyncio.Task[None]) -> None:
        with contextlib.suppress(ValueError):
            self._tasks.remove(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("instance %s: applying entries failed: %s", self.name, task.exception())

    async def catch_up(self, until: int | None = None) -> None:
        """Apply what PostgreSQL has beyond `applied` (up to `until`, or all of it)."""
        async with self._tail_lock:
            end = await self.service.read(self.store.ledger_end) if until is None else until
            await self._read_through(end)

    async def _read_through(self, end: int) -> None:
        while self._applied < end:
            stop = min(end, self._applied + 1000)
            entries = await self.service.read(self.store.ledger_entries, self._applied, stop)
            if not entries:
                return
            self.polled_entries += len(entries)
            opened = await self.service.read(self.store.opened_entries, self._applied, entries)
            for offset, raw in enumerate(opened):
                await self._dispatch(self._applied + offset, raw)
            self._applied += len(entries)
            self._grew.set()

    async def _apply(self, begin: int, entries: list[bytes], *, own: bool = False) -> None:
        """Apply entries `[begin, begin + len)` after any gap before them. `own`: this
        instance wrote them (its lots, its `idv`/`key` records, its new lots are applied
        already): only the position advances, no entry is parsed again."""
        async with self._tail_lock:
            end = begin + len(entries)
            if end <= self._applied:
                return
            if begin > self._applied:
                await self._read_through(begin)
            skip = max(0, self._applied - begin)
            if not own and skip < len(entries):
                tail = entries[skip:]
                opened = await self.service.read(self.store.opened_entries, begin + skip, tail)
                for offset, raw in enumerate(opened):
                    await self._dispatch(begin + skip + offset, raw)
            self._applied = max(self._applied, end)
            self._grew.set()

    async def _dispatch(self, seq: int, raw: bytes) -> None:
        """Apply one stored entry, its sealed values opened, to this instance's copies."""
        try:
            value = json.loads(raw)
            kind, body = value["type"], value["body"]
            closed = False
            if kind in _COMMAND_TYPES:
                lot_id = body["lot"]
                if self.service.view(lot_id) is None:
                    await self.service.adopt(lot_id)
                if not self.service.leads(lot_id):
                    done = self.service.follow(
                        lot_id, int(body["n"]), parse_time(body["ingress"]), decode(body["command"])
                    )
                    if done is None:
                        await self.service.reload(lot_id)
                    if self.gateway is not None and "request" in body:
                        self.gateway.learn_answered([raw])
                closed = any(item.get("type") == "LotClosed" for item in body["events"])
            elif kind == EntryType.LOT:
                if self.service.view(body["lot"]) is None:
                    await self.service.adopt(body["lot"])
            elif kind in (EntryType.KEY, EntryType.IDV):
                self.service.learn(seq, kind, parse_time(value["t"]), body, value["actor"]["kid"])
            self.service.ledger_grew(closed)
        except (ValueError, KeyError, TypeError, RulesError, SignedBidError) as exc:
            logger.error("instance %s: ledger entry %d not applied: %s", self.name, seq, exc)

    async def wait_applied(self, size: int, timeout: float | None = None) -> bool:
        """Wait until this instance applied the first `size` entries (reading PostgreSQL if
        they do not come on their own). Returns whether it did within `timeout`."""
        if self._applied >= size:
            return True
        loop = asyncio.get_running_loop()
        deadline = loop.time() + (self.settings.catch_up_s if timeout is None else timeout)
        waited = 0.0
        while self._applied < size:
            left = deadline - loop.time()
            if left <= 0:
                return False
            self._grew.clear()
            if waited >= 0.02:  # not on its way (Redis down, a message lost): read it
                await self.catch_up()
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._grew.wait(), min(left, 0.02))
            waited += 0.02
        return True

    async def _poll_loop(self) -> None:
        while self._running:
            up = self._redis_up
            await asyncio.sleep(self.settings.poll_s if up else self.settings.poll_degraded_s)
            try:
                await self.catch_up()
            except Exception as exc:
                logger.debug("instance %s: reading new entries failed: %s", self.name, exc)

    async def _redis_loop(self) -> None:
        import redis.asyncio as aioredis
        from redis.exceptions import RedisError

        failures = 0
        while self._running:
            client = aioredis.from_url(
                self.settings.redis_url or "", socket_connect_timeout=1.0, health_check_interval=5
            )
            pubsub = client.pubsub()
            try:
                await pubsub.subscribe(self._channel)
                self._redis = client
                self._redis_up = True
                if failures:
                    logger.warning("instance %s: Redis is back; catching up", self.name)
                failures = 0
                await self.catch_up()  # what was published while this instance was away
                async for message in pubsub.listen():
                    if message.get("type") != "message":
                        continue
                    self.redis_messages += 1
                    try:
                        begin, entries = decode_entries(message["data"])
                    except ValueError:
                        logger.error("instance %s: unreadable Redis message dropped", self.name)
                        continue
                    await self._apply(begin, entries)
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError, ConnectionError) as exc:
                failures += 1
                if failures == 1:
                    logger.warning(
                        "instance %s: Redis unavailable (%s): updates come from PostgreSQL "
                        "every %.2f s",
                        self.name,
                        first_line(exc),
                        self.settings.poll_degraded_s,
                    )
            finally:
                self._redis_up = False
                self._redis = None
                with contextlib.suppress(Exception):
                    await pubsub.aclose()  # type: ignore[no-untyped-call,unused-ignore]
                with contextlib.suppress(Exception):
                    await client.aclose()
            await asyncio.sleep(0.5)

    async def _publisher(self) -> None:
        from redis.exceptions import RedisError

        while True:
            payload = await self._outbox.get()
            client = self._redis
            if client is None or not self._redis_up:
                continue  # the followers read it from PostgreSQL
            try:
                await client.publish(self._channel, payload)
            except (RedisError, OSError, ConnectionError) as exc:
                logger.debug("instance %s: publish failed: %s", self.name, exc)
