"""The auction service: one writer per lot, durable acknowledgements, timers, live views.

An adapter around the pure engine (STYLE rules 1 and 9; rules "each lot has exactly one
writer"):

* `LotActor` owns one lot: one asyncio task draining an `asyncio.Queue` of
  `(ingress time, command, future)`. The ingress time is stamped by the server clock when the
  command is submitted, so queue order is ingress order. The actor takes everything queued as a
  batch, applies each command through the engine, has the batch stored (group commit) and only
  then resolves the futures (rules C18: acknowledge after durable) and publishes.
* Each actor keeps one timer at `state.next_deadline()` that enqueues `OpenLot` or `CloseLot`
  behind the commands already queued: the rules C6 closing procedure drains earlier bids first;
  if one of them extended the end, `CloseLot` is refused `NOT_DUE` and the timer is set again.
* `AuctionService` owns the store, a single storage thread, one group-commit writer shared by
  all lots, every actor and every subscription. `start()` rebuilds lots from storage; `stop()`
  drains the queues, stops every task and closes the store.
* The ledger: the store writes one entry per stored command in the group commit's transaction
  (see `auction.storage`). A `Checkpointer` task signs checkpoints: within `checkpoint_delay`
  seconds of the first entry no checkpoint covers (0.5 s: at least once a second while entries
  arrive), at once after a batch that closed a lot (its `sale` entry is in the same batch), and
  a final one when the service stops. Ledger reads for the HTTP API run on a small pool of
  reader threads (`read`), never on the storage thread or the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Protocol, TypeVar, runtime_checkable

import aiohttp

from chain import Ed25519Signer, EntryBundle, EntryType, Policy, Tile, parse_policy
from notary.client import (
    CosignatureRound,
    NotaryEndpoint,
    notaries_from_policy,
    quorum_met,
    request_cosignatures,
)

from .errors import Conflict, GavelError, RefusedByRules, Unavailable
from .ledger import IdentityBook, SignedBidError, SignedRequest
from .rules import (
    COMMAND_TYPES,
    BidAccepted,
    BidderBarred,
    BidderRegistered,
    CloseLot,
    CommandError,
    DefaultDeclared,
    DepositChanged,
    LotClosed,
    LotRules,
    LotState,
    LotStatus,
    MaxSet,
    OpenLot,
    PaymentConfirmed,
    Rejected,
    RejectReason,
    RulesError,
    apply,
    apply_to,
    encode,
    rejection,
)
from .storage import (
    Clock,
    HistoryRecord,
    LedgerEntryRefused,
    LedgerHead,
    LedgerRecord,
    LotFenced,
    StorageError,
    StoredLot,
    system_clock,
)

T = TypeVar("T")

logger = logging.getLogger(__name__)

#: Longest time (seconds) between the first entry no checkpoint covers and the checkpoint.
CHECKPOINT_DELAY = 0.5

#: Seconds each notary has to answer an add-checkpoint request (ledger spec section 4).
NOTARY_TIMEOUT = 1.0

#: Seconds between rounds while a signed checkpoint waits for the notaries' quorum.
NOTARY_RETRY = 1.0

#: Reader threads for ledger reads (tiles, receipts) beside the one storage (writer) thread.
READ_THREADS = 2

#: Statuses in which a lot may still change without an authority (open, close, bids).
ACTIVE_STATUSES = frozenset(
    {LotStatus.SCHEDULED, LotStatus.OPEN, LotStatus.PAUSED, LotStatus.SUSPENDED}
)

#: Events never shown to the public (rules C17: maxima; C2.4: the identity-to-code mapping).
PRIVATE_EVENTS: tuple[type, ...] = (
    Rejected,
    MaxSet,
    BidderRegistered,
    BidderBarred,
    DepositChanged,
    PaymentConfirmed,
    DefaultDeclared,
)

#: Fields holding internal bidder ids; public events carry codes only.
PRIVATE_FIELDS = frozenset({"bidder", "leader", "winner", "on_behalf_of"})


# --- errors (STYLE rule 5) -------------------------------------------------------------------


class ServiceError(GavelError):
    """Base of every exception raised by `auction.service` (and the demo built on it).

    Storage failures reach callers as `auction.storage.StorageError`, engine misuse as
    `auction.rules.RulesError`; rule refusals are never exceptions but `Rejected` events.
    """


class ServiceClosed(ServiceError, Unavailable):
    """The service is not running (not started yet, or stopping): the command was not taken.

    A command whose lot stopped before it was stored also gets this error; its outcome is then
    unknown to the caller, who must read the lot again before retrying.
    """


class LotExists(ServiceError, Conflict):
    """`add_lot` with an id that is already served."""


class NotWriter(ServiceError, Conflict):
    """This instance does not write that lot now (another instance of the cluster does)."""


class RequestRefused(ServiceError, RefusedByRules):
    """A bid's signed request (or a registration's identity) breaks the signed-bid rules
    (`auction.ledger.IdentityBook`): the command was neither applied nor logged. `reason` is
    a stable code (`SignedBidError.BAD_SIGNATURE`, `NO_REQUEST`, `NO_IDENTITY`, ...)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"{reason}: {message}", code=reason)
        self.reason = reason
        self.message = message


