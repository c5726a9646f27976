"""The pure core of the write limits (`auction.throttle`): buckets, the hourly bound, and the
entries a restart counts back. Time is a parameter: no sleeping."""

from __future__ import annotations

import json

import pytest

from auction.protocol import TokenBucket
from auction.throttle import (
    HOUR_US,
    Buckets,
    EntryBudget,
    Rate,
    RequestLimiter,
    Throttled,
    WriteKind,
    WriteLimits,
    account_entries,
)
from auction.web.errors import error_body
from chain import format_time

S = 1_000_000


def test_the_bids_bucket_tells_how_long_to_wait() -> None:
    bucket = TokenBucket(rate=2, burst=2, now_us=0)
    assert bucket.take(0) and bucket.take(0) and not bucket.take(0)
    assert bucket.wait_s(0) == pytest.approx(0.5)
    assert bucket.wait_s(S // 4) == pytest.approx(0.25)
    assert bucket.level(10 * S) == 2  # never more than the burst
    assert bucket.take(S // 2) and bucket.wait_s(S // 2) == pytest.approx(0.5)


def test_buckets_let_a_burst_through_then_the_rate() -> None:
    buckets = Buckets(Rate(1 / 10, 3))
    assert [buckets.take("a", 0) for _ in range(3)] == [None, None, None]
    wait = buckets.take("a", 0)
    assert wait == pytest.approx(10)
    assert buckets.take("b", 0) is None  # another key has its own bucket
    assert buckets.take("a", 9 * S) is not None
    assert buckets.take("a", 10 * S) is None
    assert Rate(1 / 10, 3).allowed(60) == 9


def test_buckets_forget_full_ones_and_stay_bounded() -> None:
    buckets = Buckets(Rate(1, 1), capacity=100)
    for i in range(1000):
        buckets.take(f"k{i}", 0)
    assert len(buckets) == 100  # the least recently used went first
    for i in range(50):
        buckets.take(f"late{i}", 60 * S)  # every earlier bucket is full again by now
    assert len(buckets) <= 100
    assert "k0" not in buckets._buckets


def test_rates_are_checked() -> None:
    with pytest.raises(ValueError):
        Rate(0, 5)
    with pytest.raises(ValueError):
        Rate(1, 0)
    with pytest.raises(ValueError):
        WriteLimits(entries_per_account_hour=1)


def test_the_limiter_refuses_by_address_then_by_session() -> None:
    limits = WriteLimits(identity_per_address=Rate(1 / 5, 4), identity_per_session=Rate(1 / 60, 2))
    limiter = RequestLimiter(limits)
    limiter.check(WriteKind.IDENTITY, "10.0.0.1", "s1", 0)
    limiter.check(WriteKind.IDENTITY, "10.0.0.1", "s1", 0)
    with pytest.raises(Throttled) as refused:
        limiter.check(WriteKind.IDENTITY, "10.0.0.1", "s1", 0)
    assert refused.value.code == "RATE_LIMITED" and refused.value.retry_after == 60
    assert "identity checks from this session" in refused.value.message
    assert "60 seconds" in refused.value.message
    limiter.check(WriteKind.IDENTITY, "10.0.0.1", "s2", 0)  # another session, same address
    with pytest.raises(Throttled) as refused:
        limiter.check(WriteKind.IDENTITY, "10.0.0.1", "s3", 0)  # the address's 4 are spent
    assert "from your network address" in refused.value.message
    assert refused.value.retry_after == 5
    limiter.check(WriteKind.IDENTITY, "10.0.0.2", "s3", 0)  # another address
    limiter.check(WriteKind.REGISTRATION, "10.0.0.1", "s1", 0)  # another kind
    body = error_body(refused.value)["error"]
    assert set(body) == {"code", "message", "retry_after"} and body["retry_after"] == 5


def test_off_limits_nothing_and_scaled_multiplies() -> None:
    limiter = RequestLimiter(WriteLimits.off())
    for _ in range(1000):
        limiter.check(WriteKind.ACCOUNT, "127.0.0.1", None, 0)
    assert WriteLimits.off().entries_per_account_hour is None
    big = WriteLimits().scaled(10)
    assert big.accounts_per_address == Rate(1.0, 200)
    assert big.entries_per_account_hour == 600


def test_the_hourly_budget_is_a_sliding_window() -> None:
    budget = EntryBudget(5)
    budget.spend("a", 2, 0)
    budget.spend("a", 2, 10 * 60 * S)
    with pytest.raises(Throttled) as refused:
        budget.spend("a", 2, 20 * 60 * S)  # 4 + 2 > 5
    assert refused.value.code == "HOURLY_LIMIT"
    assert refused.value.retry_after == 40 * 60  # when the first two leave the window
    assert "at most 5" in refused.value.message and "40 minutes" in refused.value.message
    assert budget.used("a", 20 * 60 * S) == 4  # a refusal counts nothing
    budget.spend("a", 1, 20 * 60 * S)
    budget.spend("b", 5, 20 * 60 * S)  # accounts are independent
    budget.spend("a", 2, HOUR_US)  # the first two have left
    assert budget.used("a", HOUR_US) == 5
    with pytest.raises(Throttled):
        budget.spend("a", 6, 10 * HOUR_US)  # more than the bound at once: never
    budget.spend("a", 0, 0)


def test_the_hourly_budget_holds_over_any_hour() -> None:
    """Spend as fast as allowed for three hours: no 60-minute window holds more than N."""
    budget = EntryBudget(7)
    times: list[int] = []
    for step in range(3 * 3600):
        now = step * S
        try:
            budget.spend("a", 1, now)
        except Throttled as refused:
            assert refused.retry_after >= 1
            continue
        times.append(now)
    assert len(times) == 3 * 7
    for i, start in enumerate(times):
        within = [t for t in times[i:] if t - start < HOUR_US]
        assert len(within) <= 7


def test_a_refund_gives_back_what_was_not_written() -> None:
    budget = EntryBudget(3)
    budget.spend("a", 3, 0)
    budget.refund("a", 1)  # the identity check was then refused: no entry
    budget.spend("a", 1, S)
    with pytest.raises(Throttled):
        budget.spend("a", 1, S)
    budget.refund("nobody", 2)
    budget.refund("a", 10)
    assert budget.used("a", S) == 0


def test_the_budget_forgets_idle_accounts() -> None:
    budget = EntryBudget(3)
    for i in range(100):
        budget.spend(f"a{i}", 1, 0)
    for i in range(100):
        budget.spend(f"b{i}", 1, 2 * HOUR_US)
    assert len(budget) <= 100


def entry(kind: str, body: dict[str, object], t_us: int) -> bytes:
    return json.dumps(
        {"type": kind, "body": body, "t": format_time(t_us)}, separators=(",", ":")
    ).encode()


def test_a_restart_counts_the_last_hour_back() -> None:
    now = 10 * HOUR_US
    entries = [
        entry("idv", {"account": "acct-a"}, now - 2 * HOUR_US),  # too old
        entry("idv", {"account": "acct-a"}, now - 10 * S),
        entry("registration", {"command": {"type": "RegisterBidder", "bidder": "acct-a"}}, now),
        entry("deposit", {"command": {"type": "DepositFrozen", "bidder": "acct-b"}}, now),
        entry("bid", {"command": {"type": "PlaceBid", "bidder": "acct-a"}}, now),
        entry("lot_state", {"command": {"type": "CloseLot"}}, now),
    ]
    found = list(account_entries(entries))
    assert found == [
        ("acct-a", now - 2 * HOUR_US),
        ("acct-a", now - 10 * S),
        ("acct-a", now),
        ("acct-b", now),
    ]
    budget = EntryBudget(3)
    assert budget.learn(found, now) == 3
    assert budget.used("acct-a", now) == 2
    with pytest.raises(Throttled):
        budget.spend("acct-a", 2, now)
    budget.spend("acct-a", 1, now)
