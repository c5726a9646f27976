"""The readable part of an evidence package: ``report.txt`` and ``report.html`` (pure).

One line per event of the lot's history, in plain words, with the entry number that proves it
("12 Dec 2026 10:02:03 (Asia/Shanghai) — Bidder K7Q2 bid CN¥2,140,000 — entry 1234"). Times
are the server's legal times in the lot's legal time zone; bidders appear by their codes only
(the entries hold no personal data, and the report repeats none). The same entries always give
the same bytes: ``gavel audit evidence`` rebuilds both files and compares them.
"""

from __future__ import annotations

import datetime
import html
import re
import zoneinfo
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from chain import ChainError, Entry, EntryType, format_time, parse_time

from ..rules import decode
from ..verify import thaw

__all__ = ["HistoryLine", "format_money", "history", "render_html", "render_text"]

_DIGITS: Final = {"JPY": 0, "KRW": 0, "VND": 0, "CLP": 0, "ISK": 0, "BHD": 3, "KWD": 3}
_SYMBOLS: Final = {
    "CNY": "CN¥",
    "USD": "US$",
    "EUR": "€",
    "GBP": "£",
    "JPY": "JP¥",
    "HKD": "HK$",
}
_DEFAULT_ZONE: Final = "Asia/Shanghai"

_REASONS: Final = {
    "LATE": "too late",
    "BELOW_MIN": "below the minimum bid",
    "OFF_GRID": "not a multiple of the increment",
    "NO_DEPOSIT": "no deposit held",
    "NOT_OPEN": "bidding was not open",
    "PROXY_DISABLED": "maximum bids are not allowed for this lot",
    "NOT_DUE": "not yet due",
    "SELF_OUTBID": "the bidder was already leading",
    "DUPLICATE": "sent twice",
    "JUMP_NEEDS_CONFIRMATION": "a large jump the bidder had not confirmed",
}
_COMMANDS: Final = {
    "PlaceBid": "bid",
    "SetMax": "maximum bid",
    "RegisterBidder": "registration",
    "CloseLot": "request to close the lot",
    "OpenLot": "request to open the lot",
}
_DEPOSITS: Final = {
    "REQUIRED": "required",
    "PENDING": "requested from the payment provider",
    "FROZEN": "held",
    "EXEMPT": "not needed",
    "APPLIED_TO_PRICE": "applied to the price",
    "RELEASED": "released",
    "FORFEITED": "forfeited",
}


@dataclass(frozen=True, slots=True)
class HistoryLine:
    """One line: when (text), what (plain words) and the entry number."""

    when: str
    what: str
    seq: int

    def text(self) -> str:
        return f"{self.when} — {self.what} — entry {self.seq}"


def format_money(amount: int | None, currency: str) -> str:
    """``214000000, "CNY"`` → ``"CN¥2,140,000"`` (minor units; a fraction only when not 0)."""
    if amount is None:
        return "no price"
    digits = _DIGITS.get(currency, 2)
    whole, fraction = divmod(amount, 10**digits)
    text = f"{whole:,}"
    if digits and fraction:
        text += f".{fraction:0{digits}d}"
    symbol = _SYMBOLS.get(currency)
    return f"{symbol}{text}" if symbol else f"{currency} {text}"


def _words(name: str) -> str:
    """``"EndExtended"`` → ``"end extended"``; ``"NOT_REGISTERED"`` → ``"not registered"``."""
    spaced = re.sub(r"(?<=[a-z])(?=[A-Z])", " ", str(name)).replace("_", " ")
    return spaced.lower().strip()


class _Clock:
    def __init__(self, zone: str) -> None:
        try:
            self.zone = zoneinfo.ZoneInfo(zone)
            self.name = zone
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            self.zone = zoneinfo.ZoneInfo("UTC")
            self.name = "UTC"

    def __call__(self, time_us: int) -> str:
        moment = datetime.datetime.fromtimestamp(time_us / 1_000_000, tz=datetime.UTC)
        local = moment.astimezone(self.zone)
        return f"{local:%d %b %Y %H:%M:%S} ({self.name})"


