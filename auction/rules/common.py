"""Commands every format handles the same way: registration and eligibility (rules C2),
deposits (C3), pause / suspend / resume / cancel (C11), payment and default (C9).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec

from . import commands as c
from .config import SoftCloseMode
from .errors import RejectReason
from .events import (
    BidderBarred,
    BidderRegistered,
    DefaultDeclared,
    DepositChanged,
    LotCancelled,
    LotClosed,
    LotHalted,
    LotResumed,
    PaymentConfirmed,
    Result,
)
from .lot import Bidder, Emitter, LotState, reject
from .states import (
    DEPOSIT_ALLOWS_BIDDING,
    DEPOSIT_TRANSITIONS,
    DepositState,
    LotEvent,
    LotStatus,
    lot_can,
    lot_transition,
)

Outcome = tuple[LotState, tuple[Any, ...]]
Handler = Callable[[LotState, Any, int], Outcome]

REGISTRATION_OPEN = frozenset(
    {LotStatus.SCHEDULED, LotStatus.OPEN, LotStatus.PAUSED, LotStatus.SUSPENDED}
)


def bidder_may_bid(state: LotState, bidder_id: str) -> tuple[RejectReason, str] | None:
    """Rules C4 test 2: registered, not barred, deposit frozen. None when the bidder may bid."""
    bidder = state.bidders.get(bidder_id)
    if bidder is None:
        return RejectReason.NOT_REGISTERED, "not registered for this lot"
    if bidder.barred or bidder_id in state.rules.barred:
        return RejectReason.BARRED, "barred from this lot"
    if bidder.deposit not in DEPOSIT_ALLOWS_BIDDING:
        return RejectReason.NO_DEPOSIT, f"deposit is {bidder.deposit.value}, not FROZEN"
    return None


def refuse_bidder(state: LotState, cmd: c.PlaceBid | c.SetMax, now: int) -> Outcome | None:
    """The lot's currency and rules C4 test 2 for a bid or maximum: the rejection, or None."""
    if cmd.currency != state.rules.currency:
        detail = f"this lot is in {state.rules.currency}"
        return reject(state, cmd, now, RejectReason.WRONG_CURRENCY, detail, cmd.bidder)
    refusal = bidder_may_bid(state, cmd.bidder)
    if refusal is not None:
        return reject(state, cmd, now, refusal[0], refusal[1], cmd.bidder)
    return None


def register(state: LotState, cmd: c.RegisterBidder, now: int) -> Outcome:
    rules = state.rules
    if state.status not in REGISTRATION_OPEN:
        return reject(state, cmd, now, RejectReason.ILLEGAL_STATE, "registration is closed")
    if cmd.bidder in state.bidders:
        return reject(state, cmd, now, RejectReason.DUPLICATE, "already registered", cmd.bidder)
    if cmd.bidder in rules.barred:
        return reject(state, cmd, now, RejectReason.BARRED, "barred from this lot", cmd.bidder)
    if not cmd.kyc_verified:
        return reject(
            state, cmd, now, RejectReason.NOT_ELIGIBLE, "identity not verified", cmd.bidder
        )
    if not cmd.full_capacity:
        return reject(
            state, cmd, now, RejectReason.NOT_ELIGIBLE, "no full civil capacity", cmd.bidder
        )
    missing = rules.required_qualifications - cmd.qualifications
    if missing:
        detail = "missing qualifications: " + ", ".join(sorted(missing))
        return reject(state, cmd, now, RejectReason.NOT_ELIGIBLE, detail, cmd.bidder)
    if cmd.agent_for is not None:
        # rules C2.3: principal and agent verified, power of attorney approved before opening
        if not (cmd.principal_verified and cmd.poa_approved):
            detail = "agent needs a verified principal and an approved power of attorney"
            return reject(state, cmd, now, RejectReason.NOT_ELIGIBLE, detail, cmd.bidder)
        if state.status is not LotStatus.SCHEDULED:
            detail = "agents must be approved before bidding opens"
            return reject(state, cmd, now, RejectReason.NOT_ELIGIBLE, detail, cmd.bidder)
    if cmd.priority_rank is not None:
        # rules C7 setup: holders are confirmed before opening and bid under P{rank}- codes
        if not rules.priority_rights:
            detail = "this lot has no priority purchase rights"
            return reject(state, cmd, now, RejectReason.NOT_PERMITTED, detail, cmd.bidder)
        if state.status is not LotStatus.SCHEDULED:
            detail = "priority holders must be confirmed before opening"
            return reject(state, cmd, now, RejectReason.NOT_PERMITTED, detail, cmd.bidder)
        if not cmd.code.startswith(f"P{cmd.priority_rank}-"):
            detail = f"priority holder codes start with P{cmd.priority_rank}-"
            return reject(state, cmd, now, RejectReason.NOT_PERMITTED, detail, cmd.bidder)
    elif cmd.code[:1] == "P" and cmd.code[1:2].isdigit():
        detail = "P<rank>- codes are reserved for priority holders"
        return reject(state, cmd, now, RejectReason.NOT_PERMITTED, detail, cmd.bidder)
    if any(b.code == cmd.code for b in state.bidders.values()):
        return reject(state, cmd, now, RejectReason.DUPLICATE_CODE, "code in use", cmd.bidder)
    deposit = (
        DepositState.REQUIRED
        if rules.deposit_required and not cmd.deposit_exempt
        else DepositState.EXEMPT
    )
    out = Emitter(state, now)
    out.emit(
        BidderRegistered,
        bidder=cmd.bidder,
        code=cmd.code,
        priority_rank=cmd.priority_rank,
        agent_for=cmd.agent_for,
        deposit=deposit,
    )
    bidder = Bidder(
        bidder=cmd.bidder,
        code=cmd.code,
        deposit=deposit,
        deposit_amount=rules.deposit if deposit is DepositState.REQUIRED else 0,
        priority_rank=cmd.priority_rank,
        agent_for=cmd.agent_for,
    )
    bidders = dict(state.bidders)
    bidders[cmd.bidder] = bidder
    return state.evolve(seq=out.seq, bidders=bidders), tuple(out.events)


