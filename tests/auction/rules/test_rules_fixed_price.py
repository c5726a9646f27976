"""The fixed-price sale (变卖, rules C10, clarification 9): first confirmer wins, a second one is
refused in words, the price floor, the 60-day bound, deposits, the priority holders' window,
and how `plan_relist` plans it after a judicial lot's second failure."""

from __future__ import annotations

import pytest
from rules_kit import END, P0, Lot, judicial_rules

from auction import rules as r

RR = r.RejectReason
D = r.DAY
H = r.HOUR
PRICE = 640_000  # 6,400.00 CNY: 80 % of 80 % of P0
WORDS = "6,400.00 CNY"


def fixed_rules(**overrides: object) -> r.LotRules:
    fields: dict[str, object] = {"price": PRICE, "start_at": 0, "end_at": 60 * D}
    return r.fixed_price(**(fields | overrides))  # type: ignore[arg-type]


def sale(holders: dict[str, int] | None = None, **overrides: object) -> Lot:
    """A fixed-price lot with ordinary bidders a, b, c and `holders` (id -> rank), open at 0."""
    lot = Lot(fixed_rules(**overrides))
    for bidder in ("a", "b", "c"):
        lot.bidder(bidder)
    for holder, rank in (holders or {}).items():
        lot.bidder(holder, priority_rank=rank)
    lot.open()
    return lot


def confirm(lot: Lot, bidder: str, now: int, amount: int = PRICE) -> tuple[object, ...]:
    return lot.do(r.PlaceBid(bidder, amount, "CNY"), now)


# --- the preset --------------------------------------------------------------------------------


def test_fixed_price_preset_is_a_format_of_its_own() -> None:
    rules = fixed_rules()
    assert rules.format is r.Format.FIXED_PRICE_SALE and r.PRESETS[rules.format] is r.fixed_price
    assert rules.start_price == PRICE and rules.deposit == PRICE // 10  # 10 % as for the auction
    assert rules.priority_window == 24 * H and rules.priority_rights
    assert not rules.proxy_allowed and rules.soft_close.mode is r.SoftCloseMode.OFF
    assert r.FORMATS[r.Format.FIXED_PRICE_SALE] is not r.FORMATS[r.Format.JUDICIAL_CN]
    assert r.decode(r.encode(rules)) == rules


@pytest.mark.parametrize(
    ("overrides", "error"),
    [
        ({"end_at": 60 * D + 1}, "at most 60 days"),
        ({"price": 0}, "positive"),
        ({"deposit_pct_basis_points": 400}, "5 %..20 %"),
        ({"proxy_allowed": True}, "no proxy"),
        ({"reserve": PRICE}, "no hidden reserve"),
        ({"priority_window": -1}, "must not be negative"),
    ],
)
def test_fixed_price_rules_refuse(overrides: dict[str, object], error: str) -> None:
    with pytest.raises(r.ConfigError, match=error):
        fixed_rules(**overrides)


# --- first confirmer wins ----------------------------------------------------------------------


def test_fixed_price_first_confirmer_wins_at_once_without_priority_holders() -> None:
    lot = sale()
    events = confirm(lot, "b", 3 * D)
    accepted, price, closed = events[0], events[1], events[2]
    assert isinstance(accepted, r.BidAccepted) and accepted.amount == PRICE
    assert accepted.bid_type is r.BidType.MANUAL and accepted.code == "C-b"
    assert isinstance(price, r.PriceChanged) and price.price == PRICE and price.leader == "b"
    assert isinstance(closed, r.LotClosed)
    assert (closed.result, closed.winner, closed.price) == (r.Result.SOLD, "b", PRICE)
    assert closed.end_final == 3 * D and closed.balance_due_at == 3 * D + 10 * D
    deposits = {e.bidder: e.state for e in lot.of_type(events, r.DepositChanged)}
    assert deposits == {
        "a": r.DepositState.RELEASED,
        "b": r.DepositState.APPLIED_TO_PRICE,
        "c": r.DepositState.RELEASED,
    }
    assert lot.state.status is r.LotStatus.SOLD and lot.state.next_deadline() is None
    lot.ok(r.ConfirmPayment("bank-1"), 5 * D)
    assert lot.state.status is r.LotStatus.COMPLETED
    lot.refused(r.PlaceBid("c", PRICE, "CNY"), 6 * D, RR.ASK_TAKEN)  # still bought by b


def test_fixed_price_a_second_confirmer_is_refused_in_words() -> None:
    lot = sale()
    confirm(lot, "a", D)
    refusal = lot.refused(r.PlaceBid("c", PRICE, "CNY"), D + 1, RR.ASK_TAKEN)
    assert refusal.detail == (
        f"another bidder (C-a) bought this lot at the fixed price of {WORDS} on "
        "1970-01-02 00:00:00 UTC"
    )
    assert refusal.cur == PRICE
    lot.refused(r.PlaceBid("a", PRICE, "CNY"), D + 2, RR.LATE)  # the buyer: the sale is over


