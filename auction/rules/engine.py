"""The engine: `apply(state, command, now) -> (state, events)` (STYLE rules 1 and 4).

Pure and deterministic: no I/O, no clock, no randomness. `now` is the server ingress time of the
command in UTC microseconds. A refused command returns the *same* state object and a single
`Rejected` event. Each format is one module with a handler table; adding a format is adding a
module and one line to `FORMATS`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from . import common
from .commands import COMMAND_TYPES
from .config import Format
from .errors import CommandError, RejectReason
from .events import Rejected
from .formats import fixed_price, live, timed
from .lot import LotState, reject

FORMATS: Mapping[Format, Mapping[type, common.Handler]] = {
    Format.JUDICIAL_CN: timed.HANDLERS,
    Format.ENGLISH_TIMED: timed.HANDLERS,
    Format.LIVE_AUCTIONEER: live.HANDLERS,
    Format.FIXED_PRICE_SALE: fixed_price.HANDLERS,
}

#: Per format, every command type it handles, the common ones first (one lookup a command).
_TABLES: dict[Format, dict[type, common.Handler]] = {
    fmt: {**handlers, **common.HANDLERS} for fmt, handlers in FORMATS.items()
}
_COMMAND_TYPES = frozenset(COMMAND_TYPES)


def apply(state: LotState, command: Any, now: int) -> tuple[LotState, tuple[Any, ...]]:
    """Apply one command at server time `now`.

    The caller must persist the command with `now` before acting on the result, publish the
    events, and schedule `state.next_deadline()` (open and close are commands too).
    """
    kind = type(command)
    if kind not in _COMMAND_TYPES:
        raise CommandError(RejectReason.NOT_PERMITTED, f"not a command: {kind.__name__}")
    if type(now) is not int and (isinstance(now, bool) or not isinstance(now, int)):
        raise CommandError(RejectReason.NOT_PERMITTED, "now must be integer microseconds")
    handler = _TABLES[state.rules.format].get(kind)
    if handler is None:
        detail = f"{type(command).__name__} does not apply to {state.rules.format.value} lots"
        return reject(state, command, now, RejectReason.NOT_PERMITTED, detail)
    return handler(state, command, now)


def replay(state: LotState, history: Iterable[tuple[int, Any]]) -> LotState:
    """Fold `(now, command)` pairs through the engine: how a restart, a notary and an auditor
    rebuild a lot from its stored history."""
    for after, _ in replay_steps(state, history):
        state = after
    return state


def replay_steps(
    state: LotState, history: Iterable[tuple[int, Any]]
) -> Iterator[tuple[LotState, tuple[Any, ...]]]:
    """`replay`, one command at a time: yields the state after each `(now, command)` pair with
    the events it gave, for a caller that checks them against recorded ones (a restart
    compares them with the stored events). Raises what `apply` raises."""
    for now, command in history:
        state, events = apply(state, command, now)
        yield state, events


def apply_to(
    lots: Mapping[str, LotState], lot_id: str, command: Any, now: int
) -> tuple[LotState | None, tuple[Any, ...]]:
    """Route a command to a lot by id; an unknown lot is a typed rejection (`UNKNOWN_LOT`)."""
    state = lots.get(lot_id)
    if state is None:
        return None, (
            Rejected(
                seq=0,
                t=now,
                command=type(command).__name__,
                reason=RejectReason.UNKNOWN_LOT,
                detail=f"no lot {lot_id!r}",
                bidder=getattr(command, "bidder", None),
                cur=None,
                min_next=0,
                end=0,
            ),
        )
    return apply(state, command, now)