def bar(state: LotState, cmd: c.BarBidder, now: int) -> Outcome:
    bidder = state.bidders.get(cmd.bidder)
    if bidder is None:
        return reject(state, cmd, now, RejectReason.NOT_REGISTERED, "not registered", cmd.bidder)
    if bidder.barred:
        return reject(state, cmd, now, RejectReason.DUPLICATE, "already barred", cmd.bidder)
    if state.leader == cmd.bidder and state.status is LotStatus.OPEN:
        detail = "the leading bidder can only be removed by voiding their bids first"
        return reject(state, cmd, now, RejectReason.ILLEGAL_STATE, detail, cmd.bidder)
    out = Emitter(state, now)
    out.emit(BidderBarred, bidder=cmd.bidder, reason=cmd.reason, basis=cmd.basis)
    bidders = dict(state.bidders)
    bidders[cmd.bidder] = replace_bidder(bidder, barred=True)
    return state.evolve(seq=out.seq, bidders=bidders), tuple(out.events)


def replace_bidder(bidder: Bidder, **changes: Any) -> Bidder:
    return msgspec.structs.replace(bidder, **changes)


def _move_deposit(
    state: LotState,
    cmd: object,
    now: int,
    bidder_id: str,
    target: DepositState,
    reference: str,
    amount: int | None = None,
) -> Outcome:
    bidder = state.bidders.get(bidder_id)
    if bidder is None:
        return reject(state, cmd, now, RejectReason.NOT_REGISTERED, "not registered", bidder_id)
    if bidder.deposit is target:
        return reject(state, cmd, now, RejectReason.DUPLICATE, f"deposit already {target}")
    if target not in DEPOSIT_TRANSITIONS[bidder.deposit]:
        detail = f"deposit cannot move from {bidder.deposit.value} to {target.value}"
        return reject(state, cmd, now, RejectReason.ILLEGAL_STATE, detail, bidder_id)
    if amount is not None and amount < bidder.deposit_amount:
        detail = f"frozen {amount} is less than the required deposit {bidder.deposit_amount}"
        return reject(state, cmd, now, RejectReason.NO_DEPOSIT, detail, bidder_id)
    out = Emitter(state, now)
    deadline = now + state.rules.release_within if target is DepositState.RELEASED else None
    out.emit(
        DepositChanged,
        bidder=bidder_id,
        state=target,
        amount=amount if amount is not None else bidder.deposit_amount,
        reference=reference,
        deadline=deadline,
    )
    bidders = dict(state.bidders)
    bidders[bidder_id] = replace_bidder(
        bidder, deposit=target, deposit_amount=amount or bidder.deposit_amount
    )
    return state.evolve(seq=out.seq, bidders=bidders), tuple(out.events)


def deposit_pending(state: LotState, cmd: c.DepositPending, now: int) -> Outcome:
    return _move_deposit(state, cmd, now, cmd.bidder, DepositState.PENDING, cmd.reference)


