"""The console's evidence download, `GET /api/console/lots/{lot}/evidence`, on a real server
over loopback whose data directory holds sold lots: staff only, closed lots only; the zip and
the tar verify offline with `gavel audit evidence`."""

from __future__ import annotations

import asyncio
import io
import json
import re
import tarfile
import zipfile
from pathlib import Path

import aiohttp
import pytest
from evidence_kit import build_data
from server_kit import new_bidder, ready_bidder, running_server, wait_open

from auction.accounts import Role
from auction.audit.evidence_package import verify_evidence_package
from auction.cli import main
from auction.client import BidderClient
from auction.rules import SECOND, english_timed


@pytest.fixture
def sold(tmp_path: Path) -> str:
    """`tmp_path/data` filled with the lot scenarios; the sold lot with a recording."""
    return build_data(tmp_path / "data")


async def test_staff_download_a_package_that_verifies(
    sold: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async with running_server(tmp_path) as server, aiohttp.ClientSession() as http:
        route = f"{server.url}/api/console/lots/{sold}/evidence"
        async with http.get(route) as response:
            assert response.status == 401
        auditor = await server.staff(Role.AUDITOR)
        headers = {"Authorization": f"Bearer {auditor}"}
        async with http.get(route, headers=headers) as response:
            assert response.status == 200, await response.text()
            assert response.content_type == "application/zip"
            assert f'filename="evidence-{sold}.zip"' in response.headers["Content-Disposition"]
            data = await response.read()
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            archive.extractall(tmp_path / "zip")
        package = tmp_path / "zip" / f"evidence-{sold}"
        report = verify_evidence_package(package)
        assert report.lot == sold and report.status == "sold"
        assert not (package / "recording").exists()  # only with recording=1

        clerk = await server.staff(Role.AUCTIONEER)
        async with http.get(
            route + "?format=tar&recording=1", headers={"Authorization": f"Bearer {clerk}"}
        ) as response:
            assert response.status == 200, await response.text()
            assert response.content_type == "application/x-tar"
            data = await response.read()
        with tarfile.open(fileobj=io.BytesIO(data)) as archive:
            archive.extractall(tmp_path / "tar", filter="data")
        package = tmp_path / "tar" / f"evidence-{sold}"
        assert verify_evidence_package(package).segments_checked == 3
        capsys.readouterr()
        assert main(["audit", "evidence", str(package)]) == 0

        # `gavel evidence --url`: the same package read over the server's /log/ API.
        out = tmp_path / "over-http"
        args = ["evidence", sold, "--url", server.url, "--out", str(out)]
        assert await asyncio.to_thread(main, args) == 0
        assert verify_evidence_package(out).lot == sold
        zipped = tmp_path / "zip" / f"evidence-{sold}"
        # The same entries (the server may have logged more of the lot since: its timers run).
        zipped_entries = {p.name for p in (zipped / "entries").glob("*.entry")}
        assert zipped_entries <= {p.name for p in (out / "entries").glob("*.entry")}
        for name in zipped_entries:
            assert (out / "entries" / name).read_bytes() == (zipped / "entries" / name).read_bytes()


async def test_bidders_unknown_lots_open_lots_and_bad_formats_are_refused(
    sold: str, tmp_path: Path
) -> None:
    async with running_server(tmp_path) as server, aiohttp.ClientSession() as http:
        staff = {"Authorization": f"Bearer {await server.staff(Role.COMPLIANCE)}"}
        base = f"{server.url}/api/console/lots"
        token = (await new_bidder(http, server.url)).session
        async with http.get(
            f"{base}/{sold}/evidence", headers={"Authorization": f"Bearer {token}"}
        ) as response:
            assert response.status == 403
            assert (await response.json())["error"]["code"] == "FORBIDDEN"
        async with http.get(f"{base}/no-such-lot/evidence", headers=staff) as response:
            assert response.status == 404
        async with http.get(f"{base}/{sold}/evidence?format=rar", headers=staff) as response:
            assert response.status == 422
        now = server.service.now()
        rules = english_timed(
            start_price=100_000, start_at=now + 600 * SECOND, end_at=now + 1200 * SECOND
        )
        await server.service.add_lot("later", rules, "A later lot")
        async with http.get(f"{base}/later/evidence", headers=staff) as response:
            assert response.status == 409
            assert (await response.json())["error"]["code"] == "LOT_NOT_CLOSED"


async def test_a_signed_fixed_price_sale_on_the_real_server(tmp_path: Path) -> None:
    """A lot sold on the running server by a bidder's signed confirmation over the websocket:
    its package holds the bidders' idv entries and the identity provider's key entry, and its
    offline replay verifies the bids' signatures."""
    price = 50_000_000
    async with running_server(tmp_path) as server, aiohttp.ClientSession() as http:
        clerk = {"Authorization": f"Bearer {await server.staff(Role.AUCTIONEER)}"}
        now = server.service.now()
        lot = {
            "preset": "FIXED_PRICE_SALE",
            "lot": "villa",
            "title": "Villa 7",
            "parameters": {
                "price": price,
                "start_at": now + SECOND // 2,
                "end_at": now + 3_600 * SECOND,
            },
        }
        async with http.post(f"{server.url}/api/console/lots", json=lot, headers=clerk) as answer:
            assert answer.status == 201, await answer.text()
        buyer = await ready_bidder(http, server.url, ("villa",))
        await ready_bidder(http, server.url, ("villa",))
        await wait_open(server, "villa")
        async with await BidderClient.connect(
            server.url, account=buyer.account, key=buyer.key, session=buyer.session
        ) as client:
            assert (await client.bid("villa", price, "CNY")).accepted
        route = f"{server.url}/api/console/lots/villa/evidence"
        async with http.get(route, headers=clerk) as response:
            assert response.status == 200, await response.text()
            data = await response.read()
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        archive.extractall(tmp_path / "zip")
    package = tmp_path / "zip" / "evidence-villa"
    report = verify_evidence_package(package)
    assert (report.status, report.price) == ("sold", price)
    assert report.bid_signatures >= 1
    kinds = [json.loads(p.read_bytes())["type"] for p in (package / "entries").glob("*.entry")]
    assert kinds.count("idv") == 2 and "key" in kinds and "sale" in kinds
    text = (package / "report.txt").read_text()
    assert re.search(r"— Bidder \S+ bid CN¥500,000 — entry \d+$", text, re.MULTILINE), text
    assert buyer.account not in text  # codes only
