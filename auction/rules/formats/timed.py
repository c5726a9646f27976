"""Timed ascending auctions: `JUDICIAL_CN` and `ENGLISH_TIMED` (rules C4, C5, C6, C7, C8, C9;
clarifications 2, 3 and 5).

The two presets differ only in configuration (increments, proxy, reserve, retraction, soft
close, priority rights), so one module serves both.
"""

from __future__ import annotations

import msgspec

from .. import commands as c
from ..common import Handler, Outcome, refuse_bidder, seal
from ..config import Retraction, Scope, SoftCloseMode, SoftCloseTrigger
from ..errors import RejectReason
from ..events import (
    EMIT,
    BidAccepted,
    BidType,
    BidVoided,
    EndExtended,
    LotOpened,
    MaxSet,
    PriceChanged,
    ReserveApproached,
)
from ..lot import Bidder, Emitter, LotState, MaxVersion, reject
from ..money import HOUR
from ..proxy import after_raise, price_for, resolve, tie_key
from ..softclose import extended_end
from ..states import DEPOSIT_ALLOWS_BIDDING, LotEvent, LotStatus, lot_transition

# the hot path's events: `_X(emitter, fields after seq and t, in order)`
_BID_ACCEPTED = EMIT[BidAccepted]  # bidder, code, amount, bid_type, on_behalf_of
_MAX_SET = EMIT[MaxSet]  # bidder, amount
_PRICE_CHANGED = EMIT[PriceChanged]  # price, leader, leader_code, min_next
_END_EXTENDED = EMIT[EndExtended]  # end_before, end_after, scope, group
_PROXY_AUTO = BidType.PROXY_AUTO
_OPEN = LotStatus.OPEN
_LIVE_RESET = SoftCloseMode.LIVE_RESET
_replace = msgspec.structs.replace


def open_lot(state: LotState, cmd: c.OpenLot, now: int) -> Outcome:
    if state.status is not LotStatus.SCHEDULED:
        detail = f"cannot open a {state.status.value} lot"
        return reject(state, cmd, now, RejectReason.ILLEGAL_STATE, detail)
    if now < state.rules.start_at:
        return reject(state, cmd, now, RejectReason.NOT_DUE, "the lot starts later")
    out = Emitter(state, now)
    out.emit(LotOpened, end=state.end)
    new = state.evolve(seq=out.seq, status=lot_transition(state.status, LotEvent.OPEN))
    return new, tuple(out.events)


def bid_gate(state: LotState, cmd: c.PlaceBid | c.SetMax, now: int) -> Outcome | None:
    """Rules C4 tests 1 and 2, and the currency: the checks before looking at the amount."""
    if state.status in (LotStatus.PAUSED, LotStatus.SUSPENDED):
        return reject(state, cmd, now, RejectReason.SUSPENDED, "the lot is halted", cmd.bidder)
    if state.status is not LotStatus.OPEN:
        reason = RejectReason.LATE if state.closed_at is not None else RejectReason.NOT_OPEN
        detail = f"the lot is {state.status.value}"
        return reject(state, cmd, now, reason, detail, cmd.bidder)
    if now < state.rules.start_at:
        return reject(state, cmd, now, RejectReason.NOT_OPEN, "before the start", cmd.bidder)
    if now >= state.end:  # half-open [start, end): a bid at exactly `end` is late
        return reject(
            state, cmd, now, RejectReason.LATE, "received at or after the end", cmd.bidder
        )
    return refuse_bidder(state, cmd, now)


def _gated(state: LotState, cmd: c.PlaceBid | c.SetMax, now: int) -> Bidder | Outcome:
    """`bid_gate` for the hot path: the bidder when every test passes (all of them in one
    expression), else the gate's rejection."""
    rules = state.rules
    bidder = state.bidders.get(cmd.bidder)
    if (
        state.status is _OPEN
        and rules.start_at <= now < state.end
        and cmd.currency == rules.currency
        and bidder is not None
        and not bidder.barred
        and bidder.deposit in DEPOSIT_ALLOWS_BIDDING
        and cmd.bidder not in rules.barred
    ):
        return bidder
    gate = bid_gate(state, cmd, now)  # which test failed, and the rejection that names it
    return gate if gate is not None else state.bidders[cmd.bidder]


