"""A lot's presentation: the still pictures a property lot shows on air while nobody is in
front of a camera (`streaming.SlideshowSource` turns them into a slow pan-and-zoom show).

`presentation_frames(facts)` is the one entry point: the lot's own pictures when it has some,
after a title card; otherwise pictures drawn here with Pillow from what is known of the lot
(a facade and a floor plan for a flat or an office, a marked bay for a parking space, an
object card for anything else). Nothing is downloaded; everything is drawn at start-up.
Deterministic: the same facts give the same bytes.
"""

from __future__ import annotations

import hashlib
import io
import math
import re
from dataclasses import dataclass
from typing import Literal

from PIL import Image, ImageDraw

from streaming.overlay import load_font

WIDTH, HEIGHT = 960, 540

Kind = Literal["flat", "parking", "object"]

_PARKING = re.compile(r"parking|car ?park|garage|车位|车库", re.IGNORECASE)
_BUILDING = re.compile(
    r"\b(flat|apartment|house|villa|office|unit|shop|room|floor|building)\b|住宅|房|室|楼",
    re.IGNORECASE,
)
_AREA = re.compile(r"(\d+(?:\.\d+)?)\s*(?:m²|m2|sqm|平方米|平米)")


@dataclass(frozen=True, slots=True)
class LotFacts:
    """What the presentation knows of a lot. `pictures`: the lot's own pictures (PNG or JPEG
    bytes), shown as they are; `address`, `area_m2`, `kind` are read from the title when
    not given."""

    title: str
    address: str | None = None
    area_m2: float | None = None
    kind: Kind | None = None
    sale_title: str | None = None
    pictures: tuple[bytes, ...] = ()


def facts_of(view: object) -> LotFacts:
    """The facts of a lot view: its title and sale, and the property facts (address, area,
    pictures) where the view carries them."""
    title = str(getattr(view, "title", "") or "Lot")
    address = getattr(view, "address", None)
    area = getattr(view, "area_m2", None)
    pictures = getattr(view, "pictures", None) or ()
    return LotFacts(
        title=title,
        address=address if isinstance(address, str) and address else None,
        area_m2=float(area) if isinstance(area, int | float) and area > 0 else None,
        sale_title=getattr(view, "sale_title", None),
        pictures=tuple(p for p in pictures if isinstance(p, bytes)),
    )


def kind_of(facts: LotFacts) -> Kind:
    if facts.kind is not None:
        return facts.kind
    if _PARKING.search(facts.title):
        return "parking"
    if _BUILDING.search(facts.title):
        return "flat"
    return "object"


def area_of(facts: LotFacts) -> float | None:
    if facts.area_m2 is not None:
        return facts.area_m2
    match = _AREA.search(facts.title)
    return float(match.group(1)) if match else None


def address_of(facts: LotFacts) -> str:
    """The address line: the given one, else the title after its first comma."""
    if facts.address:
        return facts.address
    _, _, rest = facts.title.partition(",")
    return rest.strip()


def presentation_frames(facts: LotFacts) -> tuple[bytes, ...]:
    """The lot's presentation as PNG pictures, title card first."""
    pictures: list[Image.Image] = [_title_card(facts)]
    if facts.pictures:
        return (_png(pictures[0]), *facts.pictures)
    kind = kind_of(facts)
    if kind == "flat":
        pictures += [_facade(facts), _floor_plan(facts)]
    elif kind == "parking":
        pictures += [_parking(facts), _site_plan(facts)]
    else:
        pictures += [_object_card(facts)]
    return tuple(_png(picture) for picture in pictures)


# --- drawing -----------------------------------------------------------------------------------


def _png(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, format="PNG", optimize=False, compress_level=1)
    return out.getvalue()


def _hue(facts: LotFacts, salt: str) -> int:
    return hashlib.sha256((salt + facts.title).encode()).digest()[0]


