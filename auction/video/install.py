"""`install_video`: the streaming sub-application mounted on the auction app, and the cleanup
context that runs the hub, the ledger sink and the driver."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable

from aiohttp import web

from streaming.app import HUB, mount_streaming
from streaming.hub import StreamHub

from ..service import AuctionService
from .driver import LotVideo
from .presentation import LotFacts, facts_of
from .settings import VideoSettings
from .sink import LedgerSegmentSink

__all__ = ["VIDEO", "StaffCheck", "Video", "install_video"]


class Video:
    """What `install_video` keeps on the app: the hub, the ledger sink, and (while the app
    runs) the driver."""

    def __init__(self, hub: StreamHub, sink: LedgerSegmentSink, settings: VideoSettings) -> None:
        self.hub = hub
        self.sink = sink
        self.settings = settings
        self.driver: LotVideo | None = None
        #: What a lot's presentation is drawn from (blocking; set by the composition root to
        #: read the lot's stored facts and pictures).
        self.facts_for: Callable[[object], LotFacts] = facts_of


VIDEO = web.AppKey("video", Video)


StaffCheck = Callable[[str], Awaitable[bool | None]]
"""Whether a bearer token is a staff session that may run the lots' video (an auctioneer's):
None when the token is no valid session at all."""


def install_video(
    app: web.Application,
    service_key: web.AppKey[AuctionService],
    settings: VideoSettings,
    staff: StaffCheck | None = None,
) -> None:
    """Mount the streaming sub-application on `app` and follow the service's lots. Call it
    right after the cleanup context that sets `app[service_key]` (the video's cleanup then
    runs before the service stops). With `staff`, a staff token may publish a lot's camera
    (`POST /api/lots/{lot}/stream/publish`; the console's source routes are
    `auction.web.video_api`). With `settings.enabled` False it does nothing."""
    if not settings.enabled:
        return
    sink = LedgerSegmentSink(
        settings.ledger_queue,
        retries=settings.ledger_retries,
        retry_seconds=settings.ledger_retry_seconds,
    )
    stream_settings = settings.stream_settings(sink)
    if staff is not None:
        check = staff

        async def publisher(lot_id: str, token: str) -> bool:
            return bool(await check(token))

        stream_settings = dataclasses.replace(stream_settings, publisher_authorizer=publisher)
    stream_app = mount_streaming(app, stream_settings, manage_hub=False)
    app[VIDEO] = Video(stream_app[HUB], sink, settings)

    async def video_context(app: web.Application) -> AsyncIterator[None]:
        video = app[VIDEO]
        service = app[service_key]
        video.sink.start(service.record)
        await video.hub.start()
        driver = LotVideo(service, video.hub, video.sink, video.settings, video.facts_for)
        try:
            await driver.start()
        except BaseException:
            await driver.stop()
            await video.sink.close(video.settings.drain_seconds)
            raise
        video.driver = driver
        yield
        video.driver = None
        await driver.stop()
        await video.sink.close(video.settings.drain_seconds)

    app.cleanup_ctx.append(video_context)
