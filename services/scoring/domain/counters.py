"""What one dossier or one rating adds to its unit's counters — pure, and independent of profile parameters.

Every figure of every profile is computed from these counters (plus the unit's assessments), so a unit's
aggregate is always the plain sum of its current contributions, and a province's is the sum of its units'.
Counters keep enough detail (lateness by working day, supplement requests 1 and 2+) for each profile's
named parameters to be applied when scoring, never when counting.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime

from shared.calendar import WorkingCalendar
from shared.periods import local_time

SIPAS_FACTORS = ("access", "procedure", "officer", "result", "feedback")
MAX_GRACE_WORKING_DAYS = 5  # HCMC 104/2024 A: late by more than 5 working days scores 0 whatever the reading

DOSSIER_COUNTERS = (
    "dossiers",  # resolved: approved or refused
    "dossiers_withdrawn",  # withdrawn by the applicant: not a resolution, kept out of A, B and the indices
    "on_time",
    "late_1", "late_2", "late_3", "late_4", "late_5", "late_over_5",  # working days late
    "supplement_1", "supplement_2plus",  # supplement requests (HCMC B; QĐ 766 counts 2+ as overdue)
    "d61_time", "d61_steps", "d61_contacts", "d61_agencies", "d61_attitude",  # Decree 61 points, summed
    "qd766_bad",  # QĐ 766: overdue, 2+ supplements, a complaint, or rated dissatisfied
)
RATING_COUNTERS = (
    "ratings",
    "satisfied",
    "dissatisfied",
    "attitude_answered",
    "attitude_good",
    *(f"sipas_{factor}_{kind}" for factor in SIPAS_FACTORS for kind in ("answers", "satisfied")),
)
COUNTERS = DOSSIER_COUNTERS + RATING_COUNTERS

Vector = dict[str, int]  # sparse: counters absent are zero
SATISFIED = frozenset({"very_satisfied", "satisfied"})
DISSATISFIED = frozenset({"dissatisfied", "very_dissatisfied"})
RESOLVED = frozenset({"approved", "refused"})


@dataclass(frozen=True)
class Step:
    due_at: datetime
    completed_at: datetime


@dataclass(frozen=True)
class DossierFacts:
    """The facts of a completed dossier that scoring uses (from dossier.completed)."""

    received_at: datetime
    due_at: datetime
    completed_at: datetime
    result: str
    channel: str = "in_person"
    supplement_requests: int = 0
    complaint: str = "none"  # none | filed | verified
    applicant_contacts: int | None = None
    agencies_contacted: int | None = None
    steps: tuple[Step, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class RatingFacts:
    overall: str
    attitude: str | None = None
    criteria: Mapping[str, int | None] | None = None


def working_days_late(due_at: datetime, completed_at: datetime, calendar: WorkingCalendar) -> int:
    """0 when completed by the due time; else the working days after the due date, at least 1.

    A dossier finished after its due hour on the due date itself, or over the following weekend, is late
    all the same: it counts as one working day late rather than as on time.
    """
    if completed_at <= due_at:
        return 0
    days = calendar.working_days_between(local_time(due_at).date(), local_time(completed_at).date())
    return max(1, days)


def timeliness_points(due_at: datetime, completed_at: datetime) -> int:
    """Decree 61/2018 indices 1 and 2: shorter than the limit 2, equal (completed on the due date) 1, longer 0."""
    due: date = local_time(due_at).date()
    done: date = local_time(completed_at).date()
    if done < due:
        return 2
    return 1 if done == due else 0


def count_points(count: int) -> int:
    """Decree 61/2018 indices 3 and 4: none 2, one 1, more 0."""
    return 2 if count <= 0 else 1 if count == 1 else 0


def decree61_attitude_points(time_points: int, complaint: str) -> int:
    """Decree 61/2018 index 7: early and no complaint 2; on time and no complaint 1; a verified complaint 0.

    Late without a complaint earns neither point (the index rewards resolving early or on time); a complaint
    that was filed but not verified is not "no complaint", so it keeps at most the on-time point.
    """
    if complaint == "verified" or time_points == 0:
        return 0
    if complaint == "filed":
        return 1
    return time_points


def dossier_vector(facts: DossierFacts, calendar: WorkingCalendar, rated_dissatisfied: bool = False) -> Vector:
    """The counters one completed dossier adds to its unit and period.

    `rated_dissatisfied`: at least one counted rating of this dossier answered dissatisfied (QĐ 766).
    """
    if facts.result not in RESOLVED:
        return {"dossiers_withdrawn": 1}
    vector: Vector = {"dossiers": 1}
    late = working_days_late(facts.due_at, facts.completed_at, calendar)
    if late == 0:
        vector["on_time"] = 1
    elif late <= MAX_GRACE_WORKING_DAYS:
        vector[f"late_{late}"] = 1
    else:
        vector["late_over_5"] = 1
    if facts.supplement_requests == 1:
        vector["supplement_1"] = 1
    elif facts.supplement_requests >= 2:
        vector["supplement_2plus"] = 1

    time_points = timeliness_points(facts.due_at, facts.completed_at)
    # Index 2 without step data: the one-stop desk's own step is the whole dossier.
    step_points = min((timeliness_points(s.due_at, s.completed_at) for s in facts.steps), default=time_points)
    contacts = facts.applicant_contacts if facts.applicant_contacts is not None else facts.supplement_requests
    # Index 4 without data: an online or postal applicant contacted no agency, an in-person one only the desk.
    agencies = facts.agencies_contacted if facts.agencies_contacted is not None else (1 if facts.channel == "in_person" else 0)
    points = {
        "d61_time": time_points,
        "d61_steps": step_points,
        "d61_contacts": count_points(contacts),
        "d61_agencies": count_points(agencies),
        "d61_attitude": decree61_attitude_points(time_points, facts.complaint),
    }
    vector.update({name: value for name, value in points.items() if value})

    overdue = late > 0 or facts.supplement_requests >= 2
    if overdue or facts.complaint != "none" or rated_dissatisfied:
        vector["qd766_bad"] = 1
    return vector


def rating_vector(facts: RatingFacts) -> Vector:
    """The counters one counted rating adds to its dossier's unit and period."""
    vector: Vector = {"ratings": 1}
    if facts.overall in SATISFIED:
        vector["satisfied"] = 1
    elif facts.overall in DISSATISFIED:
        vector["dissatisfied"] = 1
    if facts.attitude is not None:
        vector["attitude_answered"] = 1
        if facts.attitude == "good":
            vector["attitude_good"] = 1
    for factor, answer in (facts.criteria or {}).items():
        if answer is None or factor not in SIPAS_FACTORS:
            continue
        vector[f"sipas_{factor}_answers"] = 1
        if answer >= 4:
            vector[f"sipas_{factor}_satisfied"] = 1
    return vector


def is_dissatisfied(overall: str) -> bool:
    return overall in DISSATISFIED


def add_into(total: dict[str, int], vector: Mapping[str, int], sign: int = 1) -> None:
    for name, value in vector.items():
        total[name] = total.get(name, 0) + sign * value


def total_of(vectors: Iterable[Mapping[str, int]]) -> Vector:
    total: Vector = {}
    for vector in vectors:
        add_into(total, vector)
    return total


def full(vector: Mapping[str, int]) -> dict[str, int]:
    """Every counter, zeros included."""
    return {name: int(vector.get(name, 0)) for name in COUNTERS}
