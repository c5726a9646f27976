"""The state machines of a lot and of a deposit, as data (STYLE rule 2; rules C3, C9, C11).

Rule 1: a lot moves only along the edges of `LOT_TRANSITIONS`; anything else is an
`IllegalTransition` naming the state and the event. Rule 2: a deposit moves only along
`DEPOSIT_TRANSITIONS`. The formats consult these tables; they never invent an edge.
"""

from __future__ import annotations

import enum

from .errors import IllegalTransition


class LotStatus(enum.StrEnum):
    SCHEDULED = "SCHEDULED"  # announced; registration open; not yet bidding
    OPEN = "OPEN"  # bidding (live mode: in the ring)
    PAUSED = "PAUSED"  # 暂缓 (rules C11)
    SUSPENDED = "SUSPENDED"  # 中止 (rules C11)
    SOLD = "SOLD"  # closed with a winner (live: hammered)
    FAILED = "FAILED"  # closed without a valid bid / reserve not met (流拍; live: passed)
    CANCELLED = "CANCELLED"  # 撤回 / 撤销
    COMPLETED = "COMPLETED"  # winner paid the balance
    DEFAULTED = "DEFAULTED"  # winner missed the balance deadline; deposit forfeited


class LotEvent(enum.StrEnum):
    OPEN = "open"
    PAUSE = "pause"
    SUSPEND = "suspend"
    RESUME = "resume"
    CANCEL = "cancel"
    SELL = "sell"
    FAIL = "fail"
    REOPEN = "reopen"  # live mode only, before the clerk moves to the next lot
    PAY = "pay"
    DEFAULT = "default"


LOT_TRANSITIONS: dict[tuple[LotStatus, LotEvent], LotStatus] = {
    (LotStatus.SCHEDULED, LotEvent.OPEN): LotStatus.OPEN,
    (LotStatus.SCHEDULED, LotEvent.CANCEL): LotStatus.CANCELLED,
    (LotStatus.OPEN, LotEvent.PAUSE): LotStatus.PAUSED,
    (LotStatus.OPEN, LotEvent.SUSPEND): LotStatus.SUSPENDED,
    (LotStatus.OPEN, LotEvent.CANCEL): LotStatus.CANCELLED,
    (LotStatus.OPEN, LotEvent.SELL): LotStatus.SOLD,
    (LotStatus.OPEN, LotEvent.FAIL): LotStatus.FAILED,
    (LotStatus.PAUSED, LotEvent.RESUME): LotStatus.OPEN,
    (LotStatus.PAUSED, LotEvent.SUSPEND): LotStatus.SUSPENDED,
    (LotStatus.PAUSED, LotEvent.CANCEL): LotStatus.CANCELLED,
    (LotStatus.SUSPENDED, LotEvent.RESUME): LotStatus.OPEN,
    (LotStatus.SUSPENDED, LotEvent.PAUSE): LotStatus.PAUSED,
    (LotStatus.SUSPENDED, LotEvent.CANCEL): LotStatus.CANCELLED,
    (LotStatus.SOLD, LotEvent.REOPEN): LotStatus.OPEN,
    (LotStatus.FAILED, LotEvent.REOPEN): LotStatus.OPEN,
    (LotStatus.SOLD, LotEvent.PAY): LotStatus.COMPLETED,
    (LotStatus.SOLD, LotEvent.DEFAULT): LotStatus.DEFAULTED,
}

#: States in which the lot's result is settled (no more bidding ever).
TERMINAL = frozenset(
    {LotStatus.CANCELLED, LotStatus.COMPLETED, LotStatus.DEFAULTED, LotStatus.FAILED}
)


def lot_transition(state: LotStatus, event: LotEvent) -> LotStatus:
    """Return the next lot status or raise `IllegalTransition` naming state and event."""
    try:
        return LOT_TRANSITIONS[(state, event)]
    except KeyError:
        raise IllegalTransition(state, event.value) from None


def lot_can(state: LotStatus, event: LotEvent) -> bool:
    return (state, event) in LOT_TRANSITIONS


class DepositState(enum.StrEnum):
    """Rules C3: `REQUIRED → PENDING → FROZEN → {APPLIED_TO_PRICE | RELEASED | FORFEITED}`.

    `EXEMPT` is the creditor exemption (Art 17 ¶2): it counts as frozen for bidding.
    """

    REQUIRED = "REQUIRED"
    PENDING = "PENDING"
    FROZEN = "FROZEN"
    EXEMPT = "EXEMPT"
    APPLIED_TO_PRICE = "APPLIED_TO_PRICE"
    RELEASED = "RELEASED"
    FORFEITED = "FORFEITED"


DEPOSIT_TRANSITIONS: dict[DepositState, frozenset[DepositState]] = {
    DepositState.REQUIRED: frozenset({DepositState.PENDING, DepositState.FROZEN}),
    DepositState.PENDING: frozenset({DepositState.FROZEN, DepositState.RELEASED}),
    DepositState.FROZEN: frozenset(
        {DepositState.APPLIED_TO_PRICE, DepositState.RELEASED, DepositState.FORFEITED}
    ),
    DepositState.EXEMPT: frozenset(),
    DepositState.APPLIED_TO_PRICE: frozenset({DepositState.FORFEITED}),
    DepositState.RELEASED: frozenset(),
    DepositState.FORFEITED: frozenset(),
}

#: Deposit states that allow bidding (rules C3: "accepted only if FROZEN").
DEPOSIT_ALLOWS_BIDDING = frozenset({DepositState.FROZEN, DepositState.EXEMPT})


def deposit_transition(state: DepositState, target: DepositState) -> DepositState:
    """Return `target` if the deposit may move there; raise `IllegalTransition` otherwise."""
    if target not in DEPOSIT_TRANSITIONS[state]:
        raise IllegalTransition(state, f"deposit->{target.value}")
    return target
