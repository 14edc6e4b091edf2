"""Intake's acceptance rules, pure: what a rating's status is given what is known of its dossier."""

from __future__ import annotations

from datetime import datetime

ACCEPTED = "accepted"
PENDING_DOSSIER = "pending_dossier"


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
