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
from shared.db import upsert, upsert_statement
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
    """Fold the batch's deltas into the aggregates (a few statements per batch) and emit the new scores."""
    deltas = {key: delta for key, delta in tx.state.pop(DELTAS, {}).items() if any(delta)}
    if not deltas:
        return
    table, profile = store.aggregates, satisfied_share.PROFILE
    unit_codes = sorted({unit for unit, _ in deltas})
    periods = sorted({period for _, period in deltas})
    current = {
        (row.unit_code, row.period): row
        for row in await tx.conn.execute(
            sa.select(table).where(table.c.profile == profile, table.c.unit_code.in_(unit_codes), table.c.period.in_(periods))
        )
    }
    names = dict((await tx.conn.execute(sa.select(store.units.c.code, store.units.c.name).where(store.units.c.code.in_(unit_codes)))).all())
    now = datetime.now(timezone.utc)
    rows, outgoing = [], []
    for (unit_code, period), (d_ratings, d_satisfied, d_dossiers) in sorted(deltas.items()):
        before = current.get((unit_code, period))
        ratings = (before.ratings if before else 0) + d_ratings
        satisfied = (before.satisfied if before else 0) + d_satisfied
        dossiers = (before.dossiers if before else 0) + d_dossiers
        version = (before.version if before else 0) + 1
        result = satisfied_share.score(ratings, satisfied)
        rows.append({
            "profile": profile, "unit_code": unit_code, "period": period, "ratings": ratings,
            "satisfied": satisfied, "dossiers": dossiers, "score": result.score, "band": result.band,
            "version": version, "updated_at": now,
        })
        data = events.ScoreChanged(
            unit_code=unit_code, unit_name=names.get(unit_code), period=period, profile=profile, score=result.score,
            max_score=satisfied_share.MAX_SCORE, band=result.band, components=result.components,
            ratings=ratings, dossiers=dossiers, version=version, updated_at=now,
        )
        outgoing.append((unit_code, events.new_event(events.SCORE_CHANGED, SOURCE, unit_code, data)))
    await tx.conn.execute(upsert_statement(table, ["profile", "unit_code", "period"], list(rows[0]), tx.conn.dialect.name), rows)
    await tx.emit_many(topics.SCORES, outgoing)


HANDLERS = {
    events.UNIT_UPSERTED: on_unit_upserted,
    events.RATING_ACCEPTED: on_rating_accepted,
    events.DOSSIER_COMPLETED: on_dossier_completed,
}
