"""The dashboard's pure core (`auction.dashboard.analytics`) on hand-made histories: the
funnel's steps and conversions, per sale once per bidder, floor bids left out, extensions,
times in the lot's legal time zone, and the 24-hour timeliness of deposit decisions (rules C3)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from auction.dashboard.analytics import (
    DAY_US,
    LotFacts,
    LotInputs,
    conversion,
    dashboard,
    local_time,
)
from auction.payments import Hold, HoldState
from auction.rules import (
    BidAccepted,
    BidderRegistered,
    DepositChanged,
    EndExtended,
    LotClosed,
    PlaceBid,
    RegisterBidder,
)
from auction.rules.events import BidType, Result
from auction.rules.states import DepositState

T0 = 1_800_000_000_000_000  # 2027-01-15T08:00:00Z
MIN = 60 * 1_000_000


@dataclass
class Record:
    """The fields of `auction.storage.HistoryRecord` the analysis reads."""

    command: Any
    events: tuple[Any, ...]
    accepted: bool = True


def registered(
    bidder: str, code: str, t: int, deposit: DepositState, verified: bool = True
) -> Record:
    return Record(
        RegisterBidder(bidder, code, kyc_verified=verified),
        (BidderRegistered(0, t, bidder, code, None, None, deposit),),
    )


def deposit(bidder: str, t: int, state: DepositState, amount: int = 5_000) -> Record:
    return Record(None, (DepositChanged(0, t, bidder, state, amount, "ref", None),))


def bid(bidder: str, code: str, t: int, amount: int, extend_to: int | None = None) -> Record:
    events: list[Any] = [BidAccepted(0, t, bidder, code, amount, BidType.MANUAL, None)]
    if extend_to is not None:
        events.append(EndExtended(0, t, extend_to - MIN, extend_to, "LOT", None))
    return Record(PlaceBid(bidder, amount, "CNY"), tuple(events))


def closed(t: int, winner: str | None, price: int | None) -> Record:
    result = Result.SOLD if winner else Result.FAILED
    return Record(None, (LotClosed(0, t, result, price, winner, "W", t, "end reached", None),))


def facts(lot: str, sale: str | None = "s") -> LotFacts:
    return LotFacts(lot, "t", sale, "CNY", "Asia/Shanghai", 100_000, 120_000)


def test_funnel_counts_steps_and_conversions() -> None:
    a = LotInputs(
        facts("a"),
        [
            registered("x", "X", T0, DepositState.REQUIRED),
            registered("y", "Y", T0, DepositState.REQUIRED),
            registered("z", "Z", T0, DepositState.REQUIRED, verified=False),
            deposit("x", T0 + 1, DepositState.FROZEN),
            deposit("y", T0 + 1, DepositState.PENDING),
            bid("x", "X", T0 + MIN, 100_000),
            bid("floor:7", "F7", T0 + MIN, 110_000),  # the room's, not an online bidder
            Record(PlaceBid("y", 5, "CNY"), (), accepted=False),  # a refused command
            closed(T0 + 2 * MIN, "x", 100_000),
        ],
        visitors=10,
        watchers=4,
    )
    b = LotInputs(
        facts("b"),
        [
            registered("x", "X2", T0, DepositState.EXEMPT),
            registered("w", "W2", T0, DepositState.FROZEN),
            bid("w", "W2", T0 + MIN, 100_000),
            closed(T0 + 2 * MIN, "floor:9", 100_000),  # sold in the room: nobody online won
        ],
        visitors=5,
    )
    funnel = dashboard([a, b], T0)["funnel"].to_json()["rows"]
    got = {(r["scope"], r["id"], r["step"]): (r["count"], r["conversion_pct"]) for r in funnel}
    assert [got[("lot", "a", s)] for s in ("visitors", "watchers", "registered", "verified")] == [
        (10, ""), (4, "40.0"), (3, "75.0"), (2, "66.7"),
    ]  # fmt: skip
    assert [got[("lot", "a", s)] for s in ("deposit", "bid", "won")] == [
        (1, "50.0"), (1, "100.0"), (1, "100.0"),
    ]  # fmt: skip
    assert [got[("lot", "b", s)][0] for s in ("registered", "deposit", "bid", "won")] == [
        2,
        2,
        1,
        0,
    ]
    assert got[("lot", "b", "registered")] == (2, "")  # after 0 watchers: no conversion
    # the sale: visitors summed, bidders once (x registered on both lots)
    sale = [got[("sale", "s", s)][0] for s in ("visitors", "registered", "deposit", "bid", "won")]
    assert sale == [15, 4, 2, 2, 1]  # deposits: x (both lots) and w


def test_bids_extensions_and_minutes_in_the_legal_time_zone() -> None:
    lot = LotInputs(
        facts("a", None),
        [
            bid("x", "X", T0 + 5, 100_000),
            bid("y", "Y", T0 + 30 * 1_000_000, 110_000),
            bid("x", "X", T0 + 40 * 1_000_000, 120_000),
            bid("y", "Y", T0 + MIN + 1, 130_000, extend_to=T0 + 5 * MIN),
        ],
    )
    tables = dashboard([lot], T0)
    rows = tables["bids"].to_json()["rows"]
    assert [r["kind"] for r in rows] == ["bid"] * 4 + ["extension"]
    assert rows[0]["time"] == "2027-01-15T16:00:00+08:00"
    assert rows[-1]["end_after"] == local_time(T0 + 5 * MIN, "Asia/Shanghai")
    minutes = [(r["minute"], r["bidders"]) for r in tables["bidders"].to_json()["rows"]]
    assert minutes == [("2027-01-15T16:00:00+08:00", 2), ("2027-01-15T16:01:00+08:00", 1)]
    assert tables["funnel"].to_json()["rows"][-1]["id"] == "a"  # no sale, no sale rows


def test_hammer_against_start_and_appraisal() -> None:
    sold = LotInputs(facts("a"), [closed(T0, "x", 150_000)])
    unsold = LotInputs(facts("b"), [closed(T0, None, None)])
    (row,) = dashboard([sold, unsold], T0)["hammer"].to_json()["rows"]
    assert (row["lot"], row["hammer"], row["start_price"], row["appraisal"]) == (
        "a", 150_000, 100_000, 120_000,
    )  # fmt: skip
    assert (row["hammer_over_start_pct"], row["hammer_over_appraisal_pct"]) == ("150.0", "125.0")


def test_deposit_decisions_and_their_timeliness() -> None:
    decided = T0 + MIN
    records = [registered(b, b.upper(), T0, DepositState.REQUIRED) for b in "pqrst"]
    records += [deposit(b, T0 + 1, DepositState.FROZEN) for b in "pqrst"]
    records += [
        deposit("p", decided, DepositState.RELEASED),
        deposit("q", decided, DepositState.RELEASED),
        deposit("r", decided, DepositState.FORFEITED),
        deposit("s", decided, DepositState.APPLIED_TO_PRICE),
    ]

    def hold(account: str, state: HoldState, settled: int | None) -> Hold:
        return Hold(f"h-{account}", account, "a", 5_000, "CNY", state, T0 + 1, settled)

    holds = {
        "p": hold("p", HoldState.RELEASED, decided + DAY_US),  # exactly 24 h: on time
        "q": hold("q", HoldState.RELEASED, decided + DAY_US + 1),  # late
        "r": hold("r", HoldState.FROZEN, None),  # not yet carried out
        "s": hold("s", HoldState.FROZEN, None),
        # "t": frozen by the engine, unknown to the provider
    }
    lot = LotInputs(facts("a"), records, holds=holds)
    rows = {
        r["code"]: r for r in dashboard([lot], decided + DAY_US + 5)["deposits"].to_json()["rows"]
    }
    assert {c: rows[c]["state"] for c in "PQRST"} == {
        "P": "released", "Q": "released", "R": "forfeited", "S": "applied to the price",
        "T": "frozen",
    }  # fmt: skip
    assert {c: rows[c]["timeliness"] for c in "PQRST"} == {
        "P": "on time", "Q": "late", "R": "overdue", "S": "overdue", "T": "",
    }  # fmt: skip
    assert rows["T"]["frozen"] == local_time(T0 + 1, "Asia/Shanghai") and rows["T"]["decided"] == ""
    # the reconciliation with the provider (auction.payments.reconcile)
    assert {c: rows[c]["provider_check"] for c in "PQRST"} == {
        "P": "", "Q": "later than 24 h", "R": "not carried out", "S": "not carried out",
        "T": "no hold at provider",
    }  # fmt: skip
    waiting = dashboard([lot], decided + 10)["deposits"].to_json()["rows"]
    assert {r["code"]: r["timeliness"] for r in waiting}["R"] == "waiting"
    assert {r["code"]: r["provider_check"] for r in waiting}["R"] == ""  # within its 24 h


def test_conversion_words() -> None:
    assert conversion(1, None) == "" and conversion(1, 0) == ""
    assert conversion(2, 3) == "66.7" and conversion(0, 5) == "0.0"
