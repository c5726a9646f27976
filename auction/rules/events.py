"""Events: what happened to a lot, in order (STYLE rule 3; rules C16).

Every event but `Rejected` takes the next per-lot `seq`. A rejection changes nothing (not even
the seq) and carries the authoritative `cur`, `min_next`, `end` and `seq` (rules C4).
`MaxSet` is private (rules C17: maximum bids are visible only to the engine); every other event
is public except for the `bidder` ids, which adapters replace by codes before publishing.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from .errors import RejectReason
from .states import DepositState, LotStatus


class BidType(enum.StrEnum):
    """Rules C16 `bid_type`."""

    MANUAL = "MANUAL"
    PROXY_MAX = "PROXY_MAX"
    PROXY_AUTO = "PROXY_AUTO"
    PRIORITY_MATCH = "PRIORITY_MATCH"
    FLOOR = "FLOOR"
    PHONE = "PHONE"
    ABSENTEE = "ABSENTEE"
    ONLINE = "ONLINE"


class Result(enum.StrEnum):
    SOLD = "SOLD"
    FAILED = "FAILED"


class LivePhase(enum.StrEnum):
    """Rules C14 ring phases (the lot status stays OPEN while in the ring)."""

    IN_RING = "IN_RING"
    FAIR_WARNING = "FAIR_WARNING"


@dataclass(frozen=True, slots=True)
class Rejected:
    seq: int  # the lot's current seq (unchanged)
    t: int
    command: str
    reason: RejectReason
    detail: str
    bidder: str | None
    cur: int | None
    min_next: int
    end: int


def rejection(events: Sequence[object]) -> Rejected | None:
    """The engine's refusal of a command, or None if the command was applied.

    A refused command changes nothing and its answer is exactly one `Rejected` event (rules
    C4); the caller reports its `reason`. With None, the caller reads the events it got.
    """
    if len(events) == 1 and isinstance(events[0], Rejected):
        return events[0]
    return None


@dataclass(frozen=True, slots=True)
class BidderRegistered:
    seq: int
    t: int
    bidder: str
    code: str
    priority_rank: int | None
    agent_for: str | None
    deposit: DepositState


@dataclass(frozen=True, slots=True)
class BidderBarred:
    seq: int
    t: int
    bidder: str
    reason: str
    basis: str


@dataclass(frozen=True, slots=True)
class DepositChanged:
    seq: int
    t: int
    bidder: str
    state: DepositState
    amount: int
    reference: str
    deadline: int | None  # C3: the 24 h by which the provider must have moved the money


@dataclass(frozen=True, slots=True)
class LotOpened:
    seq: int
    t: int
    end: int


@dataclass(frozen=True, slots=True)
class LotHalted:
    """Rules C11: paused (暂缓) or suspended (中止); `remaining` is frozen until resume."""

    seq: int
    t: int
    status: LotStatus
    reason: str
    by: str
    basis: str
    remaining: int | None
    notify_court: bool


@dataclass(frozen=True, slots=True)
class LotResumed:
    seq: int
    t: int
    end: int
    reason: str
    by: str


@dataclass(frozen=True, slots=True)
class LotCancelled:
    seq: int
    t: int
    reason: str
    by: str
    basis: str


@dataclass(frozen=True, slots=True)
class MaxSet:
    """Private: a proxy / absentee maximum (rules C5, C17)."""

    seq: int
    t: int
    bidder: str
    amount: int


@dataclass(frozen=True, slots=True)
class BidAccepted:
    seq: int
    t: int
    bidder: str  # bidder id; for floor bids "floor:<paddle>"
    code: str
    amount: int
    bid_type: BidType
    on_behalf_of: str | None


@dataclass(frozen=True, slots=True)
class BidPending:
    """Rules C14: an online bid waiting for the clerk; it holds the ask (first-come lock)."""

    seq: int
    t: int
    bidder: str
    code: str
    amount: int


@dataclass(frozen=True, slots=True)
class BidDeclined:
    seq: int
    t: int
    bid_seq: int
    reason: RejectReason


@dataclass(frozen=True, slots=True)
class BidVoided:
    """Rules C8: a bid (or a maximum) removed by retraction, authority void or clerk undo."""

    seq: int
    t: int
    bid_seq: int
    bidder: str
    reason: str
    by: str


@dataclass(frozen=True, slots=True)
class PriceChanged:
    seq: int
    t: int
    price: int | None
    leader: str | None
    leader_code: str | None
    min_next: int


@dataclass(frozen=True, slots=True)
class EndExtended:
    seq: int
    t: int
    end_before: int
    end_after: int
    scope: str
    group: str | None


@dataclass(frozen=True, slots=True)
class ReserveApproached:
    """Rules C6 ON_RESERVE_APPROACH: the next increment meets the reserve; notify bidders."""

    seq: int
    t: int
    end: int


@dataclass(frozen=True, slots=True)
class AskChanged:
    seq: int
    t: int
    ask: int
    phase: LivePhase


@dataclass(frozen=True, slots=True)
class FairWarningGiven:
    seq: int
    t: int
    ask: int
    hammer_not_before: int


@dataclass(frozen=True, slots=True)
class LotClosed:
    """Rules C6 step 3 / C9: the result. `winner` is an internal id; publish `winner_code`."""

    seq: int
    t: int
    result: Result
    price: int | None
    winner: str | None
    winner_code: str | None
    end_final: int
    reason: str
    balance_due_at: int | None


@dataclass(frozen=True, slots=True)
class LotReopened:
    seq: int
    t: int
    reason: str


@dataclass(frozen=True, slots=True)
class LotFinalized:
    seq: int
    t: int


@dataclass(frozen=True, slots=True)
class PaymentConfirmed:
    seq: int
    t: int
    reference: str


@dataclass(frozen=True, slots=True)
class DefaultDeclared:
    seq: int
    t: int
    bidder: str
    reason: str


@dataclass(frozen=True, slots=True)
class PriorityWindowOpened:
    """Fixed-price sale (clarification 9): a bidder confirmed at the price; registered priority
    holders of better rank may match it until `end` (which replaces the sale's end)."""

    seq: int
    t: int
    price: int
    leader_code: str
    end_before: int
    end_after: int


Event = (
    Rejected
    | BidderRegistered
    | BidderBarred
    | DepositChanged
    | LotOpened
    | LotHalted
    | LotResumed
    | LotCancelled
    | MaxSet
    | BidAccepted
    | BidPending
    | BidDeclined
    | BidVoided
    | PriceChanged
    | EndExtended
    | ReserveApproached
    | AskChanged
    | FairWarningGiven
    | LotClosed
    | LotReopened
    | LotFinalized
    | PaymentConfirmed
    | DefaultDeclared
    | PriorityWindowOpened
)

EVENT_TYPES: tuple[type, ...] = Event.__args__


def fast_constructor(cls: type, *, numbered: bool = False) -> Callable[..., Any]:
    """A constructor for the frozen slots dataclass `cls`, with the same parameters, that does
    not pay for the frozen `__setattr__`.

    A frozen dataclass's `__init__` sets every field through `object.__setattr__`: about 1 µs
    for a seven-field event, and the engine builds two to four events a command. This builds
    the value as an instance of a plain slots class with the same slots (setting a slot there
    is a plain attribute store), then assigns its `__class__` to `cls`, which CPython allows
    between classes of the same layout. The result is an ordinary `cls` instance: it compares,
    hashes, pickles and `dataclasses.replace`s like one built by `cls(...)`. For values with
    no `__post_init__` (nothing to check) and fields without defaults.

    `numbered=True` gives the engine's way to emit an event in one call: the function takes
    the command's emitter (`lot.Emitter`: `seq`, `now`, `events`) and the fields after `seq`
    and `t`; it takes the next seq, stamps `now`, appends the event and returns it.
    """
    fields = dataclasses.fields(cls)
    if hasattr(cls, "__post_init__") or any(
        f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING
        for f in fields
    ):
        raise TypeError(f"{cls.__name__}: only for values without defaults or __post_init__")
    names = tuple(f.name for f in fields)
    if getattr(cls, "__slots__", None) != names or cls.__bases__ != (object,):
        raise TypeError(f"{cls.__name__} is not a slots dataclass without bases")
    draft = type(f"_{cls.__name__}Draft", (), {"__slots__": names})
    fname = f"{cls.__name__}_emit" if numbered else f"{cls.__name__}_fast"
    if numbered:
        if names[:2] != ("seq", "t"):
            raise TypeError(f"{cls.__name__} does not start with seq and t")
        params = ", ".join(("out", *names[2:]))
        lines = [f"def {fname}({params}):", "    new = new_object(draft)"]
        lines += ["    out.seq = new.seq = out.seq + 1", "    new.t = out.now"]
        lines += [f"    new.{name} = {name}" for name in names[2:]]
        lines += ["    new.__class__ = cls", "    out.events.append(new)", "    return new"]
    else:
        lines = [f"def {fname}({', '.join(names)}):", "    new = new_object(draft)"]
        lines += [f"    new.{name} = {name}" for name in names]
        lines += ["    new.__class__ = cls", "    return new"]
    scope: dict[str, Any] = {"new_object": object.__new__, "draft": draft, "cls": cls}
    exec("\n".join(lines), scope)  # noqa: S102 - generated from the class's own field names
    built: Callable[..., Any] = scope[fname]
    return built


#: Each event type's `fast_constructor`: how the engine builds events.
BUILD: dict[type, Callable[..., Any]] = {cls: fast_constructor(cls) for cls in EVENT_TYPES}

#: Each event type's numbered `fast_constructor`: how the engine emits events,
#: `EMIT[type](emitter, fields after seq and t...)`.
EMIT: dict[type, Callable[..., Any]] = {
    cls: fast_constructor(cls, numbered=True) for cls in EVENT_TYPES
}
