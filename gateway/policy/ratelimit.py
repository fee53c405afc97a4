"""Per-user token buckets (off by default). Limits are per replica: N replicas allow N times the rate."""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from ..errors import GatewayError


class RateLimiter:
    """A bounded map of token buckets keyed by verified user id."""

    def __init__(
        self, rate_per_s: float, burst: int, max_users: int = 100_000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._rate = rate_per_s
        self._burst = float(burst)
        self._max_users = max_users
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}

    def check(self, user_id: str) -> None:
        """Take one token for `user_id` or raise 429 with the seconds until one is available."""
        now = self._clock()
        tokens, stamp = self._buckets.pop(user_id, (self._burst, now))
        tokens = min(self._burst, tokens + (now - stamp) * self._rate)
        if len(self._buckets) >= self._max_users:
            del self._buckets[next(iter(self._buckets))]
        if tokens < 1:
            self._buckets[user_id] = (tokens, now)
            retry_after = max(1, math.ceil((1 - tokens) / self._rate))
            raise GatewayError(429, "rate limit exceeded", {"Retry-After": str(retry_after)})
        self._buckets[user_id] = (tokens - 1, now)
