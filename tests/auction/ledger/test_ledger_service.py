"""The ledger through the auction: one entry per command in the group commit, sales, the house
key, restarts, the signed-head lock between two stores, and the checkpoint cadence."""

from __future__ import annotations

import asyncio
import os
import stat
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine

from auction.rules import (
    SECOND,
    LotState,
    PlaceBid,
    RegisterBidder,
    Result,
    SoftClose,
    SoftCloseMode,
    apply,
    english_timed,
)
from auction.service import AuctionService
from auction.storage import (
    HOUSE_KEY_FILE,
    POLICY_FILE,
    CheckpointConflict,
    HistoryRecord,
    LedgerCorrupt,
    LedgerRecord,
    Storage,
)
from auction.verify import LedgerReplay, command_body, entry_type_for
from chain import (
    Entry,
    EntryType,
    parse_entry,
    parse_policy,
    parse_vkey,
    verify_actor,
    verify_consistency,
    verify_successor,
)
from chain import store as ledger_store


class FakeClock:
    def __init__(self, now: int) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


def real_clock() -> int:
    return time.time_ns() // 1000


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgres":
        url: str = request.getfixturevalue("postgres_url")
        return url
    return str(tmp_path / "data")


def body_of(entry: Entry) -> dict[str, Any]:
    """The entry's body as plain dicts and lists."""
    body: dict[str, Any] = entry.to_json()["body"]
    return body


def entries_of(store: Storage) -> list[Entry]:
    """The stored entries as published: bidders by their per-lot aliases, values sealed."""
    return [parse_entry(data) for data in store.ledger_entries(0, store.ledger_size())]


def opened_of(store: Storage) -> list[Entry]:
    """The stored entries with their sealed values opened (account ids, signed requests)."""
    return [parse_entry(data) for data in store.ledger_entries_opened(0, store.ledger_size())]


def replay_of(store: Storage, entries: list[Entry]) -> LedgerReplay:
    """`entries` replayed as the auditor does: each sealed value opened with the stored
    openings and checked against its commitment."""
    replay = LedgerReplay(openings=store.ledger_openings(0, len(entries)).get)
    for entry in entries:
        replay.add(entry.seq, entry.type.value, entry.time_us, entry.body, entry.actor.kid)
    return replay


def check_chain(entries: Sequence[Entry]) -> None:
    """seq/prev/time chain and every actor signature under the house key of entry 0."""
    house = entries[0]
    assert house.type is EntryType.HOUSE and house.seq == 0
    key = parse_vkey(str(house.body["vkey"]))
    previous = None
    for entry in entries:
        verify_successor(previous, entry)
        assert entry.actor.kid == house.body["vkey"]
        verify_actor(entry, key.public_key)
        previous = entry


async def run_scenarios(service: AuctionService, clock: FakeClock, scenarios: list[Any]) -> None:
    for scenario in scenarios:
        await service.add_lot(scenario.lot_id, scenario.rules, scenario.title)
    for scenario in scenarios:
        for now, command in scenario.commands:
            clock.now = now
            await service.submit(scenario.lot_id, command)


async def test_every_command_is_one_entry_and_the_ledger_replays(
    target: str, lot_scenarios: list[Any]
) -> None:
    clock = FakeClock(min(s.commands[0][0] for s in lot_scenarios) - SECOND)
    async with AuctionService(Storage.open(target), clock=clock) as service:
        await run_scenarios(service, clock, lot_scenarios)
        states = {s.lot_id: service.state(s.lot_id) for s in lot_scenarios}
    with Storage.open(target) as store:
        entries = entries_of(store)
        opened = opened_of(store)
        replay = replay_of(store, entries)
        histories = {s.lot_id: store.history(s.lot_id) for s in lot_scenarios}
        head = store.published_checkpoint()
    check_chain(entries)
    assert head is not None and head.size == len(entries)  # the final checkpoint covers all

    skipped = (EntryType.HOUSE, EntryType.LOT, EntryType.SALE, EntryType.REVEAL)
    commands = [e for e in opened if e.type not in skipped]
    records = [record for rows in histories.values() for record in rows]
    assert len(commands) == len(records)  # exactly one entry per stored command
    by_lot_n = {(str(e.body["lot"]), e.body["n"]): e for e in commands}
    for record in records:
        entry = by_lot_n[(record.lot_id, record.n)]
        body = command_body(
            record.lot_id, record.n, record.ingress_us, record.command, record.events
        )
        assert body_of(entry) == body  # the body, exactly
        assert entry.type is entry_type_for(record.command)
        assert entry.time_us >= record.ingress_us
    assert [str(e.body["lot"]) for e in entries if e.type is EntryType.LOT] == [
        s.lot_id for s in lot_scenarios
    ]
    assert any(not e.body["accepted"] for e in commands)  # rejected commands are evidence too

    assert replay.unsold_closures() == []
    for lot_id, state in states.items():
        assert replay.lots[lot_id].state == state  # the ledger alone rebuilds every lot
    sold = [lot_id for lot_id, state in states.items() if state.result is Result.SOLD]
    sales = [e for e in entries if e.type is EntryType.SALE]
    assert sorted(str(e.body["lot"]) for e in sales) == sorted(sold) and replay.sales == len(sold)
    for sale in sales:
        sale_json = body_of(sale)
        close = entries[sale_json["close_entry"]]
        assert sale.seq == close.seq + 1  # right after the command that closed the lot
        closed = [e for e in body_of(close)["events"] if e["type"] == "LotClosed"]
        assert closed and closed[-1]["result"] == "SOLD"
        winning = entries[sale_json["winning_bid_entry"]]
        assert winning.type is EntryType.BID
        accepted = [e for e in body_of(winning)["events"] if e["type"] == "BidAccepted"]
        assert accepted and accepted[-1]["bidder"] == closed[-1]["winner"]


