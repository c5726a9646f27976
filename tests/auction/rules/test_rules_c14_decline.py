"""Rules C14.1: the clerk declines a held online bid; the ask is free again."""

from __future__ import annotations

from rules_kit import Lot, live_rules

from auction import rules as r

RR = r.RejectReason


def ring() -> Lot:
    lot = Lot(live_rules())
    for name in ("a", "b"):
        lot.bidder(name)
    return lot


def test_c14_decline_frees_the_ask_for_the_next_online_bid() -> None:
    lot = ring()
    lot.open()
    (pending,) = lot.bid("a", 10_000, 1)
    (declined,) = lot.ok(r.DeclineOnline(pending.seq), 2)
    assert isinstance(declined, r.BidDeclined)
    assert (declined.bid_seq, declined.reason) == (pending.seq, RR.DECLINED)
    assert lot.state.live is not None and lot.state.live.pending is None
    assert (lot.state.leader, lot.state.price, lot.state.min_next) == (None, None, 10_000)
    (again,) = lot.bid("b", 10_000, 3)  # the ask is free: b's bid is held now
    assert isinstance(again, r.BidPending) and again.bidder == "b"


def test_c14_decline_of_an_unknown_or_decided_bid_is_refused() -> None:
    lot = ring()
    lot.open()
    lot.refused(r.DeclineOnline(99), 1, RR.UNKNOWN_BID)
    (pending,) = lot.bid("a", 10_000, 1)
    lot.ok(r.AcceptOnline(pending.seq), 2)
    lot.refused(r.DeclineOnline(pending.seq), 3, RR.UNKNOWN_BID)
    assert (lot.state.leader, lot.state.price) == ("a", 10_000)


def test_c14_decline_outside_the_ring_is_refused() -> None:
    lot = ring()
    lot.refused(r.DeclineOnline(1), 1, RR.NOT_OPEN)


def test_c14_decline_survives_the_codec() -> None:
    command = r.DeclineOnline(7)
    assert r.decode(r.encode(command)) == command