def _event_words(
    event: Any, currency: str, codes: Mapping[str, str], money: Any, clock: _Clock
) -> str | None:
    kind = type(event).__name__
    who = codes.get(str(getattr(event, "bidder", "") or ""), "")
    bidder = f"Bidder {who}" if who else "A bidder"
    if kind == "BidderRegistered":
        return f"Bidder {event.code} registered"
    if kind == "DepositChanged":
        state = _DEPOSITS.get(str(event.state), _words(event.state))
        return f"{bidder}'s deposit of {money(event.amount, currency)}: {state}"
    if kind == "LotOpened":
        return f"Bidding opened; scheduled end {clock(event.end)}"
    if kind == "LotHalted":
        return f"Lot halted ({_words(event.status)}): {event.reason or 'no reason given'}"
    if kind == "LotResumed":
        return f"Lot resumed; new end {clock(event.end)}"
    if kind == "LotCancelled":
        return f"Lot cancelled: {event.reason or 'no reason given'}"
    if kind == "MaxSet":
        return f"{bidder} set a maximum bid"
    if kind == "BidAccepted":
        return f"Bidder {event.code} bid {money(event.amount, currency)}"
    if kind == "BidPending":
        return f"Bidder {event.code} offered {money(event.amount, currency)} (pending)"
    if kind == "BidDeclined":
        return "A bid held for the clerk was not taken"
    if kind == "BidVoided":
        return f"{bidder}'s bid was voided: {event.reason}"
    if kind == "EndExtended":
        return f"End extended to {clock(event.end_after)}"
    if kind == "LotClosed":
        if str(event.result) == "SOLD":
            return (
                f"Lot closed: sold to bidder {event.winner_code} for {money(event.price, currency)}"
            )
        return f"Lot closed without a sale ({_words(event.reason) or 'no reason given'})"
    if kind == "Rejected":
        what = _COMMANDS.get(str(event.command), _words(event.command))
        reason = _REASONS.get(str(event.reason), _words(event.reason))
        if who:
            return f"Bidder {who}'s {what} was refused ({reason})"
        return f"A {what} was refused ({reason})"
    if kind in ("PriceChanged", "AskChanged", "ReserveApproached"):
        return None  # follows from the bid lines
    return _words(kind).capitalize()


def history(entries: Sequence[Entry], lot_id: str) -> tuple[str, list[HistoryLine]]:
    """The lot's title and its history lines, from its verified entries in log order."""
    title, currency, zone = lot_id, "", _DEFAULT_ZONE
    codes: dict[str, str] = {}
    lines: list[HistoryLine] = []
    clock = _Clock(zone)
    for entry in entries:
        body = entry.body
        if body.get("lot") != lot_id:
            continue
        when = clock(_legal_time(entry))
        if entry.type == EntryType.LOT:
            title = str(body.get("title", lot_id))
            rules = decode(thaw(body.get("rules")))
            currency = str(getattr(rules, "currency", ""))
            clock = _Clock(str(getattr(rules, "legal_timezone", _DEFAULT_ZONE)))
            when = clock(_legal_time(entry))
            lines.append(HistoryLine(when, f"Lot created: {title}", entry.seq))
        elif entry.type == EntryType.SALE:
            lines.append(
                HistoryLine(
                    when,
                    f"Sale recorded: bidder {body.get('buyer_code')} bought for "
                    f"{format_money(_int(body.get('price')), currency)}; confirmation "
                    f"document SHA-256 {body.get('confirmation_sha256')}",
                    entry.seq,
                )
            )
        elif entry.type == EntryType.STREAM_SEGMENT:
            lines.append(
                HistoryLine(
                    when,
                    f"Video segment {body.get('index')} ({body.get('rendition')}) recorded, "
                    f"SHA-256 {body.get('sha256')}",
                    entry.seq,
                )
            )
        elif entry.type == EntryType.DOCUMENT:
            lines.append(
                HistoryLine(
                    when,
                    f"Document recorded: {_words(str(body.get('kind', 'document')))} "
                    f"“{body.get('name')}”, {body.get('size')} bytes, SHA-256 {body.get('sha256')}",
                    entry.seq,
                )
            )
        elif "events" in body:
            for event in decode_events(body.get("events")):
                if type(event).__name__ == "BidderRegistered":
                    codes[event.bidder] = event.code
                words = _event_words(event, currency, codes, format_money, clock)
                if words is not None:
                    lines.append(HistoryLine(when, words, entry.seq))
    return title, lines


