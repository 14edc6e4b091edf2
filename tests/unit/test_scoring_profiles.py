"""Every scoring profile against the regulations' own worked numbers (DOMAIN.md) and hand-computed cases."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pytest

from services.scoring.domain.counters import DossierFacts, Step, dossier_vector, rating_vector, RatingFacts, total_of
from services.scoring.domain.profiles import ProfileBook
from services.scoring.domain.profiles.base import INSUFFICIENT_DATA, NOT_SATISFIED, PROVISIONAL, SATISFIED
from services.scoring.domain.profiles import UnknownParameter
from shared.calendar import default_calendar

VN = timezone(timedelta(hours=7))
BOOK = ProfileBook.build()
CALENDAR = default_calendar()

# HCMC 104/2024 worked example: 40 dossiers — 36 on time, 3 late by 2 working days, 1 late by 7;
# 38 with ≤ 1 supplement request, 2 with 2; 32 ratings with attitude, 30 good; D = 17.5; E = 1.
HCMC_EXAMPLE = {
    "dossiers": 40, "on_time": 36, "late_2": 3, "late_over_5": 1, "supplement_2plus": 2,
    "attitude_answered": 32, "attitude_good": 30, "ratings": 32,
}


def hcmc(counts: dict[str, int], inputs: dict[str, object], **params: object):  # type: ignore[no-untyped-def]
    book = ProfileBook.build({"hcmc-2024": params}) if params else BOOK
    scored = book.score("hcmc-2024", "2026-11", counts, inputs)
    assert scored is not None
    return scored[0]


@pytest.mark.parametrize(
    ("params", "inputs", "a", "k", "band"),
    [
        ({}, {"feedback_handling": 17.5, "public_listing": True}, 0.900, 21.2875, SATISFIED),
        ({"a_grace_working_days": 5}, {"feedback_handling": 17.5, "public_listing": True}, 0.975, 21.3625, SATISFIED),
        ({}, {"feedback_handling": 16.0, "public_listing": True}, 0.900, 19.7875, NOT_SATISFIED),
    ],
)
def test_hcmc_2024_worked_example(params: dict, inputs: dict, a: float, k: float, band: str) -> None:
    result = hcmc(HCMC_EXAMPLE, inputs, **params)
    assert result.components["A"]["value"] == pytest.approx(a, abs=5e-4)
    assert result.components["B"]["value"] == pytest.approx(0.950, abs=5e-4)
    assert result.components["C"]["value"] == pytest.approx(0.9375, abs=5e-5)
    assert result.score == pytest.approx(k, abs=5e-5)
    assert result.band == band and not result.provisional and result.ranked
    assert result.max_score == 22


def test_hcmc_2024_k_of_exactly_20_is_not_above_20_unless_configured() -> None:
    # A = B = C = 1 with D = 16 and E = 1 gives K = 20 exactly.
    counts = {"dossiers": 10, "on_time": 10, "attitude_answered": 10, "attitude_good": 10}
    inputs = {"feedback_handling": 16.0, "public_listing": True}
    assert hcmc(counts, inputs).score == 20.0
    assert hcmc(counts, inputs).band == NOT_SATISFIED
    assert hcmc(counts, inputs, k_threshold_inclusive=True).band == SATISFIED


def test_hcmc_2024_is_provisional_until_d_and_e_arrive_and_shows_what_it_has() -> None:
    result = hcmc(HCMC_EXAMPLE, {"feedback_handling": 17.5})
    assert result.provisional and result.band == PROVISIONAL and not result.ranked
    assert result.score == pytest.approx(0.9 + 0.95 + 0.9375 + 17.5)
    assert result.components["E"]["value"] is None


def test_hcmc_2024_b_over_returned_dossiers() -> None:
    counts = {**HCMC_EXAMPLE, "supplement_1": 6}  # 8 returned at least once, 2 of them twice
    result = hcmc(counts, {"feedback_handling": 17.5, "public_listing": True}, b_denominator="returned_dossiers")
    assert result.components["B"]["value"] == pytest.approx(6 / 8)


def test_hcmc_2024_few_dossiers_are_insufficient_data() -> None:
    counts = {"dossiers": 3, "on_time": 3, "attitude_answered": 3, "attitude_good": 3}
    result = hcmc(counts, {"feedback_handling": 18.0, "public_listing": True})
    assert result.band == INSUFFICIENT_DATA and not result.ranked
    assert result.components["A"]["wilson_95"][0] < 0.5  # three on time out of three is not certainty


@pytest.mark.parametrize(("bad", "points"), [(12, 6.00), (30, 5.667)])
def test_qd766_dossier_satisfaction_worked_example(bad: int, points: float) -> None:
    # 200 dossiers; (200 − 12)/200 = 94% → 6.00; (200 − 30)/200 = 85% → 0.85 × 6 / 0.9 = 5.667.
    scored = BOOK.score("qd766-satisfaction", "2026-Q3", {"dossiers": 200, "qd766_bad": bad}, {})
    assert scored is not None
    result = scored[0]
    assert result.components["dossier_satisfaction"]["value"] == pytest.approx(points, abs=5e-4)
    assert result.provisional and result.band == PROVISIONAL  # the two feedback sub-scores are not in yet


def test_qd766_worked_example_from_the_dossiers_themselves() -> None:
    """6 overdue (2 of them by a second supplement request), 5 others rated dissatisfied, 1 other complaint."""
    received, due = datetime(2026, 8, 3, 8, tzinfo=VN), datetime(2026, 8, 14, 17, tzinfo=VN)
    on_time, late = datetime(2026, 8, 12, 10, tzinfo=VN), datetime(2026, 8, 18, 10, tzinfo=VN)

    def vector(completed: datetime, supplements: int = 0, complaint: str = "none", rated_dissatisfied: bool = False) -> dict[str, int]:
        facts = DossierFacts(received, due, completed, "approved", supplement_requests=supplements, complaint=complaint)
        return dossier_vector(facts, CALENDAR, rated_dissatisfied)

    vectors = (
        [vector(late)] * 4 + [vector(on_time, supplements=2)] * 2 + [vector(on_time, rated_dissatisfied=True)] * 5
        + [vector(on_time, complaint="filed")] + [vector(on_time)] * 188
    )
    counts = total_of(vectors)
    assert (counts["dossiers"], counts["qd766_bad"]) == (200, 12)
    inputs = {"feedback_received": 40, "feedback_answered_on_time": 38, "feedback_dissatisfied_or_overdue": 2}
    scored = BOOK.score("qd766-satisfaction", "2026-Q3", counts, inputs)
    assert scored is not None
    result = scored[0]
    assert result.components["dossier_satisfaction"]["value"] == pytest.approx(6.0)
    assert result.components["feedback_on_time"]["value"] == pytest.approx(6.0)  # 95% ≥ 90%
    assert result.score == pytest.approx(18.0) and result.band == "excellent" and not result.provisional


def test_qd766_pro_rata_below_ninety_percent_and_no_feedback_received() -> None:
    inputs = {"feedback_received": 10, "feedback_answered_on_time": 6, "feedback_dissatisfied_or_overdue": 0}
    scored = BOOK.score("qd766-satisfaction", "2026-Q3", {"dossiers": 10}, inputs)
    assert scored is not None
    assert scored[0].components["feedback_on_time"]["value"] == pytest.approx(0.6 * 6 / 0.9)
    none_received = BOOK.score("qd766-satisfaction", "2026-Q3", {"dossiers": 10}, {"feedback_received": 0, "feedback_answered_on_time": 0, "feedback_dissatisfied_or_overdue": 0})
    assert none_received is not None and none_received[0].score == pytest.approx(18.0)


def test_decree_61_hand_computed_unit() -> None:
    """Three dossiers due Fri 14 Aug 2026, 17:00.

    D1 done Wed 12 Aug, no contacts, online, one step early         → 2, 2, 2, 2, attitude 2
    D2 done Fri 14 Aug (the due date), 1 supplement, in person       → 1, 1, 1, 1, attitude 1
    D3 done Tue 18 Aug (late), 3 contacts, 2 agencies, step late, complaint verified → 0, 0, 0, 0, attitude 0
    Means: index 1 = 1.0, 2 = 1.0, 3 = 1.0, 4 = 1.0, 7 = 1.0; unit inputs 5 = 2, 6 = 1, 8 = 2, 9 = 1 → 11.0.
    """
    received, due = datetime(2026, 8, 3, 8, tzinfo=VN), datetime(2026, 8, 14, 17, tzinfo=VN)
    d1 = DossierFacts(received, due, datetime(2026, 8, 12, 9, tzinfo=VN), "approved", channel="online",
                      steps=(Step(datetime(2026, 8, 10, 17, tzinfo=VN), datetime(2026, 8, 7, 9, tzinfo=VN)),))
    d2 = DossierFacts(received, due, datetime(2026, 8, 14, 10, tzinfo=VN), "approved", supplement_requests=1)
    d3 = DossierFacts(received, due, datetime(2026, 8, 18, 10, tzinfo=VN), "refused", applicant_contacts=3, agencies_contacted=2,
                      complaint="verified", steps=(Step(datetime(2026, 8, 10, 17, tzinfo=VN), datetime(2026, 8, 12, 9, tzinfo=VN)),))
    counts = total_of(dossier_vector(d, CALENDAR) for d in (d1, d2, d3))
    inputs = {"decree61_one_stop_handling": 2, "decree61_disclosure": 1, "decree61_feedback_handling": 2, "decree61_online_services": 1}
    scored = ProfileBook.build(minimum_count=3).score("decree-61", "2026-08", counts, inputs)
    assert scored is not None
    result, version = scored
    assert [result.components[f"index_{i}"]["value"] for i in range(1, 10)] == [1.0, 1.0, 1.0, 1.0, 2, 1, 1.0, 2, 1]
    assert result.score == pytest.approx(11.0) and result.max_score == 18
    assert result.band == "scored" and not result.provisional
    assert version.version == "2025.1"


def test_decree_61_version_in_force_follows_the_period_and_bands_are_configurable() -> None:
    assert BOOK.version_for("decree-61", "2025-06").version == "2018.1"  # type: ignore[union-attr]
    assert BOOK.version_for("decree-61", "2025-Q3").version == "2025.1"  # type: ignore[union-attr]
    assert BOOK.version_for("decree-61", "2025").version == "2025.1"  # type: ignore[union-attr]  # in force at year end
    assert BOOK.version_for("hcmc-2024", "2024-10") is None  # before Decision 104/2024
    assert BOOK.score("hcmc-2024", "2024-10", {}, {}) is None
    banded = ProfileBook.build({"decree-61": {"bands": [["good", 15.0], ["fair", 10.0]]}}, minimum_count=1)
    scored = banded.score("decree-61", "2026-08", {"dossiers": 1, "d61_time": 2, "d61_steps": 2, "d61_contacts": 2, "d61_agencies": 2, "d61_attitude": 2},
                          {"decree61_one_stop_handling": 2, "decree61_disclosure": 2, "decree61_feedback_handling": 0, "decree61_online_services": 0})
    assert scored is not None and scored[0].score == 14.0 and scored[0].band == "fair"


def test_sipas_factor_shares_and_overall_mean() -> None:
    """Four ratings: access 5,5,4,2 → 3/4; procedure 4,3,3 → 1/3; officer 5,5,5,5 → 1; result 1 → 0; feedback none."""
    answers = [
        {"access": 5, "procedure": 4, "officer": 5, "result": 1},
        {"access": 5, "procedure": 3, "officer": 5},
        {"access": 4, "procedure": 3, "officer": 5},
        {"access": 2, "officer": 5},
    ]
    counts = total_of(rating_vector(RatingFacts("satisfied", None, a)) for a in answers)
    scored = ProfileBook.build(minimum_count=1).score("sipas", "2026-11", counts, {})
    assert scored is not None
    result = scored[0]
    assert result.components["access"]["value"] == pytest.approx(0.75)
    assert result.components["procedure"]["value"] == pytest.approx(1 / 3, abs=1e-6)
    assert result.components["feedback"]["value"] is None and result.components["factors_answered"] == 4
    assert result.score == pytest.approx((0.75 + 1 / 3 + 1.0 + 0.0) / 4 * 100, abs=1e-4)
    assert result.band == "below_target"


def test_satisfied_share_is_a_percentage_with_its_interval() -> None:
    scored = BOOK.score("satisfied-share", "2026-11", {"ratings": 40, "satisfied": 34}, {})
    assert scored is not None
    result = scored[0]
    assert result.score == 85.0 and result.band == SATISFIED
    assert result.components["share"] == 0.85 and result.components["satisfied"] == 34
    low, high = result.components["wilson_95"]
    assert low < 0.85 < high
    assert BOOK.score("satisfied-share", "2026-11", {"ratings": 10, "satisfied": 7}, {})[0].band == NOT_SATISFIED  # type: ignore[index]
    assert BOOK.score("satisfied-share", "2026-11", {"ratings": 10, "satisfied": 8}, {})[0].band == SATISFIED  # type: ignore[index]
    assert BOOK.score("satisfied-share", "2026-11", {"ratings": 3, "satisfied": 3}, {})[0].band == INSUFFICIENT_DATA  # type: ignore[index]
    assert BOOK.score("satisfied-share", "2026-11", {}, {})[0].score is None  # type: ignore[index]
    with pytest.raises(ValueError):
        BOOK.score("satisfied-share", "2026-11", {"ratings": 2, "satisfied": 3}, {})


def test_unknown_profiles_and_parameters_are_refused() -> None:
    with pytest.raises(UnknownParameter):
        ProfileBook.build({"hcmc-2024": {"grace": 5}})
    with pytest.raises(UnknownParameter):
        ProfileBook.build({"nonsense": {}})
    with pytest.raises(ValueError):
        ProfileBook.build({"hcmc-2024": {"a_grace_working_days": 9}})


def test_every_profile_is_described_with_its_parameters_and_versions() -> None:
    described = {p["profile"]: p for p in ProfileBook.build({"hcmc-2024": {"a_grace_working_days": 5}}).describe()}
    assert set(described) == {"hcmc-2024", "qd766-satisfaction", "decree-61", "sipas", "satisfied-share"}
    hcmc_versions = described["hcmc-2024"]["versions"]
    assert hcmc_versions[0]["parameters"]["a_grace_working_days"] == 5
    assert hcmc_versions[0]["parameters"]["b_denominator"] == "resolved_dossiers"
    assert hcmc_versions[0]["valid_from"] == date(2024, 11, 19).isoformat()
    assert "104/2024" in described["hcmc-2024"]["summary"]