# --- what the outside sees -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LotView:
    """A public snapshot of a lot for pages and viewers: never bidder ids, maxima or the hidden
    reserve (only whether it is met). Times are UTC microseconds, money minor units."""

    lot_id: str
    sale_id: str | None
    sale_title: str | None
    title: str
    format: str
    currency: str
    legal_timezone: str
    status: str
    phase: str | None  # live lots: IN_RING / FAIR_WARNING while in the ring
    start_price: int
    price: int | None
    leader_code: str | None
    min_next: int  # live lots: the current ask
    start_at: int
    end: int
    hammer_not_before: int | None
    reserve_met: bool | None
    bids: int
    seq: int
    result: str | None
    closed_at: int | None

    @classmethod
    def of(cls, lot: StoredLot, state: LotState, bids: int) -> LotView:
        """The view of `state` for the catalogue entry `lot`."""
        rules = state.rules
        live = state.live
        reserve_met = None
        if rules.reserve is not None:
            reserve_met = state.price is not None and state.price >= rules.reserve
        hammer_not_before = None
        if live is not None and live.fair_warning_at is not None:
            hammer_not_before = live.fair_warning_at + rules.fair_warning_dwell
        return cls(
            lot_id=state.lot_id,
            sale_id=lot.sale_id,
            sale_title=lot.sale_title,
            title=lot.title,
            format=rules.format.value,
            currency=rules.currency,
            legal_timezone=rules.legal_timezone,
            status=state.status.value,
            phase=live.phase.value if live is not None else None,
            start_price=rules.start_price,
            price=state.price,
            leader_code=state.leader_code,
            min_next=state.min_next,
            start_at=rules.start_at,
            end=state.end,
            hammer_not_before=hammer_not_before,
            reserve_met=reserve_met,
            bids=bids,
            seq=state.seq,
            result=state.result.value if state.result is not None else None,
            closed_at=state.closed_at,
        )

    @property
    def active(self) -> bool:
        """Whether the lot can still take bids or change without an authority."""
        return self.status in ACTIVE_STATUSES

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict of the view."""
        return {field.name: getattr(self, field.name) for field in dataclasses.fields(self)}


def public_events(events: Sequence[Any]) -> tuple[dict[str, Any], ...]:
    """The events anyone may see, JSON-ready, with bidder ids removed (codes stay)."""
    out = []
    for item in events:
        if isinstance(item, PRIVATE_EVENTS):
            continue
        data = encode(item)
        out.append({key: value for key, value in data.items() if key not in PRIVATE_FIELDS})
    return tuple(out)


@dataclass(frozen=True, slots=True)
class LotUpdate:
    """What a subscriber receives for one lot: the latest view and the public events since the
    last update. `gap` is true when events were dropped to keep the queue bounded: the view is
    still exact, but the caller must not rebuild history from `events`."""

    lot_id: str
    view: LotView
    events: tuple[dict[str, Any], ...]
    gap: bool = False


class Subscription:
    """Live updates for every lot, coalesced per lot so that a slow reader never blocks a lot
    and never holds more than one pending update per lot (`max_events` events at most).

    Read with `await next()` or `async for updates in subscription`; the caller must call
    `AuctionService.unsubscribe` (or use `AuctionService.subscription()`) when done.
    """

    def __init__(self, max_events: int = 256) -> None:
        self._max_events = max_events
        self._pending: dict[str, LotUpdate] = {}
        self._ready = asyncio.Event()
        self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed

    def offer(self, update: LotUpdate) -> None:
        """Queue `update`, merging it with an undelivered one of the same lot. Never blocks."""
        if self._closed:
            return
        earlier = self._pending.get(update.lot_id)
        if earlier is not None:
            events = earlier.events + update.events
            gap = earlier.gap or update.gap or len(events) > self._max_events
            update = LotUpdate(update.lot_id, update.view, events[-self._max_events :], gap)
        elif len(update.events) > self._max_events:
            events = update.events[-self._max_events :]
            update = LotUpdate(update.lot_id, update.view, events, True)
        self._pending[update.lot_id] = update
        self._ready.set()

    async def next(self) -> list[LotUpdate]:
        """Wait for and return every pending update (one per lot); `[]` once closed."""
        while not self._pending and not self._closed:
            self._ready.clear()
            await self._ready.wait()
        updates = list(self._pending.values())
        self._pending.clear()
        return updates

    def close(self) -> None:
        """Stop receiving; a waiting `next()` returns what is pending, then `[]`."""
        self._closed = True
        self._ready.set()

    def __aiter__(self) -> AsyncIterator[list[LotUpdate]]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[list[LotUpdate]]:
        while True:
            updates = await self.next()
            if not updates:
                return
            yield updates


# --- I/O behind small protocols (STYLE rule 10) ----------------------------------------------


class Store(Protocol):
    """What the service needs from storage (`auction.storage.Storage` is the real one).

    Methods are blocking; the service calls them on its storage thread, one at a time.
    """

    def load(self) -> list[StoredLot]: ...

    def add_sale(self, sale_id: str, title: str) -> None: ...

    def add_lot(
        self, lot_id: str, rules: LotRules, title: str, sale_id: str | None = None
    ) -> StoredLot: ...

    def append(self, records: Sequence[HistoryRecord | LedgerRecord]) -> Sequence[int] | None: ...

    def close(self) -> None: ...


@runtime_checkable
class IdentityStore(Protocol):
    """A store that knows the signed-bid rules' state of its ledger (`Storage`)."""

    def identity_book(self) -> IdentityBook: ...


