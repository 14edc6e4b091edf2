"""Profile `qd766-satisfaction`: the 18-point satisfaction group of the national portal's real-time index
(Decision 766/QĐ-TTg, 23 Jun 2022).

Three sub-scores of 6 points each: (1) feedback answered on time / feedback received; (2) (feedback −
feedback with a dissatisfied response or overdue) / feedback; (3) (dossiers − dossiers rated dissatisfied,
with a complaint, or overdue) / dossiers, where more than one supplement request counts as overdue. A
rate at or above 90% earns the full 6 points, below it `rate × 6 / 0.90`. Hài Lòng computes (3) from
dossiers and ratings; (1) and (2) arrive as unit assessments from the feedback system, and until they do
the figure is provisional. Bands: the portal calls 90–100% excellent and under 50% weak; the bands in
between are unpublished, so they are one "intermediate" band here (parameters).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from services.scoring.domain.intervals import share_component
from services.scoring.domain.profiles.base import Counts, Figure, Inputs, ProfileVersion, band_of, count, figure

NAME = "qd766-satisfaction"
MAX_SCORE = 18.0


@dataclass(frozen=True)
class Parameters:
    points_per_sub_score: float = 6.0
    full_points_rate: float = 0.90  # at or above: full points; below: pro rata to this rate
    empty_feedback_rate: float = 1.0  # the rate when no feedback was received (nothing handled badly)
    excellent_from: float = 0.90  # share of the maximum, the portal's "excellent" band
    weak_below: float = 0.50  # share of the maximum, the portal's "weak" band
    minimum_count: int = 5  # dossiers


VERSIONS = (
    ProfileVersion("2022.1", date(2022, 6, 23), None, "Decision 766/QĐ-TTg, satisfaction group (18 points)", Parameters()),
)


def points(rate: float, params: Parameters) -> float:
    """Full points at or above the full-points rate, pro rata below it."""
    rate = min(1.0, max(0.0, rate))  # inconsistent inputs (e.g. more answered than received) are capped
    if rate >= params.full_points_rate:
        return params.points_per_sub_score
    return rate * params.points_per_sub_score / params.full_points_rate


def _sub_score(good: int | None, total: int | None, params: Parameters, empty_rate: float | None) -> dict[str, object]:
    if good is None or total is None:
        return {"value": None, "rate": None, "points": good, "of": total, "wilson_95": None, "source": "assessment"}
    if total == 0:
        rate = empty_rate if empty_rate is not None else None
        return {"value": None if rate is None else round(points(rate, params), 6), "rate": rate, "points": 0, "of": 0, "wilson_95": None}
    share = share_component(max(0, min(good, total)), total)
    share["rate"] = share.pop("value")
    share["value"] = round(points(good / total, params), 6)
    return share


def score(counts: Counts, inputs: Inputs, params: Parameters) -> Figure:
    received = inputs.get("feedback_received")
    on_time = inputs.get("feedback_answered_on_time")
    bad_feedback = inputs.get("feedback_dissatisfied_or_overdue")
    feedback_on_time = _sub_score(on_time, received, params, params.empty_feedback_rate)
    feedback_satisfaction = _sub_score(
        None if received is None or bad_feedback is None else received - bad_feedback, received, params, params.empty_feedback_rate,
    )
    feedback_on_time["source"] = feedback_satisfaction["source"] = "assessment"
    dossiers = count(counts, "dossiers")
    dossier_satisfaction = _sub_score(dossiers - count(counts, "qd766_bad"), dossiers, params, None)
    dossier_satisfaction["source"] = "dossiers and ratings"

    parts = [feedback_on_time["value"], feedback_satisfaction["value"], dossier_satisfaction["value"]]
    present = [p for p in parts if p is not None]
    total = sum(present) if present else None
    provisional = feedback_on_time["value"] is None or feedback_satisfaction["value"] is None
    if total is None:
        definite = "weak"
    elif total >= params.excellent_from * MAX_SCORE:
        definite = "excellent"
    elif total < params.weak_below * MAX_SCORE:
        definite = "weak"
    else:
        definite = "intermediate"
    band = band_of(dossiers, params.minimum_count, provisional, definite)
    components = {
        "feedback_on_time": feedback_on_time,
        "feedback_satisfaction": feedback_satisfaction,
        "dossier_satisfaction": dossier_satisfaction,
    }
    return figure(total, MAX_SCORE, band, provisional, dossiers, components, counts)
