"""Profile `sipas`: the five SIPAS factors (Bình Định Plan 77/KH-UBND 2019; MoHA Decision 1001/QĐ-BNV 2023).

Ratings may carry 1–5 answers for access, procedure, officer, result and feedback. A factor's index is
the share of its valid answers at 4–5 (satisfied or very satisfied); the overall index is the mean of the
factor indices (of those with answers). SIPAS reports against a target rather than ranking, so the band
says whether the overall index reaches the target (≥ 95% by 2030).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from services.scoring.domain.counters import SIPAS_FACTORS
from services.scoring.domain.intervals import share_component
from services.scoring.domain.profiles.base import Counts, Figure, Inputs, ProfileVersion, band_of, count, figure

NAME = "sipas"
MAX_SCORE = 100.0
ON_TARGET, BELOW_TARGET = "on_target", "below_target"


@dataclass(frozen=True)
class Parameters:
    satisfied_from_answer: int = 4  # answers 4–5 of the five-level scale count as satisfied (fixed by counting)
    target_share: float = 0.95
    minimum_count: int = 5  # answers of the most-answered factor


VERSIONS = (
    ProfileVersion("2019.1", date(2019, 9, 10), None, "Bình Định Plan 77/KH-UBND (SIPAS); MoHA Decision 1001/QĐ-BNV", Parameters()),
)


def score(counts: Counts, inputs: Inputs, params: Parameters) -> Figure:
    factors = {
        factor: share_component(count(counts, f"sipas_{factor}_satisfied"), count(counts, f"sipas_{factor}_answers"))
        for factor in SIPAS_FACTORS
    }
    indices = [f["value"] for f in factors.values() if f["value"] is not None]
    overall = sum(indices) / len(indices) if indices else None  # type: ignore[arg-type]
    sample = max(int(f["of"]) for f in factors.values())  # type: ignore[call-overload]
    definite = ON_TARGET if overall is not None and overall >= params.target_share else BELOW_TARGET
    band = band_of(sample, params.minimum_count, False, definite)
    components = {**factors, "overall": None if overall is None else round(overall, 6), "factors_answered": len(indices)}
    return figure(None if overall is None else overall * MAX_SCORE, MAX_SCORE, band, False, sample, components, counts)
