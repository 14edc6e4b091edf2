"""Which remediation a dissatisfied rating obliges, and by when (Đà Nẵng 5697/2017 Art. 3 step 3) — pure.

a. equipment, informal costs, officers' attitude: propose and apply a solution within 5 working days;
b. procedure, dossier components, resolution time: a corrective document within 15 working days.
The other kinds of ticket (a unit's plan, an apology letter, repeated dissatisfaction) have deadlines the
sources do not fix; each is a named parameter of `Rules`, shown at GET /v1/rules.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from shared.events import SATISFIED_ANSWERS

SERVICE_CONDITIONS = "service_conditions"
PROCEDURE = "procedure"
UNIT_PLAN = "unit_plan"  # a unit fell into "not satisfied" for a period
APOLOGY_LETTER = "apology_letter"  # Quảng Điền 490/2020: a dossier completed after its due date
REPEATED_DISSATISFACTION = "repeated_dissatisfaction"  # Đà Nẵng Art. 6: two or more years, a unit
OFFICER_REVIEW = "officer_review"  # Đà Nẵng Art. 6: two or more years, an officer (restricted record)
CATEGORIES = (SERVICE_CONDITIONS, PROCEDURE, UNIT_PLAN, APOLOGY_LETTER, REPEATED_DISSATISFACTION, OFFICER_REVIEW)

CATEGORY_OF_REASON = {
    "equipment": SERVICE_CONDITIONS,
    "informal_cost": SERVICE_CONDITIONS,
    "attitude": SERVICE_CONDITIONS,
    "procedure": PROCEDURE,
    "documents": PROCEDURE,
    "processing_time": PROCEDURE,
}
HIGH_SEVERITY_REASONS = frozenset({"informal_cost"})


@dataclass(frozen=True)
class Rules:
    """Deadlines in working days, and the choices the sources leave open (DOMAIN.md: named parameters)."""

    working_days: dict[str, int] = field(default_factory=lambda: {
        SERVICE_CONDITIONS: 5,  # Đà Nẵng Art. 3.3.a
        PROCEDURE: 15,  # Đà Nẵng Art. 3.3.b
        UNIT_PLAN: 15,  # not fixed by the sources: the corrective-document deadline of Art. 3.3.b
        APOLOGY_LETTER: 1,  # not fixed by Quảng Điền 490/2020: the letter is already late, so one day
        REPEATED_DISSATISFACTION: 15,  # the People's Committee's written reminder (Art. 6.2): not fixed
        OFFICER_REVIEW: 15,  # rotation review of an officer (Art. 6.2): not fixed
    })
    # "other" or no reason given: the law names no category, so the shorter deadline applies.
    unclassified_category: str = SERVICE_CONDITIONS
    dispute_window_working_days: int = 5  # Đà Nẵng Art. 3.2: the unit may contest within 5 working days
    dispute_answer_working_days: int = 7  # Đà Nẵng Art. 3.2: the surveying body explains within 7
    reminder_working_days: int = 2  # mail the unit head this many working days before a deadline
    repeated_years: int = 2  # Đà Nẵng Art. 6.2: "two years or more"

    def days_for(self, category: str) -> int:
        return self.working_days[category]

    def describe(self) -> dict[str, Any]:
        return asdict(self)


DEFAULT_RULES = Rules()


@dataclass(frozen=True)
class Remedy:
    category: str
    working_days: int
    severity: str  # normal | high
    reasons: tuple[str, ...]


def remedies_for(overall: str, reasons: list[str], rules: Rules = DEFAULT_RULES) -> list[Remedy]:
    """One remedy per category the reasons fall into; nothing for a satisfied answer."""
    if overall in SATISFIED_ANSWERS:
        return []
    grouped: dict[str, list[str]] = {}
    for reason in reasons or ["other"]:
        grouped.setdefault(CATEGORY_OF_REASON.get(reason, rules.unclassified_category), []).append(reason)
    return [
        Remedy(
            category=category,
            working_days=rules.days_for(category),
            severity="high" if HIGH_SEVERITY_REASONS.intersection(grouped[category]) else "normal",
            reasons=tuple(grouped[category]),
        )
        for category in sorted(grouped)
    ]
