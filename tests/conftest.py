"""Shared fixtures: fresh PostgreSQL schemas and Redis databases, and realistic lot histories.

The `postgres_url` and `redis_url` fixtures skip their test when the local server is not
reachable, except on CI (`CI=true`), where a missing service is a failure.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import psycopg
import pytest

from auction.rules import (
    SECOND,
    AcceptOnline,
    BarBidder,
    Cancel,
    CloseLot,
    DepositFrozen,
    DepositPending,
    FairWarning,
    FloorBid,
    Hammer,
    LotRules,
    LotState,
    NextLot,
    OpenLot,
    OpenRing,
    PassLot,
    Pause,
    PlaceBid,
    RegisterBidder,
    Resume,
    RetractBid,
    RetractReason,
    SetAutoAccept,
    SetMax,
    SoftClose,
    apply,
    english_timed,
    fixed_price,
    judicial,
    live_auctioneer,
)

# Fixtures of tests/support that test modules use by name, without importing them.
pytest_plugins = ["privacy_kit", "web_kit", "wiring_kit"]

POSTGRES_HOST = "127.0.0.1"
POSTGRES_PORT = 5432
POSTGRES_ADMIN_URL = f"postgresql://postgres@{POSTGRES_HOST}:{POSTGRES_PORT}/test"
REDIS_HOST = "127.0.0.1"
REDIS_PORT = 6379


def _unavailable(message: str) -> None:
    """Skip locally, fail on CI: CI must never pass by skipping what it cannot reach."""
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A `postgresql://` URL whose default schema is a fresh, uniquely named schema of the local
    `test` database; the schema and everything in it are dropped after the test."""
    try:
        admin = psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError:
        _unavailable(f"PostgreSQL not reachable at {POSTGRES_HOST}:{POSTGRES_PORT}")
    schema = f"gavel_test_{uuid.uuid4().hex[:16]}"
    try:
        with admin:
            admin.execute(f'CREATE SCHEMA "{schema}"')
            try:
                yield f"{POSTGRES_ADMIN_URL}?options={quote(f'-csearch_path={schema}')}"
            finally:
                admin.execute(f'DROP SCHEMA "{schema}" CASCADE')
    finally:
        admin.close()


def _redis_command(connection: socket.socket, *parts: str) -> bytes:
    payload = f"*{len(parts)}\r\n" + "".join(f"${len(p)}\r\n{p}\r\n" for p in parts)
    connection.sendall(payload.encode())
    return connection.recv(1024)


@pytest.fixture
def redis_url() -> Iterator[str]:
    """A `redis://` URL of a Redis logical database that is empty for the test (flushed before
    and after). Databases 1..15 are handed out by a probe for an empty one."""
    try:
        connection = socket.create_connection((REDIS_HOST, REDIS_PORT), timeout=3)
    except OSError:
        _unavailable(f"Redis not reachable at {REDIS_HOST}:{REDIS_PORT}")
    with connection:
        if not _redis_command(connection, "PING").startswith(b"+PONG"):
            _unavailable(f"no Redis answering at {REDIS_HOST}:{REDIS_PORT}")
        database = 1 + uuid.uuid4().int % 15
        _redis_command(connection, "SELECT", str(database))
        _redis_command(connection, "FLUSHDB")
        try:
            yield f"redis://{REDIS_HOST}:{REDIS_PORT}/{database}"
        finally:
            _redis_command(connection, "SELECT", str(database))
            _redis_command(connection, "FLUSHDB")


# --- realistic lot histories -----------------------------------------------------------------


@dataclass(frozen=True)
class Scenario:
    """A lot and the `(now, command)` pairs a realistic session sends it, in ingress order."""

    lot_id: str
    title: str
    rules: LotRules
    commands: tuple[tuple[int, Any], ...]

    def final_state(self) -> LotState:
        state = LotState.create(self.lot_id, self.rules)
        for now, command in self.commands:
            state, _ = apply(state, command, now)
        return state


T0 = 1_700_000_000 * SECOND


def _register(lot_rules: LotRules, t: int, *bidders: str) -> list[tuple[int, Any]]:
    out: list[tuple[int, Any]] = []
    for index, bidder in enumerate(bidders):
        out.append(
            (t, RegisterBidder(bidder=bidder, code=f"C{index:02d}-{bidder}", kyc_verified=True))
        )
        if lot_rules.deposit_required:
            out.append(
                (
                    t + 1,
                    DepositFrozen(bidder=bidder, amount=lot_rules.deposit, reference=f"r-{bidder}"),
                )
            )
    return out


