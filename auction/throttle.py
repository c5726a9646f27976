"""Writes that cannot be flooded: the limits on account creation, identity checks,
registrations and deposits (docs/protocol.md §1.1). Pure: every decision takes `now_us`.

Two kinds of limit, both answered with `Throttled` (HTTP 429, a `retry_after` in seconds):

* token buckets per client address and per session (`Buckets`, reusing the bids' own
  `auction.protocol.TokenBucket`), one pair per kind of write (`WriteKind`), checked by the web
  adapter (`auction.web.throttle`) before a request reaches the gateway;
* a hard bound on the ledger entries one account may cause in any hour, bids excepted
  (`EntryBudget`, a sliding window), charged by the gateway in one place before it writes.

`WriteLimits` holds the rates (`auction.web.Settings.write_limits`); its defaults let a person
register, retry a mistyped document and sign up for many lots without meeting them, and let the
demo's bots run, while a client looping as fast as it can is held to a few writes a second.
"""

from __future__ import annotations

import enum
import json
import math
from collections import OrderedDict, deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, fields, replace
from typing import Any

from chain import parse_time

from . import errors
from .protocol import TokenBucket

HOUR_US = 3600 * 1_000_000


class WriteKind(enum.StrEnum):
    """The requests whose rate is limited."""

    ACCOUNT = "account"
    IDENTITY = "identity"
    REGISTRATION = "registration"
    DEPOSIT = "deposit"


#: How a person reads each kind, in a refusal.
WORDS = {
    WriteKind.ACCOUNT: "account creations",
    WriteKind.IDENTITY: "identity checks",
    WriteKind.REGISTRATION: "registrations",
    WriteKind.DEPOSIT: "deposit requests",
}


@dataclass(frozen=True, slots=True)
class Rate:
    """`burst` requests at once, then `per_second` a second."""

    per_second: float
    burst: int

    def __post_init__(self) -> None:
        if not self.per_second > 0 or self.burst < 1:
            raise ValueError("a rate is more than 0 a second with a burst of at least 1")

    def allowed(self, seconds: float) -> int:
        """The most requests it lets through in `seconds` (from a full bucket)."""
        return self.burst + math.floor(seconds * self.per_second)


@dataclass(frozen=True, slots=True)
class WriteLimits:
    """The limits of `gavel serve` (None: no limit of that kind).

    Per client address (one address can be many people behind one router, hence the bursts)
    and per session (one person); `entries_per_account_hour` bounds the non-bid ledger entries
    one account may cause in any 60 minutes (identity checks, registrations, deposits — a
    deposit is two entries: pending, then frozen by the provider's callback)."""

    accounts_per_address: Rate | None = Rate(1 / 10, 20)
    identity_per_address: Rate | None = Rate(1 / 5, 30)
    identity_per_session: Rate | None = Rate(1 / 60, 5)
    registrations_per_address: Rate | None = Rate(1 / 2, 60)
    registrations_per_session: Rate | None = Rate(1 / 2, 20)
    deposits_per_address: Rate | None = Rate(1 / 2, 60)
    deposits_per_session: Rate | None = Rate(1 / 2, 20)
    entries_per_account_hour: int | None = 60

    def __post_init__(self) -> None:
        hourly = self.entries_per_account_hour
        if hourly is not None and hourly < 2:
            raise ValueError("entries_per_account_hour must be at least 2 (one deposit)")

    @classmethod
    def off(cls) -> WriteLimits:
        """No limits at all (benchmarks and load tests on loopback)."""
        return cls(**{f.name: None for f in fields(cls)})

    def scaled(self, factor: float) -> WriteLimits:
        """Every rate, burst and bound multiplied by `factor` (tests that are not about
        limits create many accounts from one address)."""
        changes: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, Rate):
                changes[f.name] = Rate(value.per_second * factor, math.ceil(value.burst * factor))
            elif isinstance(value, int):
                changes[f.name] = math.ceil(value * factor)
        return replace(self, **changes)

    def per_address(self, kind: WriteKind) -> Rate | None:
        return {
            WriteKind.ACCOUNT: self.accounts_per_address,
            WriteKind.IDENTITY: self.identity_per_address,
            WriteKind.REGISTRATION: self.registrations_per_address,
            WriteKind.DEPOSIT: self.deposits_per_address,
        }[kind]

    def per_session(self, kind: WriteKind) -> Rate | None:
        return {
            WriteKind.ACCOUNT: None,  # made without a session
            WriteKind.IDENTITY: self.identity_per_session,
            WriteKind.REGISTRATION: self.registrations_per_session,
            WriteKind.DEPOSIT: self.deposits_per_session,
        }[kind]