def _legal_time(entry: Entry) -> int:
    """A command's legal time is its ingress time (the engine's ``now``), a lot's its creation,
    a segment's its start; else the entry's time."""
    for field in ("ingress", "created", "start"):
        stamp = entry.body.get(field)
        if isinstance(stamp, str):
            try:
                return parse_time(stamp)
            except ChainError:
                continue
    return entry.time_us


def decode_events(value: Any) -> list[Any]:
    if not isinstance(value, (list, tuple)):
        return []
    return [decode(thaw(item)) for item in value]


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _facts(summary: Mapping[str, Any]) -> list[tuple[str, str]]:
    checkpoint = summary["checkpoint"]
    latest = summary["latest"]
    return [
        ("Lot", str(summary["lot"])),
        ("Log", str(summary["origin"])),
        ("Entries in this package", str(len(summary["entries"]))),
        (
            "Proven against",
            f"checkpoint of size {checkpoint['size']:,} (root {checkpoint['root']}), "
            f"co-signed by {', '.join(checkpoint['cosigners']) or 'no notary'}",
        ),
        (
            "Consistent with",
            f"the latest published checkpoint of size {latest['size']:,} (root {latest['root']})",
        ),
        ("Recording segments", str(len(summary["segments"]))),
        ("Documents", str(len(summary["documents"]))),
    ]


def render_text(summary: Mapping[str, Any], title: str, lines: Sequence[HistoryLine]) -> str:
    """``report.txt``."""
    out = [f"Evidence package — {title}", ""]
    out += [f"{name}: {value}" for name, value in _facts(summary)]
    out += ["", "History (each line is proven by the entry named):", ""]
    out += [line.text() for line in lines]
    out += [
        "",
        "Check this package offline with: gavel audit evidence <this directory>",
        f"Last entry in this package: {format_time(summary['last_t'])} (server time, UTC).",
    ]
    return "\n".join(out) + "\n"


_CSS: Final = """
body { font-family: Georgia, serif; margin: 2em; color: #111; }
h1 { font-size: 1.4em; }
table { border-collapse: collapse; width: 100%; }
th, td { border: 1px solid #999; padding: 0.3em 0.5em; text-align: left; vertical-align: top; }
td.n, td.t { text-align: right; white-space: nowrap; }
td.t { text-align: left; }
@media print { body { margin: 0; } }
"""


def render_html(summary: Mapping[str, Any], title: str, lines: Sequence[HistoryLine]) -> str:
    """``report.html``: static, printable, no scripts."""
    e = html.escape
    facts = "".join(
        f"<tr><th>{e(name)}</th><td>{e(value)}</td></tr>" for name, value in _facts(summary)
    )
    rows = "".join(
        f'<tr><td class="t">{e(line.when)}</td><td>{e(line.what)}</td>'
        f'<td class="n">entry {line.seq}</td></tr>'
        for line in lines
    )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>Evidence package — {e(title)}</title><style>{_CSS}</style></head><body>\n"
        f"<h1>Evidence package — {e(title)}</h1>\n<table>{facts}</table>\n"
        "<h2>History</h2>\n<p>Each line is proven by the ledger entry named.</p>\n"
        f"<table><tr><th>When</th><th>What happened</th><th>Proof</th></tr>{rows}</table>\n"
        "<p>Check this package offline with <code>gavel audit evidence</code>. Last entry in "
        f"this package: {e(format_time(summary['last_t']))} (server time, UTC).</p>\n"
        "</body></html>\n"
    )
