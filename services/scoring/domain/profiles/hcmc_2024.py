"""Profile `hcmc-2024`: Hồ Chí Minh City Decision 104/2024/QĐ-UBND (19 Nov 2024), appendix of indices A–E.

K = A + B + C + D + E on 0–22, where A is the share of resolved dossiers resolved on time, B the share
with at most one supplement request, C the share of attitude answers that were "good", D the feedback
score the national portal gives the unit (0–18) and E the public listing of procedures (0 or 1). K above
20 is satisfied. Until D and E of the period are recorded, K is provisional and not ranked with final
figures. The text's ambiguities are the parameters below (DOMAIN.md names them and their defaults).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Literal

from services.scoring.domain.counters import MAX_GRACE_WORKING_DAYS
from services.scoring.domain.intervals import share_component
from services.scoring.domain.profiles.base import (
    NOT_SATISFIED, SATISFIED, Counts, Figure, Inputs, ProfileVersion, band_of, count, figure,
)

NAME = "hcmc-2024"
MAX_SCORE = 22.0
D_MAX = 18.0


@dataclass(frozen=True)
class Parameters:
    a_grace_working_days: int = 0  # late by up to this many working days still earns A's point (0–5)
    b_denominator: Literal["resolved_dossiers", "returned_dossiers"] = "resolved_dossiers"
    k_threshold: float = 20.0
    k_threshold_inclusive: bool = False  # K = 20 exactly is "not above 20", so not satisfied
    minimum_count: int = 5  # of dossiers and of attitude answers, the smaller

    def __post_init__(self) -> None:
        if not 0 <= self.a_grace_working_days <= MAX_GRACE_WORKING_DAYS:
            raise ValueError(f"a_grace_working_days must be 0–{MAX_GRACE_WORKING_DAYS}")
        if self.b_denominator not in ("resolved_dossiers", "returned_dossiers"):
            raise ValueError("b_denominator must be resolved_dossiers or returned_dossiers")


VERSIONS = (
    ProfileVersion("2024.1", date(2024, 11, 19), None, "HCMC Decision 104/2024/QĐ-UBND, appendix", Parameters()),
)


def score(counts: Counts, inputs: Inputs, params: Parameters) -> Figure:
    dossiers = count(counts, "dossiers")
    on_time = count(counts, "on_time") + sum(count(counts, f"late_{d}") for d in range(1, params.a_grace_working_days + 1))
    a = share_component(on_time, dossiers)
    a["grace_working_days"] = params.a_grace_working_days

    twice = count(counts, "supplement_2plus")
    if params.b_denominator == "resolved_dossiers":
        b = share_component(dossiers - twice, dossiers)
    else:
        returned = count(counts, "supplement_1") + twice
        # No dossier returned at all: nobody was returned twice, so the unit keeps B's point.
        b = share_component(returned - twice, returned) if returned else {"value": 1.0, "points": 0, "of": 0, "wilson_95": None}
    b["denominator"] = params.b_denominator

    c = share_component(count(counts, "attitude_good"), count(counts, "attitude_answered"))
    d_value = inputs.get("feedback_handling")
    e_listed = inputs.get("public_listing")
    d = {"value": None if d_value is None else float(d_value), "max": D_MAX, "source": "assessment"}
    e = {"value": None if e_listed is None else (1 if e_listed else 0), "max": 1, "source": "assessment"}

    parts = [a["value"], b["value"], c["value"], d["value"], e["value"]]
    present = [p for p in parts if p is not None]
    k = sum(present) if present else None
    provisional = d["value"] is None or e["value"] is None
    complete = len(present) == len(parts)
    if k is not None and complete:
        above = k >= params.k_threshold if params.k_threshold_inclusive else k > params.k_threshold
        definite = SATISFIED if above else NOT_SATISFIED
    else:
        definite = NOT_SATISFIED
    sample = min(dossiers, count(counts, "attitude_answered"))
    band = band_of(sample, params.minimum_count, provisional, definite)
    components = {"A": a, "B": b, "C": c, "D": d, "E": e, "K": None if k is None else round(k, 6)}
    return figure(k, MAX_SCORE, band, provisional, sample, components, counts)
