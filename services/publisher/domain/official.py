"""When a period's official results are due: quarters and years close at midnight in Việt Nam (UTC+7).

HCMC 104/2024 Art. 10 publishes results quarterly and yearly; the official figures are a frozen snapshot
taken once the period has closed, while the live figures keep moving with late ratings.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from shared.periods import VIETNAM, Period, local_time, parse_period

OFFICIAL_KINDS = frozenset({"quarter", "year"})


def period_start(period: Period) -> datetime:
    """The first instant of a period, in Việt Nam's time zone."""
    month = {"month": period.index, "quarter": 3 * period.index - 2, "half": 6 * period.index - 5, "year": 1}[period.kind]
    return datetime(period.year, month, 1, tzinfo=VIETNAM)


def period_end(period: Period) -> datetime:
    """The first instant after a period (its close), in Việt Nam's time zone."""
    months = {"month": 1, "quarter": 3, "half": 6, "year": 12}[period.kind]
    start = period_start(period)
    total = start.month - 1 + months
    return start.replace(year=start.year + total // 12, month=total % 12 + 1)


def is_official_period(text: str) -> bool:
    try:
        return parse_period(text).kind in OFFICIAL_KINDS
    except ValueError:
        return False


def has_closed(text: str, now: datetime, settle: timedelta = timedelta(0)) -> bool:
    """Whether the period ended at least `settle` before `now`."""
    return period_end(parse_period(text)) + settle <= local_time(now)


def due_for_snapshot(text: str, now: datetime, settle: timedelta, catch_up: timedelta) -> bool:
    """A quarter or year is frozen automatically once closed (plus the settle time), but not if it closed so
    long ago that the publisher is evidently replaying history rather than watching the close."""
    if not is_official_period(text):
        return False
    end = period_end(parse_period(text))
    local_now = local_time(now)
    return end + settle <= local_now < end + catch_up


def period_sort_key(text: str) -> tuple[datetime, int]:
    """Most recent last: by the period's close, shorter periods first among those closing together."""
    period = parse_period(text)
    return period_end(period), {"month": 0, "quarter": 1, "half": 2, "year": 3}[period.kind]
