"""Publisher's handlers in real database transactions (SQLite and PostgreSQL): projections, collapse, the feed's
gap-free sequence, immutable official snapshots, and tables that match their migrations."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from services.publisher import queries, store
from services.publisher.handlers import PublicationPolicy, Target, build_handlers, build_publish_results
from services.publisher.snapshots import due_snapshots, freeze
from shared import events
from shared.bus.consumer import Tx
from tests.support.infra import Backend

pytestmark = pytest.mark.integration
POLICY = PublicationPolicy(min_ratings=5, targets=(Target("map"), Target("portal", frozenset({"hcmc-2024"}))))
HANDLERS = build_handlers()
PUBLISH = build_publish_results(POLICY)
NOW = datetime(2026, 11, 18, 3, 0, tzinfo=timezone.utc)


@pytest.fixture
async def engine(backend: Backend) -> AsyncIterator[AsyncEngine]:
    engine = await backend.migrated_engine("publisher")
    yield engine
    await engine.dispose()


def unit(code: str, level: str = "department", parent: str | None = "79", lat: float | None = None, lon: float | None = None,
         name: str | None = None) -> events.CloudEvent:
    data = events.UnitUpserted(code=code, name=name or f"Unit {code}", level=level, parent_code=parent, lat=lat, lon=lon)
    return events.new_event(events.UNIT_UPSERTED, "/test", code, data)


def score(code: str, version: int, value: float | None = 90.0, ratings: int = 10, period: str = "2026-11",
          profile: str = "hcmc-2024", band: str = "satisfied", provisional: bool = False) -> events.CloudEvent:
    data = events.ScoreChanged(
        unit_code=code, period=period, profile=profile, score=value, max_score=100.0, band=band,
        components={"satisfied": ratings}, ratings=ratings, dossiers=ratings, version=version,
        updated_at=NOW + timedelta(minutes=version), provisional=provisional,
    )
    return events.new_event(events.SCORE_CHANGED, "/test", code, data)


def ticket(ticket_id: str, status: str, at: datetime, **changes: Any) -> events.CloudEvent:
    data = events.TicketEvent(
        ticket_id=ticket_id, unit_code="79.SNV", category="procedure", source="rating", severity="normal",
        status=status, period="2026-11", opened_at=NOW, due_at=NOW + timedelta(days=21), rating_ids=["r-1"], **changes,
    )
    event = events.new_event(events.TICKET_UPDATED, "/test", "79.SNV", data)
    return event.model_copy(update={"time": at})


async def apply(engine: AsyncEngine, *batch: events.CloudEvent) -> None:
    """One consumed batch: every handler, then the before-commit hook, in one transaction."""
    async with engine.begin() as conn:
        tx = Tx(conn, store.bus, "t.")
        for event in batch:
            handler = HANDLERS.get(event.type)
            if handler is not None:
                await handler(event, event.parsed_data(), tx)
        await PUBLISH(tx)


async def rows(engine: AsyncEngine, query: Any) -> list[Any]:
    async with engine.connect() as conn:
        return list((await conn.execute(query)).all())


async def test_the_newest_version_wins_and_each_batch_publishes_it_once(engine: AsyncEngine) -> None:
    await apply(engine, unit("79.SNV"), unit("79.STP"), score("79.SNV", 1), score("79.SNV", 3, 80.0), score("79.SNV", 2),
                score("79.STP", 1, 95.0))
    feed = await rows(engine, sa.select(store.changes).order_by(store.changes.c.seq))
    assert [(r.seq, r.unit_code, r.version) for r in feed] == [(1, "79.SNV", 3), (2, "79.STP", 1)]
    assert feed[0].payload["rank"] == 2 and feed[1].payload["rank"] == 1  # among departments, STP scores higher

    deliveries = {(r.target, r.unit_code): r for r in await rows(engine, sa.select(store.deliveries))}
    assert set(deliveries) == {("map", "79.SNV"), ("map", "79.STP"), ("portal", "79.SNV"), ("portal", "79.STP")}
    first = deliveries[("map", "79.SNV")]
    assert (first.version, first.status, first.edition) == (3, "pending", "live")

    await apply(engine, score("79.SNV", 2, 10.0))  # late and stale: nothing changes
    await apply(engine, score("79.SNV", 4, 70.0))
    feed = await rows(engine, sa.select(store.changes).order_by(store.changes.c.seq))
    assert [(r.seq, r.unit_code, r.version) for r in feed][-1] == (3, "79.SNV", 4) and len(feed) == 3
    collapsed = (await rows(engine, sa.select(store.deliveries).where(store.deliveries.c.id == first.id)))[0]
    assert (collapsed.version, collapsed.status) == (4, "pending")
    assert b'"version":4' in collapsed.body and b'"score":70.0' in collapsed.body


async def test_a_newer_version_keeps_a_failing_targets_backoff_and_reopens_a_delivered_or_dead_one(engine: AsyncEngine) -> None:
    await apply(engine, unit("79.SNV"), score("79.SNV", 1))
    table = store.deliveries
    later = datetime.now(timezone.utc) + timedelta(minutes=10)
    async with engine.begin() as conn:
        await conn.execute(table.update().where(table.c.target == "map").values(status="retry", attempts=6, next_attempt_at=later))
        await conn.execute(table.update().where(table.c.target == "portal").values(status="dead", attempts=1, last_error="HTTP 400"))
    await apply(engine, score("79.SNV", 2))
    by_target = {r.target: r for r in await rows(engine, sa.select(table))}
    assert (by_target["map"].version, by_target["map"].status, by_target["map"].attempts) == (2, "retry", 6)
    assert by_target["map"].next_attempt_at == later
    assert (by_target["portal"].version, by_target["portal"].status, by_target["portal"].attempts) == (2, "pending", 0)
    assert by_target["portal"].last_error is None


async def test_a_newer_version_keeps_a_waiting_rows_place_in_the_queue_and_a_batch_queues_only_the_newest(engine: AsyncEngine) -> None:
    await apply(engine, unit("79.SNV"), unit("79.STP"), score("79.SNV", 1), score("79.STP", 1))
    table = store.deliveries
    place = (await rows(engine, sa.select(table).where(table.c.target == "map", table.c.unit_code == "79.SNV")))[0]
    await apply(engine, score("79.SNV", 3, 70.0), score("79.SNV", 2, 60.0), score("79.STP", 2, 99.0))
    by_unit = {r.unit_code: r for r in await rows(engine, sa.select(table).where(table.c.target == "map"))}
    snv = by_unit["79.SNV"]
    assert (snv.id, snv.version, snv.status, snv.next_attempt_at) == (place.id, 3, "pending", place.next_attempt_at)
    assert b'"version":3' in snv.body and b'"score":70.0' in snv.body
    assert by_unit["79.STP"].version == 2


async def test_units_with_too_few_ratings_are_published_without_figures_everywhere(engine: AsyncEngine) -> None:
    await apply(engine, unit("79.SNV"), score("79.SNV", 1, 97.5, ratings=4))
    entry = (await rows(engine, sa.select(store.changes)))[0].payload
    assert (entry["score"], entry["band"], entry["components"], entry["rank"], entry["ratings"]) == (
        None, "insufficient_data", None, None, 4)
    body = (await rows(engine, sa.select(store.deliveries.c.body)))[0].body
    assert b'"score":null' in body and b'"band":"insufficient_data"' in body and b"97.5" not in body


async def test_provinces_without_coordinates_sit_at_their_seat_and_registry_coordinates_win(engine: AsyncEngine) -> None:
    await apply(engine, unit("79", "province", None), unit("01", "province", None, lat=21.03, lon=105.85),
                unit("79.SXD", "department"), unit("79.SNV", "department", lat=10.7798, lon=106.699))
    located = {r.code: (r.lat, r.lon, r.coordinates_source) for r in await rows(engine, sa.select(store.units))}
    assert located["79"] == (10.7763, 106.7009, "provincial_seat")
    assert located["01"] == (21.03, 105.85, "registry")
    assert located["79.SNV"] == (10.7798, 106.699, "registry")
    assert located["79.SXD"] == (None, None, None)  # listed in the table, not drawn on the map


async def test_the_feed_has_no_gaps_even_while_concurrent_writers_commit(engine: AsyncEngine) -> None:
    """A reader that sees sequence N has seen every number below N, whatever order writers commit in."""
    writers, per_writer = 6, 5
    observed: list[list[int]] = []
    done = asyncio.Event()

    async def write(index: int) -> None:
        for n in range(per_writer):
            async with engine.begin() as conn:
                await store.append_changes(conn, [{
                    "edition": "live", "unit_code": f"U{index}", "period": "2026-11", "profile": "p", "version": n + 1,
                }])
                await asyncio.sleep(random.uniform(0, 0.02))  # commit late: later numbers may be waiting behind

    async def read() -> None:
        while not done.is_set():
            async with engine.connect() as conn:
                observed.append([r.seq for r in await conn.execute(sa.select(store.changes.c.seq).order_by(store.changes.c.seq))])
            await asyncio.sleep(0.003)

    reader = asyncio.create_task(read())
    await asyncio.gather(*(write(i) for i in range(writers)))
    done.set()
    await reader
    total = writers * per_writer
    final = [r.seq for r in await rows(engine, sa.select(store.changes.c.seq).order_by(store.changes.c.seq))]
    assert final == list(range(1, total + 1))
    assert len(observed) > 3
    assert all(seen == list(range(1, len(seen) + 1)) for seen in observed), "a reader saw a gap"


async def test_an_official_snapshot_is_frozen_versioned_and_immutable(engine: AsyncEngine) -> None:
    await apply(engine, unit("79", "province", None), unit("79.SNV"), unit("79.STP"),
                score("79.SNV", 1, 80.0, period="2026-Q3"), score("79.STP", 1, 90.0, period="2026-Q3"),
                score("79", 1, 70.0, period="2026-Q3"), score("79.SNV", 1, 85.0, period="2026-10"))
    closed = datetime(2026, 9, 30, 17, 10, tzinfo=timezone.utc)  # 00:10 on 1 October in Việt Nam
    async with engine.connect() as conn:
        assert await due_snapshots(conn, closed, timedelta(minutes=5), timedelta(days=92)) == [("2026-Q3", "hcmc-2024")]
        assert await due_snapshots(conn, closed - timedelta(minutes=6), timedelta(minutes=5), timedelta(days=92)) == []
    async with engine.begin() as conn:
        first = await freeze(conn, POLICY, "2026-Q3", "hcmc-2024", "period closed")
    assert first is not None and (first["version"], first["unit_count"]) == (1, 3)
    async with engine.connect() as conn:
        assert await due_snapshots(conn, closed, timedelta(minutes=5), timedelta(days=92)) == []
        official = await queries.official_ranking(conn, "2026-Q3", "hcmc-2024")
    assert [(r.unit_code, r.score, r.rank) for r in official.results] == [("79.STP", 90.0, 1), ("79.SNV", 80.0, 2), ("79", 70.0, 3)]
    items = {r.unit_code: r.rank for r in await rows(engine, sa.select(store.snapshot_items))}
    assert items == {"79.STP": 1, "79.SNV": 2, "79": 1}  # stored rank: among units of the same level

    await apply(engine, score("79.SNV", 2, 99.0, period="2026-Q3"))  # a late rating moves the live figure only
    async with engine.connect() as conn:
        live = await queries.live_ranking(conn, "2026-Q3", "hcmc-2024", 5, level="department")
        still = await queries.official_ranking(conn, "2026-Q3", "hcmc-2024", level="department")
    assert [(r.unit_code, r.score) for r in live.results] == [("79.SNV", 99.0), ("79.STP", 90.0)]
    assert [(r.unit_code, r.score) for r in still.results] == [("79.STP", 90.0), ("79.SNV", 80.0)]
    assert still.edition.name == "official" and still.edition.snapshot_version == 1

    async with engine.begin() as conn:
        second = await freeze(conn, POLICY, "2026-Q3", "hcmc-2024", "corrections after the close")
    async with engine.connect() as conn:
        v1 = await queries.official_ranking(conn, "2026-Q3", "hcmc-2024", version=1, level="department")
        v2 = await queries.official_ranking(conn, "2026-Q3", "hcmc-2024", level="department")
    assert second["version"] == 2
    assert [(r.unit_code, r.score) for r in v1.results] == [("79.STP", 90.0), ("79.SNV", 80.0)]
    assert [(r.unit_code, r.score) for r in v2.results] == [("79.SNV", 99.0), ("79.STP", 90.0)]

    official_feed = await rows(engine, sa.select(store.changes).where(store.changes.c.edition == "official"))
    assert sorted((r.unit_code, r.version) for r in official_feed) == sorted(
        [(u, v) for u in ("79", "79.SNV", "79.STP") for v in (1, 2)])
    official_pushes = await rows(engine, sa.select(store.deliveries).where(store.deliveries.c.edition == "official"))
    assert {(r.target, r.unit_code, r.version) for r in official_pushes} == {
        (t, u, 2) for t in ("map", "portal") for u in ("79", "79.SNV", "79.STP")}  # collapsed to the newest version

    for statement in (
        store.snapshot_items.update().values(rank=99),
        store.snapshot_items.delete(),
        store.snapshots.update().values(reason="rewritten"),
        store.snapshots.delete(),
    ):
        with pytest.raises(DBAPIError, match="immutable"):
            async with engine.begin() as conn:
                await conn.execute(statement)
    assert len(await rows(engine, sa.select(store.snapshot_items))) == 6


async def test_tickets_keep_their_newest_state_with_no_personal_data(engine: AsyncEngine) -> None:
    opened = ticket("t-1", "open", NOW)
    closed = ticket("t-1", "closed", NOW + timedelta(days=3), resolved_at=NOW + timedelta(days=2),
                    closed_at=NOW + timedelta(days=3), measures="Bổ sung hướng dẫn hồ sơ trên cổng")
    await apply(engine, opened)
    await apply(engine, closed)
    await apply(engine, opened)  # redelivered out of order: older than what is applied
    (row,) = await rows(engine, sa.select(store.tickets))
    assert (row.status, row.measures, row.closed_at) == ("closed", "Bổ sung hướng dẫn hồ sơ trên cổng", NOW + timedelta(days=3))
    assert "rating_ids" not in row._mapping and "r-1" not in repr(row)


def test_the_tables_match_the_migrations(backend: Backend) -> None:
    async def differences() -> list[Any]:
        engine = await backend.migrated_engine("publisher")
        try:
            async with engine.connect() as conn:
                return await conn.run_sync(lambda sync: compare_metadata(MigrationContext.configure(sync), store.metadata))
        finally:
            await engine.dispose()

    assert asyncio.run(differences()) == []
