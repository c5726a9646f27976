"""A lot's state: a frozen value that the engine replaces, never mutates (STYLE rule 3).

The per-bidder maximum history is a persistent linked list (`MaxVersion.prev`) so that a new
bid costs O(1) and an authority void or retraction can still rebuild the history.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from .config import Format, LotRules
from .errors import RejectReason
from .events import LivePhase, Rejected, Result
from .states import DepositState, LotStatus

#: Rank used in ordering keys for ordinary (non-priority) bidders: after every priority rank.
ORDINARY_RANK = 1_000


_OWN_FIELDS: dict[type, tuple[str, ...]] = {}


def _own_fields(cls: type) -> tuple[str, ...]:
    """A `_Chain` dataclass's field names but `prev` (found once per class)."""
    names = _OWN_FIELDS.get(cls)
    if names is None:
        names = tuple(f.name for f in dataclasses.fields(cls) if f.name != "prev")
        _OWN_FIELDS[cls] = names
    return names


class _Chain:
    """A node of one of the engine's persistent lists (a frozen dataclass whose `prev` is the
    next older node): equality, hash and repr walk the list in a loop. The dataclass-generated
    ones recurse once per node, and raise RecursionError past a few hundred nodes (a lot's bid
    history, one bidder's raises), so the subclasses are declared with `eq=False, repr=False`.
    """

    __slots__ = ()
    prev: Any

    def _own(self) -> tuple[object, ...]:
        return tuple(getattr(self, name) for name in _own_fields(type(self)))

    def _nodes(self) -> Iterator[Any]:
        node: Any = self
        while node is not None:
            yield node
            node = node.prev

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        a: Any = self
        b: Any = other
        while a is not None and b is not None:
            if a is b:  # a shared tail
                return True
            if a._own() != b._own():
                return False
            a, b = a.prev, b.prev
        return a is None and b is None

    def __hash__(self) -> int:
        return hash(tuple(node._own() for node in self._nodes()))

    def __repr__(self) -> str:
        own = ", ".join(f"{name}={getattr(self, name)!r}" for name in _own_fields(type(self)))
        return f"{type(self).__name__}({own}, earlier={sum(1 for _ in self._nodes()) - 1})"


@dataclass(frozen=True, slots=True, eq=False, repr=False)
class MaxVersion(_Chain):
    """One version of a bidder's standing bid (rules C5: `M_i` with the time it was set).

    `flat` marks a bid of exactly `amount` (a manual bid: "price ≥ F if that bidder leads");
    a proxy maximum is not flat.
    """

    amount: int
    t: int
    seq: int
    flat: bool
    prev: MaxVersion | None = None

    def versions(self) -> Iterator[MaxVersion]:
        return self._nodes()


@dataclass(frozen=True, slots=True)
class Bidder:
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


@dataclass(frozen=True, slots=True)
class LiveRing:
    """Rules C14 state while the lot is with the clerk."""

    phase: LivePhase
    ask: int
    auto_accept: bool = False
    pending: tuple[int, str, int, int] | None = None  # (seq, bidder, amount, t)
    fair_warning_at: int | None = None
    finalized: bool = False


@dataclass(frozen=True, slots=True, eq=False, repr=False)
class AcceptedBid(_Chain):
    """The public bid history as a persistent list, newest first (for undo and voids)."""

    seq: int
    bidder: str
    amount: int
    t: int
    prev: AcceptedBid | None = None


@dataclass(frozen=True, slots=True)
class LotState:
    lot_id: str
    rules: LotRules
    status: LotStatus
    end: int
    seq: int = 0
    price: int | None = None
    leader: str | None = None
    runner_up: str | None = None
    bidders: Mapping[str, Bidder] = dataclasses.field(default_factory=dict)
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
        return _evolve_lot(self, changes)  # type: ignore[no-any-return]

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


def _compile_copier(cls: type) -> Any:
    """A fast `copy with changes` for a frozen slots dataclass.

    `dataclasses.replace` re-inspects the fields and re-runs `__init__` on every call; it was
    the largest cost on the engine's hot path. This sets each slot once, from `changes` or
    from the original, and refuses unknown names like `replace` does.
    """
    names = [f.name for f in dataclasses.fields(cls)]
    lines = ["def copier(old, changes):", "    new = new_object(cls)", "    get = changes.pop"]
    for name in names:
        lines.append(f"    set_slot(new, {name!r}, get({name!r}, old.{name}))")
    lines += [
        "    if changes:",
        "        raise TypeError(f'unknown fields: {sorted(changes)}')",
        "    return new",
    ]
    scope: dict[str, Any] = {
        "new_object": object.__new__,
        "set_slot": object.__setattr__,
        "cls": cls,
    }
    exec("\n".join(lines), scope)  # noqa: S102 - generated from the class's own field names
    return scope["copier"]


_evolve_lot = _compile_copier(LotState)
_evolve_bidder = _compile_copier(Bidder)


def with_max(bidder: Bidder, head: MaxVersion | None) -> Bidder:
    """`bidder` with a new maximum history (the hot path's only per-bidder copy)."""
    return _evolve_bidder(bidder, {"max": head})  # type: ignore[no-any-return]


class Emitter:
    """Collects a command's events, numbering each with the lot's next seq."""

    __slots__ = ("seq", "now", "events")

    def __init__(self, state: LotState, now: int) -> None:
        self.seq = state.seq
        self.now = now
        self.events: list[Any] = []

    def emit(self, event_type: type, **fields: Any) -> Any:
        self.seq += 1
        event = event_type(seq=self.seq, t=self.now, **fields)
        self.events.append(event)
        return event


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
        Rejected(
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
