"""The living demo's schedule (`auction.demo.schedule`): a pure function of time, table-tested."""

from __future__ import annotations

import random

import pytest

from auction.demo.lots import property_lot, property_title
from auction.demo.schedule import (
    MINUTE,
    SECOND,
    LotSpec,
    Pace,
    Property,
    Stream,
    bid_chance,
    bidders_for,
    budget_steps,
    next_announcement,
    on_time,
    schedule,
)
from auction.rules import Format

START = 1_760_000_000 * SECOND
HOUR = 60 * MINUTE


def _open_court(specs: tuple[LotSpec, ...], now: int) -> list[LotSpec]:
    return [s for s in specs if s.stream is Stream.COURT and s.start_at <= now < s.end_at]


def _ring_now(specs: tuple[LotSpec, ...], now: int) -> list[LotSpec]:
    return [s for s in specs if s.stream is Stream.RING and s.start_at <= now < s.end_at]


@pytest.mark.parametrize("speed", [1.0, 30.0])
@pytest.mark.parametrize("minutes", [1, 60, 300])
def test_a_newcomer_finds_an_open_property_lot_an_upcoming_lot_and_the_ring(
    speed: float, minutes: int
) -> None:
    pace = Pace.at(speed)
    now = START + round(minutes * MINUTE / speed)
    specs = schedule(now, START, 7, pace)
    open_court = _open_court(specs, now)
    assert open_court, specs
    left = max(s.end_at - now for s in open_court)
    assert left > 2 * MINUTE / speed
    for spec in open_court:
        assert spec.currency == "CNY" and spec.property.kind in ("flat", "parking space")
    upcoming = [s for s in specs if s.start_at > now]
    assert {s.stream for s in upcoming} == {Stream.COURT, Stream.RING}
    (ring,) = _ring_now(specs, now)  # exactly one lot has the ring
    assert ring.warn_by is not None and ring.start_at < ring.warn_by < ring.end_at
    assert ring.warn_by + ring.dwell < ring.end_at  # the hammer falls before the next lot
    assert len({s.lot_id for s in specs}) == len(specs)


@pytest.mark.parametrize("speed", [1.0, 30.0])
def test_at_every_moment_of_five_hours_the_invariants_hold(speed: float) -> None:
    pace = Pace.at(speed)
    step = round(7 * SECOND / speed)
    first = START + max(pace.court_first, pace.ring_first)
    for now in range(first, START + round(5 * HOUR / speed), step):
        specs = schedule(now, START, 3, pace)
        assert max(s.end_at - now for s in _open_court(specs, now)) >= pace.court_period
        assert len(_ring_now(specs, now)) == 1
        assert any(s.start_at > now for s in specs)


def test_ids_are_unique_and_slots_regular_over_a_long_run() -> None:
    pace = Pace.at(1)
    now = START + 5 * HOUR
    everything = schedule(now, START, 11, pace, since=START)
    ids = [s.lot_id for s in everything]
    assert len(ids) == len(set(ids))
    court = sorted((s for s in everything if s.stream is Stream.COURT), key=lambda s: s.index)
    ring = sorted((s for s in everything if s.stream is Stream.RING), key=lambda s: s.index)
    assert [s.index for s in court] == list(range(len(court))) and len(court) == 63
    assert [s.index for s in ring] == list(range(len(ring))) and len(ring) == 104
    for a, b in zip(ring, ring[1:], strict=False):
        assert b.start_at == a.end_at and b.previous == a.lot_id  # the ring never overlaps
    assert {s.sale_id for s in ring} == {f"ldn-live-{n:03d}" for n in range(1, 7)}
    for spec in court:
        assert 10 * MINUTE <= spec.end_at - spec.start_at <= 15 * MINUTE
        assert spec.window == MINUTE and spec.start_at - spec.announce_at == 15 * MINUTE
    # the window of `now` is exactly the lots of the long list not over by `now`
    assert schedule(now, START, 11, pace) == tuple(s for s in everything if s.end_at > now)


def test_the_schedule_is_deterministic_for_a_seed() -> None:
    pace = Pace.at(1)
    now = START + 2 * HOUR
    assert schedule(now, START, 5, pace) == schedule(now, START, 5, pace)
    other = schedule(now, START, 6, pace)
    assert [s.lot_id for s in other] == [s.lot_id for s in schedule(now, START, 5, pace)]
    assert other != schedule(now, START, 5, pace)  # same slots, other lots
    assert schedule(START - 1, START, 5, pace) == ()


