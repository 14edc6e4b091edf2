"""Retention of the publisher's history: superseded entries of the changes feed and the delivery attempt log.

Both grow by tens of rows per rating under load (each figure version is a feed entry, each push an attempt)
and were kept for good. A background task deletes what is older than its setting, in small transactions with
a pause between them, so the consumer's batches (SQLite's one writer) never wait long behind it. A result's
newest feed entry is never deleted: a portal that reads the feed from the start still gets every result.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone

from sqlalchemy.ext.asyncio import AsyncEngine

from services.publisher import store
from services.publisher.metrics import PRUNED_ROWS
from shared.db import delete_in_batches
from shared.logging import get_logger
from shared.service import Runtime
from shared.settings import Settings

log = get_logger(__name__)
PAUSE_BETWEEN_BATCHES_SECONDS = 0.05


async def prune_once(engine: AsyncEngine, settings: Settings, now: datetime | None = None) -> dict[str, int]:
    """Delete everything past its retention, a batch per transaction; returns the rows deleted per table."""
    now = now or datetime.now(timezone.utc)
    limit = settings.publisher_prune_batch_rows
    plan = [
        ("changes", settings.publisher_changes_retention_days, store.superseded_changes_before),
        ("delivery_attempts", settings.publisher_attempts_retention_days, store.delivery_attempts_before),
    ]
    deleted: dict[str, int] = {}
    for table, days, expired in plan:
        if days <= 0:
            continue  # kept for good
        deleted[table] = await delete_in_batches(
            engine, getattr(store, table), expired(now - timedelta(days=days)), batch_rows=limit,
            pause_seconds=PAUSE_BETWEEN_BATCHES_SECONDS, on_batch=PRUNED_ROWS.labels(table).inc,
        )
    return deleted


async def prune_history(runtime: Runtime) -> None:
    """Background worker: prune every `HAILONG_PUBLISHER_PRUNE_EVERY_SECONDS`."""
    settings = runtime.settings
    if settings.publisher_changes_retention_days <= 0 and settings.publisher_attempts_retention_days <= 0:
        return
    while True:
        try:
            deleted = await prune_once(runtime.engine, settings)
            if any(deleted.values()):
                log.info("publisher history pruned", **deleted)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # database trouble: try again next time
            log.warning("could not prune the publisher's history; will retry", error=repr(exc))
        await asyncio.sleep(settings.publisher_prune_every_seconds)
