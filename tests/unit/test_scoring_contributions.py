"""Counting rules: working days late, what a dossier and a rating add, and corrections in any order."""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.scoring.domain.contributions import COUNTED, HELD, REMOVED, DossierState, Placement, RatingState, rating_placement
from services.scoring.domain.counters import DossierFacts, RatingFacts, dossier_vector, rating_vector, working_days_late
from shared.calendar import default_calendar

VN = timezone(timedelta(hours=7))
CALENDAR = default_calendar()


def vn(day: str, hour: int = 10) -> datetime:
    return datetime.fromisoformat(day).replace(hour=hour, tzinfo=VN)


@pytest.mark.parametrize(
    ("due", "completed", "late"),
    [
        (vn("2026-11-02", 17), vn("2026-11-02", 16), 0),  # before the due time
        (vn("2026-11-02", 17), vn("2026-11-02", 18), 1),  # after the due hour on the due date: one working day late
        (vn("2026-11-02", 17), vn("2026-11-05"), 3),  # Mon → Thu
        (vn("2026-11-02", 17), vn("2026-11-11"), 7),  # Mon → Wed of the next week
        (vn("2026-11-20", 17), vn("2026-11-26"), 3),  # Fri → Thu: the weekend and 24 Nov (Culture Day) do not count
        (vn("2026-11-20", 17), vn("2026-11-21"), 1),  # finished on the Saturday after: late all the same
    ],
)
def test_working_days_late(due: datetime, completed: datetime, late: int) -> None:
    assert working_days_late(due, completed, CALENDAR) == late


def test_a_dossier_adds_its_lateness_supplements_and_decree_61_points() -> None:
    facts = DossierFacts(vn("2026-11-01"), vn("2026-11-02", 17), vn("2026-11-11"), "approved", supplement_requests=2)
    vector = dossier_vector(facts, CALENDAR)
    assert vector["dossiers"] == 1 and vector["late_over_5"] == 1 and vector["supplement_2plus"] == 1
    assert vector["qd766_bad"] == 1
    assert "d61_time" not in vector and vector["d61_agencies"] == 1  # late: 0 points; in person: only the desk
    withdrawn = dossier_vector(DossierFacts(vn("2026-11-01"), vn("2026-11-02", 17), vn("2026-11-02"), "withdrawn"), CALENDAR)
    assert withdrawn == {"dossiers_withdrawn": 1}


def test_a_rating_adds_its_answers() -> None:
    vector = rating_vector(RatingFacts("very_satisfied", "good", {"access": 4, "procedure": 3, "officer": None, "result": 5, "feedback": 1}))
    assert vector == {
        "ratings": 1, "satisfied": 1, "attitude_answered": 1, "attitude_good": 1,
        "sipas_access_answers": 1, "sipas_access_satisfied": 1, "sipas_procedure_answers": 1,
        "sipas_result_answers": 1, "sipas_result_satisfied": 1, "sipas_feedback_answers": 1,
    }
    assert rating_vector(RatingFacts("very_dissatisfied")) == {"ratings": 1, "dissatisfied": 1}


HERE = Placement("79.P1", "2026-11")
ANSWERS = rating_vector(RatingFacts("dissatisfied", "bad"))
T1, T2 = vn("2026-11-20"), vn("2026-11-21")


def test_flagged_ratings_are_held_until_verified_and_not_genuine_removes_any_rating() -> None:
    flagged = RatingState("r1").arrive("D1", HERE, ANSWERS, flagged=True)
    assert flagged.status == HELD and flagged.vector() == {}
    assert flagged.verify("genuine", T1).status == COUNTED
    assert flagged.verify("genuine", T1).vector() == ANSWERS
    accepted = RatingState("r2").arrive("D1", HERE, ANSWERS, flagged=False)
    assert accepted.verify("not_genuine", T1).status == REMOVED
    assert accepted.verify("not_genuine", T1).verify("genuine", T2).status == COUNTED  # the newest verdict holds
    assert accepted.supersede("r3").status == REMOVED


def test_a_rating_counts_where_its_dossier_is() -> None:
    rating = RatingState("r1").arrive("D1", HERE, ANSWERS, flagged=False)
    assert rating_placement(rating, None) == HERE
    moved = DossierState("D1", 2, Placement("79.P2", "2026-12"), DossierFacts(T1, T1, T1, "approved"))
    assert rating_placement(rating, moved) == moved.placement


OPERATIONS = [
    ("arrive", False), ("arrive", True), ("verify", ("genuine", T1)), ("verify", ("not_genuine", T2)),
    ("verify", ("genuine", T2)), ("supersede", "r9"), ("supersede", "r5"),
]


def _apply(state: RatingState, operation: tuple[str, object]) -> RatingState:
    kind, argument = operation
    if kind == "arrive":
        return state.arrive("D1", HERE, ANSWERS, flagged=bool(argument))
    if kind == "verify":
        verdict, when = argument  # type: ignore[misc]
        return state.verify(verdict, when)
    return state.supersede(str(argument))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(OPERATIONS), min_size=1, max_size=8), st.randoms(use_true_random=False))
def test_any_order_and_any_repetition_of_a_ratings_events_gives_one_state(operations: list, rng) -> None:  # type: ignore[no-untyped-def]
    shuffled = list(operations) + list(operations[: rng.randint(0, len(operations))])  # some delivered twice
    rng.shuffle(shuffled)
    in_order = RatingState("r1")
    for operation in operations:
        in_order = _apply(in_order, operation)
    any_order = RatingState("r1")
    for operation in shuffled:
        any_order = _apply(any_order, operation)
    assert any_order == in_order


def test_every_order_of_flag_verdict_and_correction_agrees() -> None:
    operations = [("arrive", True), ("verify", ("genuine", T1)), ("supersede", "r9")]
    results = set()
    for order in itertools.permutations(operations):
        state = RatingState("r1")
        for operation in order:
            state = _apply(state, operation)
        results.add(state.status)
    assert results == {REMOVED}
