"""One lot, one writer: the actor that applies, stores and publishes a lot's commands."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..rules import (
    BidAccepted,
    CloseLot,
    LotState,
    LotStatus,
    OpenLot,
    RejectReason,
    RulesError,
    apply,
    rejection,
)
from ..storage import (
    Clock,
    HistoryRecord,
    StoredLot,
)
from ..verify import SignedBid
from .errors import NotWriter, RequestRefused, ServiceClosed
from .ports import Journal
from .tasks import STOP, Stop, fail, finish, take_batch
from .views import LotUpdate, LotView, public_events


@dataclass(slots=True)
class _Queued:
    ingress: int
    command: Any
    future: asyncio.Future[tuple[Any, ...]] | None
    timer_deadline: int | None = None
    request: SignedBid | None = None
    order: Mapping[str, Any] | None = None  # who gave a court order (auction.court)
    #: Filled in once stored: the ledger seq of the command's entry (None if not reported).
    entry: list[int | None] = field(default_factory=lambda: [None])


#: Checks a command to a lot and its signed request at its ingress time; raises
#: `RequestRefused`.
RequestCheck = Callable[[str, Any, SignedBid | None, int], None]

Publish = Callable[[LotUpdate], None]

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
        self._queue: asyncio.Queue[_Queued | Stop] = asyncio.Queue()
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
        self, command: Any, request: SignedBid | None = None
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
        request: SignedBid | None = None,
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
        self._queue.put_nowait(STOP)
        try:
            await finish(task, timeout)
        finally:
            self._fail_leftovers()

    def _enqueue(
        self,
        command: Any,
        future: asyncio.Future[Any] | None,
        deadline: int | None,
        request: SignedBid | None = None,
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
        while True:
            batch, stopping = await take_batch(self._queue, self._max_batch, _one)
            if batch:
                self._in_flight = batch
                await self._process(batch)
                self._in_flight = []
            if stopping:
                return

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
                fail(item.future, exc)
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
            fail(item.future, error)
        self._in_flight = []
        while not self._queue.empty():
            queued = self._queue.get_nowait()
            if isinstance(queued, _Queued):
                fail(queued.future, error)


class NoJournal:
    """The journal of a follower copy, which never writes."""

    async def append(self, records: Sequence[HistoryRecord]) -> Sequence[int]:
        raise NotWriter("a follower copy of a lot does not write")


NO_JOURNAL = NoJournal()


def _one(item: _Queued) -> int:
    return 1
