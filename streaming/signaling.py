"""Pure signaling checks: what an offer must look like before any WebRTC object is made.

Every function here is bounded and raises only `SignalingError` subclasses (a property test
feeds it arbitrary bytes). The aiohttp adapter reads at most `max_bytes + 1` bytes of body and
hands them over with the declared content type.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from streaming.errors import (
    BadOffer,
    OfferTooLarge,
    SignalingError,
    UnsupportedMediaType,
)

MAX_CHANNEL_MESSAGE = 1024


@dataclass(frozen=True, slots=True)
class Offer:
    """A checked SDP offer: `sdp` has exactly the video sections `video_directions` lists."""

    sdp: str
    video_directions: tuple[str, ...]
    has_data_channel: bool


def error_body(error: SignalingError) -> dict[str, dict[str, str]]:
    """The JSON body of every refused request."""
    return {"error": {"code": error.code, "message": str(error)}}


def check_content_type(content_type: str) -> None:
    """Raise `UnsupportedMediaType` (415) unless the body is declared JSON."""
    media_type = content_type.split(";", 1)[0].strip().lower()
    if media_type != "application/json":
        shown = media_type or "none"
        raise UnsupportedMediaType(f"send the offer as application/json, not {shown}")


def check_declared_length(content_length: int | None, max_bytes: int) -> None:
    """Refuse a body whose declared length is already too large, before reading it."""
    if content_length is not None and content_length > max_bytes:
        raise OfferTooLarge(f"the offer body is {content_length} bytes; the limit is {max_bytes}")


def parse_offer(body: bytes, *, max_bytes: int) -> Offer:
    """Parse `{"sdp": ..., "type": "offer"}` and check the SDP is a usable viewer or publisher
    offer. Raises `OfferTooLarge`, `BadOffer`."""
    if len(body) > max_bytes:
        raise OfferTooLarge(f"the offer body is larger than {max_bytes} bytes")
    try:
        document = json.loads(body.decode("utf-8"))
    except (ValueError, RecursionError) as exc:
        # ValueError: JSONDecodeError, UnicodeDecodeError, and an integer literal longer than
        # the interpreter's int conversion limit (4,300 digits), which is neither of those.
        raise BadOffer("the body is not JSON", code="BAD_JSON") from exc
    if not isinstance(document, dict):
        raise BadOffer('the body must be a JSON object {"sdp": ..., "type": "offer"}')
    kind = document.get("type")
    if kind != "offer":
        raise BadOffer(f'"type" must be "offer", not {kind!r:.40}', code="WRONG_TYPE")
    sdp = document.get("sdp")
    if not isinstance(sdp, str) or not sdp:
        raise BadOffer('"sdp" must be a non-empty string', code="BAD_SDP")
    return check_sdp(sdp)


def check_sdp(sdp: str) -> Offer:
    """Minimal structural check of an SDP offer (RFC 8866 5: `v=0` first; one `m=` line per
    section). The full parse happens in aiortc; this only refuses what is clearly unusable."""
    lines = sdp.replace("\r\n", "\n").split("\n")
    if lines[0].strip() != "v=0":
        raise BadOffer("the SDP must start with v=0", code="BAD_SDP")
    kinds: list[str] = []
    section_directions: list[str] = []
    for line in lines:
        stripped = line.strip()
        if stripped.startswith("m="):
            kinds.append(stripped[2:].split(" ", 1)[0])
            section_directions.append("sendrecv")  # RFC 8866 6.7: the default direction
        elif kinds and stripped in ("a=sendrecv", "a=sendonly", "a=recvonly", "a=inactive"):
            section_directions[-1] = stripped[2:]
    directions = [d for k, d in zip(kinds, section_directions, strict=True) if k == "video"]
    has_data = "application" in kinds
    if not directions:
        raise BadOffer("the offer has no video section", code="NO_VIDEO")
    if len(directions) > 1:
        raise BadOffer("the offer must have exactly one video section", code="BAD_SDP")
    return Offer(sdp=sdp, video_directions=tuple(directions), has_data_channel=has_data)


def check_viewer_offer(offer: Offer) -> None:
    """A viewer receives: its video section must be recvonly or sendrecv."""
    if offer.video_directions[0] not in ("recvonly", "sendrecv"):
        raise BadOffer(
            f"a viewer offer must receive video (recvonly), not {offer.video_directions[0]}",
            code="WRONG_DIRECTION",
        )


def check_publisher_offer(offer: Offer) -> None:
    """A publisher sends: its video section must be sendonly or sendrecv."""
    if offer.video_directions[0] not in ("sendonly", "sendrecv"):
        raise BadOffer(
            f"a publisher offer must send video (sendonly), not {offer.video_directions[0]}",
            code="WRONG_DIRECTION",
        )


def bearer_token(authorization: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header (RFC 6750 2.1), or None."""
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def choose_rendition(requested: str | None, available: Iterable[str], default: str) -> str:
    """The rendition a viewer asked for with `?rendition=`, else the default."""
    names = list(available)
    if requested is None or requested == "":
        return default if default in names else names[0]
    if requested not in names:
        raise BadOffer(
            f"unknown rendition {requested!r:.20}; available: {', '.join(names)}",
            code="UNKNOWN_RENDITION",
        )
    return requested


def filter_candidates(sdp: str, keep: Callable[[str], bool]) -> str:
    """Drop `a=candidate` lines whose connection address `keep` refuses (RFC 8839 5.1:
    the address is the fifth field). Used to keep a loopback-only deployment hermetic."""
    out: list[str] = []
    for line in sdp.split("\r\n"):
        if line.startswith("a=candidate:"):
            fields = line.split(" ")
            if len(fields) < 6 or not keep(fields[4]):
                continue
        out.append(line)
    return "\r\n".join(out)


def is_loopback_address(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True, slots=True)
class RenditionRequest:
    """A viewer asked, over the metadata channel, to switch rendition."""

    name: str


def parse_channel_message(message: str | bytes) -> RenditionRequest | None:
    """Parse a message a viewer sends on the metadata channel. Unknown or malformed messages
    are ignored (None): the channel is best effort and must never hurt the stream."""
    if len(message) > MAX_CHANNEL_MESSAGE:
        return None
    try:
        text = message.decode("utf-8") if isinstance(message, bytes) else message
        document = json.loads(text)
    except (ValueError, RecursionError):  # JSON, UTF-8 or int conversion limit
        return None
    if not isinstance(document, dict) or document.get("type") != "rendition":
        return None
    name = document.get("name")
    if not isinstance(name, str) or not (0 < len(name) <= 16):
        return None
    return RenditionRequest(name=name)
