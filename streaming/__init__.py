"""Live video of lots: one shared encode per lot rendition, the lot state burned into the
picture, timed metadata on a data channel, and evidence segments chained into the ledger.

This package imports none of `auction`, `chain` or `notary`. Importing it pulls in no
adapter (no aiohttp, aiortc or av): the HTTP sub-application is `streaming.app`
(`mount_streaming`, `create_stream_app`), the hub `streaming.hub.StreamHub`.

Seams for the auction server:
* in:  `StreamHub.declare_lot / open_lot / update_overlay(lot_id, OverlayState) / close_lot`
* out: a `SegmentSink` (`streaming.recorder`) receives each `ClosedSegment`, in order
* out: timed metadata on the viewers' "gavel-meta" data channel (`metadata_message`)
* audit: `verify_recording(recording_dir, [ExpectedSegment, ...])`, `cli_register`
"""

from streaming.cli import cli_register
from streaming.errors import (
    BadOffer,
    CameraNotAccepted,
    ConfigurationError,
    ExpectedChainBroken,
    LotNotFound,
    LotNotLive,
    NegotiationFailed,
    NotAuthorized,
    OfferTooLarge,
    PublishingDisabled,
    RecordingError,
    SegmentAltered,
    SegmentMalformed,
    SegmentMissing,
    SegmentOutOfOrder,
    SignalingError,
    SourceError,
    StreamError,
    TooManyViewers,
    TooManyViewersFromAddress,
    UnexpectedSegment,
    UnsupportedMediaType,
)
from streaming.evidence import RecordingReport, verify_recording
from streaming.model import (
    GENESIS_SHA256,
    R360P,
    R480P,
    R720P,
    CameraSource,
    ClosedSegment,
    ExpectedSegment,
    FileSource,
    OverlayState,
    Rendition,
    SlideshowSource,
    SourceSpec,
    TestPatternSource,
    metadata_message,
)

__all__ = [
    "GENESIS_SHA256",
    "R360P",
    "R480P",
    "R720P",
    "BadOffer",
    "CameraNotAccepted",
    "CameraSource",
    "ClosedSegment",
    "ConfigurationError",
    "ExpectedChainBroken",
    "ExpectedSegment",
    "FileSource",
    "LotNotFound",
    "LotNotLive",
    "NegotiationFailed",
    "NotAuthorized",
    "OfferTooLarge",
    "OverlayState",
    "PublishingDisabled",
    "RecordingError",
    "RecordingReport",
    "Rendition",
    "SegmentAltered",
    "SegmentMalformed",
    "SegmentMissing",
    "SegmentOutOfOrder",
    "SignalingError",
    "SlideshowSource",
    "SourceError",
    "SourceSpec",
    "StreamError",
    "TestPatternSource",
    "TooManyViewers",
    "TooManyViewersFromAddress",
    "UnexpectedSegment",
    "UnsupportedMediaType",
    "cli_register",
    "metadata_message",
    "verify_recording",
]