@runtime_checkable
class LedgerStore(Protocol):
    """What the service and the HTTP API need from a store that keeps the ledger
    (`auction.storage.Storage`). A store without these methods runs without checkpoints.

    `sign_checkpoint` and `publish_checkpoint` run on the storage thread; the readers on the
    reader threads (`AuctionService.read`).
    """

    def sign_checkpoint(self) -> LedgerHead | None: ...

    def publish_checkpoint(self, head: LedgerHead) -> None: ...

    def published_checkpoint(self) -> LedgerHead | None: ...

    def signed_checkpoint(self) -> LedgerHead | None: ...

    def ledger_policy(self) -> bytes: ...

    def checkpoint_sizes(self) -> list[int]: ...

    def checkpoint_note(self, size: int) -> bytes | None: ...

    def ledger_tile(self, tile: Tile | EntryBundle) -> bytes: ...

    def ledger_receipt(self, seq: int, head: LedgerHead) -> tuple[bytes, bytes]: ...

    def ledger_consistency_proof(self, old_size: int, new_size: int) -> list[bytes]: ...


class Journal(Protocol):
    """Durable append of history records; returns only once they are stored."""

    async def append(self, records: Sequence[HistoryRecord]) -> Sequence[int]: ...


class _Stop:
    """The sentinel that tells a queue's owner to finish."""


_STOP = _Stop()


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
            tuple[Sequence[HistoryRecord | LedgerRecord], asyncio.Future[Sequence[int]]] | _Stop
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
        self._queue.put_nowait(_STOP)
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
        stopping = False
        while not stopping:
            item = await self._queue.get()
            if isinstance(item, _Stop):
                return
            batch = [item]
            rows = len(item[0])
            while rows < self._max_rows and not self._queue.empty():
                more = self._queue.get_nowait()
                if isinstance(more, _Stop):
                    stopping = True
                    break
                batch.append(more)
                rows += len(more[0])
            try:
                await self._commit(batch)
            except (LedgerEntryRefused, LotFenced):  # nothing written: only the one at fault fails
                for waiting in batch:
                    with contextlib.suppress(Exception):  # its waiter has the error
                        await self._commit([waiting])
            except Exception:  # every waiter has the error; go on with the next batch
                continue

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


