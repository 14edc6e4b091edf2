"""The consumer runner under the database faults the chaos run found, on the real broker and both databases.

- A batch fails because the database went away, and it is still away when the runner seeks back to the stored
  offsets: the runner must not fetch on from past the failed batch (the chaos run lost 100 ratings at scoring
  this way — scoring's next good batch stored an offset beyond them).
- While PostgreSQL starts up it refuses connections with "the database system is starting up" (57P03), which
  SQLAlchemy passes on as a bare DBAPIError: that is the database being away, not a poison message.
- A database behind the group's offsets in Kafka (new, or restored from a backup) while its offset lookup is
  slow: the runner must apply from the database's offsets, never from Kafka's advisory ones (a 1 M catch-up on
  a fresh database lost the first 202,936 ratings of one partition this way).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import asyncpg
import pytest
import sqlalchemy as sa
from aiokafka import AIOKafkaProducer, TopicPartition
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from shared import events
from shared.bus.consumer import ConsumerRunner, Tx
from shared.bus.tables import define_bus_tables
from shared.db import create_engine_for, ensure_schema
from shared.settings import Settings
from shared.topics import RATINGS
from tests.support.infra import Backend
from tests.support.scoring_events import rating

pytestmark = pytest.mark.integration
SCHEMA = "chaos_bus"
metadata = sa.MetaData()
bus = define_bus_tables(metadata)


@pytest.fixture
async def engine(backend: Backend) -> AsyncIterator[AsyncEngine]:
    url = Settings(database_url=backend.database_url, data_dir=backend.data_dir).database_url_for(SCHEMA)
    await ensure_schema(url, SCHEMA)
    created = create_engine_for(url, SCHEMA)
    async with created.begin() as conn:
        await conn.run_sync(metadata.create_all)
    yield created
    await created.dispose()


async def _produce(bootstrap: str, topic: str, count: int) -> list[str]:
    """`count` ratings of one unit, so on one partition, in order; their event ids."""
    produced = [rating(f"D-{n:03d}") for n in range(count)]
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        for event in produced:
            await producer.send_and_wait(topic, event.to_bytes(), key=b"79.P1")
    finally:
        await producer.stop()
    return [event.id for event in produced]


async def _applied(engine: AsyncEngine) -> list[str]:
    async with engine.connect() as conn:
        return list((await conn.scalars(sa.select(bus.processed_events.c.event_id))).all())


async def _stored(engine: AsyncEngine, topic: str) -> int:
    offsets = bus.consumer_offsets
    async with engine.connect() as conn:
        return int(await conn.scalar(sa.select(sa.func.coalesce(sa.func.sum(offsets.c.next_offset), 0)).where(offsets.c.topic == topic)))


async def _run_until_caught_up(runner: ConsumerRunner, engine: AsyncEngine, topic: str, end: int, timeout: float = 60) -> None:
    task = asyncio.create_task(runner.run())
    try:
        deadline = time.monotonic() + timeout
        while await _stored(engine, topic) < end:
            assert time.monotonic() < deadline, f"stored offset {await _stored(engine, topic)} never reached {end}"
            assert not task.done(), task
            await asyncio.sleep(0.2)
    finally:
        runner.stop()
        await asyncio.wait_for(task, 30)
        await runner.close()


def _runner(engine: AsyncEngine, bootstrap: str, prefix: str, handler, batch_size: int = 5) -> ConsumerRunner:  # type: ignore[no-untyped-def]
    return ConsumerRunner("chaos-test", engine, bus, bootstrap=bootstrap, topic_prefix=prefix, topics=[RATINGS],
                          handlers={events.RATING_ACCEPTED: handler}, batch_size=batch_size, max_retries=3)


async def test_a_failed_batch_is_applied_even_when_the_database_is_still_away_at_the_rewind(
    kafka_broker, topic_prefix: str, engine: AsyncEngine
) -> None:
    topic = f"{topic_prefix}{RATINGS}"
    produced = await _produce(kafka_broker.bootstrap, topic, 20)
    database_went_away = asyncio.Event()

    async def handler(event: events.CloudEvent, data: events.EventData, tx: Tx) -> None:
        if not database_went_away.is_set():
            database_went_away.set()  # the first batch fails …
            raise ConnectionRefusedError(111, "Connection refused")

    runner = _runner(engine, kafka_broker.bootstrap, topic_prefix, handler)
    read_stored = runner.stored_offsets
    refused = False

    async def stored_offsets(partitions: list[TopicPartition]) -> dict[TopicPartition, int]:
        nonlocal refused
        if database_went_away.is_set() and not refused:
            refused = True  # … and the database still refuses when the runner seeks back
            raise ConnectionRefusedError(111, "Connection refused")
        return await read_stored(partitions)

    runner.stored_offsets = stored_offsets  # type: ignore[method-assign]
    end = sum((await _end_offsets(kafka_broker.bootstrap, topic)).values())
    await _run_until_caught_up(runner, engine, topic, end)

    assert refused, "the rewind never met the database away: the test did not test anything"
    assert sorted(await _applied(engine)) == sorted(produced)


async def test_a_database_starting_up_is_waited_for_not_dead_lettered(kafka_broker, topic_prefix: str, engine: AsyncEngine) -> None:
    topic = f"{topic_prefix}{RATINGS}"
    produced = await _produce(kafka_broker.bootstrap, topic, 6)
    starting_until = time.monotonic() + 3.0  # longer than the runner's retries of one record (0.05 s … 0.4 s)
    refusals = 0

    async def handler(event: events.CloudEvent, data: events.EventData, tx: Tx) -> None:
        nonlocal refusals
        if time.monotonic() < starting_until:
            refusals += 1
            # What SQLAlchemy raises while PostgreSQL answers "the database system is starting up".
            raise DBAPIError("SELECT 1", None, asyncpg.exceptions.CannotConnectNowError("the database system is starting up"))

    runner = _runner(engine, kafka_broker.bootstrap, topic_prefix, handler, batch_size=100)
    end = sum((await _end_offsets(kafka_broker.bootstrap, topic)).values())
    await _run_until_caught_up(runner, engine, topic, end)

    assert refusals > 0
    assert sorted(await _applied(engine)) == sorted(produced)
    async with engine.connect() as conn:
        dead = await conn.scalar(sa.select(sa.func.count()).select_from(bus.outbox).where(bus.outbox.c.topic == f"{topic}.dlq"))
    assert dead == 0


async def test_a_database_behind_kafkas_committed_offsets_gets_every_record(kafka_broker, topic_prefix: str, engine: AsyncEngine) -> None:
    topic = f"{topic_prefix}{RATINGS}"
    produced = await _produce(kafka_broker.bootstrap, topic, 40)
    ends = await _end_offsets(kafka_broker.bootstrap, topic)
    # Where an earlier database's runner left the group's advisory offsets: halfway.
    await _commit(kafka_broker.bootstrap, "chaos-test", {tp: end // 2 for tp, end in ends.items() if end})

    async def handler(event: events.CloudEvent, data: events.EventData, tx: Tx) -> None:
        return None

    runner = _runner(engine, kafka_broker.bootstrap, topic_prefix, handler)
    read_stored = runner.stored_offsets
    lookups = 0

    async def slow_stored_offsets(partitions: list[TopicPartition]) -> dict[TopicPartition, int]:
        nonlocal lookups
        lookups += 1
        await asyncio.sleep(2)  # a busy database: meanwhile aiokafka positions the partitions at Kafka's offsets and fetches
        return await read_stored(partitions)

    runner.stored_offsets = slow_stored_offsets  # type: ignore[method-assign]
    await _run_until_caught_up(runner, engine, topic, sum(ends.values()))

    assert lookups > 0
    assert sorted(await _applied(engine)) == sorted(produced)


async def _commit(bootstrap: str, group: str, offsets: dict[TopicPartition, int]) -> None:
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign(list(offsets))
        await consumer.commit(offsets)
    finally:
        await consumer.stop()


async def _end_offsets(bootstrap: str, topic: str) -> dict[TopicPartition, int]:
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    await consumer.start()
    try:
        return dict(await consumer.end_offsets([TopicPartition(topic, p) for p in range(3)]))
    finally:
        await consumer.stop()
