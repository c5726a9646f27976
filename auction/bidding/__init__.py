"""The bidder's path into the auction: protocol messages, one websocket connection's state
(`session`, sans-I/O: what the `/ws` adapter in `auction.web.ws` drives), the replay ring, the
signed bid, limits, the ack, and the gateway (`auction.bidding.gateway`, not imported here: it
needs the service).
"""

from ..verify import (
    BID_REQUEST_PREFIX,
    REQUEST_FIELDS,
    BidMalformed,
    BidRequest,
    SignedBid,
    signed_bytes,
    verify_bid_signature,
)
from .ack import engine_ack, refused_ack, unavailable_ack
from .idempotency import IdempotencyIndex
from .protocol import (
    CLOSE_ABUSE,
    CLOSE_NORMAL,
    CLOSE_PROTOCOL,
    CLOSE_REPLACED,
    CLOSE_TOO_BIG,
    CLOSE_UNAUTHORIZED,
    CLOSE_VERSION,
    MAX_FRAME_BYTES,
    VERSION,
    ClientMessage,
    Hello,
    Ping,
    ProtocolViolation,
    Subscribe,
    TimeRequest,
    Unsubscribe,
    parse_client_message,
    time_reply,
)
from .rate_limit import TokenBucket
from .replay import ReplayRing
from .session import ConnectionState, ConnectionStateError

__all__ = [
    "BID_REQUEST_PREFIX",
    "BidMalformed",
    "REQUEST_FIELDS",
    "SignedBid",
    "engine_ack",
    "refused_ack",
    "unavailable_ack",
    "BidRequest",
    "CLOSE_ABUSE",
    "CLOSE_NORMAL",
    "CLOSE_PROTOCOL",
    "CLOSE_REPLACED",
    "CLOSE_TOO_BIG",
    "CLOSE_UNAUTHORIZED",
    "CLOSE_VERSION",
    "ClientMessage",
    "ConnectionState",
    "ConnectionStateError",
    "Hello",
    "IdempotencyIndex",
    "MAX_FRAME_BYTES",
    "Ping",
    "ProtocolViolation",
    "ReplayRing",
    "Subscribe",
    "TimeRequest",
    "TokenBucket",
    "Unsubscribe",
    "VERSION",
    "parse_client_message",
    "signed_bytes",
    "time_reply",
    "verify_bid_signature",
]
