"""Auditing a live server while a lot with a proxy maximum is open: its entries are sealed
(docs/protocol.md section 4), so `gavel audit verify URL` and `gavel ledger export --url`
need an auditor session (`--token`), and say so in words without one."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import pytest
from server_kit import add_lots, ready_bidder, running_server, wait_open

from auction.accounts import Role
from auction.cli import main
from auction.client import BidderClient


async def test_a_live_server_is_audited_with_an_auditor_token(
    tmp_path: Path, http: aiohttp.ClientSession, capsys: pytest.CaptureFixture[str]
) -> None:
    async with running_server(tmp_path) as server:
        await add_lots(server, open_in=0.2)
        bidder = await ready_bidder(http, server.url, ("watch",))
        await wait_open(server, "watch")
        async with await BidderClient.connect(
            server.url, account=bidder.account, key=bidder.key, session=bidder.session
        ) as client:
            assert (await client.bid("watch", 50_000, "USD", kind="max")).accepted
        assert await server.service.settle(10)  # the entry is in a published checkpoint
        auditor = await server.staff(Role.AUDITOR)

        def run(*argv: str) -> int:
            return main(list(argv))

        assert await asyncio.to_thread(run, "audit", "verify", server.url) == 2
        assert "sealed until its lot closes" in capsys.readouterr().err
        code = await asyncio.to_thread(run, "audit", "verify", server.url, "--token", auditor)
        assert code == 0, capsys.readouterr()
        out = tmp_path / "export"
        anonymous = ("ledger", "export", "--url", server.url, "--out", str(out))
        assert await asyncio.to_thread(run, *anonymous) == 1
        assert "sealed until its lot closes" in capsys.readouterr().err
        argv = ("ledger", "export", "--url", server.url, "--out", str(out), "--token", auditor)
        assert await asyncio.to_thread(run, *argv) == 0, capsys.readouterr()
        assert await asyncio.to_thread(run, "audit", "verify", str(out)) == 0
