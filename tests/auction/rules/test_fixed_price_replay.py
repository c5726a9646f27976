"""A judicial lot that failed twice and was sold at a fixed price (变卖, clarification 9),
written to a ledger as the server writes it and replayed, unchanged, by the notary's core (the
check before co-signing) and by the auditor (`gavel audit verify`)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
from ledger_kit import T0, LedgerBuilder, signed_checkpoint

from auction.audit import DirectorySource, verify_ledger
from auction.rules import (
    DAY,
    HOUR,
    SECOND,
    BidAccepted,
    BidType,
    CloseLot,
    DepositFrozen,
    Format,
    LotClosed,
    OpenLot,
    PlaceBid,
    PriorityWindowOpened,
    RegisterBidder,
    Rejected,
    RejectReason,
    Result,
    judicial,
    plan_relist,
)
from auction.verify import LedgerReplay, ReplayError
from chain import parse_entry
from notary import (
    LedgerCursor,
    LogTrust,
    NotaryState,
    check_envelope,
    format_add_checkpoint,
    parse_add_checkpoint,
    verify_increment,
)

P0 = 100_000_000  # 1,000,000.00 CNY
STEP = 500_000


def register(builder: LedgerBuilder, lot: str, now: int, bidder: str, rank: int | None) -> None:
    code = f"P{rank}-{bidder.upper()}" if rank else f"C-{bidder.upper()}"
    builder.command(lot, now, RegisterBidder(bidder, code, True, priority_rank=rank))
    deposit = builder.lots[lot].state.rules.deposit
    builder.command(lot, now, DepositFrozen(bidder, deposit, f"tx-{lot}-{bidder}"))


def fail(builder: LedgerBuilder, lot: str) -> int:
    """Open the lot at its start and close it at its end with no bid; the close time."""
    rules = builder.lots[lot].state.rules
    builder.command(lot, rules.start_at, OpenLot())
    (closed,) = [
        e for e in builder.command(lot, rules.end_at, CloseLot()) if isinstance(e, LotClosed)
    ]
    assert closed.result is Result.FAILED
    return rules.end_at


def fixed_price_history() -> tuple[LedgerBuilder, dict[str, Any]]:
    """Auction, relisting (both failed), then the fixed-price sale: a taker, a refused second
    taker, a priority holder matching within the window, the close at the window's end."""
    builder = LedgerBuilder()
    t = T0 + SECOND
    first = judicial(start_price=P0, step=STEP, start_at=t + HOUR, end_at=t + HOUR + DAY)
    builder.create_lot("villa-1", "Villa 7, Lakeside Road", first, t)
    register(builder, "villa-1", t, "hana", 1)
    closed_at = fail(builder, "villa-1")

    relisting = plan_relist(
        builder.lots["villa-1"].state,
        start_price=P0 * 8 // 10,
        start_at=closed_at + 15 * DAY,
        end_at=closed_at + 16 * DAY,
        now=closed_at,
    )
    builder.create_lot("villa-2", "Villa 7, Lakeside Road (relisted)", relisting.rules, closed_at)
    closed_at = fail(builder, "villa-2")

    sale = plan_relist(
        builder.lots["villa-2"].state,
        start_price=P0 * 8 // 10,
        start_at=closed_at + DAY,
        end_at=closed_at + 61 * DAY,
        now=closed_at,
    )
    assert sale.rules.format is Format.FIXED_PRICE_SALE
    price = sale.rules.start_price
    lot = "villa-3"
    builder.create_lot(lot, "Villa 7, Lakeside Road (fixed-price sale)", sale.rules, closed_at)
    register(builder, lot, closed_at, "hana", 1)  # the co-owner, a priority holder
    register(builder, lot, closed_at, "ivan", None)
    register(builder, lot, closed_at, "jun", None)
    start = sale.rules.start_at
    builder.command(lot, start, OpenLot())
    low = builder.command(lot, start + 3 * DAY, PlaceBid("ivan", price - STEP, "CNY"))
    taken = builder.command(lot, start + 4 * DAY, PlaceBid("ivan", price, "CNY"))
    second = builder.command(lot, start + 4 * DAY + HOUR, PlaceBid("jun", price, "CNY"))
    match = builder.command(lot, start + 4 * DAY + 2 * HOUR, PlaceBid("hana", price, "CNY"))
    facts = {
        "price": price,
        "low": low,
        "taken": taken,
        "second": second,
        "match": match,
        "sale_seq": builder.sales[-1] if builder.sales else None,
    }
    builder.checkpoint()
    return builder, facts


