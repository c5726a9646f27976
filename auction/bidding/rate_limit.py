"""A per-session rate limit (docs/protocol.md §2.5)."""

from __future__ import annotations


class TokenBucket:
    """A per-session rate limit: `rate` tokens a second, bursts up to `burst`."""

    __slots__ = ("rate", "burst", "tokens", "updated_us")

    def __init__(self, rate: float, burst: float, now_us: int) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = burst
        self.updated_us = now_us

    def level(self, now_us: int) -> float:
        """The tokens there would be at `now_us` (nothing is taken)."""
        elapsed = max(0, now_us - self.updated_us) / 1_000_000
        return min(self.burst, self.tokens + elapsed * self.rate)

    def take(self, now_us: int) -> bool:
        self.tokens = self.level(now_us)
        self.updated_us = max(self.updated_us, now_us)
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False

    def wait_s(self, now_us: int) -> float:
        """Seconds from `now_us` until a token is there (0: one is there now)."""
        missing = 1 - self.level(now_us)
        return 0.0 if missing <= 0 else missing / self.rate
