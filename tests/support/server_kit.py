"""Shared helpers for the server tests: a real server on 127.0.0.1, bidders, lots, the ledger."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from auction.accounts import Role
from auction.identity.provider import prc_check_character
from auction.rules import SECOND, english_timed, judicial
from auction.storage import Storage, system_clock
from auction.throttle import WriteLimits
from auction.video import VideoSettings
from auction.web import SERVICE, Settings, create_app
from auction.web.app import GATEWAY
from auction.web.limits import GuardedRunner
from chain import parse_entry

NAME = "张三丰"


class MovableClock:
    """The real clock plus an offset the test can move forward."""

    def __init__(self) -> None:
        self.offset_us = 0

    def __call__(self) -> int:
        return system_clock() + self.offset_us


def prc_id(birth: str = "19800101", region: str = "110105", sequence: str = "123") -> str:
    """A well-formed PRC resident identity number (GB 11643-1999 check character)."""
    first17 = region + birth + sequence
    return first17 + prc_check_character(first17)


#: One person, one account: every bidder made by `verify` without a document gets its own.
_DOCUMENT_NUMBERS = itertools.count()


def fresh_prc_id() -> str:
    """A resident identity number no other call in this process returns (region 310104, so
    it never equals a `prc_id()` of the default region)."""
    n = next(_DOCUMENT_NUMBERS)
    return prc_id(birth=f"{1960 + n // 1000 % 40}0101", region="310104", sequence=f"{n % 1000:03d}")


def wrong_check(number: str) -> str:
    last = number[-1]
    return number[:-1] + ("0" if last != "0" else "1")


@dataclass
class Server:
    app: web.Application
    url: str
    data: Path

    @property
    def gateway(self) -> Any:
        return self.app[GATEWAY]

    @property
    def service(self) -> Any:
        return self.app[SERVICE]

    async def staff(self, role: Role) -> str:
        _, token, _ = await self.gateway.create_staff_session(role)
        return str(token)

    async def ledger_size(self) -> int:
        ledger = self.service.ledger
        return int(await self.service.read(ledger.ledger_size))

    def entries(self) -> list[bytes]:
        """Every ledger entry's bytes, read back from the database (a second connection)."""
        with Storage.open(self.data, read_only=True) as store:
            return store.ledger_entries(0, store.ledger_size())

    def openings(self) -> dict[int, dict[str, Any]]:
        """The openings of every sealed value on the ledger, by entry (what notaries and
        auditors are given), for `LedgerReplay(openings=server.openings().get)`."""
        with Storage.open(self.data, read_only=True) as store:
            return store.ledger_openings(0, store.ledger_size())

    def opened_entries(self) -> list[bytes]:
        """`entries` with their sealed values opened (account ids in place of the per-lot
        aliases, the signed requests and identity accounts back), as the server's own readers
        see them: not the bytes the log publishes."""
        with Storage.open(self.data, read_only=True) as store:
            return store.ledger_entries_opened(0, store.ledger_size())

    def entry_json(self) -> list[dict[str, Any]]:
        """Every ledger entry as JSON, sealed values opened (`opened_entries`)."""
        return [parse_entry(item).to_json() for item in self.opened_entries()]


def unrecorded_video(data: Path) -> VideoSettings:
    """Every open lot on air as in production, but not recorded: the tests that check that a
    refused request adds nothing to the ledger count their own entries, not the lots' video
    segments (which a recorded lot anchors every few seconds). The video tests record."""
    return VideoSettings(
        recordings_dir=data / "recordings", media_dir=data / "media", loopback_only=True,
        record=False,
    )  # fmt: skip


