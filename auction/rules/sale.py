"""Rules C12: multi-lot sales. Pure coordination between lots that each keep their own writer.

The sale never touches a lot's state: it reads the events a lot produced and answers with the
commands other lots of the same sale must receive (group soft close, stop-remaining). The
adapter delivers those commands through each lot's own queue, so every lot still processes its
commands strictly in ingress order and every one of them is logged.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from .commands import AlignEnd, Authority, Cancel
from .config import LotRules, Scope
from .errors import ConfigError
from .events import EndExtended, LotClosed, Result
from .states import LotStatus


def staggered_ends(first_end: int, interval: int, count: int) -> list[int]:
    """Rules C12 staggered closes: lot k closes at `T0 + k·Δ`."""
    if interval < 0 or count < 0:
        raise ConfigError("interval and count must be non-negative")
    return [first_end + k * interval for k in range(count)]


def stagger(rules: Sequence[LotRules], first_end: int, interval: int) -> list[LotRules]:
    """The same lots with their scheduled ends staggered in catalogue order."""
    return [
        r.replace(end_at=end)
        for r, end in zip(rules, staggered_ends(first_end, interval, len(rules)), strict=True)
    ]


@dataclass(frozen=True, slots=True)
class Sale:
    """A catalogue of lots in order. `debt` (minor units) enables Art 14 stop-remaining."""

    sale_id: str
    lots: tuple[str, ...]
    groups: Mapping[str, str] = field(default_factory=dict)  # lot id -> soft-close group id
    debt: int | None = None
    proceeds: int = 0
    stopped: bool = False

    def __post_init__(self) -> None:
        if len(set(self.lots)) != len(self.lots):
            raise ConfigError("a lot appears twice in the sale")


def on_lot_events(
    sale: Sale,
    lot_id: str,
    events: Iterable[Any],
    statuses: Mapping[str, LotStatus],
) -> tuple[Sale, list[tuple[str, Any]]]:
    """React to one lot's events. Returns the new sale and `(lot_id, command)` to deliver.

    * an `EndExtended` with scope GROUP or SALE → `AlignEnd` to every other open lot in scope;
    * a `LotClosed` SOLD adds to the proceeds; once they cover the debt (2020 Art 14) every lot
      not yet open is cancelled (`STOP_REMAINING`).
    """
    commands: list[tuple[str, Any]] = []
    for event in events:
        if isinstance(event, EndExtended) and event.scope in (Scope.GROUP, Scope.SALE):
            for other in sale.lots:
                if other == lot_id or statuses.get(other) is not LotStatus.OPEN:
                    continue
                if event.scope == Scope.GROUP and sale.groups.get(other) != event.group:
                    continue
                commands.append((other, AlignEnd(end=event.end_after, source_lot=lot_id)))
        elif isinstance(event, LotClosed) and event.result is Result.SOLD and event.price:
            sale = replace(sale, proceeds=sale.proceeds + event.price)
            if sale.debt is not None and not sale.stopped and sale.proceeds >= sale.debt:
                sale, stop = stop_remaining(sale, statuses, "proceeds cover the debt")
                commands.extend(stop)
    return sale, commands


def stop_remaining(
    sale: Sale, statuses: Mapping[str, LotStatus], reason: str
) -> tuple[Sale, list[tuple[str, Any]]]:
    """Admin action `STOP_REMAINING`: cancel every lot of the sale that has not opened yet."""
    commands: list[tuple[str, Any]] = [
        (
            lot,
            Cancel(
                reason=f"STOP_REMAINING: {reason}",
                by=Authority.COURT,
                basis="SPC 2020 Art 14",
            ),
        )
        for lot in sale.lots
        if statuses.get(lot) is LotStatus.SCHEDULED
    ]
    return replace(sale, stopped=True), commands
