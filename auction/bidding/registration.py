"""Registration for a lot (rules C2) and its deposit (rules C3): codes, refusals."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import (
    Conflict,
)
from ..payments import PaymentReason
from ..rules import (
    DepositState,
    LotState,
)
from ..rules.common import REGISTRATION_OPEN


def bidder_code(
    secret: bytes, lot_id: str, bidder_id: str, priority_rank: int | None = None
) -> str:
    """Rules C2.4: a random, non-reversible pseudonym per (lot, bidder): HMAC-SHA256 under a
    secret only the platform holds. Priority holders get `P{rank}-xxxx` codes."""
    digest = hmac.new(secret, f"{lot_id}\x1f{bidder_id}".encode(), hashlib.sha256).hexdigest()
    digest = digest.upper()
    if priority_rank is not None:
        return f"P{priority_rank}-{digest[:6]}"
    return f"{digest[:4]}-{digest[4:8]}"


@dataclass(frozen=True, slots=True)
class Registration:
    lot: str
    code: str
    deposit_state: str
    deposit_amount: int
    currency: str

    def to_json(self) -> dict[str, Any]:
        return {
            "lot": self.lot,
            "code": self.code,
            "deposit": {
                "state": self.deposit_state,
                "amount": self.deposit_amount,
                "currency": self.currency,
            },
        }


def refuse_registration(state: LotState | None, account: str) -> None:
    """Requests the rules would only refuse are refused here, before they are logged: a second
    registration of the same account, a registration for a lot that has closed."""
    if state is None:  # dormant: closed long ago
        raise Conflict("this lot has closed; registration is over", code="LOT_CLOSED")
    bidder = state.bidders.get(account)
    if bidder is not None:
        words = f"you are already registered for this lot as {bidder.code}"
        raise Conflict(words, code="DUPLICATE")
    if state.status not in REGISTRATION_OPEN:
        raise Conflict("this lot has closed; registration is over", code="LOT_CLOSED")


def refuse_deposit(lot_open: bool, deposit: DepositState, resent: bool) -> None:
    """A deposit for a closed lot, or a second one (a new request key) once the first is on
    its way or frozen, is refused before the payment provider or the log sees it. A resend of
    the request that asked for it (`resent`) is answered again: it writes nothing new."""
    required = deposit is DepositState.REQUIRED
    if not lot_open and (required or not resent):
        raise Conflict("this lot has closed; deposits are over", code="LOT_CLOSED")
    if required or resent:
        return
    words = {
        DepositState.PENDING: "your deposit for this lot is already being frozen",
        DepositState.FROZEN: "your deposit for this lot is already frozen",
    }.get(deposit, "your deposit for this lot can no longer change")
    raise Conflict(words, code="DUPLICATE")


PAYMENT_WORDS: Mapping[PaymentReason, str] = {
    PaymentReason.INSUFFICIENT_FUNDS: "there is not enough money on the account for the deposit",
    PaymentReason.UNKNOWN_HOLD: "the payment provider does not know that hold",
    PaymentReason.ILLEGAL_STATE: "the deposit cannot change that way",
    PaymentReason.IDEMPOTENCY_CONFLICT: "this idempotency key was used for a different deposit",
    PaymentReason.INVALID_AMOUNT: "the deposit amount is not valid",
}
