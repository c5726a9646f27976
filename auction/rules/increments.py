"""Increment modes and the grid part of the valid-bid test (rules C4).

Every mode answers the same three questions, so the formats never need to know which mode a
lot uses:

* `min_next(start, cur)`: the least amount an ordinary bidder may bid next;
* `on_grid(start, amount)`: whether an amount is a legal bid amount at all;
* `step_above(start, amount)`: the next legal amount strictly above `amount` (proxy bidding
  uses it for "one increment above the runner-up").
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass

from .errors import ConfigError


@dataclass(frozen=True, slots=True)
class Fixed:
    """`FIXED(step)`: `inc(p) = step`; valid amounts are exactly `P0 + k·step`, `k ≥ 0`."""

    step: int

    def __post_init__(self) -> None:
        if isinstance(self.step, bool) or not isinstance(self.step, int) or self.step <= 0:
            raise ConfigError(f"FIXED step must be a positive integer, got {self.step!r}")

    def inc(self, price: int) -> int:
        return self.step

    def min_next(self, start: int, cur: int | None) -> int:
        return start if cur is None else cur + self.step

    def on_grid(self, start: int, amount: int) -> bool:
        return amount >= start and (amount - start) % self.step == 0

    def step_above(self, start: int, amount: int) -> int:
        if amount < start:
            return start
        return start + ((amount - start) // self.step + 1) * self.step

    def floor_to_grid(self, start: int, amount: int) -> int | None:
        if amount < start:
            return None
        return start + (amount - start) // self.step * self.step


@dataclass(frozen=True, slots=True)
class Table:
    """`TABLE([(from, inc), ...])`: `inc(p) = inc_i` for the largest `from_i ≤ p` (inclusive).

    `grid="FREE"` accepts any whole amount ≥ min_next (optionally in multiples of `unit`);
    the ladder grid is the separate `Ladder` mode.
    """

    tiers: tuple[tuple[int, int], ...]
    unit: int = 1

    def __post_init__(self) -> None:
        if not self.tiers or self.tiers[0][0] != 0:
            raise ConfigError("TABLE tiers must start at 0")
        froms = [f for f, _ in self.tiers]
        if froms != sorted(set(froms)):
            raise ConfigError("TABLE tiers must be strictly ascending by 'from'")
        for bound, step in self.tiers:
            for value in (bound, step):
                if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                    raise ConfigError(f"TABLE values must be non-negative integers: {value!r}")
            if step <= 0:
                raise ConfigError("TABLE increments must be positive")
        if self.unit <= 0:
            raise ConfigError("TABLE unit must be positive")

    def inc(self, price: int) -> int:
        index = bisect.bisect_right(self.tiers, (price, float("inf"))) - 1
        return self.tiers[index][1]

    def min_next(self, start: int, cur: int | None) -> int:
        return start if cur is None else cur + self.inc(cur)

    def on_grid(self, start: int, amount: int) -> bool:
        return amount >= start and amount % self.unit == 0

    def step_above(self, start: int, amount: int) -> int:
        if amount < start:
            return start
        return amount + self.inc(amount)

    def floor_to_grid(self, start: int, amount: int) -> int | None:
        if amount < start:
            return None
        return amount - amount % self.unit


@dataclass(frozen=True, slots=True)
class Ladder:
    """`LADDER`: rungs `r0 = P0, r_{k+1} = r_k + inc(r_k)`; a bid must be a rung above `cur`.

    `inc` is a `Table` (or `Fixed`) giving the increment at each rung, or `decade_258=True`
    builds the "2-5-8" ladder (rules C4, clarification 1): inside each decade the rungs end in
    0, 2, 5 or 8 at one tenth of the decade's base, 1,000 → 1,200 → 1,500 → 1,800 → 2,000 →
    2,200 → … → 9,800 → 10,000 → 12,000. A clerk's ask off the ladder does not move it: the
    next rung above any amount is the ladder's own.
    Navigation is by rung index, never by subtracting increments (Artsy eigen#1720).
    """

    inc_mode: Fixed | Table | None = None
    decade_258: bool = False

    def __post_init__(self) -> None:
        if (self.inc_mode is None) == (not self.decade_258):
            raise ConfigError("LADDER needs exactly one of inc_mode or decade_258")

    def _next_rung(self, rung: int) -> int:
        if self.inc_mode is not None:
            return rung + self.inc_mode.inc(rung)
        return _next_258(rung)

    def inc(self, price: int) -> int:
        return self._next_rung(price) - price

    def rungs(self, start: int, upto: int) -> list[int]:
        """All rungs from `start` up to and including the first one ≥ `upto`."""
        out = [start]
        while out[-1] < upto:
            out.append(self._next_rung(out[-1]))
        return out

    def min_next(self, start: int, cur: int | None) -> int:
        if cur is None:
            return start
        return self.step_above(start, cur)

    def on_grid(self, start: int, amount: int) -> bool:
        return amount >= start and self.rungs(start, amount)[-1] == amount

    def step_above(self, start: int, amount: int) -> int:
        rungs = self.rungs(start, amount)
        if rungs[-1] > amount:
            return rungs[-1]
        return self._next_rung(rungs[-1])

    def floor_to_grid(self, start: int, amount: int) -> int | None:
        if amount < start:
            return None
        rungs = self.rungs(start, amount)
        return rungs[-1] if rungs[-1] == amount else rungs[-2]


#: The rungs' last significant digits inside a decade, in tenths of its base (clarification 1).
DECADE_258_DIGITS = (0, 2, 5, 8)


def decade_base(amount: int) -> int:
    """The largest power of ten ≤ `amount` (`amount` ≥ 1)."""
    base = 1
    while base * 10 <= amount:
        base *= 10
    return base


def _next_258(rung: int) -> int:
    """The next rung of the 2-5-8 ladder strictly above `rung` (any non-negative integer).

    Inside the decade `[B, 10·B)` the rungs are `B·d + (B/10)·k` for `d` in 1..9 and `k` in
    0, 2, 5, 8; below 10 (no tenth in whole units) every unit is a rung.
    """
    if rung < 10:
        return rung + 1
    base = decade_base(rung)
    tenth = base // 10
    leading = rung // base  # 1..9
    for k in DECADE_258_DIGITS:
        candidate = leading * base + k * tenth
        if candidate > rung:
            return candidate
    return (leading + 1) * base


Increment = Fixed | Table | Ladder

#: eBay's US increment table in cents (rules C4 example: inc(100.00) = 2.50, inc(99.99) = 1.00).
EBAY_TABLE = Table(
    tiers=(
        (0, 5),
        (100, 25),
        (500, 50),
        (2_500, 100),
        (10_000, 250),
        (25_000, 500),
        (50_000, 1_000),
        (100_000, 2_500),
        (250_000, 5_000),
        (500_000, 10_000),
    )
)
