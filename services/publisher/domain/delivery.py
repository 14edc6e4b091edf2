"""How a push to the institution map is retried — pure decisions, no I/O.

2xx delivered; 408, 429, 5xx and timeouts retried with exponential backoff and full jitter,
honouring Retry-After; any other 4xx is dead-lettered for an operator.
"""

from __future__ import annotations

import hashlib
import hmac
import random
from dataclasses import dataclass
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime

DELIVERED = "delivered"
RETRY = "retry"
DEAD = "dead"
RETRYABLE_STATUSES = frozenset({408, 429})


@dataclass(frozen=True)
class Backoff:
    base_seconds: float = 0.5
    max_seconds: float = 60.0


def outcome_of(status_code: int | None) -> str:
    """`None` stands for a timeout or a connection failure."""
    if status_code is None or status_code in RETRYABLE_STATUSES or status_code >= 500:
        return RETRY
    if 200 <= status_code < 300:
        return DELIVERED
    return DEAD


def retry_after_seconds(header: str | None, now: datetime) -> float | None:
    """Retry-After as delta-seconds or an HTTP date (RFC 9110 §10.2.3)."""
    if not header:
        return None
    header = header.strip()
    if header.isdigit():
        return float(header)
    try:
        when = parsedate_to_datetime(header)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - now).total_seconds())


def next_delay(attempts: int, retry_after: float | None, policy: Backoff, rng: random.Random | None = None) -> float:
    """Seconds to wait before attempt `attempts + 1`; never sooner than the server asked."""
    ceiling = min(policy.max_seconds, policy.base_seconds * 2 ** max(0, attempts - 1))
    jittered = (rng or random).uniform(ceiling / 2, ceiling)
    return max(jittered, retry_after or 0.0)


def signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def idempotency_key(unit_code: str, period: str, profile: str, edition: str, version: int) -> str:
    """One key per version of one result: a resent version is recognisably the same push."""
    middle = "" if edition == "live" else f"{edition}:"
    return f"{unit_code}:{period}:{profile}:{middle}v{version}"


def target_path(unit_code: str, period: str) -> str:
    """The contract's resource: PUT {base}/units/{unit_code}/satisfaction/{period}."""
    return f"/units/{unit_code}/satisfaction/{period}"
