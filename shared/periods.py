"""Reporting periods (month, quarter, half, year) in Asia/Ho_Chi_Minh — pure functions, no I/O."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timezone
from zoneinfo import ZoneInfo

VIETNAM = ZoneInfo("Asia/Ho_Chi_Minh")
# Years 2000–2999: no record predates the one-stop-shop era (intake refuses anything before 2000), and every
# period must have a first and a last day (year 0 has none; 9999-12 ends in year 10000): either was a 500.
PERIOD_PATTERN = re.compile(r"^(?P<year>2\d{3})(?:-(?:(?P<month>0[1-9]|1[0-2])|Q(?P<quarter>[1-4])|H(?P<half>[12])))?$")


@dataclass(frozen=True, order=True)
class Period:
    year: int
    kind: str  # month | quarter | half | year
    index: int  # 1-12, 1-4, 1-2, or 1 for a year

    def __str__(self) -> str:
        if self.kind == "month":
            return f"{self.year}-{self.index:02d}"
        if self.kind == "quarter":
            return f"{self.year}-Q{self.index}"
        if self.kind == "half":
            return f"{self.year}-H{self.index}"
        return f"{self.year}"


def parse_period(text: str) -> Period:
    match = PERIOD_PATTERN.match(text)
    if not match:
        raise ValueError(f"period {text!r} is not one of YYYY-MM, YYYY-Qn, YYYY-Hn, YYYY")
    year = int(match["year"])
    if match["month"]:
        return Period(year, "month", int(match["month"]))
    if match["quarter"]:
        return Period(year, "quarter", int(match["quarter"]))
    if match["half"]:
        return Period(year, "half", int(match["half"]))
    return Period(year, "year", 1)


def local_time(moment: datetime) -> datetime:
    """The wall-clock time in Việt Nam; a naive datetime is taken as UTC."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(VIETNAM)


def periods_containing(moment: datetime) -> list[Period]:
    """The month, quarter, half and year a moment belongs to, in Việt Nam's time zone."""
    local = local_time(moment)
    month = local.month
    return [
        Period(local.year, "month", month),
        Period(local.year, "quarter", (month - 1) // 3 + 1),
        Period(local.year, "half", 1 if month <= 6 else 2),
        Period(local.year, "year", 1),
    ]


def month_of(moment: datetime) -> Period:
    return periods_containing(moment)[0]
