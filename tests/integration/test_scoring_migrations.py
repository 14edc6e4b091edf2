"""Upgrading a walking-skeleton scoring database keeps the figures' versions and replays the topics."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
import sqlalchemy as sa
from alembic import command

from services.scoring import store
from shared.db import _alembic_config, create_engine_for, ensure_schema
from shared.settings import Settings
from tests.support.infra import Backend

pytestmark = pytest.mark.integration


async def test_0002_keeps_figure_versions_and_clears_offsets_so_the_topics_replay(backend: Backend) -> None:
    url = Settings(database_url=backend.database_url, data_dir=backend.data_dir).database_url_for("scoring")
    await ensure_schema(url, "scoring")
    engine = create_engine_for(url, "scoring")
    now = datetime.now(timezone.utc)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(lambda sync: command.upgrade(_alembic_config("scoring", sync), "0001"))
            await conn.execute(sa.text(
                "INSERT INTO aggregates (profile, unit_code, period, ratings, satisfied, dossiers, score, band, version, updated_at) "
                "VALUES ('satisfied-share', '79.SNV', '2026-11', 3, 2, 3, 66.7, 'insufficient_data', 7, :now)"), {"now": now})
            await conn.execute(sa.text(
                "INSERT INTO consumer_offsets (group_id, topic, partition, next_offset, updated_at) VALUES ('scoring', 'hailong.ratings.v1', 0, 42, :now)"),
                {"now": now})
        async with engine.begin() as conn:
            await conn.run_sync(lambda sync: command.upgrade(_alembic_config("scoring", sync), "head"))
        async with engine.connect() as conn:
            figure = (await conn.execute(sa.select(store.aggregates))).one()
            assert (figure.unit_code, figure.version) == ("79.SNV", 7)  # the next score.changed carries version 8
            assert (await conn.execute(sa.select(store.bus.consumer_offsets))).all() == []
            for table in (store.counters, store.rating_contributions, store.score_feed):  # the new tables are usable
                assert (await conn.execute(sa.select(sa.func.count()).select_from(table))).scalar() == 0
    finally:
        await engine.dispose()
