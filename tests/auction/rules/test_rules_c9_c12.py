"""Rules C9 (close, result, payment, default), C10 (failure, relisting), C11 (pause, suspend,
resume, cancel) and C12 (multi-lot sales)."""

from __future__ import annotations

import pytest
from rules_kit import END, P0, STEP, Lot, judicial_rules

from auction import rules as r

RR = r.RejectReason
D = r.DAY
M = r.MINUTE


def sold_lot() -> Lot:
    lot = Lot(judicial_rules())
    lot.bidder("a")
    lot.bidder("b")
    lot.open()
    lot.bid("a", P0, 1)
    lot.bid("b", P0 + STEP, 2)
    return lot


def test_c9_close_sells_to_the_leader_and_starts_the_balance_clock() -> None:
    lot = sold_lot()
    lot.refused(r.CloseLot(), END - 1, RR.NOT_DUE)
    closed = lot.ok(r.CloseLot(), END)[0]
    assert (closed.result, closed.winner, closed.price) == (r.Result.SOLD, "b", P0 + STEP)
    assert closed.balance_due_at == END + 10 * D
    assert lot.state.status is r.LotStatus.SOLD
    lot.refused(r.PlaceBid("a", P0 + 2 * STEP, "CNY"), END + 1, RR.LATE)


def test_c9_payment_completes_the_sale() -> None:
    lot = sold_lot()
    lot.ok(r.CloseLot(), END)
    lot.ok(r.ConfirmPayment("bank-ref-1"), END + D)
    assert lot.state.status is r.LotStatus.COMPLETED
    lot.refused(r.DeclareDefault("late"), END + 20 * D, RR.ILLEGAL_STATE)


def test_c9_no_valid_bid_fails_the_lot() -> None:
    lot = Lot(judicial_rules())
    lot.open()
    closed = lot.ok(r.CloseLot(), END)[0]
    assert closed.result is r.Result.FAILED and closed.reason == "no valid bid"
    assert lot.state.status is r.LotStatus.FAILED


def failed_lot() -> Lot:
    lot = Lot(judicial_rules())
    lot.open()
    lot.ok(r.CloseLot(), END)
    return lot


def test_c10_relist_after_failure_keeps_at_least_80_percent() -> None:
    lot = failed_lot()
    with pytest.raises(r.RelistError):
        r.plan_relist(
            lot.state,
            start_price=P0 * 79 // 100,
            start_at=END + 15 * D,
            end_at=END + 16 * D,
            now=END,
        )
    plan = r.plan_relist(
        lot.state,
        start_price=P0 * 8 // 10,
        start_at=END + 16 * D,
        end_at=END + 17 * D,
        now=END + D,
    )
    assert plan.rules.start_price == P0 * 8 // 10 and plan.rules.relist_count == 1
    assert plan.rules.deposit == judicial_rules().deposit * 8 // 10


def test_c10_relist_window_is_30_days() -> None:
    lot = failed_lot()
    with pytest.raises(r.RelistError):
        r.plan_relist(lot.state, start_price=P0, start_at=0, end_at=D, now=END + 31 * D)


def test_c10_second_failure_leads_to_the_fixed_price_sale() -> None:
    lot = failed_lot()
    start = END + 15 * D
    plan = r.plan_relist(
        lot.state, start_price=P0 * 8 // 10, start_at=start, end_at=start + D, now=END
    )
    again = Lot(plan.rules, "lot-1-relist")
    again.open(start)
    again.ok(r.CloseLot(), start + D)
    fixed = r.plan_relist(
        again.state,
        start_price=P0 * 8 // 10,
        start_at=start + D,
        end_at=start + 61 * D,
        now=start + D,
    )
    assert fixed.rules.format is r.Format.FIXED_PRICE_SALE
    assert fixed.rules.start_price == P0 * 8 // 10 and "fixed-price" in fixed.basis


def test_c10_relist_after_default_bars_the_defaulter() -> None:
    lot = sold_lot()
    lot.ok(r.CloseLot(), END)
    lot.ok(r.DeclareDefault("missed"), END + 10 * D)
    plan = r.plan_relist(
        lot.state, start_price=P0, start_at=END + 26 * D, end_at=END + 27 * D, now=END + 11 * D
    )
    assert "b" in plan.rules.barred
    relisted = Lot(plan.rules, "lot-1b")
    relisted.refused(r.RegisterBidder("b", "C-b", True), END + 11 * D, RR.BARRED)


