"""How the demo builds a property lot from its specification: one function for every property
lot of the demo, the showcase's and the living schedule's (`auction.demo.schedule`).

`property_lot(spec)` is the place to extend what a demo lot carries (its facts, pictures):
every lot the demo creates goes through it.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..rules import Fixed, LotRules, judicial, live_auctioneer
from .schedule import SECOND, LotSpec, Property


@dataclass(frozen=True, slots=True)
class DemoLot:
    """A lot ready for `AuctionService.add_lot(spec.lot_id, rules, title, spec.sale_id)`."""

    rules: LotRules
    title: str


def property_title(facts: Property) -> str:
    """The catalogue title of a property: `Flat 1502, 89 m², Building 3, Wenyi West Road,
    Hangzhou`, `Parking space B2-117, Lvcheng Xixi Garden, Xihu District`, ..."""
    area = f"{facts.area_m2} m², " if facts.area_m2 else ""
    building = f"Building {facts.building}, " if facts.building else ""
    if facts.kind == "flat":
        return f"Flat {facts.unit}, {area}{building}{facts.place}"
    if facts.kind == "parking space":
        return f"Parking space {facts.unit}, {facts.place}"
    if facts.kind == "garage":
        return f"Lock-up garage {facts.unit}, {facts.place}"
    if facts.kind == "house":
        return f"Terraced house, {area}{facts.place}"
    if facts.kind == "land":
        return f"Plot of land, {area}{facts.place}"
    return f"{facts.kind.capitalize()}, {area}{building}{facts.place}"


def property_lot(spec: LotSpec) -> DemoLot:
    """The rules and title of the property lot `spec`.

    Court lots (`JUDICIAL_CN`) override the preset's 24 h minimum duration (`min_duration=0`):
    that minimum is a legal default for real sales, not for a demo whose lots last minutes.
    Live lots take bids in the spec's fixed step (the auctioneer may change it in the ring)."""
    title = property_title(spec.property)
    if spec.warn_by is None:  # a timed court lot
        rules = judicial(
            start_price=spec.start_price,
            appraisal=spec.property.appraisal,
            step=spec.step,
            currency=spec.currency,
            start_at=spec.start_at,
            end_at=spec.end_at,
            min_duration=0,
            window=spec.window,
            extend=spec.window,
        )
    else:
        rules = live_auctioneer(
            start_price=spec.start_price,
            currency=spec.currency,
            start_at=spec.start_at,
            increment=Fixed(spec.step),
            fair_warning_dwell=max(2 * SECOND, spec.dwell),
            deposit=spec.deposit,
            legal_timezone="Europe/London",
        )
    return DemoLot(rules, title)
