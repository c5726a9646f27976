"""One writer per lot: advisory locks, rendezvous preference, orphaned
lots taken after a grace period, fencing tokens checked by every write,
the signer of checkpoints, the instances' heartbeats.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Connection

from ..storage import CLUSTER_INSTANCES, LEDGER_LOCK, LOT_OWNERS, LotFenced
from ..storage.schema import _LOTS
from .follower import Follower
from .state import first_line

logger = logging.getLogger(__name__)


#: The transaction advisory lock (second key, `Storage.xact_lock`) held while new lots get
#: their lock ids.
_OWNERS_LOCK = -4


#: The advisory lock (second key) of the instance that signs checkpoints.
_SIGNER_KEY = 0


def preferred(lot_id: str, live: Sequence[str]) -> str | None:
    """The live instance a lot prefers (rendezvous hashing: adding or losing an instance
    moves only the lots that preferred it)."""
    if not live:
        return None
    return max(live, key=lambda name: hashlib.sha256(f"{name}\n{lot_id}".encode()).digest())


@dataclass(slots=True)
class _Round:
    """What one claim round found: lots taken (with their tokens), lots lost, the signer."""

    taken: list[tuple[str, int]]
    lost: list[str]
    signer: bool


def fenced_out(connection: Connection, lots: frozenset[str]) -> None:
    raise LotFenced(sorted(lots)[0], "this instance has left the cluster")


class Ownership(Follower):
    """Takes, keeps and loses the lots this instance writes; fences its writes."""

    async def _claim_loop(self) -> None:
        while self._running:
            try:
                found = await self._blocking(self._claim_round)
            except Exception as exc:  # the database or the lock connection failed
                self._lock_failures += 1
                log = logger.error if self._lock_failures == 1 else logger.debug
                log("instance %s: ownership round failed: %s", self.name, first_line(exc))
                await self._lost_connection()
                await asyncio.sleep(self.settings.heartbeat_s)
                continue
            if self._lock_failures:
                logger.warning("instance %s: the database is reachable again", self.name)
                self._lock_failures = 0
            for lot_id in found.lost:
                logger.warning(
                    "instance %s: lot %s is written by another instance", self.name, lot_id
                )
                self._tokens.pop(lot_id, None)
                await self.service.step_down(lot_id)
            # Lots taken together are made ready together: none waits for another's start.
            await asyncio.gather(*(self._take(lot_id, token) for lot_id, token in found.taken))
            await self._next_round()

    async def _next_round(self) -> None:
        """Wait for the next ownership round: `heartbeat_s`, or less when a forwarded
        request found its lot without a live writer (`_wake`)."""
        self._wake.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), self.settings.heartbeat_s)

    async def _take(self, lot_id: str, token: int) -> None:
        started = time.monotonic()
        try:
            await self.catch_up()  # every stored bid's key known before answering any
            view = await self.service.lead(lot_id)
        except Exception as exc:
            logger.error(
                "instance %s could not take lot %s: %s",
                self.name,
                lot_id,
                exc,
                extra={"lot": lot_id},
            )
            view = None
        if view is None:
            self._tokens.pop(lot_id, None)
            lock_id = self._lock_ids.pop(lot_id, None)
            if lock_id is not None:
                with contextlib.suppress(Exception):
                    await self._blocking(self._locks.unlock, lock_id)
            return
        self.takeovers += 1
        logger.info(
            "instance %s writes lot %s (token %d, ready in %.0f ms)",
            self.name,
            lot_id,
            token,
            (time.monotonic() - started) * 1000,
            extra={"lot": lot_id},
        )

    async def _lost_connection(self) -> None:
        """The lock connection (or the database) failed: the locks may be gone. Stop writing
        every lot at once; fencing refuses anything still in flight. Reconnect next round."""
        self._signer = False
        lots = list(self._tokens)
        self._tokens.clear()
        self._lock_ids.clear()
        await self._blocking(self._locks.close)
        for lot_id in lots:
            await self.service.step_down(lot_id)

    def _claim_round(self) -> _Round:
        """One round (on the cluster thread): heartbeat, lock ids for new lots, then take
        the lots without a writer that this instance should take."""
        if not self._locks.connected:
            self._locks.connect()
        now = self._clock()
        me = self.name
        with self._engine.begin() as connection:
            self._heartbeat(connection, now)
            live = [
                row.name
                for row in connection.execute(
                    select(CLUSTER_INSTANCES.c.name).where(
                        CLUSTER_INSTANCES.c.heartbeat_us
                        >= now - int(self.settings.dead_after_s * 1e6)
                    )
                )
            ]
            self._number_new_lots(connection, now)
            owners = connection.execute(
                select(
                    LOT_OWNERS.c.lot_id,
                    LOT_OWNERS.c.lock_id,
                    LOT_OWNERS.c.owner,
                    LOT_OWNERS.c.token,
                    CLUSTER_INSTANCES.c.url,
                ).select_from(
                    LOT_OWNERS.outerjoin(
                        CLUSTER_INSTANCES, CLUSTER_INSTANCES.c.name == LOT_OWNERS.c.owner
                    )
                )
            ).all()
        # Where forwarded commands go, until a forward fails (then `_post` reads it again).
        self._writers = {str(row.lot_id): (row.owner, row.url) for row in owners}
        held = self._locks.held()
        taken: list[tuple[str, int]] = []
        lost: list[str] = []
        for row in owners:
            lot_id = str(row.lot_id)
            mine = self._tokens.get(lot_id)
            if mine is not None:
                if row.owner != me or row.token != mine:
                    lost.append(lot_id)
                    self._tokens.pop(lot_id, None)
                    lock_id = self._lock_ids.pop(lot_id, None)
                    if lock_id is not None:  # if it is still ours (else this is a no-op)
                        self._locks.unlock(lock_id)
                continue
            if row.lock_id in held:
                self._orphans.pop(lot_id, None)
                continue
            since = self._orphans.setdefault(lot_id, now)
            # A lot whose writer let go of its lock (it died, or lost its connection) goes to
            # the instance the others prefer without that writer, at once; a new lot to the
            # one preferred; after the grace period to anyone (the preferred one may be slow).
            candidates = [name for name in live if name != row.owner] or live
            late = now - since >= self.settings.orphan_grace_s * 1e6
            if preferred(lot_id, candidates) != me and not late:
                continue
            if not self._locks.try_lock(int(row.lock_id)):
                continue
            token = self._fence_in(lot_id, now)
            self._orphans.pop(lot_id, None)
            self._tokens[lot_id] = token
            self._lock_ids[lot_id] = int(row.lock_id)
            taken.append((lot_id, token))
        if not self._signer:
            self._signer = self._locks.try_lock(_SIGNER_KEY)
            if self._signer:
                logger.info("instance %s signs the checkpoints", me)
        return _Round(taken, lost, self._signer)

    def _heartbeat(self, connection: Connection, now: int) -> None:
        statement = postgresql.insert(CLUSTER_INSTANCES).values(
            name=self.name, url=self.settings.url, started_us=now, heartbeat_us=now
        )
        connection.execute(
            statement.on_conflict_do_update(
                index_elements=["name"],
                set_={
                    "url": statement.excluded.url,
                    "heartbeat_us": statement.excluded.heartbeat_us,
                },
            )
        )

    def _number_new_lots(self, connection: Connection, now: int) -> None:
        missing = select(_LOTS.c.lot_id).where(
            ~select(LOT_OWNERS.c.lot_id).where(LOT_OWNERS.c.lot_id == _LOTS.c.lot_id).exists()
        )
        if connection.execute(missing.limit(1)).first() is None:
            return
        self.store.xact_lock(connection, _OWNERS_LOCK)
        new = [row.lot_id for row in connection.execute(missing.order_by(_LOTS.c.created_at))]
        highest = connection.execute(select(func.max(LOT_OWNERS.c.lock_id))).scalar() or 0
        if new:
            connection.execute(
                insert(LOT_OWNERS),
                [
                    {
                        "lot_id": lot_id,
                        "lock_id": highest + 1 + i,
                        "owner": None,
                        "token": 0,
                        "since_us": now,
                    }
                    for i, lot_id in enumerate(new)
                ],
            )

    def _fence_in(self, lot_id: str, now: int) -> int:
        """Become the lot's writer: a new fencing token, in the ledger's turn (so no write of
        the previous writer is half-way between its fence check and its commit)."""
        with self._engine.begin() as connection:
            self.store.xact_lock(connection, LEDGER_LOCK)
            token = connection.execute(
                update(LOT_OWNERS)
                .where(LOT_OWNERS.c.lot_id == lot_id)
                .values(owner=self.name, token=LOT_OWNERS.c.token + 1, since_us=now)
                .returning(LOT_OWNERS.c.token)
            ).scalar_one()
        return int(token)

    def fence(self, connection: Connection, lots: frozenset[str]) -> None:
        """`Storage.fence`: inside a write transaction (after `LEDGER_LOCK`), every lot must
        still be this instance's with the token it took."""
        rows = connection.execute(
            select(LOT_OWNERS.c.lot_id, LOT_OWNERS.c.owner, LOT_OWNERS.c.token).where(
                LOT_OWNERS.c.lot_id.in_(sorted(lots))
            )
        ).all()
        found = {str(row.lot_id): row for row in rows}
        for lot_id in lots:
            row = found.get(lot_id)
            token = self._tokens.get(lot_id)
            if row is None or row.owner != self.name or token is None or row.token != token:
                owner = row.owner if row is not None else None
                raise LotFenced(
                    lot_id,
                    f"lot {lot_id!r} is written by instance {owner!r} now, not {self.name!r}",
                )

    def _leave(self) -> None:
        with self._engine.begin() as connection:
            connection.execute(
                update(LOT_OWNERS).where(LOT_OWNERS.c.owner == self.name).values(owner=None)
            )
            connection.execute(
                delete(CLUSTER_INSTANCES).where(CLUSTER_INSTANCES.c.name == self.name)
            )

    def owner_url(self, lot_id: str) -> tuple[str | None, str | None]:
        """The instance writing `lot_id` and its URL (blocking)."""
        with self._engine.connect() as connection:
            row = connection.execute(
                select(LOT_OWNERS.c.owner, CLUSTER_INSTANCES.c.url)
                .select_from(
                    LOT_OWNERS.outerjoin(
                        CLUSTER_INSTANCES, CLUSTER_INSTANCES.c.name == LOT_OWNERS.c.owner
                    )
                )
                .where(LOT_OWNERS.c.lot_id == lot_id)
            ).first()
        if row is None:
            return None, None
        return row.owner, row.url

    def instances(self) -> list[dict[str, Any]]:
        """Every instance that said it is alive, with the lots it writes (blocking)."""
        now = self._clock()
        with self._engine.connect() as connection:
            rows = connection.execute(select(CLUSTER_INSTANCES)).all()
            owners = connection.execute(select(LOT_OWNERS.c.lot_id, LOT_OWNERS.c.owner)).all()
        lots: dict[str, list[str]] = {}
        for row in owners:
            if row.owner is not None:
                lots.setdefault(row.owner, []).append(row.lot_id)
        return [
            {
                "name": row.name,
                "url": row.url,
                "alive": row.heartbeat_us >= now - int(self.settings.dead_after_s * 1e6),
                "lots": sorted(lots.get(row.name, [])),
            }
            for row in sorted(rows, key=lambda r: r.name)
        ]
