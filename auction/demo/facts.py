"""The demo's property lots as a buyer sees them: address, area, description, pictures drawn
at start-up with Pillow (a facade, a floor plan, a parking bay: no downloaded assets) and the
court's announcement and bidding notice as plain text, each anchored in the ledger.

`seed_facts(service, store)` adds them to the lots of `auction.demo.showcase.catalogue` that have no
documents yet (a restart on the same data adds nothing), through the same checks as an upload.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import Callable
from dataclasses import dataclass

from PIL import Image, ImageDraw, ImageFont

from ..catalogue.facts import LotFactsStore, anchor_document, check_facts, check_upload
from ..service import AuctionService
from ..words import extension_rule_words

WIDTH, HEIGHT = 960, 640
INK = (38, 50, 64)


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def _encode(image: Image.Image, kind: str) -> bytes:
    out = io.BytesIO()
    if kind == "jpeg":
        image.save(out, "JPEG", quality=85)
    elif kind == "webp":
        image.save(out, "WEBP", quality=85)
    else:
        image.save(out, "PNG", optimize=True)
    return out.getvalue()


def facade(floors: int = 18, label: str = "Building 3") -> bytes:
    """A residential tower in the afternoon, flat 1502 marked (PNG)."""
    image = Image.new("RGB", (WIDTH, HEIGHT), (190, 215, 235))
    draw = ImageDraw.Draw(image)
    for y in range(HEIGHT - 70):  # sky, lighter towards the horizon
        shade = 160 + y * 80 // (HEIGHT - 70)
        draw.line([(0, y), (WIDTH, y)], fill=(shade - 30, shade - 5, 245))
    draw.rectangle([0, HEIGHT - 70, WIDTH, HEIGHT], fill=(120, 150, 110))
    left, right, top = 520, 880, 40
    draw.rectangle([left, top, right, HEIGHT - 70], fill=(226, 218, 204), outline=INK, width=3)
    storey = (HEIGHT - 70 - top - 20) // floors
    for floor in range(floors):
        y = HEIGHT - 80 - (floor + 1) * storey
        for column in range(4):
            if floor == 0 and column in (1, 2):
                continue  # the entrance
            x = left + 24 + column * 84
            marked = floor == 14 and column == 1  # flat 1502: 15th floor, unit 02
            fill = (240, 180, 60) if marked else (110, 140, 170)
            draw.rectangle([x, y + 4, x + 56, y + storey - 4], fill=fill, outline=INK)
    draw.rectangle([670, HEIGHT - 130, 730, HEIGHT - 70], fill=(90, 70, 50))
    draw.text((40, 40), label, fill=INK, font=_font(34))
    draw.text((40, 86), "Flat 1502 (marked):", fill=INK, font=_font(22))
    draw.text((40, 116), "15th floor, south-facing", fill=INK, font=_font(22))
    return _encode(image, "png")


def floor_plan() -> bytes:
    """Flat 1502: two bedrooms, living room, kitchen, bathroom, balcony (PNG)."""
    image = Image.new("RGB", (WIDTH, HEIGHT), (250, 250, 246))
    draw = ImageDraw.Draw(image)
    font, small = _font(24), _font(18)
    rooms = [
        ((60, 60, 480, 360), "Living room", "28.4 sq m"),
        ((480, 60, 900, 250), "Bedroom 1", "14.2 sq m"),
        ((480, 250, 900, 440), "Bedroom 2", "11.8 sq m"),
        ((60, 360, 300, 580), "Kitchen", "7.6 sq m"),
        ((300, 360, 480, 580), "Bathroom", "5.1 sq m"),
        ((480, 440, 900, 580), "Balcony", "6.3 sq m"),
    ]
    for box, name, area in rooms:
        draw.rectangle(box, outline=INK, width=6)
        x, y = box[0] + 16, box[1] + 14
        draw.text((x, y), name, fill=INK, font=font)
        draw.text((x, y + 32), area, fill=(90, 100, 110), font=small)
    for x0, y0, x1, y1 in ((230, 354, 290, 366), (600, 244, 660, 256), (380, 354, 440, 366)):
        draw.rectangle([x0, y0, x1, y1], fill=(250, 250, 246))  # doorways
    draw.text(
        (60, 600), "Floor plan, flat 1502 · 89.46 sq m gross · north is up", fill=INK, font=small
    )
    return _encode(image, "png")


def parking_bay(number: str = "B2-117") -> bytes:
    """An underground parking bay, its number painted on the floor (JPEG)."""
    image = Image.new("RGB", (WIDTH, HEIGHT), (118, 122, 126))
    draw = ImageDraw.Draw(image)
    draw.rectangle([0, 0, WIDTH, 150], fill=(70, 74, 80))  # the back wall
    draw.rectangle([0, 140, WIDTH, 160], fill=(230, 190, 40))
    for x in (180, 480, 780):
        draw.line([(x, 160), (x + (x - 480) // 3, HEIGHT)], fill=(245, 245, 245), width=10)
    draw.rectangle([840, 20, 920, HEIGHT], fill=(150, 150, 150), outline=INK, width=3)  # pillar
    draw.text((280, 380), number, fill=(245, 245, 245), font=_font(80))
    draw.text((40, 40), f"Parking space {number}, level B2", fill=(255, 255, 255), font=_font(30))
    draw.text((40, 84), "2.5 m x 5.3 m · 13.25 sq m", fill=(230, 230, 230), font=_font(22))
    return _encode(image, "jpeg")


def office_tower() -> bytes:
    """A glass office tower, unit 1203 marked (WebP)."""
    image = Image.new("RGB", (WIDTH, HEIGHT), (200, 220, 240))
    draw = ImageDraw.Draw(image)
    draw.polygon([(330, 620), (330, 40), (630, 70), (630, 620)], fill=(90, 130, 160), outline=INK)
    for floor in range(20):
        y = 600 - floor * 27
        draw.line([(330, y), (630, y)], fill=(160, 195, 215), width=2)
        if floor == 11:
            draw.rectangle([360, y - 24, 440, y - 4], fill=(240, 180, 60))
    draw.text((40, 40), "Huanglong Century Plaza", fill=INK, font=_font(32))
    draw.text((40, 84), "Unit 1203 (marked): 12th floor", fill=INK, font=_font(22))
    return _encode(image, "webp")


ANNOUNCEMENT = """\
Hangzhou Xihu District People's Court
Auction announcement, case (2024) Zhe 0106 Zhi No. 4127

