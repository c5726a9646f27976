"""The rules' "Clarifications (second edition)", items 1-8: one table test per item, named
after it (`spec/auction-rules.md`). Item 9, the fixed-price sale, is in
tests/test_rules_fixed_price.py."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from rules_kit import END, P0, STEP, Lot, english_rules, judicial_rules, live_rules

from auction import rules as r

RR = r.RejectReason
D = r.DAY
M = r.MINUTE

# --- 1. C4, the "2-5-8" ladder -----------------------------------------------------------------

LISTED = [1_000, 1_200, 1_500, 1_800, 2_000, 2_200, 2_500, 2_800, 3_000]
TOP = [9_000, 9_200, 9_500, 9_800, 10_000, 12_000, 15_000, 18_000, 20_000, 22_000, 25_000]


def test_clarification_1_the_258_ladder_exactly_as_listed() -> None:
    ladder = r.Ladder(decade_258=True)
    rungs = ladder.rungs(1_000, 25_000)
    assert rungs[: len(LISTED)] == LISTED
    assert rungs[-len(TOP) :] == TOP
    assert len(rungs) == 9 * 4 + 1 + 6  # four rungs per thousand, 10,000, then 12,000..25,000
    assert ladder.step_above(1_000, 20_000) == 22_000  # the known defect: it went to 25,000
    assert ladder.step_above(1_000, 9_800) == 10_000 and ladder.step_above(1_000, 10_000) == 12_000
    for amount, on in [
        (2_200, True),
        (2_500, True),
        (3_500, True),
        (2_300, False),
        (11_000, False),
    ]:
        assert ladder.on_grid(1_000, amount) is on, amount


@pytest.mark.parametrize(
    ("start", "cur", "expected"),
    [
        (1_000, None, 1_000),
        (1_000, 1_000, 1_200),
        (1_000, 1_800, 2_000),
        (1_000, 2_000, 2_200),
        (1_000, 9_800, 10_000),
        (1_000, 10_000, 12_000),
        (100_000, 200_000, 220_000),
        (100, 150, 180),
        (10, 18, 20),
    ],
)
def test_clarification_1_min_next_on_the_258_ladder(
    start: int, cur: int | None, expected: int
) -> None:
    assert r.Ladder(decade_258=True).min_next(start, cur) == expected


def test_clarification_1_a_clerks_override_changes_the_next_ask_only() -> None:
    lot = Lot(live_rules(start_price=1_000))
    lot.open()
    lot.ok(r.FloorBid("7"), 1)  # 1,000
    assert lot.state.min_next == 1_200
    lot.ok(r.SetAsk(1_300), 2)  # the clerk calls 1,300, off the ladder
    assert lot.state.min_next == 1_300
    lot.ok(r.FloorBid("8"), 3)  # 1,300 taken
    assert lot.state.price == 1_300 and lot.state.min_next == 1_500  # back on the ladder
    lot.ok(r.FloorBid("7"), 4)
    assert lot.state.price == 1_500 and lot.state.min_next == 1_800


# --- 2. C5, raising a max below a hidden reserve -----------------------------------------------


def test_clarification_2_raising_a_max_below_a_hidden_reserve() -> None:
    soft = r.SoftClose(window=2 * M, extend=2 * M)
    lot = Lot(english_rules(reserve=10_000, increment=r.Fixed(100), soft_close=soft))
    lot.bidder("a")
    lot.open()
    lot.max("a", 5_000, 1)
    assert lot.state.price == 5_000  # below the reserve the price follows the max
    table = [
        # (raise to, at, price after, price event, extended)
        (8_000, END - M, 8_000, True, True),  # still below: a price change and a trigger
        (12_000, END + M // 2, 10_000, True, True),  # crosses it: the price jumps to the reserve
        (15_000, END + 2 * M, 10_000, False, False),  # above it: silent
    ]
    for amount, at, price, moved, extended in table:
        end_before = lot.state.end
        events = lot.max("a", amount, at)
        assert lot.state.price == price, amount
        assert bool(lot.of_type(events, r.PriceChanged)) is moved, amount
        assert bool(lot.of_type(events, r.EndExtended)) is extended, amount
        assert (lot.state.end > end_before) is extended
    closed = lot.ok(r.CloseLot(), lot.state.end)[0]
    assert closed.result is r.Result.SOLD and closed.price == 10_000


# --- 3. C5/C6, silent max changes never extend -------------------------------------------------


@pytest.mark.parametrize(
    "rules",
    [
        judicial_rules(proxy_allowed=True),  # trigger: any valid bid
        english_rules(soft_close=r.SoftClose(window=5 * M, extend=5 * M)),
        english_rules(
            soft_close=r.SoftClose(
                window=5 * M, extend=5 * M, trigger=r.SoftCloseTrigger.ANY_VALID_BID
            )
        ),
    ],
    ids=["judicial-proxy", "price-or-leader", "any-valid-bid"],
)
def test_clarification_3_silent_max_changes_never_extend(rules: r.LotRules) -> None:
    lot = Lot(rules)
    lot.bidder("a")
    lot.bidder("b")
    lot.open()
    start = rules.start_price
    lot.max("a", start * 3, 1)
    lot.bid("b", rules.increment.min_next(start, start), 2)
    price, leader = lot.state.price, lot.state.leader
    events = lot.max("a", start * 5, END - M)  # inside the window; moves nothing
    assert (lot.state.price, lot.state.leader) == (price, leader)
    assert not lot.of_type(events, r.EndExtended) and lot.state.end == END
    events = lot.bid("b", lot.state.min_next, END - M)  # a bid that moves the price does extend
    assert lot.of_type(events, r.EndExtended) and lot.state.end == END + 4 * M


# --- 4. C6, LIVE_RESET -------------------------------------------------------------------------


def test_clarification_4_live_reset_never_brings_the_end_earlier() -> None:
    soft = r.SoftClose(mode=r.SoftCloseMode.LIVE_RESET, window=0, extend=10 * M)
    lot = Lot(english_rules(soft_close=soft))
    lot.bidder("a")
    lot.bidder("b")
    lot.open()
    table = [
        # (bidder, amount, at, end after)
        ("a", 1_000, END - 60 * M, END),  # t + E is earlier than the end: unchanged
        ("b", 1_100, END - 10 * M, END),  # exactly the end: unchanged
        ("a", 1_200, END - 5 * M, END + 5 * M),  # later: end := t + E
        ("b", 1_300, END - M, END + 9 * M),
    ]
    for bidder, amount, at, end in table:
        lot.bid(bidder, amount, at)
        assert lot.state.end == end, (bidder, amount)


# --- 5. C6, caps after a pause -----------------------------------------------------------------


def test_clarification_5_the_cap_counts_from_the_end_moved_by_the_pauses() -> None:
    soft = r.SoftClose(window=2 * M, extend=2 * M, cap_total=10 * M)
    lot = Lot(english_rules(soft_close=soft, increment=r.Fixed(100)))
    lot.bidder("a")
    lot.bidder("b")
    lot.open()
    lot.ok(r.Pause("platform fault", r.Authority.PLATFORM), END - 30 * M)
    lot.ok(r.Resume("fixed"), END + 30 * M)  # paused an hour: 30 min left, end END + 60 min
    lot.ok(r.Suspend("objection"), END + 40 * M)
    lot.ok(r.Resume("rejected"), END + 50 * M)  # 20 min were left: end END + 70 min
    assert lot.state.end == END + 70 * M and lot.state.paused_total == 70 * M
    cap = END + 70 * M + 10 * M  # scheduled end + paused total + cap_total
    ends = []
    for k in range(40):  # a bid one minute before each end, alternately
        lot.bid("ab"[k % 2], 1_000 + 100 * k, lot.state.end - M)
        ends.append(lot.state.end)
    assert max(ends) == ends[-1] == cap  # not END + 10 min: the pauses moved the cap with the end


# --- 6. C11, resuming a hard-close lot ---------------------------------------------------------


@pytest.mark.parametrize(
    ("soft", "remaining", "end_after"),
    [
        (r.SoftClose(mode=r.SoftCloseMode.OFF), M, D + M),  # W = 0: t_resume + remaining
        (r.SoftClose(mode=r.SoftCloseMode.OFF), 30 * M, D + 30 * M),
        (r.SoftClose(window=5 * M, extend=5 * M), M, D + 5 * M),  # soft: max(remaining, W)
        (r.SoftClose(window=5 * M, extend=5 * M), 30 * M, D + 30 * M),
    ],
    ids=["hard-1min", "hard-30min", "soft-1min", "soft-30min"],
)
def test_clarification_6_resuming_a_hard_close_lot(
    soft: r.SoftClose, remaining: int, end_after: int
) -> None:
    lot = Lot(english_rules(soft_close=soft))
    lot.bidder("a")
    lot.open()
    lot.bid("a", 1_000, 1)
    lot.ok(r.Pause("court order"), END - remaining)
    resumed = lot.ok(r.Resume("lifted"), END + D)[0]
    assert resumed.end == END + end_after == lot.state.end


# --- 7. C10, relisting notice ------------------------------------------------------------------


def failed(rules: r.LotRules) -> Lot:
    lot = Lot(rules)
    lot.open()
    lot.ok(r.CloseLot(), rules.end_at)
    return lot


@pytest.mark.parametrize(
    ("rules", "notice"),
    [
        (judicial_rules(), 15 * D),  # judicial lots default to real estate
        (judicial_rules(property_kind=r.PropertyKind.MOVABLE), 7 * D),
        (judicial_rules().replace(property_kind=None), 15 * D),  # e.g. rules from an older log
        (english_rules(property_kind=r.PropertyKind.REAL_ESTATE), 15 * D),
        (english_rules(property_kind=r.PropertyKind.MOVABLE), 7 * D),
        (english_rules(), 0),  # a commercial lot that states no kind has no statutory notice
    ],
    ids=[
        "judicial",
        "judicial-movable",
        "judicial-unstated",
        "english-re",
        "english-movable",
        "english",
    ],
)
def test_clarification_7_relisting_notice(rules: r.LotRules, notice: int) -> None:
    lot = failed(rules)
    now = END + 2 * D  # the relisting
    price = rules.start_price
    if notice:
        with pytest.raises(r.NoticeTooShort) as refused:
            r.plan_relist(
                lot.state,
                start_price=price,
                start_at=now + notice - 1,
                end_at=now + 40 * D,
                now=now,
            )
        assert refused.value.earliest_start == now + notice
        assert isinstance(refused.value, r.RelistError)
        when = datetime.fromtimestamp((now + notice) / r.SECOND, UTC)
        assert f"runs {notice // D} days" in str(refused.value)
        assert f"{when:%Y-%m-%d %H:%M:%S} UTC at the earliest" in str(refused.value)
    plan = r.plan_relist(
        lot.state, start_price=price, start_at=now + notice, end_at=now + 40 * D, now=now
    )
    assert plan.rules.start_at == now + notice
    relisted = Lot(plan.rules, "lot-relisted")
    if notice:
        relisted.refused(r.OpenLot(), now + notice - 1, RR.NOT_DUE)
    relisted.ok(r.OpenLot(), now + notice)


# --- 8. C9/C10, after a default ----------------------------------------------------------------


def defaulted() -> Lot:
    lot = Lot(judicial_rules())
    lot.bidder("a")
    lot.bidder("b")
    lot.open()
    lot.bid("a", P0, 1)
    lot.bid("b", P0 + STEP, 2)
    lot.ok(r.CloseLot(), END)
    lot.ok(r.DeclareDefault("balance not paid"), END + 10 * D)
    return lot


def test_clarification_8_after_a_default_the_re_auction_follows_c10() -> None:
    lot = defaulted()
    default_at = END + 10 * D
    table = [
        # (price, relisted at, error) - the window counts from the default, the floor is 80 %
        (P0 * 8 // 10, default_at + 30 * D, None),
        (P0 * 8 // 10 - 1, default_at + D, "at least 80 %"),
        (P0, default_at + 30 * D + 1, "relisting window"),
    ]
    for price, now, error in table:
        arguments = {"start_price": price, "start_at": now + 15 * D, "end_at": now + 16 * D}
        if error:
            with pytest.raises(r.RelistError, match=error):
                r.plan_relist(lot.state, now=now, **arguments)
        else:
            plan = r.plan_relist(lot.state, now=now, **arguments)
            assert plan.barred_added == {"b"} and "b" in plan.rules.barred
            assert plan.rules.relist_count == 0  # a default is not a failure


def test_clarification_8_the_defaulter_stays_barred_from_that_property() -> None:
    lot = defaulted()
    now = END + 11 * D
    plan = r.plan_relist(
        lot.state, start_price=P0, start_at=now + 15 * D, end_at=now + 16 * D, now=now
    )
    again = Lot(plan.rules, "re-auction")
    again.refused(r.RegisterBidder("b", "C-b2", True), now, RR.BARRED)
    again.open(now + 15 * D)
    again.ok(r.CloseLot(), now + 16 * D)  # fails
    now += 17 * D
    relist = r.plan_relist(
        again.state, start_price=P0 * 8 // 10, start_at=now + 15 * D, end_at=now + 16 * D, now=now
    )
    third = Lot(relist.rules, "relisting")
    third.refused(r.RegisterBidder("b", "C-b3", True), now, RR.BARRED)
    third.open(now + 15 * D)
    third.ok(r.CloseLot(), now + 16 * D)  # the second failure
    now += 17 * D
    sale = r.plan_relist(
        third.state, start_price=P0 * 8 // 10, start_at=now, end_at=now + 60 * D, now=now
    )
    assert sale.rules.format is r.Format.FIXED_PRICE_SALE
    fixed = Lot(sale.rules, "fixed-price")
    fixed.refused(r.RegisterBidder("b", "C-b4", True), now, RR.BARRED)
