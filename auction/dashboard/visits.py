"""Visitors and stream watchers per lot and day, and the live stream's viewer counts over time:
the counters of the staff dashboard (`auction.dashboard.analytics`). Counts only, no personal data.

* `UniqueCounter` (pure, takes `now`): whether a visitor was already counted today for a lot
  and kind ("visit": `GET /api/lots/{lot}`, which the lot page loads; "watch": a stream offer
  answered).
  A visitor is the bearer session if the request carries one, else the client address; it is
  kept only in memory, as a keyed hash (HMAC-SHA-256 with a random key made at start and never
  stored, truncated to 12 bytes), forgotten when the UTC day changes, and bounded
  (`max_visitors` a day over all lots: past it nobody new is counted that day). After a
  restart a visitor seen earlier the same day counts again.
* `VisitStore` (SQL, blocking): the daily counts (`gavel_visit`: lot, UTC day, kind, count)
  and viewer samples (`gavel_viewer_sample`: lot, time, viewers; at most `max_samples` per
  lot, the oldest dropped) in the server's database.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Engine

from ..errors import Unavailable

DAY_US = 24 * 3600 * 1_000_000
KINDS = ("visit", "watch")
#: Unique visitors remembered a day over all lots (memory bound: ~100 bytes each).
MAX_VISITORS = 200_000
#: Viewer-count samples kept per lot.
MAX_SAMPLES = 5_000

_METADATA = sa.MetaData()

VISITS = sa.Table(
    "gavel_visit",
    _METADATA,
    sa.Column("lot", sa.String(128), primary_key=True),
    sa.Column("day", sa.Integer, primary_key=True),  # days since 1970-01-01 UTC
    sa.Column("kind", sa.String(8), primary_key=True),
    sa.Column("count", sa.BigInteger, nullable=False),
)

SAMPLES = sa.Table(
    "gavel_viewer_sample",
    _METADATA,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("lot", sa.String(128), nullable=False, index=True),
    sa.Column("t_us", sa.BigInteger, nullable=False),
    sa.Column("viewers", sa.Integer, nullable=False),
)


class VisitStoreError(Unavailable):
    """The database failed."""


@dataclass(slots=True)
class UniqueCounter:
    """Who was counted today (pure; module docstring)."""

    max_visitors: int = MAX_VISITORS
    key: bytes = field(default_factory=lambda: secrets.token_bytes(32))
    day: int = -1
    seen: set[bytes] = field(default_factory=set)

    def first_today(self, lot: str, kind: str, visitor: str, now_us: int) -> bool:
        """True (and remembered) if `visitor` was not counted today for `lot` and `kind`."""
        today = now_us // DAY_US
        if today != self.day:
            self.day, self.seen = today, set()
        message = f"{kind}\n{lot}\n{visitor}".encode()
        digest = hmac.new(self.key, message, hashlib.sha256).digest()[:12]
        if digest in self.seen or len(self.seen) >= self.max_visitors:
            return False
        self.seen.add(digest)
        return True


class VisitStore:
    """The daily counts and the viewer samples (blocking; call from a worker thread)."""

    def __init__(self, engine: Engine, max_samples: int = MAX_SAMPLES) -> None:
        self._engine = engine
        self._max_samples = max_samples
        try:
            _METADATA.create_all(engine, checkfirst=True)
        except sa_exc.SQLAlchemyError as exc:
            raise VisitStoreError(f"cannot create the visit tables: {exc}") from exc

    def _run(self, function: Any) -> Any:
        try:
            with self._engine.begin() as connection:
                return function(connection)
        except sa_exc.SQLAlchemyError as exc:
            raise VisitStoreError(f"the visit tables failed: {exc}") from exc

    def count(self, lot: str, kind: str, now_us: int) -> None:
        """Add one to today's count of `kind` for `lot`."""
        day = now_us // DAY_US
        key = (VISITS.c.lot == lot) & (VISITS.c.day == day) & (VISITS.c.kind == kind)

        def add(connection: sa.Connection) -> None:
            updated = connection.execute(
                VISITS.update().where(key).values(count=VISITS.c.count + 1)
            )
            if updated.rowcount == 0:
                connection.execute(VISITS.insert().values(lot=lot, day=day, kind=kind, count=1))

        self._run(add)

    def totals(self) -> dict[tuple[str, str], int]:
        """(lot, kind) → the daily unique counts summed over every day."""
        query = sa.select(VISITS.c.lot, VISITS.c.kind, sa.func.sum(VISITS.c.count)).group_by(
            VISITS.c.lot, VISITS.c.kind
        )
        rows = self._run(lambda connection: connection.execute(query).all())
        return {(row[0], row[1]): int(row[2]) for row in rows}

    def sample(self, counts: dict[str, int], now_us: int) -> None:
        """Record each lot's current viewer count; keep the newest `max_samples` per lot."""
        if not counts:
            return

        def insert(connection: sa.Connection) -> None:
            connection.execute(
                SAMPLES.insert(),
                [{"lot": lot, "t_us": now_us, "viewers": n} for lot, n in counts.items()],
            )
            for lot in counts:
                cutoff = (
                    sa.select(SAMPLES.c.id)
                    .where(SAMPLES.c.lot == lot)
                    .order_by(SAMPLES.c.id.desc())
                    .offset(self._max_samples)
                    .limit(1)
                    .scalar_subquery()
                )
                connection.execute(
                    SAMPLES.delete().where((SAMPLES.c.lot == lot) & (SAMPLES.c.id <= cutoff))
                )

        self._run(insert)

    def samples(self) -> dict[str, list[tuple[int, int]]]:
        """lot → its (t_us, viewers) samples, oldest first."""
        query = sa.select(SAMPLES.c.lot, SAMPLES.c.t_us, SAMPLES.c.viewers).order_by(SAMPLES.c.id)
        rows = self._run(lambda connection: connection.execute(query).all())
        found: dict[str, list[tuple[int, int]]] = {}
        for lot, t_us, viewers in rows:
            found.setdefault(lot, []).append((int(t_us), int(viewers)))
        return found


__all__ = ["KINDS", "UniqueCounter", "VisitStore", "VisitStoreError"]
