"""The demo: the showcase catalogue, its summary, and the modules of the living demo.

* `Timeline.for_duration(seconds)` says when the showcase's lots open and close, relative to
  the seeding time, compressed into the first half of a `--duration` run.
* `catalogue(t0, timeline)` is pure: the showcase's sales and lots, one per preset plus a
  three-lot judicial sale with staggered closes (rules C12: lot k closes at `T0 + k·Δ`).
* Without `--duration` (or with `--speed`) the demo keeps a living catalogue instead:
  `auction.demo.schedule` (pure: which lots exist when), `auction.demo.living` (the adapter
  that creates them), `auction.demo.lots.property_lot` (how every property lot is built).
* `Drivers` (`auction.demo.drivers`) owns the bot tasks and the clerks; the notaries are in
  `auction.demo.notaries`. Both are re-exported here.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Sequence
from dataclasses import dataclass

from chain import ChainError, parse_note

from ..gateway import bidder_code as bidder_code  # re-exported: rules C2.4 codes
from ..printable import printable
from ..rules import (
    SECOND,
    LotRules,
    LotStatus,
    Result,
    SoftClose,
    english_timed,
    judicial,
    live_auctioneer,
)
from ..service import ACTIVE_STATUSES, AuctionService
from ..storage import Counts, StoredLot
from ..words import FORMAT_WORDS, bidder_words, lot_state_words
from .drivers import BOT_NAMES as BOT_NAMES
from .drivers import HELD_GRACE as HELD_GRACE
from .drivers import Bot as Bot
from .drivers import Drivers as Drivers
from .drivers import RingPacing as RingPacing
from .drivers import synthetic_prc_id as synthetic_prc_id
from .lots import property_lot
from .notaries import DEMO_NOTARIES as DEMO_NOTARIES
from .notaries import DEMO_QUORUM as DEMO_QUORUM
from .notaries import DemoError as DemoError
from .notaries import DemoNotary as DemoNotary
from .notaries import free_port as free_port
from .notaries import prepare_notaries as prepare_notaries
from .notaries import start_notaries as start_notaries
from .notaries import stop_notaries as stop_notaries
from .schedule import LotSpec, Property, Stream

logger = logging.getLogger(__name__)

#: Currencies whose minor unit is not the hundredth (ISO 4217 exponent); others have two.
CURRENCY_DIGITS = {"JPY": 0, "KRW": 0, "VND": 0, "CLP": 0, "ISK": 0, "BHD": 3, "KWD": 3}


def format_money(amount: int | None, currency: str) -> str:
    """`210000000, "CNY"` → `"CNY 2,100,000.00"`; `None` → `"-"`."""
    if amount is None:
        return "-"
    digits = CURRENCY_DIGITS.get(currency, 2)
    whole, fraction = divmod(amount, 10**digits)
    text = f"{whole:,}"
    if digits:
        text += f".{fraction:0{digits}d}"
    return f"{currency} {text}"


@dataclass(frozen=True, slots=True)
class Timeline:
    """When things happen in the demo, as offsets from the seeding time (microseconds), and
    how fast bots and the clerk act (seconds)."""

    open_after: int
    window: int  # soft close W = E
    watch_close: int
    flat_close: int
    sale_first_close: int
    sale_spacing: int  # rules C12 Δ
    ring_open: int
    fair_warning_dwell: int
    ring_quiet: float  # the clerk warns after this long without a bid
    ring_deadline: float  # ... and in any case this long after the ring opened
    bot_pause: tuple[float, float]
    clerk_tick: float

    @classmethod
    def for_duration(cls, duration: float | None) -> Timeline:
        """A timeline whose timed lots all close in the first half of a `duration`-second run;
        `None` (serve until stopped) spreads the closes over a few minutes."""
        if duration is None:
            return cls(
                open_after=5 * SECOND,
                window=30 * SECOND,
                watch_close=240 * SECOND,
                flat_close=300 * SECOND,
                sale_first_close=180 * SECOND,
                sale_spacing=45 * SECOND,
                ring_open=20 * SECOND,
                fair_warning_dwell=3 * SECOND,
                ring_quiet=8.0,
                ring_deadline=180.0,
                bot_pause=(1.5, 8.0),
                clerk_tick=0.5,
            )
        span = int(duration * SECOND)
        return cls(
            open_after=span // 20,
            window=min(3 * SECOND, span // 6),  # rules C6 W = E
            watch_close=span * 40 // 100,
            flat_close=span * 45 // 100,
            sale_first_close=span * 22 // 100,
            sale_spacing=span * 8 // 100,
            ring_open=span // 20,
            fair_warning_dwell=2 * SECOND if duration < 30 else 3 * SECOND,  # C14: 2..5 s
            ring_quiet=max(0.5, duration / 20),
            ring_deadline=duration * 0.35,
            bot_pause=(duration / 200, duration / 35),
            clerk_tick=min(0.5, max(0.05, duration / 100)),
        )


@dataclass(frozen=True, slots=True)
class SeedLot:
    lot_id: str
    title: str
    rules: LotRules


@dataclass(frozen=True, slots=True)
class SeedSale:
    sale_id: str
    title: str
    lots: tuple[SeedLot, ...]


#: The showcase's three-lot sale of a bankrupt company's assets (title, start price, step).
_COURT_SALE = (
    ("Parking space B2-117, Lvcheng Xixi Garden, Xihu District", 18_000_000, 200_000),
    ("Office unit 1203, Huanglong Century Plaza, 168 m²", 360_000_000, 2_000_000),
    ("Textile machinery: 14 Tsudakoma air-jet looms, sold as one lot", 42_000_000, 500_000),
)


def _showcase_property(
    lot_id: str,
    facts: Property,
    *,
    start_price: int,
    step: int,
    start_at: int,
    end_at: int,
    window: int,
) -> SeedLot:
    """A showcase court lot, built like the schedule's (`demo_lots.property_lot`)."""
    spec = LotSpec(
        lot_id=lot_id, sale_id="", sale_title="", stream=Stream.COURT, index=0,
        property=facts, currency="CNY", start_price=start_price, step=step, deposit=0,
        announce_at=start_at, start_at=start_at, end_at=end_at, window=window, warn_by=None,
        dwell=0, bidders=0, ceiling=0, room=0, previous=None,
    )  # fmt: skip
    lot = property_lot(spec)
    return SeedLot(lot_id, lot.title, lot.rules)


