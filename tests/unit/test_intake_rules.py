"""A rating belongs to a completed dossier (HCMC 104/2024 Art. 7.1)."""

from datetime import datetime, timedelta, timezone

import pytest

from services.intake.domain.rules import ACCEPTED, PENDING_DOSSIER, RatingRejected, rating_status

COMPLETED = datetime(2026, 11, 18, 3, 0, tzinfo=timezone.utc)


def test_unknown_dossier_is_held_not_dropped() -> None:
    assert rating_status(None, COMPLETED) == PENDING_DOSSIER


def test_rating_at_or_after_completion_is_accepted() -> None:
    assert rating_status(COMPLETED, COMPLETED) == ACCEPTED
    assert rating_status(COMPLETED, COMPLETED + timedelta(minutes=2)) == ACCEPTED


def test_rating_before_completion_is_rejected_naming_the_field() -> None:
    with pytest.raises(RatingRejected) as error:
        rating_status(COMPLETED, COMPLETED - timedelta(seconds=1))
    assert error.value.field == "submitted_at"
