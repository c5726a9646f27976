"""Sales, lots and bidders, and their registration and deposit projections."""

from __future__ import annotations

from sqlalchemy import insert, select

from ..rules import LotRules, LotState, encode
from .base import _StoreCore
from .errors import StorageConflict, _translated
from .records import Deposit, Registration, StoredLot
from .schema import _DEPOSITS, _LOTS, _REGISTRATIONS, _SALES


class _Catalogue(_StoreCore):
    """Sales, lots and bidders, and the registration and deposit projections of lots'
    events."""

    def add_sale(self, sale_id: str, title: str, *, created_at: int | None = None) -> None:
        """Store a new sale; add its lots with `add_lot(..., sale_id=sale_id)` afterwards.
        Raises `StorageConflict` if the id is taken."""
        row = {"sale_id": sale_id, "title": title, "created_at": self._now(created_at)}
        with _translated(f"adding sale {sale_id!r}"), self._engine.begin() as connection:
            connection.execute(insert(_SALES).values(row))

    def add_lot(
        self,
        lot_id: str,
        rules: LotRules,
        title: str,
        sale_id: str | None = None,
        *,
        created_at: int | None = None,
    ) -> StoredLot:
        """Store a new lot (no history yet) and return it; the caller starts serving it.

        Raises `StorageConflict` if the id is taken or the sale does not exist.
        """
        created = self._now(created_at)
        row = {
            "lot_id": lot_id,
            "sale_id": sale_id,
            "title": title,
            "rules": encode(rules),
            "created_at": created,
        }
        with self._ledger_lock:
            writer = self._ledger_writer()
            with self._ledger_transaction(f"adding lot {lot_id!r}") as connection:
                self._sequence(connection, writer)
                pending = writer.start()
                sale_title = None
                if sale_id is not None:
                    sale_title = connection.execute(
                        select(_SALES.c.title).where(_SALES.c.sale_id == sale_id)
                    ).scalar()
                    if sale_title is None:
                        raise StorageConflict(f"adding lot {lot_id!r}: no sale {sale_id!r}")
                connection.execute(insert(_LOTS).values(row))
                writer.add_lot(pending, lot_id, rules, title, sale_id, created)
                writer.write(connection, pending)
            writer.commit(pending)
        self._appended(pending)
        state = LotState.create(lot_id, rules)
        return StoredLot(lot_id, sale_id, sale_title, title, rules, created, state, 0, 0)

    def add_bidder(self, bidder_id: str, *, created_at: int | None = None) -> None:
        """Record a bidder id (idempotent). Registrations add their bidder automatically."""
        with _translated(f"adding bidder {bidder_id!r}"), self._engine.begin() as connection:
            self._upsert_bidders(connection, {bidder_id: self._now(created_at)})

    def registrations(self, lot_id: str) -> list[Registration]:
        """The projected registrations of a lot (sealed data: for the court/compliance role)."""
        with _translated("reading registrations"), self._engine.connect() as connection:
            rows = connection.execute(
                select(_REGISTRATIONS)
                .where(_REGISTRATIONS.c.lot_id == lot_id)
                .order_by(_REGISTRATIONS.c.registered_at, _REGISTRATIONS.c.bidder_id)
            ).all()
        return [Registration(**row._asdict()) for row in rows]

    def deposits(self, lot_id: str) -> list[Deposit]:
        """The projected deposit state of every bidder of a lot."""
        with _translated("reading deposits"), self._engine.connect() as connection:
            rows = connection.execute(
                select(_DEPOSITS)
                .where(_DEPOSITS.c.lot_id == lot_id)
                .order_by(_DEPOSITS.c.bidder_id)
            ).all()
        return [Deposit(**row._asdict()) for row in rows]
