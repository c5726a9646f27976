"""The demo's sales made as the console makes them (`auction.sales.sale.SaleDesk`), so a newcomer
finds a sale page, a relisted lot and a fixed-price sale (变卖) without doing anything:

* `demo-court-sale`: a judicial first auction of two flats, closes 30 seconds apart (rules
  C12), its notice published; a lot of it that fails is relisted at 80 % of its start price,
  opening after the 15 days of notice (clarification 7);
* `demo-second-auction`: a judicial second auction (二拍) of a parking space; when it fails
  the court's fixed-price sale follows at the same price (clarification 9), and a demo buyer of
  its own (a verified account with its deposit frozen, its confirmation signed like a
  browser's) buys it.

`seed_sales` runs once per data directory (nothing is made when the sales table has a sale);
`follow_sales` is the clerk that relists and sells as the lots close.
"""

from __future__ import annotations

import asyncio
import logging
import random
import secrets
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from ..gateway import Gateway
from ..protocol import BidRequest, signed_bytes
from ..rules import DAY, HOUR, MINUTE, SECOND
from ..sales.desk import SaleDesk
from ..sales.sale import SaleError, SalePlan
from ..service import AuctionService, ServiceError
from ..storage import StorageError
from .drivers import synthetic_prc_id

logger = logging.getLogger(__name__)

CLERK = "demo-console"  # who acted, in the sale actions' ledger bodies
FIRST_SALE = "demo-court-sale"
SECOND_SALE = "demo-second-auction"
FAILS = f"{FIRST_SALE}-2"  # nobody is sent to bid on it: it fails and is relisted
SECOND_LOT = f"{SECOND_SALE}-1"
START_AFTER = 20.0  # seconds after the server starts


def plans(now: int, pace: float = 1.0) -> tuple[SalePlan, SalePlan]:
    """The two sales, opening shortly after `now`; `pace` < 1 runs them faster (tests)."""

    def t(us: int) -> int:
        return int(us * pace)

    first = SalePlan.parse(
        {
            "sale": FIRST_SALE,
            "title": "Court sale: two flats in Xihu (first auction)",
            "preset": "JUDICIAL_CN",
            "start_at": now + t(20 * SECOND),
            "first_end": now + t(3 * MINUTE),
            "interval_us": t(30 * SECOND),
            "min_duration_us": t(MINUTE),
            "window_us": t(30 * SECOND),
            "extend_us": t(30 * SECOND),
            "lots": [
                {
                    "lot": f"{FIRST_SALE}-1",
                    "title": "Flat 1502, Xixi Garden",
                    "start_price": 182_000_000,
                    "step": 1_000_000,
                    "appraisal": 260_000_000,
                },
                {
                    "lot": FAILS,
                    "title": "Flat 803, Wenxin Garden",
                    "start_price": 151_000_000,
                    "step": 1_000_000,
                    "appraisal": 215_000_000,
                },
            ],
        }  # fmt: skip
    )
    second = SalePlan.parse(
        {
            "sale": SECOND_SALE,
            "title": "Court sale: a parking space (second auction)",
            "preset": "JUDICIAL_CN",
            "start_at": now + t(10 * SECOND),
            "first_end": now + t(70 * SECOND),
            "interval_us": t(30 * SECOND),
            "min_duration_us": t(30 * SECOND),
            "window_us": t(10 * SECOND),
            "extend_us": t(10 * SECOND),
            "round": 2,
            "lots": [
                {
                    "lot": SECOND_LOT,
                    "title": "Parking space B2-117, Zijingang Court",
                    "start_price": 14_400_000,
                    "step": 100_000,
                    "appraisal": 20_000_000,
                },
            ],
        }  # fmt: skip
    )
    return first, second


NOTICES = {
    FIRST_SALE: (
        "Notice of a judicial sale (first auction).\n"
        "Two flats are sold online, one after the other, 30 seconds apart. Each lot's start "
        "price, bid step and deposit are on its page. Bids are irrevocable; a bid in the last "
        "30 seconds moves the end 30 seconds on. A lot that fails is relisted at no less than "
        "80 % of its start price after 15 days of notice."
    ),
    SECOND_SALE: (
        "Notice of a judicial sale (second auction).\n"
        "The first auction of this parking space failed. If this auction fails too, the court "
        "orders a fixed-price sale at the same price, open for 60 days: the first bidder who "
        "confirms at that price buys it."
    ),
}


async def seed_sales(
    desk: SaleDesk, service: AuctionService, pace: float = 1.0, unwanted: set[str] | None = None
) -> bool:
    """Make the demo's sales once; returns whether they were made now. `unwanted`: the demo
    bots' set of lots they leave alone (`Drivers.unwanted`), given the lots meant to fail."""
    if unwanted is not None:
        unwanted |= {FAILS, SECOND_LOT}
    if await desk.records():
        return False
    for plan in plans(service.now(), pace):
        await desk.create(plan, CLERK)
        await desk.publish(plan.sale_id, NOTICES[plan.sale_id], CLERK)
    return True


