"""Rules C4: prices, increment modes and the valid-bid test with typed rejections."""

from __future__ import annotations

import pytest
from rules_kit import END, P0, STEP, Lot, english_rules, judicial_rules

from auction import rules as r

RR = r.RejectReason


def test_c4_fixed_first_bid_may_equal_start_price_then_steps() -> None:
    lot = Lot(judicial_rules())
    lot.bidder("a")
    lot.bidder("b")
    lot.open()
    lot.refused(r.PlaceBid("a", P0 - STEP, "CNY"), 1, RR.BELOW_MIN)
    lot.bid("a", P0, 2)
    lot.refused(r.PlaceBid("b", P0, "CNY"), 3, RR.BELOW_MIN)
    lot.refused(r.PlaceBid("b", P0 + STEP // 2, "CNY"), 3, RR.OFF_GRID)
    lot.bid("b", P0 + 3 * STEP, 4)  # any multiple of the step above cur
    assert lot.state.price == P0 + 3 * STEP
    assert lot.state.min_next == P0 + 4 * STEP


def test_c4_table_increment_bounds_are_inclusive() -> None:
    table = r.EBAY_TABLE
    assert table.inc(10_000) == 250 and table.inc(9_999) == 100
    assert table.min_next(1_000, None) == 1_000
    assert table.min_next(1_000, 10_000) == 10_250
    assert table.on_grid(1_000, 1_001)  # FREE grid: any whole minor unit
    with pytest.raises(r.ConfigError):
        r.Table(tiers=((5, 1),))


def test_c4_ladder_navigates_by_rung_index() -> None:
    ladder = r.Ladder(inc_mode=r.Table(tiers=((0, 10), (100, 25))))
    assert ladder.rungs(50, 160) == [50, 60, 70, 80, 90, 100, 125, 150, 175]
    assert ladder.on_grid(50, 125) and not ladder.on_grid(50, 110)
    assert ladder.min_next(50, 100) == 125 and ladder.step_above(50, 110) == 125
    decade = r.Ladder(decade_258=True)
    assert decade.rungs(100, 260) == [100, 120, 150, 180, 200, 220, 250, 280]
    assert decade.step_above(100, 980) == 1000 and decade.step_above(100, 1000) == 1200


def test_c4_ladder_lot_rejects_off_rung_bids() -> None:
    ladder = r.Ladder(inc_mode=r.Table(tiers=((0, 100), (2_000, 250))))
    lot = Lot(english_rules(increment=ladder, start_price=1_500))
    lot.bidder("a")
    lot.bidder("b")
    lot.open()
    lot.bid("a", 1_500, 1)
    lot.refused(r.PlaceBid("b", 1_650, "USD"), 2, RR.OFF_GRID)
    lot.bid("b", 2_000, 3)
    assert lot.state.min_next == 2_250


def test_c4_bid_exactly_at_end_is_late_and_before_open_is_not_open() -> None:
    lot = Lot(judicial_rules())
    lot.bidder("a")
    lot.refused(r.PlaceBid("a", P0, "CNY"), 0, RR.NOT_OPEN)
    lot.open()
    lot.refused(r.PlaceBid("a", P0, "CNY"), END, RR.LATE)
    lot.bid("a", P0, END - 1)


def test_c4_leader_cannot_outbid_themselves() -> None:
    lot = Lot(judicial_rules())
    lot.bidder("a")
    lot.open()
    lot.bid("a", P0, 1)
    lot.refused(r.PlaceBid("a", P0 + STEP, "CNY"), 2, RR.SELF_OUTBID)


def test_c4_wrong_currency_is_refused() -> None:
    lot = Lot(judicial_rules())
    lot.bidder("a")
    lot.open()
    lot.refused(r.PlaceBid("a", P0, "USD"), 1, RR.WRONG_CURRENCY)


def test_c4_large_jump_needs_confirmation() -> None:
    lot = Lot(judicial_rules(max_jump_steps=10))
    lot.bidder("a")
    lot.bidder("b")
    lot.open()
    lot.bid("a", P0, 1)
    lot.refused(r.PlaceBid("b", P0 + 11 * STEP, "CNY"), 2, RR.JUMP_NEEDS_CONFIRMATION)
    lot.bid("b", P0 + 11 * STEP, 3, confirm_jump=True)


def test_c4_rejection_carries_authoritative_state() -> None:
    lot = Lot(judicial_rules())
    lot.bidder("a")
    lot.bidder("b")
    lot.open()
    lot.bid("a", P0, 1)
    rejected = lot.refused(r.PlaceBid("b", P0, "CNY"), 2, RR.BELOW_MIN)
    assert (rejected.cur, rejected.min_next, rejected.end, rejected.seq) == (
        P0,
        P0 + STEP,
        END,
        lot.state.seq,
    )
    assert rejected.bidder == "b"


def test_c4_halted_lot_refuses_with_suspended() -> None:
    lot = Lot(judicial_rules())
    lot.bidder("a")
    lot.open()
    lot.ok(r.Pause("court order"), 1)
    lot.refused(r.PlaceBid("a", P0, "CNY"), 2, RR.SUSPENDED)
