"""Several server instances on one PostgreSQL database, with Redis pub/sub between them.

`gavel serve --db postgresql://... --redis redis://... --instance NAME --advertise URL` runs
one instance; start as many as wanted, on as many machines as reach the database. Clients may
use any instance. The parts (docs/scaling.md has the reasoning and the ceilings):

* **One writer per lot.** Every instance keeps a copy of every lot; exactly one instance
  *writes* a lot: the holder of the lot's PostgreSQL session advisory lock (a lock per lot in
  `lot_owners.lock_id`, held on one dedicated connection per instance). Taking a lot bumps its
  fencing token (`lot_owners.token`) in the same turn as the ledger's; every write transaction
  of lot history checks that the token is still this instance's (`Storage.fence`), so a writer
  that lost its lock without noticing cannot write. A lot without a writer is taken by the
  live instance its rendezvous hash prefers, or by any live instance after `orphan_grace_s`.
  An instance killed with SIGKILL loses its connection, hence its locks, at once; another
  instance catches up with the ledger, rebuilds the lot from its stored history and writes it.
* **Commands reach the writer.** A bid arriving at another instance goes to the writer's
  gateway over HTTP (`POST /internal/v1/bid`), which answers it as its own (idempotency keys,
  limits, signature, ack); other commands (registration, deposits, the console) go to
  `POST /internal/v1/command`. Each request carries how much of the ledger the sender has
  seen; the writer first catches up that far (read-your-writes across instances, e.g. an
  `idv` entry written by the instance that verified the bidder). A bid is resent until the
  deadline if the writer dies meanwhile: the next writer knows every stored bid's key.
* **One ledger.** Every ledger write takes `LEDGER_LOCK` (a transaction advisory lock) and
  integrates what others appended before sequencing its own entries: one sequence, group
  commit in each instance, the signed-head compare-and-swap under it. One instance at a time
  (the holder of lock 0) signs checkpoints and asks the notaries; the others serve them.
* **Followers.** Every stored entry reaches every instance: published on Redis right after
  the commit (`gavel:<origin>:ledger`, the entries' bytes), and read from PostgreSQL when a
  message is missing, when Redis is unavailable (polled every `poll_degraded_s`) or as a
  safety net (`poll_s`). Each instance applies the commands of the lots it does not write to
  its copies (the engine is deterministic) and publishes the updates to its websockets; its
  gateway learns the answered bids' keys. Without Redis, acknowledgements are unchanged and
  updates arrive by polling.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hashlib
import hmac
import json
import logging
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import aiohttp
from aiohttp import web
from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Connection, Engine

from chain import EntryType, parse_time

from .bidding.signed_bid import BidMalformed, SignedBid
from .errors import Conflict, GavelError, Malformed, NotAllowed, Unavailable
from .ledger import SignedBidError
from .rules import CommandError, RejectReason, RulesError, decode, encode
from .service import AuctionService, NotWriter, RequestRefused, ServiceError
from .storage import (
    _LOTS,
    CLUSTER_INSTANCES,
    LEDGER_LOCK,
    LOT_OWNERS,
    LotFenced,
    Storage,
    StorageError,
    system_clock,
)

if TYPE_CHECKING:
    from .gateway import Gateway

logger = logging.getLogger(__name__)

#: The header carrying the cluster's shared secret on internal requests.
CLUSTER_HEADER = "X-Gavel-Cluster"
#: A proxied viewer's own address (its per-address cap is counted by the writer), trusted
#: only with the cluster's secret (`Cluster.viewer_address`).
VIEWER_ADDRESS_HEADER = "X-Gavel-Viewer-Address"

#: An instance name: what `lot_owners.owner` and the logs say.
INSTANCE_NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")

#: The transaction advisory lock (second key, `Storage.xact_lock`) held while new lots get
#: their lock ids.
_OWNERS_LOCK = -4

#: The advisory lock (second key) of the instance that signs checkpoints.
_SIGNER_KEY = 0

#: Command entry types: their bodies carry `lot`, `n`, `ingress`, `command`, `events`.
_COMMAND_TYPES = frozenset(
    {EntryType.BID, EntryType.REGISTRATION, EntryType.DEPOSIT, EntryType.LOT_STATE}
)


class ClusterError(GavelError):
    """The cluster cannot run as configured (not PostgreSQL, a bad instance name, ...)."""


@dataclass(frozen=True, slots=True)
class ClusterSettings:
    """One instance's place in the cluster. `url`: where the other instances reach this one
    (its own listening address, e.g. `http://127.0.0.1:8081`)."""

    instance: str
    url: str
    redis_url: str | None = None
    #: How often the instance says it is alive and looks for lots without a writer.
    heartbeat_s: float = 0.25
    #: An instance silent this long is not preferred for lots any more.
    dead_after_s: float = 3.0
    #: A lot without a writer for this long is taken by any live instance.
    orphan_grace_s: float = 2.0
    #: Reading new entries from PostgreSQL: with Redis up (safety net) / without it.
    poll_s: float = 1.0
    poll_degraded_s: float = 0.25
    #: How long a forwarded bid is retried while its lot changes writer.
    forward_deadline_s: float = 10.0
    #: How long a writer waits to catch up to what a forwarded request's sender had seen.
    catch_up_s: float = 3.0

    def __post_init__(self) -> None:
        if not INSTANCE_NAME.fullmatch(self.instance):
            raise ClusterError(
                f"instance name {self.instance!r}: 1-63 of a-z, 0-9 and '-', not starting with '-'"
            )
        if not self.url.startswith(("http://", "https://")):
            raise ClusterError(f"advertised URL {self.url!r} must start with http:// or https://")


def preferred(lot_id: str, live: Sequence[str]) -> str | None:
    """The live instance a lot prefers (rendezvous hashing: adding or losing an instance
    moves only the lots that preferred it)."""
    if not live:
        return None
    return max(live, key=lambda name: hashlib.sha256(f"{name}\n{lot_id}".encode()).digest())


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


class _Locks:
    """The instance's lock connection: session advisory locks live exactly as long as it.
    Blocking; used from the cluster's one thread."""

    def __init__(self, engine: Engine, namespace: int) -> None:
        self._engine = engine
        self._connection: Connection | None = None
        self.namespace = namespace  # this database schema's (`Storage.advisory_namespace`)
        self._database = 0

    @property
    def connected(self) -> bool:
        return self._connection is not None

    def connect(self) -> None:
        connection = self._engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        try:
            self._database = int(
                connection.exec_driver_sql(
                    "SELECT oid FROM pg_database WHERE datname = current_database()"
                ).scalar()
                or 0
            )
        except BaseException:
            connection.close()
            raise
        self._connection = connection

    def _run(self, sql: str, *args: int) -> Any:
        if self._connection is None:
            raise StorageError("the lock connection is closed")
        return self._connection.exec_driver_sql(sql, args).scalar()

    def try_lock(self, key: int) -> bool:
        return bool(self._run("SELECT pg_try_advisory_lock(%s, %s)", self.namespace, key))

    def unlock(self, key: int) -> None:
        self._run("SELECT pg_advisory_unlock(%s, %s)", self.namespace, key)

    def held(self) -> set[int]:
        """The lock keys of this namespace held by any instance now."""
        assert self._connection is not None
        rows = self._connection.exec_driver_sql(
            "SELECT objid::bigint FROM pg_locks WHERE locktype = 'advisory' AND granted"
            " AND database = %s AND classid::bigint = %s AND objsubid = 2",
            (self._database, self.namespace),
        ).all()
        return {int(row[0]) for row in rows}

    def close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            with contextlib.suppress(Exception):
                connection.close()


