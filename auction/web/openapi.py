"""The OpenAPI 3.1 document of the REST API: `auction/web/openapi.json` (also reachable as
`docs/openapi.json`), served at `GET /api/openapi.json`.

It is the one source: `tests/test_openapi.py` checks that every route of the application is
in it and everything in it is a route, and validates real requests and answers of the main
flows against it, so it cannot drift from the code. The websocket protocol is described in
docs/protocol.md.
"""

from __future__ import annotations

from functools import cache
from importlib import resources

from aiohttp import web

OPENAPI_PATH = "/api/openapi.json"


@cache
def openapi_document() -> bytes:
    """The document's bytes (read once per process)."""
    return resources.files(__package__).joinpath("openapi.json").read_bytes()


def add_openapi_route(app: web.Application) -> None:
    """`GET /api/openapi.json`."""

    async def openapi(request: web.Request) -> web.Response:
        return web.Response(
            body=openapi_document(),
            content_type="application/json",
            charset="utf-8",
            headers={"Cache-Control": "no-cache"},
        )

    app.router.add_get(OPENAPI_PATH, openapi)
