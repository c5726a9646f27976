"""`LotVideo`: drives the stream hub from the service's lot updates (the adapter that carries
out what `VideoDirector` decides)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence

from streaming.errors import SourceError
from streaming.hub import StreamHub

from ..rules import Format
from ..service import AuctionService, LotView, Subscription
from .director import (
    STREAMING_STATUSES,
    DeclareStream,
    ShowState,
    StartStream,
    StopStreamLater,
    VideoAction,
    VideoDirector,
    recorded_rendition,
    streamable,
)
from .presentation import LotFacts, facts_of
from .segments import LedgerEntries, read_segment_heads, set_aside_unanchored
from .settings import VideoSettings
from .sink import LedgerSegmentSink
from .sources import LotSources, SourceChoice, SourceChoiceError, default_choice

__all__ = ["LotVideo"]

logger = logging.getLogger(__name__)


class LotVideo:
    """Drives the hub from the service's lot updates. `await start()` after the service and
    the hub started; `await stop()` before they stop."""

    def __init__(
        self,
        service: AuctionService,
        hub: StreamHub,
        sink: LedgerSegmentSink,
        settings: VideoSettings,
        facts_for: Callable[[object], LotFacts] = facts_of,
    ) -> None:
        self.service = service
        self.hub = hub
        self.sink = sink
        self.settings = settings
        self.director = VideoDirector(settings.lots)
        self.sources = LotSources(
            facts_for=facts_for,
            media_dir=settings.media_directory,
            pattern=settings.pattern,
            live_renditions=settings.renditions,
            presentation_renditions=settings.presentation_renditions,
        )
        self._subscription: Subscription | None = None
        self._task: asyncio.Task[None] | None = None
        self._tails: dict[str, asyncio.Task[None]] = {}
        self._closing: set[asyncio.Task[None]] = set()
        self._lock = asyncio.Lock()

    async def start(self) -> None:
        ledger = self.service.ledger
        if isinstance(ledger, LedgerEntries):  # where each lot's evidence chain continues
            heads = await self.service.read(read_segment_heads, ledger)
            self.sink.heads = {**heads, **self.sink.heads}
        self._subscription = self.service.subscribe()
        views = self.service.views()
        await asyncio.to_thread(self._draw_presentations, views)  # every lot's, at start-up
        for view in views:
            await self._observe(view)
        self._task = asyncio.ensure_future(self._run(self._subscription))

    async def stop(self) -> None:
        """Stop following the lots and close every stream (its last segment included)."""
        if self._subscription is not None:
            self.service.unsubscribe(self._subscription)
            self._subscription = None
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        for task in list(self._tails.values()):
            task.cancel()
        await asyncio.gather(*self._tails.values(), return_exceptions=True)
        await asyncio.gather(*self._closing, return_exceptions=True)
        await self.hub.close()

    def _draw_presentations(self, views: Sequence[LotView]) -> None:
        for view in views:
            if streamable(view, self.settings.lots) and (
                view.status in STREAMING_STATUSES or view.status == "SCHEDULED"
            ):
                self.sources.prepare(view)

    async def set_source(self, lot_id: str, choice: SourceChoice) -> None:
        """Make `choice` the lot's source; a streaming lot shows it from its first frame on.
        Raises `SourceChoiceError` (no such file) or `SourceError` (a file that cannot be
        decoded), having changed nothing."""
        view = self.service.view(lot_id)
        if view is None:
            raise LookupError(lot_id)
        spec = await asyncio.to_thread(self.sources.spec, view, choice)
        async with self._lock:
            if self.hub.lot(lot_id) is not None:
                self.hub.switch_source(lot_id, spec)
            self.sources.choose(lot_id, choice)

    async def _run(self, subscription: Subscription) -> None:
        async for updates in subscription:
            for update in updates:
                try:
                    await self._observe(update.view)
                except asyncio.CancelledError:
                    raise
                except Exception:  # one lot's stream must not stop the others'
                    logger.exception("video of lot %s", update.lot_id)

    def _scheduled_end(self, lot_id: str) -> int | None:
        state = self.service.state(lot_id)
        return state.rules.end_at if state is not None else None

    async def _observe(self, view: LotView) -> None:
        if not self.service.leads(view.lot_id):
            return  # several instances: the lot's writer streams and records it
        async with self._lock:
            actions = self.director.observe(
                view,
                now_us=self.service.now(),
                scheduled_end_us=self._scheduled_end(view.lot_id),
            )
            for action in actions:
                await self._carry_out(action)

    async def _carry_out(self, action: VideoAction) -> None:
        hub = self.hub
        if isinstance(action, DeclareStream):
            hub.declare_lot(action.lot_id)
        elif isinstance(action, StartStream):
            view = self.service.view(action.lot_id)
            format_value = view.format if view is not None else Format.LIVE_AUCTIONEER.value
            renditions = self.sources.renditions(format_value)
            rendition = recorded_rendition(renditions, self.settings)
            directory = self.settings.recordings_dir / action.lot_id / rendition
            await self.sink.flushed(self.settings.drain_seconds)
            index, prev = self.sink.resume(action.lot_id, rendition)
            aside = await asyncio.to_thread(set_aside_unanchored, directory, index)
            if aside is not None:
                logger.warning("segments of %s not in the ledger moved to %s", action.lot_id, aside)
            try:  # the presentation drawn again: the lot's pictures may have changed
                spec = await asyncio.to_thread(self.sources.spec, view, None, fresh=True)
            except (SourceChoiceError, SourceError) as exc:  # the file went away meanwhile
                logger.warning("lot %s: its video source cannot be used: %s", action.lot_id, exc)
                spec = await asyncio.to_thread(
                    self.sources.spec, view, default_choice(format_value)
                )
            hub.open_lot(
                action.lot_id,
                spec,
                action.overlay,
                first_segment_index=index,
                prev_segment_sha256_hex=prev,
                renditions=renditions,
                record=self.settings.record,
            )
        elif isinstance(action, ShowState):
            hub.update_overlay(action.lot_id, action.overlay)
        elif isinstance(action, StopStreamLater):
            self._tails[action.lot_id] = asyncio.ensure_future(self._tail(action.lot_id))
        else:
            tail = self._tails.pop(action.lot_id, None)
            if tail is not None:
                tail.cancel()

    async def _tail(self, lot_id: str) -> None:
        await asyncio.sleep(self.settings.close_tail_seconds)
        self._tails.pop(lot_id, None)
        closing = asyncio.ensure_future(self._close(lot_id))
        self._closing.add(closing)
        closing.add_done_callback(self._closing.discard)
        await asyncio.shield(closing)

    async def _close(self, lot_id: str) -> None:
        await self.hub.close_lot(lot_id)
        async with self._lock:
            self.director.stream_stopped(lot_id)
        view = self.service.view(lot_id)
        if view is not None and self._task is not None:  # opened again meanwhile
            await self._observe(view)
