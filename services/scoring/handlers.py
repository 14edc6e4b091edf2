"""Scoring's event handlers: contributions keyed by rating id / dossier code, so redelivery changes nothing.

Handlers collect per-(unit, period) deltas in the batch's scratch space; `publish_changed_scores`
applies them to the aggregates once per batch, bumps each aggregate's version and emits `scores.v1`.
"""

from __future__ import annotations

from datetime import datetime, timezone

import sqlalchemy as sa

from services.scoring import store
from services.scoring.domain import satisfied_share
from shared import events, topics
from shared.bus.consumer import Tx
from shared.db import upsert
from shared.periods import periods_containing

SOURCE = "/hailong/scoring"
DELTAS = "deltas"



def _bump(tx: Tx, unit_code: str, completed_at: datetime, ratings: int, satisfied: int, dossiers: int) -> None:
    deltas: dict[tuple[str, str], list[int]] = tx.state.setdefault(DELTAS, {})
    for period in periods_containing(completed_at):
        delta = deltas.setdefault((unit_code, str(period)), [0, 0, 0])
        delta[0] += ratings
        delta[1] += satisfied
        delta[2] += dossiers


async def on_unit_upserted(event: events.CloudEvent, unit: events.UnitUpserted, tx: Tx) -> None:
    row = {"code": unit.code, "name": unit.name, "level": unit.level, "parent_code": unit.parent_code}
    await tx.conn.execute(upsert(store.units, row, ["code"], tx.conn.dialect.name))


async def on_rating_accepted(event: events.CloudEvent, rating: events.RatingAccepted, tx: Tx) -> None:
    table = store.rating_contributions
    satisfied = rating.overall in events.SATISFIED_ANSWERS
    previous = (await tx.conn.execute(sa.select(table).where(table.c.rating_id == rating.rating_id))).first()
    if previous is not None:
        unchanged = (
            previous.unit_code == rating.unit_code
            and previous.completed_at == rating.dossier_completed_at
            and previous.satisfied == satisfied
        )
        if unchanged:
            return
        _bump(tx, previous.unit_code, previous.completed_at, -1, -int(previous.satisfied), 0)
        await tx.conn.execute(table.delete().where(table.c.rating_id == rating.rating_id))
    await tx.conn.execute(
        table.insert().values(
            rating_id=rating.rating_id, unit_code=rating.unit_code, dossier_code=rating.dossier_code,
            completed_at=rating.dossier_completed_at, satisfied=satisfied,
        )
    )
    _bump(tx, rating.unit_code, rating.dossier_completed_at, 1, int(satisfied), 0)


async def on_dossier_completed(event: events.CloudEvent, dossier: events.DossierCompleted, tx: Tx) -> None:
    table = store.dossier_contributions
    previous = (await tx.conn.execute(sa.select(table).where(table.c.dossier_code == dossier.dossier_code))).first()
    if previous is not None and previous.revision >= dossier.revision:
        return  # a stale or repeated revision
    if previous is not None:
        _bump(tx, previous.unit_code, previous.completed_at, 0, 0, -1)
        await tx.conn.execute(
            table.update().where(table.c.dossier_code == dossier.dossier_code).values(
                unit_code=dossier.unit_code, completed_at=dossier.completed_at, revision=dossier.revision
            )
        )
        moved = previous.unit_code != dossier.unit_code or previous.completed_at != dossier.completed_at
        if moved:
            await _move_ratings(tx, dossier)
    else:
        await tx.conn.execute(
            table.insert().values(
                dossier_code=dossier.dossier_code, unit_code=dossier.unit_code,
                completed_at=dossier.completed_at, revision=dossier.revision,
            )
        )
    _bump(tx, dossier.unit_code, dossier.completed_at, 0, 0, 1)


async def _move_ratings(tx: Tx, dossier: events.DossierCompleted) -> None:
    """A corrected dossier takes its ratings to its new unit or period."""
    table = store.rating_contributions
    rows = (await tx.conn.execute(sa.select(table).where(table.c.dossier_code == dossier.dossier_code))).all()
    for row in rows:
        _bump(tx, row.unit_code, row.completed_at, -1, -int(row.satisfied), 0)
        _bump(tx, dossier.unit_code, dossier.completed_at, 1, int(row.satisfied), 0)
    await tx.conn.execute(
        table.update().where(table.c.dossier_code == dossier.dossier_code).values(
            unit_code=dossier.unit_code, completed_at=dossier.completed_at
        )
    )


async def publish_changed_scores(tx: Tx) -> None:
    deltas: dict[tuple[str, str], list[int]] = tx.state.pop(DELTAS, {})
    now = datetime.now(timezone.utc)
    table = store.aggregates
    profile = satisfied_share.PROFILE
    for (unit_code, period), (d_ratings, d_satisfied, d_dossiers) in sorted(deltas.items()):
        if not (d_ratings or d_satisfied or d_dossiers):
            continue
        current = (
            await tx.conn.execute(
                sa.select(table).where(table.c.profile == profile, table.c.unit_code == unit_code, table.c.period == period)
            )
        ).first()
        ratings = (current.ratings if current else 0) + d_ratings
        satisfied = (current.satisfied if current else 0) + d_satisfied
        dossiers = (current.dossiers if current else 0) + d_dossiers
        version = (current.version if current else 0) + 1
        result = satisfied_share.score(ratings, satisfied)
        row = {
            "profile": profile, "unit_code": unit_code, "period": period, "ratings": ratings,
            "satisfied": satisfied, "dossiers": dossiers, "score": result.score, "band": result.band,
            "version": version, "updated_at": now,
        }
        await tx.conn.execute(upsert(table, row, ["profile", "unit_code", "period"], tx.conn.dialect.name))
        unit_name = await tx.conn.scalar(sa.select(store.units.c.name).where(store.units.c.code == unit_code))
        data = events.ScoreChanged(
            unit_code=unit_code, unit_name=unit_name, period=period, profile=profile, score=result.score,
            max_score=satisfied_share.MAX_SCORE, band=result.band, components=result.components,
            ratings=ratings, dossiers=dossiers, version=version, updated_at=now,
        )
        await tx.emit(topics.SCORES, unit_code, events.new_event(events.SCORE_CHANGED, SOURCE, unit_code, data))


HANDLERS = {
    events.UNIT_UPSERTED: on_unit_upserted,
    events.RATING_ACCEPTED: on_rating_accepted,
    events.DOSSIER_COMPLETED: on_dossier_completed,
}
