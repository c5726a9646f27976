"""Rules C14: the live auctioneer's ring."""

from __future__ import annotations

from rules_kit import Lot, live_rules

from auction import rules as r

RR = r.RejectReason
S = r.SECOND


def ring(**kw: object) -> Lot:
    lot = Lot(live_rules(**kw))
    for name in ("a", "b", "c"):
        lot.bidder(name)
    return lot


def test_c14_online_bid_is_prospective_and_first_come_holds_the_ask() -> None:
    lot = ring()
    lot.open()
    (pending,) = lot.bid("a", 10_000, 1)
    assert isinstance(pending, r.BidPending)
    lot.refused(r.PlaceBid("b", 10_000, "USD"), 2, RR.ASK_TAKEN)
    lot.ok(r.AcceptOnline(pending.seq), 3)
    assert (lot.state.leader, lot.state.price, lot.state.min_next) == ("a", 10_000, 12_000)
    lot.refused(r.PlaceBid("b", 10_000, "USD"), 4, RR.ASK_TAKEN)
    lot.refused(r.PlaceBid("b", 15_000, "USD"), 4, RR.OFF_GRID)


def test_c14_auto_accept_and_floor_bids() -> None:
    lot = ring()
    lot.open()
    lot.ok(r.SetAutoAccept(True), 1)
    lot.bid("a", 10_000, 2)
    assert lot.state.leader == "a"
    lot.ok(r.FloorBid("12"), 3)
    assert (lot.state.leader, lot.state.price) == ("floor:12", 12_000)
    lot.refused(r.FloorBid("12"), 4, RR.SELF_OUTBID)


def test_c14_floor_bid_declines_a_pending_online_bid() -> None:
    lot = ring()
    lot.open()
    (pending,) = lot.bid("a", 10_000, 1)
    events = lot.ok(r.FloorBid("7"), 2)
    (declined,) = lot.of_type(events, r.BidDeclined)
    assert declined.bid_seq == pending.seq and lot.state.live.pending is None  # type: ignore[union-attr]


def test_c14_absentee_bids_one_increment_above_the_room() -> None:
    lot = ring()
    lot.max("c", 20_000, 0)  # left before the sale
    lot.open()
    assert (lot.state.leader, lot.state.price) == ("c", 10_000)
    lot.ok(r.FloorBid("7"), 2)  # the room bids 12,000; the absentee answers 15,000
    assert (lot.state.leader, lot.state.price) == ("c", 15_000)
    lot.ok(r.FloorBid("7"), 3)  # 18,000; the absentee can still go 20,000
    assert (lot.state.leader, lot.state.price) == ("c", 20_000)
    lot.ok(r.FloorBid("7"), 4)  # 22,000 (the next 2-5-8 rung): exhausted
    assert (lot.state.leader, lot.state.price) == ("floor:7", 22_000)


def test_c14_two_absentees_resolve_at_one_increment_above_the_lower() -> None:
    lot = ring()
    lot.max("a", 30_000, 0)
    lot.max("b", 18_000, 0)
    lot.open()
    assert (lot.state.leader, lot.state.price) == ("a", 20_000)


def test_c14_hammer_needs_a_bid_fair_warning_and_the_dwell() -> None:
    lot = ring(fair_warning_dwell=3 * S)
    lot.open()
    lot.refused(r.Hammer(), 1, RR.NO_BIDS)
    lot.ok(r.FloorBid("7"), 2)
    lot.refused(r.Hammer(), 3, RR.ILLEGAL_STATE)
    lot.ok(r.FairWarning(), 10 * S)
    lot.refused(r.Hammer(), 12 * S, RR.DWELL_NOT_ELAPSED)
    closed = lot.ok(r.Hammer(), 13 * S)[0]
    assert closed.result is r.Result.SOLD and closed.winner_code == "floor:7"


def test_c14_bid_during_fair_warning_is_accepted_and_needs_a_new_warning() -> None:
    lot = ring()
    lot.open()
    lot.ok(r.SetAutoAccept(True), 0)
    lot.ok(r.FloorBid("7"), 1)
    lot.ok(r.FairWarning(), 2 * S)
    lot.bid("a", 12_000, 3 * S)
    assert lot.state.live.phase is r.LivePhase.IN_RING  # type: ignore[union-attr]
    lot.refused(r.Hammer(), 10 * S, RR.ILLEGAL_STATE)


def test_c14_undo_reopen_and_next() -> None:
    lot = ring()
    lot.open()
    lot.ok(r.SetAutoAccept(True), 0)
    lot.bid("a", 10_000, 1)
    lot.ok(r.FloorBid("7"), 2)
    lot.ok(r.UndoLastBid("clerk keyed the wrong paddle"), 3)
    assert (lot.state.leader, lot.state.price, lot.state.min_next) == ("a", 10_000, 12_000)
    lot.ok(r.FairWarning(), 4 * S)
    lot.ok(r.Hammer(), 8 * S)
    lot.ok(r.Reopen("a bid was missed"), 9 * S)
    assert lot.state.status is r.LotStatus.OPEN
    lot.ok(r.PassLot("withdrawn by consignor"), 10 * S)
    events = lot.ok(r.NextLot(), 11 * S)
    assert lot.of_type(events, r.LotFinalized)
    lot.refused(r.Reopen("too late"), 12 * S, RR.ILLEGAL_STATE)


def test_c14_next_lot_settles_deposits() -> None:
    lot = Lot(live_rules(deposit=50_000))
    lot.bidder("a")
    lot.bidder("b")
    lot.open()
    lot.ok(r.SetAutoAccept(True), 0)
    lot.bid("a", 10_000, 1)
    lot.ok(r.FairWarning(), 2 * S)
    lot.ok(r.Hammer(), 6 * S)
    events = lot.ok(r.NextLot(), 7 * S)
    states = {e.bidder: e.state for e in events if isinstance(e, r.DepositChanged)}
    assert states == {"a": r.DepositState.APPLIED_TO_PRICE, "b": r.DepositState.RELEASED}


def test_c14_every_accepted_bid_publishes_price_and_ask() -> None:
    lot = ring()
    lot.open()
    events = lot.ok(r.FloorBid("101"), 1)
    assert [type(e).__name__ for e in events] == ["BidAccepted", "PriceChanged", "AskChanged"]
    assert lot.state.next_deadline() is None  # the clerk drives a live lot, not a timer