def test_the_history_is_what_clarification_9_says() -> None:
    builder, facts = fixed_price_history()
    (low,) = facts["low"]
    assert isinstance(low, Rejected) and low.reason is RejectReason.BELOW_MIN
    window = [e for e in facts["taken"] if isinstance(e, PriorityWindowOpened)]
    assert len(window) == 1 and window[0].leader_code == "C-IVAN"
    (second,) = facts["second"]
    assert isinstance(second, Rejected) and second.reason is RejectReason.ASK_TAKEN
    assert "another bidder (C-IVAN) confirmed the purchase" in second.detail
    bids = [e for e in facts["match"] if isinstance(e, BidAccepted)]
    assert bids[0].bid_type is BidType.PRIORITY_MATCH and bids[0].code == "P1-HANA"
    (closed,) = [e for e in facts["match"] if isinstance(e, LotClosed)]
    assert (closed.result, closed.winner_code, closed.price) == (
        Result.SOLD,
        "P1-HANA",
        facts["price"],
    )
    assert facts["sale_seq"] == builder.size - 1  # the sale entry follows the close
    got = {
        lot: (o["status"], o["price"], o["leader_code"])
        for lot, o in replayed(builder).outcomes().items()
    }
    assert got == EXPECTED


def replayed(builder: LedgerBuilder) -> LedgerReplay:
    replay = LedgerReplay()
    for entry in builder.entries:
        replay.add(entry.seq, entry.type, entry.time_us, entry.body, entry.actor.kid)
    return replay


EXPECTED = {
    "villa-1": ("FAILED", None, None),
    "villa-2": ("FAILED", None, None),
    "villa-3": ("SOLD", P0 * 8 // 10, "P1-HANA"),
}


def test_the_auditor_replays_the_fixed_price_sale(tmp_path: Path) -> None:
    builder, facts = fixed_price_history()
    export = builder.write(tmp_path / "export")
    report = verify_ledger(
        DirectorySource(export.directory), workers=0, now_us=builder.last_t + SECOND
    )
    assert report.ok, report.failure
    assert {lot: (o["status"], o["price"], o["leader_code"]) for lot, o in report.lots.items()} == (
        EXPECTED
    )
    assert report.sales == 1 and report.lots["villa-3"]["sale_entry"] == facts["sale_seq"]
    assert report.rejected == 2  # the low confirmation and the second taker


def test_the_notary_core_replays_the_fixed_price_sale_before_co_signing() -> None:
    builder, _ = fixed_price_history()
    trust = LogTrust(builder.origin, (builder.signer.verifier,))
    state = NotaryState(builder.origin)
    cursor = LedgerCursor()
    checkpoint = signed_checkpoint(builder.tree, builder.size, builder.signer)
    accepted = check_envelope(
        parse_add_checkpoint(format_add_checkpoint(0, [], checkpoint)), trust, state
    )
    increment = verify_increment(
        state,
        accepted,
        builder.entry_bytes(),
        cursor,
        trust,
        now_us=builder.last_t + SECOND,
    )
    assert increment is not None and cursor.size == builder.size and not cursor.stale
    got = {
        lot: (o["status"], o["price"], o["leader_code"])
        for lot, o in cursor.replay.outcomes().items()
    }
    assert got == EXPECTED and cursor.replay.sales == 1


def test_a_forged_second_taker_does_not_replay() -> None:
    """The log claims the second ordinary taker was accepted: the same rules refuse it."""
    builder, facts = fixed_price_history()
    entries = [parse_entry(raw) for raw in builder.entry_bytes()]
    forged_at = next(
        e.seq
        for e in entries
        if e.body.get("lot") == "villa-3"
        and e.body.get("command", {}).get("bidder") == "jun"
        and e.body.get("command", {}).get("type") == "PlaceBid"
    )
    replay = LedgerReplay()
    for entry in entries[:forged_at]:
        replay.add(entry.seq, entry.type, entry.time_us, entry.body, entry.actor.kid)
    forged = copy.deepcopy(_thaw(entries[forged_at].body))
    honest = copy.deepcopy(_thaw(entries[forged_at + 1].body))
    forged["accepted"] = True
    forged["events"] = honest["events"]  # hana's match events, claimed for jun
    with pytest.raises(ReplayError, match=r"lot villa-3\): the rules give"):
        replay.add(forged_at, entries[forged_at].type, entries[forged_at].time_us, forged)


def _thaw(value: Any) -> Any:
    if isinstance(value, dict) or hasattr(value, "items"):
        return {k: _thaw(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_thaw(v) for v in value]
    return value
