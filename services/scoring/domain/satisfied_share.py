"""Profile `satisfied-share`: the share of ratings answering satisfied or very satisfied.

The simplest reading of every source (SIPAS reports the share satisfied; HCMC 104/2024 ranks on it
through C). Its parameters are named and shown at GET /v1/profiles.
"""

from __future__ import annotations

from dataclasses import dataclass

PROFILE = "satisfied-share"
MAX_SCORE = 100.0


@dataclass(frozen=True)
class Parameters:
    satisfied_threshold: float = 0.80  # share at or above which a unit is "satisfied"
    minimum_ratings: int = 5  # below this a unit is "insufficient_data", not ranked among the rest


@dataclass(frozen=True)
class Score:
    score: float | None
    band: str
    components: dict[str, float | int | None]


def score(ratings: int, satisfied: int, params: Parameters = Parameters()) -> Score:
    if ratings < 0 or satisfied < 0 or satisfied > ratings:
        raise ValueError(f"inconsistent counts: {satisfied} satisfied of {ratings}")
    share = satisfied / ratings if ratings else None
    if ratings < params.minimum_ratings:
        band = "insufficient_data"
    elif share is not None and share >= params.satisfied_threshold:
        band = "satisfied"
    else:
        band = "not_satisfied"
    value = round(share * MAX_SCORE, 4) if share is not None else None
    return Score(value, band, {"satisfied": satisfied, "ratings": ratings, "share": share})
