"""`/metrics` during a short real run: a server with lots, signed bids through the real
websocket path, one real `gavel notary serve` process co-signing; scraped on the admin address
and (auditor session) on the main one, and the notary's own admin address."""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from notary_kit import free_port, notary_group, quorum_policy
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from repo_kit import REPO
from server_kit import Server, add_lots, ready_bidder, wait_open

from auction.accounts import Role
from auction.client import BidderClient
from auction.storage import POLICY_FILE, Storage
from auction.web import Settings, create_app
from auction.web.app import METRICS_PORT
from auction.web.metrics import MAX_REASONS, ServerMetrics

pytestmark = pytest.mark.slow

#: Label names a series may carry: each takes values from a bounded set (`le`: buckets).
BOUNDED_LABELS = {"result", "reason", "notary", "status", "lot", "le"}

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse(text: str) -> Samples:
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


async def scrape(http: aiohttp.ClientSession, url: str, token: str | None = None) -> Samples:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with http.get(url, headers=headers) as response:
        assert response.status == 200, await response.text()
        assert response.content_type == "text/plain"
        return parse(await response.text())


@contextlib.asynccontextmanager
async def server_on(data: Path, port: int, policy: bytes) -> AsyncIterator[Server]:
    from aiohttp import web

    settings = Settings(data_dir=data, port=port, demo=False, policy=policy, metrics_port=0)
    app = create_app(settings)
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", port).start()
        yield Server(app, f"http://127.0.0.1:{port}", data)
    finally:
        await runner.cleanup()


