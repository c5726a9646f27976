"""`LIVE_AUCTIONEER`: a clerk-driven ring with online, floor, phone and absentee bids (rules C14).

`PENDING → IN_RING(ask) → {BID_ACCEPTED}* → FAIR_WARNING → {SOLD | PASSED} → NEXT`. The lot
status is `OPEN` while in the ring; `LotState.live.phase` says where in the ring it is.
Floor bidders are not registered online bidders: they lead as `floor:<paddle>`.
"""

from __future__ import annotations

import msgspec

from .. import commands as c
from ..common import Handler, Outcome, refuse_bidder, seal, settle_deposits
from ..errors import RejectReason
from ..events import (
    AskChanged,
    BidAccepted,
    BidDeclined,
    BidPending,
    BidType,
    BidVoided,
    FairWarningGiven,
    LivePhase,
    LotFinalized,
    LotOpened,
    LotReopened,
    MaxSet,
    PriceChanged,
)
from ..lot import AcceptedBid, Bidder, Emitter, LiveRing, LotState, MaxVersion, reject
from ..states import DEPOSIT_ALLOWS_BIDDING, LotEvent, LotStatus, lot_transition


def _in_ring(state: LotState, cmd: object, now: int, bidder: str | None = None) -> Outcome | None:
    if state.status in (LotStatus.PAUSED, LotStatus.SUSPENDED):
        return reject(state, cmd, now, RejectReason.SUSPENDED, "the sale is halted", bidder)
    if state.status is not LotStatus.OPEN or state.live is None:
        return reject(state, cmd, now, RejectReason.NOT_OPEN, "the lot is not in the ring", bidder)
    return None


def open_ring(state: LotState, cmd: c.OpenRing, now: int) -> Outcome:
    if state.status is not LotStatus.SCHEDULED:
        detail = f"cannot bring a {state.status.value} lot into the ring"
        return reject(state, cmd, now, RejectReason.ILLEGAL_STATE, detail)
    if cmd.ask < state.rules.start_price:
        return reject(state, cmd, now, RejectReason.BELOW_MIN, "the ask is below the start price")
    out = Emitter(state, now)
    out.emit(LotOpened, end=state.end)
    out.emit(AskChanged, ask=cmd.ask, phase=LivePhase.IN_RING)
    ring = LiveRing(phase=LivePhase.IN_RING, ask=cmd.ask)
    opened = state.evolve(status=lot_transition(state.status, LotEvent.OPEN), live=ring)
    return _after_bid(opened, out, dict(state.bidders), run_absentees=True)


def set_ask(state: LotState, cmd: c.SetAsk, now: int) -> Outcome:
    halted = _in_ring(state, cmd, now)
    if halted is not None:
        return halted
    assert state.live is not None
    if state.price is not None and cmd.ask <= state.price:
        return reject(state, cmd, now, RejectReason.BELOW_MIN, "the ask must exceed the price")
    if state.live.pending is not None:
        return reject(state, cmd, now, RejectReason.ASK_TAKEN, "an online bid holds the ask")
    out = Emitter(state, now)
    out.emit(AskChanged, ask=cmd.ask, phase=state.live.phase)
    live = msgspec.structs.replace(state.live, ask=cmd.ask)
    return state.evolve(seq=out.seq, live=live), tuple(out.events)


def set_increment(state: LotState, cmd: c.SetIncrement, now: int) -> Outcome:
    if state.live is None or state.status is not LotStatus.OPEN:
        return reject(state, cmd, now, RejectReason.NOT_OPEN, "the lot is not in the ring")
    rules = state.rules.replace(increment=cmd.increment)
    ask = rules.increment.min_next(rules.start_price, state.price)
    out = Emitter(state, now)
    out.emit(AskChanged, ask=ask, phase=state.live.phase)
    live = msgspec.structs.replace(state.live, ask=ask)
    return state.evolve(seq=out.seq, rules=rules, live=live), tuple(out.events)