def place_bid(state: LotState, cmd: c.PlaceBid, now: int) -> Outcome:
    bidder = _gated(state, cmd, now)
    if not isinstance(bidder, Bidder):
        return bidder
    rules = state.rules
    start, amount = rules.start_price, cmd.amount
    if amount < start:
        return reject(state, cmd, now, RejectReason.BELOW_MIN, "below the start price")
    if not rules.increment.on_grid(start, amount):
        return reject(state, cmd, now, RejectReason.OFF_GRID, "not a valid bid amount")
    if cmd.bidder == state.leader:
        return reject(state, cmd, now, RejectReason.SELF_OUTBID, "you are leading", cmd.bidder)
    bid_type = BidType.MANUAL
    if amount < state.min_next:
        if _may_match(state, bidder, amount, now):
            bid_type = BidType.PRIORITY_MATCH  # rules C7.2
        else:
            return reject(state, cmd, now, RejectReason.BELOW_MIN, "below the minimum next bid")
    cur = state.price
    if (
        rules.max_jump_steps is not None
        and cur is not None
        and not cmd.confirm_jump
        and amount > cur + rules.max_jump_steps * rules.increment.inc(cur)
    ):
        detail = f"more than {rules.max_jump_steps} steps above the price: confirm the amount"
        return reject(state, cmd, now, RejectReason.JUMP_NEEDS_CONFIRMATION, detail, cmd.bidder)
    out = Emitter(state, now)
    event = _BID_ACCEPTED(out, cmd.bidder, bidder.code, amount, bid_type, bidder.agent_for)
    version = MaxVersion(amount, now, event.seq, True, bidder.max)
    bidders = dict(state.bidders)
    bidders[cmd.bidder] = _replace(bidder, max=version)
    leader, runner_up = after_raise(bidders, rules, state.leader, state.runner_up, cmd.bidder)
    return _settle(state, out, bidders, leader, runner_up, cmd.bidder, bid_made=True)


def _may_match(state: LotState, bidder: Bidder, amount: int, now: int) -> bool:
    """Rules C7.2: a priority holder may bid `== cur` when their key beats the leader's."""
    if not (state.rules.priority_rights and bidder.priority_rank is not None):
        return False
    if state.price is None or amount != state.price or state.leader is None:
        return False
    probe = msgspec.structs.replace(bidder, max=MaxVersion(amount, now, state.seq + 1, True))
    return tie_key(probe, True) < tie_key(state.bidders[state.leader], True)


def set_max(state: LotState, cmd: c.SetMax, now: int) -> Outcome:
    rules = state.rules
    if not rules.proxy_allowed:
        detail = "proxy bidding is not allowed by this lot's notice"
        return reject(state, cmd, now, RejectReason.PROXY_DISABLED, detail, cmd.bidder)
    bidder = _gated(state, cmd, now)
    if not isinstance(bidder, Bidder):
        return bidder
    start, amount = rules.start_price, cmd.amount
    if amount < start:
        return reject(state, cmd, now, RejectReason.BELOW_MIN, "below the start price")
    if not rules.increment.on_grid(start, amount):
        return reject(state, cmd, now, RejectReason.OFF_GRID, "not a valid bid amount")
    current = bidder.max.amount if bidder.max is not None else None
    lowering = False
    if cmd.bidder == state.leader:
        assert current is not None and state.price is not None
        if amount == current:
            return reject(state, cmd, now, RejectReason.DUPLICATE, "that is already your max")
        if amount < current:
            # rules C5: lower only down to the price, and never where bids are irrevocable
            if rules.retraction is Retraction.NEVER:
                detail = "bids are irrevocable: a maximum cannot be lowered"
                return reject(state, cmd, now, RejectReason.MAX_LOWER_NOT_ALLOWED, detail)
            if amount < state.price:
                detail = "a maximum cannot go below the current price"
                return reject(state, cmd, now, RejectReason.BELOW_MIN, detail, cmd.bidder)
            lowering = True
    elif state.price is not None and amount <= state.price:
        # rules C5 "between current and increment": any max above cur still competes
        return reject(state, cmd, now, RejectReason.BELOW_MIN, "not above the current price")
    out = Emitter(state, now)
    event = _MAX_SET(out, cmd.bidder, amount)
    version = MaxVersion(amount, now, event.seq, False, bidder.max)
    bidders = dict(state.bidders)
    bidders[cmd.bidder] = _replace(bidder, max=version)
    if lowering:
        leader, runner_up = resolve(bidders, rules)
    else:
        leader, runner_up = after_raise(bidders, rules, state.leader, state.runner_up, cmd.bidder)
    return _settle(
        state, out, bidders, leader, runner_up, cmd.bidder, bid_made=True, max_change=True
    )