async def test_a_bid_is_acknowledged_only_once_its_entry_is_durable(tmp_path: Path) -> None:
    class GatedStorage(Storage):
        gate = threading.Event()
        entered = threading.Event()

        def append(self, records: Sequence[HistoryRecord | LedgerRecord]) -> list[int]:
            if not self.gate.is_set():
                self.entered.set()
                assert self.gate.wait(10)
            return super().append(records)

    data = tmp_path / "data"
    now = real_clock()
    rules = english_timed(start_price=10_000, start_at=now, end_at=now + 60 * SECOND)
    store = GatedStorage.open(data)
    store.gate.set()
    async with AuctionService(store) as service:
        await service.add_lot("watch", rules, "Watch")
        await service.submit("watch", RegisterBidder(bidder="a", code="A-1", kyc_verified=True))
        while service.view("watch").status != "OPEN":  # type: ignore[union-attr]
            await asyncio.sleep(0.01)
        store.gate.clear()
        bid = asyncio.create_task(
            service.submit("watch", PlaceBid(bidder="a", amount=10_000, currency="USD"))
        )
        assert await asyncio.to_thread(store.entered.wait, 5)
        await asyncio.sleep(0.05)
        assert not bid.done()  # the commit is held: no acknowledgement
        with Storage.open(data, read_only=True) as reader:
            before = [parse_entry(d) for d in reader.ledger_entries(0, reader.ledger_size())]
        assert not any(e.type is EntryType.BID for e in before)  # and no entry either
        store.gate.set()
        (accepted, *_) = await bid
        assert type(accepted).__name__ == "BidAccepted"
        with Storage.open(data, read_only=True) as reader:  # acknowledged: the entry is there
            after = [parse_entry(d) for d in reader.ledger_entries(0, reader.ledger_size())]
        (entry,) = [e for e in after if e.type is EntryType.BID]
        assert body_of(entry)["accepted"] is True and body_of(entry)["command"]["amount"] == 10_000


