"""A circuit breaker per delivery target, so a dead map does not pile up attempts — pure, clock passed in.

Closed: attempts flow. `failure_threshold` failed attempts in a row open it: nothing is attempted until the
cool-down has passed. Then it is half-open: exactly one probe goes out; success closes it, failure opens it
again with the cool-down doubled (up to `max_cooldown_seconds`).

Hand-written rather than a library because the delivery scheduler must ask *when* it may try again (to sleep
instead of claiming rows it cannot send) and must hand out a single half-open probe among concurrent senders;
the asyncio breaker libraries wrap a call and raise instead, which answers neither question.
"""

from __future__ import annotations

from dataclasses import dataclass, field

CLOSED = "closed"
OPEN = "open"
HALF_OPEN = "half_open"


@dataclass
class CircuitBreaker:
    failure_threshold: int = 5
    cooldown_seconds: float = 15.0
    max_cooldown_seconds: float = 300.0
    state: str = field(default=CLOSED)
    failures: int = 0
    open_until: float = 0.0
    probe_in_flight: bool = False
    _current_cooldown: float = 0.0

    def __post_init__(self) -> None:
        if self.failure_threshold < 1 or self.cooldown_seconds <= 0:
            raise ValueError("a breaker needs a threshold of at least 1 and a positive cool-down")
        self._current_cooldown = self.cooldown_seconds

    def acquire(self, now: float) -> bool:
        """May an attempt start now? In half-open state only the first caller gets the probe."""
        if self.state == OPEN and now >= self.open_until:
            self.state = HALF_OPEN
            self.probe_in_flight = False
        if self.state == CLOSED:
            return True
        if self.state == HALF_OPEN and not self.probe_in_flight:
            self.probe_in_flight = True
            return True
        return False

    def release(self) -> None:
        """An acquired attempt was not made after all (e.g. its row changed): give the probe back."""
        if self.state == HALF_OPEN:
            self.probe_in_flight = False

    def record_success(self) -> None:
        self.state = CLOSED
        self.failures = 0
        self.probe_in_flight = False
        self._current_cooldown = self.cooldown_seconds

    def record_failure(self, now: float) -> None:
        if self.state == HALF_OPEN:
            self._current_cooldown = min(self.max_cooldown_seconds, self._current_cooldown * 2)
            self._open(now)
            return
        self.failures += 1
        if self.state == CLOSED and self.failures >= self.failure_threshold:
            self._open(now)

    def seconds_until_probe(self, now: float) -> float:
        """0 when attempts may go out now (or a probe may), else how long the breaker stays open."""
        if self.state == OPEN:
            return max(0.0, self.open_until - now)
        if self.state == HALF_OPEN and self.probe_in_flight:
            return self._current_cooldown  # a probe is out; its answer will wake the scheduler sooner
        return 0.0

    def batch_size(self, wanted: int) -> int:
        """How many rows the scheduler should claim: one probe when half-open."""
        return 1 if self.state != CLOSED else wanted

    def _open(self, now: float) -> None:
        self.state = OPEN
        self.open_until = now + self._current_cooldown
        self.probe_in_flight = False
        self.failures = 0
