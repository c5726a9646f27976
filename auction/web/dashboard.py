"""The staff dashboard's HTTP adapter (docs/protocol.md §1.4): customer analysis per lot and
sale, as JSON, CSV and SVG plots, for the auctioneer, compliance, auditor and admin roles.

* `GET /console/dashboard`: the page (`static/dashboard.html`; its data needs a staff token);
* `GET /api/dashboard`: every table as JSON;
* `GET /api/dashboard/{table}.json` and `GET /api/dashboard/{table}.csv`: one table;
* `GET /api/dashboard/plots/{plot}.svg[?lot=ID]`: one plot, `image/svg+xml`.

Also the counters behind the funnel: `visit_counter` (a middleware counting unique visitors of
a lot's page and API, and unique viewers of its stream) and the viewer sampler (a task that
records every live lot's viewer count every `sample_s` seconds). The figures are computed by
`auction.dashboard.analytics` (pure) and drawn by `auction.dashboard.plots`.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from aiohttp import web

from ..accounts import Role
from ..dashboard.analytics import PER_LOT, PLOTS, TABLES, LotFacts, LotInputs, Table, dashboard
from ..dashboard.visits import UniqueCounter, VisitStore, VisitStoreError
from ..errors import NotAllowed, NotFound
from ..payments import Hold
from .api import Components, bearer_session

logger = logging.getLogger(__name__)

#: The roles that may read the dashboard (codes and counts only).
DASHBOARD_ROLES = frozenset({Role.AUCTIONEER, Role.COMPLIANCE, Role.AUDITOR, Role.ADMIN})

VISITS = web.AppKey("visits", VisitStore)
COUNTER = web.AppKey("visit_counter", UniqueCounter)
#: Bumped on every counted visit and every viewer sample: part of the tables' cache key.
WRITES = web.AppKey("dashboard_writes", list[int])
#: The tables are recomputed at least once a minute (deposit timeliness moves with time).
_CACHE_US = 60 * 1_000_000

_NO_STORE = {"Cache-Control": "no-store"}
#: A visit is a read of the lot (the lot page makes one as it loads, with the visitor's session
#: when signed in; the page's own GET is not counted, or a signed-in visitor would count twice).
_VISIT_PATHS = (
    (re.compile(r"/api/lots/(?P<lot>[^/]{1,128})"), "GET", "visit"),
    (re.compile(r"/api/lots/(?P<lot>[^/]{1,128})/stream/offer"), "POST", "watch"),
)

Parts = Callable[[web.Request], Components]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _visitor(request: web.Request) -> str:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return "s:" + token.strip()
    return "a:" + (request.remote or "")


def visit_counter(parts: Parts) -> Any:
    """A middleware counting, after a successful answer, a unique visitor a day of an
    existing lot (`GET /api/lots/{lot}`, which the lot page loads: `visit`) and of its stream
    (`watch`)."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        response = await handler(request)
        if response.status >= 300:
            return response
        for pattern, method, kind in _VISIT_PATHS:
            match = pattern.fullmatch(request.path)
            if match is None or request.method != method:
                continue
            app = request.app
            components = parts(request)
            lot = match["lot"]
            now = components.service.now()
            if components.service.view(lot) is None or VISITS not in app:
                break
            if app[COUNTER].first_today(lot, kind, _visitor(request), now):
                try:
                    await asyncio.to_thread(app[VISITS].count, lot, kind, now)
                    app[WRITES][0] += 1
                except VisitStoreError as exc:
                    logger.warning("dashboard: a visit was not counted: %s", exc)
            break
        return response

    return middleware


async def _lot_inputs(request: web.Request, parts: Components) -> list[LotInputs]:
    service = parts.service
    app = request.app
    totals = await asyncio.to_thread(app[VISITS].totals)
    samples = await asyncio.to_thread(app[VISITS].samples)
    holds: dict[str, dict[str, Hold]] = {}
    for hold in parts.gateway.payments.holds():
        holds.setdefault(hold.lot, {})[hold.account] = hold
    inputs = []
    for view in service.views():
        state = service.state(view.lot_id) or await service.full_state(view.lot_id)
        appraisal = state.rules.appraisal if state is not None else None
        facts = LotFacts(
            lot_id=view.lot_id,
            title=view.title,
            sale_id=view.sale_id,
            currency=view.currency,
            legal_timezone=view.legal_timezone,
            start_price=view.start_price,
            appraisal=appraisal,
        )
        inputs.append(
            LotInputs(
                facts=facts,
                records=await parts.history(view.lot_id),
                visitors=totals.get((view.lot_id, "visit"), 0),
                watchers=totals.get((view.lot_id, "watch"), 0),
                viewer_samples=samples.get(view.lot_id, []),
                holds=holds.get(view.lot_id, {}),
            )
        )
    return inputs


