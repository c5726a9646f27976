"""Storage on SQLite and PostgreSQL: round trips, restart equality, fail-closed replay."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, delete, insert, update

from auction.rules import (
    SECOND,
    BidAccepted,
    DepositFrozen,
    LotState,
    OpenLot,
    PlaceBid,
    RegisterBidder,
    Rejected,
    RejectReason,
    apply,
    encode,
    judicial,
)
from auction.storage import (
    SCHEMA_VERSION,
    CorruptHistory,
    HistoryDiverged,
    HistoryRecord,
    HistoryRow,
    SchemaError,
    SchemaVersionRow,
    Storage,
    StorageConflict,
    StorageError,
    StorageUnavailable,
    database_url,
)

T0 = 1_700_000_000 * SECOND
RULES = judicial(
    start_price=1_000_000, step=10_000, start_at=T0, end_at=T0 + 60 * SECOND, min_duration=0
)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Where to open a Storage: a fresh data directory, or a fresh PostgreSQL schema."""
    if request.param == "postgres":
        url: str = request.getfixturevalue("postgres_url")
        return url
    return str(tmp_path / "data")


@pytest.fixture
def store(target: str) -> Iterator[Storage]:
    with Storage.open(target) as opened:
        yield opened


def _tamper(target: str, statement: Any) -> None:
    """Change stored rows behind the store's back (what an attacker or a bad disk would do)."""
    engine = create_engine(database_url(target))
    try:
        with engine.begin() as connection:
            connection.execute(statement)
    finally:
        engine.dispose()


def _run(
    lot_id: str, state: LotState, n: int, commands: list[tuple[int, Any]]
) -> tuple[LotState, list[HistoryRecord]]:
    records = []
    for now, command in commands:
        state, events = apply(state, command, now)
        records.append(HistoryRecord.of(lot_id, n, now, command, events))
        n += 1
    return state, records


def _flat_history() -> list[tuple[int, Any]]:
    return [
        (T0 - 10, RegisterBidder(bidder="alice", code="A1B2-C3D4", kyc_verified=True)),
        (T0 - 9, DepositFrozen(bidder="alice", amount=RULES.deposit, reference="pay-a")),
        (T0 - 8, RegisterBidder(bidder="bob", code="P1-ZZZZ", kyc_verified=True, priority_rank=1)),
        (T0, OpenLot()),
        (T0 + SECOND, PlaceBid(bidder="alice", amount=1_000_000, currency="CNY")),
        (T0 + 2 * SECOND, PlaceBid(bidder="bob", amount=1_010_000, currency="CNY")),  # no deposit
    ]


def test_append_and_load_round_trip(store: Storage) -> None:
    store.add_sale("sale-1", "Court sale")
    added = store.add_lot("flat", RULES, "Flat 1502", "sale-1")
    assert added.state == LotState.create("flat", RULES) and added.sale_title == "Court sale"
    state, records = _run("flat", added.state, 0, _flat_history())
    store.append(records[:2])
    store.append(records[2:])  # two group commits

    assert store.history("flat") == records
    assert [r.accepted for r in records] == [True, True, True, True, True, False]
    assert records[-1].events[0].reason is RejectReason.NO_DEPOSIT
    (lot,) = store.load()
    assert lot.state == state
    assert (lot.lot_id, lot.sale_id, lot.sale_title, lot.title) == (
        "flat",
        "sale-1",
        "Court sale",
        "Flat 1502",
    )
    assert lot.rules == RULES and lot.commands == 6 and lot.bids == 1
    assert store.load_lots() == {"flat": state}
    registrations = store.registrations("flat")
    assert [(r.bidder_id, r.code, r.priority_rank) for r in registrations] == [
        ("alice", "A1B2-C3D4", None),
        ("bob", "P1-ZZZZ", 1),
    ]
    deposits = store.deposits("flat")
    assert [(d.bidder_id, d.state, d.amount, d.reference) for d in deposits] == [
        ("alice", "FROZEN", RULES.deposit, "pay-a")
    ]
    counts = store.counts()
    assert (counts.sales, counts.lots, counts.commands) == (1, 1, 6)
    assert counts.events == sum(len(r.events) for r in records)
    assert store.history("no-such-lot") == []


def test_restart_rebuilds_every_lot_equal(target: str, lot_scenarios: list[Any]) -> None:
    before: dict[str, LotState] = {}
    with Storage.open(target) as store:
        for scenario in lot_scenarios:
            lot = store.add_lot(scenario.lot_id, scenario.rules, scenario.title)
            state, records = _run(lot.lot_id, lot.state, 0, list(scenario.commands))
            for start in range(0, len(records), 3):  # batches of three rows
                store.append(records[start : start + 3])
            before[scenario.lot_id] = state
            assert state == scenario.final_state()
    assert {s.status.value for s in before.values()} >= {"SOLD", "FAILED", "CANCELLED"}

    with Storage.open(target) as reopened:
        lots = reopened.load()
        assert [lot.lot_id for lot in lots] == [s.lot_id for s in lot_scenarios]
        assert reopened.load_lots() == before
        for lot, scenario in zip(lots, lot_scenarios, strict=True):
            assert lot.commands == len(scenario.commands)
            history = reopened.history(lot.lot_id)
            assert lot.bids == sum(
                isinstance(event, BidAccepted) for record in history for event in record.events
            )


