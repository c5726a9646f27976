"""Rules C5: proxy (maximum) bidding — deterministic second-price ascending."""

from __future__ import annotations

from rules_kit import END, P0, STEP, Lot, english_rules, judicial_rules

from auction import rules as r

RR = r.RejectReason


def english(**kw: object) -> Lot:
    lot = Lot(english_rules(**kw))
    for name in ("a", "b", "c"):
        lot.bidder(name)
    lot.open()
    return lot


def test_c5_price_is_one_increment_above_the_runner_up() -> None:
    lot = english()
    lot.max("a", 50_000, 1)
    assert (lot.state.leader, lot.state.price) == ("a", 1_000)
    events = lot.max("b", 20_000, 2)
    assert (lot.state.leader, lot.state.price) == ("a", 20_000 + 250)
    autos = [e for e in events if isinstance(e, r.BidAccepted)]
    # competitor's bid at its max, then the leader's auto-bid at the price
    assert [(e.bidder, e.amount, e.bid_type) for e in autos] == [
        ("b", 20_000, r.BidType.PROXY_AUTO),
        ("a", 20_250, r.BidType.PROXY_AUTO),
    ]


def test_c5_price_is_capped_by_the_leaders_max() -> None:
    lot = english()
    lot.max("a", 20_100, 1)
    lot.max("b", 20_000, 2)
    assert (lot.state.leader, lot.state.price) == ("a", 20_100)


def test_c5_equal_maxes_earlier_leads_at_the_max() -> None:
    lot = english()
    lot.max("a", 30_000, 1)
    lot.max("b", 30_000, 2)
    assert (lot.state.leader, lot.state.price) == ("a", 30_000)


def test_c5_max_between_current_and_increment_still_counts() -> None:
    lot = english()
    lot.max("a", 10_000, 1)
    lot.max("b", 5_000, 2)
    assert lot.state.price == 5_100
    lot.max("c", 5_150, 3)  # cur < M < cur + inc(cur): allowed (Artsy rule)
    assert (lot.state.leader, lot.state.price) == ("a", 5_150 + 100)
    lot.refused(r.SetMax("c", 5_250, "USD"), 4, RR.BELOW_MIN)  # not above the price


def test_c5_new_higher_max_takes_the_lead_one_increment_above_the_old_max() -> None:
    lot = english()
    lot.max("a", 10_000, 1)
    events = lot.max("b", 40_000, 2)
    assert (lot.state.leader, lot.state.price) == ("b", 10_250)
    autos = [(e.bidder, e.amount) for e in events if isinstance(e, r.BidAccepted)]
    assert autos == [("a", 10_000), ("b", 10_250)]


def test_c5_leader_raise_is_silent_and_does_not_extend() -> None:
    lot = english()
    lot.max("a", 10_000, 1)
    lot.max("b", 5_000, 2)
    price = lot.state.price
    events = lot.max("a", 90_000, END - 60 * r.SECOND)
    assert lot.state.price == price
    assert not any(isinstance(e, (r.PriceChanged, r.EndExtended)) for e in events)


def test_c5_leader_may_lower_only_down_to_the_price() -> None:
    lot = english()
    lot.max("a", 10_000, 1)
    lot.max("b", 5_000, 2)
    lot.refused(r.SetMax("a", 5_000, "USD"), 3, RR.BELOW_MIN)
    lot.max("a", 6_000, 4)
    assert (lot.state.leader, lot.state.price) == ("a", 5_100)


def test_c5_judicial_maxima_cannot_be_lowered_and_proxy_is_off_by_default() -> None:
    lot = Lot(judicial_rules())
    lot.bidder("a")
    lot.open()
    lot.refused(r.SetMax("a", P0 + 5 * STEP, "CNY"), 1, RR.PROXY_DISABLED)
    allowed = Lot(judicial_rules(proxy_allowed=True))
    allowed.bidder("a")
    allowed.open()
    allowed.max("a", P0 + 5 * STEP, 1)
    allowed.refused(r.SetMax("a", P0 + 2 * STEP, "CNY"), 2, RR.MAX_LOWER_NOT_ALLOWED)


def test_c5_hidden_reserve_not_met_uses_the_leaders_max() -> None:
    lot = english(reserve=50_000)
    lot.max("a", 30_000, 1)
    assert lot.state.price == 30_000  # reserve not met: L's max fully used
    lot.max("a", 60_000, 2)
    assert lot.state.price == 50_000  # raise crossing the reserve jumps to it
    events = lot.ok(r.CloseLot(), lot.state.end)
    assert events[0].result is r.Result.SOLD and events[0].price == 50_000


def test_c5_reserve_never_met_fails_the_lot() -> None:
    lot = english(reserve=50_000)
    lot.max("a", 30_000, 1)
    events = lot.ok(r.CloseLot(), END)
    assert events[0].result is r.Result.FAILED and events[0].reason == "reserve not met"


def test_c5_manual_bid_against_a_proxy_triggers_the_auto_bid() -> None:
    lot = english()
    lot.max("a", 10_000, 1)
    events = lot.bid("b", 3_000, 2)
    kinds = [(e.bidder, e.amount, e.bid_type) for e in events if isinstance(e, r.BidAccepted)]
    assert kinds == [("b", 3_000, r.BidType.MANUAL), ("a", 3_100, r.BidType.PROXY_AUTO)]


def _chain(versions: int, *, last_amount: int = 0) -> r.lot.MaxVersion:
    head: r.lot.MaxVersion | None = None
    for i in range(versions):
        amount = last_amount if i == versions - 1 and last_amount else 100 + i
        head = r.lot.MaxVersion(amount=amount, t=i, seq=i, flat=False, prev=head)
    assert head is not None
    return head


def test_a_long_max_history_compares_hashes_and_prints_without_recursion() -> None:
    """A bidder who raised 5,000 times: equality, hash and repr walk the chain in a loop (the
    generated ones recursed once per version and raised RecursionError)."""
    a, b = _chain(5_000), _chain(5_000)
    assert a == b and hash(a) == hash(b)
    assert a != _chain(5_000, last_amount=1)  # differs at the head
    deep = r.lot.MaxVersion(a.amount, a.t, a.seq, a.flat, prev=_chain(4_998))
    assert a != deep  # one version shorter
    assert a != r.lot.MaxVersion(a.amount, a.t, a.seq, True, prev=a.prev)
    assert r.lot.MaxVersion(1, 2, 3, False, prev=a) == r.lot.MaxVersion(1, 2, 3, False, prev=a)
    assert repr(a).endswith("earlier=4999)")
    assert [v.amount for v in a.versions()][:2] == [5_099, 5_098]


def test_a_long_bid_history_compares_and_hashes_without_recursion() -> None:
    """The lot's public bid history is the same kind of persistent list: a lot with 5,000
    accepted bids compares and hashes (a service checks its state against the replay)."""

    def history(bids: int, last_bidder: str = "alice") -> r.lot.AcceptedBid:
        head: r.lot.AcceptedBid | None = None
        for i in range(bids):
            bidder = last_bidder if i == bids - 1 else ("alice", "bob")[i % 2]
            head = r.lot.AcceptedBid(seq=i, bidder=bidder, amount=100 + i, t=i, prev=head)
        assert head is not None
        return head

    assert history(5_000) == history(5_000)
    assert hash(history(5_000)) == hash(history(5_000))
    assert history(5_000) != history(5_000, last_bidder="carol")
    assert history(5_000) != history(4_999)
    assert history(3) != _chain(3)  # another kind of list
    assert repr(history(5_000)).startswith("AcceptedBid(seq=4999, bidder='alice'")
