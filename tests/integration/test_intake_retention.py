"""Intake forgets what it no longer needs, on both databases: answers remembered for Idempotency-Key retries
after their retention, officer ratings after the repeat-respondent window — and nothing younger."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from services.intake import retention, store
from tests.support.infra import Backend

pytestmark = pytest.mark.integration
NOW = datetime(2026, 11, 25, 12, 0, tzinfo=timezone.utc)


async def test_expired_rows_go_in_chunks_and_younger_rows_stay(backend: Backend) -> None:
    engine = await backend.migrated_engine("intake")
    try:
        old_keys = retention.PRUNE_CHUNK + 7  # more than one chunk
        async with engine.begin() as conn:
            await conn.execute(store.idempotency_keys.insert(), [
                {"principal": "kiosk-1", "key": f"k{i}", "request_hash": "h", "status_code": 202, "response": {"ok": i},
                 "created_at": NOW - timedelta(hours=73 if i < old_keys else 71)}
                for i in range(old_keys + 5)
            ])
            await conn.execute(store.rating_officers.insert(), [
                {"rating_id": f"r{i}", "officer_id": "OF-1", "respondent_hash": "x" * 64,
                 "submitted_at": NOW - timedelta(days=91 if i < 3 else 89)}
                for i in range(5)
            ])
        removed = await retention.prune_expired(engine, idempotency_hours=72, repeat_window_days=90, now=NOW)
        assert removed == {"idempotency_keys": old_keys, "rating_officers": 3}
        async with engine.connect() as conn:
            kept_keys = set((await conn.scalars(sa.select(store.idempotency_keys.c.key))).all())
            kept_ratings = set((await conn.scalars(sa.select(store.rating_officers.c.rating_id))).all())
        assert kept_keys == {f"k{i}" for i in range(old_keys, old_keys + 5)}
        assert kept_ratings == {"r3", "r4"}
        again = await retention.prune_expired(engine, idempotency_hours=72, repeat_window_days=90, now=NOW)
        assert again == {"idempotency_keys": 0, "rating_officers": 0}
    finally:
        await engine.dispose()
