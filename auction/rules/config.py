"""A lot's rules: format, prices, increments, soft close, deposits; and the presets (rules C19).

`LotRules` is a frozen value validated at construction: an inconsistent lot (a judicial deposit
outside 5..20 %, a judicial lot shorter than the preset's minimum, a hidden reserve in judicial
mode, ...) raises `ConfigError` and never reaches the engine.
"""

from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass, field

from .errors import ConfigError
from .increments import EBAY_TABLE, Fixed, Increment, Ladder, Table
from .money import DAY, HOUR, MINUTE, SECOND, check_amount, deposit_amount


class Format(enum.StrEnum):
    """Rules C1. `JUDICIAL_CN` and `ENGLISH_TIMED` share the timed ascending module;
    `FIXED_PRICE_SALE` (变卖, rules C10 and clarification 9) has a module of its own."""

    JUDICIAL_CN = "JUDICIAL_CN"
    ENGLISH_TIMED = "ENGLISH_TIMED"
    LIVE_AUCTIONEER = "LIVE_AUCTIONEER"
    FIXED_PRICE_SALE = "FIXED_PRICE_SALE"


class PropertyKind(enum.StrEnum):
    """What is being sold, for the relisting notice (rules C10, clarification 7)."""

    REAL_ESTATE = "REAL_ESTATE"  # and other property rights: 15 days' notice
    MOVABLE = "MOVABLE"  # 7 days' notice


#: Clarification 9: a fixed-price sale is open for at most 60 days.
FIXED_PRICE_MAX_DURATION = 60 * DAY


class SoftCloseMode(enum.StrEnum):
    """Rules C6."""

    OFF = "OFF"  # hard close
    FROM_BID = "FROM_BID"  # end := max(end, t + E) inside the window
    RESET_TO_REMAINING = "RESET_TO_REMAINING"  # same formula with E = T
    ADD_TO_END = "ADD_TO_END"  # end := end + E inside the window (stacks)
    LIVE_RESET = "LIVE_RESET"  # every bid: end := max(end, t + E) (clarification 4)


class SoftCloseTrigger(enum.StrEnum):
    PRICE_OR_LEADER_CHANGE = "PRICE_OR_LEADER_CHANGE"
    ANY_VALID_BID = "ANY_VALID_BID"


class Scope(enum.StrEnum):
    LOT = "LOT"
    GROUP = "GROUP"
    SALE = "SALE"


class Retraction(enum.StrEnum):
    """Rules C8: judicial and live bids are irrevocable; commercial timed follows eBay."""

    NEVER = "NEVER"
    EBAY = "EBAY"


@dataclass(frozen=True, slots=True)
class SoftClose:
    mode: SoftCloseMode = SoftCloseMode.FROM_BID
    window: int = 5 * MINUTE  # W, microseconds
    extend: int = 5 * MINUTE  # E, microseconds
    cap_total: int | None = None  # max overtime past the scheduled end + time paused (clar. 5)
    cap_count: int | None = None  # maximum number of extensions
    scope: Scope = Scope.LOT
    group: str | None = None  # the group id when scope is GROUP
    trigger: SoftCloseTrigger = SoftCloseTrigger.PRICE_OR_LEADER_CHANGE
    reserve_approach: int | None = None  # ON_RESERVE_APPROACH extension (Ten-X: 5 min)

    def __post_init__(self) -> None:
        if self.window < 0 or self.extend < 0:
            raise ConfigError("soft close window and extension must be non-negative")
        if self.scope is Scope.GROUP and not self.group:
            raise ConfigError("GROUP soft close needs a group id")


