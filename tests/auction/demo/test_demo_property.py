"""The living demo's lots carry what a buyer reads: facts, pictures drawn for that property,
and for court lots the announcement and bidding notice with the lot's own numbers."""

from __future__ import annotations

import pytest

from auction.catalogue.facts import check_facts, check_upload
from auction.demo.lots import property_lot
from auction.demo.property import property_facts
from auction.demo.schedule import Pace, court_lot, ring_lot
from auction.words import money

START = 1_800_000_000_000_000
PACE = Pace.at(1.0)


@pytest.mark.parametrize("index", range(12))
def test_every_court_lot_has_pictures_an_announcement_and_a_notice(index: int) -> None:
    spec = court_lot(index, START, 7, PACE)
    rules = property_lot(spec).rules
    facts, files = property_facts(spec, rules)
    assert check_facts(facts)["address"].endswith(spec.property.place)
    kinds = [item.kind for item in files]
    assert "picture" in kinds and "announcement" in kinds and "notice" in kinds
    uploads = {item.kind: check_upload(item.kind, item.name, item.make()) for item in files}
    announcement = uploads["announcement"].data.decode()
    assert money(rules.start_price, "CNY") in announcement
    assert money(rules.deposit, "CNY") in announcement
    assert spec.property.seller in announcement
    assert "{" not in announcement and "{" not in uploads["notice"].data.decode()


@pytest.mark.parametrize("index", range(12))
def test_every_ring_lot_has_a_picture_and_no_court_documents(index: int) -> None:
    spec = ring_lot(index, START, 7, PACE)
    facts, files = property_facts(spec, property_lot(spec).rules)
    assert check_facts(facts)["property_kind"]
    assert [item.kind for item in files] == ["picture"] * len(files) and files
    for item in files:
        check_upload(item.kind, item.name, item.make())


def test_pictures_differ_between_lots_and_repeat_for_the_same_lot() -> None:
    first, second = court_lot(0, START, 7, PACE), court_lot(1, START, 7, PACE)
    draw = lambda spec: property_facts(spec, property_lot(spec).rules)[1][0].make()  # noqa: E731
    assert draw(first) == draw(first)
    assert draw(first) != draw(second)
