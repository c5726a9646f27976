"""The fixed-price sale (变卖): `FIXED_PRICE_SALE` (rules C10, clarification 9).

After the second failed auction of a judicial lot the court may order the property sold at a
fixed price (the last start price, or lower as ordered) for up to 60 days. Deposits are as for
the auction. The first deposit-backed bidder who confirms at exactly that price buys it; the
confirmation is a `PlaceBid` of that amount, so it travels, is signed by the bidder and is
logged exactly like a bid (no protocol change). Priority holders (rules C7) may match the
price within the notice's window:

* a confirmation when no registered priority holder could outrank the taker sells the lot at
  once (`LotClosed`, deposits settled as at any close);
* otherwise the confirmation opens the holders' window (`PriorityWindowOpened`): the lot's end
  becomes `t + priority_window`; a holder of better rank who confirms at the price takes the
  lead (`PRIORITY_MATCH`), and the lot is sold as soon as nobody is left who could outrank the
  leader, or at the window's end (`CloseLot`, as for any timed lot);
* anyone else confirming after the first is refused (`ASK_TAKEN`), saying who was first;
* nobody confirming by the end: the sale fails (`FAILED`) at `CloseLot`.
"""

from __future__ import annotations

from datetime import UTC, datetime

from .. import commands as c
from ..common import Handler, Outcome, seal
from ..errors import RejectReason
from ..events import BidAccepted, BidType, PriceChanged, PriorityWindowOpened
from ..lot import ORDINARY_RANK, Bidder, Emitter, LotState, MaxVersion, reject, with_max
from ..states import DepositState, LotStatus
from .timed import bid_gate, close_lot, open_lot

#: Statuses in which the lot has been bought (a later taker is told by whom and when).
_BOUGHT = frozenset({LotStatus.SOLD, LotStatus.COMPLETED})

#: Deposit states of a holder who has withdrawn (or lost the deposit): no right left to match.
_GONE = frozenset({DepositState.RELEASED, DepositState.FORFEITED})


def money(amount: int, currency: str) -> str:
    """`1234500, "CNY"` → `12,345.00 CNY` (two minor digits, as CNY and USD)."""
    return f"{amount // 100:,}.{amount % 100:02d} {currency}"


def _utc(t: int) -> str:
    return datetime.fromtimestamp(t / 1_000_000, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _rank(bidder: Bidder) -> int:
    return bidder.priority_rank if bidder.priority_rank is not None else ORDINARY_RANK


def challengers(state: LotState) -> list[str]:
    """Registered priority holders who could still take the lot from its leader by matching
    the price: a better rank (at an equal rank the earlier confirmation keeps it, rules C7)."""
    if state.leader is None or not state.rules.priority_rights:
        return []
    leader_rank = _rank(state.bidders[state.leader])
    return sorted(
        b.bidder
        for b in state.bidders.values()
        if b.priority_rank is not None
        and b.priority_rank < leader_rank
        and not b.barred
        and b.bidder not in state.rules.barred
        and b.deposit not in _GONE
    )


def confirm(state: LotState, cmd: c.PlaceBid, now: int) -> Outcome:
    """A bidder confirms the purchase at the fixed price (a `PlaceBid` of exactly the price)."""
    if state.status in _BOUGHT and state.closed_at is not None and cmd.bidder != state.leader:
        detail = (
            f"another bidder ({state.leader_code}) bought this lot at the fixed price of "
            f"{money(state.rules.start_price, state.rules.currency)} on {_utc(state.closed_at)}"
        )
        return reject(state, cmd, now, RejectReason.ASK_TAKEN, detail, cmd.bidder)
    gate = bid_gate(state, cmd, now)
    if gate is not None:
        return gate
    rules = state.rules
    price = rules.start_price
    if cmd.amount != price:
        reason = RejectReason.BELOW_MIN if cmd.amount < price else RejectReason.OFF_GRID
        detail = (
            f"this lot is sold at a fixed price of {money(price, rules.currency)}: "
            "confirm the purchase at exactly that amount"
        )
        return reject(state, cmd, now, reason, detail, cmd.bidder)
    bidder = state.bidders[cmd.bidder]
    bid_type = BidType.MANUAL
    if state.leader is not None:
        if cmd.bidder == state.leader:
            detail = "you have already confirmed the purchase of this lot"
            return reject(state, cmd, now, RejectReason.DUPLICATE, detail, cmd.bidder)
        if cmd.bidder not in challengers(state):
            detail = (
                f"another bidder ({state.leader_code}) confirmed the purchase at "
                f"{money(price, rules.currency)} first; only a priority holder of a higher "
                f"rank may still match it, until {_utc(state.end)}"
            )
            return reject(state, cmd, now, RejectReason.ASK_TAKEN, detail, cmd.bidder)
        bid_type = BidType.PRIORITY_MATCH  # rules C7: a holder matches the price
    out = Emitter(state, now)
    event = out.emit(
        BidAccepted,
        bidder=cmd.bidder,
        code=bidder.code,
        amount=price,
        bid_type=bid_type,
        on_behalf_of=bidder.agent_for,
    )
    bidders = dict(state.bidders)
    bidders[cmd.bidder] = with_max(bidder, MaxVersion(price, now, event.seq, True, bidder.max))
    out.emit(
        PriceChanged,
        price=price,
        leader=cmd.bidder,
        leader_code=bidder.code,
        min_next=rules.increment.min_next(price, price),
    )
    new = state.evolve(
        seq=out.seq, bidders=bidders, leader=cmd.bidder, runner_up=state.leader, price=price
    )
    if rules.priority_window > 0 and challengers(new):
        if state.leader is None:
            end_after = now + rules.priority_window
            out.emit(
                PriorityWindowOpened,
                price=price,
                leader_code=bidder.code,
                end_before=state.end,
                end_after=end_after,
            )
            new = new.evolve(seq=out.seq, end=end_after)
        return new, tuple(out.events)
    # nobody left who could take it from this bidder: sold now, at the confirmation's time
    sold, closing = seal(new.evolve(end=now), now, reason="bought at the fixed price")
    return sold, (*out.events, *closing)


def no_maximum(state: LotState, cmd: c.SetMax, now: int) -> Outcome:
    detail = "a fixed-price sale takes no maximum bids: confirm the purchase at the price"
    return reject(state, cmd, now, RejectReason.PROXY_DISABLED, detail, cmd.bidder)


HANDLERS: dict[type, Handler] = {
    c.OpenLot: open_lot,
    c.PlaceBid: confirm,
    c.SetMax: no_maximum,
    c.CloseLot: close_lot,
}
