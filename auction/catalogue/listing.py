"""Which lots the catalogue lists (`GET /api/lots`): pure.

Every lot that can still change (upcoming, open, paused) and the latest closed ones: a demo or
a platform that runs for days keeps every lot and its history in storage and on the ledger, but
its catalogue shows the newest `results` results (default `DEFAULT_RESULTS`) and says how many
older ones it left off; `before` pages back through them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ..service import LotView

#: Closed lots listed by default, newest first.
DEFAULT_RESULTS = 40
#: The most closed lots one request may ask for.
MAX_RESULTS = 1000


@dataclass(frozen=True, slots=True)
class Listing:
    lots: tuple[LotView, ...]  # in catalogue order
    older_results: int  # closed lots left off (closed before the oldest one listed)


def listing(
    views: Sequence[LotView], *, results: int = DEFAULT_RESULTS, before: int | None = None
) -> Listing:
    """The lots to list from `views` (catalogue order, which it keeps): every active lot and
    the `results` most recently closed; with `before` (server time, µs) only the closed lots
    that closed before it (the next page of results)."""
    closed = [
        view
        for view in views
        if not view.active and (before is None or (view.closed_at or 0) < before)
    ]
    closed.sort(key=lambda view: (view.closed_at or 0, view.lot_id), reverse=True)
    shown = {view.lot_id for view in closed[:results]}
    lots = tuple(view for view in views if view.lot_id in shown or (before is None and view.active))
    return Listing(lots, len(closed) - len(shown))
