"""The engine's values stay values: states and events built on the fast paths compare, hash,
pickle, copy and encode like values built by their constructors."""

from __future__ import annotations

import copy
import dataclasses
import pickle
from typing import Any

import pytest
from rules_kit import Lot, english_rules

from auction import rules as r
from auction.rules.events import BUILD, EMIT, EVENT_TYPES, fast_constructor
from auction.rules.lot import Emitter


def _busy_lot() -> Lot:
    lot = Lot(english_rules())
    for name in ("a", "b", "c"):
        lot.bidder(name)
    lot.open()
    lot.max("a", 50_000, 1)
    lot.max("b", 20_000, 2)
    lot.bid("c", 51_000, 3)
    return lot


def _sample(cls: type) -> dict[str, Any]:
    return {f.name: f"{f.name}-value" for f in dataclasses.fields(cls)}


@pytest.mark.parametrize("cls", EVENT_TYPES, ids=lambda cls: cls.__name__)
def test_a_fast_built_event_is_the_same_value(cls: type) -> None:
    fields = _sample(cls)
    fast: Any = BUILD[cls](**fields)
    slow: Any = cls(**fields)
    assert type(fast) is cls
    assert fast == slow and hash(fast) == hash(slow) and repr(fast) == repr(slow)
    assert pickle.loads(pickle.dumps(fast)) == slow
    assert r.encode(fast) == r.encode(slow)
    first = dataclasses.fields(cls)[0].name
    changed: Any = dataclasses.replace(BUILD[cls](**fields), **{first: "other"})
    assert changed != slow and getattr(changed, first) == "other"
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(fast, first, "other")
    with pytest.raises(TypeError):
        BUILD[cls](**fields, unknown=1)


@pytest.mark.parametrize("cls", EVENT_TYPES, ids=lambda cls: cls.__name__)
def test_an_emitted_event_takes_the_next_seq_and_the_command_time(cls: type) -> None:
    out = Emitter(_busy_lot().state, 77)
    start = out.seq
    fields = _sample(cls)
    del fields["seq"], fields["t"]
    first, second = EMIT[cls](out, **fields), out.emit(cls, **fields)
    assert out.events == [first, second] and out.seq == start + 2
    assert first == cls(seq=start + 1, t=77, **fields)
    assert second == cls(seq=start + 2, t=77, **fields)


def test_the_fast_constructor_refuses_values_it_would_not_check() -> None:
    with pytest.raises(TypeError):
        fast_constructor(r.PlaceBid)  # a command validates itself: it keeps its constructor


def test_engine_events_equal_their_constructed_twins() -> None:
    lot = _busy_lot()
    events = lot.bid("a", 60_000, 4)
    assert events and not isinstance(events[0], r.Rejected)
    for event in events:
        assert event == type(event)(
            **{f.name: getattr(event, f.name) for f in dataclasses.fields(event)}
        )
        assert r.decode(r.encode(event)) == event


def test_a_lot_state_pickles_copies_and_compares_by_value() -> None:
    state = _busy_lot().state
    assert pickle.loads(pickle.dumps(state)) == state
    assert copy.deepcopy(state) == state
    assert copy.copy(state) == state
    assert state.evolve(seq=state.seq) == state
    assert state.evolve(seq=state.seq + 1) != state
    bidder = state.bidders["a"]
    assert hash(bidder) == hash(pickle.loads(pickle.dumps(bidder)))


def test_a_lot_state_is_frozen_and_evolve_refuses_unknown_fields() -> None:
    state = _busy_lot().state
    with pytest.raises(AttributeError):
        setattr(state, "price", 1)  # noqa: B010 - the point is that it raises
    with pytest.raises(TypeError):
        state.evolve(no_such_field=1)
    assert state.evolve(price=7).price == 7 and state.price != 7