def set_auto_accept(state: LotState, cmd: c.SetAutoAccept, now: int) -> Outcome:
    if state.live is None or state.status is not LotStatus.OPEN:
        return reject(state, cmd, now, RejectReason.NOT_OPEN, "the lot is not in the ring")
    if state.live.auto_accept == cmd.on:
        return reject(state, cmd, now, RejectReason.DUPLICATE, "auto-accept already so")
    live = msgspec.structs.replace(state.live, auto_accept=cmd.on)
    out = Emitter(state, now)
    out.emit(AskChanged, ask=live.ask, phase=live.phase)
    return state.evolve(seq=out.seq, live=live), tuple(out.events)


def online_bid(state: LotState, cmd: c.PlaceBid, now: int) -> Outcome:
    """Rules C14.1: an online bid is prospective until accepted; first come holds the ask."""
    halted = _in_ring(state, cmd, now, cmd.bidder)
    if halted is not None:
        return halted
    assert state.live is not None
    refused = refuse_bidder(state, cmd, now)
    if refused is not None:
        return refused
    if cmd.bidder == state.leader:
        return reject(state, cmd, now, RejectReason.SELF_OUTBID, "you are leading", cmd.bidder)
    ask = state.live.ask
    if state.live.pending is not None or cmd.amount < ask:
        return reject(state, cmd, now, RejectReason.ASK_TAKEN, "the ask was taken", cmd.bidder)
    if cmd.amount > ask:
        return reject(state, cmd, now, RejectReason.OFF_GRID, "bid the current ask", cmd.bidder)
    bidder = state.bidders[cmd.bidder]
    out = Emitter(state, now)
    if not state.live.auto_accept:
        event = out.emit(BidPending, bidder=cmd.bidder, code=bidder.code, amount=ask)
        live = msgspec.structs.replace(state.live, pending=(event.seq, cmd.bidder, ask, now))
        return state.evolve(seq=out.seq, live=live), tuple(out.events)
    return _accept(state, out, cmd.bidder, bidder.code, ask, BidType.ONLINE, bidder.agent_for)


def _not_held(state: LotState, cmd: c.AcceptOnline | c.DeclineOnline, now: int) -> Outcome | None:
    """The refusal of `cmd` unless the lot is in the ring holding the online bid it names."""
    halted = _in_ring(state, cmd, now)
    if halted is not None:
        return halted
    assert state.live is not None
    pending = state.live.pending
    if pending is None or pending[0] != cmd.bid_seq:
        return reject(state, cmd, now, RejectReason.UNKNOWN_BID, "no such pending online bid")
    return None


def accept_online(state: LotState, cmd: c.AcceptOnline, now: int) -> Outcome:
    refused = _not_held(state, cmd, now)
    if refused is not None:
        return refused
    assert state.live is not None and state.live.pending is not None
    _, bidder_id, amount, _ = state.live.pending
    bidder = state.bidders[bidder_id]
    out = Emitter(state, now)
    cleared = state.evolve(live=msgspec.structs.replace(state.live, pending=None))
    return _accept(cleared, out, bidder_id, bidder.code, amount, BidType.ONLINE, bidder.agent_for)


def decline_online(state: LotState, cmd: c.DeclineOnline, now: int) -> Outcome:
    """Rules C14.1: the clerk does not take the held online bid; the ask is free again."""
    refused = _not_held(state, cmd, now)
    if refused is not None:
        return refused
    assert state.live is not None
    out = Emitter(state, now)
    out.emit(BidDeclined, bid_seq=cmd.bid_seq, reason=RejectReason.DECLINED)
    live = msgspec.structs.replace(state.live, pending=None)
    return state.evolve(seq=out.seq, live=live), tuple(out.events)


