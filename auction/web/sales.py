"""Sales and relisting over REST (docs/protocol.md §1; `auction.sales.sale` does the work).

Public (bidders):

* `GET /sale/{sale}`: the sale page (`static/sale.html`);
* `GET /api/sales`: every sale the console made, with its status and lots' ids;
* `GET /api/sales/{sale}`: one sale: its title, status, the reason of its last pause or
  cancellation, its notice (text, SHA-256, ledger entry) and its lots' views in catalogue
  order, each with the lot it relists and the lot relisting it.

Console (auctioneer):

* `POST /api/console/sales`: create a sale with its lots (`auction.sales.sale.SalePlan`);
* `POST /api/console/sales/{sale}/notice` `{"text"}`: publish the notice;
* `POST /api/console/sales/{sale}/actions` `{"action": "pause" | "resume" | "cancel" |
  "close", "reason"}`;
* `POST /api/console/lots/{lot}/relist` `{"lot", "start_price", "start_at", "end_at"}`: the
  relisting of a failed lot, or after a judicial lot's second failure its fixed-price sale.
  Too early for the notice: 422 `NOTICE_TOO_SHORT` with `earliest_start_us`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from aiohttp import web

from .. import sealed
from ..accounts import Role
from ..demo.sales import run_demo_sales
from ..errors import BadInput
from ..gateway import Gateway
from ..sales.desk import SaleDesk, sale_lots_json
from ..sales.sale import SalePlan, SaleRecord, SaleStore
from ..service import AuctionService, ServiceClosed
from .api import Components, bearer_session
from .bodies import read_json_body

logger = logging.getLogger(__name__)
SALE_STORE = web.AppKey("sale_store", SaleStore)
_NO_STORE = {"Cache-Control": "no-store"}

Parts = Callable[[web.Request], Components]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


async def _guarded(work: Awaitable[None]) -> None:
    """The demo's clerk ends quietly when the service stops and logs any other failure."""
    try:
        await work
    except (ServiceClosed, asyncio.CancelledError):
        raise
    except Exception:  # the demo's clerk must not take the server down
        logger.exception("the demo's sales clerk stopped")


def _whole(body: dict[str, Any], name: str) -> int:
    value = body.get(name)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise BadInput(f"{name!r} must be a positive whole number", code="MALFORMED")
    return value


