"""The living demo's schedule: which lots exist when, as a pure function of time.

`schedule(now, start, seed, pace)` gives every lot announced by `now` (in the catalogue, upcoming
or open) whose slot has not ended: two streams of property lots, each slot's details drawn from
a random generator seeded by `(seed, stream, slot)`, so the same arguments always give the same
lots and a restart on the same data finds the lots it already created by their ids.

* **Court-ordered property** (`JUDICIAL_CN`, CNY): a new flat or parking space opens every
  `court_period` (5 min at speed 1), announced three periods ahead, open for two to three
  periods with a soft close (rules C6). The lot opened last therefore always has at least one
  period to go, and the next is always announced.
* **A live property auction** (`LIVE_AUCTIONEER`, GBP): the auctioneer brings a new lot into
  the ring every `ring_period` (3 min at speed 1); each lot must have had its fair warning by
  `warn_by` so that the hammer falls before the next one comes up. Twenty lots make a sale.

`Pace.at(speed)` divides every period by `speed` (tests run the demo thirty times faster), with
floors where a rule needs real seconds (the fair-warning dwell of rules C14 is at least 2 s).
Each slot also says how many of the demo's bots want the lot and how far they go
(`bidders`, `ceiling`): some lots draw nobody and fail, some sell at the start price to a lone
bidder, others see a bidding war into the soft close. Times are UTC microseconds; money is in
minor units. No I/O, no clock: `now` is a parameter.
"""

from __future__ import annotations

import enum
import math
import random
from dataclasses import dataclass, replace

SECOND = 1_000_000
MINUTE = 60 * SECOND


class Stream(enum.StrEnum):
    COURT = "court"  # court-ordered property, judicial rules, CNY
    RING = "ring"  # a live property auction in the auctioneer's ring, GBP


