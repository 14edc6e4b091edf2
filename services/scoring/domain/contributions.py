"""Whether a rating or a dossier counts, and where: the order-independent rules of corrections — pure.

Events about one rating arrive on different topics (ratings.v1, verifications.v1) and may arrive in any
order or more than once; each state below merges facts so that the result depends only on which events
were seen, never on their order:
- a rating counts when it arrived, was not superseded by a correction, was not found not genuine, and,
  if it was flagged, was verified genuine (Đà Nẵng 5697/2017 Art. 4 and 8.2);
- the newest verdict (by verification time) holds;
- a dossier is the highest revision seen, and its ratings count in its unit and period.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime

from services.scoring.domain.counters import DossierFacts, Vector, dossier_vector
from shared.calendar import WorkingCalendar

COUNTED, HELD, REMOVED, AWAITING = "counted", "held", "removed", "awaiting"


@dataclass(frozen=True)
class Placement:
    """Where a contribution counts: its unit, the month of its dossier's completion, its officers."""

    unit_code: str
    month: str
    officer_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class RatingState:
    rating_id: str
    dossier_code: str | None = None
    placement: Placement | None = None  # from the rating event; a known dossier's placement overrides it
    answers: Mapping[str, int] | None = None  # what the rating adds when it counts (counters.rating_vector of its answers)
    arrived: bool = False
    flagged: bool = False
    verdict: str | None = None  # genuine | not_genuine
    verdict_at: datetime | None = None
    superseded_by: str | None = None

    @property
    def counted(self) -> bool:
        if not self.arrived or self.superseded_by is not None or self.verdict == "not_genuine":
            return False
        return not self.flagged or self.verdict == "genuine"

    @property
    def status(self) -> str:
        if self.counted:
            return COUNTED
        if not self.arrived:
            return AWAITING
        if self.superseded_by is not None or self.verdict == "not_genuine":
            return REMOVED
        return HELD

    @property
    def dissatisfied(self) -> bool:
        return self.counted and bool(self.answers and self.answers.get("dissatisfied"))

    def arrive(self, dossier_code: str, placement: Placement, answers: Mapping[str, int], flagged: bool) -> RatingState:
        # A flag is never lifted by a later accepted event for the same rating: only a verdict lifts it.
        # (Built directly rather than with dataclasses.replace: this runs once per rating on the hot path.)
        return RatingState(
            self.rating_id, dossier_code, placement, answers, True, self.flagged or flagged, self.verdict, self.verdict_at, self.superseded_by,
        )

    def verify(self, verdict: str, verified_at: datetime, dossier_code: str | None = None) -> RatingState:
        newer = self.verdict_at is None or (verified_at, verdict == "not_genuine") > (self.verdict_at, self.verdict == "not_genuine")
        if not newer:
            return self
        return replace(self, verdict=verdict, verdict_at=verified_at, dossier_code=self.dossier_code or dossier_code)

    def supersede(self, by: str) -> RatingState:
        if self.superseded_by is not None and self.superseded_by <= by:
            return self  # keep one deterministic successor whatever the order
        return replace(self, superseded_by=by)

    def vector(self) -> Vector:
        return dict(self.answers or {}) if self.counted else {}


@dataclass(frozen=True)
class DossierState:
    dossier_code: str
    revision: int
    placement: Placement
    facts: DossierFacts
    rated_dissatisfied: bool = False

    def newer(self, revision: int) -> bool:
        return revision > self.revision

    def vector(self, calendar: WorkingCalendar) -> Vector:
        return dossier_vector(self.facts, calendar, self.rated_dissatisfied)


def rating_placement(rating: RatingState, dossier: DossierState | None) -> Placement | None:
    """A rating counts in its dossier's unit and period; before the dossier is known, in the ones it carried."""
    return dossier.placement if dossier is not None else rating.placement
