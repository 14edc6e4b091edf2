"""Profile `decree-61`: the nine 0–2 indices of Decree 61/2018/NĐ-CP and Circular 01/2018/TT-VPCP (18 points).

Per dossier, averaged over the unit's resolved dossiers: (1) total time against the legal limit, (2) each
participating agency's step against its limit, (3) the applicant's contacts to complete the dossier,
(4) the agencies the applicant had to contact, (7) officers' attitude. Per unit, from assessments:
(5) handling at the one-stop desk, (6) public disclosure, (8) feedback handling, (9) online services.
The per-dossier rules and their fallbacks live in domain/counters.py. Until the four unit-level inputs
are recorded the total is provisional. No source publishes classification bands, so `bands` is empty
by default and the band is just "scored"; an operator may configure labelled lower bounds.

Decree 118/2025/NĐ-CP replaced the one-stop rules on 1 July 2025; version 2025.1 carries the same indices
over unchanged until the new evaluation rules are configured.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

from services.scoring.domain.intervals import share_component
from services.scoring.domain.profiles.base import Counts, Figure, Inputs, ProfileVersion, band_of, count, figure

NAME = "decree-61"
MAX_SCORE = 18.0
SCORED = "scored"
PER_DOSSIER = {1: "d61_time", 2: "d61_steps", 3: "d61_contacts", 4: "d61_agencies", 7: "d61_attitude"}
PER_UNIT = {5: "decree61_one_stop_handling", 6: "decree61_disclosure", 8: "decree61_feedback_handling", 9: "decree61_online_services"}


@dataclass(frozen=True)
class Parameters:
    bands: tuple[tuple[str, float], ...] = field(default_factory=tuple)  # (label, lowest total), best first
    minimum_count: int = 5  # dossiers


VERSIONS = (
    ProfileVersion("2018.1", date(2018, 6, 21), date(2025, 6, 30), "Decree 61/2018/NĐ-CP; Circular 01/2018/TT-VPCP", Parameters()),
    ProfileVersion("2025.1", date(2025, 7, 1), None, "Decree 61/2018 indices carried over under Decree 118/2025/NĐ-CP", Parameters()),
)


def score(counts: Counts, inputs: Inputs, params: Parameters) -> Figure:
    dossiers = count(counts, "dossiers")
    components: dict[str, dict[str, object]] = {}
    for index, counter in PER_DOSSIER.items():
        points = count(counts, counter)
        mean = points / dossiers if dossiers else None
        components[f"index_{index}"] = {"value": None if mean is None else round(mean, 6), "points": points, "of": dossiers, "max": 2}
    for index, field_name in PER_UNIT.items():
        value = inputs.get(field_name)
        components[f"index_{index}"] = {"value": value, "max": 2, "source": "assessment"}
    components = dict(sorted(components.items(), key=lambda item: int(item[0].split("_")[1])))
    present = [c["value"] for c in components.values() if c["value"] is not None]
    total = sum(present) if present else None  # type: ignore[arg-type]
    provisional = any(components[f"index_{i}"]["value"] is None for i in PER_UNIT)
    definite = SCORED
    for label, lowest in params.bands:
        if total is not None and total >= lowest:
            definite = label
            break
    components["on_time_share"] = share_component(count(counts, "on_time"), dossiers)
    band = band_of(dossiers, params.minimum_count, provisional, definite)
    return figure(total, MAX_SCORE, band, provisional, dossiers, components, counts)
