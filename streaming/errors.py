"""The one exception tree of `streaming`, split by who is at fault.

    StreamError
    ├── SignalingError          the HTTP client sent something we refuse (carries status + code)
    │   ├── BadOffer            400  not JSON, wrong shape, wrong type, unusable SDP
    │   ├── NotAuthorized       401  publisher without a valid bearer token
    │   ├── PublishingDisabled  403  no publisher authorizer configured
    │   ├── LotNotFound         404  the hub has never heard of the lot
    │   ├── LotNotLive          409  the lot is known but not streaming (not yet / any more)
    │   ├── CameraNotAccepted   409  the lot streams a file passed through: no camera input
    │   ├── BodyTimeout         408  the body did not arrive within the negotiation timeout
    │   ├── OfferTooLarge       413  body above the configured SDP limit
    │   ├── UnsupportedMediaType 415 not application/json
    │   ├── TooManyViewers      503  the lot's viewer limit is reached
    │   ├── TooManyViewersFromAddress 429  one address holds its cap of a lot's viewers
    │   └── NegotiationFailed   502  WebRTC negotiation did not complete (timeout, ICE, codec)
    ├── ConfigurationError      the server side called the hub wrongly (programming error)
    ├── SourceError             a media source cannot be used (codec, file, camera)
    └── RecordingError          an evidence recording does not match the ledger
        ├── ExpectedChainBroken the expected list itself is not one hash chain
        ├── SegmentMissing      a cut: the segment with this index is not in the recording
        ├── SegmentOutOfOrder   a swap: the segment is there, at another position
        ├── SegmentAltered      an edit: the bytes at this position hash differently
        ├── UnexpectedSegment   an insertion or tail: a file the ledger does not list
        └── SegmentMalformed    the file hashes right but is not a well-formed segment

Foreign exceptions (aiortc, av, OSError) are translated once, at the boundary that saw them,
with `raise Ours(...) from exc`.
"""

from __future__ import annotations


class StreamError(Exception):
    """Base of every error `streaming` raises on purpose."""


# --- signaling: the HTTP client is at fault -------------------------------------------------


class SignalingError(StreamError):
    """A refused signaling request. `status` and `code` go into the JSON error body
    `{"error": {"code": code, "message": str(self)}}`."""

    status = 400
    code = "BAD_REQUEST"


class BadOffer(SignalingError):
    status = 400
    code = "BAD_OFFER"

    def __init__(self, message: str, *, code: str = "BAD_OFFER") -> None:
        super().__init__(message)
        self.code = code


class NotAuthorized(SignalingError):
    status = 401
    code = "NOT_AUTHORIZED"


class PublishingDisabled(SignalingError):
    status = 403
    code = "PUBLISHING_DISABLED"


class LotNotFound(SignalingError):
    status = 404
    code = "LOT_NOT_FOUND"

    def __init__(self, lot_id: str) -> None:
        super().__init__(f"no stream is known for lot {lot_id!r}")
        self.lot_id = lot_id


class LotNotLive(SignalingError):
    status = 409
    code = "LOT_NOT_LIVE"

    def __init__(self, lot_id: str, state: str) -> None:
        super().__init__(f"lot {lot_id!r} is not live (stream state: {state})")
        self.lot_id = lot_id
        self.state = state


class CameraNotAccepted(SignalingError):
    status = 409
    code = "CAMERA_NOT_ACCEPTED"


class BodyTimeout(SignalingError):
    status = 408
    code = "BODY_TIMEOUT"


class OfferTooLarge(SignalingError):
    status = 413
    code = "OFFER_TOO_LARGE"


class UnsupportedMediaType(SignalingError):
    status = 415
    code = "UNSUPPORTED_MEDIA_TYPE"


class TooManyViewers(SignalingError):
    status = 503
    code = "TOO_MANY_VIEWERS"


class TooManyViewersFromAddress(SignalingError):
    status = 429
    code = "TOO_MANY_VIEWERS_FROM_ADDRESS"


class NegotiationFailed(SignalingError):
    status = 502
    code = "NEGOTIATION_FAILED"


# --- the server side is at fault --------------------------------------------------------------


class ConfigurationError(StreamError, ValueError):
    """The hub or the settings were used wrongly (an invalid lot id, an unknown rendition,
    a lot opened twice). Fix the caller."""


class SourceError(StreamError):
    """A media source cannot be used: unreadable file, codec that cannot be passed through."""


# --- evidence ---------------------------------------------------------------------------------


class RecordingError(StreamError):
    """A recording does not prove what the ledger says was streamed. `index` names the
    ledger segment index at fault (None when the fault is not one segment's)."""

    def __init__(self, message: str, *, index: int | None = None) -> None:
        super().__init__(message)
        self.index = index


class ExpectedChainBroken(RecordingError):
    """The expected list (from the ledger) is not one contiguous hash chain."""


class SegmentMissing(RecordingError):
    """A cut: the segment the ledger lists at `index` is nowhere in the recording."""


class SegmentOutOfOrder(RecordingError):
    """A swap: the segment the ledger lists at `index` sits at another position."""

    def __init__(self, message: str, *, index: int, found_at: int) -> None:
        super().__init__(message, index=index)
        self.found_at = found_at


class SegmentAltered(RecordingError):
    """An edit: the file at the position of `index` hashes to something the ledger never saw."""

    def __init__(self, message: str, *, index: int, expected: str, actual: str) -> None:
        super().__init__(message, index=index)
        self.expected = expected
        self.actual = actual


class UnexpectedSegment(RecordingError):
    """The recording holds a segment file the ledger does not list."""


class SegmentMalformed(RecordingError):
    """A segment's framing or header is not what the recorder writes."""
