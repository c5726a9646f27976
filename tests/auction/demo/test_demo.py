"""The demo: its catalogue, the web app in process, and `gavel demo` as a real subprocess."""

from __future__ import annotations

import asyncio
import datetime
import json
import random
import re
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer

import auction.web
from auction.cli import main
from auction.demo.showcase import (
    Timeline,
    bidder_code,
    catalogue,
    format_money,
    synthetic_prc_id,
)
from auction.identity.provider import check_prc_id
from auction.rules import SECOND, Format, LotStatus
from auction.storage import Storage
from auction.web import SERVICE, Settings, create_app
from auction.web.pages import BY_NAME, CONTENT_TYPES, PAGES, render

PRIVATE_KEYS = {"leader", "bidder", "winner", "bidders", "reserve", "max", "runner_up"}


def test_catalogue_has_every_preset_and_a_staggered_judicial_sale() -> None:
    t0 = 1_700_000_000 * SECOND
    duration = 20
    timeline = Timeline.for_duration(duration)
    sales = catalogue(t0, timeline)
    lots = [lot for sale in sales for lot in sale.lots]
    # the fixed-price sale (变卖) has no lot page of its own yet, so the demo does not show one
    assert {lot.rules.format for lot in lots} == set(Format) - {Format.FIXED_PRICE_SALE}
    assert len({lot.lot_id for lot in lots}) == len(lots)

    (court_sale,) = [sale for sale in sales if len(sale.lots) == 3]
    ends = [lot.rules.end_at for lot in court_sale.lots]
    spacing = ends[1] - ends[0]
    assert spacing > 0 and ends == [ends[0] + k * spacing for k in range(3)]  # rules C12
    for lot in lots:
        rules = lot.rules
        if rules.format is Format.LIVE_AUCTIONEER:
            assert rules.fair_warning_dwell >= 2 * SECOND
            continue
        assert rules.start_at < rules.end_at <= t0 + duration * SECOND // 2
        assert rules.soft_close.window == rules.soft_close.extend <= 3 * SECOND
        if rules.format is Format.JUDICIAL_CN:
            assert rules.currency == "CNY" and rules.min_duration == 0
    assert {lot.rules.currency for lot in lots} >= {"CNY", "USD"}

    serving = Timeline.for_duration(None)
    assert serving.sale_spacing == 45 * SECOND and serving.window == 30 * SECOND


def test_bidder_codes_are_keyed_pseudonyms() -> None:
    secret = b"k" * 32
    code = bidder_code(secret, "lot-1", "bot-1")
    assert re.fullmatch(r"[0-9A-F]{4}-[0-9A-F]{4}", code)
    assert code == bidder_code(secret, "lot-1", "bot-1")
    assert code != bidder_code(secret, "lot-2", "bot-1")
    assert code != bidder_code(secret, "lot-1", "bot-2")
    assert code != bidder_code(b"x" * 32, "lot-1", "bot-1")
    assert re.fullmatch(r"P1-[0-9A-F]{6}", bidder_code(secret, "lot-1", "bot-1", priority_rank=1))


def test_bots_have_valid_synthetic_identity_numbers() -> None:
    rng = random.Random(3)
    today = datetime.date(2026, 1, 1)
    numbers = {synthetic_prc_id(rng) for _ in range(200)}
    assert len(numbers) > 190
    for number in numbers:
        check_prc_id(number, "Li Wei", today)  # the GB 11643-1999 check character is right


def test_money_is_formatted_from_minor_units() -> None:
    assert format_money(210_000_000, "CNY") == "CNY 2,100,000.00"
    assert format_money(350_005, "USD") == "USD 3,500.05"
    assert format_money(1_500, "JPY") == "JPY 1,500"
    assert format_money(None, "USD") == "-"


@pytest.fixture
async def client(
    tmp_path: Path,
) -> AsyncIterator[TestClient[aiohttp.web.Request, aiohttp.web.Application]]:
    app = create_app(Settings(data_dir=tmp_path / "data", bots=0, duration=60))
    async with TestClient(TestServer(app, host="127.0.0.1")) as test_client:
        yield test_client


