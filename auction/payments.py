"""A simulated payment provider for deposits (rules C3), and the server's side of it.

The provider is its own component with its own state: it freezes money in the bidder's real
name, then applies it to the price, releases it or forfeits it, and reports each movement with
a callback carrying its own transaction id. Callbacks can arrive twice (webhooks are retried):
`CallbackInbox` deduplicates them by transaction id, so each movement reaches the lot once.
`reconcile` is the nightly check that what the engine decided (e.g. "released, by tomorrow
10:00") and what the provider did agree, flagging any release later than 24 hours.

Pure: times are parameters, ids come from the caller or from a counter.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace

from .errors import Conflict
from .rules import DepositState
from .rules.money import HOUR


class HoldState(enum.StrEnum):
    FROZEN = "FROZEN"
    APPLIED = "APPLIED"
    RELEASED = "RELEASED"
    FORFEITED = "FORFEITED"


_MOVES: Mapping[HoldState, frozenset[HoldState]] = {
    HoldState.FROZEN: frozenset({HoldState.APPLIED, HoldState.RELEASED, HoldState.FORFEITED}),
    HoldState.APPLIED: frozenset({HoldState.FORFEITED}),
    HoldState.RELEASED: frozenset(),
    HoldState.FORFEITED: frozenset(),
}


class PaymentReason(enum.StrEnum):
    INSUFFICIENT_FUNDS = "INSUFFICIENT_FUNDS"
    UNKNOWN_HOLD = "UNKNOWN_HOLD"
    ILLEGAL_STATE = "ILLEGAL_STATE"
    IDEMPOTENCY_CONFLICT = "IDEMPOTENCY_CONFLICT"
    INVALID_AMOUNT = "INVALID_AMOUNT"


class PaymentError(Conflict):
    def __init__(self, reason: PaymentReason, detail: str) -> None:
        super().__init__(f"{reason.value}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True, slots=True)
class Hold:
    hold_id: str
    account: str
    lot: str
    amount: int
    currency: str
    state: HoldState
    frozen_us: int
    settled_us: int | None = None


@dataclass(frozen=True, slots=True)
class Callback:
    """What the provider tells the server; `transaction` is unique per movement."""

    transaction: str
    hold_id: str
    account: str
    lot: str
    state: HoldState
    amount: int
    at_us: int


class PaymentProvider:
    """The simulated provider: balances per account, holds, callbacks."""

    def __init__(self) -> None:
        self._balances: dict[str, int] = {}
        self._holds: dict[str, Hold] = {}
        self._by_key: dict[str, tuple[tuple[str, str, int, str], str]] = {}
        self._counter = 0

    def fund(self, account: str, amount: int) -> None:
        """Put money on an account (the demo's and tests' stand-in for a bank card)."""
        if isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0:
            raise PaymentError(PaymentReason.INVALID_AMOUNT, "amounts are positive integers")
        self._balances[account] = self._balances.get(account, 0) + amount

    def balance(self, account: str) -> int:
        return self._balances.get(account, 0)

    def hold(self, hold_id: str) -> Hold:
        try:
            return self._holds[hold_id]
        except KeyError:
            raise PaymentError(PaymentReason.UNKNOWN_HOLD, hold_id) from None

    def knows(self, idempotency_key: str) -> bool:
        """Whether a freeze was already asked with this key (a resend gets the same hold)."""
        return idempotency_key in self._by_key

    def freeze(
        self, idempotency_key: str, account: str, lot: str, amount: int, currency: str, now_us: int
    ) -> tuple[Hold, Callback]:
        """Freeze `amount` for `lot`. Repeating the call with the same key returns the same hold
        (and the same callback); the same key with other terms is a conflict."""
        terms = (account, lot, amount, currency)
        if idempotency_key in self._by_key:
            seen_terms, hold_id = self._by_key[idempotency_key]
            if seen_terms != terms:
                raise PaymentError(PaymentReason.IDEMPOTENCY_CONFLICT, "key reused, other terms")
            hold = self._holds[hold_id]
            return hold, self._callback(hold, HoldState.FROZEN, hold.frozen_us, f"{hold_id}:F")
        if isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0:
            raise PaymentError(PaymentReason.INVALID_AMOUNT, "amounts are positive integers")
        if self.balance(account) < amount:
            raise PaymentError(PaymentReason.INSUFFICIENT_FUNDS, "not enough on the account")
        self._counter += 1
        hold_id = f"hold-{self._counter:08d}"
        self._balances[account] -= amount
        hold = Hold(hold_id, account, lot, amount, currency, HoldState.FROZEN, now_us)
        self._holds[hold_id] = hold
        self._by_key[idempotency_key] = (terms, hold_id)
        return hold, self._callback(hold, HoldState.FROZEN, now_us, f"{hold_id}:F")

    def settle(self, hold_id: str, target: HoldState, now_us: int) -> Callback:
        """Apply, release or forfeit a hold. Repeating a completed move returns its callback."""
        hold = self.hold(hold_id)
        if hold.state is target:
            assert hold.settled_us is not None
            return self._callback(hold, target, hold.settled_us, f"{hold_id}:{target.value[0]}")
        if target not in _MOVES[hold.state]:
            raise PaymentError(
                PaymentReason.ILLEGAL_STATE, f"{hold.state.value} cannot become {target.value}"
            )
        if target is HoldState.RELEASED:
            self._balances[hold.account] = self.balance(hold.account) + hold.amount
        hold = replace(hold, state=target, settled_us=now_us)
        self._holds[hold_id] = hold
        return self._callback(hold, target, now_us, f"{hold_id}:{target.value[0]}")

    def holds(self) -> list[Hold]:
        return sorted(self._holds.values(), key=lambda h: h.hold_id)

    @staticmethod
    def _callback(hold: Hold, state: HoldState, at_us: int, transaction: str) -> Callback:
        return Callback(
            transaction, hold.hold_id, hold.account, hold.lot, state, hold.amount, at_us
        )


class CallbackInbox:
    """The server's webhook endpoint state: each transaction id is acted on once."""

    def __init__(self, seen: Iterable[str] = ()) -> None:
        self._seen = set(seen)

    def accept(self, callback: Callback) -> bool:
        """True the first time a transaction arrives; False for a redelivery (ignore it)."""
        if callback.transaction in self._seen:
            return False
        self._seen.add(callback.transaction)
        return True


