"""Bidders made over REST as a person would be (account, identity, registration, deposit),
their keys carried between processes as base64 seeds, and waiting for lots and deposits."""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Collection, Sequence
from typing import Any

import aiohttp
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from auction.identity.provider import prc_check_character


class SetupError(RuntimeError):
    """The server refused a setup call, or a lot or deposit did not get ready in time."""


def seed_of(key: Ed25519PrivateKey) -> str:
    """The private key as base64 text (to hand it to another process)."""
    return base64.b64encode(key.private_bytes_raw()).decode()


def key_of(seed: str) -> Ed25519PrivateKey:
    """The private key back from `seed_of`'s text."""
    return Ed25519PrivateKey.from_private_bytes(base64.b64decode(seed))


def public_key_text(key: Ed25519PrivateKey) -> str:
    """The raw public key as base64, as `POST /api/accounts` takes it."""
    return base64.b64encode(key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)).decode()


def prc_id(n: int) -> str:
    """Bidder n's resident identity number: one person, one account, so a different number for
    every n below 13 million (sequence, then birth year, month and day)."""
    year, month, day = 1960 + n // 1000 % 40, 1 + n // 40_000 % 12, 1 + n // 480_000 % 28
    first17 = f"110105{year:04d}{month:02d}{day:02d}{n % 1000:03d}"
    return first17 + prc_check_character(first17)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def register_bidder(
    http: aiohttp.ClientSession, url: str, session: str, lot: str, deposit_key: str = "dep"
) -> dict[str, Any]:
    """Register the bidder with `session` for `lot` and, if the lot asks for a deposit, ask
    for it to be frozen under `deposit_key` (frozen later: the payment provider calls back).
    Returns the registration as the server answered it."""
    auth = bearer(session)
    async with http.post(f"{url}/api/lots/{lot}/registrations", json={}, headers=auth) as response:
        if response.status != 201:
            raise SetupError(f"registration for {lot} refused: {await response.text()}")
        registration: dict[str, Any] = await response.json()
    if registration["deposit"]["state"] == "REQUIRED":
        async with http.post(  # the bidding notice (竞买须知) comes before the deposit
            f"{url}/api/lots/{lot}/notice", json={"accept": True}, headers=auth
        ) as response:
            if response.status != 201:
                raise SetupError(f"notice not accepted: {await response.text()}")
        async with http.post(
            f"{url}/api/lots/{lot}/deposit", json={"idempotency_key": deposit_key}, headers=auth
        ) as response:
            if response.status != 202:
                raise SetupError(f"deposit refused: {await response.text()}")
    return registration


async def make_bidder(
    http: aiohttp.ClientSession,
    url: str,
    n: int,
    lots: Sequence[str],
    deposit_key: str = "dep",
) -> dict[str, str]:
    """Account, identity (`prc_id(n)`), registrations and frozen deposits (where a lot asks
    for one) for one bidder, over REST at `url`. `{lot}` in `deposit_key` stands for the
    lot. The private key is returned as its base64 `seed` (`key_of` reads it)."""
    key = Ed25519PrivateKey.generate()
    async with http.post(
        f"{url}/api/accounts", json={"public_key": public_key_text(key)}
    ) as response:
        if response.status != 201:
            raise SetupError(f"account refused: {await response.text()}")
        created = await response.json()
    auth = bearer(created["session"])
    identity = {"name": "张三", "document_type": "PRC_RESIDENT_ID", "document": prc_id(n)}
    async with http.post(f"{url}/api/identity", json=identity, headers=auth) as response:
        if response.status != 201:
            raise SetupError(f"identity refused: {await response.text()}")
    for lot in lots:
        await register_bidder(http, url, created["session"], lot, deposit_key.format(lot=lot))
    return {
        "account": str(created["account"]),
        "session": str(created["session"]),
        "seed": seed_of(key),
    }


async def _json(response: aiohttp.ClientResponse, what: str) -> Any:
    if response.status != 200:
        raise SetupError(f"{what}: HTTP {response.status} {await response.text()}")
    return await response.json()


async def wait_deposits(
    http: aiohttp.ClientSession,
    url: str,
    sessions: Sequence[str],
    lots: Sequence[str],
    *,
    ready: Collection[str | None] = ("FROZEN", "NOT_REQUIRED"),
    timeout: float = 60.0,
) -> None:
    """Wait until every bidder's (by session) deposit on every lot is in a `ready` state
    (None: not registered); the payment provider calls back asynchronously."""
    deadline = time.monotonic() + timeout
    for session in sessions:
        while True:
            async with http.get(f"{url}/api/me", headers=bearer(session)) as response:
                me = await _json(response, "me")
            states = {r["lot"]: r["deposit"]["state"] for r in me["registrations"]}
            if all(states.get(lot) in ready for lot in lots):
                break
            if time.monotonic() > deadline:
                raise SetupError(f"deposits not frozen within {timeout:.0f} s: {states}")
            await asyncio.sleep(0.05)


async def wait_open(
    http: aiohttp.ClientSession,
    url: str,
    lots: Sequence[str],
    *,
    timeout: float = 60.0,
    poll: float = 0.05,
) -> None:
    """Wait until every lot of `lots` is OPEN (they open by themselves at `start_at`)."""
    deadline = time.monotonic() + timeout
    for lot in lots:
        while True:
            async with http.get(f"{url}/api/lots/{lot}") as response:
                view = (await _json(response, f"lot {lot}"))["lot"]
            if view["status"] == "OPEN":
                break
            if time.monotonic() > deadline:
                raise SetupError(f"lot {lot} did not open within {timeout:.0f} s")
            await asyncio.sleep(poll)
