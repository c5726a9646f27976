"""Court orders (rules C11: "who may act: court/admin"): pure parts, no I/O.

A court (or the administrator acting for it) pauses, suspends, resumes or cancels a lot
through its own staff session (`gavel staff --role court`), never through the auctioneer's
console. Its order is the engine's command with `by = COURT`, and the command's ledger entry
carries who gave it:

    "order": {"v": 1, "by": "court", "account": "<the court session's account id>"}

(an opaque staff account id, no personal data). The replay (`auction.ledger.LedgerReplay`:
the auditor's step 8 and every notary) checks it with `check_order`: an entry with an `order`
is a C11 command recorded as the court's. The console can no longer claim `by: COURT`
(`auction.web.api`), so since this version an order recorded as the court's through the
REST API always names the court session that gave it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .errors import BadInput
from .rules import Authority, Cancel, Pause, Resume, Suspend

#: The orders a court session may give, by the engine's command name.
COURT_ORDERS: Mapping[str, type] = {cls.__name__: cls for cls in (Pause, Suspend, Resume, Cancel)}
ORDER_VERSION = 1


@dataclass(frozen=True, slots=True)
class CourtOrder:
    """Who gave an order: the court session's staff account."""

    account: str

    def to_json(self) -> dict[str, Any]:
        return {"v": ORDER_VERSION, "by": "court", "account": self.account}


class OrderError(BadInput, ValueError):
    """An `order` field that does not attribute a court order."""


def order_command(kind: str, reason: str, basis: str = "") -> Any:
    """The engine command of a court order `kind` (`COURT_ORDERS`), recorded as the
    court's; raises `OrderError` for another kind (the engine checks the reason)."""
    cls = COURT_ORDERS.get(kind)
    if cls is None:
        raise OrderError(f"a court order is one of {', '.join(COURT_ORDERS)}")
    if cls is Resume:
        return Resume(reason=reason, by=Authority.COURT)
    return cls(reason=reason, by=Authority.COURT, basis=basis)


def check_order(order: object, command: Any) -> None:
    """Raise `OrderError` unless `order` (an entry's `order` field) attributes `command`
    to a court session: `{"v": 1, "by": "court", "account": <non-empty text>}` on a
    Pause/Suspend/Resume/Cancel whose `by` is COURT."""
    if not isinstance(order, Mapping):
        raise OrderError("the order is not an object")
    if set(order) != {"v", "by", "account"} or order.get("v") != ORDER_VERSION:
        raise OrderError("the order has other fields than v, by and account")
    account = order.get("account")
    if order.get("by") != "court" or not isinstance(account, str) or not account:
        raise OrderError("the order does not name the court session that gave it")
    if type(command) not in COURT_ORDERS.values():
        raise OrderError(f"a {type(command).__name__} is not a court order")
    if command.by is not Authority.COURT:
        raise OrderError(f"a court order recorded as by {command.by.value}")


__all__ = ["COURT_ORDERS", "CourtOrder", "OrderError", "check_order", "order_command"]