def scenarios() -> list[Scenario]:
    """Several lots of every preset, each with accepted and refused commands, soft-close
    extensions, proxies, priority matches, live ring actions, a pause and a cancellation."""
    s = SECOND
    out: list[Scenario] = []

    # JUDICIAL_CN: a priority holder matches, bids extend the end, the close drains, SOLD.
    flat = judicial(
        start_price=2_000_000,
        step=10_000,
        start_at=T0 + 10 * s,
        end_at=T0 + 100 * s,
        min_duration=0,
        window=10 * s,
        extend=10 * s,
        appraisal=2_500_000,
    )
    commands: list[tuple[int, Any]] = [
        (T0, RegisterBidder(bidder="tenant", code="P1-7Q2X", kyc_verified=True, priority_rank=1)),
        (T0 + 1, DepositPending(bidder="tenant", reference="pay-1")),
        (T0 + 2, DepositFrozen(bidder="tenant", amount=flat.deposit, reference="pay-1")),
        *_register(flat, T0 + 3, "alice", "bob"),
        (
            T0 + 5,
            RegisterBidder(bidder="minor", code="MIN-1", kyc_verified=True, full_capacity=False),
        ),
        (T0 + 6, PlaceBid(bidder="alice", amount=2_000_000, currency="CNY")),  # not open: refused
        (T0 + 10 * s, OpenLot()),
        (T0 + 20 * s, PlaceBid(bidder="alice", amount=2_000_000, currency="CNY")),
        (T0 + 21 * s, PlaceBid(bidder="tenant", amount=2_000_000, currency="CNY")),  # C7 match
        (T0 + 22 * s, PlaceBid(bidder="bob", amount=2_005_000, currency="CNY")),  # off grid
        (T0 + 23 * s, PlaceBid(bidder="bob", amount=2_010_000, currency="CNY")),
        (T0 + 24 * s, SetMax(bidder="bob", amount=2_100_000, currency="CNY")),  # proxy disabled
        (T0 + 95 * s, PlaceBid(bidder="alice", amount=2_020_000, currency="CNY")),  # extends
        (T0 + 100 * s, CloseLot()),  # NOT_DUE: the bid moved the end to 105 s
        (T0 + 104 * s, PlaceBid(bidder="tenant", amount=2_020_000, currency="CNY")),  # extends
        (T0 + 114 * s, CloseLot()),
        (T0 + 115 * s, PlaceBid(bidder="bob", amount=2_050_000, currency="CNY")),  # late
    ]
    out.append(Scenario("judicial-flat", "Flat 1502, Hangzhou", flat, tuple(commands)))

    # JUDICIAL_CN: no bid at all → FAILED (流拍); and a bar before opening.
    garage = judicial(
        start_price=180_000, step=2_000, start_at=T0 + 5 * s, end_at=T0 + 50 * s, min_duration=0
    )
    commands = [
        *_register(garage, T0, "carol", "dave"),
        (T0 + 2, BarBidder(bidder="dave", reason="staff relative", basis="SPC Art 34")),
        (T0 + 5 * s, OpenLot()),
        (T0 + 6 * s, PlaceBid(bidder="dave", amount=180_000, currency="CNY")),  # barred
        (T0 + 50 * s, CloseLot()),
    ]
    out.append(Scenario("judicial-garage", "Parking space B2-117", garage, tuple(commands)))

    # ENGLISH_TIMED: proxies, hidden reserve, retraction, pause and resume, SOLD.
    watch = english_timed(
        start_price=100_000,
        reserve=150_000,
        start_at=T0 + 1 * s,
        end_at=T0 + 600 * s,
        soft_close=SoftClose(window=120 * s, extend=120 * s),
    )
    commands = [
        *_register(watch, T0, "erin", "frank", "grace"),
        (T0 + 1 * s, OpenLot()),
        (T0 + 10 * s, SetMax(bidder="erin", amount=140_000, currency="USD")),
        (T0 + 20 * s, PlaceBid(bidder="frank", amount=120_000, currency="USD")),
        (T0 + 30 * s, SetMax(bidder="frank", amount=160_000, currency="USD")),
        (T0 + 40 * s, PlaceBid(bidder="grace", amount=155_000, currency="EUR")),  # currency
        (T0 + 41 * s, PlaceBid(bidder="grace", amount=165_000, currency="USD")),
        (T0 + 42 * s, RetractBid(bidder="grace", bid_seq=9_999, reason=RetractReason.ENTRY_ERROR)),
        (T0 + 50 * s, Pause(reason="description under review")),
        (T0 + 60 * s, PlaceBid(bidder="erin", amount=170_000, currency="USD")),  # halted
        (T0 + 70 * s, Resume(reason="description confirmed")),
        (T0 + 590 * s, SetMax(bidder="erin", amount=200_000, currency="USD")),
        (T0 + 600 * s, CloseLot()),
        (T0 + 2_000 * s, CloseLot()),
    ]
    out.append(Scenario("timed-watch", "Omega Speedmaster", watch, tuple(commands)))

    # ENGLISH_TIMED: cancelled by the seller's authority while open.
    lamp = english_timed(start_price=5_000, start_at=T0, end_at=T0 + 60 * s)
    commands = [
        *_register(lamp, T0, "heidi"),
        (T0, OpenLot()),
        (T0 + 5 * s, PlaceBid(bidder="heidi", amount=5_000, currency="USD")),
        (T0 + 6 * s, Cancel(reason="withdrawn by the consignor")),
        (T0 + 60 * s, CloseLot()),
    ]
    out.append(Scenario("timed-lamp", "Tiffany-style lamp", lamp, tuple(commands)))

    # LIVE_AUCTIONEER: online (pending and auto-accepted), floor and absentee bids, hammer.
    painting = live_auctioneer(start_price=800_000, currency="GBP", start_at=T0)
    commands = [
        *_register(painting, T0, "ivan", "judy", "ken"),
        (T0 + 1, SetMax(bidder="ken", amount=1_000_000, currency="GBP")),  # absentee
        (T0 + 1 * s, OpenRing(ask=800_000)),
        (T0 + 2 * s, PlaceBid(bidder="ivan", amount=900_000, currency="GBP")),
        (T0 + 3 * s, AcceptOnline(bid_seq=99)),  # unknown
        (T0 + 4 * s, FloorBid(paddle="118")),
        (T0 + 5 * s, SetAutoAccept(on=True)),
        (T0 + 6 * s, FairWarning()),
        (T0 + 7 * s, Hammer()),  # dwell not elapsed
        (T0 + 8 * s, PlaceBid(bidder="judy", amount=1_500_000, currency="GBP")),  # ask is lower
        (T0 + 9 * s, FairWarning()),
        (T0 + 13 * s, Hammer()),
        (T0 + 14 * s, NextLot()),
    ]
    out.append(Scenario("live-painting", "Harbour at Dusk", painting, tuple(commands)))

    # LIVE_AUCTIONEER: nobody bids: passed.
    vase = live_auctioneer(start_price=50_000, currency="GBP", start_at=T0)
    commands = [
        (T0 + 1 * s, OpenRing(ask=50_000)),
        (T0 + 2 * s, Hammer()),  # no bids
        (T0 + 3 * s, OpenLot()),  # not a live command
        (T0 + 4 * s, PassLot()),
        (T0 + 5 * s, NextLot()),
    ]
    out.append(Scenario("live-vase", "Famille rose vase", vase, tuple(commands)))

    # FIXED_PRICE_SALE (变卖): a taker, a refused second taker, a priority holder matches.
    garage = fixed_price(price=1_280_000, start_at=T0 + 10 * s, end_at=T0 + 100 * s)
    commands = [
        (T0, RegisterBidder(bidder="coowner", code="P1-4K9D", kyc_verified=True, priority_rank=1)),
        (T0 + 1, DepositFrozen(bidder="coowner", amount=garage.deposit, reference="pay-co")),
        *_register(garage, T0 + 2, "lena", "omar"),
        (T0 + 10 * s, OpenLot()),
        (T0 + 11 * s, PlaceBid(bidder="lena", amount=1_270_000, currency="CNY")),  # below
        (T0 + 12 * s, PlaceBid(bidder="lena", amount=1_280_000, currency="CNY")),  # taken
        (T0 + 13 * s, PlaceBid(bidder="omar", amount=1_280_000, currency="CNY")),  # too late
        (T0 + 14 * s, PlaceBid(bidder="coowner", amount=1_280_000, currency="CNY")),  # match
    ]
    out.append(Scenario("fixed-garage", "Parking space B2-117", garage, tuple(commands)))
    return out


@pytest.fixture
def lot_scenarios() -> list[Scenario]:
    """Realistic `(now, command)` histories for several lots of every preset."""
    return scenarios()
