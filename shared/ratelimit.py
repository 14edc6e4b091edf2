"""Per-caller rate limits (moving window, per process) answering 429 with Retry-After.

A caller may make `amount` hits in any window of `period` seconds. Each caller's hits are kept as a log of
at most SLOTS_PER_WINDOW time slots (hits in the same hundredth of the window share one entry), so a
check costs about a microsecond whatever the limit. `limits`' own in-memory moving window cost 80 µs
per hit at 3,000 hits/s (it inserts every hit at the front of a list and restarts a timer thread every
10 ms) plus 26 µs to parse the limit string on every call (bench/notes/intake.md); `limits` still
parses the "600/minute" strings of the settings, once per distinct string.

With N replicas behind a load balancer a caller gets up to N times the limit, which is acceptable for
abuse protection; exact global limits would need a shared store (e.g. Redis).
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable
from functools import lru_cache

from limits import RateLimitItem, parse

from shared.problems import Problem

SLOTS_PER_WINDOW = 100  # time resolution of the log: a hit leaves the window up to period/100 early
PRUNE_EVERY_SECONDS = 60.0


@lru_cache(maxsize=64)
def _parsed(limit: str) -> tuple[str, int, float]:
    item = parse(limit)
    return str(item), item.amount, float(item.get_expiry())


class _Log:
    """One caller's hits within the last window: [slot start, hits] entries, oldest first."""

    __slots__ = ("entries", "total", "period")

    def __init__(self, period: float) -> None:
        self.entries: deque[list[float]] = deque()
        self.total = 0.0
        self.period = period

    def forget_before(self, horizon: float) -> None:
        entries = self.entries
        while entries and entries[0][0] <= horizon:
            self.total -= entries.popleft()[1]


class RateLimiter:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._logs: dict[tuple[str, tuple[str, ...]], _Log] = {}
        self._pruned_at = clock()

    def check(self, limit: str | RateLimitItem, *identity: str, cost: int = 1) -> None:
        """Count `cost` hits (e.g. the items of a batch) for `identity` against `limit` (e.g. "600/minute");
        raise a 429 problem when over it (refused hits are not counted)."""
        name, amount, period = _parsed(limit) if isinstance(limit, str) else (str(limit), limit.amount, float(limit.get_expiry()))
        now = self._clock()
        if now - self._pruned_at > PRUNE_EVERY_SECONDS:
            self._prune(now)
        key = (name, identity)
        log = self._logs.get(key)
        if log is None:
            log = self._logs[key] = _Log(period)
        log.forget_before(now - period)
        if log.total + cost <= amount:
            slot_length = period / SLOTS_PER_WINDOW
            slot = (now // slot_length) * slot_length  # rounded down: a hit never stays longer than the window
            if log.entries and log.entries[-1][0] == slot:
                log.entries[-1][1] += cost
            else:
                log.entries.append([slot, cost])
            log.total += cost
            return
        retry_after = max(1, math.ceil(self._seconds_until_room(log, cost, amount, now)))
        raise Problem(
            429, "Too many requests", f"over the limit of {name} for this caller; retry in {retry_after}s",
            headers={"Retry-After": str(retry_after)},
        )

    @staticmethod
    def _seconds_until_room(log: _Log, cost: int, amount: int, now: float) -> float:
        """When enough of the oldest hits have left the window for `cost` more to fit (at most one window)."""
        if cost > amount:
            return log.period  # never fits; the caller should send less at once
        left = log.total
        for slot, hits in log.entries:
            left -= hits
            if left + cost <= amount:
                return slot + log.period - now
        return log.period

    def _prune(self, now: float) -> None:
        """Forget callers with no hit in their window, so a stream of distinct addresses cannot grow the dict."""
        self._pruned_at = now
        stale = [key for key, log in self._logs.items() if not log.entries or log.entries[-1][0] <= now - log.period]
        for key in stale:
            del self._logs[key]
