"""The dashboard's stream watchers over a real server with live video: a real aiortc viewer
of a live lot counts once as a watcher (however often it connects that day), and the sampled
viewer counts show it in the watchers table and plot."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import aiohttp
import pytest
from plots_kit import svg_with_axes
from server_kit import running_server
from stream_kit import wait_until
from video_kit import video_settings

from auction.accounts import Role
from auction.rules import SECOND, OpenRing, live_auctioneer
from auction.video import VIDEO
from streaming.loadtest import Viewer

pytestmark = [pytest.mark.slow]
LOT = "painting-7"


async def test_stream_watchers_are_counted_and_sampled(tmp_path: Path) -> None:
    settings = video_settings(tmp_path / "recordings")
    async with (
        running_server(tmp_path, video=settings, viewer_sample_s=0.2) as server,
        aiohttp.ClientSession() as http,
    ):
        service = server.service
        rules = live_auctioneer(
            start_price=800_000, currency="GBP", start_at=service.now() + 3600 * SECOND,
            legal_timezone="Europe/London",
        )  # fmt: skip
        await service.add_lot(LOT, rules, "Portrait of a Lady")
        await service.submit(LOT, OpenRing(ask=800_000))
        hub = server.app[VIDEO].hub
        await wait_until(lambda: hub.lot(LOT) is not None, 10)
        auditor = await server.staff(Role.AUDITOR)
        headers = {"Authorization": f"Bearer {auditor}"}

        async def dashboard() -> dict[str, object]:
            async with http.get(f"{server.url}/api/dashboard", headers=headers) as response:
                assert response.status == 200
                return dict(json.loads(await response.read())["tables"])

        async def viewer_counts() -> list[int]:
            rows = (await dashboard())["watchers"]["rows"]  # type: ignore[index]
            return [int(row["viewers"]) for row in rows]

        for _ in range(2):  # the same address twice: one watcher today
            viewer = Viewer(http, server.url, LOT, mode="count", data_channel=False)
            await viewer.connect()
            try:
                loop = asyncio.get_running_loop()
                deadline = loop.time() + 10
                while 1 not in await viewer_counts() and loop.time() < deadline:
                    await asyncio.sleep(0.1)
                assert 1 in await viewer_counts()
            finally:
                await viewer.close()
        tables = await dashboard()
        funnel = {
            (row["id"], row["step"]): row["count"]
            for row in tables["funnel"]["rows"]  # type: ignore[index]
        }
        assert funnel[(LOT, "watchers")] == 1
        rows = tables["watchers"]["rows"]  # type: ignore[index]
        assert all(row["time"].endswith(("+00:00", "+01:00")) for row in rows)
        async with http.get(
            f"{server.url}/api/dashboard/plots/watchers.svg?lot={LOT}", headers=headers
        ) as response:
            assert response.status == 200
            svg_with_axes(await response.read())
