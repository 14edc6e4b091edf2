"""Publisher's event handlers: keep the newest score per unit and period, and queue it for each target.

A pending delivery of the same unit, period and profile is replaced by the newer version (collapse).
"""

from __future__ import annotations

from datetime import datetime, timezone

import orjson
import sqlalchemy as sa

from services.publisher import store
from shared import events
from shared.bus.consumer import Handler, Tx
from shared.db import upsert

MAP_TARGET = "map"


async def _rank(tx: Tx, score: events.ScoreChanged) -> int | None:
    if score.score is None or score.band == "insufficient_data":
        return None
    table = store.latest_scores
    better = await tx.conn.scalar(
        sa.select(sa.func.count()).select_from(table).where(
            table.c.profile == score.profile, table.c.period == score.period, table.c.score > score.score
        )
    )
    return int(better or 0) + 1


def map_payload(score: events.ScoreChanged, rank: int | None) -> bytes:
    """The contract's body for PUT /units/{unit}/satisfaction/{period}: fixed once per version."""
    return orjson.dumps(
        {
            "unit_code": score.unit_code, "period": score.period, "profile": score.profile, "score": score.score,
            "max_score": score.max_score, "band": score.band, "rank": rank, "components": score.components,
            "ratings": score.ratings, "dossiers": score.dossiers, "version": score.version,
            "updated_at": score.updated_at.isoformat(),
        }
    )


async def queue_delivery(tx: Tx, target: str, score: events.ScoreChanged, body: bytes) -> None:
    table = store.deliveries
    key = (table.c.target == target, table.c.unit_code == score.unit_code, table.c.period == score.period, table.c.profile == score.profile)
    current = (await tx.conn.execute(sa.select(table.c.id, table.c.version).where(*key))).first()
    now = datetime.now(timezone.utc)
    fresh = {"version": score.version, "body": body, "status": "pending", "attempts": 0, "next_attempt_at": now, "last_error": None, "updated_at": now}
    if current is None:
        await tx.conn.execute(
            table.insert().values(target=target, unit_code=score.unit_code, period=score.period, profile=score.profile, **fresh)
        )
    elif current.version < score.version:
        await tx.conn.execute(table.update().where(table.c.id == current.id).values(**fresh))


def build_handlers(targets: list[str]) -> dict[str, Handler]:
    async def on_score_changed(event: events.CloudEvent, score: events.ScoreChanged, tx: Tx) -> None:
        table = store.latest_scores
        key = (table.c.profile == score.profile, table.c.unit_code == score.unit_code, table.c.period == score.period)
        known = await tx.conn.scalar(sa.select(table.c.version).where(*key))
        if known is not None and known >= score.version:
            return  # versions only go up; an older one arriving late changes nothing
        await tx.conn.execute(
            upsert(
                table,
                {"profile": score.profile, "unit_code": score.unit_code, "period": score.period, "version": score.version,
                 "score": score.score, "payload": score.model_dump(mode="json")},
                ["profile", "unit_code", "period"],
                tx.conn.dialect.name,
            )
        )
        if targets:
            body = map_payload(score, await _rank(tx, score))
            for target in targets:
                await queue_delivery(tx, target, score, body)

    return {events.SCORE_CHANGED: on_score_changed}