def test_demand_varies_and_some_lots_draw_nobody() -> None:
    specs = schedule(START + 24 * HOUR, START, 1, Pace.at(1), since=START)
    court = [s for s in specs if s.stream is Stream.COURT]
    nobody = sum(s.bidders == 0 for s in court) / len(court)
    assert 0.08 < nobody < 0.25
    assert {s.bidders for s in court} == {0, 1, 2, 3, 4}
    for spec in specs[:50]:
        chosen = bidders_for(spec, 5)
        assert len(chosen) == min(spec.bidders, 5) and chosen <= set(range(5))
        assert chosen == bidders_for(spec, 5)
        assert all(0 <= budget_steps(spec, bot) <= spec.ceiling for bot in chosen)


def test_every_slot_makes_valid_rules_with_realistic_steps() -> None:
    specs = schedule(START + 24 * HOUR, START, 2, Pace.at(1), since=START)
    assert len(specs) > 700
    for spec in specs:
        lot = property_lot(spec)  # the engine's presets accept every slot
        rules = lot.rules
        assert rules.start_at == spec.start_at and rules.currency == spec.currency
        if spec.stream is Stream.COURT:
            assert rules.format is Format.JUDICIAL_CN and rules.currency == "CNY"
            assert spec.property.appraisal is not None
            assert spec.start_price * 100 >= 70 * spec.property.appraisal  # rules C19
            assert spec.step <= spec.start_price // 50  # at most 2 % of the start price
            assert rules.end_at == spec.end_at and rules.soft_close.window == spec.window
        else:
            assert rules.format is Format.LIVE_AUCTIONEER and rules.currency == "GBP"
            assert spec.step <= spec.start_price // 10
            assert rules.fair_warning_dwell >= 2 * SECOND  # rules C14
        assert spec.property.place in lot.title


def test_the_showcase_titles_come_from_the_same_construction() -> None:
    flat = Property("flat", "Wenyi West Road, Hangzhou", "1502", "3", 89)
    assert property_title(flat) == "Flat 1502, 89 m², Building 3, Wenyi West Road, Hangzhou"
    parking = Property("parking space", "Lvcheng Xixi Garden, Xihu District", "B2-117")
    assert property_title(parking) == "Parking space B2-117, Lvcheng Xixi Garden, Xihu District"


def test_a_late_lot_opens_now_or_is_skipped() -> None:
    pace = Pace.at(1)
    spec = schedule(START + MINUTE, START, 4, pace)[0]
    assert spec.stream is Stream.COURT and spec.start_at < START + MINUTE
    assert on_time(spec, spec.start_at - 1, pace) == spec
    late = on_time(spec, spec.start_at + 3 * MINUTE, pace)
    assert late is not None and late.start_at == spec.start_at + 3 * MINUTE
    assert late.end_at == spec.end_at and late.lot_id == spec.lot_id
    assert on_time(spec, spec.end_at - spec.window, pace) is None
    ring = next(s for s in schedule(START + MINUTE, START, 4, pace) if s.stream is Stream.RING)
    assert ring.warn_by is not None
    assert on_time(ring, ring.start_at + SECOND, pace) == ring
    assert on_time(ring, ring.warn_by, pace) is None


def test_the_next_announcement_is_the_next_lot() -> None:
    pace = Pace.at(1)
    now = START + 37 * MINUTE + 11 * SECOND
    wake = next_announcement(now, START, pace)
    assert wake > now
    before = {s.lot_id for s in schedule(wake - 1, START, 9, pace, since=START)}
    after = {s.lot_id for s in schedule(wake, START, 9, pace, since=START)}
    assert len(after - before) == 1
    assert before == {s.lot_id for s in schedule(now, START, 9, pace, since=START)}


def test_bots_bid_more_as_the_end_nears() -> None:
    window = MINUTE
    chances = [bid_chance(left, window) for left in (30 * MINUTE, 3 * MINUTE, 30 * SECOND)]
    assert chances == sorted(chances) and chances[0] < 0.1 and chances[-1] > 0.5
    rng = random.Random(1)
    looks = sum(rng.random() < bid_chance(10 * MINUTE, window) for _ in range(1000))
    assert looks < 100  # a bot that looks every few seconds bids a few times a minute at most


@pytest.mark.parametrize("speed", [0.5, 0, 1001, float("nan")])
def test_a_speed_out_of_range_is_refused(speed: float) -> None:
    with pytest.raises(ValueError, match="within 1..1000"):
        Pace.at(speed)


def test_the_compressed_pace_keeps_the_rules_seconds() -> None:
    pace = Pace.at(30)
    assert pace.court_period == 10 * SECOND and pace.ring_period == 10 * SECOND
    assert pace.dwell == 2 * SECOND  # rules C14: never below 2 s
    assert pace.ring_least + pace.dwell + pace.ring_gap < pace.ring_period
    fast = Pace.at(1000)
    assert fast.ring_period == 10 * SECOND and fast.window >= SECOND
