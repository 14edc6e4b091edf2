"""Which remediation a dissatisfied rating obliges, and by when (Đà Nẵng 5697/2017 Art. 3 step 3) — pure.

a. equipment, informal costs, officers' attitude: propose and apply a solution within 5 working days;
b. procedure, dossier components, resolution time: a corrective document within 15 working days.
"""

from __future__ import annotations

from dataclasses import dataclass

from shared.events import SATISFIED_ANSWERS

SERVICE_CONDITIONS = "service_conditions"
PROCEDURE = "procedure"

CATEGORY_OF_REASON = {
    "equipment": SERVICE_CONDITIONS,
    "informal_cost": SERVICE_CONDITIONS,
    "attitude": SERVICE_CONDITIONS,
    "procedure": PROCEDURE,
    "documents": PROCEDURE,
    "processing_time": PROCEDURE,
}
WORKING_DAYS = {SERVICE_CONDITIONS: 5, PROCEDURE: 15}
HIGH_SEVERITY_REASONS = frozenset({"informal_cost"})


@dataclass(frozen=True)
class Parameters:
    # "other" or no reason given: the law names no category, so the shorter deadline applies.
    unclassified_category: str = SERVICE_CONDITIONS


@dataclass(frozen=True)
class Remedy:
    category: str
    working_days: int
    severity: str  # normal | high
    reasons: tuple[str, ...]


def remedies_for(overall: str, reasons: list[str], params: Parameters = Parameters()) -> list[Remedy]:
    """One remedy per category the reasons fall into; nothing for a satisfied answer."""
    if overall in SATISFIED_ANSWERS:
        return []
    grouped: dict[str, list[str]] = {}
    for reason in reasons or ["other"]:
        grouped.setdefault(CATEGORY_OF_REASON.get(reason, params.unclassified_category), []).append(reason)
    return [
        Remedy(
            category=category,
            working_days=WORKING_DAYS[category],
            severity="high" if HIGH_SEVERITY_REASONS.intersection(grouped[category]) else "normal",
            reasons=tuple(grouped[category]),
        )
        for category in sorted(grouped)
    ]