def _settle(
    state: LotState,
    out: Emitter,
    bidders: dict[str, Bidder],
    leader: str | None,
    runner_up: str | None,
    actor: str | None,
    *,
    bid_made: bool,
    max_change: bool = False,
) -> Outcome:
    """Price, concrete proxy auto-bids (rules C5), soft close (C6) and the new state."""
    rules = state.rules
    price = price_for(bidders, rules, leader, runner_up)
    if bid_made and state.price is not None and price is not None and price < state.price:
        price = state.price  # a bid never lowers the price (the leader's flat bid still binds)
    changed = price != state.price or leader != state.leader
    if changed and bid_made and actor is not None:
        _emit_auto_bids(state, out, bidders, leader, price, actor)
    min_next = rules.increment.min_next(rules.start_price, price)
    if changed:
        code = bidders[leader].code if leader is not None else None
        _PRICE_CHANGED(out, price, leader, code, min_next)
    end, extensions = state.end, state.extensions
    soft = rules.soft_close
    # clarification 3: a max change that moves neither price nor leader is not a bid
    triggered = changed or (
        bid_made and not max_change and soft.trigger is SoftCloseTrigger.ANY_VALID_BID
    )
    if (
        triggered
        and state.status is _OPEN
        # outside the window the end cannot move (`extended_end` would say None)
        and (end - soft.window <= out.now or soft.mode is _LIVE_RESET)
    ):
        # clarification 5: the cap counts from the scheduled end moved by the time paused
        scheduled = rules.end_at + state.paused_total
        new_end = extended_end(soft, end, scheduled, extensions, out.now)
        if new_end is not None:
            group = soft.group if soft.scope is Scope.GROUP else None
            _END_EXTENDED(out, end, new_end, soft.scope.value, group)
            end, extensions = new_end, extensions + 1
    approach_done = state.reserve_approach_done
    if (
        soft.reserve_approach is not None
        and rules.reserve is not None
        and not approach_done
        and price is not None
        and price < rules.reserve <= min_next
    ):
        end = max(end, out.now + soft.reserve_approach)  # rules C6 ON_RESERVE_APPROACH
        out.emit(ReserveApproached, end=end)
        approach_done = True
    new = _replace(
        state,
        seq=out.seq,
        bidders=bidders,
        leader=leader,
        runner_up=runner_up,
        price=price,
        end=end,
        extensions=extensions,
        reserve_approach_done=approach_done,
    )
    return new, tuple(out.events)


def _emit_auto_bids(
    state: LotState,
    out: Emitter,
    bidders: dict[str, Bidder],
    leader: str | None,
    price: int | None,
    actor: str,
) -> None:
    """Rules C5 event generation: the competitor's bid at its max, then the leader's auto-bid."""
    if leader is None or price is None:
        return
    mover = bidders[actor]
    head = mover.max
    assert head is not None
    old = state.price
    auto = _PROXY_AUTO
    # each auto-bid: `_BID_ACCEPTED(out, bidder, code, amount, PROXY_AUTO, agent_for)`
    if leader != actor:
        if not head.flat and (old is None or head.amount > old):
            _BID_ACCEPTED(out, mover.bidder, mover.code, head.amount, auto, mover.agent_for)
        top = bidders[leader]
        _BID_ACCEPTED(out, top.bidder, top.code, price, auto, top.agent_for)
        return
    previous = state.leader
    if previous is not None and previous != actor:
        rival = bidders[previous]
        rival_max = rival.max
        if rival_max is not None and not rival_max.flat and (old is None or rival_max.amount > old):
            _BID_ACCEPTED(out, rival.bidder, rival.code, rival_max.amount, auto, rival.agent_for)
    if not head.flat:
        _BID_ACCEPTED(out, mover.bidder, mover.code, price, auto, mover.agent_for)


def _without(head: MaxVersion | None, seq: int, *, all_versions: bool) -> MaxVersion | None:
    """The bidder's history with the version `seq` (or every version) removed."""
    if all_versions or head is None:
        return None
    kept = [v for v in head.versions() if v.seq != seq]
    rebuilt: MaxVersion | None = None
    for version in reversed(kept):
        rebuilt = msgspec.structs.replace(version, prev=rebuilt)
    return rebuilt


def _owner_of(state: LotState, seq: int) -> Bidder | None:
    for bidder in state.bidders.values():
        if bidder.max is not None and any(v.seq == seq for v in bidder.max.versions()):
            return bidder
    return None


