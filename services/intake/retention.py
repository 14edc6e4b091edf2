"""What intake forgets, and when: the answers remembered for `Idempotency-Key` retries once no client would
retry any more, and who rated which officer once the repeat-respondent window has passed (the only use of
those rows). Both grew with every rating and were never pruned. Deleted in small transactions
(`shared.db.delete_in_batches`): ratings never wait long behind SQLite's one write lock."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from sqlalchemy.ext.asyncio import AsyncEngine

from services.intake import store
from shared.db import delete_in_batches

PRUNE_CHUNK = 2_000  # rows per transaction


async def prune_expired(
    engine: AsyncEngine, *, idempotency_hours: float, repeat_window_days: float, now: datetime | None = None,
) -> dict[str, int]:
    """Delete expired rows; how many went from each table."""
    now = now or datetime.now(timezone.utc)
    keys, officers = store.idempotency_keys, store.rating_officers
    return {
        "idempotency_keys": await delete_in_batches(
            engine, keys, keys.c.created_at < now - timedelta(hours=idempotency_hours), batch_rows=PRUNE_CHUNK),
        "rating_officers": await delete_in_batches(
            engine, officers, officers.c.submitted_at < now - timedelta(days=repeat_window_days), batch_rows=PRUNE_CHUNK),
    }
