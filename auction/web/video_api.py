"""The console's video routes (staff token): what a lot's video shows.

    GET  /api/console/lots/{lot}/video               the lot's source, the choices, the stream
    PUT  /api/console/lots/{lot}/video               {"source": "presentation"|"pattern"|
                                                      "camera"|"file", "file": NAME}
    POST /api/console/lots/{lot}/video/file          an uploaded video file (the raw bytes),
                                                      kept in the media directory and shown

Errors are the API's `{"error": {"code", "message"}}`; a refused request changes nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import secrets
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import av
from aiohttp import web

from streaming.errors import ConfigurationError, SignalingError, SourceError

from ..errors import (
    BadInput,
    Conflict,
    GavelError,
    Malformed,
    NotAllowed,
    NotAuthenticated,
    NotFound,
    TimedOut,
    TooLarge,
    Unavailable,
    WrongMediaType,
)
from ..video import StaffCheck, Video
from ..video.sources import (
    MEDIA_SUFFIXES,
    SOURCE_KINDS,
    media_files,
    parse_choice,
)
from .bodies import read_json_body
from .errors import error_response
from .limits import BODY_TIMEOUT_S

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_NO_STORE = {"Cache-Control": "no-store"}
_UPLOAD_CHUNK = 256 * 1024


async def _next_chunk(request: web.Request) -> bytes:
    """The next part of an upload; each must arrive within `BODY_TIMEOUT_S` (`408`)."""
    try:
        async with asyncio.timeout(BODY_TIMEOUT_S):
            return await request.content.read(_UPLOAD_CHUNK)
    except TimeoutError:
        raise TimedOut(f"the upload stalled for {BODY_TIMEOUT_S:g} seconds") from None


def probe_video(path: Path) -> tuple[int, int]:
    """The size of the first decodable picture of `path`; `SourceError` when there is none.
    Blocking (PyAV)."""
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise SourceError("the file has no video")
            for frame in container.decode(container.streams.video[0]):
                return frame.width, frame.height
    except av.error.FFmpegError as exc:
        raise SourceError(f"the file cannot be read as video: {exc}") from exc
    raise SourceError("the file has no picture that can be decoded")


def add_video_console_routes(
    app: web.Application, video_key: web.AppKey[Video], staff: StaffCheck
) -> None:
    routes = _Routes(app, video_key, staff)
    app.router.add_get("/api/console/lots/{lot}/video", routes.wrap(routes.show))
    app.router.add_put("/api/console/lots/{lot}/video", routes.wrap(routes.choose))
    app.router.add_post("/api/console/lots/{lot}/video/file", routes.wrap(routes.upload))


class _Routes:
    def __init__(
        self, app: web.Application, video_key: web.AppKey[Video], staff: StaffCheck
    ) -> None:
        self._app = app
        self._key = video_key
        self._staff = staff

    def wrap(self, handler: Handler) -> Handler:
        async def guarded(request: web.Request) -> web.StreamResponse:
            try:
                await self._authorize(request)
                return await handler(request)
            except GavelError as exc:
                return error_response(exc)
            except SourceError as exc:  # streaming's errors, translated here once
                return error_response(BadInput(str(exc), code="UNUSABLE_VIDEO"))
            except ConfigurationError as exc:
                return error_response(Conflict(str(exc), code="SOURCE_LOCKED"))
            except SignalingError as exc:
                return error_response(Conflict(str(exc), code="NOT_STREAMING"))

        return guarded

    async def _authorize(self, request: web.Request) -> None:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise NotAuthenticated("sign in first (Authorization: Bearer …)")
        allowed = await self._staff(token.strip())
        if allowed is None:
            raise NotAuthenticated("your session is invalid or has expired")
        if not allowed:
            raise NotAllowed("this needs the auctioneer role")

    def _video(self) -> Video:
        video = self._app[self._key]
        if video.driver is None:
            raise Unavailable("the video is not running right now")
        return video

    def _lot(self, request: web.Request) -> tuple[Video, str, str]:
        video = self._video()
        lot_id = request.match_info["lot"]
        assert video.driver is not None
        view = video.driver.service.view(lot_id)
        if view is None:
            raise NotFound(f"there is no lot {lot_id[:80]!r}", code="LOT_NOT_FOUND")
        return video, lot_id, view.format

    async def _describe(self, video: Video, lot_id: str, format_value: str) -> dict[str, Any]:
        assert video.driver is not None
        sources = video.driver.sources
        files = await asyncio.to_thread(media_files, sources.media_dir)
        try:
            stream: dict[str, object] | None = video.hub.status(lot_id).to_json()
        except SignalingError:
            stream = None
        rendition = sources.renditions(format_value)[0]
        return {
            "lot": lot_id,
            "source": sources.choice(lot_id, format_value).to_json(),
            "sources": list(SOURCE_KINDS),
            "files": files,
            "rate": {"width": rendition.width, "height": rendition.height, "fps": rendition.fps},
            "max_upload_bytes": video.settings.max_upload_bytes,
            "stream": stream,
        }

    async def show(self, request: web.Request) -> web.StreamResponse:
        video, lot_id, format_value = self._lot(request)
        return web.json_response(
            await self._describe(video, lot_id, format_value), headers=_NO_STORE
        )

    async def choose(self, request: web.Request) -> web.StreamResponse:
        video, lot_id, format_value = self._lot(request)
        body = await read_json_body(request)
        choice = parse_choice(body.get("source"), body.get("file"))
        assert video.driver is not None
        await video.driver.set_source(lot_id, choice)
        return web.json_response(
            await self._describe(video, lot_id, format_value), headers=_NO_STORE
        )

    async def upload(self, request: web.Request) -> web.StreamResponse:
        video, lot_id, format_value = self._lot(request)
        limit = video.settings.max_upload_bytes
        suffix = Path(request.query.get("name", "upload.mp4")).suffix.lower()
        if suffix not in MEDIA_SUFFIXES:
            raise WrongMediaType(
                f"send a video file ending in one of {', '.join(sorted(MEDIA_SUFFIXES))}"
            )
        if request.content_length is not None and request.content_length > limit:
            raise TooLarge(f"a video file may be at most {limit} bytes")
        media = video.settings.media_directory
        await asyncio.to_thread(media.mkdir, parents=True, exist_ok=True)
        partial = media / f".upload-{secrets.token_hex(8)}"
        digest = hashlib.sha256()
        size = 0
        try:
            with partial.open("wb") as out:
                while chunk := await _next_chunk(request):
                    size += len(chunk)
                    if size > limit:
                        raise TooLarge(f"a video file may be at most {limit} bytes")
                    digest.update(chunk)
                    await asyncio.to_thread(out.write, chunk)
            if size == 0:
                raise Malformed("the upload is empty", code="EMPTY")
            await asyncio.to_thread(probe_video, partial)
            name = f"{lot_id[:60]}-{digest.hexdigest()[:12]}{suffix}"
            await asyncio.to_thread(os.replace, partial, media / name)
        finally:
            with contextlib.suppress(FileNotFoundError):
                partial.unlink()
        assert video.driver is not None
        await video.driver.set_source(lot_id, parse_choice("file", name))
        body = await self._describe(video, lot_id, format_value)
        return web.json_response({**body, "uploaded": name, "bytes": size}, status=201)
