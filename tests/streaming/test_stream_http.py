"""Signaling over real HTTP on 127.0.0.1: every bad input gets a 4xx JSON error with a
message, and the server stays up."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest
from stream_kit import PATTERN, Running, running_stream_app, stream_settings

VIEWER_SDP = (
    "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n"
    "m=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\na=recvonly\r\n"
)


async def _allow(lot_id: str, token: str) -> bool:
    return token == "console-secret"


@pytest.fixture
async def server() -> AsyncIterator[Running]:
    async with running_stream_app(
        # the mangled offers that still negotiate stay connected: no per-address cap here
        stream_settings(
            publisher_authorizer=_allow, max_sdp_bytes=4096, max_viewers_per_address=100
        )
    ) as running:
        running.hub.open_lot("lot-1", PATTERN)
        running.hub.declare_lot("lot-later")
        yield running


async def _post(
    running: Running,
    path: str,
    body: bytes,
    content_type: str = "application/json",
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, object]]:
    all_headers = {"Content-Type": content_type, **(headers or {})}
    async with running.session.post(running.base_url + path, data=body, headers=all_headers) as r:
        return r.status, await r.json()


OFFER = "/api/lots/lot-1/stream/offer"


@pytest.mark.parametrize(
    ("path", "body", "content_type", "status", "code"),
    [
        (OFFER, b"{not json", "application/json", 400, "BAD_JSON"),
        (
            OFFER,
            json.dumps({"sdp": VIEWER_SDP, "type": "answer"}).encode(),
            "application/json",
            400,
            "WRONG_TYPE",
        ),
        (
            OFFER,
            json.dumps({"sdp": 5, "type": "offer"}).encode(),
            "application/json",
            400,
            "BAD_SDP",
        ),
        (
            OFFER,
            json.dumps({"sdp": "v=0\r\nm=audio 9 RTP 0\r\n", "type": "offer"}).encode(),
            "application/json",
            400,
            "NO_VIDEO",
        ),
        (
            OFFER,
            json.dumps(
                {"sdp": VIEWER_SDP.replace("a=recvonly", "a=sendonly"), "type": "offer"}
            ).encode(),
            "application/json",
            400,
            "WRONG_DIRECTION",
        ),
        (
            OFFER,
            json.dumps({"sdp": "v=0\r\n" + "a=x\r\n" * 5000, "type": "offer"}).encode(),
            "application/json",
            413,
            "OFFER_TOO_LARGE",
        ),
        (
            OFFER,
            json.dumps({"sdp": VIEWER_SDP, "type": "offer"}).encode(),
            "text/plain",
            415,
            "UNSUPPORTED_MEDIA_TYPE",
        ),
        (
            OFFER + "?rendition=4k",
            json.dumps({"sdp": VIEWER_SDP, "type": "offer"}).encode(),
            "application/json",
            400,
            "UNKNOWN_RENDITION",
        ),
        (
            OFFER,
            json.dumps({"sdp": VIEWER_SDP + "m=video 9 x\r\n", "type": "offer"}).encode(),
            "application/json",
            400,
            "BAD_SDP",
        ),
        (
            "/api/lots/nope/stream/offer",
            json.dumps({"sdp": VIEWER_SDP, "type": "offer"}).encode(),
            "application/json",
            404,
            "LOT_NOT_FOUND",
        ),
        ("/api/lots/..%2F..%2Fetc/stream/offer", b"{}", "application/json", 404, "LOT_NOT_FOUND"),
        (
            "/api/lots/lot-later/stream/offer",
            json.dumps({"sdp": VIEWER_SDP, "type": "offer"}).encode(),
            "application/json",
            409,
            "LOT_NOT_LIVE",
        ),
    ],
)
async def test_bad_viewer_signaling_gets_a_clear_4xx(
    server: Running, path: str, body: bytes, content_type: str, status: int, code: str
) -> None:
    got_status, got = await _post(server, path, body, content_type)
    assert got_status == status, got
    error = got["error"]
    assert isinstance(error, dict) and error["code"] == code and error["message"]
    # the server stays up and the lot still streams
    async with server.session.get(server.base_url + "/api/lots/lot-1/stream") as response:
        assert response.status == 200
        assert (await response.json())["live"] is True


async def test_an_unparseable_sdp_is_refused_without_harm(server: Running) -> None:
    sdp = "v=0\r\no=- x\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=rtpmap:bad\r\na=recvonly\r\n"
    status, body = await _post(server, OFFER, json.dumps({"sdp": sdp, "type": "offer"}).encode())
    assert 400 <= status < 500, body
    assert server.hub.peer_count() == 0


async def test_a_declared_body_length_over_the_limit_is_refused_before_reading(
    server: Running,
) -> None:
    status, body = await _post(server, OFFER, b" " * 10_000)
    assert status == 413 and body["error"]["code"] == "OFFER_TOO_LARGE"  # type: ignore[index]


@pytest.mark.parametrize(
    ("headers", "status", "code"),
    [
        ({}, 401, "NOT_AUTHORIZED"),
        ({"Authorization": "Bearer wrong"}, 401, "NOT_AUTHORIZED"),
        ({"Authorization": "Basic console-secret"}, 401, "NOT_AUTHORIZED"),
    ],
)
async def test_publishing_needs_the_bearer_token(
    server: Running, headers: dict[str, str], status: int, code: str
) -> None:
    body = json.dumps({"sdp": VIEWER_SDP, "type": "offer"}).encode()
    got_status, got = await _post(server, "/api/lots/lot-1/stream/publish", body, headers=headers)
    assert got_status == status and got["error"]["code"] == code  # type: ignore[index]


async def test_publishing_is_refused_when_no_authorizer_is_configured() -> None:
    async with running_stream_app(stream_settings()) as running:
        running.hub.open_lot("lot-1", PATTERN)
        status, body = await _post(
            running,
            "/api/lots/lot-1/stream/publish",
            b"{}",
            headers={"Authorization": "Bearer x"},
        )
        assert status == 403 and body["error"]["code"] == "PUBLISHING_DISABLED"  # type: ignore[index]


async def test_status_and_static_player(server: Running) -> None:
    async with server.session.get(server.base_url + "/api/lots/lot-1/stream") as response:
        status = await response.json()
    assert status["live"] and status["codec"] == "VP8" and status["viewers"] == 0
    assert [r["name"] for r in status["renditions"]] == ["360p", "720p"]
    async with server.session.get(server.base_url + "/api/lots/lot-later/stream") as response:
        assert (await response.json())["phase"] == "declared"
    async with server.session.get(server.base_url + "/api/lots/zzz/stream") as response:
        assert response.status == 404
    async with server.session.get(server.base_url + "/stream/static/player.js") as response:
        assert response.status == 200
        assert "javascript" in response.headers["Content-Type"]
        assert "export async function attachStream" in await response.text()


async def test_a_closed_lot_is_no_longer_live(server: Running) -> None:
    await server.hub.close_lot("lot-1")
    status, body = await _post(
        server, OFFER, json.dumps({"sdp": VIEWER_SDP, "type": "offer"}).encode()
    )
    assert status == 409 and "ended" in body["error"]["message"]  # type: ignore[index]


async def test_mangled_real_offers_get_json_errors_and_the_server_stays_up(
    server: Running,
) -> None:
    """Take a real aiortc offer and break it line by line: every answer is a 200 or a JSON
    4xx/5xx from our error tree, never an unhandled 500."""
    import random

    from aiortc import RTCConfiguration, RTCPeerConnection

    client = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    client.addTransceiver("video", direction="recvonly")
    client.createDataChannel("gavel-meta")
    await client.setLocalDescription(await client.createOffer())
    sdp = client.localDescription.sdp
    await client.close()
    lines = sdp.split("\r\n")
    generator = random.Random(1)
    for attempt in range(30):
        mangled = list(lines)
        kind = attempt % 3
        where = generator.randrange(1, len(mangled))
        if kind == 0:
            del mangled[where]
        elif kind == 1:
            line = mangled[where]
            if line:
                cut = generator.randrange(len(line))
                mangled[where] = line[:cut] + generator.choice(
                    ["", ":", " ", "x", "\x00", "9" * 30]
                )
        else:
            mangled.insert(where, generator.choice(["m=video", "a=rtpmap:96", "a=ssrc:x", "c=IN"]))
        body = json.dumps({"sdp": "\r\n".join(mangled), "type": "offer"}).encode()
        status, answer = await _post(server, OFFER, body)
        assert status == 200 or (status in (400, 502) and "error" in answer), (status, answer)
    async with server.session.get(server.base_url + "/api/lots/lot-1/stream") as response:
        assert response.status == 200


async def test_the_status_tells_browsers_which_ice_servers_to_use() -> None:
    from streaming.settings import IceServer

    turn = IceServer(("turn:turn.example.org:3478",), username="u", credential="short-lived")
    async with running_stream_app(stream_settings(client_ice_servers=(turn,))) as running:
        running.hub.open_lot("lot-1", PATTERN)
        async with running.session.get(running.base_url + "/api/lots/lot-1/stream") as response:
            status = await response.json()
    assert status["ice_servers"] == [
        {"urls": ["turn:turn.example.org:3478"], "username": "u", "credential": "short-lived"}
    ]