@contextlib.asynccontextmanager
async def running_server(tmp_path: Path, **overrides: Any) -> AsyncIterator[Server]:
    # Tests that are not about the write limits make many accounts and checks from one
    # address and session: a hundred times the defaults (tests/test_write_limits.py sets its own).
    overrides.setdefault("write_limits", WriteLimits().scaled(100))
    overrides.setdefault("video", unrecorded_video(tmp_path / "data"))
    settings = Settings(data_dir=tmp_path / "data", port=0, demo=False, **overrides)
    app = create_app(settings)
    runner = GuardedRunner(app, handle_signals=False)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        yield Server(app, f"http://127.0.0.1:{port}", settings.data_dir)
    finally:
        await runner.cleanup()


@dataclass
class Bidder:
    key: Ed25519PrivateKey
    account: str
    session: str

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.session}"}


async def new_bidder(http: aiohttp.ClientSession, url: str) -> Bidder:
    key = Ed25519PrivateKey.generate()
    public = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    async with http.post(
        f"{url}/api/accounts", json={"public_key": base64.b64encode(public).decode()}
    ) as response:
        assert response.status == 201, await response.text()
        body = await response.json()
    return Bidder(key, body["account"], body["session"])


async def verify(
    http: aiohttp.ClientSession, url: str, bidder: Bidder, document: str | None = None
) -> dict[str, Any]:
    async with http.post(
        f"{url}/api/identity",
        json={
            "name": NAME,
            "document_type": "PRC_RESIDENT_ID",
            "document": document or fresh_prc_id(),
        },
        headers=bidder.auth,
    ) as response:
        assert response.status == 201, await response.text()
        return dict(await response.json())


async def ready_bidder(http: aiohttp.ClientSession, url: str, lots: tuple[str, ...] = ()) -> Bidder:
    """A verified bidder registered for `lots`, with their deposits frozen."""
    bidder = await new_bidder(http, url)
    await verify(http, url, bidder)
    for lot in lots:
        async with http.post(
            f"{url}/api/lots/{lot}/registrations", json={}, headers=bidder.auth
        ) as response:
            assert response.status == 201, await response.text()
            registration = await response.json()
        if registration["deposit"]["state"] == "REQUIRED":
            await accept_notice(http, url, bidder, lot)
            async with http.post(
                f"{url}/api/lots/{lot}/deposit",
                json={"idempotency_key": f"dep-{lot}"},
                headers=bidder.auth,
            ) as response:
                assert response.status == 202, await response.text()
            await wait_for_deposit(http, url, bidder, lot)
    return bidder


async def accept_notice(http: aiohttp.ClientSession, url: str, bidder: Bidder, lot: str) -> None:
    """Accept the lot's bidding notice (a deposit is refused before it)."""
    async with http.post(
        f"{url}/api/lots/{lot}/notice", json={"accept": True}, headers=bidder.auth
    ) as response:
        assert response.status == 201, await response.text()


async def wait_for_deposit(
    http: aiohttp.ClientSession, url: str, bidder: Bidder, lot: str, timeout: float = 5.0
) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        async with http.get(f"{url}/api/me", headers=bidder.auth) as response:
            me = await response.json()
        states = {r["lot"]: r["deposit"]["state"] for r in me["registrations"]}
        if states.get(lot) == "FROZEN":
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"the deposit for {lot} was not frozen")


async def add_lots(server: Server, *, open_in: float = 0.3, run_for: float = 600.0) -> None:
    """`watch`: English timed, no deposit; `flat`: judicial, deposit required. Both open in
    `open_in` seconds and close `run_for` seconds later."""
    service = server.service
    now = service.now()
    start = now + int(open_in * SECOND)
    end = start + int(run_for * SECOND)
    await service.add_lot(
        "watch", english_timed(start_price=10_000, start_at=start, end_at=end), "A watch"
    )
    await service.add_lot(
        "flat",
        judicial(start_price=1_000_000, step=10_000, start_at=start, end_at=end, min_duration=0),
        "A flat",
    )


async def wait_open(server: Server, *lots: str, timeout: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        if all(server.service.view(lot).status == "OPEN" for lot in lots):
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"lots {lots} did not open")