def floor_bid(state: LotState, cmd: c.FloorBid, now: int) -> Outcome:
    halted = _in_ring(state, cmd, now)
    if halted is not None:
        return halted
    assert state.live is not None
    amount = cmd.amount if cmd.amount is not None else state.live.ask
    if amount < state.live.ask:
        return reject(state, cmd, now, RejectReason.BELOW_MIN, "below the ask")
    leader = f"floor:{cmd.paddle}"
    if leader == state.leader:
        return reject(state, cmd, now, RejectReason.SELF_OUTBID, "that paddle is leading")
    out = Emitter(state, now)
    live = state.live
    if live.pending is not None:
        out.emit(BidDeclined, bid_seq=live.pending[0], reason=RejectReason.ASK_TAKEN)
        live = msgspec.structs.replace(live, pending=None)
    bid_type = BidType.PHONE if cmd.source is c.BidSource.PHONE else BidType.FLOOR
    return _accept(state.evolve(live=live), out, leader, leader, amount, bid_type, None)


def absentee_max(state: LotState, cmd: c.SetMax, now: int) -> Outcome:
    """Rules C14.2: absentee / commission maxima, executed by the engine against the room."""
    if state.status not in (LotStatus.SCHEDULED, LotStatus.OPEN):
        return reject(state, cmd, now, RejectReason.NOT_OPEN, "the lot is not taking bids")
    refused = refuse_bidder(state, cmd, now)
    if refused is not None:
        return refused
    bidder = state.bidders[cmd.bidder]
    floor = state.price if state.price is not None else state.rules.start_price - 1
    if cmd.amount <= floor or (bidder.max is not None and cmd.amount <= bidder.max.amount):
        detail = "an absentee maximum must exceed the price and any earlier maximum"
        return reject(state, cmd, now, RejectReason.BELOW_MIN, detail, cmd.bidder)
    out = Emitter(state, now)
    event = out.emit(MaxSet, bidder=cmd.bidder, amount=cmd.amount)
    bidders = dict(state.bidders)
    bidders[cmd.bidder] = msgspec.structs.replace(
        bidder, max=MaxVersion(cmd.amount, now, event.seq, False, bidder.max)
    )
    if state.live is None:
        return state.evolve(seq=out.seq, bidders=bidders), tuple(out.events)
    return _after_bid(state, out, bidders, run_absentees=True)


def _accept(
    state: LotState,
    out: Emitter,
    bidder_id: str,
    code: str,
    amount: int,
    bid_type: BidType,
    on_behalf_of: str | None,
) -> Outcome:
    before = _snapshot(state)
    state = _record(state, out, bidder_id, code, amount, bid_type, on_behalf_of)
    return _after_bid(state, out, dict(state.bidders), run_absentees=True, before=before)


def _record(
    state: LotState,
    out: Emitter,
    bidder_id: str,
    code: str,
    amount: int,
    bid_type: BidType,
    on_behalf_of: str | None,
) -> LotState:
    assert state.live is not None
    event = out.emit(
        BidAccepted,
        bidder=bidder_id,
        code=code,
        amount=amount,
        bid_type=bid_type,
        on_behalf_of=on_behalf_of,
    )
    rules = state.rules
    ask = rules.increment.step_above(rules.start_price, amount)
    live = msgspec.structs.replace(
        state.live, ask=ask, phase=LivePhase.IN_RING, fair_warning_at=None
    )
    history = AcceptedBid(event.seq, bidder_id, amount, out.now, state.history)
    return state.evolve(price=amount, leader=bidder_id, live=live, history=history)


def _snapshot(state: LotState) -> tuple[int | None, str | None, int | None]:
    return state.price, state.leader, state.live.ask if state.live else None


def _after_bid(
    state: LotState,
    out: Emitter,
    bidders: dict[str, Bidder],
    *,
    run_absentees: bool,
    before: tuple[int | None, str | None, int | None] | None = None,
) -> Outcome:
    """Run the absentees, then publish the new price and ask if anything moved since `before`
    (by default: the state as it came in)."""
    if before is None:
        before = _snapshot(state)
    state = state.evolve(bidders=bidders)
    if run_absentees:
        state = _execute_absentees(state, out)
    assert state.live is not None
    if (state.price, state.leader, state.live.ask) != before:
        out.emit(
            PriceChanged,
            price=state.price,
            leader=state.leader,
            leader_code=state.leader_code,
            min_next=state.live.ask,
        )
        out.emit(AskChanged, ask=state.live.ask, phase=state.live.phase)
    return state.evolve(seq=out.seq), tuple(out.events)


