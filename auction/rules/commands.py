"""Commands: what bidders, clerks, courts and the platform ask a lot to do (STYLE rule 3).

Frozen values, validated at construction: a float, negative or absurd amount, an empty id or a
malformed currency raises `CommandError` carrying the rejection reason, before any rule runs.
The lot a command is for is not part of it: the adapter routes by lot id (`Lots.apply`).
"""

from __future__ import annotations

import dataclasses
import enum
import types
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .errors import CommandError, RejectReason
from .increments import Increment
from .money import MAX_AMOUNT, check_amount, check_id, check_time


class Authority(enum.StrEnum):
    """Who acts on a lot outside bidding (rules C11: court/admin, or the platform on a fault)."""

    COURT = "COURT"
    ADMIN = "ADMIN"
    PLATFORM = "PLATFORM"
    CLERK = "CLERK"


class RetractReason(enum.StrEnum):
    """Rules C8: the only reasons eBay-style retraction accepts."""

    ENTRY_ERROR = "ENTRY_ERROR"
    DESCRIPTION_CHANGED = "DESCRIPTION_CHANGED"


class BidSource(enum.StrEnum):
    """Rules C14: where a live bid came from."""

    ONLINE = "ONLINE"
    FLOOR = "FLOOR"
    PHONE = "PHONE"
    ABSENTEE = "ABSENTEE"
    COMMISSION = "COMMISSION"


def _currency(value: object) -> str:
    if not (isinstance(value, str) and len(value) == 3 and value.isalpha() and value.isupper()):
        raise CommandError(RejectReason.WRONG_CURRENCY, f"not an ISO 4217 code: {value!r}")
    return value


def _text(value: object, what: str, limit: int = 512) -> str:
    if not isinstance(value, str) or len(value) > limit:
        raise CommandError(RejectReason.NOT_PERMITTED, f"{what} must be text of ≤ {limit} chars")
    return value


@dataclass(frozen=True, slots=True)
class RegisterBidder:
    """Rules C2: register a verified bidder for this lot under a pseudonymous code.

    The adapter derives `code` (random, non-reversible, per lot and bidder; `P{rank}-xxxx` for
    a priority holder) and states what the identity and eligibility checks found.
    """

    bidder: str
    code: str
    kyc_verified: bool
    full_capacity: bool = True
    qualifications: frozenset[str] = frozenset()
    priority_rank: int | None = None
    agent_for: str | None = None
    principal_verified: bool = False
    poa_approved: bool = False
    deposit_exempt: bool = False

    def __post_init__(self) -> None:
        check_id(self.bidder, "bidder")
        check_id(self.code, "bidder code")
        if self.agent_for is not None:
            check_id(self.agent_for, "principal")
        if self.priority_rank is not None and (
            isinstance(self.priority_rank, bool)
            or not isinstance(self.priority_rank, int)
            or not 1 <= self.priority_rank <= 99
        ):
            raise CommandError(RejectReason.NOT_PERMITTED, "priority rank must be 1..99")


@dataclass(frozen=True, slots=True)
class BarBidder:
    """Bar a bidder from this lot (Art 34 staff and relatives, Art 24 defaulters, bans)."""

    bidder: str
    reason: str
    basis: str = ""

    def __post_init__(self) -> None:
        check_id(self.bidder, "bidder")
        _text(self.reason, "reason")


@dataclass(frozen=True, slots=True)
class DepositPending:
    """The payment provider has started freezing the bidder's deposit (rules C3)."""

    bidder: str
    reference: str

    def __post_init__(self) -> None:
        check_id(self.bidder, "bidder")
        check_id(self.reference, "payment reference")


@dataclass(frozen=True, slots=True)
class DepositFrozen:
    """The payment provider confirms the deposit is frozen in the bidder's real name."""

    bidder: str
    amount: int
    reference: str

    def __post_init__(self) -> None:
        check_id(self.bidder, "bidder")
        check_amount(self.amount, what="deposit")
        check_id(self.reference, "payment reference")


@dataclass(frozen=True, slots=True)
class ReleaseDeposit:
    """Release one bidder's deposit before the close (withdrawal while not leading)."""

    bidder: str
    reason: str

    def __post_init__(self) -> None:
        check_id(self.bidder, "bidder")
        _text(self.reason, "reason")


@dataclass(frozen=True, slots=True)
class OpenLot:
    """Start bidding (timed formats). The adapter sends it at `start_at`."""


@dataclass(frozen=True, slots=True)
class _Offer:
    """What a flat bid and a proxy maximum both carry, checked the same way."""

    bidder: str
    amount: int
    currency: str
    idempotency_key: str = ""

    def __post_init__(self) -> None:
        _check_offer(self.bidder, self.amount, self.currency, self.idempotency_key)