# --- price floor -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("amount", "reason"),
    [(PRICE - 100, RR.BELOW_MIN), (PRICE + 100, RR.OFF_GRID), (2 * PRICE, RR.OFF_GRID)],
)
def test_fixed_price_only_the_price_itself_confirms(amount: int, reason: r.RejectReason) -> None:
    lot = sale()
    refusal = lot.refused(r.PlaceBid("a", amount, "CNY"), D, reason)
    assert refusal.detail == (
        f"this lot is sold at a fixed price of {WORDS}: confirm the purchase at exactly that amount"
    )
    assert refusal.min_next == PRICE
    lot.refused(r.SetMax("a", PRICE, "CNY"), D, RR.PROXY_DISABLED)
    lot.refused(r.PlaceBid("a", PRICE, "USD"), D, RR.WRONG_CURRENCY)


# --- the 60-day bound --------------------------------------------------------------------------


def test_fixed_price_nobody_confirms_in_60_days_and_the_sale_fails() -> None:
    lot = sale()
    lot.refused(r.CloseLot(), 60 * D - 1, RR.NOT_DUE)
    lot.refused(r.PlaceBid("a", PRICE, "CNY"), 60 * D, RR.LATE)  # [start, end)
    closed = lot.ok(r.CloseLot(), 60 * D)[0]
    assert closed.result is r.Result.FAILED and lot.state.status is r.LotStatus.FAILED
    with pytest.raises(r.RelistError, match="not relisted"):
        r.plan_relist(lot.state, start_price=PRICE, start_at=61 * D, end_at=70 * D, now=60 * D)


def test_fixed_price_confirmation_before_the_start_is_refused() -> None:
    lot = Lot(fixed_rules(start_at=D, end_at=61 * D))
    lot.bidder("a")
    lot.refused(r.PlaceBid("a", PRICE, "CNY"), D - 1, RR.NOT_OPEN)
    lot.refused(r.OpenLot(), D - 1, RR.NOT_DUE)
    lot.ok(r.OpenLot(), D)
    confirm(lot, "a", D)
    assert lot.state.status is r.LotStatus.SOLD


# --- deposits ----------------------------------------------------------------------------------