def deposit_frozen(state: LotState, cmd: c.DepositFrozen, now: int) -> Outcome:
    if state.status not in REGISTRATION_OPEN:
        return reject(state, cmd, now, RejectReason.ILLEGAL_STATE, "the lot has closed")
    return _move_deposit(
        state, cmd, now, cmd.bidder, DepositState.FROZEN, cmd.reference, cmd.amount
    )


def release_deposit(state: LotState, cmd: c.ReleaseDeposit, now: int) -> Outcome:
    bidder = state.bidders.get(cmd.bidder)
    if bidder is not None and bidder.max is not None and state.status is not LotStatus.SCHEDULED:
        # a bidder who has bid stays bound until the close (rules C3: released at close)
        detail = "a bidder who has bid keeps the deposit frozen until the close"
        return reject(state, cmd, now, RejectReason.ILLEGAL_STATE, detail, cmd.bidder)
    return _move_deposit(state, cmd, now, cmd.bidder, DepositState.RELEASED, cmd.reason)


def settle_deposits(out: Emitter, state: LotState, winner: str | None) -> dict[str, Bidder]:
    """Rules C3 at close or cancel: winner → APPLIED_TO_PRICE, everyone else → RELEASED."""
    bidders = dict(state.bidders)
    deadline = out.now + state.rules.release_within
    for bidder_id in sorted(bidders):
        bidder = bidders[bidder_id]
        if bidder.deposit is DepositState.FROZEN:
            target = DepositState.APPLIED_TO_PRICE if bidder_id == winner else DepositState.RELEASED
        elif bidder.deposit is DepositState.PENDING:
            target = DepositState.RELEASED
        else:
            continue
        out.emit(
            DepositChanged,
            bidder=bidder_id,
            state=target,
            amount=bidder.deposit_amount,
            reference="close" if state.status is not LotStatus.CANCELLED else "cancel",
            deadline=deadline,
        )
        bidders[bidder_id] = replace_bidder(bidder, deposit=target)
    return bidders


def halt(state: LotState, cmd: c.Pause | c.Suspend, now: int) -> Outcome:
    event = LotEvent.PAUSE if isinstance(cmd, c.Pause) else LotEvent.SUSPEND
    if not lot_can(state.status, event):
        detail = f"cannot {event.value} a {state.status.value} lot"
        return reject(state, cmd, now, RejectReason.ILLEGAL_STATE, detail)
    status = lot_transition(state.status, event)
    remaining = state.remaining
    halted_at = state.halted_at
    if state.status is LotStatus.OPEN:
        remaining = max(0, state.end - now) if state.live is None else None
        halted_at = now
    out = Emitter(state, now)
    out.emit(
        LotHalted,
        status=status,
        reason=cmd.reason,
        by=cmd.by.value,
        basis=cmd.basis,
        remaining=remaining,
        notify_court=cmd.by is c.Authority.PLATFORM,  # rules C11: Art 28 ¶2
    )
    new = state.evolve(seq=out.seq, status=status, remaining=remaining, halted_at=halted_at)
    return new, tuple(out.events)


def resume(state: LotState, cmd: c.Resume, now: int) -> Outcome:
    if not lot_can(state.status, LotEvent.RESUME):
        detail = f"cannot resume a {state.status.value} lot"
        return reject(state, cmd, now, RejectReason.ILLEGAL_STATE, detail)
    rules = state.rules
    if (
        rules.resume_within is not None
        and state.halted_at is not None
        and now - state.halted_at > rules.resume_within
    ):
        detail = "the resumption window has passed; cancel or relist the lot"
        return reject(state, cmd, now, RejectReason.RESUME_EXPIRED, detail)
    end = state.end
    if state.live is None and state.remaining is not None:
        # rules C11: end := t_resume + max(remaining, W); a hard close has W = 0 (clar. 6)
        window = 0 if rules.soft_close.mode is SoftCloseMode.OFF else rules.soft_close.window
        end = now + max(state.remaining, window)
    paused_total = state.paused_total
    if state.halted_at is not None:
        paused_total += now - state.halted_at  # clarification 5: the cap moves with pauses
    out = Emitter(state, now)
    out.emit(LotResumed, end=end, reason=cmd.reason, by=cmd.by.value)
    new = state.evolve(
        seq=out.seq,
        status=lot_transition(state.status, LotEvent.RESUME),
        end=end,
        remaining=None,
        halted_at=None,
        paused_total=paused_total,
    )
    return new, tuple(out.events)


