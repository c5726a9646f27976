"""A lot's state: a frozen value that the engine replaces, never mutates (STYLE rule 3).

The per-bidder maximum history is a persistent linked list (`MaxVersion.prev`) so that a new
bid costs O(1) and an authority void or retraction can still rebuild the history.

The values here are frozen `msgspec.Struct`s rather than frozen dataclasses: they are built and
copied on every command, and a Struct is built, and copied with changes
(`msgspec.structs.replace`), in C. A frozen dataclass's copy set each of the lot's 21 fields
through `object.__setattr__`, about 4 µs a command. They still compare, hash and pickle by
value like the dataclasses did; they are never serialised (the ledger keeps commands and
events, and states are rebuilt by replay).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import msgspec

from .config import Format, LotRules
from .errors import RejectReason
from .events import BUILD, EMIT, LivePhase, Rejected, Result
from .states import DepositState, LotStatus

_replace = msgspec.structs.replace
_rejected = BUILD[Rejected]
_astuple = msgspec.structs.astuple

#: Rank used in ordering keys for ordinary (non-priority) bidders: after every priority rank.
ORDINARY_RANK = 1_000


def _own(node: Any) -> tuple[object, ...]:
    """A chain node's fields but `prev` (declared last in both chain types)."""
    return _astuple(node)[:-1]


def _nodes(node: Any) -> Iterator[Any]:
    while node is not None:
        yield node
        node = node.prev


def _chain_eq(self: Any, other: object) -> bool:
    """Equality of two persistent lists, in a loop (a generated `__eq__` recurses once per
    node and raises RecursionError past a few hundred nodes: a lot's bid history, one bidder's
    raises)."""
    if type(other) is not type(self):
        return NotImplemented  # type: ignore[no-any-return]
    a: Any = self
    b: Any = other
    while a is not None and b is not None:
        if a is b:  # a shared tail
            return True
        if _own(a) != _own(b):
            return False
        a, b = a.prev, b.prev
    return a is None and b is None


def _chain_hash(self: Any) -> int:
    return hash(tuple(_own(node) for node in _nodes(self)))


def _chain_repr(self: Any) -> str:
    own = ", ".join(
        f"{name}={getattr(self, name)!r}" for name in self.__struct_fields__ if name != "prev"
    )
    return f"{type(self).__name__}({own}, earlier={sum(1 for _ in _nodes(self)) - 1})"


class MaxVersion(msgspec.Struct, frozen=True, eq=False):
    """One version of a bidder's standing bid (rules C5: `M_i` with the time it was set).

    `flat` marks a bid of exactly `amount` (a manual bid: "price ≥ F if that bidder leads");
    a proxy maximum is not flat.
    """

    amount: int
    t: int
    seq: int
    flat: bool
    prev: MaxVersion | None = None

    # a persistent list: equality, hash and repr walk it in a loop
    __eq__ = _chain_eq
    __hash__ = _chain_hash
    __repr__ = _chain_repr

    def versions(self) -> Iterator[MaxVersion]:
        return _nodes(self)


class Bidder(msgspec.Struct, frozen=True):
    """A bidder's standing in one lot (rules C2 `ACTIVE_BIDDER(lot, code)`)."""

    bidder: str
    code: str
    deposit: DepositState
    deposit_amount: int = 0
    priority_rank: int | None = None
    agent_for: str | None = None
    barred: bool = False
    max: MaxVersion | None = None

    def key(self, priority_rights: bool) -> tuple[int, int, int, int, int]:
        """Rules C5/C7 ordering key `(−M, −class, rank, t, seq)`; lower wins."""
        assert self.max is not None
        head = self.max
        is_priority = priority_rights and self.priority_rank is not None
        rank = self.priority_rank if is_priority and self.priority_rank else ORDINARY_RANK
        return (-head.amount, -int(is_priority), rank, head.t, head.seq)


