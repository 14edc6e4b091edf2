"""Rate limits count per caller and answer 429 with a Retry-After that is never zero."""

import pytest

from shared.problems import Problem
from shared.ratelimit import RateLimiter


def test_a_caller_over_its_limit_gets_429_with_retry_after_and_others_are_unaffected() -> None:
    limiter = RateLimiter()
    for _ in range(3):
        limiter.check("3/minute", "key:a")
    with pytest.raises(Problem) as refused:
        limiter.check("3/minute", "key:a")
    assert refused.value.status == 429
    assert refused.value.headers is not None and 1 <= int(refused.value.headers["Retry-After"]) <= 60
    limiter.check("3/minute", "key:b")  # another caller has its own window


class _Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_room_comes_back_when_retry_after_says_and_not_before() -> None:
    clock = _Clock(1000.0)
    limiter = RateLimiter(clock)
    for _ in range(3):
        limiter.check("3/minute", "key:a")
    with pytest.raises(Problem) as refused:
        limiter.check("3/minute", "key:a")
    wait = int(refused.value.headers["Retry-After"])  # type: ignore[index]
    clock.now += wait - 1
    with pytest.raises(Problem):
        limiter.check("3/minute", "key:a")
    clock.now += 1
    limiter.check("3/minute", "key:a")


def test_a_batch_counts_each_item_and_a_refused_batch_is_not_counted() -> None:
    clock = _Clock(0.0)
    limiter = RateLimiter(clock)
    limiter.check("1000/minute", "key:portal", cost=600)
    with pytest.raises(Problem):
        limiter.check("1000/minute", "key:portal", cost=600)
    limiter.check("1000/minute", "key:portal", cost=400)  # the refused 600 took nothing
    with pytest.raises(Problem):
        limiter.check("1000/minute", "key:portal")


def test_hits_leave_the_window_one_window_after_they_were_made() -> None:
    clock = _Clock(0.0)
    limiter = RateLimiter(clock)
    limiter.check("10/minute", "key:a", cost=6)
    clock.now = 30.0
    limiter.check("10/minute", "key:a", cost=4)
    clock.now = 59.0  # all ten are still within the last minute
    with pytest.raises(Problem) as refused:
        limiter.check("10/minute", "key:a")
    assert refused.value.headers == {"Retry-After": "1"}
    clock.now = 60.0  # the first six have left it; the four of t=30 have not
    limiter.check("10/minute", "key:a", cost=6)
    with pytest.raises(Problem):
        limiter.check("10/minute", "key:a")
