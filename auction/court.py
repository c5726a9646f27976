"""Court orders (rules C11: "who may act: court/admin"): pure parts, no I/O.

A court (or the administrator acting for it) pauses, suspends, resumes or cancels a lot
through its own staff session (`gavel staff --role court`), never through the auctioneer's
console. Its order is the engine's command with `by = COURT`, and the command's ledger entry
carries who gave it:

    "order": {"v": 1, "by": "court", "account": "<the court session's account id>"}

(an opaque staff account id, no personal data). The replay (`auction.verify.LedgerReplay`:
the auditor's step 8 and every notary) checks it with `check_order`: an entry with an `order`
is a C11 command recorded as the court's. The console can no longer claim `by: COURT`
(`auction.web.api`), so since this version an order recorded as the court's through the
REST API always names the court session that gave it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .rules import Authority, Resume
from .verify.court_orders import COURT_ORDERS, ORDER_VERSION, OrderError, check_order


@dataclass(frozen=True, slots=True)
class CourtOrder:
    """Who gave an order: the court session's staff account."""

    account: str

    def to_json(self) -> dict[str, Any]:
        return {"v": ORDER_VERSION, "by": "court", "account": self.account}


def order_command(kind: str, reason: str, basis: str = "") -> Any:
    """The engine command of a court order `kind` (`COURT_ORDERS`), recorded as the
    court's; raises `OrderError` for another kind (the engine checks the reason)."""
    cls = COURT_ORDERS.get(kind)
    if cls is None:
        raise OrderError(f"a court order is one of {', '.join(COURT_ORDERS)}")
    if cls is Resume:
        return Resume(reason=reason, by=Authority.COURT)
    return cls(reason=reason, by=Authority.COURT, basis=basis)


__all__ = ["COURT_ORDERS", "CourtOrder", "OrderError", "check_order", "order_command"]