@dataclass(frozen=True, slots=True)
class LotRules:
    """Everything the engine needs to know about one lot. Times are UTC microseconds."""

    format: Format
    currency: str
    start_price: int  # P0, minor units
    increment: Increment
    start_at: int
    end_at: int  # scheduled end (timed formats); informational for live
    soft_close: SoftClose = field(default_factory=SoftClose)
    reserve: int | None = None  # hidden reserve (ENGLISH_TIMED only)
    proxy_allowed: bool = False
    priority_rights: bool = False
    retraction: Retraction = Retraction.NEVER
    deposit_required: bool = True
    deposit: int = 0  # minor units; see `judicial` for the percentage rule
    deposit_unit: int = 1  # the deposit is rounded up to a multiple of this (rules C3)
    min_duration: int = 0
    max_jump_steps: int | None = None  # C4 guard: a bid above cur + N·inc needs confirmation
    resume_within: int | None = None  # C11: judicial 5 days
    release_within: int = 24 * HOUR  # C3: refunds and transfers within 24 h
    balance_due: int = 10 * DAY  # C9: winner's balance deadline after close
    relist_within: int = 30 * DAY  # C10
    relist_min_ratio_pct: int = 0  # C10: judicial relisting keeps P0' ≥ 80 % of P0
    fair_warning_dwell: int = 3 * SECOND  # C14: minimum time between fair warning and hammer
    barred: frozenset[str] = frozenset()  # bidder ids barred from this lot (defaulters, staff)
    required_qualifications: frozenset[str] = frozenset()  # C2: e.g. purchase-restriction pass
    relist_count: int = 0
    appraisal: int | None = None  # judicial: a first auction's P0 ≥ 70 % of the appraisal
    legal_timezone: str = "Asia/Shanghai"
    property_kind: PropertyKind | None = None  # C10 notice; judicial lots default to real estate
    priority_window: int = 0  # fixed-price sale: how long priority holders may match (C7)

    def __post_init__(self) -> None:
        if not (len(self.currency) == 3 and self.currency.isalpha() and self.currency.isupper()):
            raise ConfigError(f"currency must be an ISO 4217 code, got {self.currency!r}")
        check_amount(self.start_price, allow_zero=True, what="start price")
        check_amount(self.deposit, allow_zero=True, what="deposit")
        if self.reserve is not None:
            check_amount(self.reserve, what="reserve")
        if self.format is not Format.LIVE_AUCTIONEER and self.end_at <= self.start_at:
            raise ConfigError("a timed lot must end after it starts")
        if self.format is not Format.LIVE_AUCTIONEER and (
            self.end_at - self.start_at < self.min_duration
        ):
            raise ConfigError(
                f"{self.format.value} lots must last at least {self.min_duration // SECOND} s"
            )
        if self.format is Format.FIXED_PRICE_SALE:
            self._check_fixed_price()
        if self.format in (Format.JUDICIAL_CN, Format.FIXED_PRICE_SALE):
            judicial_lot = self.format is Format.JUDICIAL_CN
            kind = "a judicial auction" if judicial_lot else "a fixed-price sale"
            if self.reserve is not None:
                raise ConfigError(f"{kind} has no hidden reserve: the start price is public")
            if self.retraction is not Retraction.NEVER:
                raise ConfigError(f"bids in {kind} are irrevocable (Auction Law Art 36)")
            if (
                self.deposit_required
                and self.start_price
                and not (
                    deposit_amount(self.start_price, 500, 1)
                    <= self.deposit
                    <= deposit_amount(self.start_price, 2000, self.deposit_unit)
                )
            ):
                raise ConfigError(f"the deposit of {kind} must be 5 %..20 % of the start price")
            if (
                self.format is Format.JUDICIAL_CN
                and self.appraisal is not None
                and self.relist_count == 0  # a relisting's floor is 80 % of the last P0 (C10)
                and self.start_price * 10 < self.appraisal * 7
            ):
                raise ConfigError("JUDICIAL_CN start price must be at least 70 % of appraisal")
        if self.format is Format.LIVE_AUCTIONEER and self.retraction is not Retraction.NEVER:
            raise ConfigError("LIVE_AUCTIONEER bids are irrevocable (Auction Law Art 36)")

    def _check_fixed_price(self) -> None:
        """Clarification 9: a price, at most 60 days, no bidding up, no proxy."""
        if self.start_price <= 0:
            raise ConfigError("a fixed-price sale needs a positive price")
        if self.end_at - self.start_at > FIXED_PRICE_MAX_DURATION:
            raise ConfigError(
                "a fixed-price sale is open for at most 60 days, not "
                f"{(self.end_at - self.start_at) / DAY:.1f}"
            )
        if self.proxy_allowed:
            raise ConfigError("a fixed-price sale has no proxy bidding")
        if self.soft_close.mode is not SoftCloseMode.OFF:
            raise ConfigError("a fixed-price sale has no soft close")
        if self.priority_window < 0:
            raise ConfigError("the priority holders' window must not be negative")

    @property
    def notice_kind(self) -> PropertyKind | None:
        """The kind of property for the relisting notice: as configured, else real estate for
        judicial lots and fixed-price sales (clarification 7), else none stated."""
        if self.property_kind is not None:
            return self.property_kind
        if self.format in (Format.JUDICIAL_CN, Format.FIXED_PRICE_SALE):
            return PropertyKind.REAL_ESTATE
        return None

    def replace(self, **changes: object) -> LotRules:
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]