def test_c11_pause_freezes_remaining_and_resume_restores_it() -> None:
    lot = sold_lot()
    lot.ok(r.Pause("court order", r.Authority.COURT, "2020 Art 28"), END - 10 * M)
    assert lot.state.remaining == 10 * M
    lot.refused(r.PlaceBid("a", P0 + 2 * STEP, "CNY"), END - 9 * M, RR.SUSPENDED)
    resumed = lot.ok(r.Resume("order lifted"), END + D)[0]
    assert resumed.end == END + D + 10 * M == lot.state.end


def test_c11_resume_gives_at_least_the_soft_close_window() -> None:
    lot = sold_lot()
    lot.ok(r.Suspend("objection filed"), END - 1 * M)
    lot.ok(r.Resume("objection rejected"), END + D)
    assert lot.state.end == END + D + 5 * M  # max(remaining, W)


def test_c11_resume_after_five_days_is_refused() -> None:
    lot = sold_lot()
    lot.ok(r.Pause("court order"), 10)
    lot.refused(r.Resume("too late"), 10 + 5 * D + 1, RR.RESUME_EXPIRED)
    lot.ok(r.Cancel("not resumed in time"), 10 + 5 * D + 2)


def test_c11_platform_pause_notifies_the_court() -> None:
    lot = sold_lot()
    halted = lot.ok(r.Pause("ingress health check failed", r.Authority.PLATFORM), 5)[0]
    assert halted.notify_court and halted.status is r.LotStatus.PAUSED
    lot.ok(r.Suspend("investigation"), 6)
    assert lot.state.status is r.LotStatus.SUSPENDED


def test_c11_cancel_releases_every_deposit() -> None:
    lot = Lot(judicial_rules())
    lot.bidder("a")
    events = lot.ok(r.Cancel("consignor withdrew", basis="Auction Law Art 29"), 0)
    assert lot.state.status is r.LotStatus.CANCELLED
    (released,) = lot.of_type(events, r.DepositChanged)
    assert released.state is r.DepositState.RELEASED and released.deadline == 24 * r.HOUR
    lot.refused(r.OpenLot(), 1, RR.ILLEGAL_STATE)
    lot.refused(r.Cancel("again"), 2, RR.ILLEGAL_STATE)


def test_c11_illegal_transitions_are_typed() -> None:
    from auction.rules.states import LotEvent, lot_transition

    with pytest.raises(r.IllegalTransition) as info:
        lot_transition(r.LotStatus.CANCELLED, LotEvent.RESUME)
    assert "CANCELLED" in str(info.value) and "resume" in str(info.value)


def test_c12_staggered_closes() -> None:
    assert r.staggered_ends(1_000, 60, 3) == [1_000, 1_060, 1_120]
    staggered = r.stagger([judicial_rules()] * 3, END, 45 * r.SECOND)
    assert [x.end_at for x in staggered] == [END, END + 45 * r.SECOND, END + 90 * r.SECOND]


def test_c12_stop_remaining_once_proceeds_cover_the_debt() -> None:
    first = Lot(judicial_rules(), "l1")
    first.bidder("a")
    first.open()
    first.bid("a", P0, 1)
    later = {
        "l2": Lot(judicial_rules(start_at=D, end_at=2 * D), "l2"),
        "l3": Lot(judicial_rules(start_at=D, end_at=2 * D), "l3"),
    }
    sale = r.Sale("s1", ("l1", "l2", "l3"), debt=P0)
    events = first.ok(r.CloseLot(), END)
    statuses = {"l1": first.state.status} | {k: v.state.status for k, v in later.items()}
    sale, commands = r.on_lot_events(sale, "l1", events, statuses)
    assert sale.stopped and sale.proceeds == P0
    assert [lot for lot, _ in commands] == ["l2", "l3"]
    for lot_id, command in commands:
        later[lot_id].ok(command, END)
        assert later[lot_id].state.status is r.LotStatus.CANCELLED


def test_c12_lots_are_independent_by_default() -> None:
    a, b = Lot(judicial_rules(), "a"), Lot(judicial_rules(), "b")
    for lot in (a, b):
        lot.bidder("x")
        lot.open()
    events = a.bid("x", P0, END - M)
    sale = r.Sale("s", ("a", "b"))
    _, commands = r.on_lot_events(sale, "a", events, {"a": a.state.status, "b": b.state.status})
    assert commands == [] and b.state.end == END
