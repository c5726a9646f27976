"""The bid path's shortcuts answer exactly like the full checks: a bid or maximum refused by
the one-expression gate gets the rejection the full gate names, and a bid or maximum built by
its fast `__init__` is the same value, with the same errors, as the dataclass would build."""

from __future__ import annotations

import dataclasses
import inspect
import pickle
from collections.abc import Callable
from typing import Any

import pytest
from rules_kit import END, Lot, english_rules, judicial_rules

from auction import rules as r
from auction.rules.formats.timed import bid_gate

RR = r.RejectReason


def _english(**overrides: Any) -> Lot:
    lot = Lot(english_rules(**overrides))
    for name in ("a", "b"):
        lot.bidder(name)
    return lot


def _judicial() -> Lot:
    lot = Lot(judicial_rules())
    lot.bidder("a")
    lot.bidder("b")
    lot.bidder("unpaid", frozen=False)
    lot.open()
    return lot


def _scheduled() -> tuple[Lot, int]:
    return _english(), 1


def _paused() -> tuple[Lot, int]:
    lot = _english()
    lot.open()
    lot.ok(r.Pause("court order"), 5)
    return lot, 6


def _at_end() -> tuple[Lot, int]:
    lot = _english()
    lot.open()
    return lot, END


def _closed() -> tuple[Lot, int]:
    lot = _english()
    lot.open()
    lot.ok(r.CloseLot(), END)
    return lot, END + 1


def _before_start() -> tuple[Lot, int]:
    lot = _english(start_at=1_000)
    lot.open(1_000)
    return lot, 999


def _barred() -> tuple[Lot, int]:
    lot = _english()
    lot.ok(r.BarBidder("a", "staff of the auction house"), 0)
    lot.open()
    return lot, 1


def _barred_by_rules() -> tuple[Lot, int]:
    lot = _english()
    lot.open()
    lot.state = lot.state.evolve(
        rules=dataclasses.replace(lot.state.rules, barred=frozenset({"a"}))
    )
    return lot, 1


def _open() -> tuple[Lot, int]:
    lot = _english()
    lot.open()
    return lot, 1


CASES: dict[str, tuple[Callable[[], tuple[Lot, int]], str, str, RR]] = {
    # name: (lot, bidder, currency, the reason the full gate gives)
    "scheduled": (_scheduled, "a", "USD", RR.NOT_OPEN),
    "paused": (_paused, "a", "USD", RR.SUSPENDED),
    "at the end": (_at_end, "a", "USD", RR.LATE),
    "closed": (_closed, "a", "USD", RR.LATE),
    "before the start": (_before_start, "a", "USD", RR.NOT_OPEN),
    "wrong currency": (_open, "a", "EUR", RR.WRONG_CURRENCY),
    "not registered": (_open, "nobody", "USD", RR.NOT_REGISTERED),
    "barred": (_barred, "a", "USD", RR.BARRED),
    "barred by the lot's rules": (_barred_by_rules, "a", "USD", RR.BARRED),
}


@pytest.mark.parametrize("kind", [r.PlaceBid, r.SetMax], ids=lambda k: k.__name__)
@pytest.mark.parametrize("case", CASES, ids=str)
def test_a_refused_bid_gets_the_full_gates_rejection(kind: type, case: str) -> None:
    make, bidder, currency, reason = CASES[case]
    lot, now = make()
    command = kind(bidder, 2_000, currency)
    before = lot.state
    expected = bid_gate(before, command, now)
    assert expected is not None
    assert lot.refused(command, now, reason) == expected[1][0]
    assert lot.state is before


def test_a_judicial_bid_without_a_frozen_deposit_gets_the_full_gates_rejection() -> None:
    lot = _judicial()
    command = r.PlaceBid("unpaid", lot.state.min_next, "CNY")
    expected = bid_gate(lot.state, command, 1)
    assert expected is not None
    assert lot.refused(command, 1, RR.NO_DEPOSIT) == expected[1][0]
    lot.ok(r.PlaceBid("a", lot.state.min_next, "CNY"), 2)  # the gate lets a good bid through


@pytest.mark.parametrize("kind", [r.PlaceBid, r.SetMax], ids=lambda k: k.__name__)
def test_a_bid_or_maximum_is_the_dataclass_value(kind: type) -> None:
    fields = dataclasses.fields(kind)
    params = list(inspect.signature(kind).parameters.values())
    assert [p.name for p in params] == [f.name for f in fields]
    assert [p.default for p in params] == [
        inspect.Parameter.empty if f.default is dataclasses.MISSING else f.default for f in fields
    ]
    one: Any = kind("a", 5_000, "USD")
    same: Any = kind(bidder="a", amount=5_000, currency="USD", idempotency_key="")
    assert one == same and hash(one) == hash(same) and repr(one) == repr(same)
    assert pickle.loads(pickle.dumps(one)) == one
    changed = dataclasses.replace(one, amount=6_000, idempotency_key="k-1")
    assert (changed.amount, changed.idempotency_key, changed.bidder) == (6_000, "k-1", "a")
    assert r.decode(r.encode(one)) == one
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(one, "amount", 1)  # noqa: B010 - the point is that it raises
    with pytest.raises(TypeError):
        kind("a", 5_000)
    with pytest.raises(TypeError):
        kind("a", 5_000, "USD", unknown=1)


@pytest.mark.parametrize("kind", [r.PlaceBid, r.SetMax], ids=lambda k: k.__name__)
@pytest.mark.parametrize(
    ("args", "reason"),
    [
        (("", 5_000, "USD"), RR.NOT_PERMITTED),
        (("a\n", 5_000, "USD"), RR.NOT_PERMITTED),
        (("a", 5_000.0, "USD"), RR.INVALID_AMOUNT),
        (("a", 0, "USD"), RR.INVALID_AMOUNT),
        (("a", True, "USD"), RR.INVALID_AMOUNT),
        (("a", 5_000, "usd"), RR.WRONG_CURRENCY),
        (("a", 5_000, "US"), RR.WRONG_CURRENCY),
        (("a", 5_000, "USD", 7), RR.NOT_PERMITTED),
        (("a", 5_000, "USD", "k" * 129), RR.NOT_PERMITTED),
    ],
)
def test_a_bad_bid_or_maximum_is_refused_when_built(
    kind: type, args: tuple[Any, ...], reason: RR
) -> None:
    with pytest.raises(r.CommandError) as raised:
        kind(*args)
    assert raised.value.reason is reason
