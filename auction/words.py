"""Plain words for what bidders and auctioneers read: the one place where the engine's reasons,
lot states, deposit states and formats become sentences (pure: no I/O).

The pages show these sentences as the server sends them (a bid's `ack.message`, an error's
`message`, the tables of `GET /api/words`); they never show an engine name (`JUDICIAL_CN`,
`REQUIRED`, `FROZEN`, `OPEN`, `OpenLot`, ...). A refusal names the numbers that matter:

>>> context = RefusalContext("CNY", price=213_000_000, min_next=214_000_000, step=1_000_000)
>>> refusal_words("BELOW_MIN", context)
'The next bid is at least CN¥2,140,000 (step CN¥10,000).'
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .rules import DepositState, Fixed, LotRules, LotState, LotStatus, RejectReason
from .rules.config import Format, SoftCloseMode, SoftCloseTrigger

#: Currency signs as English-language pages write them (others: the ISO code and a space).
CURRENCY_SIGNS: Mapping[str, str] = {
    "CNY": "CN¥",
    "USD": "$",
    "GBP": "£",
    "EUR": "€",
    "HKD": "HK$",
    "JPY": "JP¥",
}

#: Minor-unit digits (ISO 4217 exponent) where not 2.
_DIGITS: Mapping[str, int] = {"JPY": 0, "KRW": 0, "VND": 0, "CLP": 0, "ISK": 0, "BHD": 3}


def money(amount: int | None, currency: str) -> str:
    """`214_000_000, "CNY"` → `"CN¥2,140,000"`; cents only when there are any
    (`"$3,512.50"`); None → `"—"`."""
    if amount is None:
        return "—"
    digits = _DIGITS.get(currency, 2)
    sign = "-" if amount < 0 else ""
    whole, fraction = divmod(abs(amount), 10**digits)
    text = f"{whole:,}"
    if digits and fraction:
        text += f".{fraction:0{digits}d}"
    prefix = CURRENCY_SIGNS.get(currency, f"{currency} ")
    return f"{sign}{prefix}{text}"


def bidder_words(code: str) -> str:
    """A bidder's code as a person reads it: a bidder in the sale room (`floor:<paddle>`) by
    paddle (the page's util.js and the video overlay say it the same way)."""
    return f"paddle {code[6:]} in the room" if code.startswith("floor:") else code


def duration_words(us: int) -> str:
    """`300_000_000` → `"5 minutes"`; `90_000_000` → `"1 minute 30 seconds"`."""
    seconds = max(0, us // 1_000_000)
    parts = []
    for size, name in ((86_400, "day"), (3600, "hour"), (60, "minute"), (1, "second")):
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count} {name}{'' if count == 1 else 's'}")
    return " ".join(parts) if parts else "0 seconds"


def time_words(us: int, timezone: str = "UTC") -> str:
    """A server time in the lot's legal time zone: `"8 Dec 2026, 01:12:49 (Asia/Shanghai)"`."""
    try:
        zone: dt.tzinfo = ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        zone, timezone = dt.UTC, "UTC"
    moment = dt.datetime.fromtimestamp(us / 1_000_000, tz=zone)
    return f"{moment.day} {moment:%b %Y, %H:%M:%S} ({timezone})"


# --- states ----------------------------------------------------------------------------------

LOT_STATE_WORDS: Mapping[str, str] = {
    LotStatus.SCHEDULED: "Scheduled",
    LotStatus.OPEN: "Open",
    LotStatus.PAUSED: "Paused",
    LotStatus.SUSPENDED: "Suspended",
    LotStatus.SOLD: "Sold",
    LotStatus.FAILED: "Not sold",
    LotStatus.CANCELLED: "Cancelled",
    LotStatus.COMPLETED: "Sold and paid",
    LotStatus.DEFAULTED: "Sold, but the winner did not pay",
}

#: Live lots in the ring (`LotView.phase`).
PHASE_WORDS: Mapping[str, str] = {
    "IN_RING": "In the ring",
    "FAIR_WARNING": "Fair warning",
}

DEPOSIT_STATE_WORDS: Mapping[str, str] = {
    DepositState.REQUIRED: "Deposit not paid yet",
    DepositState.PENDING: "Deposit being frozen by the payment provider",
    DepositState.FROZEN: "Deposit paid and frozen: you can bid",
    DepositState.EXEMPT: "No deposit needed from you",
    DepositState.APPLIED_TO_PRICE: "Deposit counted towards the price",
    DepositState.RELEASED: "Deposit returned",
    DepositState.FORFEITED: "Deposit forfeited",
}

FORMAT_WORDS: Mapping[str, str] = {
    Format.JUDICIAL_CN: "Judicial sale (China)",
    Format.ENGLISH_TIMED: "Timed online auction",
    Format.LIVE_AUCTIONEER: "Live auction",
    Format.FIXED_PRICE_SALE: "Fixed-price sale (after two failed auctions)",
}


def lot_state_words(status: str, phase: str | None = None, result: str | None = None) -> str:
    """The state of a lot as a bidder reads it."""
    if status == LotStatus.OPEN and phase is not None and phase in PHASE_WORDS:
        return PHASE_WORDS[phase]
    if result == "SOLD" and status not in (LotStatus.COMPLETED, LotStatus.DEFAULTED):
        return LOT_STATE_WORDS[LotStatus.SOLD]
    return LOT_STATE_WORDS.get(status, "State not known")


def deposit_state_words(state: str) -> str:
    return DEPOSIT_STATE_WORDS.get(state, "Deposit state not known")


def words_tables() -> dict[str, dict[str, str]]:
    """Every table, JSON-ready: what `GET /api/words` serves to the pages."""
    return {
        "lot_states": {str(k): v for k, v in LOT_STATE_WORDS.items()},
        "phases": dict(PHASE_WORDS),
        "deposit_states": {str(k): v for k, v in DEPOSIT_STATE_WORDS.items()},
        "formats": {str(k): v for k, v in FORMAT_WORDS.items()},
    }


# --- the extension rule ----------------------------------------------------------------------


def extension_rule_words(rules: LotRules) -> str:
    """Rules C6 in one sentence: "A bid in the last 5 minutes extends the end by 5 minutes"."""
    soft = rules.soft_close
    if rules.format is Format.LIVE_AUCTIONEER:
        return "The auctioneer closes the lot with the hammer, after a fair warning."
    if soft.mode is SoftCloseMode.OFF or soft.window == 0 or soft.extend == 0:
        return "The lot ends at its scheduled time; late bids do not extend it."
    which = (
        "bid" if soft.trigger is SoftCloseTrigger.ANY_VALID_BID else "bid that changes the price"
    )
    window, extend = duration_words(soft.window), duration_words(soft.extend)
    if soft.mode is SoftCloseMode.ADD_TO_END:
        sentence = f"A {which} in the last {window} adds {extend} to the end"
    elif soft.mode is SoftCloseMode.LIVE_RESET:
        sentence = f"Every {which} sets the end to {extend} later"
    else:
        sentence = f"A {which} in the last {window} extends the end by {extend}"
    if soft.cap_count is not None:
        sentence += f", at most {soft.cap_count} times"
    elif soft.cap_total is not None:
        sentence += f", by at most {duration_words(soft.cap_total)} in all"
    else:
        sentence += ", as often as needed"
    return sentence + "."


def how_to_buy_words(rules: LotRules) -> str | None:
    """How a fixed-price sale is bought (rules C10, clarification 9;
    `auction/rules/formats/fixed_price.py`), None for an auction. There is no bidding: the
    first bidder whose deposit is paid and who confirms the purchase at exactly the price buys
    the lot; registered priority holders may then match the same price within the window."""
    if rules.format is not Format.FIXED_PRICE_SALE:
        return None
    price = money(rules.start_price, rules.currency)
    deposit = (
        f"pay the deposit of {money(rules.deposit, rules.currency)}"
        if rules.deposit_required and rules.deposit
        else "register"
    )
    sentence = (
        f"Buy at the fixed price of {price}: {deposit}, then confirm the purchase at exactly "
        f"{price}. The first confirmation buys the lot; there is no bidding and the price "
        "does not change."
    )
    if rules.priority_rights and rules.priority_window > 0:
        sentence += (
            " If someone with a priority purchase right has registered, they have "
            f"{duration_words(rules.priority_window)} after that confirmation to buy at the "
            "same price instead."
        )
    return sentence + " If nobody confirms before the sale period ends, the lot is not sold."


def priority_rights_words(rules: LotRules) -> str | None:
    """The priority-purchase notice of a judicial lot (rules C7), None where there is none."""
    if not rules.priority_rights:
        return None
    if rules.format is Format.FIXED_PRICE_SALE:
        return (
            "Someone with a priority purchase right (for example a co-owner or a tenant) may buy "
            "the lot at the fixed price in place of the first buyer: the court lists them in its "
            "announcement."
        )
    return (
        "Someone with a priority purchase right (for example a co-owner or a tenant) may match "
        "the highest bid and buy the lot at that price: the court lists them in its announcement."
    )


# --- refusals --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RefusalContext:
    """The numbers a refusal names, from the lot as the server has it now."""

    currency: str
    price: int | None = None
    min_next: int | None = None
    step: int | None = None
    start_price: int | None = None
    deposit: int | None = None
    end: int | None = None
    timezone: str = "UTC"
    max_jump_steps: int | None = None
    #: A fixed-price sale's buyer code, once someone has bought it (rules clarification 9).
    fixed_price_buyer: str | None = None
    #: A fixed-price sale's price: the one amount that buys it (no steps, no bidding).
    fixed_price: int | None = None

    @classmethod
    def of(cls, state: LotState) -> RefusalContext:
        rules = state.rules
        step = rules.increment.step if isinstance(rules.increment, Fixed) else None
        return cls(
            currency=rules.currency,
            price=state.price,
            min_next=state.min_next,
            step=step,
            start_price=rules.start_price,
            deposit=rules.deposit if rules.deposit_required else 0,
            end=state.end,
            timezone=rules.legal_timezone,
            max_jump_steps=rules.max_jump_steps,
            fixed_price_buyer=state.leader_code
            if rules.format is Format.FIXED_PRICE_SALE and state.closed_at is not None
            else None,
            fixed_price=rules.start_price if rules.format is Format.FIXED_PRICE_SALE else None,
        )


def _next_bid(context: RefusalContext) -> str:
    amount = money(context.min_next, context.currency)
    if context.step:
        return f"The next bid is at least {amount} (step {money(context.step, context.currency)})."
    return f"The next bid is at least {amount}."


def refusal_words(reason: str, context: RefusalContext | None = None) -> str:
    """One or two sentences saying why a command was refused and what to do, with the numbers
    (`context`: the lot now; without it the sentence names none). Every `RejectReason` and
    every gateway or signed-bid code has its words; an unknown code gets a general sentence,
    never the code itself."""
    c = context or RefusalContext("CNY")
    have = context is not None
    cur = money(c.price, c.currency)
    if (
        have
        and c.fixed_price is not None
        and reason in (RejectReason.BELOW_MIN, RejectReason.OFF_GRID)
    ):
        price = money(c.fixed_price, c.currency)
        return (
            f"This lot is sold at a fixed price of {price}: confirm the purchase at exactly "
            f"{price}."
        )
    sentences: dict[str, str] = {
        RejectReason.LATE: "Bidding on this lot has ended: the bid arrived after the end."
        + (f" It ended at {time_words(c.end, c.timezone)}." if have and c.end else ""),
        RejectReason.BELOW_MIN: _next_bid(c)
        if have and c.min_next is not None
        else "The bid is below the lowest bid allowed now.",
        RejectReason.OFF_GRID: (
            f"Bids go up in steps of {money(c.step, c.currency)} from "
            f"{money(c.start_price, c.currency)}: bid {money(c.min_next, c.currency)} or a "
            "higher amount on a step."
            if have and c.step
            else f"That amount is not a valid bid here. {_next_bid(c) if have else ''}".strip()
        ),
        RejectReason.NO_DEPOSIT: f"Pay the deposit of {money(c.deposit, c.currency)} to bid."
        if have and c.deposit
        else "Pay this lot's deposit before you bid.",
        RejectReason.NOT_ELIGIBLE: "You cannot bid on this lot: verify your identity first.",
        RejectReason.SELF_OUTBID: (
            f"You are already the highest bidder at {cur}: no need to bid against yourself."
            if have and c.price is not None
            else "You are already the highest bidder: no need to bid against yourself."
        ),
        RejectReason.SUSPENDED: "Bidding is halted on this lot for now; no bid is taken.",
        RejectReason.DUPLICATE: "That was already done: nothing changed.",
        RejectReason.UNKNOWN_LOT: "There is no such lot.",
        RejectReason.NOT_REGISTERED: "Register for this lot before you bid.",
        RejectReason.BARRED: "You are barred from bidding on this lot.",
        RejectReason.NOT_OPEN: "The lot is not open for bids right now.",
        RejectReason.INVALID_AMOUNT: "That amount is not valid: enter a whole number of "
        "yuan, dollars or pounds, with at most two decimals.",
        RejectReason.WRONG_CURRENCY: f"Bids on this lot are in {c.currency}."
        if have
        else "The bid is in the wrong currency.",
        RejectReason.JUMP_NEEDS_CONFIRMATION: (
            f"That is far above the current price of {cur}; confirm the amount to send it."
        ),
        RejectReason.PROXY_DISABLED: "This lot does not take automatic (proxy) bids.",
        RejectReason.MAX_LOWER_NOT_ALLOWED: "A maximum can only be raised, not lowered.",
        RejectReason.RETRACTION_NOT_ALLOWED: "Bids on this lot cannot be withdrawn.",
        RejectReason.UNKNOWN_BID: "There is no such bid on this lot.",
        RejectReason.ILLEGAL_STATE: "The lot is not in a state where that can be done now.",
        RejectReason.NOT_DUE: "It is too early for that: the lot's time has not come yet.",
        RejectReason.RESUME_EXPIRED: "The lot was paused too long to be resumed (5 days at "
        "most); it has to be put up again.",
        RejectReason.ASK_TAKEN: (
            f"Another bidder ({c.fixed_price_buyer}) bought this lot at the fixed price of "
            f"{money(c.start_price, c.currency)}."
            if have and c.fixed_price_buyer
            else "Someone else took the asking price first; bid the new ask."
        ),
        RejectReason.NO_BIDS: "There is no bid yet: pass the lot instead.",
        RejectReason.DWELL_NOT_ELAPSED: "Wait a few seconds after the fair warning before the "
        "hammer falls.",
        RejectReason.NOT_PERMITTED: "That is not allowed here.",
        RejectReason.DUPLICATE_CODE: "That bidder code is already in use on this lot.",
        RejectReason.BALANCE_NOT_DUE: "The winner's balance is not due yet.",
        RejectReason.DECLINED: "The auctioneer did not take your bid at the ask.",
        # The gateway's and the signed-bid checks' own codes (docs/protocol.md §2.4).
        "RATE_LIMITED": "Too many bids in a short time: wait a moment and bid again.",
        "BAD_SIGNATURE": "Your browser's signature on the bid did not check out; reload the "
        "page and try again.",
        "IDEMPOTENCY_CONFLICT": "This request was already used for a different amount; "
        "reload the page and bid again.",
        "NOT_VERIFIED": "Verify your identity before you bid.",
        "NO_REQUEST": "The bid was not signed; reload the page and try again.",
        "NOT_A_BID": "That request is not a bid.",
        "MALFORMED": "The request was not in the expected form.",
        "MISMATCH": "The signed request does not match the bid; reload the page and try again.",
        "NO_IDENTITY": "Verify your identity before you bid.",
        "ATTESTATION_EXPIRED": "Your identity check has expired: verify your identity again.",
        "ATTESTATION_INVALID": "Your identity check is not valid: verify your identity again.",
        "NOT_A_PROVIDER": "Your identity check is not valid: verify your identity again.",
        "INVALID": "That request is not valid.",
        "LOT_CLOSED": "This lot has closed.",
        "NO_DEPOSIT_NEEDED": "This lot needs no deposit.",
    }
    return sentences.get(reason, "The request was refused.")


#: The console's commands as an auctioneer says them.
COMMAND_WORDS: Mapping[str, str] = {
    "OpenLot": "Opening the lot",
    "CloseLot": "Closing the lot",
    "Pause": "Pausing",
    "Suspend": "Suspending",
    "Resume": "Resuming",
    "Cancel": "Withdrawing the lot",
    "OpenRing": "Opening the ring",
    "SetAsk": "Setting the ask",
    "SetIncrement": "Setting the increment",
    "SetAutoAccept": "Auto-accepting online bids",
    "FloorBid": "A floor bid",
    "AcceptOnline": "Accepting the online bid",
    "DeclineOnline": "Declining the online bid",
    "FairWarning": "A fair warning",
    "Hammer": "The hammer",
    "PassLot": "Passing the lot",
    "UndoLastBid": "Undoing the last bid",
    "Reopen": "Reopening the lot",
    "NextLot": "Moving to the next lot",
}

_HINTS: Mapping[tuple[str, str], str] = {
    ("OpenLot", Format.LIVE_AUCTIONEER): " A live lot opens when you open the ring at an ask.",
    ("CloseLot", Format.LIVE_AUCTIONEER): " A live lot closes with the hammer or a pass.",
}


def command_refusal_words(command: str, reason: str, state: LotState | None) -> str:
    """Why the console's `command` (a command class name) was refused, in words naming the
    kind of lot and the numbers; never the class or format names."""
    what = COMMAND_WORDS.get(command, "That command")
    if reason == RejectReason.NOT_PERMITTED and state is not None:
        kind = state.rules.format
        lot = FORMAT_WORDS.get(kind, "this kind of lot").lower()
        return f"{what} does not apply to a {lot}.{_HINTS.get((command, kind), '')}"
    return refusal_for(reason, state)


def without_engine_names(text: str) -> str:
    """A rules-engine message (`ConfigError`) with the formats' names put in words:
    "JUDICIAL_CN deposit must be 5 %..20 %" → "Judicial sale (China) deposit must be …"."""
    for name, words in FORMAT_WORDS.items():
        text = text.replace(str(name), words)
    return text


#: Every code `refusal_words` knows, for tests and documentation.
def known_codes() -> frozenset[str]:
    return frozenset(
        {str(reason) for reason in RejectReason}
        | {
            "RATE_LIMITED",
            "BAD_SIGNATURE",
            "IDEMPOTENCY_CONFLICT",
            "NOT_VERIFIED",
            "NO_REQUEST",
            "NOT_A_BID",
            "MALFORMED",
            "MISMATCH",
            "NO_IDENTITY",
            "ATTESTATION_EXPIRED",
            "ATTESTATION_INVALID",
            "NOT_A_PROVIDER",
            "INVALID",
            "LOT_CLOSED",
            "NO_DEPOSIT_NEEDED",
        }
    )


def refusal_for(reason: str, state: LotState | None, **overrides: Any) -> str:
    """`refusal_words` with the context of `state` (None: a lot not in memory)."""
    if state is None:
        return refusal_words(reason)
    context = RefusalContext.of(state)
    if overrides:
        context = RefusalContext(**{**_fields(context), **overrides})
    return refusal_words(reason, context)


def _fields(context: RefusalContext) -> dict[str, Any]:
    return {name: getattr(context, name) for name in RefusalContext.__slots__}


__all__ = [
    "COMMAND_WORDS",
    "CURRENCY_SIGNS",
    "DEPOSIT_STATE_WORDS",
    "FORMAT_WORDS",
    "LOT_STATE_WORDS",
    "PHASE_WORDS",
    "RefusalContext",
    "command_refusal_words",
    "deposit_state_words",
    "duration_words",
    "extension_rule_words",
    "how_to_buy_words",
    "known_codes",
    "lot_state_words",
    "money",
    "priority_rights_words",
    "refusal_for",
    "refusal_words",
    "time_words",
    "without_engine_names",
    "words_tables",
]
