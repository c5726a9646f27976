"""Rules C9/C10: what follows a failure or a default (relisting, re-auction, fixed-price sale).

`plan_relist` turns a closed lot into the rules of its next listing, or raises `RelistError`
saying which rule forbids it (`NoticeTooShort`, naming the earliest allowed start, when the
relisting notice would not have run). The new lot is a new lot id with its own history; the
ledger links the two through the `lot` entry's body.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from .config import Format, LotRules, PropertyKind, fixed_price
from .errors import ConfigError, RelistError
from .lot import LotState
from .money import DAY, round_up
from .states import LotStatus

RELISTABLE = frozenset({LotStatus.FAILED, LotStatus.DEFAULTED})

#: Clarification 7: the relisting notice, counted from the relisting.
NOTICE: dict[PropertyKind, int] = {
    PropertyKind.REAL_ESTATE: 15 * DAY,
    PropertyKind.MOVABLE: 7 * DAY,
}


class NoticeTooShort(RelistError):
    """A relisted lot would open before its notice has run (clarification 7)."""

    def __init__(self, kind: PropertyKind, earliest_start: int) -> None:
        days = NOTICE[kind] // DAY
        what = "real estate" if kind is PropertyKind.REAL_ESTATE else "movables"
        when = datetime.fromtimestamp(earliest_start / 1_000_000, UTC)
        super().__init__(
            f"the relisting notice runs {days} days for {what}: the lot may open at "
            f"{when:%Y-%m-%d %H:%M:%S} UTC at the earliest"
        )
        self.kind = kind
        self.earliest_start = earliest_start


@dataclass(frozen=True, slots=True)
class RelistPlan:
    rules: LotRules
    barred_added: frozenset[str]
    basis: str


def earliest_start(rules: LotRules, now: int) -> int:
    """When a lot relisted at `now` may open at the earliest (clarification 7)."""
    kind = rules.notice_kind
    return now + (NOTICE[kind] if kind is not None else 0)


def plan_relist(
    closed: LotState,
    *,
    start_price: int,
    start_at: int,
    end_at: int,
    now: int,
    priority_window: int | None = None,
) -> RelistPlan:
    """Rules for what follows `closed`, decided at `now`.

    * only a FAILED (流拍) or DEFAULTED lot is followed by another listing;
    * a first failure: relisting within `relist_within` (30 days) of the close; judicial
      `P0' ≥ 80 % × P0`;
    * a default (clarification 8): a re-auction within 30 days of the default, at the same
      price floor, with the defaulter barred from this property for good;
    * relisting and re-auction open only after the notice has run, counted from `now`: 15 days
      for real estate, 7 for movables (clarification 7; `NoticeTooShort`);
    * the second failure of a judicial lot: the fixed-price sale (变卖, clarification 9) at
      `start_price` = the last start price or lower, as the court orders, open from `start_at`
      to `end_at` (60 days at most); priority holders may match within `priority_window`
      (default: the preset's 24 h);
    * a fixed-price sale that found no taker is not relisted (the property goes back to the
      court).
    """
    rules = closed.rules
    if closed.status not in RELISTABLE or closed.closed_at is None:
        raise RelistError(f"a {closed.status.value} lot cannot be relisted")
    if rules.format is Format.FIXED_PRICE_SALE and closed.status is LotStatus.FAILED:
        raise RelistError(
            "nobody bought the lot at the fixed price: it is not relisted, the court decides "
            "what becomes of the property"
        )
    second_failure = (
        closed.status is LotStatus.FAILED
        and rules.relist_count >= 1
        and rules.format is Format.JUDICIAL_CN
    )
    if second_failure:
        return _fixed_price_plan(closed, start_price, start_at, end_at, now, priority_window)
    since = closed.defaulted_at if closed.status is LotStatus.DEFAULTED else closed.closed_at
    assert since is not None
    if now - since > rules.relist_within:
        event = "default" if closed.status is LotStatus.DEFAULTED else "failure"
        raise RelistError(
            f"the relisting window ({rules.relist_within // DAY} days after the {event}) has passed"
        )
    if start_price * 100 < rules.start_price * rules.relist_min_ratio_pct:
        raise RelistError(
            f"the new start price must be at least {rules.relist_min_ratio_pct} % of "
            f"{rules.start_price}"
        )
    earliest = earliest_start(rules, now)
    if start_at < earliest:
        kind = rules.notice_kind
        assert kind is not None
        raise NoticeTooShort(kind, earliest)
    barred: frozenset[str] = frozenset()
    if closed.status is LotStatus.DEFAULTED:
        assert closed.leader is not None
        barred = frozenset({closed.leader})
        relist_count = rules.relist_count  # a default is not a failure
        basis = "re-auction after default (SPC Art 24; rules C10 window and floor)"
    else:
        relist_count = rules.relist_count + 1
        basis = "relisting after failure (rules C10)"
    try:
        new_rules = rules.replace(
            start_price=start_price,
            start_at=start_at,
            end_at=end_at,
            deposit=_scaled_deposit(rules, start_price),
            barred=rules.barred | barred,
            relist_count=relist_count,
        )
    except ConfigError as exc:
        raise RelistError(f"the relisted lot's rules are not valid: {exc}") from exc
    return RelistPlan(rules=new_rules, barred_added=barred, basis=basis)


def _scaled_deposit(rules: LotRules, start_price: int) -> int:
    """The deposit at the same percentage of the new price, rounded up to the unit."""
    if not rules.start_price:
        return rules.deposit
    return round_up(-(-rules.deposit * start_price // rules.start_price), rules.deposit_unit)


def _fixed_price_plan(
    closed: LotState,
    price: int,
    start_at: int,
    end_at: int,
    now: int,
    priority_window: int | None,
) -> RelistPlan:
    rules = closed.rules
    if price > rules.start_price:
        raise RelistError(
            f"the fixed price is the last start price ({rules.start_price}) or lower, not {price}"
        )
    if start_at < now:
        raise RelistError("a fixed-price sale cannot start in the past")
    options: dict[str, int] = {}
    if priority_window is not None:
        options["priority_window"] = priority_window
    try:
        new_rules = fixed_price(
            price=price,
            start_at=start_at,
            end_at=end_at,
            currency=rules.currency,
            deposit_unit=rules.deposit_unit,
            property_kind=rules.notice_kind or PropertyKind.REAL_ESTATE,
            **options,
        ).replace(
            deposit=_scaled_deposit(rules, price),
            barred=rules.barred,
            relist_count=rules.relist_count + 1,
            legal_timezone=rules.legal_timezone,
            required_qualifications=rules.required_qualifications,
            appraisal=rules.appraisal,
            balance_due=rules.balance_due,
        )
    except ConfigError as exc:
        raise RelistError(f"the fixed-price sale's rules are not valid: {exc}") from exc
    return RelistPlan(
        rules=new_rules,
        barred_added=frozenset(),
        basis="fixed-price sale after the second failure (rules C10, clarification 9)",
    )
