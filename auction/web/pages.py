"""The pages of `auction/web/static/` (`/`, `/lot/{lot_id}`, `/register`, `/console`,
`/auditor`, `/my`, the staff pages) and `/static/{name}`: never cached stale
(`Cache-Control: no-cache`), a 404 in the error shape for anything else.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from importlib import resources
from pathlib import Path

from aiohttp import web

from ..errors import NotFound
from .errors import error_response

#: Pages: path → file in `auction/web/static/` (docs/protocol.md, the web client).
PAGES = {
    "/": "index.html",
    "/lot/{lot_id}": "lot.html",
    "/register": "register.html",
    "/console": "console.html",
    "/auditor": "auditor.html",
    "/my": "my.html",
    "/console/dashboard": "dashboard.html",
    "/console/staff": "staff.html",
    "/sale/{sale_id}": "sale.html",
}


CONTENT_TYPES = {
    ".js": "text/javascript",
    ".css": "text/css",
    ".html": "text/html",
    ".svg": "image/svg+xml",
    ".json": "application/json",
}


def add_pages(app: web.Application) -> None:
    static = resources.files(__package__).joinpath("static")

    async def read(name: str) -> web.Response:
        suffix = Path(name).suffix
        kind = CONTENT_TYPES.get(suffix)
        entry = static.joinpath(name)
        if kind is None or "/" in name or name.startswith(".") or not entry.is_file():
            return error_response(NotFound("no such page"))
        body = await asyncio.to_thread(entry.read_bytes)
        headers = {"Cache-Control": "no-cache"}
        return web.Response(body=body, content_type=kind, charset="utf-8", headers=headers)

    def page(name: str) -> Callable[[web.Request], object]:
        async def handler(request: web.Request) -> web.Response:
            return await read(name)

        return handler

    for path, name in PAGES.items():
        app.router.add_get(path, page(name))  # type: ignore[arg-type]

    async def static_file(request: web.Request) -> web.Response:
        return await read(request.match_info["name"])

    app.router.add_get("/static/{name}", static_file)
