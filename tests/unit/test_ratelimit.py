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