class Checkpointer:
    """Signs and publishes the ledger's checkpoints; one task, owned by the service.

    `notify()` after entries were committed; `notify(urgent=True)` after a lot closed (or
    sold). It signs at once when urgent, else `delay` seconds after the first notification
    since the last checkpoint. `stop()` lets a running checkpoint finish and signs a final one
    covering everything written, then ends the task.

    Each checkpoint: sign (the store's compare-and-swap, signature and stored checkpoint, in
    one transaction), then publish. With notaries (a policy with witnesses): the signed
    checkpoint goes to every notary in parallel (`notary.client.request_cosignatures`, a short
    timeout each, 409 answers resynchronise), and it is published, with the cosignatures, only
    if the policy's quorum co-signed (fail-closed). Otherwise it stays signed but unpublished:
    entries keep being written and signed, and every `retry` seconds the newest signed
    checkpoint is sent again, so publication catches up as soon as the quorum is back.
    """

    def __init__(
        self,
        ledger: LedgerStore,
        run_blocking: Callable[..., Any],
        *,
        delay: float = CHECKPOINT_DELAY,
        published: LedgerHead | None = None,
        stop_timeout: float = 10.0,
        notaries: Sequence[NotaryEndpoint] = (),
        policy: Policy | None = None,
        session: aiohttp.ClientSession | None = None,
        read: Callable[..., Awaitable[Any]] | None = None,
        notary_timeout: float = NOTARY_TIMEOUT,
        retry: float = NOTARY_RETRY,
        signs: Callable[[], bool] | None = None,
    ) -> None:
        if policy is not None and session is None:
            raise ServiceError("asking notaries needs an HTTP session")
        self._ledger = ledger
        self._run_blocking = run_blocking
        self._read = read or run_blocking
        self._delay = delay
        self._stop_timeout = stop_timeout
        self._grown = asyncio.Event()
        self._urgent = asyncio.Event()
        self._stopping = False
        self._task: asyncio.Task[None] | None = None
        self._published = published
        self._signed = published
        self._notaries = tuple(notaries)
        self._policy = policy
        self._session = session
        self._notary_timeout = notary_timeout
        self._retry = retry
        self._signs = signs
        self._retry_timer: asyncio.TimerHandle | None = None
        self._missing: frozenset[str] = frozenset()  # notaries that did not co-sign last time
        self._sizes: dict[str, int] = {}  # each notary's last co-signed size, as far as known
        #: Checkpoints signed and published by this task, for measurements and tests.
        self.signed = 0
        #: Rounds of cosignature requests that did not reach the quorum.
        self.unpublished_rounds = 0
        #: Checkpoint attempts that failed in a row (storage, proofs); 0 once one succeeds.
        self.failures = 0
        #: The last round of cosignature requests (None before the first, or without notaries).
        self.last_round: CosignatureRound | None = None
        #: Called with each checkpoint once published: `auction.web.metrics`.
        self.on_publish: Callable[[LedgerHead], None] | None = None

    @property
    def published(self) -> LedgerHead | None:
        """The latest published checkpoint (what `/log/checkpoint` serves)."""
        return self._published

    @property
    def signed_head(self) -> LedgerHead | None:
        """The latest signed checkpoint, published or not: tiles are served up to its size so
        that notaries can check the entries before they co-sign."""
        return self._signed

    @property
    def notaries(self) -> tuple[NotaryEndpoint, ...]:
        return self._notaries

    def start(self) -> None:
        """Start the task (it signs at once whatever is not covered yet); `await stop()`."""
        self._task = asyncio.get_running_loop().create_task(self._run(), name="checkpoints")
        self.notify(urgent=True)

    def notify(self, urgent: bool = False) -> None:
        """Entries were committed; `urgent`: a lot closed, sign without waiting."""
        self._grown.set()
        if urgent:
            self._urgent.set()

    async def stop(self) -> None:
        """Sign a final checkpoint covering everything written, then end the task (cancelled
        after `stop_timeout` seconds if the store hangs)."""
        task, self._task = self._task, None
        if self._retry_timer is not None:
            self._retry_timer.cancel()
            self._retry_timer = None
        if task is None:
            return
        self._stopping = True
        self.notify(urgent=True)
        await _finish(task, self._stop_timeout)

    async def _run(self) -> None:
        while True:
            await self._grown.wait()
            if not self._urgent.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._urgent.wait(), self._delay)
            self._grown.clear()
            self._urgent.clear()
            stopping = self._stopping
            try:
                await self._checkpoint()
            except Exception as exc:  # the entries stay uncovered: log, wait, try again
                # Once per outage (a full disk fails every attempt): the first failure as an
                # error, the retries at debug level, and a line when checkpoints work again.
                log = logger.debug if self.failures else logger.error
                log("ledger checkpoint failed: %s", exc, exc_info=not isinstance(exc, StorageError))
                self.failures += 1
                if stopping:
                    return
                await asyncio.sleep(self._delay)
                self._grown.set()  # try again: the entries are still not covered
                continue
            if self.failures:
                logger.warning("ledger checkpoints work again after %d failures", self.failures)
                self.failures = 0
            if stopping:
                return
            if self._behind():
                self._schedule_retry()

    def pending(self) -> bool:
        """Whether entries were committed that no checkpoint attempt has covered yet."""
        return self._grown.is_set()

    def _behind(self) -> bool:
        signed, published = self._signed, self._published
        return signed is not None and (published is None or published.size < signed.size)

    def _schedule_retry(self) -> None:
        if self._retry_timer is not None or self._stopping:
            return

        def fire() -> None:
            self._retry_timer = None
            self.notify(urgent=True)

        self._retry_timer = asyncio.get_running_loop().call_later(self._retry, fire)

    async def _checkpoint(self) -> None:
        if self._signs is not None and not self._signs():
            await self._follow_signer()
            return
        head: LedgerHead | None = await self._run_blocking(self._ledger.sign_checkpoint)
        if head is None:
            return
        if self._signed is None or head.size > self._signed.size:
            self._signed = head
        if self._policy is None:  # no notaries in the policy: publish at once
            await self._publish(head)
            return
        if self._published is not None and head.size <= self._published.size:
            return
        note = await self._cosign(head)
        if note is not None:
            await self._publish(LedgerHead(head.size, head.root, note))

    async def _follow_signer(self) -> None:
        """Another instance signs (`auction.cluster`): serve what it signed and published."""
        published = await self._read(self._ledger.published_checkpoint)
        signed = await self._read(self._ledger.signed_checkpoint)
        if published is not None and (
            self._published is None or published.size > self._published.size
        ):
            self._published = published
        if signed is not None and (self._signed is None or signed.size > self._signed.size):
            self._signed = signed

    async def _cosign(self, head: LedgerHead) -> bytes | None:
        """Ask every notary to co-sign `head`; its note with the cosignatures if the policy's
        quorum co-signed, else None (fail-closed: it stays unpublished)."""
        assert self._policy is not None and self._session is not None
        start = self._published.size if self._published is not None else 0
        old_sizes = {n.name: self._sizes.get(n.name, start) for n in self._notaries}

        async def proof_for(old_size: int) -> Sequence[bytes]:
            proof: Sequence[bytes] = await self._read(
                self._ledger.ledger_consistency_proof, old_size, head.size
            )
            return proof

        result = await request_cosignatures(
            self._session,
            self._notaries,
            old_sizes,
            head.note,
            proof_for,
            timeout=self._notary_timeout,
        )
        self.last_round = result
        self._sizes.update(result.old_sizes)
        for refusal in result.refused:
            if refusal.kind == "ahead":
                # A size beyond this log's own tree cannot be proven from: remembering it would
                # never ask that notary again. Ask from the published size next time; a notary
                # that really is ahead says so again (409), one that was wrong co-signs.
                self._sizes.pop(refusal.notary, None)
        merged = result.merged()
        if quorum_met(self._policy, merged):
            if self._missing:
                logger.warning("checkpoint %d co-signed by the quorum: publishing", head.size)
            self._missing = frozenset()
            return merged
        self.unpublished_rounds += 1
        refusals = ", ".join(f"{r.notary}: {r.kind} {r.message[:80]}" for r in result.refused)
        missing = frozenset(r.notary for r in result.refused)
        log = logger.warning if missing != self._missing else logger.debug  # once per change
        self._missing = missing
        log(
            "checkpoint %d not published: %d of %d notaries co-signed, no quorum (%s)",
            head.size,
            len(result.cosigned),
            len(self._notaries),
            refusals,
        )
        return None

    async def _publish(self, head: LedgerHead) -> None:
        await self._run_blocking(self._ledger.publish_checkpoint, head)
        self._published = head
        self.signed += 1
        if self.on_publish is not None:
            self.on_publish(head)


