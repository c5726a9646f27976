"""Rules C5 (with C7): who leads and at what price, from the bidders' standing maxima.

Pure functions over `Bidder` values. `resolve` is the full O(n) computation; `after_raise` is
the O(1) update used on the hot path when one bidder's maximum goes up.
"""

from __future__ import annotations

from collections.abc import Mapping

from .config import LotRules
from .lot import Bidder


def tie_key(bidder: Bidder, priority_rights: bool) -> tuple[int, int, int, int]:
    """The ordering key without the amount: who wins at an equal amount (rules C7)."""
    return bidder.key(priority_rights)[1:]


def resolve(bidders: Mapping[str, Bidder], rules: LotRules) -> tuple[str | None, str | None]:
    """Return (leader, runner-up) among bidders with a standing maximum ≥ P0."""
    priority = rules.priority_rights
    ranked = sorted(
        (b.key(priority), b.bidder)
        for b in bidders.values()
        if b.max is not None and b.max.amount >= rules.start_price and not b.barred
    )
    leader = ranked[0][1] if ranked else None
    runner_up = ranked[1][1] if len(ranked) > 1 else None
    return leader, runner_up


def after_raise(
    bidders: Mapping[str, Bidder],
    rules: LotRules,
    leader: str | None,
    runner_up: str | None,
    raised: str,
) -> tuple[str | None, str | None]:
    """(leader, runner-up) after `raised`'s maximum went up (or was first set)."""
    priority = rules.priority_rights
    new = bidders[raised]
    if new.max is None or new.max.amount < rules.start_price:
        return leader, runner_up
    if leader is None:
        return raised, runner_up
    if raised == leader:
        return leader, runner_up
    key = new.key(priority)
    if key < bidders[leader].key(priority):
        return raised, leader
    if runner_up is None or runner_up == raised:
        return leader, raised
    if key < bidders[runner_up].key(priority):
        return leader, raised
    return leader, runner_up


def price_for(
    bidders: Mapping[str, Bidder], rules: LotRules, leader: str | None, runner_up: str | None
) -> int | None:
    """Rules C5 price formula, with the C7 priority match and the hidden reserve: while the
    leader's max is below the reserve the price is that max (clarification 2)."""
    if leader is None:
        return None
    start = rules.start_price
    top = bidders[leader]
    assert top.max is not None
    leader_max = top.max.amount
    if runner_up is None:
        price = start
    else:
        other = bidders[runner_up]
        assert other.max is not None
        second = other.max.amount
        if (
            rules.priority_rights
            and top.priority_rank is not None
            and tie_key(top, True) < tie_key(other, True)
        ):
            price = max(start, second)  # C7: the holder only has to match
        else:
            price = max(start, min(leader_max, rules.increment.step_above(start, second)))
    if top.max.flat:
        price = max(price, leader_max)
    reserve = rules.reserve
    if reserve is not None:
        price = max(price, reserve) if leader_max >= reserve else leader_max
    return price
