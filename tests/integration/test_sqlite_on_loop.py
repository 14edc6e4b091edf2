"""Intake's SQLite statements run on the event loop's thread (shared/db.py OnLoopSqliteConnection), except while
another connection of the process holds the write lock: then they wait in aiosqlite's thread, and the loop
stays free for the holder to commit."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.db import create_engine_for

pytestmark = pytest.mark.integration


def _engine(tmp_path: Path) -> AsyncEngine:
    engine = create_engine_for(f"sqlite+aiosqlite:///{tmp_path / 'intake.db'}", "intake", sqlite_on_loop=True)

    @event.listens_for(engine.sync_engine, "connect")
    def _thread_function(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
        # The thread that runs a statement, as SQL: SELECT thread_id().
        dbapi_connection.driver_connection._conn.create_function("thread_id", 0, threading.get_ident)

    return engine


async def _create_table(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        await conn.execute(sa.text("CREATE TABLE marks (name TEXT PRIMARY KEY)"))


async def test_statements_run_on_the_loops_thread(tmp_path: Path) -> None:
    engine = _engine(tmp_path)
    try:
        await _create_table(engine)
        async with engine.begin() as conn:
            await conn.execute(sa.text("INSERT INTO marks VALUES ('a')"))
            assert await conn.scalar(sa.text("SELECT thread_id()")) == threading.get_ident()
        async with engine.connect() as conn:
            assert await conn.scalar(sa.text("SELECT count(*) FROM marks")) == 1
    finally:
        await engine.dispose()


async def test_a_write_waits_off_the_loop_while_another_connection_holds_the_lock(tmp_path: Path) -> None:
    engine = _engine(tmp_path)
    try:
        await _create_table(engine)
        holding = asyncio.Event()
        release = asyncio.Event()
        ticks = 0

        async def holder() -> None:
            async with engine.begin() as conn:
                await conn.execute(sa.text("INSERT INTO marks VALUES ('first')"))  # takes the write lock
                holding.set()
                await release.wait()  # parked between its write and its commit

        async def ticker() -> None:
            nonlocal ticks
            while not release.is_set():
                ticks += 1
                await asyncio.sleep(0.01)

        async def writer() -> int:
            await holding.wait()
            async with engine.begin() as conn:
                thread = await conn.scalar(sa.text("SELECT thread_id()"))
                await conn.execute(sa.text("INSERT INTO marks VALUES ('second')"))  # waits for the holder's commit
            return int(thread)

        async def releaser() -> None:
            await holding.wait()
            await asyncio.sleep(0.3)
            release.set()

        # On the loop, the second write would sit in SQLite's busy wait with the loop blocked, the holder could
        # never commit, and it would fail with "database is locked" after the 30 s busy timeout.
        _, _, thread, _ = await asyncio.wait_for(asyncio.gather(holder(), ticker(), writer(), releaser()), timeout=20)
        assert thread != threading.get_ident()  # it went through aiosqlite's thread
        assert ticks >= 5  # the loop went on while the second write waited
        async with engine.connect() as conn:
            assert (await conn.execute(sa.text("SELECT name FROM marks ORDER BY name"))).scalars().all() == ["first", "second"]
    finally:
        await engine.dispose()
