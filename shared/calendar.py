"""Vietnamese working days — pure: which days count, and statutory deadlines "within N working days".

Working days are Monday to Friday except public holidays; official swaps count as announced (a
Saturday worked in exchange for a bridge day off). Holidays, observed days and known swaps come from
the `holidays` package; `shared/data/calendar_overlay.json` adds announcements it does not know yet.
Rule (DOMAIN.md): within N working days of X, the day of X does not count; the deadline is the end
(23:59:59, Asia/Ho_Chi_Minh) of the N-th working day after X's date.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from functools import lru_cache
from pathlib import Path

import holidays

from shared.periods import VIETNAM, local_time

OVERLAY_PATH = Path(__file__).parent / "data" / "calendar_overlay.json"
OVERLAY_ENV = "HAILONG_CALENDAR_OVERLAY"  # an operator's own overlay file, e.g. mounted from a ConfigMap
END_OF_DAY = time(23, 59, 59)
MAX_RANGE_DAYS = 3660  # ten years: longer ranges are a mistake (and a cheap way to make a server count)
DAY_OFF = "day_off"
WORKING_DAY = "working_day"


@dataclass(frozen=True)
class OverlayEntry:
    day: date
    kind: str  # day_off | working_day
    name: str
    source: str


@dataclass(frozen=True)
class Holiday:
    day: date
    name: str
    source: str


def overlay_path() -> Path:
    """The overlay in force: the operator's file named by HAILONG_CALENDAR_OVERLAY, else the packaged one."""
    configured = os.environ.get(OVERLAY_ENV)
    return Path(configured) if configured else OVERLAY_PATH


def load_overlay(path: Path | None = None) -> list[OverlayEntry]:
    path = path or overlay_path()
    document = json.loads(path.read_text(encoding="utf-8"))
    entries = []
    for raw in document.get("entries", []):
        if raw["kind"] not in (DAY_OFF, WORKING_DAY):
            raise ValueError(f"{path}: kind must be {DAY_OFF} or {WORKING_DAY}, not {raw['kind']!r}")
        entries.append(OverlayEntry(date.fromisoformat(raw["date"]), raw["kind"], raw["name"], raw["source"]))
    return entries


class WorkingCalendar:
    def __init__(self, overlay: list[OverlayEntry] | None = None) -> None:
        self.overlay = {entry.day: entry for entry in (overlay if overlay is not None else load_overlay())}
        self._holidays = holidays.country_holidays("VN")  # years are filled in lazily on lookup

    def is_working_day(self, day: date) -> bool:
        entry = self.overlay.get(day)
        if entry is not None:
            return entry.kind == WORKING_DAY
        if day in self._holidays:  # also loads the year, and with it the year's swapped Saturdays
            return False
        if day in self._holidays.weekend_workdays:
            return True
        return day.weekday() < 5

    def add_working_days(self, start: date | datetime, days: int) -> date:
        """The `days`-th working day after `start` (a datetime is taken in Việt Nam's time)."""
        if days < 0:
            raise ValueError("days must not be negative")
        current = local_time(start).date() if isinstance(start, datetime) else start
        remaining = days
        while remaining:
            current += timedelta(days=1)
            if self.is_working_day(current):
                remaining -= 1
        return current

    def subtract_working_days(self, end: date | datetime, days: int) -> date:
        """The working day from which `days` working days remain up to and including `end`'s date.

        The inverse of `add_working_days` for a working `end`: reminders "2 working days before due".
        """
        if days < 0:
            raise ValueError("days must not be negative")
        current = local_time(end).date() if isinstance(end, datetime) else end
        remaining = days
        while remaining:
            current -= timedelta(days=1)
            if self.is_working_day(current):
                remaining -= 1
        return current

    def deadline(self, start: datetime, days: int) -> datetime:
        """End of the `days`-th working day after `start`, 23:59:59 in Asia/Ho_Chi_Minh."""
        return datetime.combine(self.add_working_days(start, days), END_OF_DAY, tzinfo=VIETNAM)

    def working_days_between(self, start: date, end: date) -> int:
        """Working days after `start` up to and including `end`; negative when `end` is before `start`."""
        if end < start:
            return -self.working_days_between(end, start)
        return sum(1 for offset in range(1, (end - start).days + 1) if self.is_working_day(start + timedelta(days=offset)))

    def start_of_day(self, day: date) -> datetime:
        """Midnight opening `day` in Asia/Ho_Chi_Minh."""
        return datetime.combine(day, time(0, 0), tzinfo=VIETNAM)

    def holidays_in(self, year: int) -> list[Holiday]:
        """Days off and swapped working days of a year, with where each comes from, for the API to show."""
        listed = {
            day: Holiday(day, name, "holidays package (Vietnam)")
            for day, name in holidays.country_holidays("VN", years=year).items()
        }
        for day in sorted(d for d in self._holidays.weekend_workdays if d.year == year):
            listed[day] = Holiday(day, "Working day (official swap)", "holidays package (Vietnam)")
        for day, entry in self.overlay.items():
            if day.year == year:
                listed[day] = Holiday(day, entry.name, entry.source)
        return [listed[day] for day in sorted(listed)]


@lru_cache
def default_calendar() -> WorkingCalendar:
    return WorkingCalendar()
