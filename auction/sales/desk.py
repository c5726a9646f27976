"""The console's sale actions over a running service (`SaleDesk`): create a sale with its
lots, publish its notice, pause, resume, cancel and close it, relist a failed lot (rules C10,
`plan_relist`; after a judicial lot's second failure its fixed-price sale). The plan, the
errors and the store are in `auction.sales.sale`; each action is one `document` ledger entry
(`auction.sales.sale.action_body`)."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from chain import EntryType

from ..rules import (
    Authority,
    Cancel,
    LotStatus,
    NoticeTooShort,
    Pause,
    Rejected,
    RelistError,
    Resume,
    plan_relist,
)
from .sale import (
    MAX_NOTICE,
    NOT_STARTED,
    OPEN_LIKE,
    BadSale,
    CannotRelist,
    RelistTooEarly,
    SaleExists,
    SalePlan,
    SaleRecord,
    SaleState,
    SaleStore,
    UnknownSale,
    _id,
    _text,
    _whole,
    action_body,
    plan_rules,
)

if TYPE_CHECKING:
    from ..service import AuctionService


@dataclass(frozen=True, slots=True)
class LotOutcome:
    """What one lot answered to a sale action: applied, or refused with the engine's reason."""

    lot_id: str
    applied: bool
    reason: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"lot": self.lot_id, "applied": self.applied, "reason": self.reason}