def _check_offer(bidder: object, amount: object, currency: object, key: object) -> None:
    """An offer's checks, on its values (`_Offer.__post_init__`, and the bids' own `__init__`
    before it stores anything)."""
    if (  # the common, valid offer in one test (bids are the commands there are most of)
        type(bidder) is str
        and 0 < len(bidder) <= 128
        and bidder.isprintable()
        and type(amount) is int
        and 0 < amount <= MAX_AMOUNT
        and type(currency) is str
        and len(currency) == 3
        and currency.isalpha()
        and currency.isupper()
        and type(key) is str
        and len(key) <= 128
    ):
        return
    check_id(bidder, "bidder")  # anything else: the checks that name what is wrong
    check_amount(amount)
    _currency(currency)
    _text(key, "idempotency key", 128)


@dataclass(frozen=True, slots=True)
class PlaceBid(_Offer):
    """A bid of exactly `amount` (a "flat" bid). Live mode: an online bid at the ask."""

    confirm_jump: bool = False  # rules C8 pre-submission safeguard for large jumps


@dataclass(frozen=True, slots=True)
class SetMax(_Offer):
    """Rules C5: set (or change) a proxy maximum. Live mode: an absentee/commission bid."""


def _slot_init(cls: type, check: Callable[..., None], checked: tuple[str, ...]) -> None:
    """Give the frozen slots dataclass `cls` an `__init__` with the same parameters that
    stores each field through its slot's own descriptor instead of `object.__setattr__`.

    The generated `__init__` of a frozen dataclass goes through `object.__setattr__` for every
    field (the class's own `__setattr__` refuses): about 0.15 µs a field, over half the cost of
    building a bid. A slot's member descriptor stores the value directly. `check` is called
    first with the arguments named in `checked` (what `__post_init__` checks, on the values
    rather than the attributes). Everything else is unchanged: `__new__`, equality, hashing,
    pickling and `dataclasses.replace` are the dataclass's own.
    """
    fields = dataclasses.fields(cls)
    if any(f.default_factory is not dataclasses.MISSING or not f.init for f in fields):
        raise TypeError(f"{cls.__name__}: only for fields with plain defaults")
    if not set(checked) <= {f.name for f in fields}:
        raise TypeError(f"{cls.__name__} has no field named in {checked}")
    scope: dict[str, Any] = {"_check": check}
    params = ["self"]
    body = [f"    _check({', '.join(checked)})"]
    for f in fields:
        slot: Any = getattr(cls, f.name)  # the member descriptor, here or in a base class
        if type(slot) is not types.MemberDescriptorType:
            raise TypeError(f"{cls.__name__}.{f.name} is not a slot")
        scope[f"_set_{f.name}"] = slot.__set__
        if f.default is dataclasses.MISSING:
            params.append(f.name)
        else:
            scope[f"_default_{f.name}"] = f.default
            params.append(f"{f.name}=_default_{f.name}")
        body.append(f"    _set_{f.name}(self, {f.name})")
    source = f"def __init__({', '.join(params)}):\n" + "\n".join(body)
    exec(source, scope)  # noqa: S102 - generated from the class's own field names
    init = scope["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    init.__annotations__ = dict(cls.__init__.__annotations__)  # type: ignore[misc]
    cls.__init__ = init  # type: ignore[misc]


# bids and maxima are the commands there are most of
_OFFER_CHECKED = ("bidder", "amount", "currency", "idempotency_key")
_slot_init(PlaceBid, _check_offer, _OFFER_CHECKED)
_slot_init(SetMax, _check_offer, _OFFER_CHECKED)


@dataclass(frozen=True, slots=True)
class RetractBid:
    """Rules C8, commercial timed only: retract one's own bid for an entry error."""

    bidder: str
    bid_seq: int
    reason: RetractReason

    def __post_init__(self) -> None:
        check_id(self.bidder, "bidder")
        check_time(self.bid_seq, "bid seq")


@dataclass(frozen=True, slots=True)
class VoidBid:
    """Rules C8: an authority void (court order, proven system error). Never a delete."""

    bid_seq: int
    reason: str
    by: Authority = Authority.COURT

    def __post_init__(self) -> None:
        check_time(self.bid_seq, "bid seq")
        _text(self.reason, "reason")


@dataclass(frozen=True, slots=True)
class _CourtAction:
    """A court (or platform) action on the lot: a reason, who acts, and the legal basis."""

    reason: str
    by: Authority = Authority.COURT
    basis: str = ""

    def __post_init__(self) -> None:
        _text(self.reason, "reason")


@dataclass(frozen=True, slots=True)
class Pause(_CourtAction):
    """Rules C11: 暂缓. `by=PLATFORM` is the automatic pause on a fault (notifies the court)."""


@dataclass(frozen=True, slots=True)
class Suspend(_CourtAction):
    """Rules C11: 中止."""


@dataclass(frozen=True, slots=True)
class Resume:
    """Rules C11: resume; `end := t_resume + max(remaining, W)`, W = 0 when the lot has no
    soft close (clarification 6)."""

    reason: str
    by: Authority = Authority.COURT

    def __post_init__(self) -> None:
        _text(self.reason, "reason")


@dataclass(frozen=True, slots=True)
class Cancel(_CourtAction):
    """Rules C11: 撤回/撤销; releases every deposit within 24 h."""


@dataclass(frozen=True, slots=True)
class AlignEnd:
    """Rules C6 group soft close: another lot of the group extended to `end`."""

    end: int
    source_lot: str

    def __post_init__(self) -> None:
        check_time(self.end, "end")
        check_id(self.source_lot, "source lot")


@dataclass(frozen=True, slots=True)
class CloseLot:
    """Rules C6 closing procedure: sent at `end`, after the queue drained earlier commands."""


@dataclass(frozen=True, slots=True)
class ConfirmPayment:
    """Rules C9: the winner paid the balance."""

    reference: str

    def __post_init__(self) -> None:
        check_id(self.reference, "payment reference")


@dataclass(frozen=True, slots=True)
class DeclareDefault:
    """Rules C9/C3: the winner missed the balance deadline: forfeit and bar."""

    reason: str

    def __post_init__(self) -> None:
        _text(self.reason, "reason")


# --- live auctioneer (rules C14) -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OpenRing:
    """Bring the lot into the ring with an opening ask."""

    ask: int

    def __post_init__(self) -> None:
        check_amount(self.ask)


@dataclass(frozen=True, slots=True)
class SetAsk:
    ask: int

    def __post_init__(self) -> None:
        check_amount(self.ask)


@dataclass(frozen=True, slots=True)
class SetIncrement:
    increment: Increment


@dataclass(frozen=True, slots=True)
class SetAutoAccept:
    on: bool


@dataclass(frozen=True, slots=True)
class FloorBid:
    """A bid taken by the clerk in the room or on the phone, at `amount` (default: the ask)."""

    paddle: str
    amount: int | None = None
    source: BidSource = BidSource.FLOOR

    def __post_init__(self) -> None:
        check_id(self.paddle, "paddle")
        if self.amount is not None:
            check_amount(self.amount)


@dataclass(frozen=True, slots=True)
class AcceptOnline:
    bid_seq: int

    def __post_init__(self) -> None:
        check_time(self.bid_seq, "bid seq")


@dataclass(frozen=True, slots=True)
class DeclineOnline:
    """The clerk declines the online bid that holds the ask (rules C14.1): it is not taken,
    the ask is free again."""

    bid_seq: int

    def __post_init__(self) -> None:
        check_time(self.bid_seq, "bid seq")


@dataclass(frozen=True, slots=True)
class FairWarning:
    pass


@dataclass(frozen=True, slots=True)
class Hammer:
    pass


@dataclass(frozen=True, slots=True)
class PassLot:
    reason: str = "no bids at the ask"


@dataclass(frozen=True, slots=True)
class UndoLastBid:
    reason: str

    def __post_init__(self) -> None:
        _text(self.reason, "reason")


@dataclass(frozen=True, slots=True)
class Reopen:
    reason: str

    def __post_init__(self) -> None:
        _text(self.reason, "reason")


@dataclass(frozen=True, slots=True)
class NextLot:
    """The clerk moves on: the hammered or passed result can no longer be reopened."""


Command = (
    RegisterBidder
    | BarBidder
    | DepositPending
    | DepositFrozen
    | ReleaseDeposit
    | OpenLot
    | PlaceBid
    | SetMax
    | RetractBid
    | VoidBid
    | Pause
    | Suspend
    | Resume
    | Cancel
    | AlignEnd
    | CloseLot
    | ConfirmPayment
    | DeclareDefault
    | OpenRing
    | SetAsk
    | SetIncrement
    | SetAutoAccept
    | FloorBid
    | AcceptOnline
    | DeclineOnline
    | FairWarning
    | Hammer
    | PassLot
    | UndoLastBid
    | Reopen
    | NextLot
)

COMMAND_TYPES: tuple[type, ...] = Command.__args__