def judicial(
    *,
    start_price: int,
    step: int,
    start_at: int,
    end_at: int,
    deposit_pct_basis_points: int = 1000,
    deposit_unit: int = 100,
    currency: str = "CNY",
    proxy_allowed: bool = False,
    min_duration: int = 24 * HOUR,
    window: int = 5 * MINUTE,
    extend: int = 5 * MINUTE,
    appraisal: int | None = None,
    property_kind: PropertyKind = PropertyKind.REAL_ESTATE,
    **overrides: object,
) -> LotRules:
    """The `JUDICIAL_CN` preset (rules C19): FIXED step, 5/5 soft close on any valid bid, no
    cap, public reserve = P0, priority rights, irrevocable bids, deposit 5..20 % of P0, resume
    within 5 days, relisting at ≥ 80 % after the notice (15 days for real estate, the default;
    7 for movables). `proxy_allowed` only if the court's notice allows it.
    """
    if not 500 <= deposit_pct_basis_points <= 2000:
        raise ConfigError("JUDICIAL_CN deposit percentage must be within 5 %..20 %")
    rules = LotRules(
        format=Format.JUDICIAL_CN,
        currency=currency,
        start_price=start_price,
        increment=Fixed(step),
        start_at=start_at,
        end_at=end_at,
        soft_close=SoftClose(
            mode=SoftCloseMode.FROM_BID,
            window=window,
            extend=extend,
            trigger=SoftCloseTrigger.ANY_VALID_BID,
        ),
        proxy_allowed=proxy_allowed,
        priority_rights=True,
        retraction=Retraction.NEVER,
        deposit_required=True,
        deposit=deposit_amount(start_price, deposit_pct_basis_points, deposit_unit),
        deposit_unit=deposit_unit,
        min_duration=min_duration,
        resume_within=5 * DAY,
        relist_min_ratio_pct=80,
        appraisal=appraisal,
        property_kind=property_kind,
    )
    return rules.replace(**overrides) if overrides else rules


def english_timed(
    *,
    start_price: int,
    start_at: int,
    end_at: int,
    reserve: int | None = None,
    increment: Increment = EBAY_TABLE,
    currency: str = "USD",
    deposit: int = 0,
    soft_close: SoftClose | None = None,
    **overrides: object,
) -> LotRules:
    """The `ENGLISH_TIMED` preset: proxy bidding, eBay increment table, optional hidden
    reserve, FROM_BID 2 min / 2 min soft close, eBay retraction rules, deposit optional."""
    rules = LotRules(
        format=Format.ENGLISH_TIMED,
        currency=currency,
        start_price=start_price,
        increment=increment,
        start_at=start_at,
        end_at=end_at,
        soft_close=soft_close or SoftClose(window=2 * MINUTE, extend=2 * MINUTE),
        reserve=reserve,
        proxy_allowed=True,
        priority_rights=False,
        retraction=Retraction.EBAY,
        deposit_required=deposit > 0,
        deposit=deposit,
        balance_due=2 * DAY,
    )
    return rules.replace(**overrides) if overrides else rules


