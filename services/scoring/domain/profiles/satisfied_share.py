"""Profile `satisfied-share`: the share of ratings answering satisfied or very satisfied, on 0–100.

The simplest reading common to every source (Đà Nẵng 5697/2017 acts on dissatisfied answers; SIPAS reports
the share satisfied; HCMC 104/2024 ranks through C). The share carries its 95% Wilson interval.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from services.scoring.domain.intervals import wilson_interval
from services.scoring.domain.profiles.base import (
    NOT_SATISFIED, SATISFIED, Counts, Figure, Inputs, ProfileVersion, band_of, count, figure,
)

NAME = "satisfied-share"
MAX_SCORE = 100.0


@dataclass(frozen=True)
class Parameters:
    satisfied_threshold: float = 0.80  # share at or above which a unit is "satisfied"
    minimum_count: int = 5  # ratings; below it a unit is "insufficient_data", ranked apart


VERSIONS = (
    ProfileVersion("2017.1", date(2017, 10, 11), None, "Đà Nẵng Decision 5697/QĐ-UBND; share satisfied", Parameters()),
)


def score(counts: Counts, inputs: Inputs, params: Parameters) -> Figure:
    ratings, satisfied = count(counts, "ratings"), count(counts, "satisfied")
    if ratings < 0 or not 0 <= satisfied <= ratings:
        raise ValueError(f"inconsistent counts: {satisfied} satisfied of {ratings}")
    share = satisfied / ratings if ratings else None
    interval = wilson_interval(satisfied, ratings)
    definite = SATISFIED if share is not None and share >= params.satisfied_threshold else NOT_SATISFIED
    band = band_of(ratings, params.minimum_count, False, definite)
    components = {
        "satisfied": satisfied,
        "ratings": ratings,
        "share": None if share is None else round(share, 6),
        "wilson_95": None if interval is None else [round(interval[0], 6), round(interval[1], 6)],
    }
    return figure(None if share is None else share * MAX_SCORE, MAX_SCORE, band, False, ratings, components, counts, digits=4)
