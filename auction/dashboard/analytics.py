"""Customer analysis for the auction house: the figures of the staff dashboard. Pure: no I/O.

Everything is computed from what the server already keeps: each lot's stored history (the
commands and the events the engine answered: exactly what its ledger entries record), the
visit counters (`auction.dashboard.visits`: unique visitors and stream watchers per lot and
day, counts only), the sampled viewer counts of the live stream, and the payment provider's
holds. The tables carry bidder codes and counts only, never an account id or a name.

Definitions (docs/protocol.md §1.4):

* funnel, per lot: `visitors` (unique lot-page or lot-API visitors a day, summed over days),
  `watchers` (unique stream viewers a day, summed), `registered` (accepted registration
  commands = accepted `registration` entries that register a bidder), `verified` (of those,
  the ones recorded with a verified identity), `deposit` (registered bidders whose deposit
  was frozen or not needed), `bid` (bidders with at least one accepted online bid), `won`
  (1 if the lot sold to an online bidder). Per sale: the lots' visitors and watchers summed,
  the other steps counted once per bidder across the sale's lots. Conversion: each step's
  count over the previous step's, in percent (empty when the previous step is 0).
* deposits: every deposit decision (released, forfeited, applied to the price) with the
  provider's settlement time; "on time" if settled within 24 hours (rules C3).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from ..payments import Hold, reconcile
from ..rules import (
    BidAccepted,
    BidderRegistered,
    DepositChanged,
    EndExtended,
    LotClosed,
    RegisterBidder,
)
from ..rules.events import Result
from ..rules.states import DepositState

MINUTE_US = 60 * 1_000_000
DAY_US = 24 * 3600 * 1_000_000
#: Rules C3: a release or transfer the provider must have carried out within 24 hours.
RELEASE_WITHIN_US = DAY_US

#: The dashboard's plots (`auction.dashboard.plots` draws them; matplotlib loads on first use).
PLOTS = ("funnel", "bids", "bidders", "watchers", "hammer", "deposits")
#: Plots drawn for one lot (`?lot=`); the others cover every lot.
PER_LOT = frozenset({"funnel", "bids", "bidders", "watchers"})

FUNNEL_STEPS = ("visitors", "watchers", "registered", "verified", "deposit", "bid", "won")
STEP_WORDS = {
    "visitors": "Visited the lot",
    "watchers": "Watched the stream",
    "registered": "Registered",
    "verified": "Identity verified",
    "deposit": "Deposit paid",
    "bid": "Bid",
    "won": "Won",
}
_PAID = frozenset({DepositState.FROZEN, DepositState.EXEMPT, DepositState.APPLIED_TO_PRICE})
_DECIDED = frozenset({DepositState.RELEASED, DepositState.FORFEITED, DepositState.APPLIED_TO_PRICE})
DEPOSIT_WORDS = {
    DepositState.REQUIRED: "required",
    DepositState.PENDING: "being frozen",
    DepositState.FROZEN: "frozen",
    DepositState.EXEMPT: "exempt",
    DepositState.APPLIED_TO_PRICE: "applied to the price",
    DepositState.RELEASED: "released",
    DepositState.FORFEITED: "forfeited",
}


@dataclass(frozen=True, slots=True)
class LotFacts:
    """What the dashboard needs to know about a lot besides its history."""

    lot_id: str
    title: str
    sale_id: str | None
    currency: str
    legal_timezone: str
    start_price: int
    appraisal: int | None


@dataclass(frozen=True, slots=True)
class LotInputs:
    facts: LotFacts
    #: The lot's stored history: `auction.storage.HistoryRecord`s (n, ingress_us, command,
    #: events, accepted), in order.
    records: Sequence[Any]
    visitors: int = 0
    watchers: int = 0
    #: (t_us, viewers) samples of the live stream's viewer count.
    viewer_samples: Sequence[tuple[int, int]] = ()
    #: The payment provider's holds for this lot's deposits, by account.
    holds: Mapping[str, Hold] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Table:
    """One table of the dashboard: column names and rows of plain JSON values."""

    name: str
    columns: tuple[str, ...]
    rows: tuple[tuple[Any, ...], ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "columns": list(self.columns),
            "rows": [dict(zip(self.columns, row, strict=True)) for row in self.rows],
        }


def local_time(t_us: int, zone: str) -> str:
    """`t_us` (UTC µs) in the time zone `zone`, ISO 8601 with its offset, to the second."""
    moment = datetime.fromtimestamp(t_us / 1_000_000, tz=UTC).astimezone(ZoneInfo(zone))
    return moment.isoformat(timespec="seconds")


def conversion(count: int, previous: int | None) -> str:
    """`count` over `previous` in percent with one decimal ("" without a previous step)."""
    if previous is None or previous <= 0:
        return ""
    return f"{count * 100 / previous:.1f}"


@dataclass(slots=True)
class _People:
    registered: set[str] = field(default_factory=set)
    verified: set[str] = field(default_factory=set)
    deposit: set[str] = field(default_factory=set)
    bid: set[str] = field(default_factory=set)
    won: set[str] = field(default_factory=set)


def _people(records: Iterable[Any]) -> _People:
    people = _People()
    for record in records:
        if not record.accepted:
            continue
        command = record.command
        for event in record.events:
            if isinstance(event, BidderRegistered):
                people.registered.add(event.bidder)
                if isinstance(command, RegisterBidder) and command.kyc_verified:
                    people.verified.add(event.bidder)
                if event.deposit in _PAID:
                    people.deposit.add(event.bidder)
            elif isinstance(event, DepositChanged) and event.state in _PAID:
                people.deposit.add(event.bidder)
            elif isinstance(event, BidAccepted) and not event.bidder.startswith("floor:"):
                people.bid.add(event.on_behalf_of or event.bidder)
            elif isinstance(event, LotClosed) and event.winner is not None:
                if not event.winner.startswith("floor:"):
                    people.won.add(event.winner)
    people.deposit &= people.registered
    return people


def _funnel_rows(scope: str, key: str, counts: Sequence[int]) -> list[tuple[Any, ...]]:
    rows: list[tuple[Any, ...]] = []
    previous: int | None = None
    for step, count in zip(FUNNEL_STEPS, counts, strict=True):
        rows.append((scope, key, step, STEP_WORDS[step], count, conversion(count, previous)))
        previous = count
    return rows


def funnel(lots: Sequence[LotInputs]) -> Table:
    """The funnel per lot, then per sale (module docstring)."""
    rows: list[tuple[Any, ...]] = []
    sales: dict[str, list[tuple[LotInputs, _People]]] = {}
    for lot in lots:
        people = _people(lot.records)
        counts = [
            lot.visitors,
            lot.watchers,
            len(people.registered),
            len(people.verified),
            len(people.deposit),
            len(people.bid),
            len(people.won),
        ]
        rows.extend(_funnel_rows("lot", lot.facts.lot_id, counts))
        if lot.facts.sale_id is not None:
            sales.setdefault(lot.facts.sale_id, []).append((lot, people))
    for sale_id, members in sorted(sales.items()):
        union = _People()
        for _, people in members:
            union.registered |= people.registered
            union.verified |= people.verified
            union.deposit |= people.deposit
            union.bid |= people.bid
            union.won |= people.won
        counts = [
            sum(lot.visitors for lot, _ in members),
            sum(lot.watchers for lot, _ in members),
            len(union.registered),
            len(union.verified),
            len(union.deposit),
            len(union.bid),
            len(union.won),
        ]
        rows.extend(_funnel_rows("sale", sale_id, counts))
    columns = ("scope", "id", "step", "step_words", "count", "conversion_pct")
    return Table("funnel", columns, tuple(rows))


def bids(lots: Sequence[LotInputs]) -> Table:
    """Every accepted bid (code, amount, time in the lot's time zone) and every soft-close
    extension (`kind` = "extension", `amount` = empty, `end_after` = the new end)."""
    rows: list[tuple[Any, ...]] = []
    for lot in lots:
        zone = lot.facts.legal_timezone
        for record in lot.records:
            if not record.accepted:
                continue
            for event in record.events:
                if isinstance(event, BidAccepted):
                    rows.append(
                        (
                            lot.facts.lot_id, "bid", event.t, local_time(event.t, zone),
                            event.code, event.amount, lot.facts.currency, "", "",
                        )
                    )  # fmt: skip
                elif isinstance(event, EndExtended):
                    rows.append(
                        (
                            lot.facts.lot_id, "extension", event.t, local_time(event.t, zone),
                            "", "", lot.facts.currency, event.end_after,
                            local_time(event.end_after, zone),
                        )
                    )  # fmt: skip
    columns = (
        "lot", "kind", "t_us", "time", "code", "amount", "currency", "end_after_us", "end_after",
    )  # fmt: skip
    return Table("bids", columns, tuple(rows))


def bidders_per_minute(lots: Sequence[LotInputs]) -> Table:
    """For each lot and each minute with bids: how many distinct bidders bid in it."""
    rows: list[tuple[Any, ...]] = []
    for lot in lots:
        minutes: dict[int, set[str]] = {}
        for record in lot.records:
            if not record.accepted:
                continue
            for event in record.events:
                if isinstance(event, BidAccepted):
                    minute = event.t - event.t % MINUTE_US
                    minutes.setdefault(minute, set()).add(event.code)
        zone = lot.facts.legal_timezone
        for minute, codes in sorted(minutes.items()):
            rows.append((lot.facts.lot_id, minute, local_time(minute, zone), len(codes)))
    return Table("bidders", ("lot", "minute_us", "minute", "bidders"), tuple(rows))


def watchers(lots: Sequence[LotInputs]) -> Table:
    """The sampled viewer counts of each lot's live stream."""
    rows = tuple(
        (lot.facts.lot_id, t, local_time(t, lot.facts.legal_timezone), viewers)
        for lot in lots
        for t, viewers in lot.viewer_samples
    )
    return Table("watchers", ("lot", "t_us", "time", "viewers"), rows)


def hammer(lots: Sequence[LotInputs]) -> Table:
    """Every sold lot: hammer price against the start price and the appraisal."""
    rows: list[tuple[Any, ...]] = []
    for lot in lots:
        for record in lot.records:
            for event in record.events if record.accepted else ():
                if isinstance(event, LotClosed) and event.result is Result.SOLD and event.price:
                    facts = lot.facts
                    rows.append(
                        (
                            facts.lot_id, facts.currency, event.price, facts.start_price,
                            facts.appraisal if facts.appraisal is not None else "",
                            conversion(event.price, facts.start_price),
                            conversion(event.price, facts.appraisal),
                            local_time(event.t, facts.legal_timezone),
                        )
                    )  # fmt: skip
    columns = (
        "lot", "currency", "hammer", "start_price", "appraisal", "hammer_over_start_pct",
        "hammer_over_appraisal_pct", "closed",
    )  # fmt: skip
    return Table("hammer", columns, tuple(rows))


def _timeliness(decided_us: int, settled_us: int | None, now_us: int) -> str:
    if settled_us is not None:
        return "on time" if settled_us - decided_us <= RELEASE_WITHIN_US else "late"
    return "waiting" if now_us - decided_us <= RELEASE_WITHIN_US else "overdue"


def deposits(lots: Sequence[LotInputs], now_us: int) -> Table:
    """Each bidder's deposit on each lot: its last state, when it was frozen, and for a
    decided one (released, forfeited, applied) when the provider carried it out and whether
    that was within 24 hours (rules C3); `provider_check`: what the reconciliation with the
    provider's holds found (`auction.payments.reconcile`: "no hold at provider", "not carried
    out", "later than 24 h"; empty when they agree)."""
    rows: list[tuple[Any, ...]] = []
    for lot in lots:
        zone = lot.facts.legal_timezone
        codes: dict[str, str] = {}
        state: dict[str, tuple[DepositState, int, int | None]] = {}
        frozen: dict[str, int] = {}
        for record in lot.records:
            if not record.accepted:
                continue
            for event in record.events:
                if isinstance(event, BidderRegistered):
                    codes[event.bidder] = event.code
                    state[event.bidder] = (event.deposit, 0, None)
                    if event.deposit is DepositState.FROZEN:
                        frozen[event.bidder] = event.t
                elif isinstance(event, DepositChanged):
                    state[event.bidder] = (event.state, event.amount, event.t)
                    if event.state is DepositState.FROZEN:
                        frozen.setdefault(event.bidder, event.t)
        decided_at = [
            (lot.facts.lot_id, bidder, current, changed)
            for bidder, (current, _, changed) in state.items()
        ]
        mismatches = {
            found.account: found.detail
            for found in reconcile(decided_at, lot.holds.values(), now_us, RELEASE_WITHIN_US)
        }
        for bidder, (current, amount, changed) in state.items():
            frozen_at = frozen.get(bidder)
            decided = current in _DECIDED and changed is not None
            hold = lot.holds.get(bidder)
            settled = hold.settled_us if hold is not None and decided else None
            rows.append(
                (
                    lot.facts.lot_id, codes.get(bidder, ""), DEPOSIT_WORDS[current], amount,
                    lot.facts.currency,
                    local_time(frozen_at, zone) if frozen_at is not None else "",
                    local_time(changed, zone) if decided and changed is not None else "",
                    local_time(settled, zone) if settled is not None else "",
                    _timeliness(changed, settled, now_us) if decided and changed else "",
                    mismatches.get(bidder, ""),
                )
            )  # fmt: skip
    columns = (
        "lot", "code", "state", "amount", "currency", "frozen", "decided", "settled", "timeliness",
        "provider_check",
    )  # fmt: skip
    return Table("deposits", columns, tuple(rows))


TABLES = ("funnel", "bids", "bidders", "watchers", "hammer", "deposits")


def dashboard(lots: Sequence[LotInputs], now_us: int) -> dict[str, Table]:
    """Every table of the dashboard, by name (`TABLES`)."""
    return {
        "funnel": funnel(lots),
        "bids": bids(lots),
        "bidders": bidders_per_minute(lots),
        "watchers": watchers(lots),
        "hammer": hammer(lots),
        "deposits": deposits(lots, now_us),
    }


__all__ = [
    "FUNNEL_STEPS",
    "TABLES",
    "LotFacts",
    "LotInputs",
    "Table",
    "dashboard",
    "local_time",
]
