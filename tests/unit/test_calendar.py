"""Working days and deadlines from DOMAIN.md's worked examples and the official holidays of 2025-2027."""

from __future__ import annotations

import json
from datetime import date, datetime, timezone
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.calendar import WorkingCalendar, default_calendar, load_overlay

CALENDAR = default_calendar()


@pytest.mark.parametrize(
    ("start", "days", "due"),
    [
        # DOMAIN.md: Sat 26 Apr 2025 was worked; 30 Apr, 1-2 May were off.
        (date(2025, 4, 25), 5, date(2025, 5, 6)),
        # DOMAIN.md: Mon 27 Apr 2026 observed for Hùng Kings' day falling on a Sunday.
        (date(2026, 4, 24), 5, date(2026, 5, 6)),
        # DOMAIN.md: across New Year 2026.
        (date(2025, 12, 31), 15, date(2026, 1, 22)),
        # Tết 2025: off Mon 27 Jan - Sat 1 Feb; Fri 24 Jan + 1 → Mon 3 Feb.
        (date(2025, 1, 24), 1, date(2025, 2, 3)),
        # Tết 2026: off Mon 16 - Fri 20 Feb; Fri 13 Feb + 5 → Fri 27 Feb.
        (date(2026, 2, 13), 5, date(2026, 2, 27)),
        # Tết 2027: off Thu 4 - Wed 10 Feb; Wed 3 Feb + 2 → Fri 12 Feb.
        (date(2027, 2, 3), 2, date(2027, 2, 12)),
        # 30/4-1/5 2027: Fri 30 Apr off, Sat 1 May's holiday observed Mon 3 May; Thu 29 Apr + 1 → Tue 4 May.
        (date(2027, 4, 29), 1, date(2027, 5, 4)),
        # 2/9 2025: Mon 1 and Tue 2 Sep off; Fri 29 Aug + 1 → Wed 3 Sep.
        (date(2025, 8, 29), 1, date(2025, 9, 3)),
        # 2/9 2026: Sat 22 Aug worked for Mon 31 Aug; Tue 1, Wed 2 Sep off. Fri 21 Aug + 1 → Sat 22 Aug.
        (date(2026, 8, 21), 1, date(2026, 8, 22)),
        (date(2026, 8, 28), 1, date(2026, 9, 3)),
        # 2/9 2027: Thu 2 and Fri 3 Sep off; Wed 1 Sep + 1 → Mon 6 Sep.
        (date(2027, 9, 1), 1, date(2027, 9, 6)),
        # Vietnamese Culture Day, 24 Nov, a day off from 2026: Mon 23 Nov 2026 + 1 → Wed 25 Nov.
        (date(2026, 11, 23), 1, date(2026, 11, 25)),
        (date(2026, 11, 20), 0, date(2026, 11, 20)),
    ],
)
def test_add_working_days(start: date, days: int, due: date) -> None:
    assert CALENDAR.add_working_days(start, days) == due


def test_the_deadline_is_the_end_of_the_day_in_vietnam_and_the_start_is_read_in_vietnam() -> None:
    # 23:30 UTC on Thu 24 Apr 2025 is already Fri 25 Apr in Hà Nội: the DOMAIN.md example applies.
    due = CALENDAR.deadline(datetime(2025, 4, 24, 23, 30, tzinfo=timezone.utc), 5)
    assert (due.year, due.month, due.day, due.hour, due.minute, due.second) == (2025, 5, 6, 23, 59, 59)
    assert due.utcoffset().total_seconds() == 7 * 3600


def test_weekends_and_holidays_are_not_working_days_but_swapped_saturdays_are() -> None:
    assert not CALENDAR.is_working_day(date(2025, 4, 30))
    assert not CALENDAR.is_working_day(date(2025, 5, 2))  # the bridge day
    assert CALENDAR.is_working_day(date(2025, 4, 26))  # the Saturday worked for it
    assert not CALENDAR.is_working_day(date(2025, 4, 27))
    assert CALENDAR.is_working_day(date(2025, 4, 28))