@dataclass(frozen=True, slots=True)
class Pace:
    """The schedule's periods (µs) at a `speed`, and how fast the bots and the clerk act (s)."""

    speed: float
    court_first: int  # the first court lot opens this long after the demo's start
    court_period: int  # a new court lot opens every period ...
    court_lead: int  # ... announced this long before it opens ...
    court_open_min: int  # ... and stays open this long,
    court_open_max: int  # at most this long (before soft-close extensions)
    window: int  # soft close W = E (rules C6)
    ring_first: int
    ring_period: int  # the next lot comes up in the ring every period
    ring_lead: int
    dwell: int  # fair warning to hammer (rules C14: 2..5 s)
    ring_gap: int  # between the hammer and the next lot
    ring_quiet: int  # the auctioneer warns after this long without a new bid ...
    ring_least: int  # ... once the lot has been in the ring this long
    session_lots: int  # lots per live sale
    bot_pause: tuple[float, float]  # seconds between a bot's looks at its lots
    clerk_tick: float  # seconds between the auctioneer's looks at the ring

    @classmethod
    def at(cls, speed: float = 1.0) -> Pace:
        """The periods at `speed` (1: real minutes; 30: thirty times faster). Raises
        `ValueError` for a speed below 1 or above 1000."""
        if not 1 <= speed <= 1000 or math.isnan(speed):
            raise ValueError("the schedule's speed must be within 1..1000")

        def scaled(base: int, floor: int) -> int:
            return max(floor, round(base / speed))

        court_period = scaled(5 * MINUTE, 4 * SECOND)
        ring_period = scaled(3 * MINUTE, 10 * SECOND)
        dwell = 3 * SECOND if speed < 1.5 else 2 * SECOND
        ring_gap = scaled(20 * SECOND, 3 * SECOND // 2)
        return cls(
            speed=speed,
            court_first=scaled(20 * SECOND, SECOND // 2),
            court_period=court_period,
            court_lead=3 * court_period,
            court_open_min=2 * court_period,
            court_open_max=3 * court_period,
            window=max(SECOND, court_period // 5),
            ring_first=scaled(30 * SECOND, SECOND),
            ring_period=ring_period,
            ring_lead=4 * ring_period,
            dwell=dwell,
            ring_gap=ring_gap,
            ring_quiet=scaled(12 * SECOND, 3 * SECOND // 5),
            ring_least=min(scaled(45 * SECOND, 3 * SECOND // 2), ring_period // 3),
            session_lots=20,
            bot_pause=(max(0.25, 3.0 / speed), max(0.5, 12.0 / speed)),
            clerk_tick=max(0.1, min(0.5, 5.0 / speed)),
        )


@dataclass(frozen=True, slots=True)
class Property:
    """What is sold: the facts a lot's title (and page) are made of."""

    kind: str  # "flat", "parking space", "house", "garage", "land"
    place: str  # "Wenyi West Road, Hangzhou"
    unit: str | None = None  # "1502", "B2-117"
    building: str | None = None
    area_m2: int | None = None
    appraisal: int | None = None  # minor units (the court's appraisal or a guide price)
    seller: str = ""  # the court or the auction house


@dataclass(frozen=True, slots=True)
class LotSpec:
    """One lot of the schedule (or of the showcase), ready for `demo_lots.property_lot`."""

    lot_id: str
    sale_id: str
    sale_title: str
    stream: Stream
    index: int  # the slot number in its stream, from 0
    property: Property
    currency: str
    start_price: int
    step: int
    deposit: int  # live lots: the registration hold; court lots: 0 (the preset's percentage)
    announce_at: int  # when the lot appears in the catalogue
    start_at: int  # court: opens; ring: comes up in the ring
    end_at: int  # court: planned end (before extensions); ring: the next lot comes up
    window: int  # court: soft close W = E; ring: 0
    warn_by: int | None  # ring: fair warning no later than this
    dwell: int  # ring: fair warning to hammer
    bidders: int  # how many of the bots want the lot (0: nobody bids, it fails)
    ceiling: int  # the most steps above the start price a bot goes to
    room: int  # ring: the most steps above the start the room (floor) bids; 0: no room bids
    previous: str | None  # ring: the lot before this one in the ring


# --- the places (synthetic) ------------------------------------------------------------------

#: Hangzhou courts: (sale id, court, district, compounds, CNY per m² low..high).
COURTS = (
    ("hz-court-xihu", "Hangzhou Xihu District People's Court", "Xihu",
     ("Xixi Garden", "Cuiyuan Fourth Estate", "Wenxin Garden", "Zijingang Court"),
     (45_000, 68_000)),
    ("hz-court-binjiang", "Hangzhou Binjiang District People's Court", "Binjiang",
     ("Jiangnan Residence", "Baimahu Garden", "Binjiang Riverside", "Changhe Court"),
     (42_000, 62_000)),
    ("hz-court-gongshu", "Hangzhou Gongshu District People's Court", "Gongshu",
     ("Daguan Garden", "Xiaohe Apartments", "Canal Bay", "Banshan Court"),
     (36_000, 52_000)),
)  # fmt: skip

#: London streets of the live auction (synthetic numbers).
LONDON_PLACES = (
    "Albion Road, London N16",
    "Lordship Lane, London SE22",
    "Holloway Road, London N7",
    "Cricklewood Broadway, London NW2",
    "Mile End Road, London E1",
    "Peckham Rye, London SE15",
    "Tooting High Street, London SW17",
    "Mare Street, Hackney, London E8",
)
AUCTION_HOUSE = "Thameside Property Auctions, London"


def nice_step(limit: int, steps: tuple[int, ...]) -> int:
    """The largest of `steps` (ascending) not above `limit`, or the smallest."""
    best = steps[0]
    for step in steps:
        if step <= limit:
            best = step
    return best


def _at_least_70_percent(appraisal: int, unit: int) -> int:
    """The start price of a first judicial auction: 70 % of the appraisal, rounded up to
    `unit` (rules C19: never below 70 %)."""
    return -(-appraisal * 70 // (100 * unit)) * unit


def _rng(seed: int, stream: Stream, index: int, part: str = "") -> random.Random:
    # A string seed is hashed with SHA-512 (random.seed version 2): the same in every process.
    return random.Random(f"gavel-demo:{seed}:{stream.value}:{index}:{part}")


def _demand(rng: random.Random, fail: float, weights: tuple[int, ...]) -> int:
    """How many bots want a lot: none with probability `fail`, else 1.. by `weights`."""
    if rng.random() < fail:
        return 0
    return rng.choices(range(1, len(weights) + 1), weights)[0]


# --- the two streams ---------------------------------------------------------------------------


def court_lot(index: int, start: int, seed: int, pace: Pace) -> LotSpec:
    """Slot `index` of the court-ordered property stream."""
    rng = _rng(seed, Stream.COURT, index)
    sale_id, court, district, compounds, per_m2 = COURTS[index % len(COURTS)]
    compound = rng.choice(compounds)
    place = f"{compound}, {district} District, Hangzhou"
    yuan = 100  # minor units
    if rng.random() < 0.7:
        area = rng.randint(48, 140)
        appraisal = area * rng.randint(*per_m2) // 10_000 * 10_000 * yuan
        facts = Property(
            "flat", place, f"{rng.randint(2, 28)}0{rng.randint(1, 4)}",
            str(rng.randint(1, 18)), area, appraisal, court,
        )  # fmt: skip
        start_price = _at_least_70_percent(appraisal, 1_000 * yuan)
        limit = start_price // 200  # 0.5 %
    else:
        appraisal = rng.randint(120, 380) * 1_000 * yuan
        unit = f"B{rng.randint(1, 2)}-{rng.randint(1, 380):03d}"
        facts = Property("parking space", place, unit, None, None, appraisal, court)
        start_price = _at_least_70_percent(appraisal, 1_000 * yuan)
        limit = start_price // 100  # 1 %
    step = nice_step(limit, tuple(s * yuan for s in (500, 1_000, 2_000, 5_000, 10_000, 20_000)))
    opens = start + pace.court_first + index * pace.court_period
    tenths = rng.randint(0, 10)
    duration = pace.court_open_min + (pace.court_open_max - pace.court_open_min) * tenths // 10
    return LotSpec(
        lot_id=f"hz-lot-{index + 1:04d}",
        sale_id=sale_id,
        sale_title=f"{court}: judicial sales of property by court order",
        stream=Stream.COURT,
        index=index,
        property=facts,
        currency="CNY",
        start_price=start_price,
        step=step,
        deposit=0,
        announce_at=opens - pace.court_lead,
        start_at=opens,
        end_at=opens + duration,
        window=pace.window,
        warn_by=None,
        dwell=0,
        bidders=_demand(rng, 0.15, (20, 35, 30, 15)),
        ceiling=rng.randint(3, 40),
        room=0,
        previous=None,
    )


def ring_lot(index: int, start: int, seed: int, pace: Pace) -> LotSpec:
    """Slot `index` of the live auction's ring."""
    rng = _rng(seed, Stream.RING, index)
    pound = 100
    place = f"{rng.randint(2, 240)} {rng.choice(LONDON_PLACES)}"
    kind = rng.choices(("flat", "house", "garage", "land"), (45, 20, 20, 15))[0]
    low, high = {"flat": (180, 520), "house": (350, 900), "garage": (15, 45), "land": (40, 250)}[
        kind
    ]
    guide = rng.randint(low, high) * 1_000 * pound
    area = {"flat": rng.randint(35, 95), "house": rng.randint(70, 160), "land": 0, "garage": 0}
    area["land"] = rng.randint(150, 2_400)
    unit = str(rng.randint(1, 24)) if kind in ("flat", "garage") else None
    facts = Property(kind, place, unit, None, area[kind] or None, guide, AUCTION_HOUSE)
    rounding = 1_000 * pound if guide < 100_000 * pound else 5_000 * pound
    start_price = max(rounding, guide * 80 // 100 // rounding * rounding)
    step = nice_step(
        start_price // 40, tuple(s * pound for s in (500, 1_000, 2_500, 5_000, 10_000))
    )
    opens = start + pace.ring_first + index * pace.ring_period
    session = index // pace.session_lots
    bidders = _demand(rng, 0.15, (20, 35, 30, 15))
    room = 0 if bidders == 0 or rng.random() < 0.5 else rng.randint(1, 6)
    return LotSpec(
        lot_id=f"ldn-lot-{index + 1:04d}",
        sale_id=f"ldn-live-{session + 1:03d}",
        sale_title=f"{AUCTION_HOUSE}: live auction no. {session + 1}",
        stream=Stream.RING,
        index=index,
        property=facts,
        currency="GBP",
        start_price=start_price,
        step=step,
        deposit=2_000 * pound,
        announce_at=opens - pace.ring_lead,
        start_at=opens,
        end_at=opens + pace.ring_period,
        window=0,
        warn_by=opens + pace.ring_period - pace.dwell - pace.ring_gap,
        dwell=pace.dwell,
        bidders=bidders,
        ceiling=rng.randint(2, 12),
        room=room,
        previous=f"ldn-lot-{index:04d}" if index > 0 else None,
    )


def _slots(
    first: int, period: int, lead: int, longest: int, start: int, since: int, now: int
) -> range:
    """The slot numbers announced by `now` that may not have ended by `since`."""
    base = start + first
    last = (now + lead - base) // period  # announced: base + k·period - lead <= now
    earliest = max(0, (since - longest - base) // period)  # ended: base + k·period + longest
    return range(earliest, last + 1)


def schedule(
    now: int, start: int, seed: int, pace: Pace | None = None, since: int | None = None
) -> tuple[LotSpec, ...]:
    """Every lot announced by `now` whose slot has not ended by `since` (default `now`): the
    upcoming and open lots a catalogue should have at `now` (with `since=start`, every lot of
    the run so far). Ordered by announcement, then id."""
    pace = pace or Pace.at(1.0)
    since = now if since is None else since
    if now < start:
        return ()
    specs: list[LotSpec] = []
    court = _slots(
        pace.court_first, pace.court_period, pace.court_lead, pace.court_open_max,
        start, since, now,
    )  # fmt: skip
    specs.extend(court_lot(k, start, seed, pace) for k in court)
    ring = _slots(pace.ring_first, pace.ring_period, pace.ring_lead, pace.ring_period,
                  start, since, now)  # fmt: skip
    specs.extend(ring_lot(k, start, seed, pace) for k in ring)
    chosen = [s for s in specs if s.announce_at <= now and s.end_at > since]
    return tuple(sorted(chosen, key=lambda s: (s.announce_at, s.lot_id)))


def next_announcement(now: int, start: int, pace: Pace) -> int:
    """When the next lot after `now` is announced (the adapter sleeps until then)."""
    times = []
    for first, period, lead in (
        (pace.court_first, pace.court_period, pace.court_lead),
        (pace.ring_first, pace.ring_period, pace.ring_lead),
    ):
        base = start + first - lead
        k = max(0, (now - base) // period + 1)
        times.append(base + k * period)
    return min(times)


def on_time(spec: LotSpec, now: int, pace: Pace) -> LotSpec | None:
    """`spec` as it can still be created at `now`, or None when it is too late (the demo was
    not running during its slot). A court lot whose opening has passed opens now, if at least
    two soft-close windows of it are left; a ring lot can come up until a minimum time in the
    ring before its `warn_by`."""
    if spec.stream is Stream.RING:
        assert spec.warn_by is not None
        return spec if now <= spec.warn_by - pace.ring_least else None
    if spec.start_at > now:
        return spec
    opens = now
    if spec.end_at - opens < 2 * spec.window:
        return None
    return replace(spec, start_at=opens)


# --- the bots' part ----------------------------------------------------------------------------


def bidders_for(spec: LotSpec, bots: int) -> frozenset[int]:
    """Which of `bots` bots (by index) want the lot."""
    rng = _rng(0, spec.stream, spec.index, f"bidders:{spec.lot_id}")
    return frozenset(rng.sample(range(bots), min(spec.bidders, bots)))


def budget_steps(spec: LotSpec, bot: int) -> int:
    """How many steps above the start price bot `bot` goes on the lot (at least 0: the start)."""
    rng = _rng(0, spec.stream, spec.index, f"budget:{spec.lot_id}:{bot}")
    return rng.randint(0, spec.ceiling)


def bid_chance(left: int, window: int) -> float:
    """How likely a bot that wants a timed lot bids when it looks, with `left` µs to go: rarely
    while the lot has long to run, more as the end nears, most within the soft-close window
    (where a judicial sale's bidding happens, each bid extending the end)."""
    if left <= window:
        return 0.7
    if left <= 3 * window:
        return 0.35
    return 0.06


def jump_steps(rng: random.Random) -> int:
    """How many steps a bot bids above the current price: usually one, sometimes two or three."""
    return rng.choices((1, 2, 3), (80, 15, 5))[0]
