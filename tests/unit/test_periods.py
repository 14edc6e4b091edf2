"""Periods are computed in Asia/Ho_Chi_Minh (CONTRACT: a rating at 23:30 UTC on 31 March belongs to April)."""

from datetime import datetime, timezone

import pytest

from shared.periods import Period, parse_period, periods_containing


def test_late_evening_utc_on_31_march_is_april_in_vietnam() -> None:
    moment = datetime(2026, 3, 31, 23, 30, tzinfo=timezone.utc)
    assert [str(p) for p in periods_containing(moment)] == ["2026-04", "2026-Q2", "2026-H1", "2026"]


def test_new_year_in_vietnam_arrives_seven_hours_before_utc() -> None:
    moment = datetime(2025, 12, 31, 17, 0, tzinfo=timezone.utc)  # 00:00 on 1 Jan 2026 in Hà Nội
    assert str(periods_containing(moment)[0]) == "2026-01"
    assert str(periods_containing(datetime(2025, 12, 31, 16, 59, tzinfo=timezone.utc))[0]) == "2025-12"


@pytest.mark.parametrize(
    ("text", "period"),
    [
        ("2026-11", Period(2026, "month", 11)),
        ("2026-Q4", Period(2026, "quarter", 4)),
        ("2026-H2", Period(2026, "half", 2)),
        ("2026", Period(2026, "year", 1)),
    ],
)
def test_the_contracts_period_syntax_round_trips(text: str, period: Period) -> None:
    assert parse_period(text) == period
    assert str(period) == text


@pytest.mark.parametrize("text", ["2026-13", "2026-Q5", "2026-H3", "26-01", "2026-1", ""])
def test_malformed_periods_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_period(text)
