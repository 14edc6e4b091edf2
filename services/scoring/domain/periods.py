"""Period arithmetic scoring needs beyond shared.periods: bounds, the previous period, ranges — pure."""

from __future__ import annotations

from datetime import date, timedelta

from shared.periods import Period, parse_period

KIND_SPAN_MONTHS = {"month": 1, "quarter": 3, "half": 6, "year": 12}
KIND_COUNT = {"month": 12, "quarter": 4, "half": 2, "year": 1}


def first_month(period: Period) -> int:
    return (period.index - 1) * KIND_SPAN_MONTHS[period.kind] + 1


def bounds(period: Period) -> tuple[date, date]:
    """First and last day of the period (local dates in Việt Nam)."""
    start = date(period.year, first_month(period), 1)
    end_month = first_month(period) + KIND_SPAN_MONTHS[period.kind]
    end = date(period.year + (end_month - 1) // 12, (end_month - 1) % 12 + 1, 1) - timedelta(days=1)
    return start, end


def previous(period: Period) -> Period:
    if period.index > 1:
        return Period(period.year, period.kind, period.index - 1)
    return Period(period.year - 1, period.kind, KIND_COUNT[period.kind])


def following(period: Period) -> Period:
    if period.index < KIND_COUNT[period.kind]:
        return Period(period.year, period.kind, period.index + 1)
    return Period(period.year + 1, period.kind, 1)


def periods_between(first: Period, last: Period) -> list[Period]:
    """`first` to `last` inclusive; both of one kind."""
    if first.kind != last.kind:
        raise ValueError(f"{first} and {last} are not periods of one kind")
    out: list[Period] = []
    current = first
    while current <= last:
        out.append(current)
        current = following(current)
    return out


def periods_of_month(month: str) -> list[str]:
    """The month, quarter, half and year a month (`YYYY-MM`) belongs to, as period names."""
    period = parse_period(month)
    if period.kind != "month":
        raise ValueError(f"{month!r} is not a month")
    m = period.index
    return [month, f"{period.year}-Q{(m - 1) // 3 + 1}", f"{period.year}-H{1 if m <= 6 else 2}", f"{period.year}"]


def months_of(period: Period | str) -> list[str]:
    """The months (`YYYY-MM`) a period is made of."""
    period = parse_period(period) if isinstance(period, str) else period
    start = first_month(period)
    return [f"{period.year}-{m:02d}" for m in range(start, start + KIND_SPAN_MONTHS[period.kind])]