def _execute_absentees(state: LotState, out: Emitter) -> LotState:
    """Bid for the best absentee at one increment above the room, unless exhausted."""
    assert state.live is not None
    rules = state.rules
    start, increment = rules.start_price, rules.increment
    ask = state.live.ask
    usable: list[tuple[tuple[int, int, int, int, int], Bidder, int]] = []
    for bidder in state.bidders.values():
        if bidder.max is None or bidder.barred or bidder.deposit not in DEPOSIT_ALLOWS_BIDDING:
            continue
        top = increment.floor_to_grid(start, bidder.max.amount)
        if top is None:
            continue
        if bidder.bidder == state.leader or top >= ask:
            usable.append((bidder.key(False), bidder, top))
    usable.sort(key=lambda item: item[0])
    contenders = [u for u in usable if u[1].bidder == state.leader or u[2] >= ask]
    if not contenders:
        return state
    best, best_top = contenders[0][1], contenders[0][2]
    rivals = [u for u in contenders[1:] if u[2] >= ask]
    if not rivals:
        if best.bidder == state.leader or best_top < ask:
            return state
        return _record(state, out, best.bidder, best.code, ask, BidType.ABSENTEE, best.agent_for)
    rival, rival_top = rivals[0][1], rivals[0][2]
    answer = increment.step_above(start, rival_top)
    assert best.max is not None
    if answer <= best.max.amount:
        if rival.bidder != state.leader or rival_top != state.price:
            state = _record(
                state,
                out,
                rival.bidder,
                rival.code,
                rival_top,
                BidType.ABSENTEE,
                rival.agent_for,
            )
        return _record(state, out, best.bidder, best.code, answer, BidType.ABSENTEE, best.agent_for)
    if best.bidder == state.leader and state.price == rival_top:
        return state
    return _record(state, out, best.bidder, best.code, rival_top, BidType.ABSENTEE, best.agent_for)


def fair_warning(state: LotState, cmd: c.FairWarning, now: int) -> Outcome:
    halted = _in_ring(state, cmd, now)
    if halted is not None:
        return halted
    assert state.live is not None
    if state.live.phase is LivePhase.FAIR_WARNING:
        return reject(state, cmd, now, RejectReason.DUPLICATE, "fair warning already given")
    out = Emitter(state, now)
    dwell = state.rules.fair_warning_dwell
    out.emit(FairWarningGiven, ask=state.live.ask, hammer_not_before=now + dwell)
    live = msgspec.structs.replace(state.live, phase=LivePhase.FAIR_WARNING, fair_warning_at=now)
    return state.evolve(seq=out.seq, live=live), tuple(out.events)


def hammer(state: LotState, cmd: c.Hammer, now: int) -> Outcome:
    """Rules C14.3: at least one accepted bid and the minimum dwell after fair warning."""
    halted = _in_ring(state, cmd, now)
    if halted is not None:
        return halted
    live = state.live
    assert live is not None
    if state.leader is None:
        return reject(state, cmd, now, RejectReason.NO_BIDS, "no accepted bid: pass the lot")
    if live.phase is not LivePhase.FAIR_WARNING or live.fair_warning_at is None:
        return reject(state, cmd, now, RejectReason.ILLEGAL_STATE, "give fair warning first")
    if now < live.fair_warning_at + state.rules.fair_warning_dwell:
        detail = "the fair-warning dwell has not elapsed"
        return reject(state, cmd, now, RejectReason.DWELL_NOT_ELAPSED, detail)
    if live.pending is not None:
        detail = "an online bid is waiting: accept or decline it first"
        return reject(state, cmd, now, RejectReason.ILLEGAL_STATE, detail)
    return seal(state, now, "hammer", settle=False)


def pass_lot(state: LotState, cmd: c.PassLot, now: int) -> Outcome:
    halted = _in_ring(state, cmd, now)
    if halted is not None:
        return halted
    return seal(state, now, f"passed: {cmd.reason}", force_fail=True, settle=False)