async def test_the_house_key_and_policy(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with Storage.open(data) as store:
        house = store.house
        assert house is not None and house.origin.startswith("gavel.local/")
        assert len(house.origin.removeprefix("gavel.local/")) == 16
        (entry,) = entries_of(store)
        assert entry.body == {
            "v": 1,
            "origin": house.origin,
            "name": "Gavel auction house",
            "vkey": house.vkey,
        }
    key_file = data / HOUSE_KEY_FILE
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert key_file.read_text().startswith(f"PRIVATE+KEY+{house.origin}+")
    policy = parse_policy((data / POLICY_FILE).read_bytes())
    (log,) = policy.logs
    assert (
        log.verifier.vkey == house.vkey and policy.witnesses == () and policy.quorum.name == "none"
    )

    with Storage.open(data) as again:  # the same key, the same ledger
        assert again.house is not None and again.house.vkey == house.vkey
        assert again.ledger_size() == 1

    os.chmod(key_file, 0o644)
    with pytest.raises(LedgerCorrupt, match="chmod 600"):
        Storage.open(data)
    os.chmod(key_file, 0o600)
    other = tmp_path / "other"
    with Storage.open(other):
        pass
    (other / HOUSE_KEY_FILE).unlink()
    (other / HOUSE_KEY_FILE).write_bytes(key_file.read_bytes())
    os.chmod(other / HOUSE_KEY_FILE, 0o600)
    with pytest.raises(LedgerCorrupt, match="not the key of this ledger"):
        Storage.open(other)
    # a crash after entry 0 was committed, before the new key was renamed into place
    os.replace(key_file, data / "house.key.new")
    with Storage.open(data) as recovered:
        assert recovered.house is not None and recovered.house.vkey == house.vkey
    assert key_file.is_file() and not (data / "house.key.new").exists()

    (data / "gavel.db").unlink()
    with pytest.raises(LedgerCorrupt, match="ledger is empty"):
        Storage.open(data)  # a key that may have signed another ledger is never reused

    # a crash before entry 0 was committed: that key never signed anything, a new one is made
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    os.replace(key_file, fresh / "house.key.new")
    with Storage.open(fresh) as started:
        assert started.house is not None and started.house.vkey != house.vkey
        assert started.ledger_size() == 1
    assert not (fresh / "house.key.new").exists() and (fresh / HOUSE_KEY_FILE).is_file()


@pytest.mark.postgres
async def test_the_house_key_lives_in_the_database_for_a_url(postgres_url: str) -> None:
    with Storage.open(postgres_url) as store:
        house = store.house
        assert house is not None
    with Storage.open(postgres_url) as again:
        assert again.house is not None and again.house.vkey == house.vkey
        assert parse_policy(again.ledger_policy()).logs[0].verifier.vkey == house.vkey


async def test_restart_resumes_and_extends_the_tree_consistently(
    target: str, lot_scenarios: list[Any]
) -> None:
    first, second = lot_scenarios[:3], lot_scenarios[3:]
    clock = FakeClock(min(s.commands[0][0] for s in lot_scenarios) - SECOND)
    async with AuctionService(Storage.open(target), clock=clock) as service:
        await run_scenarios(service, clock, first)
    with Storage.open(target) as store:
        before = store.published_checkpoint()
        before_entries = entries_of(store)
    assert before is not None and before.size == len(before_entries)

    async with AuctionService(Storage.open(target), clock=clock) as service:
        await run_scenarios(service, clock, second)
        assert service.checkpoint is not None
        states = {s.lot_id: service.state(s.lot_id) for s in lot_scenarios}
    with Storage.open(target) as store:
        after = store.published_checkpoint()
        entries = entries_of(store)
        replay = replay_of(store, entries)
        sizes = store.checkpoint_sizes()
        engine = store._engine  # proofs straight from the stored tree
        with engine.connect() as connection:
            proof = ledger_store.consistency_proof(connection, before.size, after.size)  # type: ignore[union-attr]
    assert after is not None and after.size == len(entries) > before.size
    assert entries[: before.size] == before_entries  # nothing before the restart changed
    check_chain(entries)  # the first entry after the restart chains to the last one before
    verify_consistency(before.size, after.size, proof, before.root, after.root)
    assert before.size in sizes and after.size in sizes and sizes == sorted(set(sizes))
    assert set(replay.lots) == {s.lot_id for s in lot_scenarios}
    for lot_id, state in states.items():
        assert replay.lots[lot_id].state == state


async def test_a_second_signer_with_a_stale_size_is_refused(tmp_path: Path) -> None:
    data = tmp_path / "data"
    now = real_clock()
    rules = english_timed(start_price=10_000, start_at=now + 60 * SECOND, end_at=now + 120 * SECOND)
    first = Storage.open(data)  # writes entry 0 and knows "nothing signed yet"
    second = Storage.open(data)
    try:
        signed = second.sign_checkpoint()  # the other process signs size 1
        assert signed is not None and signed.size == 1
        first.add_lot("lamp", rules, "Lamp")  # entry 1, appended by the first store
        with pytest.raises(CheckpointConflict, match="another signer"):
            first.sign_checkpoint()  # it still believes the signed size is 0
        assert first.checkpoint_sizes() == []  # nothing published, size 2 never signed
        with first._engine.connect() as connection:
            assert ledger_store.checkpoint_sizes(connection, published=False) == [1]
        retried = first.sign_checkpoint()  # it re-reads and re-checks the stored tree first
        assert retried is not None and retried.size == 2
        with pytest.raises(Exception, match="(?i)unique|conflict"):
            second.add_lot("vase", rules, "Vase")  # its tree is stale too: seq 1 is taken
        assert second.ledger_size() == 2
    finally:
        first.close()
        second.close()


async def test_a_close_is_checkpointed_at_once(tmp_path: Path) -> None:
    now = real_clock()
    rules = english_timed(
        start_price=10_000,
        start_at=now,
        end_at=now + SECOND // 2,
        soft_close=SoftClose(mode=SoftCloseMode.OFF, window=0, extend=0),
    )
    store = Storage.open(tmp_path / "data")
    async with AuctionService(store, checkpoint_delay=30.0) as service:  # only urgency is fast
        await service.add_lot("watch", rules, "Watch")
        await service.submit("watch", RegisterBidder(bidder="a", code="A-1", kyc_verified=True))
        while service.view("watch").status != "OPEN":  # type: ignore[union-attr]
            await asyncio.sleep(0.01)
        await service.submit("watch", PlaceBid(bidder="a", amount=10_000, currency="USD"))
        while service.view("watch").status != "SOLD":  # type: ignore[union-attr]
            await asyncio.sleep(0.01)
        closed_at = time.monotonic()
        size = await asyncio.to_thread(store.ledger_size)
        while service.checkpoint is None or service.checkpoint.size < size:
            assert time.monotonic() - closed_at < 5, "no checkpoint after the close"
            await asyncio.sleep(0.01)
        assert time.monotonic() - closed_at < 5  # far less than the 30 s delay
        entries = await asyncio.to_thread(entries_of, store)
    assert entries[-1].type is EntryType.SALE and entries[-1].seq == size - 1
    assert body_of(entries[-1])["close_entry"] == size - 2
    replay = LedgerReplay()  # checks the sale body against the rules' result
    for entry in entries:
        replay.add(entry.seq, entry.type.value, entry.time_us, entry.body, entry.actor.kid)
    assert replay.sales == 1 and replay.unsold_closures() == []


async def test_a_trickle_of_entries_gets_a_checkpoint_every_second(tmp_path: Path) -> None:
    now = real_clock()
    rules = english_timed(
        start_price=10_000, start_at=now + 600 * SECOND, end_at=now + 1200 * SECOND
    )
    async with AuctionService(Storage.open(tmp_path / "data")) as service:
        await service.add_lot("watch", rules, "Watch")
        checkpointer = service.checkpointer
        assert checkpointer is not None
        await asyncio.sleep(1.0)
        start_count = checkpointer.signed
        started = time.monotonic()
        sizes: list[int] = []
        i = 0
        while time.monotonic() - started < 3.0:  # one registration every 100 ms for 3 s
            await service.submit(
                "watch", RegisterBidder(bidder=f"b{i}", code=f"C-{i}", kyc_verified=True)
            )
            head = service.checkpoint
            if head is not None and (not sizes or sizes[-1] != head.size):
                sizes.append(head.size)
            i += 1
            await asyncio.sleep(0.1)
        signed = checkpointer.signed - start_count
    assert signed >= 3, signed  # at least once a second (0.5 s nominal: ~6)
    assert signed <= 12, signed  # ... but not one per entry
    assert sizes == sorted(sizes)


def test_a_database_from_before_the_ledger_gets_its_history_logged(
    tmp_path: Path, lot_scenarios: list[Any]
) -> None:
    data = tmp_path / "data"
    with Storage.open(data) as store:
        for scenario in lot_scenarios:
            store.add_lot(scenario.lot_id, scenario.rules, scenario.title)
            state = LotState.create(scenario.lot_id, scenario.rules)
            records = []
            for n, (now, command) in enumerate(scenario.commands):
                state, events = apply(state, command, now)
                records.append(HistoryRecord.of(scenario.lot_id, n, now, command, events))
            store.append(records)
    engine = create_engine(f"sqlite:///{data / 'gavel.db'}")
    try:  # make it a schema-1 database: no ledger, no house key
        with engine.begin() as connection:
            ledger_store.LEDGER_METADATA.drop_all(connection)
            connection.exec_driver_sql("DROP TABLE ledger_house")
            connection.exec_driver_sql("DROP TABLE ledger_openings")
            connection.exec_driver_sql("DROP TABLE lot_owners")
            connection.exec_driver_sql("DROP TABLE cluster_instances")
            connection.exec_driver_sql("DELETE FROM schema_version WHERE version >= 2")
    finally:
        engine.dispose()
    (data / HOUSE_KEY_FILE).unlink()

    with Storage.open(data) as store:  # migrates, makes a key, logs the older data
        entries = entries_of(store)
        replay = replay_of(store, entries)
        history_rows = sum(len(store.history(s.lot_id)) for s in lot_scenarios)
    check_chain(entries)
    kinds = [e.type for e in entries]
    assert kinds.count(EntryType.LOT) == len(lot_scenarios)
    closings = kinds.count(EntryType.SALE) + kinds.count(EntryType.REVEAL)
    assert len(entries) == 1 + len(lot_scenarios) + history_rows + closings
    for scenario in lot_scenarios:
        assert replay.lots[scenario.lot_id].state == scenario.final_state()
    assert replay.unsold_closures() == []