class Throttled(errors.Throttled):
    """A request refused by a limit, with `code`, `message` and `retry_after` (whole seconds,
    at least 1). Nothing was written."""

    def __init__(self, code: str, message: str, retry_after: float) -> None:
        super().__init__(message, code=code)
        self.retry_after = max(1, math.ceil(retry_after))


def _in_words(seconds: int) -> str:
    if seconds < 120:
        return f"{seconds} second{'s' if seconds != 1 else ''}"
    return f"{math.ceil(seconds / 60)} minutes"


class Buckets:
    """One token bucket per key (an address, a session) at one `Rate`. Bounded: a bucket that
    has filled up again is forgotten (it would behave as a new one), and past `capacity` keys
    the least recently used goes first."""

    def __init__(self, rate: Rate, capacity: int = 100_000) -> None:
        self.rate = rate
        self.capacity = capacity
        self._buckets: OrderedDict[str, TokenBucket] = OrderedDict()

    def __len__(self) -> int:
        return len(self._buckets)

    def take(self, key: str, now_us: int) -> float | None:
        """None when the request may go on (a token was taken), else the seconds to wait."""
        self._forget_full(now_us)
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = TokenBucket(self.rate.per_second, self.rate.burst, now_us)
            self._buckets[key] = bucket
            while len(self._buckets) > self.capacity:
                self._buckets.popitem(last=False)
        self._buckets.move_to_end(key)
        if bucket.take(now_us):
            return None
        return bucket.wait_s(now_us)

    def _forget_full(self, now_us: int) -> None:
        for _ in range(2):  # amortised: at most two per call
            if not self._buckets:
                return
            key, oldest = next(iter(self._buckets.items()))
            if oldest.level(now_us) < oldest.burst:
                return
            del self._buckets[key]


class RequestLimiter:
    """The per-address and per-session buckets of every `WriteKind`."""

    def __init__(self, limits: WriteLimits, capacity: int = 100_000) -> None:
        self._address: dict[WriteKind, Buckets] = {}
        self._session: dict[WriteKind, Buckets] = {}
        for kind in WriteKind:
            by_address, by_session = limits.per_address(kind), limits.per_session(kind)
            if by_address is not None:
                self._address[kind] = Buckets(by_address, capacity)
            if by_session is not None:
                self._session[kind] = Buckets(by_session, capacity)

    def check(self, kind: WriteKind, address: str, session: str | None, now_us: int) -> None:
        """Take a token for the address, then for the session; raise `Throttled` when either
        has none (an address over its limit spends nothing of its sessions')."""
        buckets = self._address.get(kind)
        wait = None if buckets is None else buckets.take(address, now_us)
        if wait is not None:
            raise Throttled(
                "RATE_LIMITED",
                f"too many {WORDS[kind]} from your network address; "
                f"try again in {_in_words(math.ceil(wait))}",
                wait,
            )
        buckets = self._session.get(kind)
        if session is None or buckets is None:
            return
        wait = buckets.take(session, now_us)
        if wait is not None:
            raise Throttled(
                "RATE_LIMITED",
                f"too many {WORDS[kind]} from this session; "
                f"try again in {_in_words(math.ceil(wait))}",
                wait,
            )


