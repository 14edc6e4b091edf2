"""What intake forgets, and when: the answers remembered for `Idempotency-Key` retries once no client would
retry any more, and who rated which officer once the repeat-respondent window has passed (the only use of
those rows). Both grew with every rating and were never pruned.

Rows go in chunks, each in its own short transaction: on SQLite a single large DELETE would hold the one
write lock for seconds while ratings wait behind it."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from services.intake import store

PRUNE_CHUNK = 2_000  # rows per transaction


async def prune_expired(
    engine: AsyncEngine, *, idempotency_hours: float, repeat_window_days: float, now: datetime | None = None,
) -> dict[str, int]:
    """Delete expired rows; how many went from each table."""
    now = now or datetime.now(timezone.utc)
    return {
        "idempotency_keys": await _delete_older(
            engine, store.idempotency_keys, store.idempotency_keys.c.created_at, now - timedelta(hours=idempotency_hours)),
        "rating_officers": await _delete_older(
            engine, store.rating_officers, store.rating_officers.c.submitted_at, now - timedelta(days=repeat_window_days)),
    }


async def _delete_older(engine: AsyncEngine, table: sa.Table, column: Any, before: datetime) -> int:
    key = list(table.primary_key.columns)
    removed = 0
    while True:
        async with engine.begin() as conn:
            keys = [tuple(row) for row in await conn.execute(sa.select(*key).where(column < before).limit(PRUNE_CHUNK))]
            if keys:
                await conn.execute(table.delete().where(sa.tuple_(*key).in_(keys)))
        removed += len(keys)
        if len(keys) < PRUNE_CHUNK:
            return removed