#: How the engine's deposit states map to the provider's hold states.
EXPECTED_HOLD = {
    DepositState.FROZEN: HoldState.FROZEN,
    DepositState.APPLIED_TO_PRICE: HoldState.APPLIED,
    DepositState.RELEASED: HoldState.RELEASED,
    DepositState.FORFEITED: HoldState.FORFEITED,
}


@dataclass(frozen=True, slots=True)
class Discrepancy:
    lot: str
    account: str
    expected: str
    actual: str
    detail: str


def reconcile(
    decided: Iterable[tuple[str, str, DepositState, int | None]],
    holds: Iterable[Hold],
    now_us: int,
    release_within_us: int = 24 * HOUR,
) -> list[Discrepancy]:
    """Compare the engine's deposits `(lot, account, state, decided_at_us)` with the provider's
    holds. Flags a state mismatch once its 24-hour grace has passed, and any release or
    transfer the provider completed more than 24 hours after the decision (rules C3)."""
    by_key = {(h.lot, h.account): h for h in holds}
    found: list[Discrepancy] = []
    for lot, account, state, decided_at in decided:
        expected = EXPECTED_HOLD.get(state)
        if expected is None:
            continue
        hold = by_key.get((lot, account))
        if hold is None:
            found.append(Discrepancy(lot, account, expected.value, "none", "no hold at provider"))
            continue
        overdue = decided_at is not None and now_us - decided_at > release_within_us
        if hold.state is not expected:
            if overdue or expected is HoldState.FROZEN:
                found.append(
                    Discrepancy(lot, account, expected.value, hold.state.value, "not carried out")
                )
            continue
        if (
            decided_at is not None
            and hold.settled_us is not None
            and hold.settled_us - decided_at > release_within_us
        ):
            found.append(
                Discrepancy(lot, account, expected.value, hold.state.value, "later than 24 h")
            )
    return found