The court will sell by online judicial auction, on this platform, the following property:
Flat 1502, Building 3, Wenyi West Road, Xihu District, Hangzhou; gross floor area
89.46 square metres; real estate certificate Zhe (2019) Hangzhou No. 0231558.

Appraised value: CNY 3,000,000. Start price: CNY 2,100,000 (70 % of the appraisal).
Deposit: CNY 210,000. Bid step: CNY 10,000.
Extension rule: {extension}

Known encumbrances: none registered. The flat is sold as it stands; the buyer pays the
taxes and fees of the transfer as the law assigns them. A tenant holds a lease until
30 June 2025 and has a priority purchase right: the tenant may match the highest bid.

Viewing: by appointment with the court's enforcement office, weekdays 9:00-17:00.
"""

NOTICE = """\
Bidding notice

1. Bidders verify their identity (a PRC resident identity card or a passport) and pay the
   deposit before they bid. The deposit is frozen, not taken; it is returned within 24 hours
   to bidders who do not win.
2. Every bid is binding and cannot be withdrawn. The highest bid when the lot ends wins,
   unless a holder of a priority purchase right matches it.
3. Extension rule: {extension}
4. The winner pays the balance within 10 days of the end; a winner who does not pay loses
   the deposit and the lot is sold again.
5. The lot is sold as it stands. Read the court's announcement before bidding.
"""

PARKING_NOTICE = """\
Bidding notice: parking space B2-117