def catalogue(t0: int, timeline: Timeline) -> tuple[SeedSale, ...]:
    """The demo's sales and lots for a run starting at `t0` (UTC µs). Pure.

    The judicial lots override the preset's 24 h minimum duration (`min_duration=0`): that
    minimum is a legal default for real sales, not for a demo that lasts seconds.
    """
    start = t0 + timeline.open_after
    window = timeline.window
    flat = _showcase_property(
        "hz-flat-1502",
        Property("flat", "Wenyi West Road, Hangzhou", "1502", "3", 89, 300_000_000),
        start_price=210_000_000,  # CNY 2,100,000.00 = 70 % of the appraisal
        step=1_000_000,
        start_at=start,
        end_at=t0 + timeline.flat_close,
        window=window,
    )
    watch = english_timed(
        start_price=350_000,  # USD 3,500.00
        reserve=380_000,
        start_at=start,
        end_at=t0 + timeline.watch_close,
        soft_close=SoftClose(window=window, extend=window),
        legal_timezone="America/New_York",
    )
    painting = live_auctioneer(
        start_price=800_000,  # GBP 8,000.00
        currency="GBP",
        start_at=t0 + timeline.ring_open,
        fair_warning_dwell=timeline.fair_warning_dwell,
        legal_timezone="Europe/London",
    )
    parking = Property("parking space", "Lvcheng Xixi Garden, Xihu District", "B2-117")
    staggered = (
        _showcase_property(
            "hz-0917-1",
            parking,
            start_price=18_000_000,
            step=200_000,
            start_at=start,
            end_at=t0 + timeline.sale_first_close,
            window=window,
        ),
        *(
            SeedLot(
                lot_id=f"hz-0917-{k + 1}",
                title=title,
                rules=judicial(
                    start_price=price,
                    step=step,
                    start_at=start,
                    end_at=t0 + timeline.sale_first_close + k * timeline.sale_spacing,
                    min_duration=0,
                    window=window,
                    extend=window,
                ),
            )
            for k, (title, price, step) in enumerate(_COURT_SALE)
            if k > 0
        ),
    )
    return (
        SeedSale(
            "hz-xihu-2024-0412",
            "Hangzhou Xihu District People's Court: judicial sale by court order",
            (flat,),
        ),
        SeedSale(
            "hz-0917",
            "Hangzhou Intermediate People's Court: assets of Xihu Textile Co. (in bankruptcy)",
            staggered,
        ),
        SeedSale(
            "ny-watches",
            "Important Watches Online, New York",
            (
                SeedLot(
                    "watch-speedmaster", "Omega Speedmaster Professional, 2019, full set", watch
                ),
            ),
        ),
        SeedSale(
            "ldn-evening",
            "Modern British Art Evening Sale, London (live)",
            (SeedLot("painting-harbour", "Harbour at Dusk, oil on canvas, 1958", painting),),
        ),
    )