async def test_metrics_move_during_a_real_run(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with Storage.open(data) as store:
        assert store.house is not None
        house = store.house.vkey
    notaries = notary_group(tmp_path, count=1)
    notary = notaries[0]
    policy = quorum_policy(house, notaries, quorum=1)
    (tmp_path / POLICY_FILE).write_bytes(policy)
    port = free_port()
    notary_metrics = free_port()
    await notary.start(
        f"http://127.0.0.1:{port}", tmp_path / POLICY_FILE, "--metrics-port", str(notary_metrics)
    )
    try:
        async with server_on(data, port, policy) as server, aiohttp.ClientSession() as http:
            admin = f"http://127.0.0.1:{server.app[METRICS_PORT]}/metrics"
            before = await scrape(http, admin)
            assert value(before, "gavel_bids_total", result="accepted") == 0
            await add_lots(server, open_in=0.2)
            alice = await ready_bidder(http, server.url, ("watch",))
            bob = await ready_bidder(http, server.url, ("watch",))
            await wait_open(server, "watch", "flat")
            async with (
                await BidderClient.connect(server.url, key=alice.key, session=alice.session) as a,
                await BidderClient.connect(server.url, key=bob.key, session=bob.session) as b,
                await BidderClient.connect(server.url) as watcher,
            ):
                for lot in ("watch", "flat"):
                    await watcher.subscribe(lot)
                await a.subscribe("watch")
                amount = 10_000
                for client in (a, b, a):
                    ack = await client.bid("watch", amount, "USD")
                    assert ack.accepted, ack.raw
                    amount = ack.min_next or amount + 1_000
                refused = await a.bid("watch", amount, "USD")  # a leads already
                assert refused.reason == "SELF_OUTBID"
                assert await server.service.settle(15)

                after = await scrape(http, admin)
                assert value(after, "gavel_bids_total", result="accepted") == 3
                assert value(after, "gavel_bids_total", result="rejected") == 1
                assert value(after, "gavel_bids_refused_total", reason="SELF_OUTBID") == 1
                assert value(after, "gavel_bid_ack_seconds_count") == 4
                assert value(after, "gavel_bid_ack_seconds_sum") > 0
                assert value(after, "gavel_bid_ack_seconds_bucket", le="+Inf") == 4
                assert value(after, "gavel_group_commit_rows_count") > 0
                size = await server.ledger_size()
                assert value(after, "gavel_ledger_entries") == size
                assert value(after, "gavel_ledger_published_size") == size
                assert value(after, "gavel_checkpoints_published_total") >= 1
                # the notary co-signed everything: its size is reported, lag 0
                assert value(after, "gavel_notary_cosigned_size", notary=notary.name) == size
                assert value(after, "gavel_notary_lag_entries", notary=notary.name) == 0
                assert value(after, "gavel_websocket_connections") == 3
                assert value(after, "gavel_lot_viewers", lot="watch") == 2
                assert value(after, "gavel_lot_viewers", lot="flat") == 1
                assert value(after, "gavel_viewers") == 3
                assert value(after, "gavel_lots", status="open") == 2

                # no unbounded label: only known label names, lots only while open
                for name, labels in after:
                    assert {key for key, _ in labels} <= BOUNDED_LABELS, name
                    for key, text in labels:
                        if key == "lot":
                            assert text in ("watch", "flat")
                        if key == "reason":
                            assert text.isupper()

                # a lot that closes loses its viewer series; the open one keeps it
                auctioneer = await server.staff(Role.AUCTIONEER)
                async with http.post(
                    f"{server.url}/api/console/lots/flat/commands",
                    json={"type": "Cancel", "reason": "withdrawn by the court"},
                    headers={"Authorization": f"Bearer {auctioneer}"},
                ) as response:
                    assert response.status == 200, await response.text()
                closed = await scrape(http, admin)
                assert ("gavel_lot_viewers", (("lot", "flat"),)) not in closed
                assert value(closed, "gavel_lot_viewers", lot="watch") == 2
                assert value(closed, "gavel_lots", status="cancelled") == 1

                # the main address: auditor sessions only
                async with http.get(f"{server.url}/metrics") as response:
                    assert response.status == 401
                    assert (await response.json())["error"]["code"] == "UNAUTHENTICATED"
                async with http.get(
                    f"{server.url}/metrics", headers={"Authorization": f"Bearer {auctioneer}"}
                ) as response:
                    assert response.status == 403
                for role in (Role.AUDITOR, Role.ADMIN):
                    token = await server.staff(role)
                    main = await scrape(http, f"{server.url}/metrics", token)
                    assert value(main, "gavel_bids_total", result="accepted") == 3

            # the notary's own figures, on its admin address
            figures = await scrape(http, f"http://127.0.0.1:{notary_metrics}/metrics")
            assert value(figures, "gavel_notary_cosigned_size") == size
            assert value(figures, "gavel_notary_lag_entries") == 0
            assert value(figures, "gavel_notary_add_checkpoint_total", status="200") >= 1
            assert value(figures, "gavel_notary_add_checkpoint_seconds_count") >= 1
            assert value(figures, "gavel_notary_cosigned_timestamp_seconds") > 0

            # every figure the Grafana dashboard draws is one the server or a notary serves
            dashboard = (REPO / "docs" / "grafana-dashboard.json").read_text()
            drawn = set(re.findall(r"gavel_[a-z_]+", dashboard))
            served = {name for name, _ in after} | {name for name, _ in figures}
            assert drawn and drawn <= served, drawn - served
    finally:
        await notary.stop()


def test_each_app_counts_alone_and_refusal_reasons_are_bounded() -> None:
    first, second = ServerMetrics(), ServerMetrics()  # one registry each: no clash
    for n in range(MAX_REASONS + 20):
        first.observe_bid({"result": "rejected", "reason": f"REASON_{n}"}, 0.01)
    first.observe_bid({"result": "rejected", "reason": "lower case <script>"}, 0.01)
    samples = parse(generate_latest(first.registry).decode())
    reasons = {
        dict(labels)["reason"] for name, labels in samples if name == "gavel_bids_refused_total"
    }
    assert len(reasons) == MAX_REASONS + 1 and "OTHER" in reasons
    assert value(samples, "gavel_bids_refused_total", reason="OTHER") == 21
    assert (
        value(
            parse(generate_latest(second.registry).decode()), "gavel_bids_total", result="rejected"
        )
        == 0
    )


async def test_an_admin_port_in_use_is_a_clear_error(tmp_path: Path) -> None:
    from aiohttp import web

    from auction.service import ServiceError

    with contextlib.closing(__import__("socket").socket()) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        app = create_app(Settings(data_dir=tmp_path / "d", port=0, demo=False, metrics_port=port))
        runner = web.AppRunner(app, handle_signals=False)
        with pytest.raises(ServiceError, match="cannot listen for /metrics"):
            await runner.setup()
        await runner.cleanup()
    await asyncio.sleep(0)
