"""Helpers for the rules-engine tests: a lot driven command by command, with assertions."""

from __future__ import annotations

from typing import Any

from auction import rules as r

P0 = 1_000_000  # 10,000.00 CNY in fen
STEP = 10_000
END = 24 * r.HOUR


def judicial_rules(**overrides: Any) -> r.LotRules:
    fields: dict[str, Any] = {"start_price": P0, "step": STEP, "start_at": 0, "end_at": END}
    return r.judicial(**(fields | overrides))


def english_rules(**overrides: Any) -> r.LotRules:
    fields: dict[str, Any] = {"start_price": 1_000, "start_at": 0, "end_at": END} | overrides
    return r.english_timed(**fields)


def live_rules(**overrides: Any) -> r.LotRules:
    fields: dict[str, Any] = {"start_price": 10_000, "start_at": 0} | overrides
    return r.live_auctioneer(**fields)


class Lot:
    """A lot under test. `ok` expects acceptance, `refused` expects one typed rejection."""

    def __init__(self, rules: r.LotRules, lot_id: str = "lot-1") -> None:
        self.rules = rules
        self.state = r.LotState.create(lot_id, rules)
        self.history: list[tuple[int, Any]] = []

    def do(self, command: Any, now: int) -> tuple[Any, ...]:
        self.history.append((now, command))
        self.state, events = r.apply(self.state, command, now)
        return events

    def ok(self, command: Any, now: int) -> tuple[Any, ...]:
        events = self.do(command, now)
        assert events and not isinstance(events[0], r.Rejected), events
        return events

    def refused(self, command: Any, now: int, reason: r.RejectReason) -> r.Rejected:
        before = self.state
        events = self.do(command, now)
        assert len(events) == 1 and isinstance(events[0], r.Rejected), events
        assert events[0].reason is reason, events[0]
        assert self.state is before
        return events[0]

    def bidder(
        self, bidder: str, *, now: int = 0, code: str | None = None, frozen: bool = True, **kw: Any
    ) -> None:
        rank = kw.get("priority_rank")
        default_code = f"P{rank}-{bidder}" if rank else f"C-{bidder}"
        self.ok(r.RegisterBidder(bidder, code or default_code, True, **kw), now)
        deposit = self.state.bidders[bidder].deposit
        if frozen and deposit is r.DepositState.REQUIRED:
            self.ok(r.DepositFrozen(bidder, self.rules.deposit, f"tx-{bidder}"), now)

    def open(self, now: int = 0) -> None:
        if self.rules.format is r.Format.LIVE_AUCTIONEER:
            self.ok(r.OpenRing(self.rules.start_price), now)
        else:
            self.ok(r.OpenLot(), now)

    def bid(self, bidder: str, amount: int, now: int, **kw: Any) -> tuple[Any, ...]:
        return self.ok(r.PlaceBid(bidder, amount, self.rules.currency, **kw), now)

    def max(self, bidder: str, amount: int, now: int) -> tuple[Any, ...]:
        return self.ok(r.SetMax(bidder, amount, self.rules.currency), now)

    def of_type(self, events: tuple[Any, ...], kind: type) -> list[Any]:
        return [e for e in events if isinstance(e, kind)]
