"""The throwaway PostgreSQL server the integration suite runs on: starts, serves, survives a restart."""

from __future__ import annotations

import asyncio

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from deploy.postgres.runner import ThrowawayPostgres

pytestmark = pytest.mark.integration


def test_a_database_keeps_its_rows_across_a_server_restart() -> None:
    async def write(url: str) -> None:
        engine = create_async_engine(url)
        async with engine.begin() as conn:
            await conn.execute(sa.text("CREATE TABLE ratings (id text PRIMARY KEY, overall text)"))
            await conn.execute(sa.text("INSERT INTO ratings VALUES ('r1', 'hài lòng')"))
        await engine.dispose()

    async def read(url: str) -> list[tuple[str, str]]:
        engine = create_async_engine(url)
        async with engine.connect() as conn:
            rows = (await conn.execute(sa.text("SELECT id, overall FROM ratings"))).all()
        await engine.dispose()
        return [tuple(row) for row in rows]

    with ThrowawayPostgres() as server:
        url = server.create_database("runner_check")
        asyncio.run(write(url))
        server.restart()
        assert asyncio.run(read(url)) == [("r1", "hài lòng")]
