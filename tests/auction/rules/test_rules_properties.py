"""Properties of the rules engine (Hypothesis): price monotone, nothing after the end, the
winner has the best key, proxy resolution equals a step-by-step reference, replay reproduces
the state, a rejected command changes nothing."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rules_kit import END, P0, STEP

from auction import rules as r
from auction.rules.proxy import tie_key

PROPS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
BIDDERS = ["a", "b", "c", "d", "h1", "h2"]


def new_lot(proxy: bool, priority: bool) -> r.LotState:
    rules = r.judicial(
        start_price=P0,
        step=STEP,
        start_at=0,
        end_at=END,
        proxy_allowed=proxy,
        window=5 * r.MINUTE,
        extend=5 * r.MINUTE,
    )
    state = r.LotState.create("p", rules)
    for name in BIDDERS:
        rank = {"h1": 1, "h2": 2}.get(name) if priority else None
        code = f"P{rank}-{name}" if rank else f"C-{name}"
        state, _ = r.apply(state, r.RegisterBidder(name, code, True, priority_rank=rank), 0)
        state, _ = r.apply(state, r.DepositFrozen(name, rules.deposit, f"tx-{name}"), 0)
    state, _ = r.apply(state, r.OpenLot(), 0)
    return state


@st.composite
def bid_script(draw: st.DrawFn, proxy: bool) -> list[tuple[int, Any]]:
    """Commands with increasing ingress times, some after the end, some malformed-but-typed."""
    steps = draw(st.integers(min_value=1, max_value=40))
    now = 0
    script: list[tuple[int, Any]] = []
    for _ in range(steps):
        now += draw(st.integers(min_value=1, max_value=END // 8))
        bidder = draw(st.sampled_from(BIDDERS + ["stranger"]))
        k = draw(st.integers(min_value=-2, max_value=60))
        amount = max(1, P0 + k * STEP + draw(st.sampled_from([0, 0, 0, STEP // 2])))
        kind = draw(st.sampled_from(["bid", "max"] if proxy else ["bid"]))
        if kind == "max":
            script.append((now, r.SetMax(bidder, amount, "CNY")))
        else:
            script.append((now, r.PlaceBid(bidder, amount, "CNY")))
        if draw(st.integers(0, 9)) == 0:
            script.append((now, r.CloseLot()))
    script.append((now + END, r.CloseLot()))
    return script


def run(
    state: r.LotState, script: list[tuple[int, Any]]
) -> list[tuple[r.LotState, r.LotState, tuple[Any, ...], int]]:
    trace = []
    for now, command in script:
        new, events = r.apply(state, command, now)
        trace.append((state, new, events, now))
        state = new
    return trace


@PROPS
@given(data=st.data(), proxy=st.booleans(), priority=st.booleans())
def test_property_price_never_decreases_and_nothing_after_end(
    data: st.DataObject, proxy: bool, priority: bool
) -> None:
    state = new_lot(proxy, priority)
    script = data.draw(bid_script(proxy))
    for before, after, events, now in run(state, script):
        if before.price is not None:
            assert after.price is not None and after.price >= before.price
        assert after.end >= before.end  # the end never moves earlier without a pause
        if any(isinstance(e, r.BidAccepted) for e in events):
            assert now < before.end and before.status is r.LotStatus.OPEN


@PROPS
@given(data=st.data(), proxy=st.booleans(), priority=st.booleans())
def test_property_rejected_commands_change_nothing(
    data: st.DataObject, proxy: bool, priority: bool
) -> None:
    state = new_lot(proxy, priority)
    for before, after, events, _ in run(state, data.draw(bid_script(proxy))):
        if len(events) == 1 and isinstance(events[0], r.Rejected):
            assert after is before
        else:
            assert after.seq == before.seq + len(events)


@PROPS
@given(data=st.data(), proxy=st.booleans(), priority=st.booleans())
def test_property_replay_reproduces_the_state(
    data: st.DataObject, proxy: bool, priority: bool
) -> None:
    state = new_lot(proxy, priority)
    script = data.draw(bid_script(proxy))
    final = run(state, script)[-1][1]
    assert r.replay(state, script) == final
    # through the codec too, as storage and the ledger do
    decoded = [(now, r.decode(r.encode(command))) for now, command in script]
    assert r.replay(state, decoded) == final


@PROPS
@given(data=st.data(), proxy=st.booleans(), priority=st.booleans())
def test_property_winner_has_the_best_ordering_key(
    data: st.DataObject, proxy: bool, priority: bool
) -> None:
    state = new_lot(proxy, priority)
    trace = run(state, data.draw(bid_script(proxy)))
    final = trace[-1][1]
    assert final.status in (r.LotStatus.SOLD, r.LotStatus.FAILED)
    standing = [b for b in final.bidders.values() if b.max is not None]
    if not standing:
        assert final.status is r.LotStatus.FAILED
        return
    best = min(standing, key=lambda b: b.key(final.rules.priority_rights))
    assert final.status is r.LotStatus.SOLD and final.leader == best.bidder


def reference_price(maxima: list[r.Bidder], rules: r.LotRules) -> tuple[str | None, int | None]:
    """An ascending clock, one increment at a time: bidders stay in while their maximum
    covers the price. It stops when one bidder is left, when nobody is left (the best key of
    the last round wins there), or when a priority holder would win a tie against everyone
    still in who cannot go higher (rules C7: a holder only has to match)."""
    priority = rules.priority_rights
    price = rules.start_price
    previous: list[r.Bidder] = []
    previous_price: int | None = None
    while True:
        active = [b for b in maxima if b.max is not None and b.max.amount >= price]
        if not active:
            if not previous:
                return None, None
            best = min(previous, key=lambda b: b.key(priority)[1:])
            return best.bidder, previous_price
        if len(active) == 1:
            return active[0].bidder, price
        best = min(active, key=lambda b: tie_key(b, priority))
        others_stuck = all(b.max.amount == price for b in active if b is not best)  # type: ignore[union-attr]
        if priority and best.priority_rank is not None and others_stuck:
            return best.bidder, price
        previous, previous_price = active, price
        price = rules.increment.min_next(rules.start_price, price)


@PROPS
@given(
    maxima=st.lists(
        st.tuples(st.sampled_from(BIDDERS), st.integers(min_value=0, max_value=40)),
        min_size=1,
        max_size=12,
    ),
    priority=st.booleans(),
)
def test_property_proxy_resolution_equals_step_by_step_reference(
    maxima: list[tuple[str, int]], priority: bool
) -> None:
    state = new_lot(True, priority)
    now = 0
    for bidder, k in maxima:
        now += 1
        state, events = r.apply(state, r.SetMax(bidder, P0 + k * STEP, "CNY"), now)
        standing = [b for b in state.bidders.values() if b.max is not None]
        leader, price = reference_price(standing, state.rules)
        assert (state.leader, state.price) == (leader, price), (maxima, events)


# --- the 2-5-8 ladder (clarification 1) ----------------------------------------------------------

DECADE = r.Ladder(decade_258=True)


@PROPS
@given(rung=st.integers(min_value=10, max_value=10**12))
def test_property_258_ladder_strictly_increases_on_digits_0_2_5_8(rung: int) -> None:
    """The next rung is above, ends in 0/2/5/8 tenths of its decade base, and no such amount
    lies strictly between the two."""
    following = DECADE.step_above(0, rung)
    assert following > rung

    def on_ladder(amount: int) -> bool:
        tenth = r.increments.decade_base(amount) // 10
        return amount % tenth == 0 and (amount // tenth) % 10 in (0, 2, 5, 8)

    assert on_ladder(following)
    if following - rung <= 2_000:  # small gaps: every amount in between is off the ladder
        assert not any(on_ladder(x) for x in range(rung + 1, following))


@PROPS
@given(start=st.integers(min_value=1, max_value=10**9), cur=st.integers(0, 10**10))
def test_property_258_ladder_min_next_is_a_rung_above_the_price(start: int, cur: int) -> None:
    ask = DECADE.min_next(start, cur)
    assert ask > cur and ask >= start and DECADE.on_grid(start, ask)
    assert DECADE.floor_to_grid(start, ask) == ask


# --- the fixed-price sale (clarification 9) -------------------------------------------------------

FIXED = 500_000
TAKERS = {"a": None, "b": None, "h1": 1, "h2": 2, "h3": 3, "h2b": 2}


def fixed_lot(window: int) -> r.LotState:
    rules = r.fixed_price(price=FIXED, start_at=0, end_at=60 * r.DAY, priority_window=window)
    state = r.LotState.create("f", rules)
    for name, rank in TAKERS.items():
        code = f"P{rank}-{name}" if rank else f"C-{name}"
        state, _ = r.apply(state, r.RegisterBidder(name, code, True, priority_rank=rank), 0)
        state, _ = r.apply(state, r.DepositFrozen(name, rules.deposit, f"tx-{name}"), 0)
    state, _ = r.apply(state, r.OpenLot(), 0)
    return state


@PROPS
@given(
    window=st.sampled_from([0, r.HOUR, r.DAY]),
    script=st.lists(
        st.tuples(
            st.integers(min_value=1, max_value=20 * r.DAY),
            st.sampled_from(sorted(TAKERS)),
            st.sampled_from([FIXED, FIXED, FIXED, FIXED - 1, FIXED + 1]),
        ),
        max_size=25,
    ),
)
def test_property_fixed_price_sells_once_at_the_price_to_the_best_rank(
    window: int, script: list[tuple[int, str, int]]
) -> None:
    state = fixed_lot(window)
    now, accepted, closes = 0, [], []
    history: list[tuple[int, Any]] = []
    for step, bidder, amount in script:
        now += step
        for command in (r.PlaceBid(bidder, amount, "CNY"), r.CloseLot()):
            before = state
            state, events = r.apply(state, command, now)
            history.append((now, command))
            if isinstance(events[0], r.Rejected):
                assert state is before
                continue
            accepted += [e for e in events if isinstance(e, r.BidAccepted)]
            closes += [e for e in events if isinstance(e, r.LotClosed)]
    assert len(closes) <= 1
    assert all(e.amount == FIXED for e in accepted)
    assert len({e.bidder for e in accepted}) == len(accepted)  # nobody confirms twice
    if closes and closes[0].result is r.Result.SOLD:
        rank = {name: rank or 1_000 for name, rank in TAKERS.items()}
        assert closes[0].winner == accepted[-1].bidder and closes[0].price == FIXED
        assert rank[accepted[-1].bidder] == min(rank[e.bidder] for e in accepted)
    if not accepted:
        assert state.price is None and not (closes and closes[0].result is r.Result.SOLD)
    assert r.replay(fixed_lot(window), history) == state


# --- silent max changes never extend (clarification 3) --------------------------------------------


@st.composite
def closing_script(draw: st.DrawFn) -> list[tuple[int, Any]]:
    """Bids and maxima inside the last minutes, where every price move extends the end."""
    now = END - 5 * r.MINUTE
    script: list[tuple[int, Any]] = []
    for _ in range(draw(st.integers(min_value=1, max_value=30))):
        now += draw(st.integers(min_value=1, max_value=20 * r.SECOND))
        bidder = draw(st.sampled_from(BIDDERS))
        amount = P0 + draw(st.integers(min_value=0, max_value=40)) * STEP
        kind = draw(st.sampled_from([r.SetMax, r.SetMax, r.PlaceBid]))
        script.append((now, kind(bidder, amount, "CNY")))
    return script


@PROPS
@given(data=st.data(), priority=st.booleans())
def test_property_silent_max_changes_never_extend(data: st.DataObject, priority: bool) -> None:
    state = new_lot(True, priority)  # judicial with proxy: the trigger is any valid bid
    for before, after, events, now in run(state, data.draw(closing_script())):
        if isinstance(events[0], r.Rejected):
            continue
        moved = any(isinstance(e, r.PriceChanged) for e in events)
        extended = any(isinstance(e, r.EndExtended) for e in events)
        if isinstance(events[0], r.MaxSet) and not moved:
            assert not extended and after.end == before.end
        elif before.end - 5 * r.MINUTE < now < before.end:
            assert extended and after.end == max(before.end, now + 5 * r.MINUTE)
