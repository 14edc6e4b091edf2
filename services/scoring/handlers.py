"""Scoring's event handlers, one per event type: each notes what its event says in the batch's scratch space.

Nothing is written per event: `apply_scoring_batch` (the consumer's before-commit hook) applies the whole
batch with a few set-based statements inside the batch's transaction (projection.py), and the score
publisher (scorer.py) turns what changed into scores.v1 events.
"""

from __future__ import annotations

from services.scoring.projection import Batch, apply_batch
from shared import events
from shared.bus.consumer import PoisonMessage, Tx
from shared.periods import PERIOD_PATTERN

BATCH = "scoring.batch"
MAX_CODE = 64  # the registry's codes and ids: [A-Za-z0-9._-]{1,64}, checked by intake at the door


def _batch(tx: Tx) -> Batch:
    batch = tx.state.get(BATCH)
    if batch is None:
        batch = tx.state[BATCH] = Batch()
    return batch


def _check_codes(*codes: str | None) -> None:
    """A key longer than the tables allow can never be stored: dead-letter it at once rather than retry.

    Only the length is checked here (once per code, on the hot path); intake checks the characters."""
    for code in codes:
        if code is not None and not 0 < len(code) <= MAX_CODE:
            raise PoisonMessage(f"code {code[:80]!r} is not 1–{MAX_CODE} characters long")


async def on_unit_upserted(event: events.CloudEvent, unit: events.UnitUpserted, tx: Tx) -> None:
    _check_codes(unit.code, unit.parent_code, unit.successor_code)
    _batch(tx).units[unit.code] = unit


async def on_officer_upserted(event: events.CloudEvent, officer: events.OfficerUpserted, tx: Tx) -> None:
    _check_codes(officer.officer_id, officer.unit_code)
    _batch(tx).officers[officer.officer_id] = officer


async def on_dossier_completed(event: events.CloudEvent, dossier: events.DossierCompleted, tx: Tx) -> None:
    _check_codes(dossier.dossier_code, dossier.unit_code, *dossier.officer_ids)
    _batch(tx).dossiers.append(dossier)


async def on_rating_accepted(event: events.CloudEvent, rating: events.RatingAccepted, tx: Tx) -> None:
    _check_codes(rating.rating_id, rating.dossier_code, rating.unit_code, rating.supersedes, *rating.officer_ids)
    _batch(tx).ratings.append((rating, False))


async def on_rating_flagged(event: events.CloudEvent, rating: events.RatingFlagged, tx: Tx) -> None:
    _check_codes(rating.rating_id, rating.dossier_code, rating.unit_code, rating.supersedes, *rating.officer_ids)
    _batch(tx).ratings.append((rating, True))


async def on_rating_verified(event: events.CloudEvent, verdict: events.RatingVerified, tx: Tx) -> None:
    _check_codes(verdict.rating_id, verdict.dossier_code, verdict.unit_code)
    _batch(tx).verdicts.append(verdict)


async def on_assessment_recorded(event: events.CloudEvent, assessment: events.AssessmentRecorded, tx: Tx) -> None:
    _check_codes(assessment.unit_code)
    if not PERIOD_PATTERN.match(assessment.period):
        raise PoisonMessage(f"period {assessment.period[:20]!r} is not one of YYYY-MM, YYYY-Qn, YYYY-Hn, YYYY")
    # The event's time orders partial updates: the newest value of each field holds.
    _batch(tx).assessments.append((assessment, event.time))


async def apply_scoring_batch(tx: Tx) -> None:
    batch = tx.state.pop(BATCH, None)
    if batch:
        await apply_batch(tx.conn, batch)


HANDLERS = {
    events.UNIT_UPSERTED: on_unit_upserted,
    events.OFFICER_UPSERTED: on_officer_upserted,
    events.DOSSIER_COMPLETED: on_dossier_completed,
    events.RATING_ACCEPTED: on_rating_accepted,
    events.RATING_FLAGGED: on_rating_flagged,
    events.RATING_VERIFIED: on_rating_verified,
    events.ASSESSMENT_RECORDED: on_assessment_recorded,
}

# Applying these again, at any later moment, changes nothing (domain/contributions.py merges facts): a rating
# by its id (arrival and a flag only ever set), a dossier by its code and revision (the highest holds), a
# verdict by its verification time (the newest holds). So the consumer needs no processed_events row for
# them: a relay's re-send is absorbed by the natural key. Registry and assessment events are remembered by
# id: re-applying an old unit.upserted after a newer one would move the unit back.
IDEMPOTENT_BY_NATURAL_KEY = frozenset({
    events.DOSSIER_COMPLETED, events.RATING_ACCEPTED, events.RATING_FLAGGED, events.RATING_VERIFIED,
})
