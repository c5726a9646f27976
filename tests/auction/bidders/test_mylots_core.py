"""The pure parts of "My auctions": a bidder's summary of a lot built from a history the real
rules engine produced, the words it uses, and the sale confirmation's text."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from auction.bidders.book import BidRecord, Document
from auction.bidders.confirmation import (
    SaleFacts,
    chinese_uppercase,
    confirmation_text,
    document_body,
)
from auction.bidders.mylots import format_money, format_time, summarize
from auction.rules import (
    HOUR,
    SECOND,
    CloseLot,
    DepositFrozen,
    LotState,
    OpenLot,
    PlaceBid,
    RegisterBidder,
    apply,
    judicial,
)
from auction.service import LotView
from auction.storage import HistoryRecord, StoredLot

T0 = 1_800_000_000 * SECOND
LOT = "flat-1"


def history() -> tuple[list[HistoryRecord], LotState]:
    rules = judicial(
        start_price=1_000_000_00,
        step=10_000_00,
        start_at=T0,
        end_at=T0 + HOUR,
        min_duration=0,
        window=SECOND,
        extend=SECOND,
    )
    state = LotState.create(LOT, rules)
    commands: list[tuple[Any, int]] = [
        (RegisterBidder("alice", "AAAA-0001", kyc_verified=True), T0 - 10),
        (RegisterBidder("bob", "BBBB-0002", kyc_verified=True), T0 - 9),
        (RegisterBidder("carol", "CCCC-0003", kyc_verified=True), T0 - 8),
        (DepositFrozen("alice", rules.deposit, "hold-1"), T0 - 5),
        (DepositFrozen("bob", rules.deposit, "hold-2"), T0 - 4),
        (OpenLot(), T0),
        (PlaceBid("alice", 1_000_000_00, "CNY", "a1"), T0 + 10),
        (PlaceBid("bob", 1_010_000_00, "CNY", "b1"), T0 + 20),
        (PlaceBid("alice", 1_000_000_00, "CNY", "a2"), T0 + 30),  # below the minimum
    ]
    records = []
    for n, (command, now) in enumerate(commands):
        state, events = apply(state, command, now)
        records.append(HistoryRecord.of(LOT, n, now, command, events))
    return records, state


def view_of(state: LotState, records: list[HistoryRecord]) -> LotView:
    stored = StoredLot(LOT, None, None, "Flat 1", state.rules, T0 - 100, state, len(records), 0)
    return LotView.of(stored, state, 2)


def close(records: list[HistoryRecord], state: LotState) -> tuple[list[HistoryRecord], LotState]:
    now = T0 + HOUR
    state, events = apply(state, CloseLot(), now)
    return [*records, HistoryRecord.of(LOT, len(records), now, CloseLot(), events)], state


def test_words() -> None:
    assert format_money(21_000_000, "CNY") == "CN¥210,000.00"
    assert format_money(1_250_50, "USD") == "$1,250.50"
    assert format_money(5000, "JPY") == "¥5,000"
    assert format_money(12_345, "CHF") == "CHF 123.45"
    assert format_time(T0, "Asia/Shanghai") == "15 Jan 2027, 16:00:00 (Asia/Shanghai)"
    assert format_time(T0, "Not/AZone") == "15 Jan 2027, 08:00:00 (UTC)"


@pytest.mark.parametrize(
    ("fen", "words"),
    [
        (0, "零元整"),
        (100_000_00, "壹拾万元整"),
        (1_010_000_00, "壹佰零壹万元整"),
        (21_000_000, "贰拾壹万元整"),
        (1_000_050_00, "壹佰万零伍拾元整"),
        (10_000_005_00, "壹仟万零伍元整"),
        (1_05, "壹元零伍分"),
        (12, "壹角贰分"),
        (3_40, "叁元肆角整"),
    ],
)
def test_chinese_uppercase(fen: int, words: str) -> None:
    assert chinese_uppercase(fen) == words


def test_a_bidders_standing_while_open() -> None:
    records, state = history()
    view = view_of(state, records)
    answers = [
        BidRecord(LOT, "a1", "bid", 1_000_000_00, "CNY", "accepted", None, None, 41, T0 + 10),
        BidRecord(LOT, "a2", "bid", 1_000_000_00, "CNY", "rejected", "BELOW_MIN", "x", 43, T0),
        BidRecord(LOT, "a3", "bid", 5, "CNY", "rejected", "RATE_LIMITED", "too many bids", None, 7),
    ]
    alice = summarize("alice", view, records, answers, (), T0 - 6, T0 + 40)
    assert alice is not None
    assert alice["standing"] == "outbid" and alice["headline"] == "You have been outbid."
    assert alice["code"] == "AAAA-0001" and alice["deposit"]["state"] == "FROZEN"
    assert alice["notice"] == {"accepted": True, "accepted_us": T0 - 6}
    bids = alice["bids"]
    assert [(b["t_us"], b["result"], b["entry"]) for b in bids] == [
        (7, "rejected", None),  # refused before the rules: no entry, still listed
        (T0 + 10, "accepted", 41),
        (T0 + 30, "rejected", 43),
    ]
    assert bids[1]["receipt"] == "/log/receipt/41" and bids[1]["words"] == "Accepted."
    assert bids[2]["receipt"] is None
    assert bids[2]["words"].startswith("Refused: ") and "BELOW_MIN" not in bids[2]["words"]
    assert bids[0]["words"] == "Refused: Too many bids."
    bob = summarize("bob", view, records, (), (), None, T0 + 40)
    assert bob is not None and bob["standing"] == "leading"
    assert bob["bids"][0]["entry"] is None  # no recorded answer: the bid, without its entry
    carol = summarize("carol", view, records)
    assert carol is not None and carol["standing"] == "registered"
    assert carol["headline"] == "You are registered. Your deposit is not frozen yet."
    assert summarize("dave", view, records) is None


def test_after_the_close_won_lost_and_the_release_date() -> None:
    records, state = history()
    records, state = close(records, state)
    view = view_of(state, records)
    document = Document(LOT, "sale_confirmation", "bob", "c.txt", "text/plain", b"x", "ab", 9, 1)
    alice = summarize("alice", view, records, (), [document])
    assert alice is not None and alice["standing"] == "lost"
    assert alice["deposit"]["state"] == "RELEASED"
    release = format_time(alice["deposit"]["deadline_us"], "Asia/Shanghai")
    assert alice["headline"] == (
        f"You did not win; your deposit of CN¥100,000.00 is released by {release}."
    )
    assert alice["documents"] == [] and alice["outcome"] is None  # Bob's, not hers
    bob = summarize("bob", view, records, (), [document])
    assert bob is not None and bob["standing"] == "won" and bob["headline"] == "You won this lot."
    outcome = bob["outcome"]
    assert outcome["hammer_price"] == 1_010_000_00 and outcome["deposit_applied"] == 100_000_00
    assert outcome["balance_due"] == 910_000_00
    assert outcome["balance_due_at_us"] == state.balance_due_at
    assert [d["entry"] for d in bob["documents"]] == [9]
    carol = summarize("carol", view, records)
    assert carol is not None and carol["standing"] == "ended"
    assert carol["headline"] == "The lot has ended."  # she never paid a deposit
    assert carol["deposit"]["state"] == "REQUIRED"


def test_the_confirmation_text_and_its_ledger_body() -> None:
    facts = SaleFacts(
        lot=LOT,
        title="Flat 1",
        sale_title="Court sale",
        currency="CNY",
        zone="Asia/Shanghai",
        buyer_name="张三丰",
        buyer_code="BBBB-0002",
        price=1_010_000_00,
        deposit_applied=100_000_00,
        balance_due_at=T0 + 10 * 24 * HOUR,
        closed_us=T0 + HOUR,
        sale_entry={"seq": 77, "close_entry": 76, "winning_bid_entry": 70, "sha256": "ab" * 32},
        issued_us=T0 + HOUR,
    )
    text = confirmation_text(facts).decode("utf-8")
    assert text.startswith("成交确认书 / Confirmation of sale\n")
    assert "Buyer:          张三丰, bidder code BBBB-0002" in text
    assert "Hammer price:   CN¥1,010,000.00 (人民币壹佰零壹万元整)" in text
    assert "Balance due:    CN¥910,000.00 (人民币玖拾壹万元整)" in text
    assert "Pay by:         25 Jan 2027, 16:00:00 (Asia/Shanghai)" in text
    assert "sale entry 77; close entry 76; winning bid entry 70" in text and "ab" * 32 in text
    erased = confirmation_text(
        SaleFacts(**{**{f: getattr(facts, f) for f in facts.__slots__}, "buyer_name": None})
    )
    assert b"name withheld" in erased
    content = confirmation_text(facts)
    body = document_body(LOT, "c.txt", content)
    assert body == {
        "v": 1,
        "lot": LOT,
        "kind": "sale_confirmation",
        "name": "c.txt",
        "content_type": "text/plain; charset=utf-8",
        "size": len(content),
        "sha256": hashlib.sha256(content).hexdigest(),
    }
    assert "张三丰" not in repr(body)


def test_live_lot_bids_held_then_accepted_or_declined_by_the_auctioneer() -> None:
    from auction.rules import (
        AcceptOnline,
        BidPending,
        DeclineOnline,
        FloorBid,
        OpenRing,
        live_auctioneer,
    )

    rules = live_auctioneer(start_price=5000_00, start_at=T0)
    state = LotState.create("painting", rules)
    records: list[HistoryRecord] = []

    def run(command: Any, now: int) -> tuple[Any, ...]:
        nonlocal state
        state, events = apply(state, command, now)
        records.append(HistoryRecord.of("painting", len(records), now, command, events))
        return events

    run(RegisterBidder("alice", "AAAA-0001", kyc_verified=True), T0 - 10)
    run(OpenRing(5000_00), T0)
    held = next(
        e for e in run(PlaceBid("alice", 5000_00, "USD", "a1"), T0 + 1) if isinstance(e, BidPending)
    )
    run(AcceptOnline(held.seq), T0 + 2)
    run(FloorBid(paddle="12"), T0 + 2)  # the room outbids her
    ask = state.min_next
    second = next(
        e for e in run(PlaceBid("alice", ask, "USD", "a2"), T0 + 3) if isinstance(e, BidPending)
    )
    run(DeclineOnline(second.seq), T0 + 4)
    third = run(PlaceBid("alice", ask, "USD", "a3"), T0 + 5)
    assert any(isinstance(e, BidPending) for e in third)
    stored = StoredLot("painting", None, None, "Painting", rules, T0 - 100, state, len(records), 1)
    view = LotView.of(stored, state, 1)
    alice = summarize("alice", view, records)
    assert alice is not None
    assert [(b["amount"], b["result"], b["words"]) for b in alice["bids"]] == [
        (5000_00, "accepted", "Accepted by the auctioneer."),
        (ask, "rejected", "Declined by the auctioneer."),
        (ask, "held", "Held: it is with the auctioneer, who accepts or declines it."),
    ]
    assert alice["standing"] == "outbid"  # the floor leads while her third bid is held
