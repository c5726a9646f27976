"""The staff dashboard over a real server on 127.0.0.1: its numbers equal the ledger's counts,
each CSV export parses and equals the JSON, the plots are SVG served with the data CSP and
`nosniff`, and only staff roles read it."""

from __future__ import annotations

import asyncio
import csv
import io
import json
from pathlib import Path

import aiohttp
from dashboard_kit import ledger_counts, run_sale
from plots_kit import svg_with_axes
from server_kit import add_lots, new_bidder, ready_bidder, running_server, wait_open

from auction.accounts import Role
from auction.dashboard.analytics import TABLES
from auction.dashboard.plots import PLOTS


async def get(
    http: aiohttp.ClientSession, url: str, token: str | None
) -> tuple[int, aiohttp.ClientResponse, bytes]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with http.get(url, headers=headers) as response:
        return response.status, response, await response.read()


async def test_dashboard_numbers_equal_the_ledger(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    async with running_server(tmp_path) as server:
        run = await run_sale(server, http)
        await asyncio.sleep(0.5)  # the sale entries follow the close
        entries = server.entry_json()
        auditor = await server.staff(Role.AUDITOR)
        status, _, raw = await get(http, f"{server.url}/api/dashboard", auditor)
        assert status == 200
        body = json.loads(raw)
        tables = body["tables"]
        assert set(tables) == set(TABLES)
        funnel = {
            (row["scope"], row["id"], row["step"]): row["count"] for row in tables["funnel"]["rows"]
        }
        for lot in ("watch", "flat"):
            expected = ledger_counts(entries, lot)
            for step, count in expected.items():
                assert funnel[("lot", lot, step)] == count, (lot, step)
        # what the scenario did, so that the ledger counts above are not vacuous
        assert [funnel[("lot", "flat", s)] for s in ("registered", "deposit", "bid", "won")] == [
            3, 2, 2, 1
        ]  # fmt: skip
        assert funnel[("lot", "watch", "won")] == 1 and funnel[("lot", "watch", "bid")] == 2
        # visitors of `watch`: one address without a session, Alice's and Bob's sessions
        assert funnel[("lot", "watch", "visitors")] == 3
        assert funnel[("lot", "flat", "visitors")] == 0
        # the sale: each bidder once across its lots; Alice won one lot, Bob the other
        assert funnel[("sale", "s1", "registered")] == 3
        assert funnel[("sale", "s1", "won")] == 2
        conversions = {
            (row["id"], row["step"]): row["conversion_pct"]
            for row in tables["funnel"]["rows"]
            if row["scope"] == "lot"
        }
        assert conversions[("flat", "deposit")] == "66.7"
        assert conversions[("flat", "won")] == "50.0"

        # bids: every accepted bid of the ledger, with its code, in the lot's time zone
        ledger_bids = sorted(
            (entry["body"]["lot"], event["code"], event["amount"])
            for entry in entries
            if entry["type"] == "bid" and entry["body"]["accepted"]
            for event in entry["body"]["events"]
            if event["type"] == "BidAccepted"
        )
        rows = tables["bids"]["rows"]
        shown = sorted((r["lot"], r["code"], r["amount"]) for r in rows if r["kind"] == "bid")
        assert shown == ledger_bids and len(shown) == 5
        assert all(r["time"].endswith("+08:00") for r in rows)  # Asia/Shanghai
        extensions = [r for r in rows if r["kind"] == "extension"]
        ledger_extensions = [
            event
            for entry in entries
            if entry["type"] == "bid"
            for event in entry["body"]["events"]
            if event["type"] == "EndExtended"
        ]
        assert len(extensions) == len(ledger_extensions) >= 1
        # hammer against start and appraisal, as the sale entries say
        sales = {e["body"]["lot"]: e["body"]["price"] for e in entries if e["type"] == "sale"}
        hammer = {row["lot"]: row for row in tables["hammer"]["rows"]}
        assert {lot: row["hammer"] for lot, row in hammer.items()} == sales
        assert hammer["flat"]["appraisal"] == 1_200_000
        assert hammer["flat"]["start_price"] == 1_000_000
        assert hammer["flat"]["hammer_over_appraisal_pct"] == "84.2"
        # deposits: codes, never account ids or names
        deposits = tables["deposits"]["rows"]
        assert {row["lot"] for row in deposits} == {"watch", "flat"}
        flat = sorted((r["state"], r["timeliness"], r["provider_check"]) for r in deposits
                      if r["lot"] == "flat")  # fmt: skip
        # Bob's applied to the price, Alice's released (both decided at the close, the
        # provider has 24 h to carry them out), Carol's never paid
        assert flat == [
            ("applied to the price", "waiting", ""), ("released", "waiting", ""),
            ("required", "", ""),
        ]  # fmt: skip
        ledger_deposits = [
            event["state"]
            for entry in entries
            if entry["body"].get("lot") == "flat" and entry["body"].get("accepted")
            for event in entry["body"].get("events", [])
            if event["type"] == "DepositChanged"
        ]
        assert "RELEASED" in ledger_deposits and "APPLIED_TO_PRICE" in ledger_deposits
        text = raw.decode()
        for bidder in (run.alice, run.bob, run.carol):
            assert bidder.account not in text
        assert "张三丰" not in text

        # each table's CSV parses and equals its JSON (the CSV's values are text)
        for name in TABLES:
            status, response, csv_raw = await get(
                http, f"{server.url}/api/dashboard/{name}.csv", auditor
            )
            assert status == 200 and response.content_type == "text/csv"
            assert response.headers["X-Content-Type-Options"] == "nosniff"
            parsed = list(csv.DictReader(io.StringIO(csv_raw.decode())))
            status, _, json_raw = await get(
                http, f"{server.url}/api/dashboard/{name}.json", auditor
            )
            assert status == 200
            table = json.loads(json_raw)
            assert table == tables[name]
            as_text = [{k: str(v) for k, v in row.items()} for row in table["rows"]]
            assert parsed == as_text, name
            if name != "watchers":
                assert parsed, f"{name} is empty"

        # the plots: SVG, with axes, served as data (CSP sandbox, nosniff), never a page
        for name in PLOTS:
            query = "?lot=flat" if name in ("funnel", "bids", "bidders", "watchers") else ""
            status, response, svg = await get(
                http, f"{server.url}/api/dashboard/plots/{name}.svg{query}", auditor
            )
            assert status == 200, svg[:200]
            assert response.content_type == "image/svg+xml"
            assert response.headers["X-Content-Type-Options"] == "nosniff"
            policy = response.headers["Content-Security-Policy"]
            assert "default-src 'none'" in policy and "sandbox" in policy
            svg_with_axes(svg)
        # the bids plot marks the extensions and the flat's hammer plot names its lots
        _, _, svg = await get(http, f"{server.url}/api/dashboard/plots/bids.svg?lot=flat", auditor)
        assert b"soft-close extension" in svg
        # bad plot requests: typed errors
        for path, code in (
            ("/api/dashboard/plots/bids.svg", "UNKNOWN_LOT"),
            ("/api/dashboard/plots/bids.svg?lot=nope", "UNKNOWN_LOT"),
            ("/api/dashboard/plots/pie.svg", "NOT_FOUND"),
            ("/api/dashboard/nope.csv", "NOT_FOUND"),
        ):
            status, _, raw = await get(http, server.url + path, auditor)
            assert (status, json.loads(raw)["error"]["code"]) == (404, code), path


async def test_dashboard_is_for_staff_roles(tmp_path: Path, http: aiohttp.ClientSession) -> None:
    async with running_server(tmp_path) as server:
        await add_lots(server, open_in=0.1)
        await wait_open(server, "watch", "flat")  # the lots' own timer entries come first
        bidder = await new_bidder(http, server.url)
        court = await server.staff(Role.COURT)
        paths = [
            "/api/dashboard",
            "/api/dashboard/funnel.json",
            "/api/dashboard/bids.csv",
            "/api/dashboard/plots/hammer.svg",
            "/api/dashboard/plots/funnel.svg?lot=watch",
        ]
        size = await server.ledger_size()
        for path in paths:
            for token in (bidder.session, court):
                status, _, raw = await get(http, server.url + path, token)
                assert status == 403 and b"FORBIDDEN" in raw, path
            for token in (None, "garbage"):
                status, _, raw = await get(http, server.url + path, token)
                assert status == 401 and b"UNAUTHENTICATED" in raw, path
            for role in (Role.AUCTIONEER, Role.COMPLIANCE, Role.AUDITOR, Role.ADMIN):
                status, _, raw = await get(http, server.url + path, await server.staff(role))
                assert status == 200, (path, role, raw[:200])
        assert await server.ledger_size() == size
        # the page itself is a page (its data needs the token)
        status, response, _ = await get(http, server.url + "/console/dashboard", None)
        assert status == 200 and response.content_type == "text/html"


def test_unique_counter_is_bounded_and_daily() -> None:
    from auction.dashboard.visits import DAY_US, UniqueCounter

    counter = UniqueCounter(max_visitors=2)
    assert counter.first_today("lot", "visit", "a:1", 0)
    assert not counter.first_today("lot", "visit", "a:1", 10)
    assert counter.first_today("lot", "watch", "a:1", 10)  # another kind counts apart
    assert not counter.first_today("lot", "visit", "a:2", 20)  # the bound is reached
    assert counter.first_today("lot", "visit", "a:1", DAY_US)  # a new day forgets
    assert all(len(digest) == 12 for digest in counter.seen)  # hashes, not addresses


async def test_dashboard_follows_new_registrations_and_visits(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    async with running_server(tmp_path) as server:
        await add_lots(server, open_in=0.1)
        await wait_open(server, "watch", "flat")
        auditor = await server.staff(Role.AUDITOR)

        async def counts() -> dict[str, int]:
            status, _, raw = await get(http, f"{server.url}/api/dashboard/funnel.json", auditor)
            assert status == 200
            rows = json.loads(raw)["rows"]
            return {r["step"]: r["count"] for r in rows if r["id"] == "flat"}

        assert (await counts())["registered"] == 0
        await ready_bidder(http, server.url, ("flat",))
        after = await counts()
        assert (after["registered"], after["deposit"], after["visitors"]) == (1, 1, 0)
        async with http.get(f"{server.url}/lot/flat") as response:
            assert response.status == 200
        assert (await counts())["visitors"] == 0  # the page alone: its script reads the lot
        async with http.get(f"{server.url}/api/lots/flat") as response:
            assert response.status == 200
        assert (await counts())["visitors"] == 1
