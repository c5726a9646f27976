"""Every lot, each with its own actor, over one store."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from types import MappingProxyType
from typing import Any, TypeVar

import aiohttp

from chain import Ed25519Signer, EntryType, Policy, parse_policy
from notary.client import (
    notaries_from_policy,
)

from ..rules import (
    COMMAND_TYPES,
    CommandError,
    LotClosed,
    LotRules,
    LotState,
    RejectReason,
    apply_to,
)
from ..storage import (
    Clock,
    HistoryRecord,
    LedgerEntryRefused,
    LedgerHead,
    LedgerRecord,
    StoredLot,
    system_clock,
)
from ..verify import SignedBid, SignedBidError
from .checkpointer import CHECKPOINT_DELAY, NOTARY_RETRY, NOTARY_TIMEOUT, Checkpointer
from .cluster_role import ClusterRole
from .errors import LotExists, NotWriter, RequestRefused, ServiceClosed, ServiceError
from .group_commit import GroupCommitter
from .lot_actor import NO_JOURNAL, LotActor
from .ports import IdentityStore, LedgerStore, Store
from .signed_bids import BidGate
from .views import ACTIVE_STATUSES, LotUpdate, LotView, Subscription

logger = logging.getLogger(__name__)

T = TypeVar("T")

#: Reader threads for ledger reads (tiles, receipts) beside the one storage (writer) thread.
READ_THREADS = 2

#: Sends a command for a lot another instance writes there: `(lot, command, request)` to
#: `(events, entry seq)`, like `AuctionService.submit_logged`.
Forwarder = Callable[[str, Any, "SignedBid | None"], Awaitable[tuple[tuple[Any, ...], int | None]]]

#: A closed lot with nothing left to do leaves memory this long after its close (seconds).
DORMANT_AFTER_S = 600.0


class AuctionService(ClusterRole):
    """Every lot, each with its own actor, over one store.

    Use as `async with AuctionService(store) as service:` (or `await start()` / `await stop()`).
    The service owns `store` from construction on and closes it in `stop()`.
    """

    def __init__(
        self,
        store: Store,
        *,
        clock: Clock = system_clock,
        max_batch: int = 1000,
        subscriber_events: int = 256,
        stop_timeout: float = 10.0,
        checkpoint_delay: float = CHECKPOINT_DELAY,
        read_threads: int = READ_THREADS,
        notary_timeout: float = NOTARY_TIMEOUT,
        notary_retry: float = NOTARY_RETRY,
        clustered: bool = False,
        dormant_after_s: float | None = DORMANT_AFTER_S,
        hold_checkpoints: bool = False,
    ) -> None:
        self._store = store
        #: Start checkpointing only at `release_checkpoints()` (a server whose notaries read
        #: the log from it: once it listens).
        self._hold_checkpoints = hold_checkpoints
        #: A closed lot with nothing left to do (no deadline) is put to sleep this long after
        #: its close: its full state leaves memory, its view stays; a command wakes it (its
        #: history is replayed). None: never. Several instances keep every lot awake.
        self._dormant_after_s = None if clustered else dormant_after_s
        self._dormant: dict[str, LotView] = {}
        self._order: dict[str, None] = {}  # every lot id, in catalogue order
        self._sweeper: asyncio.Task[None] | None = None
        #: One of several instances on one database (`auction.cluster`): lots start as
        #: followers and are written only once `lead` is called for them.
        self._clustered = clustered
        #: Where a command for a lot this instance follows goes (`auction.cluster`).
        self.forwarder: Forwarder | None = None
        #: Whether this instance signs checkpoints now (`auction.cluster`: one at a time).
        self.signs_checkpoints: Callable[[], bool] | None = None
        self._notary_timeout = notary_timeout
        self._notary_retry = notary_retry
        self._session: aiohttp.ClientSession | None = None
        self._ledger = store if isinstance(store, LedgerStore) else None
        self._clock = clock
        self._max_batch = max_batch
        self._subscriber_events = subscriber_events
        self._stop_timeout = stop_timeout
        self._checkpoint_delay = checkpoint_delay
        self._read_threads = read_threads
        self._actors: dict[str, LotActor] = {}
        self._subscriptions: set[Subscription] = set()
        self._executor: ThreadPoolExecutor | None = None
        self._readers: ThreadPoolExecutor | None = None
        self._writer: GroupCommitter | None = None
        self._checkpointer: Checkpointer | None = None
        self._running = False
        self._store_closed = False
        self._bids = BidGate()

    async def __aenter__(self) -> AuctionService:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    @property
    def running(self) -> bool:
        return self._running

    @property
    def writer(self) -> GroupCommitter | None:
        """The group-commit writer while running (its counters are useful for measurements)."""
        return self._writer

    @property
    def ledger(self) -> LedgerStore | None:
        """The store's ledger readers (None if the store keeps no ledger); call them through
        `read`, never on the event loop."""
        return self._ledger

    @property
    def checkpointer(self) -> Checkpointer | None:
        """The checkpoint task while running (None without a ledger)."""
        return self._checkpointer

    @property
    def checkpoint(self) -> LedgerHead | None:
        """The latest published checkpoint (None before the first one, or without a ledger)."""
        return self._checkpointer.published if self._checkpointer is not None else None

    @property
    def signed_checkpoint(self) -> LedgerHead | None:
        """The latest signed checkpoint, published or not (its entries are served as tiles so
        that notaries can check them before co-signing); None before the first one."""
        return self._checkpointer.signed_head if self._checkpointer is not None else None

    async def settle(self, timeout: float) -> bool:
        """Ask for a checkpoint now and wait up to `timeout` seconds until everything signed
        so far is published (with notaries: co-signed by the quorum). Returns whether it is."""
        checkpointer = self._checkpointer
        if checkpointer is None:
            return True
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        checkpointer.notify(urgent=True)
        while True:
            await asyncio.sleep(0.1)
            signed, published = checkpointer.signed_head, checkpointer.published
            done = signed is None or (published is not None and published.size >= signed.size)
            if done and not checkpointer.pending():
                return True
            if loop.time() >= deadline:
                return False

    async def read(self, function: Callable[..., T], *args: Any) -> T:
        """Run a blocking ledger read (`service.ledger.ledger_tile`, ...) on a reader thread."""
        if self._readers is None:
            raise ServiceClosed("the auction service is not running")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._readers, functools.partial(function, *args))

    def now(self) -> int:
        """The server clock (UTC microseconds) used to stamp ingress times."""
        return self._clock()

    async def start(self) -> None:
        """Rebuild every stored lot (replay, checked) and start serving them.

        Raises `StorageError` if the history cannot be loaded; the store is then closed.
        """
        if self._executor is not None or self._store_closed:
            raise ServiceError("a service starts once; build a new one to start again")
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="gavel-storage")
        try:
            lots = await self._blocking(self._store.load)
            if isinstance(self._store, IdentityStore):
                self._bids.replace(await self._blocking(self._store.identity_book))
            published = None
            policy: Policy | None = None
            if self._ledger is not None:
                published = await self._blocking(self._ledger.published_checkpoint)
                policy = parse_policy(await self._blocking(self._ledger.ledger_policy))
                if not policy.witnesses:
                    policy = None  # no notaries: every checkpoint is published at once
        except BaseException:
            await self._close_store()
            raise
        self._readers = ThreadPoolExecutor(
            max_workers=self._read_threads, thread_name_prefix="gavel-ledger-read"
        )
        if self._ledger is not None:
            if policy is not None:
                self._session = aiohttp.ClientSession()
            self._checkpointer = Checkpointer(
                self._ledger,
                self._blocking,
                delay=self._checkpoint_delay,
                published=published,
                stop_timeout=self._stop_timeout,
                notaries=notaries_from_policy(policy) if policy is not None else (),
                policy=policy,
                session=self._session,
                read=self.read,
                notary_timeout=self._notary_timeout,
                retry=self._notary_retry,
                signs=self._signs_checkpoints,
            )
            if not self._hold_checkpoints:
                self._checkpointer.start()
        self._writer = GroupCommitter(self._store, self._blocking, on_commit=self._committed)
        self._writer.start()
        self._running = True
        for lot in lots:
            if self._clustered:
                self._follow_lot(lot)
            else:
                self._start_actor(lot)
        if self._dormant_after_s is not None:
            self._sweeper = asyncio.get_running_loop().create_task(
                self._sweep(), name="dormant-lots"
            )

    async def stop(self) -> None:
        """Stop taking commands, let every lot store what it had queued, stop every task, close
        the subscriptions and the store. Safe to call more than once."""
        self._running = False
        sweeper, self._sweeper = self._sweeper, None
        if sweeper is not None:
            sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sweeper
        actors = list(self._actors.values())
        await asyncio.gather(*(actor.stop(self._stop_timeout) for actor in actors))
        if self._writer is not None:
            await self._writer.stop()
            self._writer = None
        if self._checkpointer is not None:
            await self._checkpointer.stop()  # a final checkpoint covering everything written
        session, self._session = self._session, None
        if session is not None:
            await session.close()
        for subscription in list(self._subscriptions):
            subscription.close()
        self._subscriptions.clear()
        readers, self._readers = self._readers, None
        if readers is not None:
            await asyncio.to_thread(readers.shutdown)  # let reads in progress finish
        await self._close_store()

    async def add_sale(self, sale_id: str, title: str) -> None:
        """Store a sale; then add its lots with `add_lot(..., sale_id=...)`."""
        self._check_running()
        await self._blocking(self._store.add_sale, sale_id, title)

    async def add_lot(
        self, lot_id: str, rules: LotRules, title: str, sale_id: str | None = None
    ) -> LotView:
        """Store a new lot and start serving it (its timer opens it at `rules.start_at`).
        Subscribers get its first view at once (an update without events)."""
        self._check_running()
        if lot_id in self._order:
            raise LotExists(f"lot {lot_id!r} already exists")
        lot = await self._blocking(self._store.add_lot, lot_id, rules, title, sale_id)
        if self._checkpointer is not None:
            self._checkpointer.notify()  # the lot's ledger entry
        self._check_running()
        actor = self._follow_lot(lot) if self._clustered else self._start_actor(lot)
        self._publish(LotUpdate(lot_id, actor.view, ()))
        return actor.view

    async def submit(
        self, lot_id: str, command: Any, *, request: SignedBid | None = None
    ) -> tuple[Any, ...]:
        """Apply `command` to lot `lot_id` at the current server time and return the engine's
        events once they are durably stored.

        `request` is the bidder's signed request of a PlaceBid / SetMax (docs/protocol.md
        §2.4), written into the bid's ledger entry; a log with signed bids requires it.
        A refusal is a single `Rejected` event (an unknown lot: `UNKNOWN_LOT`, not stored).
        Raises `ServiceClosed` when not running, `CommandError` for a non-command,
        `RequestRefused` when the request (or, for a kyc-verified registration, the account's
        `idv` entry) breaks the signed-bid rules, and `StorageError` if the batch could not be
        stored (the command then had no effect in either case).
        """
        events, _ = await self.submit_logged(lot_id, command, request=request)
        return events

    async def submit_logged(
        self,
        lot_id: str,
        command: Any,
        *,
        request: SignedBid | None = None,
        forward: bool = True,
        order: Mapping[str, Any] | None = None,
    ) -> tuple[tuple[Any, ...], int | None]:
        """`submit`, returning also the ledger seq of the command's entry (what a bidder's
        acknowledgement and receipt point at); None for an unknown lot (nothing stored).
        `order`: who gave a court order (`auction.court`), written to the command's entry;
        such a command is not forwarded (`NotWriter` on an instance not writing the lot).

        Clustered, a lot written by another instance gets the command through `forwarder`
        (raises `NotWriter` with `forward=False`, or without a forwarder)."""
        if type(command) not in COMMAND_TYPES:
            raise CommandError(RejectReason.NOT_PERMITTED, f"not a command: {command!r}")
        if request is not None and not isinstance(request, SignedBid):
            raise RequestRefused(SignedBidError.MALFORMED, "request must be a SignedBid")
        self._check_running()
        actor = self._actors.get(lot_id)
        if actor is None and lot_id in self._dormant:
            actor = await self._wake(lot_id)
        if actor is None:
            _, events = apply_to(MappingProxyType({}), lot_id, command, self._clock())
            return events, None
        if not actor.leading and self._clustered:
            if self.forwarder is None or not forward or order is not None:
                raise NotWriter(f"this instance does not write lot {lot_id!r} now")
            return await self.forwarder(lot_id, command, request)
        return await actor.submit_logged(command, request, order)

    async def record(
        self,
        entry_type: EntryType,
        body: dict[str, Any],
        *,
        signer: Ed25519Signer | None = None,
    ) -> int:
        """Durably append one ledger entry that is not a lot command (`idv`, `stream_segment`,
        `key`) through the group commit, in log order, and return its seq. `signer` is the
        actor (`actor.kid` = its vkey); None: the house key signs.

        An `idv` entry (`auction.ledger.idv_body`) must be signed by an identity provider's
        key added before (`add_actor_key(vkey, "idv")`) and its attestation must verify; from
        its return on, the account's bids are checked against it. Raises `ServiceClosed`,
        `auction.storage.LedgerEntryRefused` (nothing written) or `StorageError`."""
        self._check_running()
        assert self._writer is not None
        try:
            kind = EntryType(entry_type)
        except ValueError as exc:
            raise LedgerEntryRefused("NOT_RECORDABLE", f"no entry type {entry_type!r}") from exc
        record = LedgerRecord(kind, body, self._clock(), signer)
        seqs = await self._writer.append([record])
        if len(seqs) != 1:
            raise ServiceError("the store keeps no ledger: the entry's seq is unknown")
        if record.entry_type in (EntryType.KEY, EntryType.IDV):
            kid = signer.vkey if signer is not None else None
            self._bids.learn(seqs[0], record.entry_type, record.time_us, record.body, kid)
        return seqs[0]

    async def add_actor_key(self, vkey: str, role: str) -> int:
        """Add `vkey` (an Ed25519 vkey) as an actor key with `role` ("idv": an identity
        provider that signs `idv` entries) in a house-signed `key` entry; returns its seq.
        Idempotent: a vkey added before returns that entry's seq, nothing is written."""
        return await self.record(EntryType.KEY, {"v": 1, "vkey": vkey, "role": role})

    def release_checkpoints(self) -> None:
        """Start the checkpoints held back by `hold_checkpoints` (idempotent)."""
        checkpointer = self._checkpointer
        if self._hold_checkpoints and checkpointer is not None and self._running:
            self._hold_checkpoints = False
            checkpointer.start()

    def _load_lot(self, lot_id: str) -> StoredLot | None:
        load = getattr(self._store, "load_lot", None)
        if load is None:
            raise ServiceError("this store cannot load one lot")
        result: StoredLot | None = load(lot_id)
        return result

    def _follow_lot(self, lot: StoredLot) -> LotActor:
        actor = LotActor(
            lot,
            journal=self._writer or NO_JOURNAL,
            clock=self._clock,
            publish=self._publish,
            max_batch=self._max_batch,
            check=self._bids.check,
        )
        self._actors[lot.lot_id] = actor
        self._order.setdefault(lot.lot_id)
        return actor

    def _signs_checkpoints(self) -> bool:
        if self.signs_checkpoints is None:
            return not self._clustered  # an instance signs once the cluster made it the signer
        return self.signs_checkpoints()

    def view(self, lot_id: str) -> LotView | None:
        """The public snapshot of one lot, or None if unknown."""
        actor = self._actors.get(lot_id)
        return actor.view if actor is not None else self._dormant.get(lot_id)

    def views(self) -> list[LotView]:
        """The public snapshots of every lot, in catalogue order."""
        views = (self.view(lot_id) for lot_id in self._order)
        return [view for view in views if view is not None]

    def state(self, lot_id: str) -> LotState | None:
        """The full state of a lot (bidder ids and maxima: for trusted in-process use only);
        None for an unknown lot and for a dormant one (closed long ago: `view` has it, a
        command wakes it)."""
        actor = self._actors.get(lot_id)
        return actor.state if actor is not None else None

    async def full_state(self, lot_id: str) -> LotState | None:
        """`state`, waking a dormant lot first (a read of its whole state, e.g. its bidders
        for the compliance role); None for an unknown lot."""
        if lot_id in self._dormant and lot_id not in self._actors:
            await self._wake(lot_id)
        return self.state(lot_id)

    def dormant(self, lot_id: str) -> bool:
        """Whether the lot sleeps (closed, nothing left to do; its state is not in memory)."""
        return lot_id in self._dormant

    async def _sweep(self) -> None:
        """Put to sleep the lots closed more than `dormant_after_s` ago with nothing left to
        do, so that a server running for months does not keep every lot's bids in memory."""
        assert self._dormant_after_s is not None
        interval = min(60.0, max(0.05, self._dormant_after_s / 4))
        while True:
            await asyncio.sleep(interval)
            cutoff = self._clock() - int(self._dormant_after_s * 1_000_000)
            for lot_id, actor in list(self._actors.items()):
                state = actor.state
                if (
                    state.closed_at is None
                    or state.closed_at > cutoff
                    or state.status in ACTIVE_STATUSES
                    or state.next_deadline() is not None
                    or not actor.idle
                ):
                    continue
                # In this order: a command from now on wakes the lot from the database, where
                # everything the idle actor did is stored.
                self._dormant[lot_id] = actor.view
                del self._actors[lot_id]
                await actor.stop(self._stop_timeout)

    async def _wake(self, lot_id: str) -> LotActor | None:
        lot = await self.read(self._load_lot, lot_id)
        self._check_running()
        current = self._actors.get(lot_id)
        if current is not None:  # woken meanwhile by another command
            return current
        if lot is None:
            return None
        self._dormant.pop(lot_id, None)
        return self._start_actor(lot)

    def subscribe(
        self, max_events: int | None = None, *, subscription: Subscription | None = None
    ) -> Subscription:
        """Receive every lot's updates from now on; call `unsubscribe` when done.
        `subscription`: the caller's own (e.g. a subclass whose `offer` also records each
        update at once, in publication order); else a new one keeping `max_events`."""
        self._check_running()
        if subscription is None:
            subscription = Subscription(max_events or self._subscriber_events)
        self._subscriptions.add(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        """Stop delivering to `subscription` and close it."""
        self._subscriptions.discard(subscription)
        subscription.close()

    @contextlib.asynccontextmanager
    async def subscription(self, max_events: int | None = None) -> AsyncIterator[Subscription]:
        """`async with service.subscription() as updates:` subscribes and always unsubscribes."""
        subscription = self.subscribe(max_events)
        try:
            yield subscription
        finally:
            self.unsubscribe(subscription)

    # -- internals --

    def _start_actor(self, lot: StoredLot) -> LotActor:
        assert self._writer is not None
        actor = LotActor(
            lot,
            journal=self._writer,
            clock=self._clock,
            publish=self._publish,
            max_batch=self._max_batch,
            check=self._bids.check,
        )
        self._actors[lot.lot_id] = actor
        self._order.setdefault(lot.lot_id)
        actor.start()
        return actor

    def _committed(self, records: Sequence[HistoryRecord | LedgerRecord]) -> None:
        """The group commit stored `records` and their entries: a checkpoint is due, at once
        if a lot closed (ledger spec section 3: immediately for a sale and a lot close)."""
        if self._checkpointer is not None:
            closed = any(
                isinstance(e, LotClosed)
                for record in records
                if isinstance(record, HistoryRecord)
                for e in record.events
            )
            self._checkpointer.notify(urgent=closed)

    def _publish(self, update: LotUpdate) -> None:
        for subscription in self._subscriptions:
            subscription.offer(update)

    def _check_running(self) -> None:
        if not self._running:
            raise ServiceClosed("the auction service is not running")

    async def _blocking(self, function: Callable[..., T], *args: Any) -> T:
        """Run a blocking storage call on the storage thread."""
        if self._executor is None:
            raise ServiceClosed("the storage thread is not running")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, functools.partial(function, *args))

    async def _close_store(self) -> None:
        if self._store_closed:
            return
        self._store_closed = True
        executor, self._executor = self._executor, None
        if executor is None:  # never started: nothing else uses the store
            self._store.close()
            return
        try:
            await asyncio.get_running_loop().run_in_executor(executor, self._store.close)
        finally:
            executor.shutdown(wait=True)