class _Sales:
    def __init__(self, parts: Parts) -> None:
        self._parts = parts

    def _desk(self, request: web.Request) -> tuple[SaleDesk, AuctionService]:
        service = self._parts(request).service
        return SaleDesk(service, request.app[SALE_STORE]), service

    async def _staff(self, request: web.Request) -> str:
        """The signed-in auctioneer as sale records and ledger entries name them: their staff
        alias (`auction.sealed.staff_alias`), never the account id, on a ledger that has one."""
        parts = self._parts(request)
        session = await bearer_session(request, parts, Role.AUCTIONEER)
        key = getattr(getattr(parts.service.ledger, "house", None), "alias_key", None)
        return (
            sealed.staff_alias(key, session.account) if isinstance(key, bytes) else session.account
        )

    async def _sale_json(self, desk: SaleDesk, record: SaleRecord) -> dict[str, Any]:
        views = desk.lots_of(record.sale_id)
        title = views[0].sale_title if views else record.sale_id
        return record.to_json() | {
            "title": title,
            "lots": sale_lots_json(views, await desk.relists()),
        }

    async def list(self, request: web.Request) -> web.Response:
        desk, service = self._desk(request)
        sales = []
        for record in await desk.records():
            views = desk.lots_of(record.sale_id)
            sales.append(
                record.to_json()
                | {
                    "title": views[0].sale_title if views else record.sale_id,
                    "lots": [view.lot_id for view in views],
                }
            )
        return web.json_response({"now_us": service.now(), "sales": sales}, headers=_NO_STORE)

    async def show(self, request: web.Request) -> web.Response:
        desk, service = self._desk(request)
        record = await desk.record(request.match_info["sale"])
        body = {"now_us": service.now(), "sale": await self._sale_json(desk, record)}
        return web.json_response(body, headers=_NO_STORE)

    async def create(self, request: web.Request) -> web.Response:
        by = await self._staff(request)
        plan = SalePlan.parse(await read_json_body(request))
        desk, _ = self._desk(request)
        record, seq = await desk.create(plan, by)
        body = {"sale": await self._sale_json(desk, record), "entry": seq}
        return web.json_response(body, status=201, headers=_NO_STORE)

    async def notice(self, request: web.Request) -> web.Response:
        by = await self._staff(request)
        body = await read_json_body(request)
        desk, _ = self._desk(request)
        record, seq = await desk.publish(request.match_info["sale"], body.get("text"), by)  # type: ignore[arg-type]
        answer = {"sale": await self._sale_json(desk, record), "entry": seq}
        return web.json_response(answer, status=201, headers=_NO_STORE)

    async def action(self, request: web.Request) -> web.Response:
        by = await self._staff(request)
        body = await read_json_body(request)
        desk, _ = self._desk(request)
        action, reason = body.get("action"), body.get("reason")
        if not isinstance(action, str):
            raise BadInput("action must be pause, resume, cancel or close", code="MALFORMED")
        record, outcomes, seq = await desk.act(
            request.match_info["sale"],
            action,
            reason,  # type: ignore[arg-type]
            by,
        )
        answer = {
            "sale": await self._sale_json(desk, record),
            "lots": [outcome.to_json() for outcome in outcomes],
            "entry": seq,
        }
        return web.json_response(answer, headers=_NO_STORE)

    async def relist(self, request: web.Request) -> web.Response:
        by = await self._staff(request)
        body = await read_json_body(request)
        desk, _ = self._desk(request)
        new_lot = body.get("lot")
        if not isinstance(new_lot, str):
            raise BadInput("'lot' must be the new lot's id", code="MALFORMED")
        view, basis, seq = await desk.relist(
            request.match_info["lot"],
            new_lot,
            start_price=_whole(body, "start_price"),
            start_at=_whole(body, "start_at"),
            end_at=_whole(body, "end_at"),
            by=by,
        )
        answer = {"lot": view.to_json(), "basis": basis, "entry": seq}
        return web.json_response(answer, status=201, headers=_NO_STORE)


def add_sale_routes(
    app: web.Application,
    parts: Parts,
    engine: Callable[[web.Application], Any],
    demo: Callable[[web.Application], tuple[AuctionService, Gateway, set[str] | None]]
    | None = None,
) -> None:
    """Register the sale routes; the store opens on the auction's database (`engine(app)`:
    the accounts' pool, as for the staff sessions) once the service runs. `demo`: the running
    service, gateway and the bots' set of lots to leave alone, for the demo's sales
    (`auction.demo.sales`: made on the first start, followed by a clerk task)."""
    api = _Sales(parts)
    app.router.add_get("/api/sales", api.list)
    app.router.add_get("/api/sales/{sale}", api.show)
    app.router.add_post("/api/console/sales", api.create)
    app.router.add_post("/api/console/sales/{sale}/notice", api.notice)
    app.router.add_post("/api/console/sales/{sale}/actions", api.action)
    app.router.add_post("/api/console/lots/{lot}/relist", api.relist)

    async def context(app: web.Application) -> AsyncIterator[None]:
        store = await asyncio.to_thread(SaleStore, engine(app))
        app[SALE_STORE] = store
        clerk = None
        if demo is not None:
            service, gateway, unwanted = demo(app)
            desk = SaleDesk(service, store)
            clerk = asyncio.get_running_loop().create_task(
                _guarded(run_demo_sales(desk, service, gateway, unwanted)), name="demo-sales"
            )
        yield
        if clerk is not None:
            clerk.cancel()
            await asyncio.gather(clerk, return_exceptions=True)

    app.cleanup_ctx.append(context)


__all__ = ["SALE_STORE", "add_sale_routes"]
