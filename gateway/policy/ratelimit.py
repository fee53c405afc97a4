"""Per-user token buckets (off by default). Limits are per replica: N replicas allow N times the rate."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Hashable


class RateLimited(Exception):
    """The caller's bucket is empty (→ 429 with Retry-After)."""

    def __init__(self, retry_after_s: int) -> None:
        super().__init__("rate limit exceeded")
        self.retry_after_s = retry_after_s


class RateLimiter:
    """A bounded map of token buckets keyed by verified caller: (issuer, sub), so a user of one issuer cannot
    spend the bucket of a namesake at another."""

    def __init__(
        self, rate_per_s: float, burst: int, max_users: int = 100_000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._rate = rate_per_s
        self._burst = float(burst)
        self._max_users = max_users
        self._clock = clock
        self._buckets: dict[Hashable, tuple[float, float]] = {}

    def check(self, caller: Hashable) -> None:
        """Take one token for `caller` or raise RateLimited with the seconds until one is available."""
        now = self._clock()
        tokens, stamp = self._buckets.pop(caller, (self._burst, now))
        tokens = min(self._burst, tokens + (now - stamp) * self._rate)
        if len(self._buckets) >= self._max_users:
            del self._buckets[next(iter(self._buckets))]
        if tokens < 1:
            self._buckets[caller] = (tokens, now)
            retry_after = max(1, math.ceil((1 - tokens) / self._rate))
            raise RateLimited(retry_after)
        self._buckets[caller] = (tokens - 1, now)
