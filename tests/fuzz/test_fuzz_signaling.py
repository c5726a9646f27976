"""Fuzzing the video signaling parsers of `streaming.signaling`.

Documented: `parse_offer`, `check_sdp`, `check_viewer_offer`, `check_publisher_offer`,
`choose_rendition`, `check_content_type` and `check_declared_length` raise `SignalingError`
subclasses only; `parse_channel_message`, `bearer_token`, `filter_candidates` and
`is_loopback_address` never raise. Seeds are offers made by aiortc itself (a viewer's and a
publisher's, with a data channel), wrapped in the JSON body a browser posts, then mutated.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiortc import RTCPeerConnection
from fuzz_kit import Fuzzers, bounded, mutated, run_fuzzer
from hypothesis import strategies as st

from streaming.errors import BadOffer, OfferTooLarge, SignalingError
from streaming.signaling import (
    MAX_CHANNEL_MESSAGE,
    Offer,
    RenditionRequest,
    bearer_token,
    check_content_type,
    check_declared_length,
    check_publisher_offer,
    check_sdp,
    check_viewer_offer,
    choose_rendition,
    filter_candidates,
    is_loopback_address,
    parse_channel_message,
    parse_offer,
)

MAX_BYTES = 65_536
RENDITIONS = ("360p", "720p")


async def _offer(direction: str) -> str:
    connection = RTCPeerConnection()
    try:
        connection.addTransceiver("video", direction=direction)
        connection.createDataChannel("meta")
        await connection.setLocalDescription(await connection.createOffer())
        return str(connection.localDescription.sdp)
    finally:
        await connection.close()


def _real_offers() -> tuple[str, ...]:
    async def both() -> tuple[str, ...]:
        return (await _offer("recvonly"), await _offer("sendonly"))

    return asyncio.run(both())


OFFERS = _real_offers()
BODIES = tuple(json.dumps({"sdp": sdp, "type": "offer"}).encode() for sdp in OFFERS)


def check_offer_body(body: bytes) -> None:
    """`parse_offer` → `SignalingError` or a checked offer; the role checks too."""
    with bounded(1.0, "parse_offer"):
        try:
            offer = parse_offer(body, max_bytes=MAX_BYTES)
        except SignalingError as exc:
            assert isinstance(exc, BadOffer | OfferTooLarge), type(exc)
            assert exc.code and str(exc)
            return
        _check_offer(offer)


def check_sdp_text(sdp: str) -> None:
    """`check_sdp` on any text (the SDP inside a well-formed body)."""
    with bounded(1.0, "check_sdp"):
        try:
            offer = check_sdp(sdp)
        except BadOffer as exc:
            assert exc.code in ("BAD_SDP", "NO_VIDEO"), exc.code
            return
        _check_offer(offer)
        kept = filter_candidates(sdp, is_loopback_address)
    for line in kept.split("\r\n"):
        if line.startswith("a=candidate:"):
            assert is_loopback_address(line.split(" ")[4]), line


def _check_offer(offer: Offer) -> None:
    assert len(offer.video_directions) == 1
    assert offer.video_directions[0] in ("sendrecv", "sendonly", "recvonly", "inactive")
    for role in (check_viewer_offer, check_publisher_offer):
        try:
            role(offer)
        except BadOffer as exc:
            assert exc.code == "WRONG_DIRECTION"


def check_channel_message(message: str | bytes) -> None:
    """A viewer's data channel message is a rendition request or ignored, never an error."""
    with bounded(1.0, "parse_channel_message"):
        request = parse_channel_message(message)
    if request is not None:
        assert isinstance(request, RenditionRequest)
        assert 0 < len(request.name) <= 16 and len(message) <= MAX_CHANNEL_MESSAGE
        try:
            assert choose_rendition(request.name, RENDITIONS, "360p") == request.name
        except BadOffer as exc:
            assert exc.code == "UNKNOWN_RENDITION"


def check_headers(values: tuple[str, str, int | None, str | None]) -> None:
    """Headers and query: content type, declared length, bearer token, rendition."""
    content_type, authorization, length, rendition = values
    try:
        check_content_type(content_type)
    except SignalingError as exc:
        assert exc.status == 415
    try:
        check_declared_length(length, MAX_BYTES)
    except SignalingError as exc:
        assert exc.status == 413 and length is not None and length > MAX_BYTES
    token = bearer_token(authorization)
    assert token is None or (token and token == token.strip())
    try:
        assert choose_rendition(rendition, RENDITIONS, "360p") in RENDITIONS
    except BadOffer as exc:
        assert exc.code == "UNKNOWN_RENDITION"


def _sdp_of(body: bytes) -> Any:
    return json.loads(body)["sdp"]


SDP_SEEDS = tuple(sdp.encode() for sdp in OFFERS)
TEXT = st.text(st.characters(codec="utf-8"), max_size=200)

FUZZERS: Fuzzers = {
    "signaling offer body": (
        st.one_of(
            st.binary(max_size=2000),
            mutated(BODIES, max_ops=6),
            st.just(b'{"type": "offer", "sdp": 1' + b"0" * 5000 + b"}"),
            st.just(b"[" * 50_000),
        ),
        check_offer_body,
    ),
    "signaling sdp": (
        st.one_of(TEXT, mutated(SDP_SEEDS, max_ops=6).map(lambda b: b.decode("utf-8", "replace"))),
        check_sdp_text,
    ),
    "signaling channel message": (
        st.one_of(
            TEXT,
            st.binary(max_size=1100),
            mutated([b'{"type": "rendition", "name": "720p"}'], max_ops=6),
            st.just('{"name": 1' + "0" * 1000 + "}"),
        ),
        check_channel_message,
    ),
    "signaling headers": (
        st.tuples(
            st.one_of(TEXT, st.sampled_from(["application/json", "APPLICATION/JSON ; x", ""])),
            st.one_of(TEXT, st.sampled_from(["Bearer abc", "bearer  ", "Bearer", " Bearer x "])),
            st.one_of(st.none(), st.integers()),
            st.one_of(st.none(), TEXT, st.sampled_from(RENDITIONS)),
        ),
        check_headers,
    ),
}


def test_fuzz_offer_bodies() -> None:
    run_fuzzer(FUZZERS, "signaling offer body", 300)


def test_fuzz_sdp() -> None:
    run_fuzzer(FUZZERS, "signaling sdp", 300)


def test_fuzz_channel_messages() -> None:
    run_fuzzer(FUZZERS, "signaling channel message", 300)


def test_fuzz_headers() -> None:
    run_fuzzer(FUZZERS, "signaling headers", 200)


def test_real_offers_parse_with_their_roles() -> None:
    viewer, publisher = (parse_offer(body, max_bytes=MAX_BYTES) for body in BODIES)
    check_viewer_offer(viewer)
    check_publisher_offer(publisher)
    assert viewer.has_data_channel and _sdp_of(BODIES[0]) == viewer.sdp


def test_an_integer_beyond_the_conversion_limit_is_a_bad_offer() -> None:
    """Found by the fuzzer: Python refuses int literals over 4,300 digits with a plain
    ValueError, which is not a JSONDecodeError; it escaped `parse_offer` as a 500."""
    body = b'{"type": "offer", "sdp": 1' + b"0" * 5000 + b"}"
    try:
        parse_offer(body, max_bytes=MAX_BYTES)
    except BadOffer as exc:
        assert exc.code == "BAD_JSON"
    else:
        raise AssertionError("accepted")
    assert parse_channel_message('{"type": "rendition", "name": 1' + "0" * 1000 + "}") is None