def _remove_bid(
    state: LotState,
    cmd: object,
    now: int,
    owner: Bidder,
    seq: int,
    reason: str,
    by: str,
    all_versions: bool = False,
) -> Outcome:
    out = Emitter(state, now)
    out.emit(BidVoided, bid_seq=seq, bidder=owner.bidder, reason=reason, by=by)
    bidders = dict(state.bidders)
    bidders[owner.bidder] = msgspec.structs.replace(
        owner, max=_without(owner.max, seq, all_versions=all_versions)
    )
    leader, runner_up = resolve(bidders, state.rules)
    return _settle(state, out, bidders, leader, runner_up, None, bid_made=False)


def retract_bid(state: LotState, cmd: c.RetractBid, now: int) -> Outcome:
    """Rules C8, eBay: only for an entry error or a changed description; in the last 12 h only
    a bid made in the last hour, and only that bid."""
    if state.rules.retraction is not Retraction.EBAY:
        detail = "bids on this lot are irrevocable"
        return reject(state, cmd, now, RejectReason.RETRACTION_NOT_ALLOWED, detail, cmd.bidder)
    if state.status is not LotStatus.OPEN or now >= state.end:
        return reject(state, cmd, now, RejectReason.LATE, "the lot is not open", cmd.bidder)
    owner = _owner_of(state, cmd.bid_seq)
    if owner is None or owner.bidder != cmd.bidder:
        return reject(state, cmd, now, RejectReason.UNKNOWN_BID, "no such bid of yours")
    assert owner.max is not None
    version = next(v for v in owner.max.versions() if v.seq == cmd.bid_seq)
    late = state.end - now <= 12 * HOUR
    if late and (now - version.t > HOUR or owner.max.seq != cmd.bid_seq):
        detail = "in the last 12 hours only your latest bid, made within the hour, is retractable"
        return reject(state, cmd, now, RejectReason.RETRACTION_NOT_ALLOWED, detail, cmd.bidder)
    return _remove_bid(
        state,
        cmd,
        now,
        owner,
        cmd.bid_seq,
        f"retracted: {cmd.reason.value}",
        "BIDDER",
        all_versions=not late,
    )


def void_bid(state: LotState, cmd: c.VoidBid, now: int) -> Outcome:
    """Rules C8: an authority void is an event with a reason and signer, never a delete."""
    if state.status not in (LotStatus.OPEN, LotStatus.PAUSED, LotStatus.SUSPENDED):
        detail = f"cannot void a bid on a {state.status.value} lot"
        return reject(state, cmd, now, RejectReason.ILLEGAL_STATE, detail)
    owner = _owner_of(state, cmd.bid_seq)
    if owner is None:
        return reject(state, cmd, now, RejectReason.UNKNOWN_BID, "no standing bid with that seq")
    return _remove_bid(state, cmd, now, owner, cmd.bid_seq, cmd.reason, cmd.by.value)


def align_end(state: LotState, cmd: c.AlignEnd, now: int) -> Outcome:
    """Rules C6 scope GROUP/SALE: adopt another lot's extended end."""
    if state.status is not LotStatus.OPEN:
        return reject(state, cmd, now, RejectReason.ILLEGAL_STATE, "the lot is not open")
    if now >= state.end:
        return reject(state, cmd, now, RejectReason.LATE, "this lot has already ended")
    soft = state.rules.soft_close
    new_end = cmd.end
    if soft.cap_total is not None:
        new_end = min(new_end, state.rules.end_at + state.paused_total + soft.cap_total)
    if new_end <= state.end:
        return reject(state, cmd, now, RejectReason.DUPLICATE, "the end is already that late")
    out = Emitter(state, now)
    out.emit(
        EndExtended,
        end_before=state.end,
        end_after=new_end,
        scope=soft.scope.value,
        group=soft.group,
    )
    return state.evolve(seq=out.seq, end=new_end, extensions=state.extensions + 1), tuple(
        out.events
    )


def close_lot(state: LotState, cmd: c.CloseLot, now: int) -> Outcome:
    """Rules C6 closing procedure and C9: seal, compute the result, settle deposits."""
    if state.status is not LotStatus.OPEN:
        detail = f"cannot close a {state.status.value} lot"
        return reject(state, cmd, now, RejectReason.ILLEGAL_STATE, detail)
    if now < state.end:
        return reject(state, cmd, now, RejectReason.NOT_DUE, "the lot has not reached its end")
    return seal(state, now, reason="end reached")


HANDLERS: dict[type, Handler] = {
    c.OpenLot: open_lot,
    c.PlaceBid: place_bid,
    c.SetMax: set_max,
    c.RetractBid: retract_bid,
    c.VoidBid: void_bid,
    c.AlignEnd: align_end,
    c.CloseLot: close_lot,
}
