"""The console's sale plan (`auction.sales.sale`), pure: what is refused, the staggered closes of
rules C12, a second auction, and a relisting below 70 % of the appraisal (lawful: the floor
of a relisting is 80 % of the last start price, rules C10)."""

from __future__ import annotations

from typing import Any

import pytest

from auction.rules import DAY, MINUTE, SECOND, CloseLot, LotState, OpenLot, apply, plan_relist
from auction.sales.sale import SaleError, SalePlan, plan_rules

NOW = 1_800_000_000 * SECOND


def body(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "sale": "s-1",
        "title": "Court sale",
        "start_at": NOW + MINUTE,
        "first_end": NOW + 2 * DAY,
        "interval_us": 30 * SECOND,
        "lots": [
            {"lot": f"l-{n}", "title": f"Flat {n}", "start_price": 70_000_000,
             "step": 100_000, "appraisal": 100_000_000}
            for n in (1, 2, 3)
        ],
    }  # fmt: skip
    return base | changes


def test_closes_are_staggered_in_catalogue_order() -> None:
    rules = plan_rules(SalePlan.parse(body()), NOW)
    assert [r.end_at - NOW for r in rules] == [2 * DAY, 2 * DAY + 30 * SECOND, 2 * DAY + MINUTE]
    assert {r.start_at for r in rules} == {NOW + MINUTE}
    assert {r.relist_count for r in rules} == {0}


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"interval_us": 0}, "one after the other"),
        ({"interval_us": 601 * SECOND}, "one after the other"),
        ({"lots": []}, "1 to 50 lots"),
        ({"sale": "a b"}, "the sale id"),
        ({"first_end": NOW}, "end after the sale starts"),
        ({"round": 3}, "round must be 1"),
        ({"round": 2, "preset": "ENGLISH_TIMED"}, "only a judicial sale"),
        ({"currency": "yuan"}, "three-letter code"),
    ],
)
def test_a_bad_plan_is_refused_in_words(changes: dict[str, Any], words: str) -> None:
    with pytest.raises(SaleError) as caught:
        SalePlan.parse(body(**changes))
    assert words in caught.value.message


def test_duplicate_lots_a_past_start_and_a_short_lot_are_refused() -> None:
    lots = body()["lots"]
    with pytest.raises(SaleError, match="same id"):
        SalePlan.parse(body(lots=[lots[0], lots[0]]))
    with pytest.raises(SaleError, match="in the future"):
        plan_rules(SalePlan.parse(body(start_at=NOW - 1)), NOW)
    with pytest.raises(SaleError, match="not valid"):  # judicial: 24 h at least by default
        plan_rules(SalePlan.parse(body(first_end=NOW + 2 * MINUTE)), NOW)


def test_a_relisting_may_start_below_70_percent_of_the_appraisal() -> None:
    rules = plan_rules(SalePlan.parse(body()), NOW)[0]
    state = LotState.create("l-1", rules)
    state, _ = apply(state, OpenLot(), rules.start_at)
    state, _ = apply(state, CloseLot(), rules.end_at)
    assert state.status.value == "FAILED"
    later = rules.end_at + DAY
    plan = plan_relist(
        state,
        start_price=56_000_000,  # 80 % of 70 % of the appraisal
        start_at=later + 15 * DAY,
        end_at=later + 16 * DAY,
        now=later,
    )
    assert plan.rules.start_price == 56_000_000 and plan.rules.relist_count == 1


def test_a_second_auction_fails_into_the_fixed_price_sale() -> None:
    rules = plan_rules(SalePlan.parse(body(round=2)), NOW)[0]
    assert rules.relist_count == 1
    state = LotState.create("l-1", rules)
    state, _ = apply(state, OpenLot(), rules.start_at)
    state, _ = apply(state, CloseLot(), rules.end_at)
    plan = plan_relist(
        state,
        start_price=rules.start_price,
        start_at=rules.end_at + SECOND,
        end_at=rules.end_at + 60 * DAY,
        now=rules.end_at,
    )
    assert plan.rules.format.value == "FIXED_PRICE_SALE"
