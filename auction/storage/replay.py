"""Rebuilding a lot from its stored history rows through the rules engine's replay,
checking numbering and events as it goes (fails closed: `CorruptHistory`,
`HistoryDiverged`).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from ..rules import (
    BidAccepted,
    LotRules,
    LotState,
    Rejected,
    RulesError,
    decode,
    encode,
    replay_steps,
)
from .errors import CorruptHistory, HistoryDiverged
from .records import StoredLot


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


def _replay_lot(lot: Any, rows: Sequence[Any]) -> StoredLot:
    """Rebuild the lot of catalogue row `lot` (a lots row with its sale's `sale_title`) from
    its history rows, in order of `n`, through the rules engine's replay.

    Fails closed: `CorruptHistory` for an unreadable row, a gap in `n` or a command the engine
    refuses to apply; `HistoryDiverged` when the engine gives other events than the stored
    ones. The caller serves the returned state and continues the lot's numbering at
    `commands`."""
    lot_id: str = lot.lot_id
    rules = _decode_rules(lot)
    state = LotState.create(lot_id, rules)
    steps = replay_steps(state, _commands(lot_id, rows))
    bids = 0
    row: Any = None
    try:
        for row, (after, events) in zip(rows, steps, strict=True):
            expected = encode(events)
            accepted = not (len(events) == 1 and isinstance(events[0], Rejected))
            if expected != row.events or accepted != row.accepted:
                raise HistoryDiverged(lot_id, row.n, expected, row.events)
            bids += sum(isinstance(item, BidAccepted) for item in events)
            state = after
    except RulesError as exc:
        raise CorruptHistory(lot_id, row.n, f"the engine refused to replay: {exc}") from exc
    return StoredLot(
        lot_id=lot_id,
        sale_id=lot.sale_id,
        sale_title=lot.sale_title,
        title=lot.title,
        rules=rules,
        created_at=lot.created_at,
        state=state,
        commands=len(rows),
        bids=bids,
    )


def _commands(lot_id: str, rows: Sequence[Any]) -> Iterator[tuple[int, Any]]:
    """`(ingress_us, command)` of each row, checking that rows are numbered 0, 1, 2, ..."""
    for n, row in enumerate(rows):
        if row.n != n:
            raise CorruptHistory(lot_id, row.n, f"expected row {n} next")
        yield row.ingress_us, _decode_value(lot_id, row.n, row.command)