# --- one lot, one writer ---------------------------------------------------------------------


@dataclass(slots=True)
class _Queued:
    ingress: int
    command: Any
    future: asyncio.Future[tuple[Any, ...]] | None
    timer_deadline: int | None = None
    request: SignedRequest | None = None
    order: Mapping[str, Any] | None = None  # who gave a court order (auction.court)
    #: Filled in once stored: the ledger seq of the command's entry (None if not reported).
    entry: list[int | None] = field(default_factory=lambda: [None])


#: Checks a command to a lot and its signed request at its ingress time; raises
#: `RequestRefused`.
RequestCheck = Callable[[str, Any, SignedRequest | None, int], None]


Publish = Callable[[LotUpdate], None]

#: Sends a command for a lot another instance writes there: `(lot, command, request)` to
#: `(events, entry seq)`, like `AuctionService.submit_logged`.
Forwarder = Callable[
    [str, Any, "SignedRequest | None"], Awaitable[tuple[tuple[Any, ...], int | None]]
]

#: A closed lot with nothing left to do leaves memory this long after its close (seconds).
DORMANT_AFTER_S = 600.0

#: After a failed write, the timer waits at least this long (seconds) before trying again.
RETRY_DELAY = 1.0


class LotActor:
    """The single writer of one lot. Built and driven by `AuctionService`.

    `submit` stamps the ingress time and queues the command; the actor task applies queued
    commands in order, in batches, stores each batch through the journal and only then resolves
    the futures and publishes. A timer sends `OpenLot` / `CloseLot` at the lot's next deadline.
    """

    def __init__(
        self,
        lot: StoredLot,
        *,
        journal: Journal,
        clock: Clock,
        publish: Publish,
        max_batch: int = 1000,
        check: RequestCheck | None = None,
    ) -> None:
        self.lot_id = lot.lot_id
        self._check = check
        self._lot = lot
        self._journal = journal
        self._clock = clock
        self._publish = publish
        self._max_batch = max_batch
        self._state = lot.state
        self._n = lot.commands
        self._bids = lot.bids
        self._view = LotView.of(lot, lot.state, lot.bids)
        self._queue: asyncio.Queue[_Queued | _Stop] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._last_ingress = 0
        self._closing = False
        self._in_flight: list[_Queued] = []
        self._timer: asyncio.TimerHandle | None = None
        self._timer_deadline: int | None = None
        self._timer_queued: int | None = None  # deadline of a timer command not yet applied
        self._abandoned: int | None = None  # a deadline whose command was refused for good
        self._retry_at = 0.0  # loop time before which the timer must not fire again

    @property
    def state(self) -> LotState:
        """The lot's state as of the last durable batch (contains bidder ids: trusted use)."""
        return self._state

    @property
    def view(self) -> LotView:
        """The public snapshot as of the last durable batch."""
        return self._view

    @property
    def commands(self) -> int:
        """How many commands of this lot are stored (the next history row's `n`)."""
        return self._n

    @property
    def idle(self) -> bool:
        """Nothing queued, nothing being stored."""
        return self._queue.empty() and not self._in_flight

    @property
    def leading(self) -> bool:
        """Whether this actor writes its lot (started); else it follows another instance's
        writes (`follow`)."""
        return self._task is not None

    @property
    def stored(self) -> StoredLot:
        """The lot as of the last durable batch (what a new actor for it starts from)."""
        return dataclasses.replace(self._lot, state=self._state, commands=self._n, bids=self._bids)

    def follow(self, n: int, ingress: int, command: Any) -> bool | None:
        """Apply the `n`-th command of this lot, stored by the instance that writes it, to this
        follower copy (the engine is deterministic: the same events as the writer's), and
        publish the update. Returns True if applied, False if this copy had it already, None
        if commands before it are missing (re-load the lot)."""
        if self.leading or n < self._n:
            return False
        if n > self._n:
            return None
        state, events = apply(self._state, command, ingress)
        changed = state is not self._state
        self._state, self._n = state, n + 1
        self._last_ingress = max(self._last_ingress, ingress)
        self._bids += sum(isinstance(event, BidAccepted) for event in events)
        if changed:
            self._view = LotView.of(self._lot, state, self._bids)
            self._publish(LotUpdate(self.lot_id, self._view, public_events(events)))
        return True

    def start(self) -> None:
        """Start the actor task and the timer; the owner must `await stop()` later."""
        self._task = asyncio.get_running_loop().create_task(self._run(), name=f"lot:{self.lot_id}")
        self._schedule()

    def submit(
        self, command: Any, request: SignedRequest | None = None
    ) -> asyncio.Future[tuple[Any, ...]]:
        """Stamp `command` with the ingress time and queue it; await the future for the events,
        which resolves only after the command is stored. Raises `ServiceClosed` when stopping.
        `request`: the bidder's signed request, checked at ingress and written to the entry."""
        if self._closing or self._task is None:
            raise ServiceClosed(f"lot {self.lot_id!r} is not taking commands")
        future: asyncio.Future[tuple[Any, ...]] = asyncio.get_running_loop().create_future()
        self._enqueue(command, future, None, request)
        return future

    async def submit_logged(
        self,
        command: Any,
        request: SignedRequest | None = None,
        order: Mapping[str, Any] | None = None,
    ) -> tuple[tuple[Any, ...], int | None]:
        """`submit`, then also the ledger seq of the command's entry once it is stored (None
        if the store does not report it, or the command was refused before the rules).
        `order`: who gave a court order, written to the entry (`auction.court`)."""
        if self._closing or self._task is None:
            raise ServiceClosed(f"lot {self.lot_id!r} is not taking commands")
        future: asyncio.Future[tuple[Any, ...]] = asyncio.get_running_loop().create_future()
        item = self._enqueue(command, future, None, request, order)
        events = await future
        return events, item.entry[0]

    async def stop(self, timeout: float = 10.0) -> None:
        """Refuse new commands, process what is queued, then end the task (cancelled after
        `timeout` seconds; the commands it still held fail with `ServiceClosed`)."""
        self._closing = True
        self._cancel_timer()
        task, self._task = self._task, None
        if task is None:
            return
        self._queue.put_nowait(_STOP)
        try:
            await _finish(task, timeout)
        finally:
            self._fail_leftovers()

    def _enqueue(
        self,
        command: Any,
        future: asyncio.Future[Any] | None,
        deadline: int | None,
        request: SignedRequest | None = None,
        order: Mapping[str, Any] | None = None,
    ) -> _Queued:
        # Rules: ingress time is the server time at receipt; never earlier than the previous
        # command of this lot, so that queue order and time order agree even if the clock steps.
        ingress = max(self._clock(), self._last_ingress)
        self._last_ingress = ingress
        item = _Queued(ingress, command, future, deadline, request, order)
        self._queue.put_nowait(item)
        return item

    async def _run(self) -> None:
        stopping = False
        while not stopping:
            item = await self._queue.get()
            if isinstance(item, _Stop):
                return
            batch = [item]
            while len(batch) < self._max_batch and not self._queue.empty():
                more = self._queue.get_nowait()
                if isinstance(more, _Stop):
                    stopping = True
                    break
                batch.append(more)
            self._in_flight = batch
            await self._process(batch)
            self._in_flight = []

    async def _process(self, batch: list[_Queued]) -> None:
        state, n, bids = self._state, self._n, self._bids
        records: list[HistoryRecord] = []
        recorded: list[_Queued] = []
        answers: list[tuple[_Queued, tuple[Any, ...] | BaseException]] = []
        published: list[Any] = []
        for item in batch:
            try:
                if self._check is not None:  # signed bids: before the rules, never logged
                    self._check(self.lot_id, item.command, item.request, item.ingress)
                state_after, events = apply(state, item.command, item.ingress)
            except (RulesError, RequestRefused) as exc:  # refused before the rules ran
                answers.append((item, exc))
                continue
            records.append(
                HistoryRecord.of(
                    self.lot_id, n, item.ingress, item.command, events, item.request, item.order
                )
            )
            recorded.append(item)
            n += 1
            bids += sum(isinstance(event, BidAccepted) for event in events)
            state = state_after
            answers.append((item, events))
            published.extend(events)
        try:
            if records:
                seqs = await self._journal.append(records)
                if seqs is not None and len(seqs) == len(recorded):
                    for item, seq in zip(recorded, seqs, strict=True):
                        item.entry[0] = seq
        except Exception as exc:  # nothing was stored: the lot stays as it was
            self._retry_at = asyncio.get_running_loop().time() + RETRY_DELAY
            for item, _ in answers:
                self._settle_timer(item, None)
                _fail(item.future, exc)
            self._schedule()
            return
        changed = state is not self._state
        self._state, self._n, self._bids = state, n, bids
        if changed:
            self._view = LotView.of(self._lot, state, bids)
        for item, answer in answers:
            self._settle_timer(item, answer)
            if item.future is not None and not item.future.done():
                if isinstance(answer, BaseException):
                    item.future.set_exception(answer)
                else:
                    item.future.set_result(answer)
        if changed:
            self._publish(LotUpdate(self.lot_id, self._view, public_events(published)))
        self._schedule()

    # -- the timer (rules C6 closing procedure) --

    def _settle_timer(self, item: _Queued, answer: tuple[Any, ...] | BaseException | None) -> None:
        if item.timer_deadline is None:
            return
        self._timer_queued = None
        if isinstance(answer, tuple):
            refusal = rejection(answer)
            if refusal is not None and refusal.reason is not RejectReason.NOT_DUE:
                # Refused for good (e.g. the lot was cancelled meanwhile): never resend it for
                # the same deadline, or a wrong deadline would loop forever.
                self._abandoned = item.timer_deadline

    def _schedule(self) -> None:
        if self._closing or self._timer_queued is not None:
            return
        deadline = self._state.next_deadline()
        if deadline is None or deadline == self._abandoned:
            self._cancel_timer()
            return
        if self._timer is not None and self._timer_deadline == deadline:
            return
        self._cancel_timer()
        loop = asyncio.get_running_loop()
        delay = max(0.0, (deadline - self._clock()) / 1e6, self._retry_at - loop.time())
        self._timer = loop.call_later(delay, self._fire, deadline)
        self._timer_deadline = deadline

    def _fire(self, deadline: int) -> None:
        self._timer = None
        self._timer_deadline = None
        if self._closing:
            return
        if self._clock() < deadline:  # woke early (timer granularity, clock step): wait more
            self._schedule()
            return
        command = OpenLot() if self._state.status is LotStatus.SCHEDULED else CloseLot()
        self._timer_queued = deadline
        self._enqueue(command, None, deadline)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = None
        self._timer_deadline = None

    def _fail_leftovers(self) -> None:
        error = ServiceClosed(f"lot {self.lot_id!r} stopped before the command was stored")
        for item in self._in_flight:
            _fail(item.future, error)
        self._in_flight = []
        while not self._queue.empty():
            queued = self._queue.get_nowait()
            if isinstance(queued, _Queued):
                _fail(queued.future, error)


