"""The public page speaks Vietnamese first and English, with the same phrases in both."""

from __future__ import annotations

from datetime import datetime, timezone

from services.publisher.i18n import MESSAGES, NAMES, translator


def test_both_languages_have_every_phrase() -> None:
    assert set(MESSAGES["vi"]) == set(MESSAGES["en"])
    for kind, names in NAMES.items():
        assert set(names["vi"]) == set(names["en"]), kind


def test_periods_numbers_and_times_read_as_each_language_writes_them() -> None:
    vi, en = translator("vi"), translator("en")
    assert [vi.period(p) for p in ("2026-11", "2026-Q4", "2026-H1", "2026")] == [
        "Tháng 11/2026", "Quý IV/2026", "6 tháng đầu năm 2026", "Năm 2026"]
    assert [en.period(p) for p in ("2026-11", "2026-Q4", "2026-H1", "2026")] == [
        "November 2026", "Q4 2026", "H1 2026", "Year 2026"]
    assert vi.number(21287.5) == "21.287,50" and en.number(21287.5) == "21,287.50"
    assert vi.percent(2 / 3) == "66,7%" and en.percent(2 / 3) == "66.7%"
    # 23:30 UTC on 31 March is 06:30 on 1 April in Việt Nam.
    assert vi.moment(datetime(2026, 3, 31, 23, 30, tzinfo=timezone.utc)) == "01/04/2026 06:30"


def test_unknown_names_are_shown_as_they_come_and_unknown_languages_fall_back_to_vietnamese() -> None:
    assert translator("vi").name("band", "satisfied") == "Hài lòng"
    assert translator("en").name("profile", "new-profile_2027") == "new profile 2027"
    assert translator("fr").language == "vi"
