"""The living demo: `gavel demo --speed 30` as a real process, watched through its HTTP
catalogue API, stopped and started again on the same data; and the catalogue's listing."""

from __future__ import annotations

import asyncio
import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer

from auction.catalogue.listing import listing
from auction.demo.living import PLAN_FILE, SchedulePlan, wipe_demo_data
from auction.demo.notaries import DemoError
from auction.service import LotView
from auction.web import Settings, create_app

SECOND = 1_000_000
SPEED = 30  # the schedule's periods: 10 s for a court lot and for a ring lot
ACTIVE = {"SCHEDULED", "OPEN", "PAUSED", "SUSPENDED"}


@dataclass
class Run:
    snapshots: list[tuple[int, list[dict[str, Any]]]] = field(default_factory=list)
    output: str = ""
    returncode: int | None = None


async def _watch(data: Path, duration: int, *extra: str) -> Run:
    """Run the living demo for `duration` seconds, reading `/api/lots` twice a second."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "auction.cli", "demo", "--speed", str(SPEED),
        "--duration", str(duration), "--data", str(data), "--port", "0", "--bots", "4",
        "--seed", "5", "--notaries", "0", *extra,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    assert process.stdout is not None
    run = Run()
    lines: list[str] = []
    try:
        url = None
        while url is None:
            line = (await asyncio.wait_for(process.stdout.readline(), 30)).decode()
            if not line:
                raise AssertionError("the demo exited before serving:\n" + "".join(lines))
            lines.append(line)
            found = re.search(r"serving (http://127\.0\.0\.1:\d+/)", line)
            url = found.group(1) if found else None
        reader = asyncio.create_task(process.stdout.read())
        async with aiohttp.ClientSession() as session:
            while not reader.done():
                try:
                    async with session.get(url + "api/lots") as response:
                        assert response.status == 200
                        body = await response.json()
                    run.snapshots.append((body["now_us"], body["lots"]))
                except aiohttp.ClientConnectionError:
                    pass  # shutting down
                await asyncio.sleep(0.5)
        lines.append((await reader).decode())
        run.returncode = await asyncio.wait_for(process.wait(), 30)
    except BaseException:
        process.kill()
        await process.wait()
        raise
    run.output = "".join(lines)
    return run


def _index(lot_id: str) -> int:
    return int(lot_id.rsplit("-", 1)[1])


def _check_always_on(run: Run, grace_us: int) -> None:
    """After `grace_us`: always an open court lot with time to go, an upcoming lot, at most one
    lot in the ring, no lot listed twice."""
    first = run.snapshots[0][0]
    checked = [(now, lots) for now, lots in run.snapshots if now >= first + grace_us]
    assert len(checked) > 20, run.output
    for now, lots in checked:
        ids = [lot["lot_id"] for lot in lots]
        assert len(ids) == len(set(ids))
        court = [lot for lot in lots if lot["format"] == "JUDICIAL_CN" and lot["status"] == "OPEN"]
        seen = [
            (
                lot["lot_id"],
                lot["status"],
                (lot["start_at"] - now) / SECOND,
                (lot["end"] - now) / SECOND,
            )
            for lot in lots
            if lot["format"] == "JUDICIAL_CN"
        ]
        assert court, f"{(now - first) / SECOND:.2f} s after the first look: {seen}"
        assert max(lot["end"] - now for lot in court) > 4 * SECOND  # 2 min at speed 1
        assert all(lot["currency"] == "CNY" for lot in court)
        assert any(lot["status"] == "SCHEDULED" for lot in lots)
        ring = [lot for lot in lots if lot["format"] == "LIVE_AUCTIONEER"]
        assert sum(lot["status"] == "OPEN" for lot in ring) <= 1  # one lot in the ring
        assert any(lot["status"] in ACTIVE for lot in ring)


def _check_results(run: Run) -> dict[str, dict[str, Any]]:
    """Closed lots stay listed with their result; returns the last view of every lot."""
    last: dict[str, dict[str, Any]] = {}
    closed_seen: set[str] = set()
    for _, lots in run.snapshots:
        listed = {lot["lot_id"] for lot in lots}
        assert closed_seen <= listed  # a result never disappears (fewer than 40 results)
        for lot in lots:
            last[lot["lot_id"]] = lot
            if lot["status"] not in ACTIVE:
                closed_seen.add(lot["lot_id"])
    for lot_id in closed_seen:
        lot = last[lot_id]
        # sold, not sold, or (a ring lot whose time passed while the demo was stopped) withdrawn
        assert lot["result"] in ("SOLD", "FAILED") or lot["status"] == "CANCELLED", lot
        assert lot["closed_at"] is not None
        if lot["result"] == "SOLD":
            assert lot["price"] >= lot["start_price"] and lot["leader_code"], lot
            assert lot["bids"] >= 1
    return last


@pytest.mark.slow
async def test_the_living_demo_is_always_on_and_a_restart_continues_it(tmp_path: Path) -> None:
    data = tmp_path / "demo-data"
    first = await _watch(data, 32)
    assert first.returncode == 0, first.output
    assert "Traceback" not in first.output, first.output
    from words_kit import ENGINE_NAME  # the summary and the start-up lines: plain words

    assert ENGINE_NAME.search(first.output) is None, first.output
    assert "living catalogue: a court-ordered property lot opens every 10 s" in first.output
    assert f"data in {data.resolve()}" in first.output
    _check_always_on(first, 2 * SECOND)  # start-up: the first lot opens at +0.7 s
    before = _check_results(first)
    closed = [view for view in before.values() if view["closed_at"] is not None]
    court_closed = [view for view in closed if view["format"] == "JUDICIAL_CN"]
    ring_closed = [view for view in closed if view["format"] == "LIVE_AUCTIONEER"]
    assert len(court_closed) >= 1 and len(ring_closed) >= 2, first.output
    plan = SchedulePlan.parse((data / PLAN_FILE).read_text())
    assert plan.speed == SPEED and plan.seed == 5

    second = await _watch(data, 20, "--seed", "6", "--speed", "1")  # the stored plan wins
    assert second.returncode == 0, second.output
    assert "Traceback" not in second.output, second.output
    assert SchedulePlan.parse((data / PLAN_FILE).read_text()) == plan
    _check_always_on(second, SECOND // 2)  # no gap: an open lot from the start
    after = _check_results(second)
    # every lot of the first run is still there, the same lot (no duplicate, no re-creation)
    assert set(before) <= set(after)
    for lot_id, view in before.items():
        assert (after[lot_id]["start_at"], after[lot_id]["title"]) == (
            view["start_at"],
            view["title"],
        )
    new = set(after) - set(before)
    assert new, "the schedule did not go on"
    for stream in ("hz-lot-", "ldn-lot-"):
        old_top = max(_index(i) for i in before if i.startswith(stream))
        assert all(_index(i) > old_top for i in new if i.startswith(stream))
    # over both runs, two full cycles of each stream, with results
    closed = [view for view in after.values() if view["closed_at"] is not None]
    assert sum(view["format"] == "JUDICIAL_CN" for view in closed) >= 2, second.output
    assert sum(view["format"] == "LIVE_AUCTIONEER" for view in closed) >= 3, second.output
    assert any(view["result"] == "SOLD" for view in closed)
    assert any(view["closed_at"] > second.snapshots[0][0] for view in closed)
    # and --fresh recognises everything the demo wrote as its own
    assert wipe_demo_data(data) and not data.exists()


def _view(lot_id: str, status: str, closed_at: int | None) -> LotView:
    return LotView(
        lot_id=lot_id, sale_id=None, sale_title=None, title=lot_id, format="JUDICIAL_CN",
        currency="CNY", legal_timezone="Asia/Shanghai", status=status, phase=None,
        start_price=100, price=None, leader_code=None, min_next=100, start_at=0, end=1,
        hammer_not_before=None, reserve_met=None, bids=0, seq=1, result=None,
        closed_at=closed_at,
    )  # fmt: skip


def test_the_catalogue_lists_every_active_lot_and_the_latest_results() -> None:
    views = [_view(f"c{k}", "SOLD" if k % 2 else "FAILED", 1000 + k) for k in range(50)]
    views.insert(10, _view("open", "OPEN", None))
    views.append(_view("soon", "SCHEDULED", None))
    page = listing(views, results=5)
    assert [v.lot_id for v in page.lots] == ["open", "c45", "c46", "c47", "c48", "c49", "soon"]
    assert page.older_results == 45
    older = listing(views, results=5, before=1045)
    assert [v.lot_id for v in older.lots] == ["c40", "c41", "c42", "c43", "c44"]
    assert older.older_results == 40
    assert listing(views).older_results == 10 and len(listing(views).lots) == 42
    assert [v.lot_id for v in listing(views, results=0).lots] == ["open", "soon"]


def test_fresh_deletes_only_a_demo_directory(tmp_path: Path) -> None:
    demo = tmp_path / "demo"
    (demo / "notaries" / "n1").mkdir(parents=True)
    (demo / "gavel.db").write_bytes(b"x")
    (demo / PLAN_FILE).write_text("{}")
    assert wipe_demo_data(demo) and not demo.exists()
    assert not wipe_demo_data(demo)
    other = tmp_path / "mine"
    other.mkdir()
    (other / "gavel.db").write_bytes(b"x")
    (other / "thesis.tex").write_text("keep me")
    with pytest.raises(DemoError, match="thesis.tex"):
        wipe_demo_data(other)
    assert (other / "thesis.tex").read_text() == "keep me" and (other / "gavel.db").exists()


def test_a_damaged_plan_is_a_clear_error() -> None:
    with pytest.raises(DemoError, match="not a demo schedule"):
        SchedulePlan.parse(json.dumps({"start_us": 1, "seed": 2}))
    with pytest.raises(DemoError, match="not a demo schedule"):
        SchedulePlan.parse(json.dumps({"start_us": 1, "seed": 2, "speed": 0}))


async def test_the_catalogue_api_checks_its_query(tmp_path: Path) -> None:
    app = create_app(Settings(data_dir=tmp_path / "data", bots=0, duration=60))
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        body = await (await client.get("/api/lots?results=0")).json()
        assert len(body["lots"]) == 6 and body["older_results"] == 0  # all to come: listed
        assert (await (await client.get("/api/lots?before=1")).json())["lots"] == []
        for query in ("results=-1", "results=1001", "results=x", "before=1.5"):
            response = await client.get(f"/api/lots?{query}")
            assert response.status == 422, query
            assert (await response.json())["error"]["code"] == "BAD_QUERY"


@pytest.mark.slow
@pytest.mark.chromium
async def test_a_newcomer_sees_open_lots_the_ring_and_results_in_the_catalogue(
    tmp_path: Path,
) -> None:
    from stream_kit import CHROMIUM_ARGS, require_chromium

    executable = require_chromium()
    from playwright.async_api import async_playwright

    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "auction.cli", "demo", "--speed", str(SPEED),
        "--duration", "60", "--data", str(tmp_path / "data"), "--port", "0", "--bots", "4",
        "--seed", "5", "--notaries", "0",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    assert process.stdout is not None
    try:
        line = (await asyncio.wait_for(process.stdout.readline(), 30)).decode()
        found = re.search(r"serving (http://127\.0\.0\.1:\d+)/", line)
        assert found, line
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(
                executable_path=executable, headless=True, args=CHROMIUM_ARGS
            )
            try:
                page: Any = await browser.new_page()
                errors: list[str] = []
                page.on("pageerror", lambda error: errors.append(str(error)))
                await page.goto(found.group(1) + "/")
                is_open = page.locator(".tag", has_text=re.compile("^Open$"))
                court = page.locator(".lot-card", has_text="Judicial sale", has=is_open)
                await court.first.wait_for()
                assert re.search("Ends in|Closing", await court.first.inner_text())
                await page.locator(
                    ".lot-card .countdown", has_text="Comes up in the ring"
                ).first.wait_for()
                # wait for the page's next poll to list a result (the first ring lot's)
                sold = re.compile("^(Sold|Not sold)$")
                ring_sale = 'section[aria-labelledby="sale-ldn-live-001"] .lot-card'
                result = page.locator(f"{ring_sale} .tag", has_text=sold)
                await result.first.wait_for(timeout=40_000)
                ring = await page.locator(ring_sale).all_inner_texts()
                first_result = next(k for k, t in enumerate(ring) if re.search("Sold|Not sold", t))
                assert all(not re.search("Sold|Not sold", t) for t in ring[:first_result])
                assert errors == []
            finally:
                await browser.close()
    finally:
        if process.returncode is None:
            process.kill()
        await process.wait()
