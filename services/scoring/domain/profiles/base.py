"""What every scoring profile is made of: dated versions of its parameters and one figure per unit and period."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any

SATISFIED = "satisfied"
NOT_SATISFIED = "not_satisfied"
PROVISIONAL = "provisional"
INSUFFICIENT_DATA = "insufficient_data"
DEFINITE_BANDS = frozenset({SATISFIED, NOT_SATISFIED})  # the bands a threshold crossing is about

Counts = Mapping[str, int]  # the counters of domain.counters, zeros may be absent
Inputs = Mapping[str, Any]  # a unit's assessment for the period: flat field → value (decree61_* for Decree 61)


@dataclass(frozen=True)
class Figure:
    """A unit's (or an officer's) result under one profile for one period, with everything a ranking row shows."""

    score: float | None
    max_score: float
    band: str
    provisional: bool
    sample_size: int  # what the minimum count is compared with
    components: dict[str, Any]
    ratings: int
    dossiers: int
    ranked: bool = field(default=True)  # False: shown apart (provisional or insufficient data)


@dataclass(frozen=True)
class ProfileVersion:
    """The parameters in force from `valid_from` to `valid_to` (inclusive; None: still in force)."""

    version: str
    valid_from: date
    valid_to: date | None
    source: str
    parameters: Any

    def in_force_on(self, day: date) -> bool:
        return self.valid_from <= day and (self.valid_to is None or day <= self.valid_to)


def band_of(sample_size: int, minimum_count: int, provisional: bool, definite: str) -> str:
    """Insufficient data first (it says the most about how far to trust the figure), then provisional."""
    if sample_size < minimum_count:
        return INSUFFICIENT_DATA
    if provisional:
        return PROVISIONAL
    return definite


def figure(
    score: float | None, max_score: float, band: str, provisional: bool, sample_size: int,
    components: dict[str, Any], counts: Counts, digits: int = 6,
) -> Figure:
    return Figure(
        score=None if score is None else round(score, digits),
        max_score=max_score,
        band=band,
        provisional=provisional,
        sample_size=sample_size,
        components=components,
        ratings=int(counts.get("ratings", 0)),
        dossiers=int(counts.get("dossiers", 0)),
        ranked=band not in (INSUFFICIENT_DATA, PROVISIONAL) and score is not None,
    )


def count(counts: Counts, name: str) -> int:
    return int(counts.get(name, 0))
