"""The service over a real store: durable acks, ingress order, timers, close-with-drain."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from auction.rules import (
    SECOND,
    CommandError,
    DepositFrozen,
    LotRules,
    LotState,
    LotStatus,
    OpenLot,
    PlaceBid,
    RegisterBidder,
    Rejected,
    RejectReason,
    SetMax,
    english_timed,
    judicial,
    live_auctioneer,
)
from auction.service import (
    AuctionService,
    LotExists,
    ServiceClosed,
    ServiceError,
    Subscription,
)
from auction.storage import HistoryRecord, Storage, StorageUnavailable, StoredLot

T0 = 1_700_000_000 * SECOND


class GatedStore:
    """A real `Storage` whose commits can be held back (`close_gate`) or made to fail once."""

    def __init__(self, inner: Storage) -> None:
        self.inner = inner
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()  # a commit is waiting at the closed gate
        self.fail_next: Exception | None = None
        self.batches: list[int] = []
        self.closed = False

    def close_gate(self) -> None:
        self.entered.clear()
        self.gate.clear()

    def open_gate(self) -> None:
        self.gate.set()

    def load(self) -> list[StoredLot]:
        return self.inner.load()

    def add_sale(self, sale_id: str, title: str) -> None:
        self.inner.add_sale(sale_id, title)

    def add_lot(
        self, lot_id: str, rules: LotRules, title: str, sale_id: str | None = None
    ) -> StoredLot:
        return self.inner.add_lot(lot_id, rules, title, sale_id)

    def append(self, records: Sequence[HistoryRecord]) -> None:
        if not self.gate.is_set():
            self.entered.set()
            assert self.gate.wait(10), "the test never opened the gate"
        if self.fail_next is not None:
            error, self.fail_next = self.fail_next, None
            raise error
        self.inner.append(records)
        self.batches.append(len(records))

    def close(self) -> None:
        self.gate.set()
        self.inner.close()
        self.closed = True


class FakeClock:
    """A settable clock; `tick` > 0 makes every reading later than the previous one."""

    def __init__(self, now: int, tick: int = 0) -> None:
        self.now = now
        self.tick = tick

    def __call__(self) -> int:
        self.now += self.tick
        return self.now


def real_clock() -> int:
    import time

    return time.time_ns() // 1000


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
async def gated(data_dir: Path) -> AsyncIterator[GatedStore]:
    store = GatedStore(Storage.open(data_dir))
    try:
        yield store
    finally:
        store.open_gate()


def open_judicial(now: int, *, end_in: int = 60 * SECOND, window: int = 5 * SECOND) -> LotRules:
    return judicial(
        start_price=1_000_000,
        step=10_000,
        start_at=now,
        end_at=now + end_in,
        min_duration=0,
        window=window,
        extend=window,
    )


async def registered(service: AuctionService, lot_id: str, *bidders: str) -> None:
    state = service.state(lot_id)
    assert state is not None
    for bidder in bidders:
        events = await service.submit(
            lot_id, RegisterBidder(bidder=bidder, code=f"C-{bidder}", kyc_verified=True)
        )
        assert not isinstance(events[0], Rejected), events
        if state.rules.deposit_required:
            frozen = DepositFrozen(bidder=bidder, amount=state.rules.deposit, reference=bidder)
            events = await service.submit(lot_id, frozen)
            assert not isinstance(events[0], Rejected), events


async def until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.01)


def status(service: AuctionService, lot_id: str) -> str:
    view = service.view(lot_id)
    assert view is not None
    return view.status


async def test_acknowledges_only_after_the_row_is_durable(
    gated: GatedStore, data_dir: Path
) -> None:
    async with AuctionService(gated) as service:
        await service.add_lot("flat", open_judicial(real_clock()), "Flat")
        await until(lambda: status(service, "flat") == "OPEN")
        async with service.subscription() as updates:
            gated.close_gate()
            submit = asyncio.create_task(
                service.submit("flat", RegisterBidder(bidder="a", code="A-1", kyc_verified=True))
            )
            assert await asyncio.to_thread(gated.entered.wait, 5)
            await asyncio.sleep(0.05)
            assert not submit.done()  # the commit is being held: no acknowledgement yet
            with Storage.open(data_dir) as reader:
                assert len(reader.history("flat")) == 1  # only the OpenLot of the timer
            waiting = asyncio.create_task(updates.next())
            await asyncio.sleep(0.05)
            assert not waiting.done()  # nothing published before it is stored
            assert service.view("flat") is not None and service.view("flat").seq == 1  # type: ignore[union-attr]

            gated.open_gate()
            events = await submit
            assert [type(e).__name__ for e in events] == ["BidderRegistered"]
            with Storage.open(data_dir) as reader:
                assert [type(r.command).__name__ for r in reader.history("flat")] == [
                    "OpenLot",
                    "RegisterBidder",
                ]
            (update,) = await waiting
            assert update.lot_id == "flat" and update.view.seq == 2
            assert update.events == ()  # a registration is not public


async def test_commands_are_applied_in_ingress_order_and_group_committed(
    gated: GatedStore, data_dir: Path
) -> None:
    clock = FakeClock(T0, tick=1)
    async with AuctionService(gated, clock=clock) as service:
        await service.add_lot("flat", open_judicial(T0), "Flat")
        await until(lambda: status(service, "flat") == "OPEN")
        gated.close_gate()
        first = asyncio.create_task(
            service.submit("flat", RegisterBidder(bidder="b00", code="C-00", kyc_verified=True))
        )
        assert await asyncio.to_thread(gated.entered.wait, 5)  # the actor holds one commit
        later = [
            asyncio.create_task(
                service.submit(
                    "flat", RegisterBidder(bidder=f"b{i:02d}", code=f"C-{i:02d}", kyc_verified=True)
                )
            )
            for i in range(1, 50)
        ]
        await asyncio.sleep(0.05)  # every submission is stamped and queued meanwhile
        gated.open_gate()
        await asyncio.gather(first, *later)
        state = service.state("flat")
        assert state is not None and list(state.bidders) == [f"b{i:02d}" for i in range(50)]
        assert gated.batches[-2:] == [1, 49]  # the 49 queued commands went in one transaction
    with Storage.open(data_dir) as reader:
        history = reader.history("flat")
    bidders = [r.command.bidder for r in history if isinstance(r.command, RegisterBidder)]
    assert bidders == [f"b{i:02d}" for i in range(50)]
    ingress = [r.ingress_us for r in history]
    assert ingress == sorted(ingress) and len(set(ingress)) == len(ingress)
    assert [r.n for r in history] == list(range(len(history)))


async def test_close_drains_queued_bids_and_reschedules(gated: GatedStore, data_dir: Path) -> None:
    window = SECOND // 2
    async with AuctionService(gated) as service:
        now = real_clock()
        await service.add_lot("flat", open_judicial(now, end_in=SECOND, window=window), "Flat")
        await registered(service, "flat", "alice", "bob")
        await until(lambda: status(service, "flat") == "OPEN")
        await service.submit("flat", PlaceBid(bidder="alice", amount=1_000_000, currency="CNY"))
        view = service.view("flat")
        assert view is not None
        end = view.end
        await asyncio.sleep(max(0.0, (end - 250_000 - real_clock()) / 1e6))

        gated.close_gate()  # storage stalls just before the end ...
        bob = asyncio.create_task(
            service.submit("flat", PlaceBid(bidder="bob", amount=1_010_000, currency="CNY"))
        )
        assert await asyncio.to_thread(gated.entered.wait, 5)
        alice = asyncio.create_task(
            service.submit("flat", PlaceBid(bidder="alice", amount=1_020_000, currency="CNY"))
        )
        await asyncio.sleep(max(0.0, (end - real_clock()) / 1e6) + 0.1)
        # ... the end passed while both bids were queued; the timer's CloseLot queued behind them
        assert real_clock() > end and not bob.done() and not alice.done()
        gated.open_gate()
        for bid in (bob, alice):
            (accepted, *_) = await bid
            assert type(accepted).__name__ == "BidAccepted"
        await until(lambda: status(service, "flat") == "SOLD", timeout=5)
        state = service.state("flat")
        assert state is not None and state.leader == "alice" and state.price == 1_020_000

    with Storage.open(data_dir) as reader:
        history = reader.history("flat")
    tail = [(type(r.command).__name__, r.accepted, r) for r in history[-4:]]
    assert [(name, accepted) for name, accepted, _ in tail] == [
        ("PlaceBid", True),  # bob, ingress before the end
        ("PlaceBid", True),  # alice, ingress before the end: extends it again
        ("CloseLot", False),  # NOT_DUE: the drained bids moved the end
        ("CloseLot", True),  # rescheduled at the new end
    ]
    bob_row, alice_row, early_close, close = (record for _, _, record in tail)
    assert bob_row.ingress_us < end and alice_row.ingress_us < end
    assert early_close.ingress_us >= end
    assert early_close.events[0].reason is RejectReason.NOT_DUE
    final_end = alice_row.ingress_us + window  # rules C6 FROM_BID: end := t + E
    assert early_close.events[0].end == final_end
    assert close.ingress_us >= final_end
    assert close.events[0].end_final == final_end and close.events[0].winner == "alice"


async def test_timer_opens_and_closes_a_lot_without_bids(data_dir: Path) -> None:
    now = real_clock()
    rules = english_timed(start_price=5_000, start_at=now + 100_000, end_at=now + 300_000)
    async with AuctionService(Storage.open(data_dir)) as service:
        await service.add_lot("lamp", rules, "Lamp")
        assert status(service, "lamp") == "SCHEDULED"
        await until(lambda: status(service, "lamp") == "FAILED")
    with Storage.open(data_dir) as reader:
        history = reader.history("lamp")
    assert [(type(r.command).__name__, r.accepted) for r in history] == [
        ("OpenLot", True),
        ("CloseLot", True),
    ]
    assert history[0].ingress_us >= rules.start_at and history[1].ingress_us >= rules.end_at


async def test_a_refused_timer_command_is_not_resent_forever(data_dir: Path) -> None:
    # Whatever a lot reports as its deadline, the actor sends at most one command for it.
    rules = live_auctioneer(start_price=10_000, start_at=real_clock())
    async with AuctionService(Storage.open(data_dir)) as service:
        await service.add_lot("vase", rules, "Vase")
        await asyncio.sleep(0.3)
        assert status(service, "vase") == "SCHEDULED"
    with Storage.open(data_dir) as reader:
        assert len(reader.history("vase")) <= 1


async def test_unknown_lot_and_bad_input(data_dir: Path) -> None:
    async with AuctionService(Storage.open(data_dir)) as service:
        (event,) = await service.submit("nope", PlaceBid(bidder="a", amount=1, currency="CNY"))
        assert isinstance(event, Rejected) and event.reason is RejectReason.UNKNOWN_LOT
        with pytest.raises(CommandError):
            await service.submit("nope", "PlaceBid please")
        await service.add_lot("flat", open_judicial(real_clock()), "Flat")
        with pytest.raises(LotExists):
            await service.add_lot("flat", open_judicial(real_clock()), "Flat")
    with pytest.raises(ServiceClosed):
        await service.submit("flat", OpenLot())
    with Storage.open(data_dir) as reader:
        assert reader.counts().lots == 1


async def test_a_failed_commit_changes_nothing(gated: GatedStore) -> None:
    async with AuctionService(gated) as service:
        await service.add_lot("flat", open_judicial(real_clock()), "Flat")
        await until(lambda: status(service, "flat") == "OPEN")
        before = service.state("flat")
        gated.fail_next = StorageUnavailable("disk on fire")
        with pytest.raises(StorageUnavailable, match="disk on fire"):
            await service.submit("flat", RegisterBidder(bidder="a", code="A-1", kyc_verified=True))
        assert service.state("flat") is before
        events = await service.submit(
            "flat", RegisterBidder(bidder="a", code="A-1", kyc_verified=True)
        )
        assert type(events[0]).__name__ == "BidderRegistered" and events[0].seq == 2
        history = gated.inner.history("flat")
        assert [(r.n, type(r.command).__name__) for r in history] == [
            (0, "OpenLot"),
            (1, "RegisterBidder"),  # numbering continues where the failed batch would have
        ]


async def test_stop_drains_what_was_queued(data_dir: Path) -> None:
    service = AuctionService(Storage.open(data_dir))
    await service.start()
    await service.add_lot("flat", open_judicial(real_clock()), "Flat")
    futures = [
        asyncio.ensure_future(
            service.submit("flat", RegisterBidder(bidder=f"b{i}", code=f"C{i}", kyc_verified=True))
        )
        for i in range(20)
    ]
    await asyncio.sleep(0)  # every submission is stamped and queued
    await service.stop()
    results = await asyncio.gather(*futures)
    assert all(type(events[0]).__name__ == "BidderRegistered" for events in results)
    with Storage.open(data_dir) as reader:
        registrations = [r for r in reader.history("flat") if isinstance(r.command, RegisterBidder)]
        assert len(registrations) == 20
    await service.stop()  # idempotent


async def test_subscribers_get_coalesced_public_updates(data_dir: Path) -> None:
    now = real_clock()
    rules = english_timed(start_price=10_000, start_at=now, end_at=now + 60 * SECOND)
    async with AuctionService(Storage.open(data_dir)) as service:
        await service.add_lot("watch", rules, "Watch")
        await until(lambda: status(service, "watch") == "OPEN")
        await registered(service, "watch", "alice", "bob")
        slow = service.subscribe(max_events=4)  # never reads until the end
        async with service.subscription() as fast:
            await service.submit("watch", SetMax(bidder="alice", amount=50_000, currency="USD"))
            (update,) = await fast.next()
            assert update.view.leader_code == "C-alice" and update.view.price == 10_000
            names = [event["type"] for event in update.events]
            assert "MaxSet" not in names and "BidAccepted" in names  # maxima stay private
            for event in update.events:
                assert not {"bidder", "leader", "winner"} & set(event)
            for amount in range(11_000, 30_000, 1_000):
                await service.submit("watch", PlaceBid(bidder="bob", amount=amount, currency="USD"))
        assert fast.closed
        (coalesced,) = await slow.next()  # one pending update for the lot, however many bids
        assert coalesced.gap and len(coalesced.events) == 4
        assert coalesced.view == service.view("watch")
        assert coalesced.view.price is not None and coalesced.view.price > 29_000
        assert "reserve" not in coalesced.view.to_json()
        service.unsubscribe(slow)
        assert await slow.next() == []


async def test_a_new_lot_is_announced_to_subscribers(data_dir: Path) -> None:
    now = real_clock()
    rules = english_timed(start_price=10_000, start_at=now + 60 * SECOND, end_at=now + 120 * SECOND)
    async with AuctionService(Storage.open(data_dir)) as service:
        async with service.subscription() as updates:
            view = await service.add_lot("watch", rules, "Watch")
            (update,) = await asyncio.wait_for(updates.next(), 5)
            assert update.lot_id == "watch" and update.events == () and not update.gap
            assert update.view == view and view.status == "SCHEDULED"


async def test_the_service_owns_the_store_and_starts_once(
    gated: GatedStore, data_dir: Path
) -> None:
    never_started = AuctionService(gated)
    await never_started.stop()
    assert gated.closed

    store = GatedStore(Storage.open(data_dir))
    service = AuctionService(store)
    await service.start()
    with pytest.raises(ServiceError, match="starts once"):
        await service.start()
    await service.stop()
    assert store.closed and not service.running
    with pytest.raises(ServiceError):
        await service.start()


async def test_a_subscription_ends_when_the_service_stops(data_dir: Path) -> None:
    service = AuctionService(Storage.open(data_dir))
    await service.start()
    subscription: Subscription = service.subscribe()
    received = asyncio.create_task(_collect(subscription))
    await service.stop()
    assert await received == []


async def _collect(subscription: Subscription) -> list[object]:
    return [update async for update in subscription]


@pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
async def test_restart_rebuilds_the_same_lots(
    backend: str, data_dir: Path, request: pytest.FixtureRequest, lot_scenarios: list[Any]
) -> None:
    target = str(data_dir) if backend == "sqlite" else request.getfixturevalue("postgres_url")
    clock = FakeClock(min(s.commands[0][0] for s in lot_scenarios) - SECOND)
    async with AuctionService(Storage.open(target), clock=clock) as service:
        for scenario in lot_scenarios:
            await service.add_lot(scenario.lot_id, scenario.rules, scenario.title)
        for scenario in lot_scenarios:
            for now, command in scenario.commands:
                clock.now = now
                await service.submit(scenario.lot_id, command)
        states = {s.lot_id: service.state(s.lot_id) for s in lot_scenarios}
        views = service.views()
    statuses = {state.status for state in states.values() if state is not None}
    assert {LotStatus.SOLD, LotStatus.FAILED, LotStatus.CANCELLED} <= statuses

    async with AuctionService(Storage.open(target), clock=clock) as restarted:
        assert {s.lot_id: restarted.state(s.lot_id) for s in lot_scenarios} == states
        assert restarted.views() == views
        assert all(isinstance(state, LotState) for state in states.values())


async def test_a_lot_closed_long_ago_sleeps_and_a_command_wakes_it(data_dir: Path) -> None:
    """A closed lot with nothing left to do leaves memory (its view stays); a command reloads
    it from its stored history and gets the engine's answer; it sleeps again later."""
    now = real_clock()
    rules = open_judicial(now + 50_000, end_in=300_000, window=50_000)
    later = open_judicial(now + 3600 * SECOND)
    async with AuctionService(Storage.open(data_dir), dormant_after_s=0.2) as service:
        await service.add_lot("lamp", rules, "Lamp")
        await service.add_lot("desk", later, "Desk")
        await registered(service, "lamp", "b1")
        await until(lambda: status(service, "lamp") == "OPEN")
        await service.submit("lamp", PlaceBid("b1", 1_000_000, rules.currency, "k1"))
        await until(lambda: status(service, "lamp") == "SOLD")
        closed = service.view("lamp")
        await until(lambda: service.dormant("lamp"), 3.0)
        assert service.state("lamp") is None and service.view("lamp") == closed
        assert [v.lot_id for v in service.views()] == ["lamp", "desk"]  # catalogue order
        assert not service.dormant("desk") and service.state("desk") is not None
        events = await service.submit("lamp", PlaceBid("b1", 2_000_000, rules.currency, "k2"))
        assert isinstance(events[0], Rejected)  # woken, replayed, refused: the lot is closed
        state = service.state("lamp")
        assert state is not None and state.price == 1_000_000 and state.leader == "b1"
        await until(lambda: service.dormant("lamp"), 3.0)
        woken = await service.full_state("lamp")
        assert woken is not None and woken.bidders.keys() == {"b1"}
    with Storage.open(data_dir) as reader:
        assert [type(r.command).__name__ for r in reader.history("lamp")][-1] == "PlaceBid"