async def _closed(service: AuctionService, lot: str) -> str:
    while True:
        view = service.view(lot)
        if view is not None and not view.active and view.status != "SCHEDULED":
            return view.status
        await asyncio.sleep(0.2)


async def run_demo_sales(
    desk: SaleDesk, service: AuctionService, gateway: Gateway, unwanted: set[str] | None
) -> None:
    """Make the demo's sales once the bots have signed up (their identity checks write to the
    same database at start), with a few tries, and follow them."""
    if unwanted is not None:
        unwanted |= {FAILS, SECOND_LOT}
    await asyncio.sleep(START_AFTER)
    for attempt in range(5):
        try:
            await seed_sales(desk, service, unwanted=unwanted)
            break
        except (StorageError, SaleError, ServiceError) as exc:
            if await desk.records():
                logger.warning("the demo's sales were made in part: %s", exc)
                break
            logger.warning("the demo's sales were not made (try %d): %s", attempt + 1, exc)
            await asyncio.sleep(5)
    await follow_sales(desk, service, gateway)


async def follow_sales(
    desk: SaleDesk, service: AuctionService, gateway: Gateway, pace: float = 1.0
) -> None:
    """The clerk of the demo's sales: relists the failed flat, opens the fixed-price sale
    after the second auction fails and has a buyer take it."""
    await asyncio.gather(_relist_flat(desk, service), _fixed_price(desk, service, gateway, pace))


async def _retrying(work: Any) -> Any:
    """`work()` again after a busy database (nothing was written by a failed try)."""
    for _ in range(10):
        try:
            return await work()
        except StorageError as exc:
            logger.warning("the demo's sales clerk tries again: %s", exc)
            await asyncio.sleep(3)
    return await work()


async def _relist_flat(desk: SaleDesk, service: AuctionService) -> None:
    relists = await desk.relists()
    if any(old == FAILS for old, _ in relists.values()):
        return
    if await _closed(service, FAILS) != "FAILED":
        return
    view = service.view(FAILS)
    assert view is not None
    start = service.now() + 15 * DAY + HOUR
    try:
        await _retrying(
            lambda: desk.relist(
                FAILS,
                f"{FAILS}-r",
                start_price=-(-view.start_price * 8 // 10),
                start_at=start,
                end_at=start + DAY,
                by=CLERK,
            )
        )
    except SaleError as exc:
        logger.warning("the demo's relisting of %s was refused: %s", FAILS, exc.message)


async def _fixed_price(
    desk: SaleDesk, service: AuctionService, gateway: Gateway, pace: float
) -> None:
    fixed = f"{SECOND_LOT}-fixed"
    if service.view(fixed) is None:
        if await _closed(service, SECOND_LOT) != "FAILED":
            return
        view = service.view(SECOND_LOT)
        assert view is not None
        now = service.now()
        try:
            await _retrying(
                lambda: desk.relist(
                    SECOND_LOT,
                    fixed,
                    start_price=view.start_price,
                    start_at=now + 5 * SECOND,
                    end_at=now + 60 * DAY,
                    by=CLERK,
                )
            )
        except SaleError as exc:
            logger.warning("the demo's fixed-price sale was refused: %s", exc.message)
            return
    view = service.view(fixed)
    if view is None or view.status not in ("SCHEDULED", "OPEN"):
        return
    await _retrying(lambda: _buy(service, gateway, fixed, 20 * pace))


async def _buy(service: AuctionService, gateway: Gateway, lot: str, after: float) -> None:
    """A demo buyer confirms at the fixed price, `after` seconds after the sale opens."""
    key = Ed25519PrivateKey.generate()
    account, _, _ = await gateway.create_account(
        key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    )
    document = synthetic_prc_id(random.Random(f"fixed-price-buyer-{secrets.token_hex(4)}"))
    await gateway.verify_identity(account, "Zhou Min", "PRC_RESIDENT_ID", document)
    registration = await gateway.register(account, lot)
    if registration.deposit_state == "REQUIRED":
        await gateway.freeze_deposit(account, lot, f"dep-{account}-{lot}")
    while (view := service.view(lot)) is not None and view.status == "SCHEDULED":
        await asyncio.sleep(0.2)
    await asyncio.sleep(after)
    view = service.view(lot)
    if view is None or view.status != "OPEN":
        return
    payload: dict[str, Any] = {
        "account": account,
        "amount": view.start_price,
        "currency": view.currency,
        "idempotency_key": f"fixed-{lot}",
        "kind": "bid",
        "lot": lot,
    }
    request = BidRequest(
        lot=lot,
        kind="bid",
        amount=view.start_price,
        currency=view.currency,
        idempotency_key=f"fixed-{lot}",
        signature=key.sign(signed_bytes(payload)),
    )
    for _ in range(30):  # the deposit settles through the payment provider
        ack = await gateway.bid(account, request)
        if ack["result"] == "accepted" or ack.get("reason") != "NO_DEPOSIT":
            return
        await asyncio.sleep(0.2)


__all__ = ["follow_sales", "plans", "run_demo_sales", "seed_sales"]
