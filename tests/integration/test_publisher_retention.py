"""Retention of the publisher's history (SQLite and PostgreSQL): superseded feed entries and old delivery attempts
are pruned in batches; a result's newest feed entry and recent history are kept; 0 days keeps everything."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from services.publisher import store
from services.publisher.handlers import PublicationPolicy, Target, build_handlers, build_publish_results
from services.publisher.retention import prune_once
from shared import events
from shared.bus.consumer import Tx
from shared.settings import Settings
from tests.support.infra import Backend

pytestmark = pytest.mark.integration
POLICY = PublicationPolicy(min_ratings=5, targets=(Target("map"),))
HANDLERS = build_handlers()
PUBLISH = build_publish_results(POLICY)
NOW = datetime.now(timezone.utc)


@pytest.fixture
async def engine(backend: Backend) -> AsyncIterator[AsyncEngine]:
    engine = await backend.migrated_engine("publisher")
    yield engine
    await engine.dispose()


def score(code: str, version: int, period: str = "2026-11") -> events.CloudEvent:
    data = events.ScoreChanged(
        unit_code=code, period=period, profile="hcmc-2024", score=50.0 + version, max_score=100.0, band="satisfied",
        components={}, ratings=10 + version, dossiers=10, version=version, updated_at=NOW,
    )
    return events.new_event(events.SCORE_CHANGED, "/test", code, data)


async def apply(engine: AsyncEngine, *batch: events.CloudEvent) -> None:
    async with engine.begin() as conn:
        tx = Tx(conn, store.bus, "t.")
        for event in batch:
            await HANDLERS[event.type](event, event.parsed_data(), tx)
        await PUBLISH(tx)


async def age_changes(engine: AsyncEngine, days: float, *, up_to_seq: int) -> None:
    table = store.changes
    async with engine.begin() as conn:
        await conn.execute(table.update().where(table.c.seq <= up_to_seq).values(published_at=NOW - timedelta(days=days)))


async def feed(engine: AsyncEngine) -> list[tuple[int, str, str, int]]:
    table = store.changes
    async with engine.connect() as conn:
        rows = await conn.execute(sa.select(table.c.seq, table.c.unit_code, table.c.period, table.c.version).order_by(table.c.seq))
        return [tuple(row) for row in rows]


def settings(**values: float) -> Settings:
    return Settings(**{"publisher_prune_batch_rows": 2, **values})


async def test_superseded_feed_entries_past_retention_go_and_every_results_newest_entry_stays(engine: AsyncEngine) -> None:
    # A: versions 1–4, B: version 1 only (its one entry is its newest), C: versions 1–2 published recently.
    for version in range(1, 5):
        await apply(engine, score("79.A", version))
    await apply(engine, score("79.B", 1))
    head = (await feed(engine))[-1][0]
    await age_changes(engine, 40, up_to_seq=head)
    await apply(engine, score("79.C", 1))
    await apply(engine, score("79.C", 2))

    deleted = await prune_once(engine, settings(publisher_changes_retention_days=30), NOW)

    assert deleted["changes"] == 3  # A's versions 1–3, in batches of two
    assert [(unit, version) for _, unit, _, version in await feed(engine)] == [("79.A", 4), ("79.B", 1), ("79.C", 1), ("79.C", 2)]
    seqs = [seq for seq, *_ in await feed(engine)]
    assert seqs == sorted(seqs) and seqs[-1] == head + 2  # numbering goes on; the holes are below every live cursor
    assert (await prune_once(engine, settings(publisher_changes_retention_days=30), NOW))["changes"] == 0


async def test_the_feed_keeps_entries_younger_than_its_retention_and_everything_at_zero(engine: AsyncEngine) -> None:
    for version in range(1, 4):
        await apply(engine, score("79.A", version))
    await age_changes(engine, 10, up_to_seq=3)
    assert (await prune_once(engine, settings(publisher_changes_retention_days=30), NOW))["changes"] == 0
    assert "changes" not in await prune_once(engine, settings(publisher_changes_retention_days=0), NOW)
    assert len(await feed(engine)) == 3
    assert (await prune_once(engine, settings(publisher_changes_retention_days=7), NOW))["changes"] == 2
    assert [version for *_, version in await feed(engine)] == [3]


async def test_delivery_attempts_past_retention_go_in_batches_and_the_deliveries_stay(engine: AsyncEngine) -> None:
    await apply(engine, score("79.A", 1))
    table, attempts = store.deliveries, store.delivery_attempts
    async with engine.begin() as conn:
        delivery_id = (await conn.execute(sa.select(table.c.id))).scalar_one()
        await conn.execute(attempts.insert(), [
            {"delivery_id": delivery_id, "version": 1, "at": NOW - timedelta(days=age), "status_code": 503,
             "outcome": "retry", "error": "HTTP 503", "duration_ms": 5.0}
            for age in (30, 20, 15, 13, 1)
        ])
    deleted = await prune_once(engine, settings(publisher_attempts_retention_days=14, publisher_changes_retention_days=0), NOW)
    assert deleted == {"delivery_attempts": 3}
    async with engine.connect() as conn:
        left = sorted(row.at for row in await conn.execute(sa.select(attempts.c.at)))
        assert [round((NOW - at) / timedelta(days=1)) for at in left] == [13, 1]
        assert (await conn.execute(sa.select(sa.func.count()).select_from(table))).scalar_one() == 1


async def test_the_pruner_has_sensible_defaults() -> None:
    defaults = Settings()
    assert defaults.publisher_changes_retention_days >= 7 and defaults.publisher_attempts_retention_days >= 1
    assert 0 < defaults.publisher_prune_batch_rows <= 10_000
