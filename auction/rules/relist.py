"""Rules C9/C10: relisting after a failure or a default.

`plan_relist` turns a closed lot into the rules of its next listing, or raises `RelistError`
saying which rule forbids it. The new lot is a new lot id with its own history; the ledger links
the two through the `lot` entry's body.
"""

from __future__ import annotations

from dataclasses import dataclass

from .config import LotRules
from .errors import RelistError
from .lot import LotState
from .states import LotStatus

RELISTABLE = frozenset({LotStatus.FAILED, LotStatus.DEFAULTED})


@dataclass(frozen=True, slots=True)
class RelistPlan:
    rules: LotRules
    barred_added: frozenset[str]
    basis: str


def plan_relist(
    closed: LotState, *, start_price: int, start_at: int, end_at: int, now: int
) -> RelistPlan:
    """Rules for relisting `closed`.

    * only a FAILED (流拍) or DEFAULTED lot is relisted, within `relist_within` (30 days) of close;
    * judicial: `P0' ≥ 80 % × P0` after a failure; after a default the original price rules
      apply (SPC Art 24 mandates no cut) and the defaulter is barred;
    * after a second failure the next step is the fixed-price sale (变卖, rules C10), a format
      this engine does not implement yet: that raises `RelistError`.
    """
    rules = closed.rules
    if closed.status not in RELISTABLE or closed.closed_at is None:
        raise RelistError(f"a {closed.status.value} lot cannot be relisted")
    if now - closed.closed_at > rules.relist_within:
        raise RelistError("the relisting window (30 days) has passed")
    barred: frozenset[str] = frozenset()
    if closed.status is LotStatus.DEFAULTED:
        assert closed.leader is not None
        barred = frozenset({closed.leader})
        if start_price != rules.start_price and rules.relist_min_ratio_pct:
            if start_price < rules.start_price:
                raise RelistError("after a default the judicial price rules stay the same")
        relist_count = rules.relist_count
        basis = "re-auction after default (SPC Art 24)"
    else:
        if rules.relist_count >= 1 and rules.relist_min_ratio_pct:
            raise RelistError(
                "second failure: the next step is the fixed-price sale (变卖), not yet supported"
            )
        if start_price * 100 < rules.start_price * rules.relist_min_ratio_pct:
            raise RelistError(
                f"the new start price must be at least {rules.relist_min_ratio_pct} % of "
                f"{rules.start_price}"
            )
        relist_count = rules.relist_count + 1
        basis = "relisting after failure (rules C10)"
    deposit = rules.deposit
    if rules.start_price:
        deposit = -(-rules.deposit * start_price // rules.start_price)
        deposit = -(-deposit // rules.deposit_unit) * rules.deposit_unit
    new_rules = rules.replace(
        start_price=start_price,
        start_at=start_at,
        end_at=end_at,
        deposit=deposit,
        barred=rules.barred | barred,
        relist_count=relist_count,
    )
    return RelistPlan(rules=new_rules, barred_added=barred, basis=basis)
