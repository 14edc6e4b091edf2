"""Suite `bus`: the shared Kafka plumbing beside raw aiokafka on the same broker.

1. outbox relay (database → Kafka) vs a raw idempotent producer sending the same records;
2. scoring's consumer runner (Kafka → handlers → database, one transaction per batch) vs a raw
   aiokafka consumer reading the same topic.
"""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timedelta, timezone
from typing import Any

import sqlalchemy as sa
from aiokafka import AIOKafkaConsumer
from sqlalchemy.ext.asyncio import AsyncEngine

from bench.common import BenchContext, ratio_row
from services.scoring import store as scoring_store
from services.scoring.handlers import HANDLERS, IDEMPOTENT_BY_NATURAL_KEY, apply_scoring_batch
from shared import events, topics
from shared.bus.consumer import ConsumerRunner
from shared.bus.outbox import OutboxRelay, add_many_to_outbox, create_producer
from shared.db import prepare_database
from shared.ids import new_id
from shared.topics import topic_specs

PREFIX = "benchbus."


def rating_events(count: int) -> list[events.CloudEvent]:
    completed = datetime(2026, 11, 18, 3, 0, tzinfo=timezone.utc)
    out = []
    for index in range(count):
        unit = f"79.U{index % 200:03d}"
        data = events.RatingAccepted(
            rating_id=new_id(), dossier_code=f"D-{index}", unit_code=unit, channel="kiosk",
            submitted_at=completed + timedelta(minutes=2), dossier_completed_at=completed + timedelta(days=index % 60),
            overall="satisfied" if index % 5 else "dissatisfied", attitude="good", reasons=[],
        )
        out.append(events.new_event(events.RATING_ACCEPTED, "/bench", unit, data))
    return out


async def raw_produce(bootstrap: str, topic: str, batch: list[events.CloudEvent]) -> float:
    producer = create_producer(bootstrap)
    await producer.start()
    try:
        started = time.perf_counter()
        futures = [await producer.send(topic, value=e.to_bytes(), key=(e.subject or "").encode()) for e in batch]
        await asyncio.gather(*futures)
        return time.perf_counter() - started
    finally:
        await producer.stop()


async def relay_outbox(bootstrap: str, url: str, topic: str, batch: list[events.CloudEvent]) -> float:
    engine = await prepare_database(url, "scoring")
    async with engine.begin() as conn:
        await add_many_to_outbox(conn, scoring_store.bus, [(topic, e.subject, e) for e in batch])
    relay = OutboxRelay("bench", engine, scoring_store.bus, bootstrap, batch_size=500)
    await relay._ensure_producer()  # noqa: SLF001 - start-up is not what is measured
    started = time.perf_counter()
    while await relay.relay_once():
        pass
    elapsed = time.perf_counter() - started
    await relay.stop()
    await engine.dispose()
    return elapsed


async def raw_consume(bootstrap: str, topic: str, expect: int) -> float:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", group_id=None, enable_auto_commit=False)
    await consumer.start()
    try:
        seen = 0
        started = time.perf_counter()
        while seen < expect:
            batch = await consumer.getmany(timeout_ms=1000, max_records=500)
            seen += sum(len(records) for records in batch.values())
        return time.perf_counter() - started
    finally:
        await consumer.stop()


async def consumer_runner(bootstrap: str, url: str, expect: int) -> float:
    engine = await prepare_database(url, "scoring")
    runner = ConsumerRunner(
        "bench-scoring", engine, scoring_store.bus, bootstrap=bootstrap, topic_prefix=PREFIX,
        topics=[topics.RATINGS], handlers=HANDLERS, before_commit=apply_scoring_batch, batch_size=2000,
        idempotent_types=IDEMPOTENT_BY_NATURAL_KEY,
    )
    task = asyncio.create_task(runner.run())
    try:
        # The clock starts at the first applied batch: joining the consumer group is not throughput.
        while (first := await _count(engine)) == 0:
            await asyncio.sleep(0.01)
        started = time.perf_counter()
        while await _count(engine) < expect:
            await asyncio.sleep(0.05)
        return (time.perf_counter() - started) * expect / (expect - first)
    finally:
        runner.stop()
        await asyncio.wait_for(task, 30)
        await runner.close()
        await engine.dispose()


async def _count(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return int(await conn.scalar(sa.select(sa.func.count()).select_from(scoring_store.rating_contributions)) or 0)


async def run(ctx: BenchContext) -> list[dict[str, Any]]:
    from deploy.kafka.runner import ensure_topics

    count = ctx.size(20_000)
    await ensure_topics(ctx.bootstrap, topic_specs(PREFIX, 3) + topic_specs("benchceiling.", 3))
    batch = rating_events(count)
    rows = []
    ceiling = await raw_produce(ctx.bootstrap, f"benchceiling.{topics.RATINGS}", batch)
    measured = await relay_outbox(ctx.bootstrap, f"sqlite+aiosqlite:///{ctx.tmp / 'relay.db'}", f"{PREFIX}{topics.RATINGS}", batch)
    rows.append(ratio_row("outbox relay (SQLite → Kafka)", "events/s", count / measured,
                          "raw idempotent aiokafka producer", count / ceiling, events=count))
    ceiling = await raw_consume(ctx.bootstrap, f"{PREFIX}{topics.RATINGS}", count)
    measured = await consumer_runner(ctx.bootstrap, f"sqlite+aiosqlite:///{ctx.tmp / 'scoring.db'}", count)
    rows.append(ratio_row("scoring consumer runner (Kafka → SQLite, exactly once)", "events/s", count / measured,
                          "raw aiokafka consume", count / ceiling, events=count))
    return rows
