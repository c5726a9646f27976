"""Bad commands get a typed error or rejection and change nothing (rules C4, STYLE rule 5)."""

from __future__ import annotations

from typing import Any

import pytest
from rules_kit import P0, STEP, Lot, judicial_rules

from auction import rules as r

RR = r.RejectReason


@pytest.mark.parametrize("amount", [1.5, float(P0), -P0, 0, True, "1000000", None, 10**16, 2**64])
def test_bad_amounts_raise_a_typed_command_error(amount: Any) -> None:
    with pytest.raises(r.CommandError) as info:
        r.PlaceBid("a", amount, "CNY")
    assert info.value.reason is RR.INVALID_AMOUNT
    with pytest.raises(r.CommandError):
        r.SetMax("a", amount, "CNY")


@pytest.mark.parametrize("currency", ["cny", "CN", "", "YUAN", 156])
def test_bad_currency_codes_raise(currency: Any) -> None:
    with pytest.raises(r.CommandError) as info:
        r.PlaceBid("a", P0, currency)
    assert info.value.reason is RR.WRONG_CURRENCY


@pytest.mark.parametrize("bidder", ["", "x" * 200, None, 7, "tab\there"])
def test_bad_ids_raise(bidder: Any) -> None:
    with pytest.raises(r.CommandError):
        r.PlaceBid(bidder, P0, "CNY")


def test_unknown_lot_is_a_typed_rejection() -> None:
    state, events = r.apply_to({}, "nope", r.PlaceBid("a", P0, "CNY"), 5)
    assert state is None and events[0].reason is RR.UNKNOWN_LOT


def test_objects_that_are_not_commands_are_refused() -> None:
    lot = Lot(judicial_rules())
    with pytest.raises(r.CommandError):
        r.apply(lot.state, {"type": "PlaceBid"}, 1)
    with pytest.raises(r.CommandError):
        r.apply(lot.state, r.OpenLot(), 1.5)  # type: ignore[arg-type]


def test_commands_of_another_format_are_refused() -> None:
    lot = Lot(judicial_rules())
    lot.refused(r.Hammer(), 1, RR.NOT_PERMITTED)


@pytest.mark.parametrize(
    ("status_setup", "reason"),
    [("closed", RR.LATE), ("scheduled", RR.NOT_OPEN), ("paused", RR.SUSPENDED)],
)
def test_bids_in_the_wrong_state_change_nothing(status_setup: str, reason: RR) -> None:
    lot = Lot(judicial_rules())
    lot.bidder("a")
    if status_setup != "scheduled":
        lot.open()
    if status_setup == "closed":
        lot.ok(r.CloseLot(), lot.state.end)
    if status_setup == "paused":
        lot.ok(r.Pause("order"), 1)
    lot.refused(
        r.PlaceBid("a", P0 + STEP, "CNY"), lot.state.end + 1 if reason is RR.LATE else 2, reason
    )


def test_codec_round_trips_and_rejects_garbage() -> None:
    rules = judicial_rules()
    assert r.decode(r.encode(rules)) == rules
    command = r.RegisterBidder("a", "C-a", True, qualifications=frozenset({"q"}))
    assert r.decode(r.encode(command)) == command
    for bad in (
        {},
        {"type": "Nope"},
        {"type": "PlaceBid", "bidder": "a"},
        [],
        {"type": "PlaceBid", "bidder": "a", "amount": 1.5, "currency": "CNY"},
        {"type": "OpenLot", "extra": 1},
    ):
        with pytest.raises(r.RulesError):
            r.decode(bad)