class EntryBudget:
    """At most `limit` ledger entries per account in any window of `window_us` (one hour),
    bids excepted: a sliding window of the times of the account's last entries."""

    def __init__(self, limit: int, window_us: int = HOUR_US) -> None:
        if limit < 1:
            raise ValueError("the budget is at least one entry")
        self.limit = limit
        self.window_us = window_us
        self._spent: OrderedDict[str, deque[int]] = OrderedDict()

    def __len__(self) -> int:
        """How many accounts it remembers."""
        return len(self._spent)

    def used(self, account: str, now_us: int) -> int:
        """The account's entries in the window ending at `now_us`."""
        times = self._spent.get(account)
        if times is None:
            return 0
        self._expire(times, now_us)
        return len(times)

    def spend(self, account: str, entries: int, now_us: int) -> None:
        """Count `entries` new entries of `account` at `now_us`, or raise `Throttled` (and
        count nothing) when that would pass the limit."""
        if entries <= 0:
            return
        self._forget_idle(now_us)
        times = self._spent.get(account)
        if times is None:
            times = self._spent[account] = deque()
        self._expire(times, now_us)
        over = len(times) + entries - self.limit
        if over > 0:
            if entries > self.limit:
                wait_s = self.window_us / 1_000_000
            else:  # the `over`-th oldest entry must leave the window first
                wait_s = (times[over - 1] + self.window_us - now_us) / 1_000_000
            raise Throttled(
                "HOURLY_LIMIT",
                f"this account has caused {len(times)} entries in the public ledger in the "
                f"last hour (identity checks, registrations, deposits) and at most "
                f"{self.limit} are allowed an hour; try again in "
                f"{_in_words(max(1, math.ceil(wait_s)))}",
                wait_s,
            )
        times.extend([now_us] * entries)
        self._spent.move_to_end(account)

    def refund(self, account: str, entries: int) -> None:
        """Uncount the account's `entries` newest entries (counted for a request that then
        wrote nothing)."""
        times = self._spent.get(account)
        if times is None:
            return
        for _ in range(min(entries, len(times))):
            times.pop()

    def learn(self, spent: Iterable[tuple[str, int]], now_us: int) -> int:
        """Count entries written before a restart (`(account, time_us)`, in log order);
        returns how many fell in the current window."""
        learnt = 0
        for account, at_us in spent:
            if now_us - at_us >= self.window_us or at_us > now_us:
                continue
            times = self._spent.setdefault(account, deque())
            times.append(at_us)
            self._spent.move_to_end(account)
            learnt += 1
        return learnt

    def _expire(self, times: deque[int], now_us: int) -> None:
        while times and now_us - times[0] >= self.window_us:
            times.popleft()

    def _forget_idle(self, now_us: int) -> None:
        for _ in range(2):  # amortised: accounts idle for a whole window are dropped
            if not self._spent:
                return
            account, times = next(iter(self._spent.items()))
            if times and now_us - times[-1] < self.window_us:
                return
            del self._spent[account]


#: The ledger entry types an account's own non-bid requests write.
BUDGETED_TYPES = frozenset({"idv", "registration", "deposit"})
_TYPE_MARKERS = tuple(f'"type":"{name}"'.encode() for name in sorted(BUDGETED_TYPES))


def account_entries(entries: Iterable[bytes]) -> Iterator[tuple[str, int]]:
    """`(account, time_us)` of each ledger entry (canonical JSON bytes) that an account's
    budget counts: its `idv` entries and its registration and deposit commands."""
    for raw in entries:
        if not any(marker in raw for marker in _TYPE_MARKERS):
            continue  # most entries are bids: skip them without parsing
        entry = json.loads(raw)
        if entry.get("type") not in BUDGETED_TYPES:
            continue
        body = entry.get("body")
        if not isinstance(body, dict):
            continue
        account = body.get("account")
        command = body.get("command")
        if account is None and isinstance(command, dict):
            account = command.get("bidder")
        if isinstance(account, str):
            yield account, parse_time(entry["t"])


__all__ = [
    "BUDGETED_TYPES",
    "HOUR_US",
    "WORDS",
    "Buckets",
    "EntryBudget",
    "Rate",
    "RequestLimiter",
    "Throttled",
    "WriteKind",
    "WriteLimits",
    "account_entries",
]
