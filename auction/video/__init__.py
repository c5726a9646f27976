"""Live video of the lots: the streaming package wired to the auction service and the ledger.

`install_video(app, service_key, settings)` is the one entry point; the composition root calls
it right after the cleanup context that starts the service. It

* mounts the streaming sub-application (`/stream/static/player.js`) and its signaling routes
  (`POST /api/lots/{lot_id}/stream/offer`, `GET /api/lots/{lot_id}/stream`, ...);
* adds one cleanup context that starts the stream hub, then a `LotVideo` driver: one
  `service.subscribe()` task that opens a lot's stream (the synthetic test pattern) while the
  lot is open (`LIVE_AUCTIONEER` lots only, or every lot), burns the lot's state into the
  picture, and closes the stream a short tail after the lot closed;
* records the streamed packets of one rendition as evidence segments under
  `<recordings_dir>/<lot_id>/<rendition>/` and appends each finished segment to the ledger as a
  house-signed `stream_segment` entry (`LedgerSegmentSink`: a bounded queue and one writer
  task, so the media path never waits for the database).

At shutdown the cleanup runs before the service stops: the driver stops, every lot's last
segment is closed and its entry written (bounded by `VideoSettings.drain_seconds`), then the
service stops.

The decisions (which lot streams, what the picture says, what an entry holds, which entries a
recording is checked against) are pure functions and the `VideoDirector` state machine
(`director`, `segments`); `sink`, `driver` and `install` are the adapters, `settings` says how
the server streams.
"""

from __future__ import annotations

from .director import (
    CURRENCY_DIGITS,
    DeclareStream,
    KeepStream,
    ShowState,
    StartStream,
    StopStreamLater,
    VideoDirector,
    format_price,
    overlay_for,
    wants_stream,
)
from .driver import LotVideo
from .install import VIDEO, StaffCheck, Video, install_video
from .segments import (
    SEGMENT_BODY_VERSION,
    StreamAudit,
    expected_segments,
    segment_body,
    verify_stream,
)
from .settings import VideoSettings
from .sink import LedgerSegmentSink

__all__ = [
    "CURRENCY_DIGITS",
    "SEGMENT_BODY_VERSION",
    "VIDEO",
    "DeclareStream",
    "KeepStream",
    "LedgerSegmentSink",
    "LotVideo",
    "ShowState",
    "StaffCheck",
    "StartStream",
    "StopStreamLater",
    "StreamAudit",
    "Video",
    "VideoDirector",
    "VideoSettings",
    "expected_segments",
    "format_price",
    "install_video",
    "overlay_for",
    "segment_body",
    "verify_stream",
    "wants_stream",
]
