"""A bidder's own view of one lot, as "My auctions" and the lot room show it (pure).

`summarize(...)` reads the lot's stored history (the engine's commands and events, the same
evidence the ledger holds), the bidder's recorded bid answers and the lot's documents, and
answers what the bidder needs to know in plain words: registered, the deposit (frozen,
released by when, applied to the price, forfeited), leading or outbid, won or lost, every bid
with its answer and ledger entry, and for a winner the balance due and its deadline.

No I/O, no clock: `now_us` is a parameter. Money is integer minor units, times server times
(UTC µs), shown in the lot's legal time zone.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ..rules import (
    BidAccepted,
    BidDeclined,
    BidderRegistered,
    BidPending,
    BidType,
    DepositChanged,
    DepositState,
    LotClosed,
    MaxSet,
    PlaceBid,
    SetMax,
    rejection,
)
from ..storage import HistoryRecord
from .book import BidRecord, Document

CURRENCY_DIGITS = {"JPY": 0, "KRW": 0, "VND": 0, "CLP": 0, "ISK": 0, "BHD": 3, "KWD": 3}
CURRENCY_SYMBOLS = {"CNY": "CN¥", "USD": "$", "EUR": "€", "GBP": "£", "JPY": "¥", "HKD": "HK$"}

#: Lot statuses in which bidding may still go on (or resume).
LIVE_STATUSES = frozenset({"SCHEDULED", "OPEN", "PAUSED", "SUSPENDED"})

DEPOSIT_WORDS = {
    DepositState.REQUIRED.value: "not paid yet",
    DepositState.PENDING.value: "being frozen by the payment provider",
    DepositState.FROZEN.value: "frozen",
    DepositState.EXEMPT.value: "not required",
    DepositState.APPLIED_TO_PRICE.value: "applied to the price",
    DepositState.RELEASED.value: "released",
    DepositState.FORFEITED.value: "forfeited",
}

HELD_WORDS = "Held: it is with the auctioneer, who accepts or declines it."

STANDING_WORDS = {
    "registered": "Registered",
    "leading": "Leading",
    "outbid": "Outbid",
    "won": "Won",
    "lost": "Did not win",
    "ended": "Ended",
}


def format_money(amount: int, currency: str) -> str:
    """`21000000, "CNY"` → `"CN¥210,000.00"`."""
    digits = CURRENCY_DIGITS.get(currency, 2)
    sign = "-" if amount < 0 else ""
    whole, fraction = divmod(abs(amount), 10**digits)
    text = f"{whole:,}" + (f".{fraction:0{digits}d}" if digits else "")
    symbol = CURRENCY_SYMBOLS.get(currency)
    return f"{sign}{symbol}{text}" if symbol else f"{sign}{currency} {text}"


def format_time(time_us: int, zone: str) -> str:
    """`"8 Dec 2026, 17:30:05 (Asia/Shanghai)"`: a server time in the lot's legal zone."""
    try:
        tz: dt.tzinfo = zoneinfo.ZoneInfo(zone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        tz, zone = dt.UTC, "UTC"
    moment = dt.datetime.fromtimestamp(time_us / 1_000_000, tz)
    return f"{moment.day} {moment:%b %Y, %H:%M:%S} ({zone})"


def _bid_words(result: str, reason: str | None, message: str | None) -> str:
    if result == "accepted":
        return "Accepted."
    detail = (message or reason or "no reason given").strip()
    detail = detail[:1].upper() + detail[1:]
    return f"Refused: {detail}{'' if detail.endswith('.') else '.'}"


def summarize(
    account: str,
    view: Any,
    records: Sequence[HistoryRecord],
    recorded: Iterable[BidRecord] = (),
    documents: Iterable[Document] = (),
    notice_accepted_us: int | None = None,
    now_us: int = 0,
) -> dict[str, Any] | None:
    """The bidder's state on the lot `view` (a `LotView`), or None if they never registered.

    `records`: the lot's history; `recorded`: the bidder's bid answers as the gateway gave
    them (they name the ledger entries); `documents`: the lot's documents."""
    currency = str(view.currency)
    zone = str(view.legal_timezone)
    code: str | None = None
    registered_us: int | None = None
    deposit_state = DepositState.REQUIRED.value
    deposit_amount = 0
    deposit_deadline: int | None = None
    deposit_us: int | None = None
    closed: LotClosed | None = None
    bids: dict[str, dict[str, Any]] = {}
    automatic: list[dict[str, Any]] = []
    by_key = {record.idempotency_key: record for record in recorded}
    held: dict[int, dict[str, Any]] = {}  # live lots: BidPending seq → the bid it holds
    for record in records:
        command = record.command
        own = isinstance(command, PlaceBid | SetMax) and command.bidder == account
        mine: dict[str, Any] | None = None
        if isinstance(command, PlaceBid | SetMax) and own:
            accepted = any(isinstance(e, BidAccepted | MaxSet) for e in record.events)
            refusal = rejection(record.events)
            known = by_key.get(command.idempotency_key)
            reason = refusal.reason.value if refusal is not None else None
            message = refusal.detail if refusal is not None else None
            result = "accepted" if accepted else "rejected"
            entry = known.entry if known is not None else None
            mine = bids[command.idempotency_key or f"n{record.n}"] = {
                "kind": "max" if isinstance(command, SetMax) else "bid",
                "amount": command.amount,
                "currency": command.currency,
                "t_us": record.ingress_us,
                "result": result,
                "reason": reason,
                "words": _bid_words(result, reason, message),
                "entry": entry,
                "receipt": f"/log/receipt/{entry}" if entry is not None else None,
            }
        for event in record.events:
            if isinstance(event, BidderRegistered) and event.bidder == account:
                code, registered_us = event.code, event.t
                deposit_state = event.deposit.value
            elif isinstance(event, DepositChanged) and event.bidder == account:
                deposit_state, deposit_amount = event.state.value, event.amount
                deposit_deadline, deposit_us = event.deadline, event.t
            elif isinstance(event, LotClosed):
                closed = event
            elif isinstance(event, BidPending) and mine is not None:
                mine.update(result="held", words=HELD_WORDS)
                held[event.seq] = mine
            elif isinstance(event, BidDeclined) and event.bid_seq in held:
                held.pop(event.bid_seq).update(
                    result="rejected", words="Declined by the auctioneer."
                )
            elif isinstance(event, BidAccepted) and event.bidder == account and not own:
                if event.bid_type is BidType.ONLINE and held:  # the auctioneer took it
                    held.pop(max(held)).update(
                        result="accepted", words="Accepted by the auctioneer."
                    )
                    continue
                automatic.append(
                    {
                        "kind": "proxy",
                        "amount": event.amount,
                        "currency": currency,
                        "t_us": event.t,
                        "result": "accepted",
                        "words": "Placed for you by your proxy maximum.",
                        "entry": None,
                        "receipt": None,
                    }
                )
    for bid in bids.values():  # a receipt proves an accepted bid (or a held one) was logged
        if bid["result"] not in ("accepted", "held"):
            bid["receipt"] = None
    if code is None:
        return None
    for known in recorded:  # answered before the rules ran (rate limit, signature): no entry
        if known.idempotency_key not in bids and known.result != "accepted":
            bids[known.idempotency_key] = {
                "kind": known.kind,
                "amount": known.amount,
                "currency": known.currency,
                "t_us": known.t_us,
                "result": known.result,
                "reason": known.reason,
                "words": _bid_words(known.result, known.reason, known.message),
                "entry": known.entry,
                "receipt": None,
            }
    listed = sorted([*bids.values(), *automatic], key=lambda bid: bid["t_us"])
    accepted_any = any(bid["result"] == "accepted" for bid in listed)
    status = str(view.status)
    leading = view.leader_code is not None and view.leader_code == code
    won = closed is not None and closed.winner == account
    if won:
        standing = "won"
    elif status in LIVE_STATUSES:
        standing = "leading" if leading else ("outbid" if accepted_any else "registered")
    elif accepted_any:
        standing = "lost"
    else:
        standing = "ended"
    money = format_money(deposit_amount, currency) if deposit_amount else None
    headline = _headline(standing, status, deposit_state, money, deposit_deadline, zone)
    outcome = None
    if won and closed is not None and closed.price is not None:
        applied = deposit_amount if deposit_state == DepositState.APPLIED_TO_PRICE.value else 0
        balance = closed.price - applied
        due = closed.balance_due_at
        outcome = {
            "hammer_price": closed.price,
            "deposit_applied": applied,
            "balance_due": balance,
            "balance_due_at_us": due,
            "words": [
                f"Hammer price: {format_money(closed.price, currency)}.",
                f"Deposit applied to the price: {format_money(applied, currency)}.",
                f"Balance due: {format_money(balance, currency)}"
                + (f", to be paid by {format_time(due, zone)}." if due is not None else "."),
            ],
        }
    docs = [
        {
            "kind": document.kind,
            "name": document.name,
            "content_type": document.content_type,
            "size": len(document.body),
            "sha256": document.sha256,
            "entry": document.entry,
            "url": f"/api/me/lots/{view.lot_id}/documents/{document.kind}",
        }
        for document in documents
        if document.account == account
    ]
    return {
        "lot": view.lot_id,
        "title": view.title,
        "sale_title": view.sale_title,
        "currency": currency,
        "legal_timezone": zone,
        "status": status,
        "price": view.price,
        "leader_code": view.leader_code,
        "code": code,
        "registered_us": registered_us,
        "notice": {"accepted": notice_accepted_us is not None, "accepted_us": notice_accepted_us},
        "deposit": {
            "state": deposit_state,
            "words": DEPOSIT_WORDS.get(deposit_state, deposit_state.lower()),
            "amount": deposit_amount,
            "deadline_us": deposit_deadline,
            "changed_us": deposit_us,
        },
        "standing": standing,
        "standing_words": STANDING_WORDS[standing],
        "headline": headline,
        "bids": listed,
        "outcome": outcome,
        "documents": docs,
        "now_us": now_us,
    }


def _headline(
    standing: str,
    status: str,
    deposit_state: str,
    money: str | None,
    deadline: int | None,
    zone: str,
) -> str:
    if standing == "won":
        return "You won this lot."
    if standing in ("lost", "ended") or status not in LIVE_STATUSES:
        opening = "You did not win" if standing == "lost" else "The lot has ended"
        if status == "CANCELLED":
            opening = "The lot was cancelled"
        if deposit_state == DepositState.RELEASED.value and money is not None:
            by = f" by {format_time(deadline, zone)}" if deadline is not None else ""
            return f"{opening}; your deposit of {money} is released{by}."
        if deposit_state == DepositState.FORFEITED.value and money is not None:
            return f"{opening}; your deposit of {money} was forfeited."
        return f"{opening}."
    if standing == "leading":
        return "You are leading."
    if standing == "outbid":
        return "You have been outbid."
    if deposit_state in (DepositState.REQUIRED.value, DepositState.PENDING.value):
        return "You are registered. Your deposit is not frozen yet."
    return "You are registered and may bid."


def by_lot(summaries: Iterable[Mapping[str, Any] | None]) -> list[Mapping[str, Any]]:
    """The summaries that exist, live lots first, then the newest."""
    found = [summary for summary in summaries if summary is not None]
    return sorted(
        found,
        key=lambda s: (s["status"] not in LIVE_STATUSES, -(s["registered_us"] or 0)),
    )


__all__ = ["by_lot", "format_money", "format_time", "summarize"]