def live_auctioneer(
    *,
    start_price: int,
    start_at: int,
    currency: str = "USD",
    increment: Increment | None = None,
    fair_warning_dwell: int = 3 * SECOND,
    deposit: int = 0,
    **overrides: object,
) -> LotRules:
    """The `LIVE_AUCTIONEER` preset: clerk-driven 2-5-8 ladder, online / floor / absentee
    bids, fair warning with a minimum dwell before the hammer, irrevocable bids."""
    if fair_warning_dwell < 2 * SECOND:
        raise ConfigError("fair warning dwell must be at least 2 s (rules C14)")
    rules = LotRules(
        format=Format.LIVE_AUCTIONEER,
        currency=currency,
        start_price=start_price,
        increment=increment or Ladder(decade_258=True),
        start_at=start_at,
        end_at=start_at,
        soft_close=SoftClose(mode=SoftCloseMode.OFF),
        proxy_allowed=True,  # absentee / commission bids
        retraction=Retraction.NEVER,
        deposit_required=deposit > 0,
        deposit=deposit,
        fair_warning_dwell=fair_warning_dwell,
    )
    return rules.replace(**overrides) if overrides else rules


def fixed_price(
    *,
    price: int,
    start_at: int,
    end_at: int,
    deposit_pct_basis_points: int = 1000,
    deposit_unit: int = 100,
    currency: str = "CNY",
    priority_window: int = 24 * HOUR,
    property_kind: PropertyKind = PropertyKind.REAL_ESTATE,
    **overrides: object,
) -> LotRules:
    """The `FIXED_PRICE_SALE` preset (变卖, rules C10, clarification 9): the lot is bought by the
    first deposit-backed bidder who confirms at exactly `price` (a `PlaceBid` of that amount,
    signed like any bid) within at most 60 days; registered priority holders may then match
    the same price within `priority_window` (as the court's notice states; default 24 h).
    Deposits 5..20 % of the price as for the auction; irrevocable; no proxy, no soft close.
    `plan_relist` derives these rules from a judicial lot's second failure."""
    if not 500 <= deposit_pct_basis_points <= 2000:
        raise ConfigError("a fixed-price sale's deposit percentage must be within 5 %..20 %")
    if isinstance(price, bool) or not isinstance(price, int) or price <= 0:
        raise ConfigError(f"a fixed-price sale needs a positive integer price, got {price!r}")
    rules = LotRules(
        format=Format.FIXED_PRICE_SALE,
        currency=currency,
        start_price=price,
        increment=Fixed(price),
        start_at=start_at,
        end_at=end_at,
        soft_close=SoftClose(mode=SoftCloseMode.OFF, window=0, extend=0),
        proxy_allowed=False,
        priority_rights=True,
        retraction=Retraction.NEVER,
        deposit_required=True,
        deposit=deposit_amount(price, deposit_pct_basis_points, deposit_unit),
        deposit_unit=deposit_unit,
        resume_within=5 * DAY,
        property_kind=property_kind,
        priority_window=priority_window,
    )
    return rules.replace(**overrides) if overrides else rules


PRESETS = {
    Format.JUDICIAL_CN: judicial,
    Format.ENGLISH_TIMED: english_timed,
    Format.LIVE_AUCTIONEER: live_auctioneer,
    Format.FIXED_PRICE_SALE: fixed_price,
}

__all__ = [
    "FIXED_PRICE_MAX_DURATION",
    "Fixed",
    "Format",
    "Ladder",
    "LotRules",
    "PRESETS",
    "PropertyKind",
    "Retraction",
    "Scope",
    "SoftClose",
    "SoftCloseMode",
    "SoftCloseTrigger",
    "Table",
    "english_timed",
    "fixed_price",
    "judicial",
    "live_auctioneer",
]