Only owners of a flat in Lvcheng Xixi Garden may bid (the estate's parking rules). The
deposit is frozen before bidding and returned within 24 hours to bidders who do not win.
Bids cannot be withdrawn. Extension rule: {extension}
"""


@dataclass(frozen=True, slots=True)
class DemoFile:
    kind: str
    name: str
    make: Callable[[], bytes]


DEMO_FACTS: dict[str, tuple[dict[str, str], tuple[DemoFile, ...]]] = {
    "hz-flat-1502": (
        {
            "property_kind": "Flat",
            "address": "Flat 1502, Building 3, Wenyi West Road, Xihu District, Hangzhou",
            "area": "89.46 m²",
            "description": "Two bedrooms, living room, kitchen, bathroom and a south-facing "
            "balcony on the 15th of 18 floors; lift; built 2009; decorated, empty.",
            "priority_notice": "A tenant with a lease until 30 June 2025 holds a priority "
            "purchase right and may match the highest bid.",
        },
        (
            DemoFile("picture", "facade.png", facade),
            DemoFile("picture", "floor-plan.png", floor_plan),
            DemoFile("announcement", "announcement.txt", lambda: ANNOUNCEMENT.encode()),
            DemoFile("notice", "bidding-notice.txt", lambda: NOTICE.encode()),
        ),
    ),
    "hz-0917-1": (
        {
            "property_kind": "Parking space",
            "address": "Parking space B2-117, level B2, Lvcheng Xixi Garden, Xihu District",
            "area": "13.25 m²",
            "description": "Underground parking space for one car, next to the lift lobby; "
            "right of use until 2067.",
        },
        (
            DemoFile("picture", "parking-bay.jpg", parking_bay),
            DemoFile("notice", "bidding-notice.txt", lambda: PARKING_NOTICE.encode()),
        ),
    ),
    "hz-0917-2": (
        {
            "property_kind": "Office",
            "address": "Unit 1203, Huanglong Century Plaza, Xihu District, Hangzhou",
            "area": "168 m²",
            "description": "Open-plan office on the 12th floor with two meeting rooms; "
            "leased until the end of 2025 (the lease passes to the buyer).",
        },
        (
            DemoFile("picture", "tower.webp", office_tower),
            DemoFile("notice", "bidding-notice.txt", lambda: NOTICE.encode()),
        ),
    ),
}


async def seed_facts(service: AuctionService, store: LotFactsStore) -> int:
    """Add the demo's facts and documents to its lots that have none yet; returns how many
    files were anchored."""
    lots = [lot for lot in DEMO_FACTS if service.view(lot) is not None]
    held = await asyncio.to_thread(store.documents, lots)
    anchored = 0
    for lot in lots:
        if not held.get(lot):
            facts, files = DEMO_FACTS[lot]
            anchored += await seed_lot(service, store, lot, facts, files)
    return anchored


async def seed_lot(
    service: AuctionService,
    store: LotFactsStore,
    lot: str,
    facts: dict[str, str],
    files: tuple[DemoFile, ...],
) -> int:
    """Store `lot`'s text facts and its files (through the upload checks; each anchored in
    the ledger by a `document` entry); `{extension}` in a file becomes the lot's extension
    rule in words. Returns how many files were anchored."""
    await asyncio.to_thread(store.put_facts, lot, check_facts(facts), service.now())
    rules = await asyncio.to_thread(store.rules, lot)
    extension = extension_rule_words(rules).encode() if rules is not None else b""
    anchored = 0
    for item in files:
        data = (await asyncio.to_thread(item.make)).replace(b"{extension}", extension)
        upload = check_upload(item.kind, item.name, data)
        _, entry = await anchor_document(
            service, lot, upload.kind, upload.name, upload.content_type, upload.data
        )
        await asyncio.to_thread(store.add_document, lot, upload, entry, service.now())
        anchored += 1
    return anchored


__all__ = [
    "DEMO_FACTS", "DemoFile", "facade", "floor_plan", "office_tower", "parking_bay", "seed_facts",
    "seed_lot",
]  # fmt: skip