def test_fixed_price_deposits_as_for_the_auction() -> None:
    lot = Lot(fixed_rules())
    lot.bidder("a", frozen=False)
    lot.bidder("b")
    lot.refused(r.DepositFrozen("a", PRICE // 10 - 1, "tx-a"), 0, RR.NO_DEPOSIT)
    lot.open()
    lot.refused(r.PlaceBid("a", PRICE, "CNY"), 1, RR.NO_DEPOSIT)
    lot.refused(r.PlaceBid("z", PRICE, "CNY"), 1, RR.NOT_REGISTERED)
    lot.ok(r.DepositFrozen("a", PRICE // 10, "tx-a"), 2)
    confirm(lot, "a", 3)
    assert lot.state.bidders["a"].deposit is r.DepositState.APPLIED_TO_PRICE
    assert lot.state.bidders["b"].deposit is r.DepositState.RELEASED


# --- the priority holders' window (C7) ---------------------------------------------------------


def test_fixed_price_priority_holders_may_match_within_the_window() -> None:
    lot = sale({"h1": 1, "h2": 2})
    events = confirm(lot, "a", 2 * D)
    (window,) = lot.of_type(events, r.PriorityWindowOpened)
    assert (window.end_before, window.end_after) == (60 * D, 2 * D + 24 * H)
    assert window.leader_code == "C-a" and lot.state.status is r.LotStatus.OPEN
    assert lot.state.next_deadline() == 2 * D + 24 * H
    refusal = lot.refused(r.PlaceBid("b", PRICE, "CNY"), 2 * D + H, RR.ASK_TAKEN)
    assert refusal.detail == (
        f"another bidder (C-a) confirmed the purchase at {WORDS} first; only a priority holder "
        "of a higher rank may still match it, until 1970-01-04 00:00:00 UTC"
    )
    lot.refused(r.PlaceBid("a", PRICE, "CNY"), 2 * D + H, RR.DUPLICATE)
    events = confirm(lot, "h2", 2 * D + 2 * H)  # rank 2 matches; rank 1 could still
    (match,) = lot.of_type(events, r.BidAccepted)
    assert match.bid_type is r.BidType.PRIORITY_MATCH and lot.state.leader == "h2"
    assert not lot.of_type(events, r.LotClosed) and lot.state.end == 2 * D + 24 * H
    events = confirm(lot, "h1", 2 * D + 3 * H)  # rank 1: nobody left to outrank it
    (closed,) = lot.of_type(events, r.LotClosed)
    assert (closed.winner, closed.winner_code, closed.price) == ("h1", "P1-h1", PRICE)
    assert closed.end_final == 2 * D + 3 * H


def test_fixed_price_the_window_ends_and_the_first_confirmer_buys() -> None:
    lot = sale({"h1": 1})
    confirm(lot, "a", D)
    lot.refused(r.CloseLot(), D + 24 * H - 1, RR.NOT_DUE)
    lot.refused(r.PlaceBid("h1", PRICE, "CNY"), D + 24 * H, RR.LATE)  # too late to match
    closed = lot.ok(r.CloseLot(), D + 24 * H)[0]
    assert (closed.result, closed.winner) == (r.Result.SOLD, "a")


@pytest.mark.parametrize(
    ("holders", "first", "window"),
    [
        ({}, "a", False),  # no holders: sold at once
        ({"h1": 1}, "h1", False),  # the holder itself takes it first
        ({"h1": 1, "h1b": 1}, "h1", False),  # same rank, later: cannot outrank the first
        ({"h1": 1, "h2": 2}, "h2", True),  # a better rank could still match
        ({"h1": 1}, "a", True),
    ],
)
def test_fixed_price_the_window_opens_only_if_someone_could_outrank_the_taker(
    holders: dict[str, int], first: str, window: bool
) -> None:
    lot = sale(holders)
    events = confirm(lot, first, D)
    assert bool(lot.of_type(events, r.PriorityWindowOpened)) is window
    assert bool(lot.of_type(events, r.LotClosed)) is not window


def test_fixed_price_a_holder_who_withdrew_has_no_window() -> None:
    lot = Lot(fixed_rules())
    lot.bidder("a")
    lot.bidder("h1", priority_rank=1)
    lot.ok(r.ReleaseDeposit("h1", "withdrew"), 0)
    lot.open()
    events = confirm(lot, "a", D)
    assert lot.of_type(events, r.LotClosed) and not lot.of_type(events, r.PriorityWindowOpened)


def test_fixed_price_without_a_window_the_first_confirmer_buys_even_over_holders() -> None:
    lot = sale({"h1": 1}, priority_window=0)
    (closed,) = lot.of_type(confirm(lot, "a", D), r.LotClosed)
    assert closed.winner == "a"


# --- planned after the second failure ----------------------------------------------------------


def failed(rules: r.LotRules, at: int) -> r.LotState:
    state, _ = r.apply(r.LotState.create("x", rules), r.OpenLot(), rules.start_at)
    state, _ = r.apply(state, r.CloseLot(), at)
    return state


def second_failure() -> r.LotState:
    first = failed(judicial_rules(), END)
    plan = r.plan_relist(
        first, start_price=P0 * 8 // 10, start_at=END + 15 * D, end_at=END + 16 * D, now=END
    )
    return failed(plan.rules, END + 16 * D)


def test_fixed_price_plan_relist_plans_it_after_the_second_failure() -> None:
    closed = second_failure()
    now = END + 20 * D
    plan = r.plan_relist(closed, start_price=PRICE, start_at=now, end_at=now + 60 * D, now=now)
    rules = plan.rules
    assert rules.format is r.Format.FIXED_PRICE_SALE and rules.start_price == PRICE
    assert rules.deposit == judicial_rules().deposit * 64 // 100  # as for the auction, scaled
    assert rules.relist_count == 2 and rules.currency == "CNY"
    assert rules.priority_window == 24 * H and "clarification 9" in plan.basis
    lowered = r.plan_relist(
        closed,
        start_price=PRICE // 2,
        start_at=now,
        end_at=now + 30 * D,
        now=now,
        priority_window=H,
    )
    assert lowered.rules.start_price == PRICE // 2 and lowered.rules.priority_window == H


@pytest.mark.parametrize(
    ("price", "start", "length", "error"),
    [
        (P0 * 8 // 10 + 1, 0, 60 * D, "last start price"),  # not above the last start price
        (PRICE, 0, 60 * D + 1, "at most 60 days"),
        (PRICE, -1, 30 * D, "in the past"),
        (0, 0, 30 * D, "positive"),
    ],
)
def test_fixed_price_plan_refuses(price: int, start: int, length: int, error: str) -> None:
    closed = second_failure()
    now = END + 20 * D
    with pytest.raises(r.RelistError, match=error):
        r.plan_relist(
            closed, start_price=price, start_at=now + start, end_at=now + start + length, now=now
        )
