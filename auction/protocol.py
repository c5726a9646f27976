"""Re-exports of `auction.bidding.protocol` and its siblings (the old module)."""

from .bidding.idempotency import IdempotencyIndex
from .bidding.protocol import (
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
from .bidding.rate_limit import TokenBucket
from .bidding.signed_bid import (
    BID_REQUEST_PREFIX,
    BidRequest,
    SignedBid,
    signed_bytes,
    verify_bid_signature,
)

__all__ = [
    "BID_REQUEST_PREFIX",
    "SignedBid",
    "BidRequest",
    "CLOSE_ABUSE",
    "CLOSE_NORMAL",
    "CLOSE_PROTOCOL",
    "CLOSE_REPLACED",
    "CLOSE_TOO_BIG",
    "CLOSE_UNAUTHORIZED",
    "CLOSE_VERSION",
    "ClientMessage",
    "Hello",
    "IdempotencyIndex",
    "MAX_FRAME_BYTES",
    "Ping",
    "ProtocolViolation",
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
