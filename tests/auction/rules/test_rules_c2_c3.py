"""Rules C2 (registration, eligibility, codes) and C3 (deposits)."""

from __future__ import annotations

import pytest
from rules_kit import END, P0, STEP, Lot, english_rules, judicial_rules

from auction import rules as r

RR = r.RejectReason


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"kyc_verified": False}, RR.NOT_ELIGIBLE),
        ({"full_capacity": False}, RR.NOT_ELIGIBLE),
        ({"agent_for": "principal"}, RR.NOT_ELIGIBLE),  # no power of attorney
        ({"agent_for": "principal", "poa_approved": True}, RR.NOT_ELIGIBLE),  # principal unverified
    ],
)
def test_c2_registration_refusals(kwargs: dict[str, object], reason: r.RejectReason) -> None:
    lot = Lot(judicial_rules())
    fields = {"bidder": "x", "code": "C-x", "kyc_verified": True} | kwargs
    lot.refused(r.RegisterBidder(**fields), 0, reason)  # type: ignore[arg-type]


def test_c2_missing_special_qualification_is_not_eligible() -> None:
    lot = Lot(judicial_rules(required_qualifications=frozenset({"hz-purchase-permit"})))
    lot.refused(r.RegisterBidder("x", "C-x", True), 0, RR.NOT_ELIGIBLE)
    lot.ok(r.RegisterBidder("x", "C-x", True, qualifications=frozenset({"hz-purchase-permit"})), 0)


def test_c2_barred_list_refuses_registration_and_bar_stops_bidding() -> None:
    lot = Lot(judicial_rules(barred=frozenset({"court-clerk"})))
    lot.refused(r.RegisterBidder("court-clerk", "C-1", True), 0, RR.BARRED)
    lot.bidder("a")
    lot.ok(r.BarBidder("a", "relative of the enforcement officer", "Art 34"), 0)
    lot.open()
    lot.refused(r.PlaceBid("a", P0, "CNY"), 10, RR.BARRED)


def test_c2_agent_bids_are_recorded_on_behalf_of_the_principal() -> None:
    lot = Lot(judicial_rules())
    lot.bidder("agent", agent_for="principal", principal_verified=True, poa_approved=True)
    lot.open()
    (accepted, _) = lot.bid("agent", P0, 5)
    assert accepted.on_behalf_of == "principal"


def test_c2_agent_must_be_approved_before_opening() -> None:
    lot = Lot(judicial_rules())
    lot.open()
    cmd = r.RegisterBidder(
        "agent", "C-agent", True, agent_for="p", principal_verified=True, poa_approved=True
    )
    lot.refused(cmd, 5, RR.NOT_ELIGIBLE)


def test_c2_codes_unique_and_priority_prefix_reserved() -> None:
    lot = Lot(judicial_rules())
    lot.bidder("a", code="K7Q2")
    lot.refused(r.RegisterBidder("b", "K7Q2", True), 0, RR.DUPLICATE_CODE)
    lot.refused(r.RegisterBidder("b", "P1-abcd", True), 0, RR.NOT_PERMITTED)
    lot.refused(r.RegisterBidder("c", "X-1", True, priority_rank=1), 0, RR.NOT_PERMITTED)
    lot.refused(r.RegisterBidder("a", "other", True), 0, RR.DUPLICATE)
    lot.ok(r.RegisterBidder("c", "P1-c", True, priority_rank=1), 0)


def test_c2_unregistered_bidder_cannot_bid() -> None:
    lot = Lot(judicial_rules())
    lot.open()
    lot.refused(r.PlaceBid("stranger", P0, "CNY"), 5, RR.NOT_REGISTERED)


def test_c3_deposit_amount_rounds_up_to_the_unit() -> None:
    assert r.deposit_amount(1_000_001, 1000, 100) == 100_100
    assert r.deposit_amount(1_000_000, 500, 1) == 50_000
    assert judicial_rules().deposit == P0 // 10


@pytest.mark.parametrize("pct", [499, 2001])
def test_c3_judicial_deposit_percentage_bounds(pct: int) -> None:
    with pytest.raises(r.ConfigError):
        judicial_rules(deposit_pct_basis_points=pct)


def test_c3_bid_requires_frozen_deposit() -> None:
    lot = Lot(judicial_rules())
    lot.bidder("a", frozen=False)
    lot.open()
    lot.refused(r.PlaceBid("a", P0, "CNY"), 5, RR.NO_DEPOSIT)
    lot.ok(r.DepositPending("a", "tx-1"), 6)
    lot.refused(r.PlaceBid("a", P0, "CNY"), 7, RR.NO_DEPOSIT)
    lot.refused(r.DepositFrozen("a", lot.rules.deposit - 1, "tx-1"), 8, RR.NO_DEPOSIT)
    lot.ok(r.DepositFrozen("a", lot.rules.deposit, "tx-1"), 8)
    lot.bid("a", P0, 9)


def test_c3_creditor_exemption_counts_as_frozen() -> None:
    lot = Lot(judicial_rules())
    lot.bidder("creditor", deposit_exempt=True)
    assert lot.state.bidders["creditor"].deposit is r.DepositState.EXEMPT
    lot.open()
    lot.bid("creditor", P0, 5)


def test_c3_close_applies_winner_and_releases_others_within_24h() -> None:
    lot = Lot(judicial_rules())
    for name in ("a", "b", "c"):
        lot.bidder(name)
    lot.open()
    lot.bid("a", P0, 5)
    lot.bid("b", P0 + STEP, 6)
    events = lot.ok(r.CloseLot(), END)
    moves = {e.bidder: e for e in events if isinstance(e, r.DepositChanged)}
    assert moves["b"].state is r.DepositState.APPLIED_TO_PRICE
    assert moves["a"].state is moves["c"].state is r.DepositState.RELEASED
    assert all(m.deadline == END + 24 * r.HOUR for m in moves.values())


def test_c3_failed_auction_releases_every_deposit() -> None:
    lot = Lot(judicial_rules())
    lot.bidder("a")
    lot.open()
    events = lot.ok(r.CloseLot(), END)
    assert [e.state for e in events if isinstance(e, r.DepositChanged)] == [r.DepositState.RELEASED]


def test_c3_default_forfeits_deposit_and_bars_the_defaulter() -> None:
    lot = Lot(judicial_rules())
    lot.bidder("a")
    lot.open()
    lot.bid("a", P0, 5)
    lot.ok(r.CloseLot(), END)
    due = lot.state.balance_due_at
    assert due == END + 10 * r.DAY
    lot.refused(r.DeclareDefault("missed balance"), due - 1, RR.BALANCE_NOT_DUE)
    events = lot.ok(r.DeclareDefault("missed balance"), due)
    assert any(
        isinstance(e, r.DepositChanged) and e.state is r.DepositState.FORFEITED for e in events
    )
    assert lot.state.status is r.LotStatus.DEFAULTED
    assert lot.state.bidders["a"].barred


def test_c3_deposit_state_machine_refuses_illegal_moves() -> None:
    lot = Lot(judicial_rules())
    lot.bidder("a")
    lot.refused(r.DepositPending("a", "tx"), 0, RR.ILLEGAL_STATE)  # FROZEN -> PENDING
    with pytest.raises(r.IllegalTransition):
        from auction.rules.states import deposit_transition

        deposit_transition(r.DepositState.RELEASED, r.DepositState.FROZEN)


def test_c3_commercial_lot_without_deposit() -> None:
    lot = Lot(english_rules())
    lot.bidder("a")
    lot.open()
    lot.bid("a", 1_000, 5)