def test_the_operator_overlay_shifts_deadlines(tmp_path: Path) -> None:
    overlay = tmp_path / "overlay.json"
    overlay.write_text(json.dumps({"entries": [
        {"date": "2025-05-05", "kind": "day_off", "name": "announced day off", "source": "test"},
    ]}))
    calendar = WorkingCalendar(load_overlay(overlay))
    assert calendar.add_working_days(date(2025, 4, 25), 5) == date(2025, 5, 7)
    assert [h.name for h in calendar.holidays_in(2025) if h.day == date(2025, 5, 5)] == ["announced day off"]


def test_working_days_between_counts_after_the_start_up_to_the_end() -> None:
    assert CALENDAR.working_days_between(date(2025, 4, 25), date(2025, 5, 6)) == 5
    assert CALENDAR.working_days_between(date(2025, 5, 6), date(2025, 4, 25)) == -5
    assert CALENDAR.working_days_between(date(2025, 4, 25), date(2025, 4, 25)) == 0


@given(st.dates(min_value=date(2025, 1, 1), max_value=date(2027, 10, 31)), st.integers(min_value=0, max_value=60))
def test_between_inverts_add(start: date, days: int) -> None:
    assert CALENDAR.working_days_between(start, CALENDAR.add_working_days(start, days)) == days


def test_holidays_of_a_year_name_their_source() -> None:
    listed = {h.day: h for h in CALENDAR.holidays_in(2025)}
    assert listed[date(2025, 4, 26)].name == "Working day (official swap)"
    assert date(2025, 9, 2) in listed and listed[date(2025, 9, 2)].source


def test_an_operator_overlay_file_named_in_the_environment_is_the_one_in_force(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from shared.calendar import OVERLAY_ENV, overlay_path

    overlay = tmp_path / "announced.json"
    overlay.write_text(json.dumps({"entries": [
        # An invented announcement: Sat 9 Jan 2027 worked in exchange for Fri 15 Jan 2027.
        {"date": "2027-01-09", "kind": "working_day", "name": "swap", "source": "test announcement"},
        {"date": "2027-01-15", "kind": "day_off", "name": "swap", "source": "test announcement"},
    ]}))
    monkeypatch.setenv(OVERLAY_ENV, str(overlay))
    assert overlay_path() == overlay
    calendar = WorkingCalendar()
    # Fri 8 Jan 2027 + 5: Sat 9 (worked), 11, 12, 13, 14 → Thu 14 Jan; + 6 skips Fri 15 → Mon 18 Jan.
    assert calendar.add_working_days(date(2027, 1, 8), 5) == date(2027, 1, 14)
    assert calendar.add_working_days(date(2027, 1, 8), 6) == date(2027, 1, 18)
    monkeypatch.delenv(OVERLAY_ENV)
    assert WorkingCalendar().add_working_days(date(2027, 1, 8), 5) == date(2027, 1, 15)


def test_a_bad_overlay_entry_is_refused(tmp_path: Path) -> None:
    overlay = tmp_path / "bad.json"
    overlay.write_text(json.dumps({"entries": [{"date": "2027-01-09", "kind": "holiday", "name": "x", "source": "y"}]}))
    with pytest.raises(ValueError, match="kind"):
        load_overlay(overlay)


@pytest.mark.parametrize(("end", "days", "start"), [
    # Due Tue 6 May 2025: 2 working days remain from Tue 29 Apr (30 Apr - 4 May off or weekend).
    (date(2025, 5, 6), 2, date(2025, 4, 29)),
    # Due Wed 11 Feb 2027, after Tết (4-10 Feb off): 1 working day remains from Wed 3 Feb.
    (date(2027, 2, 11), 1, date(2027, 2, 3)),
    # Due Thu 3 Sep 2026, after 31 Aug - 2 Sep off: from Thu 27 Aug only Fri 28 Aug and Thu 3 Sep remain.
    (date(2026, 9, 3), 2, date(2026, 8, 27)),
])
def test_counting_back_is_the_inverse_of_adding(end: date, days: int, start: date) -> None:
    assert CALENDAR.subtract_working_days(end, days) == start
    assert CALENDAR.add_working_days(start, days) == end