class SaleDesk:
    """The console's sale actions over a running service and the sales store."""

    def __init__(self, service: AuctionService, store: SaleStore) -> None:
        self._service = service
        self._store = store

    async def _call(self, function: Any, *args: Any, **kwargs: Any) -> Any:
        return await asyncio.to_thread(function, *args, **kwargs)

    async def record(self, sale_id: str) -> SaleRecord:
        record = await self._call(self._store.get, sale_id)
        if record is None:
            raise UnknownSale(f"there is no sale {sale_id!r}")
        assert isinstance(record, SaleRecord)
        return record

    async def records(self) -> list[SaleRecord]:
        result: list[SaleRecord] = await self._call(self._store.all)
        return result

    async def relists(self) -> dict[str, tuple[str, str]]:
        result: dict[str, tuple[str, str]] = await self._call(self._store.relists)
        return result

    def lots_of(self, sale_id: str) -> list[Any]:
        """The sale's lots' views, in catalogue order (relisted lots after the others)."""
        return [view for view in self._service.views() if view.sale_id == sale_id]

    async def create(self, plan: SalePlan, by: str) -> tuple[SaleRecord, int]:
        service = self._service
        for lot in plan.lots:
            if service.view(lot.lot_id) is not None:
                raise SaleExists(f"a lot {lot.lot_id!r} already exists")
        if await self._call(self._store.get, plan.sale_id) is not None:
            raise SaleExists(f"a sale {plan.sale_id!r} already exists")
        rules = plan_rules(plan, service.now())
        await self._call(self._store.add, plan, service.now())
        await service.add_sale(plan.sale_id, plan.title)
        for lot, one in zip(plan.lots, rules, strict=True):
            await service.add_lot(lot.lot_id, one, lot.title, plan.sale_id)
        ends = {lot.lot_id: one.end_at for lot, one in zip(plan.lots, rules, strict=True)}
        seq = await service.record(
            EntryType.DOCUMENT,
            action_body(
                plan.sale_id, "created", by, start_at=plan.start_at, ends=ends, round=plan.round
            ),
        )
        return await self.record(plan.sale_id), seq

    async def publish(self, sale_id: str, notice: str, by: str) -> tuple[SaleRecord, int]:
        record = await self.record(sale_id)
        if record.status != "scheduled" or record.notice_entry is not None:
            raise SaleState("the notice of this sale is already published")
        text = _text(notice, "the notice", MAX_NOTICE)
        digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
        service = self._service
        seq = await service.record(
            EntryType.DOCUMENT,
            action_body(sale_id, "notice", by, sha256=digest, size=len(text.encode("utf-8"))),
        )
        await self._call(
            self._store.update,
            sale_id,
            service.now(),
            status="published",
            notice=text,
            notice_sha256=digest,
            notice_entry=seq,
        )
        return await self.record(sale_id), seq

    async def act(
        self, sale_id: str, action: str, reason: str, by: str
    ) -> tuple[SaleRecord, list[LotOutcome], int]:
        """`pause`, `resume`, `cancel` or `close` the sale (rules C11, C12)."""
        record = await self.record(sale_id)
        reason = _text(reason, "the reason", 500)
        if record.status in ("cancelled", "closed"):
            raise SaleState(f"the sale is {record.status}: nothing more can be done to it")
        views = self.lots_of(sale_id)
        statuses = {view.lot_id: LotStatus(view.status) for view in views}
        command: Any
        if action == "pause":
            targets = [lot for lot, status in statuses.items() if status in OPEN_LIKE]
            if not targets:
                raise SaleState("no lot of this sale is open: there is nothing to pause")
            command, status, word = Pause(reason, by=Authority.CLERK), "paused", "paused"
        elif action == "resume":
            targets = [lot for lot, status in statuses.items() if status is LotStatus.PAUSED]
            if not targets:
                raise SaleState("no lot of this sale is paused: there is nothing to resume")
            command, status, word = Resume(reason, by=Authority.CLERK), "published", "resumed"
        elif action == "cancel":
            live = NOT_STARTED | OPEN_LIKE | {LotStatus.PAUSED, LotStatus.SUSPENDED}
            targets = [lot for lot, status in statuses.items() if status in live]
            command, status, word = Cancel(reason, by=Authority.CLERK), "cancelled", "cancelled"
        elif action == "close":
            running = [
                lot
                for lot, status in statuses.items()
                if status in NOT_STARTED | OPEN_LIKE | {LotStatus.PAUSED, LotStatus.SUSPENDED}
            ]
            if running:
                raise SaleState(
                    f"{len(running)} of the sale's lots have not closed yet "
                    f"({', '.join(running)}): wait for their ends, or cancel the sale"
                )
            targets, command, status, word = [], None, "closed", "closed"
        else:
            raise BadSale("action must be pause, resume, cancel or close")
        outcomes = []
        for lot in targets:
            events = await self._service.submit(lot, command)
            if len(events) == 1 and isinstance(events[0], Rejected):
                outcomes.append(LotOutcome(lot, False, events[0].reason.value))
            else:
                outcomes.append(LotOutcome(lot, True))
        details: dict[str, Any] = {"reason": reason, "lots": [o.lot_id for o in outcomes]}
        if action == "close":
            details["results"] = {
                view.lot_id: {"status": view.status, "price": view.price} for view in views
            }
        seq = await self._service.record(
            EntryType.DOCUMENT, action_body(sale_id, word, by, **details)
        )
        await self._call(
            self._store.update, sale_id, self._service.now(), status=status, reason=reason
        )
        return await self.record(sale_id), outcomes, seq

    async def relist(
        self,
        lot_id: str,
        new_lot: str,
        *,
        start_price: int,
        start_at: int,
        end_at: int,
        by: str,
    ) -> tuple[Any, str, int]:
        """Relist a failed (or defaulted) lot as `new_lot` (rules C10, `plan_relist`): the
        answer is `(view, basis, seq)`; a judicial lot's second failure becomes the fixed-price
        sale at `start_price`."""
        service = self._service
        _id(new_lot, "the new lot's id")
        if service.view(new_lot) is not None:
            raise SaleExists(f"a lot {new_lot!r} already exists")
        view = service.view(lot_id)
        state = await service.full_state(lot_id)
        if view is None or state is None:
            raise CannotRelist(f"there is no lot {lot_id!r}")
        for value, what in ((start_price, "start price"), (start_at, "start"), (end_at, "end")):
            _whole(value, f"the {what}", 1)
        relisted = await self.relists()
        if any(source == lot_id for source, _ in relisted.values()):
            raise CannotRelist(f"lot {lot_id} was relisted already")
        now = service.now()
        try:
            plan = plan_relist(
                state, start_price=start_price, start_at=start_at, end_at=end_at, now=now
            )
        except NoticeTooShort as exc:
            raise RelistTooEarly(str(exc), exc.earliest_start) from exc
        except RelistError as exc:
            raise CannotRelist(str(exc)) from exc
        title = view.title.split(" (relisted)")[0].split(" (fixed-price sale)")[0]
        fixed = plan.rules.format.value == "FIXED_PRICE_SALE"
        title = f"{title} ({'fixed-price sale' if fixed else 'relisted'})"
        new_view = await service.add_lot(new_lot, plan.rules, title, view.sale_id)
        seq = await service.record(
            EntryType.DOCUMENT,
            action_body(
                view.sale_id or "",
                "relisted",
                by,
                lot=new_lot,
                from_lot=lot_id,
                format=plan.rules.format.value,
                start_price=plan.rules.start_price,
                start_at=start_at,
                basis=plan.basis,
            ),
        )
        await self._call(self._store.add_relist, new_lot, lot_id, plan.basis, seq, now)
        return new_view, plan.basis, seq


def relist_words(lot: str, relists: Mapping[str, tuple[str, str]]) -> dict[str, str | None]:
    """The lot's place in a line of relistings: the lot it relists and the one relisting it."""
    successor = next((new for new, (old, _) in relists.items() if old == lot), None)
    source = relists.get(lot)
    return {"relists": source[0] if source else None, "relisted_as": successor}


def sale_lots_json(views: Sequence[Any], relists: Mapping[str, tuple[str, str]]) -> list[Any]:
    return [view.to_json() | relist_words(view.lot_id, relists) for view in views]


__all__ = ["LotOutcome", "SaleDesk", "relist_words", "sale_lots_json"]
