"""Court orders as the ledger records them (rules C11), checked by the replay."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..errors import BadInput
from ..rules import Authority, Cancel, Pause, Resume, Suspend

#: The orders a court session may give, by the engine's command name.
COURT_ORDERS: Mapping[str, type] = {cls.__name__: cls for cls in (Pause, Suspend, Resume, Cancel)}


ORDER_VERSION = 1


class OrderError(BadInput, ValueError):
    """An `order` field that does not attribute a court order."""


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
