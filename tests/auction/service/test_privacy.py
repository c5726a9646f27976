"""Privacy over a real server on 127.0.0.1 (issue 8 part 5): while a lot is open no public API
response, websocket message, page or ledger read shows a bidder's identity, another bidder's
account id or a proxy maximum; every ledger entry is public, a maximum's opening is served to
auditors (and in the bidder's own receipt) only, and to everyone by the lot's reveal at the
close; security headers; websocket Origin checks; no secret or personal data in the logs or on
stdout/stderr."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import websockets
from privacy_kit import DOCUMENTS, SECRET_MAX, client_for, fetch, verified_bidder
from server_kit import (
    NAME,
    Server,
    add_lots,
    new_bidder,
    running_server,
    wait_open,
    wrong_check,
)

from auction.accounts import Role
from auction.client import BidderClient, ws_url
from auction.gateway import IDP_KEY_FILE
from auction.web.pages import PAGES
from chain import TILE_WIDTH, CosignatureSigner, EntryBundle
from notary.readauth import read_authorization


async def collect(client: BidderClient, into: list[dict[str, Any]]) -> None:
    while True:
        into.append(await client.next_update())


def bundle_of(server: Server, seq: int) -> EntryBundle:
    head = server.service.signed_checkpoint
    assert head is not None and head.size > seq
    index = seq // TILE_WIDTH
    return EntryBundle(index, min(TILE_WIDTH, head.size - index * TILE_WIDTH))


async def until(predicate: Any, timeout: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        assert loop.time() < deadline, "timed out"
        await asyncio.sleep(0.05)


async def test_nothing_leaks_before_the_close_and_sealed_entries_open_after(
    tmp_path: Path,
    http: aiohttp.ClientSession,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.DEBUG)
    async with running_server(tmp_path) as server:
        url = server.url
        await add_lots(server, open_in=0.2)
        alice = await verified_bidder(http, server, DOCUMENTS[0], ("watch",))
        bob = await verified_bidder(http, server, DOCUMENTS[1], ("watch",))
        auditor = await server.staff(Role.AUDITOR)
        compliance = await server.staff(Role.COMPLIANCE)
        auctioneer = await server.staff(Role.AUCTIONEER)
        await wait_open(server, "watch")
        seen_by_watcher: list[dict[str, Any]] = []
        seen_by_bob: list[dict[str, Any]] = []
        async with (
            await BidderClient.connect(url) as watcher,
            await client_for(server, alice) as alice_ws,
            await client_for(server, bob) as bob_ws,
        ):
            await watcher.subscribe("watch")
            await bob_ws.subscribe("watch")
            tasks = [
                asyncio.create_task(collect(watcher, seen_by_watcher)),
                asyncio.create_task(collect(bob_ws, seen_by_bob)),
            ]
            maximum = await alice_ws.bid("watch", SECRET_MAX, "USD", kind="max", key="m-1")
            assert maximum.accepted, maximum.raw
            outbid = await bob_ws.bid("watch", 20_000, "USD", key="b-1")
            assert outbid.raw["result"] in ("accepted", "rejected")
            seen_by_bob.append(outbid.raw)
            await asyncio.sleep(0.3)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        assert await server.service.settle(10)
        max_entry = maximum.raw["entry"]
        bundle = bundle_of(server, max_entry)

        # -- every public read while the lot is open --
        public: dict[str, str] = {}
        paths = ["/api/lots", "/api/lots/watch", "/api/lots/watch/bids", "/api/auditor"]
        paths += ["/log/checkpoint", "/log/checkpoints", "/log/policy", "/healthz"]
        paths += [p.replace("{lot_id}", "watch").replace("{sale_id}", "some-sale") for p in PAGES]
        paths += [f"/static/{name}" for name in ("lot.js", "api.js", "ws.js", "receipt.js")]
        for path in paths:
            status, text, _ = await fetch(http, url + path)
            assert status == 200, path
            public[path] = text
        size = server.service.signed_checkpoint.size
        sealed_status = {}
        for seq in range(size):
            status, text, _ = await fetch(http, f"{url}/log/receipt/{seq}")
            sealed_status[seq] = status
            public[f"receipt {seq}"] = text
        for index in range((size + TILE_WIDTH - 1) // TILE_WIDTH):
            path = EntryBundle(index, min(TILE_WIDTH, size - index * TILE_WIDTH)).path
            _, public[path], _ = await fetch(http, f"{url}/log/{path}")
        public["watcher ws"] = json.dumps(seen_by_watcher, ensure_ascii=False)
        private_view = json.dumps(seen_by_bob, ensure_ascii=False)
        status, public["bob's /api/me"], _ = await fetch(http, url + "/api/me", bob.session)

        for where, text in public.items():
            assert str(SECRET_MAX) not in text, where
            assert NAME not in text and not any(doc in text for doc in DOCUMENTS), where
            if not where.startswith(("receipt", "tile/")):  # the ledger names accounts by id
                assert alice.account not in text, where
        assert str(SECRET_MAX) not in private_view and alice.account not in private_view
        assert set(sealed_status.values()) == {200}  # every entry public, the maximum sealed

        # -- who reads the maximum while the lot is open: the auditors and alice only --
        bundle_url = f"{url}/log/{bundle.path}"
        receipt_url = f"{url}/log/receipt/{max_entry}"
        openings_url = f"{url}/log/openings/{max_entry}"
        status, text, headers = await fetch(http, bundle_url)
        assert status == 200 and '"sealed"' in text and str(SECRET_MAX) not in text
        assert headers["Cache-Control"].startswith("public")
        for token in (bob.session, compliance, auctioneer, "garbage", alice.session):
            status, text, _ = await fetch(http, bundle_url, token)
            assert status == 200 and str(SECRET_MAX) not in text
        for token in (bob.session, compliance, "garbage"):
            status, text, _ = await fetch(http, receipt_url, token)
            assert status == 200 and str(SECRET_MAX) not in text
            status, text, _ = await fetch(http, openings_url, token)
            assert status == 403 and str(SECRET_MAX) not in text
        status, text, headers = await fetch(http, openings_url)
        assert status == 403 and "notaries" in text
        stranger = CosignatureSigner.generate("stranger.test")
        origin = server.service.signed_checkpoint.note.split(b"\n", 1)[0].decode()
        path = f"openings/{max_entry}"
        forged = read_authorization(stranger, origin, path, int(server.service.now() / 1e6))
        status, text, _ = await fetch(http, openings_url, Authorization=forged)
        assert status == 403 and "not a notary of this log" in text
        status, text, headers = await fetch(http, openings_url, auditor)
        assert status == 200 and str(SECRET_MAX) in text
        assert "no-store" in headers["Cache-Control"]
        status, text, _ = await fetch(http, receipt_url, alice.session)  # her own
        assert status == 200 and str(SECRET_MAX) in text
        status, text, _ = await fetch(http, receipt_url, auditor)
        assert status == 200

        # -- after the close the lot's reveal makes the maximum public --
        async with http.post(
            f"{url}/api/console/lots/watch/commands",
            json={"type": "Cancel", "reason": "withdrawn by the seller"},
            headers={"Authorization": f"Bearer {auctioneer}"},
        ) as response:
            assert response.status == 200, await response.text()
        await until(lambda: server.service.view("watch").status == "CANCELLED")
        assert await server.service.settle(10)
        last = server.service.signed_checkpoint.size - 1
        for target in (f"{url}/log/{bundle_of(server, last).path}", f"{url}/log/receipt/{last}"):
            status, text, headers = await fetch(http, target)
            assert status == 200 and str(SECRET_MAX) in text and '"reveal"' in text, target
            assert headers.get("Cache-Control") != "no-store"

        # -- the flow's other secrets, then nothing of it in the logs --
        status, _, _ = await fetch(http, f"{url}/api/compliance/lots/watch/identities", compliance)
        assert status == 200
        async with http.post(
            f"{url}/api/identity",
            json={
                "name": NAME,
                "document_type": "PRC_RESIDENT_ID",
                "document": wrong_check(DOCUMENTS[0]),
            },
            headers=alice.auth,
        ) as response:
            assert response.status == 422
        async with http.delete(
            f"{url}/api/compliance/accounts/{bob.account}/personal-data",
            headers={"Authorization": f"Bearer {compliance}"},
        ) as response:
            assert response.status == 200
        idp_key = (server.data / IDP_KEY_FILE).read_text().strip()
    secrets = [alice.session, bob.session, auditor, compliance, auctioneer, idp_key, NAME]
    secrets += [*DOCUMENTS, wrong_check(DOCUMENTS[0])]
    captured = capfd.readouterr()
    # the server's records (the test's own websocket client logs its frames at DEBUG)
    records = [r for r in caplog.records if not r.name.startswith("websockets.client")]
    logged = "\n".join(record.getMessage() for record in records)
    logged += "\n".join(str(record.args) for record in records)
    assert any(r.name.startswith("auction") for r in records), "nothing to scan"
    assert any(r.name == "aiohttp.access" for r in records), "nothing to scan"
    for text in (logged, captured.out, captured.err):
        for secret in secrets:
            assert secret not in text


async def test_security_headers(tmp_path: Path, http: aiohttp.ClientSession) -> None:
    async with running_server(tmp_path) as server:
        bidder = await new_bidder(http, server.url)
        for path in [p.replace("{lot_id}", "x").replace("{sale_id}", "x") for p in PAGES]:
            status, _, headers = await fetch(http, server.url + path)
            assert status == 200 and headers["Content-Type"].startswith("text/html")
            policy = headers["Content-Security-Policy"]
            directives = dict(d.strip().split(" ", 1) for d in policy.split(";"))
            assert directives["script-src"] == "'self'" and "unsafe" not in policy
            assert directives["frame-ancestors"] == "'none'"
            assert directives["object-src"] == "'none'"
            assert headers["X-Frame-Options"] == "DENY"
            assert headers["X-Content-Type-Options"] == "nosniff"
            assert headers["Referrer-Policy"] == "no-referrer"
        for path in ("/api/lots", "/log/policy", "/static/lot.js", "/api/nothing"):
            _, _, headers = await fetch(http, server.url + path)
            assert headers["X-Content-Type-Options"] == "nosniff", path
            assert "frame-ancestors 'none'" in headers["Content-Security-Policy"], path
        for path in ("/api/me", "/api/lots", "/log/policy"):
            _, _, headers = await fetch(http, server.url + path, bidder.session)
            assert headers["Cache-Control"] == "no-store", path


async def test_websocket_origin_check(tmp_path: Path) -> None:
    async with running_server(tmp_path) as server:
        own = server.url
        for origin in ("http://evil.example", "null", own.replace("127.0.0.1", "localhost"),
                       own.rsplit(":", 1)[0] + ":1"):  # fmt: skip
            with pytest.raises(websockets.InvalidStatus) as refused:
                await websockets.connect(ws_url(own), origin=origin)  # type: ignore[arg-type]
            assert refused.value.response.status_code == 403, origin
            assert b"FORBIDDEN_ORIGIN" in refused.value.response.body
        for origin in (own, None):  # the site's own pages; a client that sends no Origin
            async with websockets.connect(ws_url(own), origin=origin) as connection:  # type: ignore[arg-type]
                await connection.send(json.dumps({"type": "hello", "v": 1, "session": None}))
                assert json.loads(await connection.recv())["type"] == "welcome"
