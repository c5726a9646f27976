"""The pure core of the lots' video: which lot streams (`VideoDirector`, a state machine over
lot views, no I/O, no clock), and what the picture says (`overlay_for`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from streaming.model import MAX_SHORT_TEXT, MAX_TITLE, OverlayState, Rendition, is_valid_lot_id

from ..rules import Format
from ..service import LotView
from ..words import lot_state_words
from .settings import VideoSettings, largest_rendition

__all__ = [
    "CURRENCY_DIGITS",
    "STREAMING_STATUSES",
    "DeclareStream",
    "KeepStream",
    "ShowState",
    "StartStream",
    "StopStreamLater",
    "VideoAction",
    "VideoDirector",
    "format_price",
    "overlay_for",
    "recorded_rendition",
    "streamable",
    "wants_stream",
]

#: Lot statuses during which a lot's stream runs (rules C11: a paused lot keeps its picture).
STREAMING_STATUSES = frozenset({"OPEN", "PAUSED", "SUSPENDED"})

#: Minor-unit digits of currencies that do not have two (ISO 4217).
CURRENCY_DIGITS = {"JPY": 0, "KRW": 0, "VND": 0, "CLP": 0, "ISK": 0, "BHD": 3, "KWD": 3}
CURRENCY_SYMBOLS = {"GBP": "£", "USD": "$", "EUR": "€", "CNY": "¥", "JPY": "¥"}


def recorded_rendition(renditions: tuple[Rendition, ...], settings: VideoSettings) -> str:
    """Which of a lot's renditions is recorded: the settings' choice for lots that use the
    settings' renditions, otherwise the largest (what the hub's pipeline does)."""
    if renditions == settings.renditions:
        return settings.recorded_rendition
    return largest_rendition(renditions)


def wants_stream(view: LotView, lots: Literal["live", "all"]) -> bool:
    """Whether the lot's stream should run now."""
    if not is_valid_lot_id(view.lot_id):
        return False
    if lots == "live" and view.format != Format.LIVE_AUCTIONEER.value:
        return False
    return view.status in STREAMING_STATUSES


def streamable(view: LotView, lots: Literal["live", "all"]) -> bool:
    """Whether the lot ever streams under `lots` (its offers then get 409 until it does)."""
    if not is_valid_lot_id(view.lot_id):
        return False
    return lots == "all" or view.format == Format.LIVE_AUCTIONEER.value


def format_price(amount: int, currency: str) -> str:
    """`800000, "GBP"` → `"£8,000.00"`; unknown symbols: `"CHF 8,000.00"`."""
    digits = CURRENCY_DIGITS.get(currency, 2)
    whole, fraction = divmod(amount, 10**digits)
    text = f"{whole:,}" + (f".{fraction:0{digits}d}" if digits else "")
    symbol = CURRENCY_SYMBOLS.get(currency)
    return f"{symbol}{text}" if symbol else f"{currency} {text}"


def _phase_text(view: LotView) -> str:
    """The lot's state in words, as the lot room says it ("Open", "In the ring", "Sold")."""
    return lot_state_words(view.status, view.phase, view.result)


def overlay_for(view: LotView, *, now_us: int, scheduled_end_us: int | None) -> OverlayState:
    """What the picture shows for `view`: the title, the price (or the opening price), the
    leader's bidder code, the time left to the server's end time (timed lots while open), an
    EXTENDED marker once the end moved past `scheduled_end_us`, and the phase."""
    if view.price is not None:
        price_text = format_price(view.price, view.currency)
    else:
        price_text = "start " + format_price(view.start_price, view.currency)
    timed = view.format != Format.LIVE_AUCTIONEER.value
    ends_at_ms = view.end // 1000 if timed and view.status in STREAMING_STATUSES else None
    extended = timed and scheduled_end_us is not None and view.end > scheduled_end_us
    leader = view.leader_code[:MAX_SHORT_TEXT] if view.leader_code else None
    return OverlayState(
        seq=view.seq,
        server_ts_ms=now_us // 1000,
        title=view.title[:MAX_TITLE],
        price_text=price_text[:MAX_SHORT_TEXT],
        phase=_phase_text(view)[:MAX_SHORT_TEXT],
        ask_minor=view.min_next if view.status in STREAMING_STATUSES else None,
        leader_code=leader,
        ends_at_ms=ends_at_ms,
        extended=extended,
    )


@dataclass(frozen=True, slots=True)
class DeclareStream:
    lot_id: str


@dataclass(frozen=True, slots=True)
class StartStream:
    lot_id: str
    overlay: OverlayState


@dataclass(frozen=True, slots=True)
class ShowState:
    lot_id: str
    overlay: OverlayState


@dataclass(frozen=True, slots=True)
class StopStreamLater:
    """Close the stream after the tail (the picture keeps the final state until then)."""

    lot_id: str


@dataclass(frozen=True, slots=True)
class KeepStream:
    """The lot is open again before its tail ended: cancel the pending close."""

    lot_id: str


VideoAction = DeclareStream | StartStream | ShowState | StopStreamLater | KeepStream


class VideoDirector:
    """Which lot streams, as a state machine over lot views (no I/O, no clock).

    Per lot: unknown → (declared) → live ⇄ ending → unknown again once the adapter reports
    `stream_stopped`. Feed every view with `observe`; carry out the returned actions in order.
    """

    def __init__(self, lots: Literal["live", "all"]) -> None:
        self._lots = lots
        self._declared: set[str] = set()
        self._streams: dict[str, Literal["live", "ending"]] = {}

    def observe(
        self, view: LotView, *, now_us: int, scheduled_end_us: int | None
    ) -> list[VideoAction]:
        lot_id = view.lot_id
        if not streamable(view, self._lots):
            return []
        actions: list[VideoAction] = []
        if lot_id not in self._declared:
            self._declared.add(lot_id)
            actions.append(DeclareStream(lot_id))
        wanted = wants_stream(view, self._lots)
        overlay = overlay_for(view, now_us=now_us, scheduled_end_us=scheduled_end_us)
        stream = self._streams.get(lot_id)
        if stream is None:
            if wanted:
                self._streams[lot_id] = "live"
                actions.append(StartStream(lot_id, overlay))
            return actions
        if stream == "ending" and wanted:
            self._streams[lot_id] = "live"
            actions.append(KeepStream(lot_id))
        actions.append(ShowState(lot_id, overlay))
        if stream == "live" and not wanted:
            self._streams[lot_id] = "ending"
            actions.append(StopStreamLater(lot_id))
        return actions

    def stream_stopped(self, lot_id: str) -> None:
        """The adapter closed the lot's stream (after its tail)."""
        self._streams.pop(lot_id, None)

    def streaming(self, lot_id: str) -> bool:
        return lot_id in self._streams