def _tint(facts: LotFacts, salt: str, base: tuple[int, int, int]) -> tuple[int, int, int]:
    shift = _hue(facts, salt) % 40 - 20
    r, g, b = base
    return (max(0, min(255, r + shift)), max(0, min(255, g - shift // 2)), b)


def _fit(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _caption(image: Image.Image, facts: LotFacts, words: str) -> None:
    """A strip at the bottom: what the picture is, and the lot's title."""
    draw = ImageDraw.Draw(image)
    draw.rectangle((0, HEIGHT - 92, WIDTH, HEIGHT), fill=(20, 24, 32))
    draw.text((28, HEIGHT - 84), words, fill=(250, 210, 120), font=load_font(24))
    draw.text((28, HEIGHT - 50), _fit(facts.title, 70), fill=(235, 235, 235), font=load_font(22))


def _title_card(facts: LotFacts) -> Image.Image:
    image = Image.new("RGB", (WIDTH, HEIGHT), _tint(facts, "card", (28, 44, 70)))
    draw = ImageDraw.Draw(image)
    draw.rectangle((40, 40, WIDTH - 40, HEIGHT - 40), outline=(210, 180, 110), width=3)
    y = 110
    if facts.sale_title:
        draw.text((80, 70), _fit(facts.sale_title, 72), fill=(210, 180, 110), font=load_font(20))
    head, _, _ = facts.title.partition(",")
    draw.text((80, y), _fit(head, 34), fill=(255, 255, 255), font=load_font(48))
    address = address_of(facts)
    if address:
        draw.text((80, y + 80), _fit(address, 60), fill=(220, 225, 235), font=load_font(26))
    area = area_of(facts)
    if area is not None:
        draw.text((80, y + 130), f"Area {area:g} m²", fill=(220, 225, 235), font=load_font(26))
    draw.text(
        (80, HEIGHT - 110),
        "Bidding online: price and time left are shown on this picture",
        fill=(170, 180, 200),
        font=load_font(20),
    )
    return image


def _facade(facts: LotFacts) -> Image.Image:
    image = Image.new("RGB", (WIDTH, HEIGHT), (150, 190, 225))
    draw = ImageDraw.Draw(image)
    for row in range(0, 260, 4):  # sky, lighter towards the horizon
        shade = 150 + row // 4
        draw.rectangle((0, row, WIDTH, row + 4), fill=(shade, min(255, shade + 40), 235))
    draw.rectangle((0, 380, WIDTH, HEIGHT), fill=(110, 140, 90))  # lawn
    wall = _tint(facts, "wall", (200, 180, 160))
    floors = 6 + _hue(facts, "floors") % 5
    left, right, top = 250, 710, 380 - floors * 32
    draw.rectangle((left, top, right, 380), fill=wall, outline=(90, 80, 70), width=2)
    draw.rectangle((left - 10, top - 12, right + 10, top), fill=(90, 80, 70))
    lit = _hue(facts, "lit") % 7
    for floor in range(floors):
        for column in range(6):
            x = left + 22 + column * 74
            y = top + 8 + floor * 32
            glass = (250, 225, 140) if (floor * 6 + column) % 7 == lit else (70, 100, 130)
            draw.rectangle((x, y, x + 44, y + 20), fill=glass, outline=(60, 60, 60))
    draw.rectangle((455, 340, 505, 380), fill=(80, 60, 50))  # door
    for x in (120, 820):  # trees
        draw.rectangle((x - 6, 330, x + 6, 380), fill=(90, 60, 40))
        draw.ellipse((x - 45, 250, x + 45, 345), fill=(60, 120, 60))
    _caption(image, facts, "The building")
    return image


def _floor_plan(facts: LotFacts) -> Image.Image:
    image = Image.new("RGB", (WIDTH, HEIGHT), (246, 244, 236))
    draw = ImageDraw.Draw(image)
    for x in range(0, WIDTH, 24):  # drafting grid
        draw.line((x, 0, x, HEIGHT - 92), fill=(226, 230, 236))
    for y in range(0, HEIGHT - 92, 24):
        draw.line((0, y, WIDTH, y), fill=(226, 230, 236))
    wall = (40, 44, 52)
    x0, y0, x1, y1 = 150, 40, 810, 420
    split = 150 + 330 + _hue(facts, "plan") % 80
    rooms = (
        ((x0, y0, split, 250), "Living room"),
        ((split, y0, x1, 250), "Bedroom"),
        ((x0, 250, 400, y1), "Kitchen"),
        ((400, 250, 560, y1), "Bath"),
        ((560, 250, x1, y1), "Bedroom"),
    )
    font = load_font(20)
    for (a, b, c, d), name in rooms:
        draw.rectangle((a, b, c, d), outline=wall, width=6)
        draw.text((a + 16, b + 14), name, fill=(70, 70, 80), font=font)
    for a, b in ((300, 250), (480, 250), (650, 250), (split, 150)):  # doors
        draw.rectangle((a - 22, b - 4, a + 22, b + 4), fill=(246, 244, 236))
    area = area_of(facts)
    words = f"Floor plan · {area:g} m²" if area is not None else "Floor plan"
    _caption(image, facts, words)
    return image


def _parking(facts: LotFacts) -> Image.Image:
    image = Image.new("RGB", (WIDTH, HEIGHT), (78, 80, 84))
    draw = ImageDraw.Draw(image)
    for k in range(-1, 6):
        x = 80 + k * 170
        draw.line((x, 70, x, 400), fill=(235, 235, 225), width=6)
    bay = 80 + 2 * 170
    draw.rectangle((bay + 6, 70, bay + 164, 400), fill=(92, 110, 96))
    code = re.search(r"[A-Z]\d-?\d+", facts.title)
    label = code.group(0) if code else "Bay"
    draw.text((bay + 26, 330), label, fill=(255, 255, 255), font=load_font(34))
    car = _tint(facts, "car", (150, 40, 40))
    for k in (0, 1, 3, 4):  # neighbours' cars
        x = 80 + k * 170
        draw.rounded_rectangle((x + 24, 110, x + 146, 300), radius=26, fill=car)
        draw.rectangle((x + 40, 150, x + 130, 190), fill=(60, 70, 90))
    draw.rectangle((0, 0, WIDTH, 50), fill=(58, 60, 64))
    draw.text((30, 12), "Basement level 2", fill=(250, 210, 120), font=load_font(22))
    _caption(image, facts, "The parking space")
    return image


def _site_plan(facts: LotFacts) -> Image.Image:
    image = Image.new("RGB", (WIDTH, HEIGHT), (246, 244, 236))
    draw = ImageDraw.Draw(image)
    draw.rectangle((100, 60, 860, 420), outline=(40, 44, 52), width=5)
    chosen = _hue(facts, "site") % 16
    for k in range(16):
        x = 120 + (k % 8) * 90
        y = 80 if k < 8 else 300
        fill = (240, 190, 90) if k == chosen else (220, 224, 230)
        draw.rectangle((x, y, x + 76, y + 100), fill=fill, outline=(90, 90, 90), width=2)
    words = "Driveway  →  ramp to street level"
    draw.text((130, 222), words, fill=(70, 70, 80), font=load_font(22))
    _caption(image, facts, "Where it is: level plan")
    return image


def _object_card(facts: LotFacts) -> Image.Image:
    image = Image.new("RGB", (WIDTH, HEIGHT), _tint(facts, "obj", (60, 58, 66)))
    draw = ImageDraw.Draw(image)
    draw.ellipse((330, 60, 630, 360), fill=(210, 205, 190), outline=(120, 110, 90), width=10)
    draw.ellipse((350, 80, 610, 340), fill=(245, 242, 232))
    for tick in range(12):
        angle = tick * math.pi / 6
        x, y = 480 + 115 * math.sin(angle), 210 - 115 * math.cos(angle)
        draw.ellipse((x - 5, y - 5, x + 5, y + 5), fill=(60, 60, 60))
    draw.line((480, 210, 480, 130), fill=(40, 40, 40), width=6)
    draw.line((480, 210, 540, 240), fill=(40, 40, 40), width=4)
    _caption(image, facts, "The lot")
    return image
