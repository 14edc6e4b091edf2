"""Đà Nẵng 5697/2017 Art. 4.2.a: self-rating and survey distortion are flagged, each with its reason."""

from __future__ import annotations

import pytest

from services.intake.domain.integrity import Evidence, IntegrityLimits, flags_for

LIMITS = IntegrityLimits(burst_max_ratings=5, burst_window_seconds=60, repeat_max_ratings=3, repeat_window_days=90)


def rules(evidence: Evidence) -> list[str]:
    return [flag.rule for flag in flags_for(evidence, LIMITS)]


def test_a_citizen_rating_on_a_quiet_kiosk_counts_at_once() -> None:
    assert rules(Evidence("79.SNV", device_id="K1", device_ratings_in_window=1, respondent_ratings_per_officer={"CB1": 1})) == []


def test_a_device_or_phone_of_the_units_officer_is_flagged_naming_the_officer() -> None:
    flags = flags_for(Evidence("79.SNV", device_id="TAB-7", device_owner="CB7", phone_owner="CB7"), LIMITS)
    assert [f.rule for f in flags] == ["staff_device", "staff_phone"]
    assert "TAB-7" in flags[0].detail and "CB7" in flags[0].detail and "CB7" in flags[1].detail


@pytest.mark.parametrize(("in_window", "flagged"), [(5, False), (6, True), (40, True)])
def test_more_than_n_ratings_from_one_kiosk_in_the_window_is_a_burst(in_window: int, flagged: bool) -> None:
    assert ("kiosk_burst" in rules(Evidence("79.SNV", device_id="K1", device_ratings_in_window=in_window))) is flagged


def test_a_burst_needs_a_device() -> None:
    assert rules(Evidence("79.SNV", device_id=None, device_ratings_in_window=99)) == []


def test_many_ratings_by_one_respondent_for_one_officer_are_flagged_per_officer() -> None:
    flags = flags_for(Evidence("79.SNV", respondent_ratings_per_officer={"CB1": 3, "CB2": 4, "CB3": 9}), LIMITS)
    assert [(f.rule, f.detail.split(" officer ")[1].split()[0]) for f in flags] == [("repeat_respondent", "CB2"), ("repeat_respondent", "CB3")]
