"""Intake's acceptance rules, pure: what a rating's status is given what is known of its dossier."""

from __future__ import annotations

from datetime import datetime, timedelta

ACCEPTED = "accepted"  # counted: rating.accepted emitted
FLAGGED = "flagged"  # held back until verified: rating.flagged emitted
PENDING_DOSSIER = "pending_dossier"  # its dossier is not known yet: nothing emitted
UNMATCHED = "unmatched"  # no dossier within the window: nothing emitted, visible to operators
REJECTED_BEFORE_COMPLETION = "rejected_before_completion"  # its dossier arrived and was completed later

COUNTABLE = frozenset({ACCEPTED, FLAGGED})  # the statuses whose event has left intake
AWAITING_DOSSIER = frozenset({PENDING_DOSSIER, UNMATCHED})


class RatingRejected(ValueError):
    """The rating contradicts its dossier (answered 422, naming the field)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def rating_status(dossier_completed_at: datetime | None, submitted_at: datetime) -> str:
    """A rating belongs to a completed dossier (HCMC 104/2024 Art. 7.1): it cannot precede completion."""
    if dossier_completed_at is None:
        return PENDING_DOSSIER
    if submitted_at < dossier_completed_at:
        raise RatingRejected("submitted_at", "the rating was submitted before its dossier was completed")
    return ACCEPTED


def status_on_release(dossier_completed_at: datetime, submitted_at: datetime) -> str:
    """A held rating whose dossier has just arrived: counted, or rejected if it predates completion."""
    return ACCEPTED if submitted_at >= dossier_completed_at else REJECTED_BEFORE_COMPLETION


def unmatched_before(now: datetime, window_days: float) -> datetime:
    """Ratings held since before this moment have waited out the window and become `unmatched`."""
    return now - timedelta(days=window_days)


def submitted_in_future(submitted_at: datetime, now: datetime, tolerance: timedelta = timedelta(minutes=5)) -> bool:
    """A kiosk's clock may run a little fast; beyond the tolerance the timestamp is impossible."""
    return submitted_at > now + tolerance