def cancel(state: LotState, cmd: c.Cancel, now: int) -> Outcome:
    if not lot_can(state.status, LotEvent.CANCEL):
        detail = f"cannot cancel a {state.status.value} lot"
        return reject(state, cmd, now, RejectReason.ILLEGAL_STATE, detail)
    out = Emitter(state, now)
    out.emit(LotCancelled, reason=cmd.reason, by=cmd.by.value, basis=cmd.basis)
    cancelled = state.evolve(status=lot_transition(state.status, LotEvent.CANCEL))
    bidders = settle_deposits(out, cancelled, winner=None)
    return cancelled.evolve(seq=out.seq, bidders=bidders, closed_at=now), tuple(out.events)


def confirm_payment(state: LotState, cmd: c.ConfirmPayment, now: int) -> Outcome:
    if not lot_can(state.status, LotEvent.PAY):
        detail = f"no balance is due on a {state.status.value} lot"
        return reject(state, cmd, now, RejectReason.ILLEGAL_STATE, detail)
    out = Emitter(state, now)
    out.emit(PaymentConfirmed, reference=cmd.reference)
    new = state.evolve(seq=out.seq, status=lot_transition(state.status, LotEvent.PAY))
    return new, tuple(out.events)


def declare_default(state: LotState, cmd: c.DeclareDefault, now: int) -> Outcome:
    if not lot_can(state.status, LotEvent.DEFAULT) or state.leader is None:
        detail = f"no winner can default on a {state.status.value} lot"
        return reject(state, cmd, now, RejectReason.ILLEGAL_STATE, detail)
    if state.balance_due_at is not None and now < state.balance_due_at:
        detail = "the balance deadline has not passed"
        return reject(state, cmd, now, RejectReason.BALANCE_NOT_DUE, detail)
    winner = state.bidders[state.leader]
    out = Emitter(state, now)
    out.emit(DefaultDeclared, bidder=winner.bidder, reason=cmd.reason)
    bidders = dict(state.bidders)
    deposit = winner.deposit
    if deposit is DepositState.APPLIED_TO_PRICE:
        out.emit(
            DepositChanged,
            bidder=winner.bidder,
            state=DepositState.FORFEITED,
            amount=winner.deposit_amount,
            reference="default",
            deadline=None,
        )
        deposit = DepositState.FORFEITED
    out.emit(BidderBarred, bidder=winner.bidder, reason="defaulted", basis="SPC Art 24")
    bidders[winner.bidder] = replace_bidder(winner, deposit=deposit, barred=True)
    new = state.evolve(
        seq=out.seq,
        bidders=bidders,
        status=lot_transition(state.status, LotEvent.DEFAULT),
        defaulted_at=now,
    )
    return new, tuple(out.events)


def seal(
    state: LotState, now: int, reason: str, *, force_fail: bool = False, settle: bool = True
) -> Outcome:
    """Close the lot now: SOLD to the leader if there is one and the reserve is met.

    `force_fail` passes the lot (live mode); `settle=False` leaves the deposits for later
    (live mode settles when the clerk moves on, so that a hammer can still be reopened).
    """
    rules = state.rules
    out = Emitter(state, now)
    sold = (
        not force_fail
        and state.leader is not None
        and state.price is not None
        and (rules.reserve is None or state.price >= rules.reserve)
    )
    winner = state.leader if sold else None
    if force_fail:
        pass
    elif state.leader is not None and not sold:
        reason = "reserve not met"
    elif state.leader is None:
        reason = "no valid bid"
    due = now + rules.balance_due if sold else None
    out.emit(
        LotClosed,
        result=Result.SOLD if sold else Result.FAILED,
        price=state.price if sold else None,
        winner=winner,
        winner_code=state.leader_code if sold else None,
        end_final=state.end,
        reason=reason,
        balance_due_at=due,
    )
    status = lot_transition(state.status, LotEvent.SELL if sold else LotEvent.FAIL)
    closing = state.evolve(status=status)
    bidders = settle_deposits(out, closing, winner) if settle else dict(state.bidders)
    new = closing.evolve(
        seq=out.seq,
        bidders=bidders,
        closed_at=now,
        result=Result.SOLD if sold else Result.FAILED,
        balance_due_at=due,
    )
    return new, tuple(out.events)


HANDLERS: dict[type, Handler] = {
    c.RegisterBidder: register,
    c.BarBidder: bar,
    c.DepositPending: deposit_pending,
    c.DepositFrozen: deposit_frozen,
    c.ReleaseDeposit: release_deposit,
    c.Pause: halt,
    c.Suspend: halt,
    c.Resume: resume,
    c.Cancel: cancel,
    c.ConfirmPayment: confirm_payment,
    c.DeclareDefault: declare_default,
}
