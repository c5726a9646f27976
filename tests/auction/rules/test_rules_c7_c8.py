"""Rules C7 (priority purchase rights) and C8 (binding, retraction, authority void)."""

from __future__ import annotations

from rules_kit import END, P0, STEP, Lot, english_rules, judicial_rules

from auction import rules as r

RR = r.RejectReason
H = r.HOUR


def judicial_with_holders(**kw: object) -> Lot:
    lot = Lot(judicial_rules(**kw))
    lot.bidder("a")
    lot.bidder("b")
    lot.bidder("h1", priority_rank=1)
    lot.bidder("h1b", priority_rank=1)
    lot.bidder("h2", priority_rank=2)
    lot.open()
    return lot


def test_c7_priority_holder_matches_current_price_and_takes_the_lead() -> None:
    lot = judicial_with_holders()
    lot.bid("a", P0 + STEP, 1)
    events = lot.bid("h2", P0 + STEP, END - 60 * r.SECOND)
    (bid,) = lot.of_type(events, r.BidAccepted)
    assert bid.bid_type is r.BidType.PRIORITY_MATCH
    assert (lot.state.leader, lot.state.price) == ("h2", P0 + STEP)
    assert lot.state.leader_code == "P2-h2"
    assert lot.of_type(events, r.EndExtended)  # a match is a bid: it triggers the soft close


def test_c7_ordinary_bidder_must_exceed_by_a_step_after_a_match() -> None:
    lot = judicial_with_holders()
    lot.bid("a", P0, 1)
    lot.bid("h1", P0, 2)
    lot.refused(r.PlaceBid("b", P0, "CNY"), 3, RR.BELOW_MIN)
    lot.bid("b", P0 + STEP, 4)
    lot.bid("h1", P0 + STEP, 5)  # the holder can match again
    assert lot.state.leader == "h1"


def test_c7_worse_rank_or_later_same_rank_cannot_match() -> None:
    lot = judicial_with_holders()
    lot.bid("a", P0, 1)
    lot.bid("h1", P0, 2)
    lot.refused(r.PlaceBid("h2", P0, "CNY"), 3, RR.BELOW_MIN)
    lot.refused(r.PlaceBid("h1b", P0, "CNY"), 4, RR.BELOW_MIN)  # same rank, later
    lot.bid("h2", P0 + STEP, 5)
    lot.bid("h1", P0 + STEP, 6)  # better rank matches the worse-ranked holder
    assert lot.state.leader == "h1"


def test_c7_priority_proxy_competes_at_equal_amounts() -> None:
    lot = judicial_with_holders(proxy_allowed=True)
    lot.max("a", P0 + 5 * STEP, 1)
    lot.max("h2", P0 + 5 * STEP, 2)  # equal max, later, but a priority holder
    assert (lot.state.leader, lot.state.price) == ("h2", P0 + 5 * STEP)
    lot.max("b", P0 + 9 * STEP, 3)
    assert (lot.state.leader, lot.state.price) == ("b", P0 + 6 * STEP)


def test_c7_holder_above_ordinary_max_pays_only_the_match() -> None:
    lot = judicial_with_holders(proxy_allowed=True)
    lot.max("a", P0 + 3 * STEP, 1)
    lot.max("h1", P0 + 8 * STEP, 2)
    assert (lot.state.leader, lot.state.price) == ("h1", P0 + 3 * STEP)


def test_c7_winner_at_close_is_the_best_key() -> None:
    lot = judicial_with_holders()
    lot.bid("a", P0, 1)
    lot.bid("h2", P0, 2)
    lot.bid("h1", P0, 3)
    closed = lot.ok(r.CloseLot(), END)[0]
    assert closed.winner == "h1" and closed.price == P0 and closed.winner_code == "P1-h1"


def test_c7_priority_rights_only_where_the_lot_has_them() -> None:
    lot = Lot(english_rules())
    lot.refused(r.RegisterBidder("h", "P1-h", True, priority_rank=1), 0, RR.NOT_PERMITTED)
    judicial = Lot(judicial_rules())
    judicial.open()
    judicial.refused(r.RegisterBidder("h", "P1-h", True, priority_rank=1), 1, RR.NOT_PERMITTED)


def test_c8_judicial_and_live_bids_are_irrevocable() -> None:
    lot = Lot(judicial_rules())
    lot.bidder("a")
    lot.open()
    (bid, _) = lot.bid("a", P0, 1)
    lot.refused(
        r.RetractBid("a", bid.seq, r.RetractReason.ENTRY_ERROR), 2, RR.RETRACTION_NOT_ALLOWED
    )


def english_two() -> Lot:
    lot = Lot(english_rules())
    lot.bidder("a")
    lot.bidder("b")
    lot.open()
    return lot


def test_c8_ebay_retraction_in_last_12h_only_recent_latest_bid() -> None:
    lot = english_two()
    lot.bid("a", 5_000, END - 20 * H)
    late = END - 10 * H
    (b_bid, *_) = lot.bid("b", 6_000, late)
    # an hour and a second later it is too late to retract
    lot.refused(
        r.RetractBid("b", b_bid.seq, r.RetractReason.ENTRY_ERROR),
        late + H + r.SECOND,
        RR.RETRACTION_NOT_ALLOWED,
    )
    events = lot.ok(r.RetractBid("b", b_bid.seq, r.RetractReason.ENTRY_ERROR), late + 30 * r.MINUTE)
    assert lot.of_type(events, r.BidVoided)[0].bid_seq == b_bid.seq
    assert (lot.state.leader, lot.state.price) == ("a", 5_000)


def test_c8_early_retraction_removes_all_of_the_bidders_bids() -> None:
    lot = english_two()
    lot.bid("a", 5_000, 1)
    (first, *_) = lot.bid("b", 6_000, 2)
    lot.bid("a", 7_000, 3)
    lot.bid("b", 8_000, 4)
    lot.ok(r.RetractBid("b", first.seq, r.RetractReason.ENTRY_ERROR), 5)
    assert lot.state.bidders["b"].max is None
    assert (lot.state.leader, lot.state.price) == ("a", 7_000)


def test_c8_retraction_needs_a_listed_reason_and_own_bid() -> None:
    lot = english_two()
    (bid, *_) = lot.bid("a", 5_000, 1)
    lot.refused(r.RetractBid("b", bid.seq, r.RetractReason.ENTRY_ERROR), 2, RR.UNKNOWN_BID)


def test_c8_authority_void_is_an_event_and_recomputes() -> None:
    lot = Lot(judicial_rules())
    lot.bidder("a")
    lot.bidder("b")
    lot.open()
    lot.bid("a", P0, 1)
    (b_bid, _) = lot.bid("b", P0 + STEP, 2)
    events = lot.ok(r.VoidBid(b_bid.seq, "system error proven", r.Authority.COURT), 3)
    (voided,) = lot.of_type(events, r.BidVoided)
    assert voided.by == "COURT" and voided.bidder == "b"
    assert (lot.state.leader, lot.state.price) == ("a", P0)
    lot.refused(r.VoidBid(b_bid.seq, "again", r.Authority.COURT), 4, RR.UNKNOWN_BID)
