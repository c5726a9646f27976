"""Viewer sessions per address: one client address holds at most `max_viewers_per_address`
viewers of a lot (4 by default, docs/protocol.md §3); the next offer gets a typed 429 and
nothing is negotiated. Real aiortc viewers over 127.0.0.1."""

from __future__ import annotations

from typing import Any

from aiortc import RTCPeerConnection
from stream_kit import PATTERN, running_stream_app, stream_settings, wait_until

from streaming.loadtest import Viewer
from streaming.model import R360P
from streaming.settings import StreamSettings

LOT = "lot-1"


async def test_one_address_gets_at_most_four_viewers_of_a_lot_then_a_typed_429() -> None:
    assert StreamSettings().max_viewers_per_address == 4
    settings = stream_settings(renditions=(R360P,))
    async with running_stream_app(settings) as running:
        running.hub.open_lot(LOT, PATTERN)
        running.hub.open_lot("lot-2", PATTERN)
        viewers = [Viewer(running.session, running.base_url, LOT, mode="count") for _ in range(4)]
        try:
            for viewer in viewers:
                await viewer.connect()
            assert running.hub.peer_count() == 4
            extra = RTCPeerConnection()
            extra.addTransceiver("video", direction="recvonly")
            await extra.setLocalDescription(await extra.createOffer())
            offer = {"sdp": extra.localDescription.sdp, "type": "offer"}
            url = f"{running.base_url}/api/lots/{LOT}/stream/offer"
            async with running.session.post(url, json=offer) as response:
                body = await response.json()
                assert response.status == 429, body
            assert body["error"]["code"] == "TOO_MANY_VIEWERS_FROM_ADDRESS"
            assert "at most 4" in body["error"]["message"]
            assert running.hub.peer_count() == 4  # nothing negotiated for the refused offer
            await extra.close()
            # the cap is per lot: the same address may still watch another lot
            other = Viewer(running.session, running.base_url, "lot-2", mode="count")
            await other.connect()
            viewers.append(other)
            # a closed player frees its place
            await viewers[0].pc.close()
            await wait_until(lambda: running.hub.peer_count() == 4, 10)
            again = Viewer(running.session, running.base_url, LOT, mode="count")
            await again.connect()
            viewers.append(again)
        finally:
            for viewer in viewers:
                await viewer.close()


def test_a_proxied_viewer_counts_under_its_own_address_only_with_the_cluster_secret() -> None:
    """Several instances: the instance that proxies a viewer's offer to the lot's writer
    passes the viewer's address; the writer believes it only with the cluster's secret."""
    from types import SimpleNamespace

    from aiohttp.test_utils import make_mocked_request

    from auction.cluster import CLUSTER_HEADER, VIEWER_ADDRESS_HEADER, Cluster

    cluster: Any = SimpleNamespace(_secret="s3cret")
    cluster._authorized = lambda request: Cluster._authorized(cluster, request)

    def address(headers: dict[str, str]) -> str | None:
        request = make_mocked_request("POST", "/api/lots/lot-1/stream/offer", headers=headers)
        return Cluster.viewer_address(cluster, request)

    assert address({CLUSTER_HEADER: "s3cret", VIEWER_ADDRESS_HEADER: "203.0.113.7"}) == (
        "203.0.113.7"
    )
    assert address({VIEWER_ADDRESS_HEADER: "203.0.113.7"}) is None  # a client cannot claim one
    assert address({CLUSTER_HEADER: "guess", VIEWER_ADDRESS_HEADER: "203.0.113.7"}) is None
    assert address({CLUSTER_HEADER: "s3cret", VIEWER_ADDRESS_HEADER: "x" * 65}) is None