def table_csv(table: Table) -> str:
    """A table as CSV (RFC 4180, a header row, `\\r\\n` line ends)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(table.columns)
    writer.writerows(table.rows)
    return buffer.getvalue()


class _Dashboard:
    """The routes. The tables are computed once for a state of the lots (every lot's seq and
    status), of the counters, and of the minute, and reused by the page's several requests."""

    def __init__(self, parts: Parts) -> None:
        self._parts = parts
        self._cache: tuple[tuple[Any, ...], dict[str, Table]] | None = None

    async def _tables(self, request: web.Request) -> tuple[dict[str, Table], Components]:
        parts = self._parts(request)
        session = await bearer_session(request, parts)
        if session.role not in DASHBOARD_ROLES:
            raise NotAllowed("the dashboard is for the auctioneer, compliance, auditor "
                "and admin roles")  # fmt: skip
        service = parts.service
        now = service.now()
        key = (
            tuple((view.lot_id, view.seq, view.status) for view in service.views()),
            request.app[WRITES][0],
            now // _CACHE_US,
        )
        if self._cache is not None and self._cache[0] == key:
            return self._cache[1], parts
        tables = dashboard(await _lot_inputs(request, parts), now)
        self._cache = (key, tables)
        return tables, parts

    async def everything(self, request: web.Request) -> web.Response:
        tables, parts = await self._tables(request)
        lots = [
            {
                "lot": view.lot_id,
                "title": view.title,
                "sale": view.sale_id,
                "currency": view.currency,
                "legal_timezone": view.legal_timezone,
            }
            for view in parts.service.views()
        ]
        body = {
            "now_us": parts.service.now(),
            "lots": lots,
            "tables": {name: table.to_json() for name, table in tables.items()},
        }
        return web.json_response(body, headers=_NO_STORE)

    async def one(self, request: web.Request) -> web.Response:
        name, suffix = request.match_info["name"], request.match_info["suffix"]
        if name not in TABLES:
            raise NotFound(f"no such table; use one of {', '.join(TABLES)}")
        tables, _ = await self._tables(request)
        table = tables[name]
        if suffix == "json":
            return web.json_response(table.to_json(), headers=_NO_STORE)
        headers = {
            **_NO_STORE,
            "Content-Disposition": f'attachment; filename="gavel-{name}.csv"',
        }
        return web.Response(
            text=table_csv(table), content_type="text/csv", charset="utf-8", headers=headers
        )

    async def svg(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in PLOTS:
            raise NotFound(f"no such plot; use one of {', '.join(PLOTS)}")
        lot = request.query.get("lot")
        tables, parts = await self._tables(request)
        zone, currency = "UTC", ""
        if name in PER_LOT:
            view = parts.service.view(lot) if lot else None
            if view is None:
                raise NotFound("this plot needs ?lot= naming an existing lot", code="UNKNOWN_LOT")
            zone, currency = view.legal_timezone, view.currency
        from ..dashboard.plots import plot  # matplotlib is loaded by the first plot only

        body = await asyncio.to_thread(plot, name, tables, lot, zone, currency)
        return web.Response(body=body, content_type="image/svg+xml", headers=_NO_STORE)


def add_dashboard_routes(app: web.Application, parts: Parts, sample_s: float = 10.0) -> None:
    """Register the dashboard's routes, its visit counter and (with `sample_s` > 0) the
    viewer sampler. Call after `add_api_routes` (its JSON errors wrap these routes)."""
    api = _Dashboard(parts)
    app[COUNTER] = UniqueCounter()
    app[WRITES] = [0]
    app.middlewares.append(visit_counter(parts))
    app.router.add_get("/api/dashboard", api.everything)
    app.router.add_get("/api/dashboard/plots/{name}.svg", api.svg)
    app.router.add_get(r"/api/dashboard/{name}.{suffix:(json|csv)}", api.one)

    async def context(app: web.Application) -> AsyncIterator[None]:
        from .app import ACCOUNTS, SERVICE  # the composition root's keys

        app[VISITS] = await asyncio.to_thread(VisitStore, app[ACCOUNTS].engine)
        task = None
        if sample_s > 0:
            task = asyncio.create_task(_sample(app, app[SERVICE], sample_s), name="viewers")
        yield
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    app.cleanup_ctx.append(context)


async def _sample(app: web.Application, service: Any, every_s: float) -> None:
    from ..video import VIDEO

    while True:
        await asyncio.sleep(every_s)
        video = app.get(VIDEO)
        if video is None:
            continue
        counts: dict[str, int] = {}
        for view in service.views():
            if video.hub.lot(view.lot_id) is not None:
                with contextlib.suppress(Exception):
                    counts[view.lot_id] = video.hub.status(view.lot_id).viewers
        try:
            await asyncio.to_thread(app[VISITS].sample, counts, service.now())
            if counts:
                app[WRITES][0] += 1
        except VisitStoreError as exc:
            logger.warning("dashboard: viewer counts not sampled: %s", exc)


__all__ = ["DASHBOARD_ROLES", "add_dashboard_routes", "table_csv"]
