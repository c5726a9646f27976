"""Setting up the crash-recovery run over REST: its lots, and bidders ready to bid."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import aiohttp
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from auction.client import BidderClient

from .chaos_records import START_PRICE, STEP, AckedBid, ChaosError
from .harness.bidders import SetupError, key_of, make_bidder, wait_deposits, wait_open


async def expect_json(response: aiohttp.ClientResponse, expected: int, what: str) -> Any:
    if response.status != expected:
        raise ChaosError(f"{what}: HTTP {response.status} {await response.text()}")
    return await response.json()


async def create_lots(http: aiohttp.ClientSession, url: str, token: str, count: int) -> list[str]:
    async with http.get(f"{url}/api/lots") as response:
        now = (await expect_json(response, 200, "list lots"))["now_us"]
    start = now + 1_500_000
    lots = []
    for n in range(count):
        lot = f"chaos-{n + 1}"
        body = {
            "preset": "JUDICIAL_CN",
            "lot": lot,
            "title": f"Crash-recovery lot {n + 1}",
            "parameters": {
                "start_price": START_PRICE,
                "step": STEP,
                "start_at": start,
                "end_at": start + 24 * 3600 * 1_000_000,
                "min_duration": 0,
            },
        }
        headers = {"Authorization": f"Bearer {token}"}
        async with http.post(f"{url}/api/console/lots", json=body, headers=headers) as response:
            await expect_json(response, 201, f"create lot {lot}")
        lots.append(lot)
    return lots


@dataclass
class Bidder:
    index: int
    account: str
    session: str
    key: Ed25519PrivateKey
    client: BidderClient | None = None
    generation: int = -1
    #: Sent, not acknowledged: idempotency key → (lot, amount).
    outstanding: dict[str, tuple[str, int]] = field(default_factory=dict)
    min_next: dict[str, int] = field(default_factory=dict)
    #: Signed messages by idempotency key until acknowledged; the last acknowledged one.
    messages: dict[str, dict[str, Any]] = field(default_factory=dict)
    last_acked: tuple[dict[str, Any], AckedBid] | None = None


async def make_chaos_bidder(
    http: aiohttp.ClientSession, url: str, n: int, lots: list[str]
) -> Bidder:
    """Account, identity, registrations and deposits (`harness.bidders.make_bidder`); a
    refusal stops the run as a violation, as every other setup step does."""
    try:
        made = await make_bidder(http, url, n, lots, deposit_key="dep-{lot}")
    except SetupError as exc:
        raise ChaosError(f"bidder {n}: {exc}") from exc
    return Bidder(n, made["account"], made["session"], key_of(made["seed"]))


async def wait_ready(
    http: aiohttp.ClientSession, url: str, bidders: list[Bidder], lots: list[str]
) -> None:
    """Every deposit frozen and every lot open."""
    try:
        await wait_deposits(http, url, [bidder.session for bidder in bidders], lots)
        await wait_open(http, url, lots)
    except SetupError as exc:
        raise ChaosError(str(exc)) from exc
