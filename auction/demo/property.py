"""Facts, pictures and documents for the living demo's property lots (`auction.demo.schedule`).

Every lot the schedule creates gets what a buyer looks for on its page: address, area, a
description, pictures drawn for that very property at creation (a facade with the unit marked
and a floor plan for a flat, the bay for a parking space or garage, a street view for a house,
a site plan for land: Pillow, no downloaded assets), and for court lots the court's
announcement and the bidding notice as plain text, with the lot's own numbers. Each file goes
through the same checks as an upload and is anchored in the ledger (`document` entry).

`property_facts(spec, rules)` is pure (the pictures are drawn when `make()` is called);
`seed_property(service, store, spec)` stores and anchors them once per lot.
"""

from __future__ import annotations

import asyncio
import random

from PIL import Image, ImageDraw

from ..catalogue.facts import LotFactsStore
from ..rules import LotRules
from ..service import AuctionService
from ..words import extension_rule_words, money
from .facts import HEIGHT, INK, WIDTH, DemoFile, _encode, _font, seed_lot
from .schedule import LotSpec, Property


def _rng(spec: LotSpec) -> random.Random:
    return random.Random(f"pictures:{spec.lot_id}")


def tower(spec: LotSpec) -> bytes:
    """A residential tower with the lot's flat marked (PNG)."""
    facts, rng = spec.property, _rng(spec)
    floors = max(6, min(30, int((facts.unit or "12")[:-2] or 12) + rng.randint(2, 8)))
    marked_floor = max(1, min(floors, int((facts.unit or "1201")[:-2] or 1))) - 1
    image = Image.new("RGB", (WIDTH, HEIGHT))
    draw = ImageDraw.Draw(image)
    hue = rng.randint(0, 40)
    for y in range(HEIGHT - 70):
        shade = 150 + y * 90 // (HEIGHT - 70)
        draw.line([(0, y), (WIDTH, y)], fill=(shade - 30, shade - 5 + hue // 4, 245))
    draw.rectangle([0, HEIGHT - 70, WIDTH, HEIGHT], fill=(120, 150, 110))
    left, right, top = 500, 900, 30
    wall = (226 - hue, 214, 196 + hue)
    draw.rectangle([left, top, right, HEIGHT - 70], fill=wall, outline=INK, width=3)
    storey = (HEIGHT - 70 - top - 20) // floors
    for floor in range(floors):
        y = HEIGHT - 80 - (floor + 1) * storey
        for column in range(4):
            x = left + 30 + column * 92
            marked = floor == marked_floor and column == 1
            fill = (240, 180, 60) if marked else (110, 140, 170)
            draw.rectangle([x, y + 3, x + 60, y + storey - 3], fill=fill, outline=INK)
    draw.text((40, 40), f"Building {facts.building or '1'}", fill=INK, font=_font(34))
    draw.text((40, 86), f"Flat {facts.unit} (marked)", fill=INK, font=_font(24))
    draw.text((40, 118), f"floor {marked_floor + 1} of {floors}", fill=INK, font=_font(22))
    draw.text((40, HEIGHT - 110), facts.place, fill=INK, font=_font(20))
    return _encode(image, "png")


def floor_plan(spec: LotSpec) -> bytes:
    """A floor plan whose rooms add up to the flat's area (PNG)."""
    facts, rng = spec.property, _rng(spec)
    area = facts.area_m2 or 60
    bedrooms = 1 if area < 60 else 2 if area < 100 else 3
    shares = [("Living room", 0.34), ("Kitchen", 0.10), ("Bathroom", 0.07)]
    shares += [(f"Bedroom {n + 1}", 0.42 / bedrooms) for n in range(bedrooms)]
    shares.append(("Balcony", 0.07))
    image = Image.new("RGB", (WIDTH, HEIGHT), (250, 250, 246))
    draw = ImageDraw.Draw(image)
    x, y, width_left = 60, 60, 840
    row_height = 250
    for name, share in shares:
        width = max(150, int(width_left * share * 2.2))
        if x + width > 900:
            x, y = 60, y + row_height
        box = (x, y, min(900, x + width), y + row_height)
        draw.rectangle(box, outline=INK, width=6)
        draw.text((box[0] + 14, box[1] + 12), name, fill=INK, font=_font(22))
        metres = area * share * rng.uniform(0.9, 1.1)
        draw.text((box[0] + 14, box[1] + 42), f"{metres:.1f} sq m", fill=(90, 100, 110),
                  font=_font(18))  # fmt: skip
        x = box[2]
    caption = f"Floor plan, flat {facts.unit} · about {area} sq m gross · north is up"
    draw.text((60, 600), caption, fill=INK, font=_font(18))
    return _encode(image, "png")


def bay(spec: LotSpec) -> bytes:
    """A parking space or a garage, its number painted on the floor (JPEG)."""
    facts = spec.property
    image = Image.new("RGB", (WIDTH, HEIGHT), (118, 122, 126))
    draw = ImageDraw.Draw(image)
    draw.rectangle([0, 0, WIDTH, 150], fill=(70, 74, 80))
    draw.rectangle([0, 140, WIDTH, 160], fill=(230, 190, 40))
    for x in (180, 480, 780):
        draw.line([(x, 160), (x + (x - 480) // 3, HEIGHT)], fill=(245, 245, 245), width=10)
    draw.text((300, 380), facts.unit or "1", fill=(245, 245, 245), font=_font(80))
    what = "Parking space" if facts.kind == "parking space" else "Lock-up garage"
    draw.text((40, 40), f"{what} {facts.unit or ''}", fill=(255, 255, 255), font=_font(30))
    draw.text((40, 84), facts.place, fill=(230, 230, 230), font=_font(20))
    return _encode(image, "jpeg")


def street(spec: LotSpec) -> bytes:
    """A terraced house or a plot of land seen from the street (PNG)."""
    facts, rng = spec.property, _rng(spec)
    image = Image.new("RGB", (WIDTH, HEIGHT), (196, 222, 240))
    draw = ImageDraw.Draw(image)
    draw.rectangle([0, HEIGHT - 120, WIDTH, HEIGHT], fill=(110, 150, 100))
    if facts.kind == "land":
        draw.polygon([(120, 560), (300, 300), (820, 320), (880, 580)], fill=(170, 150, 100),
                     outline=INK)  # fmt: skip
        draw.text((360, 420), f"{facts.area_m2 or '?'} sq m", fill=INK, font=_font(36))
    else:
        for house in range(4):
            left = 60 + house * 220
            brick = (160 + rng.randint(-20, 20), 80, 60)
            draw.rectangle([left, 260, left + 200, HEIGHT - 120], fill=brick, outline=INK)
            draw.polygon([(left - 10, 260), (left + 100, 170), (left + 210, 260)],
                         fill=(80, 70, 70))  # fmt: skip
            fill = (240, 180, 60) if house == 1 else (110, 140, 170)
            draw.rectangle([left + 30, 300, left + 90, 360], fill=fill, outline=INK)
            draw.rectangle([left + 120, 420, left + 170, HEIGHT - 120], fill=(60, 50, 40))
    draw.text((40, 30), facts.place, fill=INK, font=_font(28))
    return _encode(image, "png")


ANNOUNCEMENT = """\
{seller}
Auction announcement

The court will sell by online judicial auction, on this platform, the following property:
{what}, {place}{area}.

Appraised value: {appraisal}. Start price: {start} ({percent} % of the appraisal).
Deposit: {deposit}. Bid step: {step}.
Extension rule: {extension}

The property is sold as it stands; the buyer pays the taxes and fees of the transfer as the
law assigns them. Viewing: by appointment with the court's enforcement office.
"""

NOTICE = """\
Bidding notice (竞买须知)

1. Bidders verify their identity (a PRC resident identity card or a passport) and pay the
   deposit of {deposit} before they bid. The deposit is frozen, not taken; it is returned
   within 24 hours to bidders who do not win.
2. Every bid is binding and cannot be withdrawn. The highest bid when the lot ends wins.
3. Extension rule: {extension}
4. The winner pays the balance within the time the announcement sets; a winner who does not
   pay loses the deposit and the lot is sold again.
5. The lot is sold as it stands. Read the announcement before bidding.
"""

_WHAT = {
    "flat": "Flat",
    "parking space": "Parking space",
    "garage": "Lock-up garage",
    "house": "Terraced house",
    "land": "Plot of land",
}


def _description(facts: Property) -> str:
    if facts.kind == "flat":
        rooms = "one bedroom" if (facts.area_m2 or 0) < 60 else "two bedrooms"
        if (facts.area_m2 or 0) >= 100:
            rooms = "three bedrooms"
        return (
            f"A flat of about {facts.area_m2} m² with {rooms}, a living room, kitchen and "
            "bathroom; lift; sold empty."
        )
    if facts.kind == "parking space":
        return "Underground parking space for one car; right of use as registered."
    if facts.kind == "garage":
        return "Lock-up garage in a block of garages, with an up-and-over door; no power."
    if facts.kind == "house":
        return f"Terraced house of about {facts.area_m2} m² with a small garden at the back."
    return f"A plot of about {facts.area_m2} m² with road access; no planning permission."


def property_facts(spec: LotSpec, rules: LotRules) -> tuple[dict[str, str], tuple[DemoFile, ...]]:
    """The text facts and the files of the lot `spec` created with `rules`."""
    facts = spec.property
    what = _WHAT.get(facts.kind, facts.kind.capitalize())
    unit = f" {facts.unit}" if facts.unit else ""
    text = {
        "property_kind": what,
        "address": f"{what}{unit}, {facts.place}",
        "area": f"{facts.area_m2} m²" if facts.area_m2 else "",
        "description": _description(facts),
        "priority_notice": "",
    }
    pictures: list[DemoFile] = []
    if facts.kind == "flat":
        pictures = [DemoFile("picture", "building.png", lambda: tower(spec)),
                    DemoFile("picture", "floor-plan.png", lambda: floor_plan(spec))]  # fmt: skip
    elif facts.kind in ("parking space", "garage"):
        pictures = [DemoFile("picture", "bay.jpg", lambda: bay(spec))]
    else:
        pictures = [DemoFile("picture", "street.png", lambda: street(spec))]
    if facts.seller and "Court" in facts.seller:
        deposit = money(rules.deposit, rules.currency)
        numbers = {
            "seller": facts.seller,
            "what": f"{what}{unit}",
            "place": facts.place,
            "area": f"; area about {facts.area_m2} m²" if facts.area_m2 else "",
            "appraisal": money(facts.appraisal, rules.currency),
            "start": money(rules.start_price, rules.currency),
            "percent": round(100 * rules.start_price / facts.appraisal) if facts.appraisal else 0,
            "deposit": deposit,
            "step": money(spec.step, rules.currency),
            "extension": extension_rule_words(rules),
        }
        announcement, notice = ANNOUNCEMENT.format(**numbers), NOTICE.format(**numbers)
        pictures += [
            DemoFile("announcement", "announcement.txt", lambda: announcement.encode()),
            DemoFile("notice", "bidding-notice.txt", lambda: notice.encode()),
        ]
    return text, tuple(pictures)


async def seed_property(service: AuctionService, store: LotFactsStore, spec: LotSpec) -> int:
    """Store and anchor the facts and files of the created lot `spec` unless it has documents
    already (a restart adds nothing); returns how many files were anchored."""
    rules = await asyncio.to_thread(store.rules, spec.lot_id)
    if rules is None:
        return 0
    held = await asyncio.to_thread(store.documents, [spec.lot_id])
    if held.get(spec.lot_id):
        return 0
    facts, files = property_facts(spec, rules)
    return await seed_lot(service, store, spec.lot_id, facts, files)


__all__ = ["bay", "floor_plan", "property_facts", "seed_property", "street", "tower"]
