"""The map push policy of the contract: which answers are retried, how long to wait, the signature."""

import hashlib
import hmac
import random
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

import pytest

from services.publisher.domain.delivery import DEAD, DELIVERED, RETRY, Backoff, next_delay, outcome_of, retry_after_seconds, signature


@pytest.mark.parametrize(
    ("status", "outcome"),
    [(200, DELIVERED), (204, DELIVERED), (408, RETRY), (429, RETRY), (500, RETRY), (503, RETRY), (None, RETRY),
     (400, DEAD), (401, DEAD), (404, DEAD), (409, DEAD)],
)
def test_outcomes(status: int | None, outcome: str) -> None:
    assert outcome_of(status) == outcome


def test_retry_after_accepts_seconds_and_http_dates() -> None:
    now = datetime(2026, 11, 24, 10, 0, tzinfo=timezone.utc)
    assert retry_after_seconds("7", now) == 7.0
    assert retry_after_seconds(format_datetime(now + timedelta(seconds=30), usegmt=True), now) == 30.0
    assert retry_after_seconds("garbage", now) is None
    assert retry_after_seconds(None, now) is None


def test_backoff_grows_exponentially_within_jitter_and_is_capped() -> None:
    policy = Backoff(base_seconds=1, max_seconds=60)
    rng = random.Random(7)
    for attempt, ceiling in [(1, 1), (2, 2), (3, 4), (6, 32), (7, 60), (20, 60)]:
        delay = next_delay(attempt, None, policy, rng)
        assert ceiling / 2 <= delay <= ceiling


def test_backoff_never_comes_sooner_than_retry_after() -> None:
    assert next_delay(1, 120.0, Backoff(max_seconds=60)) == 120.0


def test_signature_is_hmac_sha256_of_the_exact_body() -> None:
    body = b'{"unit_code":"79.SNV"}'
    expected = hmac.new(b"secret", body, hashlib.sha256).hexdigest()
    assert signature("secret", body) == f"sha256={expected}"