def undo_last_bid(state: LotState, cmd: c.UndoLastBid, now: int) -> Outcome:
    halted = _in_ring(state, cmd, now)
    if halted is not None:
        return halted
    assert state.live is not None
    last = state.history
    if last is None:
        return reject(state, cmd, now, RejectReason.NO_BIDS, "no bid to undo")
    out = Emitter(state, now)
    out.emit(BidVoided, bid_seq=last.seq, bidder=last.bidder, reason=cmd.reason, by="CLERK")
    previous = last.prev
    rules = state.rules
    price = previous.amount if previous else None
    ask = rules.increment.min_next(rules.start_price, price)
    live = msgspec.structs.replace(state.live, ask=ask, phase=LivePhase.IN_RING, pending=None)
    leader = previous.bidder if previous else None
    new = state.evolve(price=price, leader=leader, live=live, history=previous)
    out.emit(PriceChanged, price=price, leader=leader, leader_code=new.leader_code, min_next=ask)
    out.emit(AskChanged, ask=ask, phase=LivePhase.IN_RING)
    return new.evolve(seq=out.seq), tuple(out.events)


def _awaiting_next(state: LotState) -> bool:
    """Hammered or passed, and the clerk has not moved on to the next lot yet."""
    return (
        state.live is not None
        and not state.live.finalized
        and state.status in (LotStatus.SOLD, LotStatus.FAILED)
    )


def reopen(state: LotState, cmd: c.Reopen, now: int) -> Outcome:
    """Rules C14: reopen a hammered or passed lot, only before the clerk moves on."""
    if not _awaiting_next(state):
        return reject(state, cmd, now, RejectReason.ILLEGAL_STATE, "nothing to reopen")
    assert state.live is not None
    out = Emitter(state, now)
    out.emit(LotReopened, reason=cmd.reason)
    live = msgspec.structs.replace(state.live, phase=LivePhase.IN_RING, fair_warning_at=None)
    out.emit(AskChanged, ask=live.ask, phase=live.phase)
    new = state.evolve(
        seq=out.seq,
        status=lot_transition(state.status, LotEvent.REOPEN),
        live=live,
        closed_at=None,
        result=None,
        balance_due_at=None,
    )
    return new, tuple(out.events)


def next_lot(state: LotState, cmd: c.NextLot, now: int) -> Outcome:
    if not _awaiting_next(state):
        return reject(state, cmd, now, RejectReason.ILLEGAL_STATE, "hammer or pass the lot first")
    assert state.live is not None
    out = Emitter(state, now)
    out.emit(LotFinalized)
    winner = state.leader if state.status is LotStatus.SOLD else None
    bidders = settle_deposits(out, state, winner)
    live = msgspec.structs.replace(state.live, finalized=True)
    return state.evolve(seq=out.seq, bidders=bidders, live=live), tuple(out.events)


def void_bid(state: LotState, cmd: c.VoidBid, now: int) -> Outcome:
    """An authority void in the ring removes the latest bid only (older ones were answered)."""
    if state.history is None or state.history.seq != cmd.bid_seq:
        return reject(state, cmd, now, RejectReason.UNKNOWN_BID, "only the latest bid")
    return undo_last_bid(state, c.UndoLastBid(reason=cmd.reason), now)


HANDLERS: dict[type, Handler] = {
    c.OpenRing: open_ring,
    c.SetAsk: set_ask,
    c.SetIncrement: set_increment,
    c.SetAutoAccept: set_auto_accept,
    c.PlaceBid: online_bid,
    c.SetMax: absentee_max,
    c.FloorBid: floor_bid,
    c.AcceptOnline: accept_online,
    c.DeclineOnline: decline_online,
    c.FairWarning: fair_warning,
    c.Hammer: hammer,
    c.PassLot: pass_lot,
    c.UndoLastBid: undo_last_bid,
    c.Reopen: reopen,
    c.NextLot: next_lot,
    c.VoidBid: void_bid,
}
