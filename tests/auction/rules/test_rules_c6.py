"""Rules C6: soft close modes, cap, trigger, scope, reserve approach, close with drain."""

from __future__ import annotations

import pytest
from rules_kit import END, P0, STEP, Lot, english_rules, judicial_rules

from auction import rules as r
from auction.rules.softclose import extended_end

M = r.MINUTE
RR = r.RejectReason


def sc(mode: r.SoftCloseMode, **kw: object) -> r.SoftClose:
    return r.SoftClose(mode=mode, window=5 * M, extend=5 * M, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("mode", "t", "expected"),
    [
        (r.SoftCloseMode.FROM_BID, END - 6 * M, None),  # outside the window
        (r.SoftCloseMode.FROM_BID, END - 5 * M, None),  # end - W <= t: t + E == end, no change
        (r.SoftCloseMode.FROM_BID, END - 1 * M, END + 4 * M),
        (r.SoftCloseMode.RESET_TO_REMAINING, END - 2 * M, END + 3 * M),
        (r.SoftCloseMode.ADD_TO_END, END - 1 * M, END + 5 * M),
        (r.SoftCloseMode.LIVE_RESET, END - 30 * M, None),  # never earlier than end
        (r.SoftCloseMode.LIVE_RESET, END - 1 * M, END + 4 * M),
        (r.SoftCloseMode.OFF, END - 1 * M, None),
    ],
)
def test_c6_soft_close_modes(mode: r.SoftCloseMode, t: int, expected: int | None) -> None:
    assert extended_end(sc(mode), END, END, 0, t) == expected


def test_c6_soft_close_cap_total_and_cap_count() -> None:
    capped = sc(r.SoftCloseMode.ADD_TO_END, cap_total=7 * M)
    assert extended_end(capped, END + 5 * M, END, 1, END + 4 * M) == END + 7 * M
    counted = sc(r.SoftCloseMode.FROM_BID, cap_count=2)
    assert extended_end(counted, END, END, 2, END - M) is None


def test_c6_soft_close_from_bid_extends_the_lot() -> None:
    lot = Lot(judicial_rules())
    lot.bidder("a")
    lot.bidder("b")
    lot.open()
    lot.bid("a", P0, END - 10 * M)
    assert lot.state.end == END
    events = lot.bid("b", P0 + STEP, END - 1 * M)
    (extended,) = lot.of_type(events, r.EndExtended)
    assert (extended.end_before, extended.end_after) == (END, END + 4 * M)
    lot.bid("a", P0 + 2 * STEP, END + 3 * M)  # inside the new window
    assert lot.state.end == END + 8 * M


def test_c6_soft_close_close_with_drain_reschedules() -> None:
    lot = Lot(judicial_rules())
    lot.bidder("a")
    lot.open()
    # a bid stamped before the end is drained before the close and extends the end
    lot.bid("a", P0, END - 1)
    lot.refused(r.CloseLot(), END, RR.NOT_DUE)
    assert lot.state.next_deadline() == END - 1 + 5 * M
    lot.refused(r.PlaceBid("a", P0 + STEP, "CNY"), END - 1 + 5 * M, RR.LATE)
    closed = lot.ok(r.CloseLot(), END - 1 + 5 * M)[0]
    assert closed.result is r.Result.SOLD and closed.end_final == END - 1 + 5 * M


def test_c6_soft_close_trigger_price_or_leader_change_ignores_silent_max() -> None:
    rules = english_rules(soft_close=r.SoftClose(window=2 * M, extend=2 * M))
    lot = Lot(rules)
    lot.bidder("a")
    lot.bidder("b")
    lot.open()
    lot.max("a", 10_000, 1)
    lot.max("b", 2_000, 2)
    events = lot.max("a", 20_000, END - M)  # leader raises: neither price nor leader change
    assert not lot.of_type(events, r.EndExtended)
    events = lot.max("b", 15_000, END - M)  # price changes: extends
    assert lot.of_type(events, r.EndExtended)


def test_c6_soft_close_trigger_any_valid_bid_counts_every_accepted_bid() -> None:
    rules = english_rules(
        soft_close=r.SoftClose(window=2 * M, extend=2 * M, trigger=r.SoftCloseTrigger.ANY_VALID_BID)
    )
    lot = Lot(rules)
    lot.bidder("a")
    lot.bidder("b")
    lot.open()
    lot.max("a", 10_000, 1)
    events = lot.max("a", 20_000, END - M)  # silent: not a bid (clarification 3)
    assert not lot.of_type(events, r.EndExtended)
    events = lot.bid("b", 2_000, END - M)
    assert lot.of_type(events, r.EndExtended)


def test_c6_soft_close_on_reserve_approach_extends_once() -> None:
    rules = english_rules(
        reserve=5_000,
        increment=r.Fixed(1_000),
        soft_close=r.SoftClose(window=M, extend=M, reserve_approach=5 * M),
    )
    lot = Lot(rules)
    lot.bidder("a")
    lot.bidder("b")
    lot.open()
    lot.bid("a", 3_000, 10)
    assert not lot.state.reserve_approach_done
    events = lot.bid("b", 4_000, END - 2 * M)  # next increment (5,000) meets the reserve
    (approach,) = lot.of_type(events, r.ReserveApproached)
    assert approach.end == END - 2 * M + 5 * M == lot.state.end
    assert lot.state.reserve_approach_done


def test_c6_soft_close_scope_group_aligns_other_lots_of_the_group() -> None:
    soft = r.SoftClose(window=5 * M, extend=5 * M, scope=r.Scope.GROUP, group="g1")
    lots = {name: Lot(judicial_rules(soft_close=soft), name) for name in ("l1", "l2", "l3")}
    for lot in lots.values():
        lot.bidder("a")
        lot.open()
    sale = r.Sale("s", ("l1", "l2", "l3"), groups={"l1": "g1", "l2": "g1", "l3": "g2"})
    events = lots["l1"].bid("a", P0, END - M)
    statuses = {name: lot.state.status for name, lot in lots.items()}
    sale, commands = r.on_lot_events(sale, "l1", events, statuses)
    assert commands == [("l2", r.AlignEnd(end=END + 4 * M, source_lot="l1"))]
    for target, command in commands:
        lots[target].ok(command, END - M)
    assert lots["l2"].state.end == END + 4 * M and lots["l3"].state.end == END


def test_c6_end_never_moves_earlier_without_pause() -> None:
    lot = Lot(judicial_rules())
    lot.bidder("a")
    lot.open()
    lot.bid("a", P0, END - M)
    end = lot.state.end
    lot.refused(r.AlignEnd(end=END, source_lot="x"), END, RR.DUPLICATE)
    assert lot.state.end == end
