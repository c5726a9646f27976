"""Shared helpers of the tests, first written for `test_privacy.py`."""

from __future__ import annotations

import base64
import json
from typing import Any

import aiohttp
from server_kit import (
    NAME,
    Bidder,
    Server,
    new_bidder,
    prc_id,
    ready_bidder,
    verify,
)

from auction.client import BidderClient

__all__ = ["DOCUMENTS", "NAME", "SECRET_MAX", "client_for", "fetch", "verified_bidder"]


#: Alice's proxy maximum: it must not be readable by anyone else while the lot is open.
SECRET_MAX = 987_000


DOCUMENTS = (prc_id(sequence="371"), prc_id(sequence="482"))


async def fetch(
    http: aiohttp.ClientSession, url: str, token: str | None = None, **headers: str
) -> tuple[int, str, Any]:
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    async with http.get(url, headers=headers) as response:
        text = (await response.read()).decode("utf-8", "replace")
        return response.status, readable(text), response.headers


def readable(text: str) -> str:
    """A receipt's JSON with its base64 entry decoded (the scan must see the entry's bytes)."""
    try:
        body = json.loads(text)
    except ValueError:
        return text
    if isinstance(body, dict) and isinstance(body.get("entry"), str):
        return text + base64.b64decode(body["entry"]).decode("utf-8", "replace")
    return text


def client_for(server: Server, bidder: Bidder) -> Any:
    return BidderClient.connect(
        server.url, account=bidder.account, key=bidder.key, session=bidder.session
    )


async def verified_bidder(
    http: aiohttp.ClientSession, server: Server, document: str, lots: tuple[str, ...]
) -> Bidder:
    bidder = await new_bidder(http, server.url)
    await verify(http, server.url, bidder, document)
    ready = await ready_bidder(http, server.url, ())  # another account, unused: more noise
    assert ready.account != bidder.account
    for lot in lots:
        async with http.post(
            f"{server.url}/api/lots/{lot}/registrations", json={}, headers=bidder.auth
        ) as response:
            assert response.status == 201
    return bidder
