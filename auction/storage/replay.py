"""Rebuilding a lot from its stored history rows through the rules engine's replay,
checking numbering and events as it goes (fails closed: `CorruptHistory`,
`HistoryDiverged`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from ..rules import BidAccepted, LotRules, LotState, Rejected, RulesError, apply, decode, encode
from .errors import CorruptHistory, HistoryDiverged


def _decode_rules(row: Any) -> LotRules:
    rules = _decode_value(row.lot_id, None, row.rules)
    if not isinstance(rules, LotRules):
        raise CorruptHistory(row.lot_id, None, "stored rules are not a LotRules")
    return rules


def _decode_value(lot_id: str, n: int | None, data: Any) -> Any:
    try:
        return decode(data)
    except RulesError as exc:
        raise CorruptHistory(lot_id, n, f"cannot decode {str(data)[:80]}: {exc}") from exc


@dataclass(slots=True)
class _Replay:
    """Rebuilds one lot from its rows, checking numbering and events as it goes."""

    lot_id: str
    rules: LotRules
    state: LotState = dataclasses.field(init=False)
    commands: int = 0
    bids: int = 0

    def __post_init__(self) -> None:
        self.state = LotState.create(self.lot_id, self.rules)

    def feed(self, row: Any) -> None:
        if row.n != self.commands:
            raise CorruptHistory(self.lot_id, row.n, f"expected row {self.commands} next")
        command = _decode_value(self.lot_id, row.n, row.command)
        try:
            state, events = apply(self.state, command, row.ingress_us)
        except RulesError as exc:
            raise CorruptHistory(
                self.lot_id, row.n, f"the engine refused to replay: {exc}"
            ) from exc
        expected = encode(events)
        accepted = not (len(events) == 1 and isinstance(events[0], Rejected))
        if expected != row.events or accepted != row.accepted:
            raise HistoryDiverged(self.lot_id, row.n, expected, row.events)
        self.state = state
        self.commands += 1
        self.bids += sum(isinstance(item, BidAccepted) for item in events)
