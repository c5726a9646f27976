"""The demo's sales (`auction.demo.sales`) on the real server, run fast: made through the
console's own code (`SaleDesk`), the failed flat relisted after its notice, the second auction
failed and its fixed-price sale bought by the demo's buyer, and the ledger replayed."""

from __future__ import annotations

import asyncio
from pathlib import Path

from server_kit import Server, running_server

from auction.demo.sales import FAILS, FIRST_SALE, SECOND_LOT, follow_sales, seed_sales
from auction.rules import DAY
from auction.sales.desk import SaleDesk
from auction.verify import LedgerReplay
from auction.web.sales import SALE_STORE
from chain import parse_entry

PACE = 0.05  # the first sale's lots close after 9 and 10.5 seconds


async def wait_for(server: Server, lot: str, status: str, timeout: float = 30.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        view = server.service.view(lot)
        if view is not None and view.status == status:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"{lot} is not {status}: {server.service.view(lot)}")


async def test_the_demo_sales_relist_and_sell_at_a_fixed_price(tmp_path: Path) -> None:
    async with running_server(tmp_path) as server:
        service = server.service
        desk = SaleDesk(service, server.app[SALE_STORE])
        assert await seed_sales(desk, service, PACE)
        assert not await seed_sales(desk, service, PACE)  # once per data directory
        lots = [view for view in service.views() if view.sale_id == FIRST_SALE]
        assert len(lots) == 2 and lots[1].end - lots[0].end == int(30 * 1_000_000 * PACE)
        clerk = asyncio.create_task(follow_sales(desk, service, server.gateway, PACE))
        try:
            await wait_for(server, f"{SECOND_LOT}-fixed", "SOLD")
            await wait_for(server, f"{FAILS}-r", "SCHEDULED")
        finally:
            clerk.cancel()
            await asyncio.gather(clerk, return_exceptions=True)
        relisted = service.view(f"{FAILS}-r")
        assert relisted.start_at - service.now() > 15 * DAY - DAY // 24  # after the notice
        assert relisted.start_price * 10 >= service.view(FAILS).start_price * 8
        fixed = service.view(f"{SECOND_LOT}-fixed")
        assert fixed.format == "FIXED_PRICE_SALE"
        assert fixed.price == service.view(SECOND_LOT).start_price

        replay = LedgerReplay()
        actions = []
        for raw in server.entries():
            entry = parse_entry(raw)
            replay.add(entry.seq, entry.type, entry.time_us, entry.body, entry.actor.kid)
            if entry.type == "document" and entry.body.get("kind") == "sale_action":
                actions.append((entry.body["sale"], entry.body["action"]))
        outcomes = replay.outcomes()
        assert outcomes[SECOND_LOT]["status"] == outcomes[FAILS]["status"] == "FAILED"
        assert outcomes[f"{SECOND_LOT}-fixed"]["status"] == "SOLD"
        assert actions.count((FIRST_SALE, "relisted")) == 1
        assert ("demo-second-auction", "relisted") in actions
