"""Scoring's consumer on the real broker: a relay's re-send (the same event at a new offset) changes nothing.

Ratings, dossiers and verdicts are absorbed by their natural keys (no processed_events row each); registry
events are still remembered by id, because re-applying an old registration would move a unit back.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import sqlalchemy as sa
from aiokafka import AIOKafkaProducer
from sqlalchemy.ext.asyncio import AsyncEngine

from services.scoring import store
from services.scoring.handlers import HANDLERS, IDEMPOTENT_BY_NATURAL_KEY, apply_scoring_batch
from shared import events, topics
from shared.bus.consumer import ConsumerRunner
from tests.support import scoring_events as se
from tests.support.infra import Backend

pytestmark = pytest.mark.integration

WARD = "79.P1"
SUBSCRIPTIONS = [topics.UNITS, topics.DOSSIERS, topics.RATINGS, topics.VERIFICATIONS]
TOPIC_OF = {
    events.UNIT_UPSERTED: topics.UNITS, events.DOSSIER_COMPLETED: topics.DOSSIERS, events.RATING_ACCEPTED: topics.RATINGS,
    events.RATING_FLAGGED: topics.RATINGS, events.RATING_VERIFIED: topics.VERIFICATIONS,
}


@pytest.fixture
async def engine(backend: Backend) -> AsyncIterator[AsyncEngine]:
    engine = await se.scoring_engine(backend)
    yield engine
    await engine.dispose()


async def _send(bootstrap: str, prefix: str, batch: list[events.CloudEvent]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        for event in batch:  # the same bytes a relay would send again: same id, new offset
            await producer.send_and_wait(f"{prefix}{TOPIC_OF[event.type]}", event.to_bytes(), key=(event.subject or "").encode())
    finally:
        await producer.stop()


async def _offsets(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return int(await conn.scalar(sa.select(sa.func.coalesce(sa.func.sum(store.bus.consumer_offsets.c.next_offset), 0))) or 0)


async def _until_consumed(engine: AsyncEngine, total: int) -> None:
    for _ in range(300):
        if await _offsets(engine) >= total:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"the consumer did not reach {total} records")


async def _state(engine: AsyncEngine) -> tuple[list[tuple], list[tuple], list[tuple]]:
    """Every counter row with its revision (a write of any kind moves it), every contribution, the registry."""
    async with engine.connect() as conn:
        counters = sorted(tuple(r) for r in await conn.execute(sa.select(store.counters)))
        ratings = sorted(tuple(r) for r in await conn.execute(sa.select(store.rating_contributions)))
        registry = sorted(tuple(r) for r in await conn.execute(sa.select(store.unit_ancestors)))
    return counters, ratings, registry


async def test_a_resent_event_at_a_new_offset_changes_nothing(engine: AsyncEngine, kafka_broker, topic_prefix: str) -> None:  # type: ignore[no-untyped-def]
    runner = ConsumerRunner(
        "scoring", engine, store.bus, bootstrap=kafka_broker.bootstrap, topic_prefix=topic_prefix, topics=SUBSCRIPTIONS,
        handlers=HANDLERS, before_commit=apply_scoring_batch, idempotent_types=IDEMPOTENT_BY_NATURAL_KEY,
    )
    task = asyncio.create_task(runner.run())
    try:
        old_home = se.unit(WARD, "79")
        flagged = se.rating("D2", WARD, "satisfied", flagged=True)
        first = se.rating("D1", WARD, "dissatisfied", attitude="bad")
        history = [
            se.unit("79", level="province"), se.unit("80", level="province"), old_home, se.dossier("D1", WARD),
            se.dossier("D2", WARD), first, flagged,
            se.rating("D1", WARD, "satisfied", supersedes=se.rating_id_of(first)),  # a correction
            se.verdict(se.rating_id_of(flagged), "D2", "genuine"),
            se.unit(WARD, "80"),  # the ward moves to province 80
        ]
        await _send(kafka_broker.bootstrap, topic_prefix, history)
        await _until_consumed(engine, len(history))
        before = await _state(engine)
        assert (await se.counters(engine, "80", "2026-11"))["ratings"] == 2
        assert await se.counters(engine, "79", "2026-11") == {}

        # The relay re-sends, after a crash, events it had sent long before: the same ids at new offsets.
        resent = [first, flagged, history[3], old_home]  # history[3]: the dossier D1's event
        await _send(kafka_broker.bootstrap, topic_prefix, resent)
        await _until_consumed(engine, len(history) + len(resent))

        assert await _state(engine) == before  # no counter written, no contribution changed, the ward not moved back
        async with engine.connect() as conn:
            remembered = set((await conn.scalars(sa.select(store.bus.processed_events.c.event_id))).all())
        registry_ids = {e.id for e in history if e.type == events.UNIT_UPSERTED}
        assert remembered == registry_ids  # ratings, dossiers and verdicts are kept by their natural keys alone
    finally:
        runner.stop()
        await asyncio.wait_for(task, 30)
        await runner.close()
