"""The streaming sub-application: the composition root of `streaming`.

Mount it with `mount_streaming(parent, settings)`, which

* mounts the sub-application at `/stream` (static files: `/stream/static/player.js`), whose
  cleanup context starts the hub and, at shutdown, closes every peer connection and stops
  every encoder, and
* adds the signaling routes of the issue to the parent router:
    POST /api/lots/{lot_id}/stream/offer     viewers (JSON offer in, JSON answer out)
    POST /api/lots/{lot_id}/stream/publish   the auctioneer console (Bearer token)
    GET  /api/lots/{lot_id}/stream           status: live?, renditions, viewers

The routes live on the parent because a sub-application needs a fixed prefix and
`/api/lots/{lot_id}/...` also carries the auction server's own routes: a prefixed
sub-application at `/api/lots` would answer 404 for all of them. The handlers find the hub
through the sub-application (`stream_app[HUB]`), so there are no module globals.

Errors are JSON `{"error": {"code", "message"}}` with 400/401/403/404/408/409/413/415/429/502/503.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

from aiohttp import web

from streaming.errors import BodyTimeout, OfferTooLarge, SignalingError
from streaming.hub import StreamHub
from streaming.settings import StreamSettings
from streaming.signaling import (
    bearer_token,
    check_content_type,
    check_declared_length,
    error_body,
    parse_offer,
)

WEB_DIR = Path(__file__).resolve().parent / "web"
STREAM_APP_PREFIX = "/stream"

HUB = web.AppKey("stream_hub", StreamHub)
SETTINGS = web.AppKey("stream_settings", StreamSettings)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def create_stream_app(settings: StreamSettings, *, manage_hub: bool = True) -> web.Application:
    """The sub-application (mount it at `/stream`; or use `mount_streaming`). Its hub is
    `app[HUB]`, usable at once to declare and open lots; it starts with the parent app.

    `manage_hub=False`: the caller starts and closes the hub itself (`await hub.start()`,
    `await hub.close()`), typically in a `cleanup_ctx` of the parent. Needed when the hub's
    sink depends on a parent resource: aiohttp runs a sub-application's cleanup only after
    every cleanup context of its parent, so the resource would be gone when the last
    segments close."""
    app = web.Application()
    app[SETTINGS] = settings
    app[HUB] = StreamHub(settings)
    if manage_hub:
        app.cleanup_ctx.append(_hub_context)
    app.on_shutdown.append(_close_peers)
    app.router.add_static("/static", WEB_DIR, append_version=False)
    return app


def mount_streaming(
    parent: web.Application, settings: StreamSettings, *, manage_hub: bool = True
) -> web.Application:
    """Mount the streaming sub-application on `parent` and add the signaling routes. Returns
    the sub-application; its hub is `returned_app[HUB]` (see `create_stream_app` for
    `manage_hub`)."""
    stream_app = create_stream_app(settings, manage_hub=manage_hub)
    parent.add_subapp(STREAM_APP_PREFIX, stream_app)
    add_stream_routes(parent, stream_app)
    return stream_app


def add_stream_routes(parent: web.Application, stream_app: web.Application) -> None:
    """Add the `/api/lots/{lot_id}/stream...` routes, served by `stream_app`'s hub."""
    hub = stream_app[HUB]
    settings = stream_app[SETTINGS]
    parent.router.add_post("/api/lots/{lot_id}/stream/offer", _viewer_offer(hub, settings))
    parent.router.add_post("/api/lots/{lot_id}/stream/publish", _publish(hub, settings))
    parent.router.add_get("/api/lots/{lot_id}/stream", _status(hub))


async def _hub_context(app: web.Application) -> AsyncIterator[None]:
    hub = app[HUB]
    await hub.start()
    yield
    await hub.close()


async def _close_peers(app: web.Application) -> None:
    await app[HUB].close_peers()


async def _read_body(request: web.Request, max_bytes: int, timeout_s: float) -> bytes:
    check_content_type(request.headers.get("Content-Type", ""))
    check_declared_length(request.content_length, max_bytes)
    chunks: list[bytes] = []
    total = 0
    try:
        async with asyncio.timeout(timeout_s):
            while True:
                chunk = await request.content.read(64 * 1024)
                if not chunk:
                    return b"".join(chunks)
                total += len(chunk)
                if total > max_bytes:
                    raise OfferTooLarge(f"the offer body is larger than {max_bytes} bytes")
                chunks.append(chunk)
    except TimeoutError:
        raise BodyTimeout(f"the offer did not arrive within {timeout_s:g} seconds") from None


def _refusal(error: SignalingError) -> web.Response:
    return web.json_response(error_body(error), status=error.status)


def _viewer_offer(hub: StreamHub, settings: StreamSettings) -> Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        lot_id = request.match_info["lot_id"]
        try:
            hub.check_live(lot_id)
            body = await _read_body(request, settings.max_sdp_bytes, settings.negotiation_timeout_s)
            offer = parse_offer(body, max_bytes=settings.max_sdp_bytes)
            answer = await hub.answer_viewer(
                lot_id, offer, request.query.get("rendition"), request.remote
            )
        except SignalingError as error:
            return _refusal(error)
        return web.json_response({"sdp": answer.sdp, "type": answer.type})

    return handler


def _publish(hub: StreamHub, settings: StreamSettings) -> Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        lot_id = request.match_info["lot_id"]
        try:
            await hub.authorize_publisher(
                lot_id, bearer_token(request.headers.get("Authorization"))
            )
            hub.check_live(lot_id)
            body = await _read_body(request, settings.max_sdp_bytes, settings.negotiation_timeout_s)
            offer = parse_offer(body, max_bytes=settings.max_sdp_bytes)
            answer = await hub.answer_publisher(lot_id, offer)
        except SignalingError as error:
            return _refusal(error)
        return web.json_response({"sdp": answer.sdp, "type": answer.type})

    return handler


def _status(hub: StreamHub) -> Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        try:
            status = hub.status(request.match_info["lot_id"])
        except SignalingError as error:
            return _refusal(error)
        return web.json_response(status.to_json())

    return handler