async def seed(service: AuctionService, sales: Sequence[SeedSale]) -> int:
    """Store and start serving every sale and lot; returns the number of lots added."""
    added = 0
    for sale in sales:
        await service.add_sale(sale.sale_id, sale.title)
        for lot in sale.lots:
            await service.add_lot(lot.lot_id, lot.rules, lot.title, sale.sale_id)
            added += 1
    return added


#: Lots the summary lists, the newest.
SUMMARY_LOTS = 40


def summary(
    lots: Sequence[StoredLot],
    counts: Counts,
    location: str,
    notaries: Sequence[DemoNotary] = (),
    final_sales: Sequence[str] | None = None,
) -> str:
    """A short human summary of a finished run: each lot's result and price, how much is
    stored where, the ledger's size and latest published checkpoint (with how many notary
    cosignatures it carries) and the notaries. `final_sales`: the lots whose `sale` entry is in
    the published (co-signed) tree; a sale is final only then."""
    lines = [
        f"gavel demo: {counts.lots} lots in {counts.sales} sales; {counts.commands} commands and "
        f"{counts.events} events stored in {location}"
    ]
    for notary in notaries:
        lines.append(f"gavel demo: notary {notary.name} on {notary.url} ({notary.directory})")
    checkpoint = counts.checkpoint
    if checkpoint is not None:
        root = base64.b64encode(checkpoint.root).decode("ascii")
        cosignatures = _cosignature_count(checkpoint.note)
        lines.append(
            f"gavel demo: ledger {counts.origin}: {counts.ledger_entries} entries; latest "
            f"checkpoint: size {checkpoint.size}, root {root} (published, "
            f"{cosignatures} notary cosignatures)"
        )
    else:
        lines.append(f"gavel demo: ledger: {counts.ledger_entries} entries, no checkpoint yet")
    if len(lots) > SUMMARY_LOTS:  # a long living run: the newest lots
        lines.append(f"  ... {len(lots) - SUMMARY_LOTS} earlier lots (stored and on the ledger)")
        lots = lots[-SUMMARY_LOTS:]
    for lot in lots:
        state = lot.state
        price = format_money(state.price, lot.rules.currency)
        if state.result is Result.SOLD:
            outcome = f"{price} to {bidder_words(state.leader_code or '')}"
            if final_sales is not None:
                final = lot.lot_id in final_sales
                outcome += " (final: co-signed)" if final else " (not final: awaiting notaries)"
        elif state.status is LotStatus.SCHEDULED:
            opening = format_money(lot.rules.start_price, lot.rules.currency)
            outcome = f"not open yet (starts at {opening})"
        elif state.status in ACTIVE_STATUSES:
            outcome = f"{price} (not closed yet)"
        else:
            outcome = "no sale" if state.status is not LotStatus.CANCELLED else "withdrawn"
        status = lot_state_words(state.status)
        kind = FORMAT_WORDS.get(lot.rules.format, "Auction")
        lines.append(
            f"  {status:<10} {kind:<22} {printable(lot.lot_id):<18} {outcome}  "
            f"[{lot.bids} bid{'' if lot.bids == 1 else 's'}] {printable(lot.title)}"
        )
    return "\n".join(lines)


def _cosignature_count(note: bytes) -> int:
    """How many signature lines of a checkpoint are not the log's own (one log signature)."""
    try:
        return max(0, len(parse_note(note).signatures) - 1)
    except ChainError:
        return 0