class _NoJournal:
    """The journal of a follower copy, which never writes."""

    async def append(self, records: Sequence[HistoryRecord]) -> Sequence[int]:
        raise NotWriter("a follower copy of a lot does not write")


_NO_JOURNAL = _NoJournal()


def _fail(future: asyncio.Future[Any] | None, error: BaseException) -> None:
    if future is not None and not future.done():
        future.set_exception(error)


async def _finish(task: asyncio.Task[Any], timeout: float) -> None:
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


# --- the service -----------------------------------------------------------------------------


class AuctionService:
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
        self._identities = IdentityBook()

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
                self._identities = await self._blocking(self._store.identity_book)
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
        self, lot_id: str, command: Any, *, request: SignedRequest | None = None
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
        request: SignedRequest | None = None,
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
        if request is not None and not isinstance(request, SignedRequest):
            raise RequestRefused(SignedBidError.MALFORMED, "request must be a SignedRequest")
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
            self._learn(seqs[0], record, signer)
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

    # -- several instances (auction.cluster) --

    @property
    def clustered(self) -> bool:
        return self._clustered

    def leads(self, lot_id: str) -> bool:
        """Whether this instance writes `lot_id` (always, for a single server)."""
        actor = self._actors.get(lot_id)
        return actor is not None and (actor.leading or not self._clustered)

    def led(self) -> list[str]:
        """The lots this instance writes now."""
        return [lot_id for lot_id, actor in self._actors.items() if actor.leading]

    async def lead(self, lot_id: str) -> LotView | None:
        """Start writing `lot_id` (this instance was given it: `auction.cluster`): from the
        follower copy when it has every stored command of the lot, else rebuilt from its
        stored history; the actor and timer replace the follower copy. None if the lot is
        not stored."""
        self._check_running()
        current = self._actors.get(lot_id)
        if current is not None and current.leading:
            return current.view
        lot: StoredLot | None = None
        count = getattr(self._store, "lot_commands", None)
        if current is not None and count is not None:
            # The follower copy applied every command the ledger has of the lot so far (the
            # caller caught up after the previous writer was fenced out): when it holds as
            # many as are stored, it is the lot as stored, and the takeover reads no history.
            if await self.read(count, lot_id) == current.commands:
                lot = current.stored
        if lot is None:
            lot = await self.read(self._load_lot, lot_id)
        if lot is None:
            return None
        self._check_running()
        current = self._actors.get(lot_id)
        if current is not None and current.leading:
            return current.view
        actor = self._start_actor(lot)
        self._publish(LotUpdate(lot_id, actor.view, ()))
        return actor.view

    async def step_down(self, lot_id: str) -> None:
        """Stop writing `lot_id` (it was lost, or this instance stops): the actor stores what
        it had queued (fenced writes fail), then a follower copy replaces it."""
        actor = self._actors.get(lot_id)
        if actor is None or not actor.leading:
            return
        await actor.stop(self._stop_timeout)
        if self._actors.get(lot_id) is actor:
            self._follow_lot(actor.stored)

    async def adopt(self, lot_id: str) -> LotView | None:
        """A lot another instance added: load it and follow it."""
        if lot_id in self._actors:
            return self._actors[lot_id].view
        lot = await self.read(self._load_lot, lot_id)
        if lot is None or lot_id in self._actors or not self._running:
            return None
        actor = self._follow_lot(lot)
        self._publish(LotUpdate(lot_id, actor.view, ()))
        return actor.view

    async def reload(self, lot_id: str) -> None:
        """Re-load a follower copy from the database (it missed commands)."""
        actor = self._actors.get(lot_id)
        if actor is None or actor.leading:
            return
        lot = await self.read(self._load_lot, lot_id)
        if lot is not None and self._actors.get(lot_id) is actor:
            self._follow_lot(lot)
            self._publish(LotUpdate(lot_id, self._actors[lot_id].view, ()))

    def follow(self, lot_id: str, n: int, ingress: int, command: Any) -> bool | None:
        """Apply a command another instance stored to the follower copy (`LotActor.follow`);
        False for an unknown lot or one this instance writes."""
        actor = self._actors.get(lot_id)
        if actor is None:
            return False
        return actor.follow(n, ingress, command)

    def learn(self, seq: int, entry_type: str, time_us: int, body: Any, kid: str) -> None:
        """A `key` or `idv` entry another instance stored: the identity book learns it."""
        book = self._identities.copy()
        try:
            if entry_type == EntryType.KEY:
                book.key(body)
            elif entry_type == EntryType.IDV:
                book.idv(seq, time_us, body, kid)
            else:
                return
        except SignedBidError as exc:
            logger.error("ledger entry %d does not update the identity book: %s", seq, exc)
            return
        self._identities = book

    def ledger_grew(self, closed: bool) -> None:
        """Entries were stored (by another instance): a checkpoint is due."""
        if self._checkpointer is not None:
            self._checkpointer.notify(urgent=closed)

    def _load_lot(self, lot_id: str) -> StoredLot | None:
        load = getattr(self._store, "load_lot", None)
        if load is None:
            raise ServiceError("this store cannot load one lot")
        result: StoredLot | None = load(lot_id)
        return result

    def _follow_lot(self, lot: StoredLot) -> LotActor:
        actor = LotActor(
            lot,
            journal=self._writer or _NO_JOURNAL,
            clock=self._clock,
            publish=self._publish,
            max_batch=self._max_batch,
            check=self._check_request,
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

    def _learn(self, seq: int, record: LedgerRecord, signer: Ed25519Signer | None) -> None:
        """Apply a stored `key` / `idv` entry to the service's identity book (the store
        checked it already; a key seen before changes nothing)."""
        book = self._identities.copy()
        try:
            if record.entry_type is EntryType.KEY:
                book.key(record.body)
            else:
                kid = signer.vkey if signer is not None else None
                book.idv(seq, record.time_us, record.body, kid)
        except SignedBidError as exc:  # the store refuses what the book refuses
            logger.error("ledger entry %d does not update the identity book: %s", seq, exc)
            return
        self._identities = book

    def _check_request(
        self, lot_id: str, command: Any, request: SignedRequest | None, ingress: int
    ) -> None:
        try:
            self._identities.check(lot_id, command, request, ingress)
        except SignedBidError as exc:
            raise RequestRefused(exc.reason, exc.message) from exc

    def _start_actor(self, lot: StoredLot) -> LotActor:
        assert self._writer is not None
        actor = LotActor(
            lot,
            journal=self._writer,
            clock=self._clock,
            publish=self._publish,
            max_batch=self._max_batch,
            check=self._check_request,
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


__all__ = [
    "ACTIVE_STATUSES",
    "CHECKPOINT_DELAY",
    "AuctionService",
    "Checkpointer",
    "GroupCommitter",
    "IdentityStore",
    "Journal",
    "LedgerStore",
    "LotActor",
    "LotExists",
    "LotUpdate",
    "LotView",
    "NotWriter",
    "RequestRefused",
    "ServiceClosed",
    "ServiceError",
    "Store",
    "Subscription",
    "public_events",
]