def test_tampered_events_are_detected(target: str) -> None:
    with Storage.open(target) as store:
        store.add_lot("flat", RULES, "Flat")
        _, records = _run("flat", LotState.create("flat", RULES), 0, _flat_history())
        store.append(records)
    forged = encode(records[4].events)
    forged[0]["amount"] = 1_500_000  # the stored bid now claims a higher amount
    table = HistoryRow.__table__  # type: ignore[attr-defined]
    _tamper(
        target,
        update(table).where(table.c.lot_id == "flat", table.c.n == 4).values(events=forged),
    )
    with Storage.open(target) as store, pytest.raises(HistoryDiverged) as caught:
        store.load_lots()
    assert (caught.value.lot_id, caught.value.n) == ("flat", 4)
    assert caught.value.stored == forged
    assert caught.value.expected == encode(records[4].events)
    assert isinstance(caught.value, StorageError)


def test_tampered_command_and_accepted_flag_are_detected(target: str) -> None:
    with Storage.open(target) as store:
        store.add_lot("flat", RULES, "Flat")
        _, records = _run("flat", LotState.create("flat", RULES), 0, _flat_history())
        store.append(records)
    table = HistoryRow.__table__  # type: ignore[attr-defined]
    _tamper(
        target,
        update(table).where(table.c.lot_id == "flat", table.c.n == 5).values(accepted=True),
    )
    with Storage.open(target) as store, pytest.raises(HistoryDiverged) as caught:
        store.load()
    assert caught.value.n == 5

    command = encode(records[4].command)
    command["amount"] = 1_020_000
    _tamper(
        target,
        update(table).where(table.c.lot_id == "flat", table.c.n == 4).values(command=command),
    )
    with Storage.open(target) as store, pytest.raises(HistoryDiverged) as caught:
        store.load()
    assert caught.value.n == 4


def test_gaps_and_garbage_are_corrupt_history(target: str) -> None:
    with Storage.open(target) as store:
        store.add_lot("flat", RULES, "Flat")
        _, records = _run("flat", LotState.create("flat", RULES), 0, _flat_history())
        store.append(records)
    table = HistoryRow.__table__  # type: ignore[attr-defined]
    _tamper(target, update(table).where(table.c.n == 2).values(command={"type": "Bogus"}))
    with Storage.open(target) as store, pytest.raises(CorruptHistory, match="row 2"):
        store.load()
    _tamper(target, delete(table).where(table.c.n == 2))
    with Storage.open(target) as store, pytest.raises(CorruptHistory, match="expected row 2"):
        store.load()


def test_conflicts_write_nothing(store: Storage) -> None:
    store.add_lot("flat", RULES, "Flat")
    with pytest.raises(StorageConflict):
        store.add_lot("flat", RULES, "Flat again")
    with pytest.raises(StorageConflict, match="no sale"):
        store.add_lot("other", RULES, "Other", "no-such-sale")
    _, records = _run("flat", LotState.create("flat", RULES), 0, _flat_history())
    store.append(records[:3])
    with pytest.raises(StorageConflict):
        store.append(records[3:] + records[2:3])  # n = 2 again: the whole batch is refused
    assert [r.n for r in store.history("flat")] == [0, 1, 2]
    store.append(records[3:])
    assert len(store.history("flat")) == 6
    store.append([])  # an empty batch is a no-op


def test_schema_version_and_a_newer_database(target: str) -> None:
    with Storage.open(target) as store:
        assert store.schema_version() == SCHEMA_VERSION
    with Storage.open(target) as store:  # opening again migrates nothing
        assert store.schema_version() == SCHEMA_VERSION
    table = SchemaVersionRow.__table__  # type: ignore[attr-defined]
    _tamper(target, insert(table).values(version=SCHEMA_VERSION + 1, applied_at=0))
    with pytest.raises(SchemaError, match="upgrade gavel"):
        Storage.open(target)


def test_sqlite_is_durable_wal(tmp_path: Path) -> None:
    with Storage.open(tmp_path) as store:
        assert store.location == str(tmp_path.resolve() / "gavel.db")
        engine = store._engine  # the connection settings are what this test is about
        with engine.connect() as connection:
            assert connection.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL
            assert connection.exec_driver_sql("PRAGMA busy_timeout").scalar() == 10_000
            assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    with sqlite3.connect(tmp_path / "gavel.db") as raw:
        assert raw.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    raw.close()


def test_urls_and_unreachable_databases(tmp_path: Path) -> None:
    assert database_url("postgresql://u@h/db") == "postgresql+psycopg://u@h/db"
    assert database_url("postgres://u@h/db") == "postgresql+psycopg://u@h/db"
    assert database_url("sqlite:///x.db") == "sqlite:///x.db"
    assert database_url(tmp_path / "new") == f"sqlite:///{tmp_path / 'new' / 'gavel.db'}"
    assert (tmp_path / "new").is_dir()
    with pytest.raises(StorageUnavailable, match="unsupported"):
        Storage.open("mysql://u@h/db")
    with pytest.raises(StorageUnavailable):
        Storage.open("postgresql://postgres@127.0.0.1:1/test?connect_timeout=2")
    (tmp_path / "file").write_text("not a directory")
    with pytest.raises(StorageUnavailable, match="data directory"):
        Storage.open(tmp_path / "file" / "data")


def test_rejections_are_stored_as_evidence(store: Storage) -> None:
    store.add_lot("flat", RULES, "Flat")
    command = PlaceBid(bidder="nobody", amount=1_000_000, currency="CNY")
    state = LotState.create("flat", RULES)
    _, events = apply(state, command, T0 - 1)
    store.append([HistoryRecord.of("flat", 0, T0 - 1, command, events)])
    (record,) = store.history("flat")
    assert not record.accepted
    assert isinstance(record.events[0], Rejected) and record.command == command
    assert store.load_lots()["flat"] == state