async def test_the_app_serves_the_seeded_lots(
    client: TestClient[aiohttp.web.Request, aiohttp.web.Application],
) -> None:
    response = await client.get("/api/lots")
    assert response.status == 200 and response.headers["Cache-Control"] == "no-store"
    body = await response.json()
    assert isinstance(body["now_us"], int)
    lots = body["lots"]
    assert len(lots) == 6
    assert {lot["format"] for lot in lots} == {f.value for f in Format} - {"FIXED_PRICE_SALE"}
    for lot in lots:
        assert not PRIVATE_KEYS & set(lot)
        assert {"title", "status", "price", "leader_code", "end", "min_next", "bids"} <= set(lot)
        assert lot["status"] in {s.value for s in LotStatus}

    one = await client.get(f"/api/lots/{lots[0]['lot_id']}")
    assert one.status == 200 and (await one.json())["lot"]["lot_id"] == lots[0]["lot_id"]
    missing = await client.get("/api/lots/nope")
    assert missing.status == 404 and (await missing.json())["error"]["code"] == "UNKNOWN_LOT"

    static = Path(auction.web.__file__).parent / "static"
    for path, entry in PAGES.items():
        page = await client.get(
            path.replace("{lot_id}", lots[0]["lot_id"]).replace("{sale_id}", "some-sale")
        )
        # each page: the one head and site header, then its body from auction/web/static/
        body = (static / entry.body).read_text(encoding="utf-8")
        assert page.status == 200 and page.content_type == "text/html"
        assert await page.text() == render(path, entry, body)
    for item in static.iterdir():
        served = await client.get(f"/static/{item.name}")
        wanted = item.read_bytes()
        if item.name in BY_NAME:  # a page's body: served whole, as at its own path
            wanted = render(*BY_NAME[item.name], wanted.decode("utf-8")).encode("utf-8")
        assert served.status == 200 and await served.read() == wanted
        assert served.content_type == CONTENT_TYPES[item.suffix]
    assert (await client.get("/static/app.py")).status == 404
    assert (await client.get("/static/..%2Fapp.py")).status == 404

    health = await client.get("/healthz")
    assert health.status == 200 and (await health.json()) == {"status": "ok", "lots": 6}
    assert client.app is not None and client.app[SERVICE].running


async def _read_until_url(stream: asyncio.StreamReader, seen: list[str]) -> str:
    while True:
        line = (await stream.readline()).decode()
        if not line:
            raise AssertionError("gavel demo exited before serving:\n" + "".join(seen))
        seen.append(line)
        match = re.search(r"serving (http://127\.0\.0\.1:\d+/)", line)
        if match:
            return match.group(1)


@pytest.mark.slow
async def test_gavel_demo_runs_headless_and_leaves_its_events(tmp_path: Path) -> None:
    data = tmp_path / "demo-data"
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "auction.cli",
        "demo",
        "--bots",
        "5",
        "--duration",
        "12",
        "--data",
        str(data),
        "--port",
        "0",
        "--seed",
        "7",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None and process.stderr is not None
    seen: list[str] = []
    try:
        url = await asyncio.wait_for(_read_until_url(process.stdout, seen), 20)
        async with aiohttp.ClientSession() as session:
            async with session.get(url + "api/lots") as response:
                assert response.status == 200
                body = await response.json()
            assert len(body["lots"]) == 6
            assert {lot["lot_id"] for lot in body["lots"]} >= {
                "hz-0917-1",
                "hz-0917-2",
                "hz-0917-3",
            }
            async with session.get(url) as response:
                assert response.status == 200 and "Gavel" in await response.text()
            async with session.get(url + "api/auditor") as response:
                auditor = await response.json()
            assert auditor["log_size"] > 0
            assert [n["name"] for n in auditor["notaries"]] == [
                f"notary{k}.gavel.demo" for k in (1, 2, 3)
            ]
        rest, errors = await asyncio.wait_for(process.communicate(), 30)
    except BaseException:
        process.kill()
        await process.wait()
        raise
    output = "".join(seen) + rest.decode()
    assert process.returncode == 0, output + errors.decode()
    assert "Traceback" not in errors.decode(), errors.decode()
    assert f"stored in {data.resolve() / 'gavel.db'}" in output

    with Storage.open(data) as store:
        lots = store.load()  # replays and checks every stored event
        counts = store.counts()
        histories = {lot.lot_id: store.history(lot.lot_id) for lot in lots}
    assert counts.lots == 6 and counts.commands > 50 and counts.events > counts.commands
    assert sum(1 for rows in histories.values() if len(rows) >= 5) >= 5
    timed = [lot for lot in lots if lot.rules.format is not Format.LIVE_AUCTIONEER]
    sold = [lot for lot in timed if lot.state.status is LotStatus.SOLD]
    assert sold, output
    for lot in sold:
        assert lot.lot_id in output and f"to {lot.state.leader_code}" in output
    for lot in timed:
        assert lot.state.status in (LotStatus.SOLD, LotStatus.FAILED), output
        assert json.dumps(lot.title, ensure_ascii=False)[1:-1] in output

    # the bots are real accounts: every bid is signed, every bidder verified (signed_bids log)
    with Storage.open(data, read_only=True) as store:
        entries = [json.loads(raw) for raw in store.ledger_entries_opened(0, store.ledger_size())]
    assert entries[0]["type"] == "house" and entries[0]["body"]["signed_bids"] is True
    bids = [e for e in entries if e["type"] == "bid" and e["body"].get("request")]
    assert len(bids) > 10
    assert sum(e["type"] == "idv" for e in entries) == 5
    # and the whole ledger exports and passes the auditor's steps
    export = tmp_path / "export"
    assert (
        await asyncio.to_thread(
            main, ["ledger", "export", "--data", str(data), "--out", str(export)]
        )
        == 0
    )
    assert await asyncio.to_thread(main, ["audit", "verify", str(export)]) == 0
    # the live lot was streamed while in the ring: its recording is what the ledger anchors
    recording = data / "recordings" / "painting-harbour"
    (rendition,) = [path for path in recording.iterdir() if path.is_dir()]
    assert any(rendition.iterdir()), "no segment was recorded"
    command = ["audit", "stream", str(recording), "--ledger", str(export)]  # the lot's folder
    assert await asyncio.to_thread(main, command) == 0
