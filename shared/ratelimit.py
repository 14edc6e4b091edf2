"""Per-caller rate limits (moving window, per process) answering 429 with Retry-After.

The window is kept in this process's memory (the `limits` package): with N replicas behind a load
balancer a caller gets up to N times the limit, which is acceptable for abuse protection; a shared
storage (Redis) is a `limits` URI away if a deployment needs exact global limits.
"""

from __future__ import annotations

import math
import time

from limits import RateLimitItem, parse
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter

from shared.problems import Problem


class RateLimiter:
    def __init__(self) -> None:
        self._limiter = MovingWindowRateLimiter(MemoryStorage())

    def check(self, limit: str | RateLimitItem, *identity: str, cost: int = 1) -> None:
        """Count `cost` hits (e.g. the items of a batch) for `identity` against `limit` (e.g. "600/minute");
        raise a 429 problem when over it."""
        item = parse(limit) if isinstance(limit, str) else limit
        if self._limiter.hit(item, *identity, cost=cost):
            return
        reset_at, _remaining = self._limiter.get_window_stats(item, *identity)
        retry_after = max(1, math.ceil(reset_at - time.time()))
        raise Problem(
            429, "Too many requests", f"over the limit of {item} for this caller; retry in {retry_after}s",
            headers={"Retry-After": str(retry_after)},
        )
