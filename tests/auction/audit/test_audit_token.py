"""Auditing a live server while a lot with a proxy maximum is open: its entries are public but
their sealed values open only with the openings (docs/ledger.md section 5), so `gavel audit
verify URL` needs an auditor session (`--token`) and says so in words without one; `gavel
ledger export --url` without one exports the public log, without the openings."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import aiohttp
import pytest
from server_kit import add_lots, ready_bidder, running_server, wait_open

from auction.accounts import Role
from auction.cli import main
from auction.client import BidderClient
from auction.ledger_export import OPENINGS_FILE


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

        # every entry is public; the openings of the sealed values are for auditors only
        assert await asyncio.to_thread(run, "audit", "verify", server.url) == 1
        assert "openings cannot be read" in capsys.readouterr().err
        code = await asyncio.to_thread(run, "audit", "verify", server.url, "--token", auditor)
        assert code == 0, capsys.readouterr()
        out = tmp_path / "export"
        anonymous = ("ledger", "export", "--url", server.url, "--out", str(out))
        assert await asyncio.to_thread(run, *anonymous) == 0  # the public log, no openings
        assert not (out / OPENINGS_FILE).exists()
        assert await asyncio.to_thread(run, "audit", "verify", str(out)) == 1
        assert "opening is missing" in capsys.readouterr().err
        shutil.rmtree(out)
        argv = ("ledger", "export", "--url", server.url, "--out", str(out), "--token", auditor)
        assert await asyncio.to_thread(run, *argv) == 0, capsys.readouterr()
        assert await asyncio.to_thread(run, "audit", "verify", str(out)) == 0