class LiveRing(msgspec.Struct, frozen=True):
    """Rules C14 state while the lot is with the clerk."""

    phase: LivePhase
    ask: int
    auto_accept: bool = False
    pending: tuple[int, str, int, int] | None = None  # (seq, bidder, amount, t)
    fair_warning_at: int | None = None
    finalized: bool = False


class AcceptedBid(msgspec.Struct, frozen=True, eq=False):
    """The public bid history as a persistent list, newest first (for undo and voids)."""

    seq: int
    bidder: str
    amount: int
    t: int
    prev: AcceptedBid | None = None

    __eq__ = _chain_eq
    __hash__ = _chain_hash
    __repr__ = _chain_repr


class LotState(msgspec.Struct, frozen=True):
    lot_id: str
    rules: LotRules
    status: LotStatus
    end: int
    seq: int = 0
    price: int | None = None
    leader: str | None = None
    runner_up: str | None = None
    bidders: Mapping[str, Bidder] = msgspec.field(default_factory=dict)
    extensions: int = 0
    halted_at: int | None = None
    remaining: int | None = None
    paused_total: int = 0  # clarification 5: time spent paused or suspended, for the cap
    closed_at: int | None = None
    defaulted_at: int | None = None  # clarification 8: the re-auction window counts from here
    result: Result | None = None
    balance_due_at: int | None = None
    reserve_approach_done: bool = False
    live: LiveRing | None = None
    history: AcceptedBid | None = None

    @classmethod
    def create(cls, lot_id: str, rules: LotRules) -> LotState:
        """A new, scheduled lot. Send `OpenLot` (or `OpenRing`) at `rules.start_at`."""
        return cls(lot_id=lot_id, rules=rules, status=LotStatus.SCHEDULED, end=rules.end_at)

    def evolve(self, **changes: Any) -> LotState:
        """A copy with `changes` applied (the engine never mutates a state)."""
        return _replace(self, **changes)

    @property
    def min_next(self) -> int:
        """The least amount an ordinary bidder may bid next (rules C4)."""
        if self.live is not None:
            return self.live.ask
        return self.rules.increment.min_next(self.rules.start_price, self.price)

    @property
    def leader_code(self) -> str | None:
        if self.leader is None:
            return None
        bidder = self.bidders.get(self.leader)
        return bidder.code if bidder else self.leader

    def next_deadline(self) -> int | None:
        """When the adapter must next call the engine on its own (open, close), if ever."""
        if self.rules.format is Format.LIVE_AUCTIONEER:
            return None  # the clerk opens the ring and hammers; no timer drives a live lot
        if self.status is LotStatus.SCHEDULED:
            return self.rules.start_at
        if self.status is LotStatus.OPEN:
            return self.end
        return None


def with_max(bidder: Bidder, head: MaxVersion | None) -> Bidder:
    """`bidder` with a new maximum history (the hot path's only per-bidder copy)."""
    return _replace(bidder, max=head)


class Emitter:
    """Collects a command's events, numbering each with the lot's next seq."""

    __slots__ = ("seq", "now", "events")

    def __init__(self, state: LotState, now: int) -> None:
        self.seq = state.seq
        self.now = now
        self.events: list[Any] = []

    def emit(self, event_type: type, **fields: Any) -> Any:
        """Number, stamp and collect one event; returns it. The hot path calls
        `EMIT[event_type](emitter, ...)` directly, with the fields in order."""
        return EMIT[event_type](self, **fields)


def reject(
    state: LotState,
    command: object,
    now: int,
    reason: RejectReason,
    detail: str,
    bidder: str | None = None,
) -> tuple[LotState, tuple[Rejected]]:
    """Return the unchanged state and the one `Rejected` event (rules C4)."""
    if bidder is None:
        bidder = getattr(command, "bidder", None)
    return state, (
        _rejected(
            seq=state.seq,
            t=now,
            command=type(command).__name__,
            reason=reason,
            detail=detail,
            bidder=bidder,
            cur=state.price,
            min_next=state.min_next,
            end=state.end,
        ),
    )
