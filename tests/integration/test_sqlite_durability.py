"""On SQLite a commit is on disk before a service answers (a power cut cannot take back a rating answered 202);
only scoring, which re-derives its tables from the topics, trades that for speed."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from services.scoring.app import tune_sqlite_connections
from shared.db import create_engine_for

pytestmark = pytest.mark.integration

FULL, NORMAL = 2, 1  # PRAGMA synchronous values


async def _synchronous(engine: sa.ext.asyncio.AsyncEngine) -> int:
    async with engine.connect() as conn:
        return await conn.scalar(sa.text("PRAGMA synchronous"))


async def test_services_commit_to_disk_before_answering(tmp_path: Path) -> None:
    engine = create_engine_for(f"sqlite+aiosqlite:///{tmp_path / 'intake.db'}", "intake")
    try:
        assert await _synchronous(engine) == FULL
    finally:
        await engine.dispose()


async def test_scoring_relaxes_it_for_its_own_database(tmp_path: Path) -> None:
    engine = create_engine_for(f"sqlite+aiosqlite:///{tmp_path / 'scoring.db'}", "scoring")
    try:
        await tune_sqlite_connections(engine, 64)
        assert await _synchronous(engine) == NORMAL
    finally:
        await engine.dispose()


async def test_the_relay_process_commits_its_deletes_without_an_fsync(tmp_path: Path) -> None:
    # shared/bus/relay_process.py opens intake's database so: it only deletes rows it has published.
    engine = create_engine_for(f"sqlite+aiosqlite:///{tmp_path / 'intake.db'}", "intake", sqlite_fsync_each_commit=False)
    try:
        assert await _synchronous(engine) == NORMAL
    finally:
        await engine.dispose()
