"""Deposits at the simulated payment provider (rules C3): freeze, apply, release, forfeit,
idempotent callbacks, the 24-hour rule."""

from __future__ import annotations

import pytest

from auction.payments import (
    CallbackInbox,
    HoldState,
    PaymentError,
    PaymentProvider,
    PaymentReason,
    reconcile,
)
from auction.rules import HOUR, DepositState


def funded() -> PaymentProvider:
    provider = PaymentProvider()
    provider.fund("alice", 500_000)
    return provider


def test_c3_freeze_is_idempotent_by_key() -> None:
    provider = funded()
    hold, first = provider.freeze("k1", "alice", "lot-1", 100_000, "CNY", 10)
    again, second = provider.freeze("k1", "alice", "lot-1", 100_000, "CNY", 99)
    assert hold == again and first == second and provider.balance("alice") == 400_000
    with pytest.raises(PaymentError) as info:
        provider.freeze("k1", "alice", "lot-1", 200_000, "CNY", 100)
    assert info.value.reason is PaymentReason.IDEMPOTENCY_CONFLICT


def test_c3_insufficient_funds_and_bad_amounts() -> None:
    provider = funded()
    for amount, reason in (
        (600_000, PaymentReason.INSUFFICIENT_FUNDS),
        (0, PaymentReason.INVALID_AMOUNT),
        (1.5, PaymentReason.INVALID_AMOUNT),
    ):
        with pytest.raises(PaymentError) as info:
            provider.freeze(f"k{amount}", "alice", "lot-1", amount, "CNY", 1)  # type: ignore[arg-type]
        assert info.value.reason is reason
    assert provider.balance("alice") == 500_000 and provider.holds() == []


def test_c3_release_returns_money_apply_and_forfeit_do_not() -> None:
    provider = funded()
    a, _ = provider.freeze("k1", "alice", "lot-1", 100_000, "CNY", 1)
    b, _ = provider.freeze("k2", "alice", "lot-2", 100_000, "CNY", 1)
    provider.settle(a.hold_id, HoldState.RELEASED, 2)
    provider.settle(b.hold_id, HoldState.APPLIED, 2)
    provider.settle(b.hold_id, HoldState.FORFEITED, 3)
    assert provider.balance("alice") == 400_000
    with pytest.raises(PaymentError) as info:
        provider.settle(a.hold_id, HoldState.APPLIED, 4)
    assert info.value.reason is PaymentReason.ILLEGAL_STATE


def test_c3_callbacks_are_deduplicated_by_transaction() -> None:
    provider = funded()
    hold, frozen = provider.freeze("k1", "alice", "lot-1", 100_000, "CNY", 1)
    released = provider.settle(hold.hold_id, HoldState.RELEASED, 2)
    redelivered = provider.settle(hold.hold_id, HoldState.RELEASED, 5)
    inbox = CallbackInbox()
    assert [inbox.accept(c) for c in (frozen, frozen, released, redelivered)] == [
        True,
        False,
        True,
        False,
    ]


def test_c3_reconcile_flags_late_or_missing_releases() -> None:
    provider = funded()
    on_time, _ = provider.freeze("k1", "alice", "lot-1", 10_000, "CNY", 0)
    late, _ = provider.freeze("k2", "alice", "lot-2", 10_000, "CNY", 0)
    provider.freeze("k3", "alice", "lot-3", 10_000, "CNY", 0)
    closed_at = 1 * HOUR
    decided = [
        ("lot-1", "alice", DepositState.RELEASED, closed_at),
        ("lot-2", "alice", DepositState.RELEASED, closed_at),
        ("lot-3", "alice", DepositState.RELEASED, closed_at),
        ("lot-4", "alice", DepositState.FROZEN, None),
    ]
    provider.settle(on_time.hold_id, HoldState.RELEASED, closed_at + 2 * HOUR)
    # within the 24 hours only the missing hold is a discrepancy
    early = reconcile(decided, provider.holds(), now_us=closed_at + 3 * HOUR)
    assert {(d.lot, d.detail) for d in early} == {("lot-4", "no hold at provider")}
    provider.settle(late.hold_id, HoldState.RELEASED, closed_at + 30 * HOUR)
    found = reconcile(decided, provider.holds(), now_us=closed_at + 40 * HOUR)
    assert {(d.lot, d.detail) for d in found} == {
        ("lot-2", "later than 24 h"),
        ("lot-3", "not carried out"),
        ("lot-4", "no hold at provider"),
    }