@dataclass(slots=True)
class _Round:
    """What one claim round found: lots taken (with their tokens), lots lost, the signer."""

    taken: list[tuple[str, int]]
    lost: list[str]
    signer: bool


class Cluster:
    """This instance's membership: lot ownership, forwarding, the followers' feed. Built by
    the composition root when `gavel serve` gets `--instance`; `await start()`, then
    `await stop()` (which hands its lots over) before the service stops."""

    def __init__(
        self,
        service: AuctionService,
        store: Storage,
        settings: ClusterSettings,
        secret: bytes,
        *,
        applied: int,
        clock: Callable[[], int] = system_clock,
    ) -> None:
        if store.engine().dialect.name != "postgresql":
            raise ClusterError("several instances need PostgreSQL (--db postgresql://...)")
        self.service = service
        self.store = store
        self.settings = settings
        self.gateway: Gateway | None = None
        self._secret = base64.urlsafe_b64encode(secret).decode("ascii")
        self._clock = clock
        self._engine = store.engine()
        self._locks = _Locks(self._engine, store.advisory_namespace)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="gavel-cluster")
        #: Lots this instance writes (or is about to) and their fencing tokens.
        self._tokens: dict[str, int] = {}
        self._lock_ids: dict[str, int] = {}
        self._orphans: dict[str, int] = {}
        self._writers: dict[str, tuple[str | None, str | None]] = {}  # lot -> (owner, url)
        self._signer = False
        self._applied = applied  # ledger entries [0, applied) are in this instance's copies
        self._own_end = applied
        self._grew = asyncio.Event()
        self._wake = asyncio.Event()  # a lot seems to have lost its writer: claim round now
        self._tail_lock = asyncio.Lock()
        self._outbox: asyncio.Queue[bytes] = asyncio.Queue(maxsize=10_000)
        self._redis: Any = None
        self._redis_up = False
        self._channel = ""
        self._session: aiohttp.ClientSession | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._running = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock_failures = 0
        #: Counters for tests and measurements.
        self.takeovers = 0
        self.forwarded = 0
        self.redis_messages = 0
        self.polled_entries = 0

    # -- life cycle --

    @property
    def name(self) -> str:
        return self.settings.instance

    @property
    def signer(self) -> bool:
        """Whether this instance signs checkpoints now."""
        return self._signer

    @property
    def redis_up(self) -> bool:
        return self._redis_up

    @property
    def applied(self) -> int:
        """How many ledger entries this instance has applied (its copies' ledger size)."""
        return self._applied

    def owned(self) -> list[str]:
        return sorted(self._tokens)

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        house = self.store.house
        origin = house.origin if house is not None else "gavel"
        self._channel = f"gavel:{origin}:ledger"
        await self._blocking(self._locks.connect)
        self.store.fence = self._fence
        self.store.on_entries = self._entries_stored
        self.service.forwarder = self._forward_command
        self.service.signs_checkpoints = lambda: self._signer
        if self.gateway is not None:
            self.gateway.forward_bid = self._forward_bid
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
        self.store.fence = _fenced_out
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

    async def _blocking(self, function: Callable[..., Any], *args: Any) -> Any:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, lambda: function(*args))

    # -- ownership --

    async def _claim_loop(self) -> None:
        while self._running:
            try:
                found = await self._blocking(self._claim_round)
            except Exception as exc:  # the database or the lock connection failed
                self._lock_failures += 1
                log = logger.error if self._lock_failures == 1 else logger.debug
                log("instance %s: ownership round failed: %s", self.name, _first_line(exc))
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

    def _fence(self, connection: Connection, lots: frozenset[str]) -> None:
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

    # -- the followers' feed --

    def _entries_stored(self, begin: int, entries: list[bytes]) -> None:
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

    @property
    def high_water(self) -> int:
        """The ledger size this instance has seen (applied, or written itself)."""
        return max(self._applied, self._own_end)

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

    # -- Redis --

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
                        _first_line(exc),
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

    # -- forwarding --

    async def _post(
        self, path: str, lot_id: str, body: dict[str, Any], *, resend: bool
    ) -> tuple[int, dict[str, Any]]:
        """POST `body` to the instance writing `lot_id`, following the lot when it changes
        writer. `resend`: also after a request whose answer was lost (idempotent requests)."""
        assert self._session is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settings.forward_deadline_s
        headers = {CLUSTER_HEADER: self._secret}
        fresh = False  # the known writer failed once: read who writes it now
        while True:
            if loop.time() >= deadline:
                raise ServiceError(f"no instance wrote lot {lot_id!r} in time")
            if self.service.leads(lot_id):
                raise _LocalNow()
            known = None if fresh else self._writers.get(lot_id)
            if known is None:
                known = await self._blocking(self.owner_url, lot_id)
                self._writers[lot_id] = known
            owner, url = known
            fresh = True  # every retry below reads the writer again
            if owner is None or url is None or owner == self.name:
                self._wake.set()
                await asyncio.sleep(0.05)  # between writers: the next round gives it one
                continue
            body["after"] = self.high_water
            try:
                timeout = aiohttp.ClientTimeout(total=max(0.1, deadline - loop.time()))
                async with self._session.post(
                    url.rstrip("/") + path, json=body, headers=headers, timeout=timeout
                ) as response:
                    status = response.status
                    answer = await response.json(content_type=None)
            except aiohttp.ClientConnectorError:
                self._wake.set()  # its writer is gone: look for lots to take at once
                await asyncio.sleep(0.05)  # not sent; try the next writer
                continue
            except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
                if not resend:
                    raise ServiceError(
                        f"the instance writing lot {lot_id!r} did not answer"
                    ) from exc
                await asyncio.sleep(0.05)
                continue
            if status == 409 and isinstance(answer, dict) and answer.get("code") == "NOT_WRITER":
                await asyncio.sleep(0.05)
                continue
            if status == 503 and resend:
                await asyncio.sleep(0.05)
                continue
            self.forwarded += 1
            return status, answer if isinstance(answer, dict) else {}

    async def _forward_command(
        self, lot_id: str, command: Any, request: SignedBid | None
    ) -> tuple[tuple[Any, ...], int | None]:
        body: dict[str, Any] = {
            "lot": lot_id,
            "command": encode(command),
            "request": request.to_json() if request is not None else None,
        }
        try:
            status, answer = await self._post("/internal/v1/command", lot_id, body, resend=False)
        except _LocalNow:
            return await self.service.submit_logged(lot_id, command, request=request)
        if status == 200:
            events = tuple(decode(item) for item in answer["events"])
            entry = answer.get("entry")
            if isinstance(entry, int):  # read-your-writes: this instance's copy has it too
                await self.wait_applied(entry + 1)
            return events, entry if isinstance(entry, int) else None
        code, message = str(answer.get("code")), str(answer.get("message"))
        if status == 422 and code == "REFUSED":
            raise RequestRefused(str(answer.get("reason")), message)
        if status == 422:
            raise CommandError(RejectReason.NOT_PERMITTED, message)
        raise ServiceError(f"the instance writing lot {lot_id!r} answered {status} {code}")

    async def _forward_bid(self, account: str, bid: SignedBid) -> dict[str, Any]:
        from .web.errors import error_from_status

        body: dict[str, Any] = {
            "account": account,
            "bid": {
                "lot": bid.lot,
                "kind": bid.kind,
                "amount": bid.amount,
                "currency": bid.currency,
                "idempotency_key": bid.idempotency_key,
                "signature": base64.b64encode(bid.signature).decode("ascii"),
            },
        }
        try:
            status, answer = await self._post("/internal/v1/bid", bid.lot, body, resend=True)
        except _LocalNow:
            assert self.gateway is not None
            return await self.gateway.bid(account, bid, forward=False)
        except ServiceError as exc:
            raise Unavailable("the bid could not reach its lot") from exc
        if status == 200 and isinstance(answer.get("ack"), dict):
            return dict(answer["ack"])
        raise error_from_status(  # the writer's refusal, passed on unchanged
            status if status >= 400 else 503,
            str(answer.get("code", "UNAVAILABLE")),
            str(answer.get("message", "the bid could not be placed")),
        )

    async def proxy(self, request: web.Request, lot_id: str) -> web.Response:
        """Pass a live-video request (`/api/lots/{lot}/stream...`) to the instance writing the
        lot, which streams and records it, and return its answer: a viewer may use any
        instance. One attempt (an offer is not resent); 503 if no writer answers."""
        assert self._session is not None
        owner, url = await self._blocking(self.owner_url, lot_id)
        if owner is None or url is None or owner == self.name:
            return _not_live()
        body = await request.read() if request.can_read_body else None
        headers = {"Content-Type": request.headers.get("Content-Type", "application/json")}
        for name in ("Authorization",):
            if name in request.headers:
                headers[name] = request.headers[name]
        if request.remote:
            headers[CLUSTER_HEADER] = self._secret
            headers[VIEWER_ADDRESS_HEADER] = request.remote
        try:
            async with self._session.request(
                request.method,
                url.rstrip("/") + request.rel_url.path_qs,
                data=body,
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=15),
            ) as response:
                payload = await response.read()
                return web.Response(
                    body=payload,
                    status=response.status,
                    content_type=response.content_type,
                )
        except (aiohttp.ClientError, TimeoutError):
            return _not_live()

    # -- the internal routes (only other instances call them) --

    def viewer_address(self, request: web.Request) -> str | None:
        """The viewer's address another instance passed with the cluster's secret, or None
        (then the request's own address counts)."""
        forwarded = request.headers.get(VIEWER_ADDRESS_HEADER)
        if forwarded and 0 < len(forwarded) <= 64 and self._authorized(request):
            return forwarded
        return None

    def _authorized(self, request: web.Request) -> bool:
        given = request.headers.get(CLUSTER_HEADER, "")
        return hmac.compare_digest(given.encode(), self._secret.encode())

    async def _internal_body(self, request: web.Request) -> dict[str, Any]:
        if not self._authorized(request):
            raise NotAllowed("internal route: instances of this cluster only")
        try:
            body = await request.json()
        except (ValueError, UnicodeDecodeError):
            raise Malformed("the body is not JSON") from None
        if not isinstance(body, dict):
            raise Malformed("the body is not an object")
        after = body.get("after", 0)
        if not isinstance(after, int) or after < 0:
            raise Malformed("after is a ledger size")
        if not await self.wait_applied(after):
            raise Unavailable("this instance has not caught up with the sender", code="BEHIND")
        return body

    async def _command_route(self, request: web.Request) -> web.Response:
        body = await self._internal_body(request)
        lot_id = body.get("lot")
        if not isinstance(lot_id, str):
            raise Malformed("lot is a string")
        if not self.service.leads(lot_id):
            raise Conflict(f"this instance does not write lot {lot_id!r}", code="NOT_WRITER")
        signed: SignedBid | None = None
        try:
            command = decode(body.get("command"))
            raw = body.get("request")
            if raw is not None:
                signed = SignedBid.from_json(raw)
        except (RulesError, BidMalformed, KeyError, TypeError) as exc:
            raise Malformed(f"not a command: {exc}") from exc
        try:
            events, entry = await self.service.submit_logged(
                lot_id, command, request=signed, forward=False
            )
        except NotWriter:
            words = f"this instance does not write lot {lot_id!r}"
            raise Conflict(words, code="NOT_WRITER") from None
        except RequestRefused as exc:
            return web.json_response(
                {"code": "REFUSED", "reason": exc.reason, "message": exc.message}, status=422
            )
        except RulesError as exc:
            return web.json_response({"code": "INVALID", "message": str(exc)}, status=422)
        except (ServiceError, StorageError) as exc:
            raise Unavailable(_first_line(exc)) from exc
        return web.json_response({"events": [encode(item) for item in events], "entry": entry})

    async def _bid_route(self, request: web.Request) -> web.Response:
        body = await self._internal_body(request)
        account, bid = body.get("account"), body.get("bid")
        if not isinstance(account, str) or not isinstance(bid, dict):
            raise Malformed("account and bid are required")
        try:
            parsed = SignedBid(
                lot=str(bid["lot"]),
                kind=str(bid["kind"]),
                amount=int(bid["amount"]),
                currency=str(bid["currency"]),
                idempotency_key=str(bid["idempotency_key"]),
                signature=base64.b64decode(str(bid["signature"]), validate=True),
            )
        except (KeyError, TypeError, ValueError, binascii.Error, BidMalformed) as exc:
            raise Malformed(f"not a bid: {exc}") from exc
        if not self.service.leads(parsed.lot):
            raise Conflict(f"this instance does not write lot {parsed.lot!r}", code="NOT_WRITER")
        assert self.gateway is not None
        ack = await self.gateway.bid(account, parsed, forward=False)
        return web.json_response({"ack": ack})

    async def _instances_route(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            raise NotAllowed("internal route: instances of this cluster only")
        return web.json_response({"instances": await self._blocking(self.instances)})


class _LocalNow(Exception):
    """The lot became this instance's while forwarding: handle it here."""


def add_cluster_routes(app: web.Application, cluster: Callable[[web.Request], Cluster]) -> None:
    """The internal routes: `POST /internal/v1/command`, `POST /internal/v1/bid` and
    `GET /internal/v1/instances`, each refused (403) without the cluster's secret."""

    def route(name: str) -> Handler:
        async def handler(request: web.Request) -> web.Response:
            bound: Handler = getattr(cluster(request), name)
            return await bound(request)

        return _answering(handler)

    app.router.add_post("/internal/v1/command", route("_command_route"))
    app.router.add_post("/internal/v1/bid", route("_bid_route"))
    app.router.add_get("/internal/v1/instances", route("_instances_route"))


def _fenced_out(connection: Connection, lots: frozenset[str]) -> None:
    raise LotFenced(sorted(lots)[0], "this instance has left the cluster")


Handler = Callable[[web.Request], Awaitable[web.Response]]


def _answering(handler: Handler) -> Handler:
    async def answer(request: web.Request) -> web.Response:
        from .web.errors import http_status

        try:
            return await handler(request)
        except GavelError as exc:  # an internal refusal: `{"code", "message"}`
            body = {"code": exc.code, "message": exc.message}
            return web.json_response(body, status=http_status(exc))

    return answer


def _not_live() -> web.Response:
    from .web.errors import error_response

    return error_response(
        Unavailable("the lot's video is not available right now", code="NOT_LIVE")
    )


def _first_line(error: object) -> str:
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__


@contextlib.asynccontextmanager
async def running(cluster: Cluster) -> AsyncIterator[Cluster]:
    await cluster.start()
    try:
        yield cluster
    finally:
        await cluster.stop()


__all__ = [
    "CLUSTER_HEADER",
    "Cluster",
    "ClusterError",
    "ClusterSettings",
    "add_cluster_routes",
    "decode_entries",
    "encode_entries",
    "preferred",
    "running",
]
