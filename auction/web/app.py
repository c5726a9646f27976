"""`create_app(settings)`: the composition root (STYLE rule 8).

It wires the storage, the auction service and the demo's simulated participants, each as one
`cleanup_ctx` (opened in order, closed in reverse), under typed `web.AppKey`s; no module-level
state. Routes: `GET /` (the lots page), `GET /static/*` (its script and style sheet),
`GET /api/lots` and `GET /api/lots/{lot_id}` (public views plus the server's clock, for the
countdown), `GET /healthz`, and the ledger's read API under `/log/` (`auction.web.log`:
checkpoint, tiles, policy, checkpoints, receipts).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from aiohttp import web

from ..demo import Drivers, Timeline, catalogue, seed
from ..service import AuctionService
from ..storage import Storage
from .log import add_log_routes


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything `create_app` needs. `database_url` (`postgresql://...`) wins over `data_dir`
    (SQLite in `data_dir/gavel.db`). `duration` compresses the demo's timeline into a run of
    that many seconds; `None` serves until stopped."""

    data_dir: Path = Path("gavel-data")
    database_url: str | None = None
    host: str = "127.0.0.1"
    port: int = 8080
    bots: int = 5
    duration: float | None = None
    seed: int | None = None
    #: A tlog-policy to trust instead of the store's (`gavel demo`: the log key, its notaries
    #: and the quorum); with notaries, checkpoints are published only once co-signed.
    policy: bytes | None = None

    @property
    def storage_target(self) -> str | os.PathLike[str]:
        """What to hand to `Storage.open`."""
        return self.database_url or self.data_dir

    @property
    def timeline(self) -> Timeline:
        return Timeline.for_duration(self.duration)


SETTINGS = web.AppKey("settings", Settings)
SERVICE = web.AppKey("service", AuctionService)
DRIVERS = web.AppKey("drivers", Drivers)

_STATIC = {
    "app.js": "text/javascript",
    "style.css": "text/css",
}


def create_app(settings: Settings) -> web.Application:
    """Build the application; run it with an `aiohttp.web.AppRunner` (startup opens the storage,
    rebuilds or seeds the lots and starts the drivers; cleanup stops them in reverse order)."""
    app = web.Application()
    app[SETTINGS] = settings
    app.cleanup_ctx.append(_service_context)
    app.cleanup_ctx.append(_drivers_context)
    files = resources.files(__package__)
    page = files.joinpath("index.html").read_bytes()
    assets = {name: (files.joinpath(name).read_bytes(), kind) for name, kind in _STATIC.items()}

    async def index(request: web.Request) -> web.Response:
        return web.Response(body=page, content_type="text/html", charset="utf-8")

    async def static(request: web.Request) -> web.Response:
        asset = assets.get(request.match_info["name"])
        if asset is None:
            raise web.HTTPNotFound()
        return web.Response(body=asset[0], content_type=asset[1], charset="utf-8")

    app.router.add_get("/", index)
    app.router.add_get("/static/{name}", static)
    app.router.add_get("/api/lots", list_lots)
    app.router.add_get("/api/lots/{lot_id}", show_lot)
    app.router.add_get("/healthz", healthz)
    add_log_routes(app, _service)
    return app


def _service(request: web.Request) -> AuctionService:
    return request.app[SERVICE]


async def _service_context(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    store = await asyncio.to_thread(Storage.open, settings.storage_target)
    if settings.policy is not None:
        try:
            await asyncio.to_thread(store.use_policy, settings.policy)
        except BaseException:
            store.close()
            raise
    service = AuctionService(store)
    await service.start()
    try:
        if not service.views():  # a restart serves the stored lots, never a second copy
            await seed(service, catalogue(service.now(), settings.timeline))
    except BaseException:
        await service.stop()
        raise
    app[SERVICE] = service
    yield
    await service.stop()


async def _drivers_context(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    drivers = Drivers(
        app[SERVICE], bots=settings.bots, timeline=settings.timeline, seed=settings.seed
    )
    drivers.start()
    app[DRIVERS] = drivers
    yield
    await drivers.stop()


_NO_STORE = {"Cache-Control": "no-store"}


async def list_lots(request: web.Request) -> web.Response:
    """Every lot's public view and the server time (UTC µs) for the client's clock offset."""
    service = request.app[SERVICE]
    body = {"now": service.now(), "lots": [view.to_json() for view in service.views()]}
    return web.json_response(body, headers=_NO_STORE)


async def show_lot(request: web.Request) -> web.Response:
    service = request.app[SERVICE]
    view = service.view(request.match_info["lot_id"])
    if view is None:
        return web.json_response({"error": "UNKNOWN_LOT"}, status=404, headers=_NO_STORE)
    return web.json_response({"now": service.now(), "lot": view.to_json()}, headers=_NO_STORE)


async def healthz(request: web.Request) -> web.Response:
    service = request.app[SERVICE]
    status = 200 if service.running else 503
    body = {"status": "ok" if service.running else "stopping", "lots": len(service.views())}
    return web.json_response(body, status=status, headers=_NO_STORE)
