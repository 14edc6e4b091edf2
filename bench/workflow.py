"""Suite `workflow`: ticket fan-in — how fast workflow's consumer turns dissatisfied ratings into tickets.

Every rating carries reasons in both statutory categories, so each one opens or joins two tickets
(Đà Nẵng 5697/2017 Art. 3.3), writes two `ticket_ratings` rows, and each batch emits one
`ticket.updated` per ticket it touched. Two shapes, each beside a raw aiokafka consumer reading the
same topic in the same run (the ceiling):
1. spread: 200 units, three partitions — the everyday shape;
2. burst: every rating for one unit — one partition, one pair of tickets (the acceptance test's burst).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from bench.bus import raw_consume
from bench.common import BenchContext, ratio_row
from services.workflow import store
from services.workflow.handlers import build_handlers, publish_touched_tickets
from shared import events, topics
from shared.bus.consumer import ConsumerRunner, Tx
from shared.bus.outbox import create_producer
from shared.db import prepare_database
from shared.settings import Settings
from shared.topics import topic_specs


def dissatisfied_ratings(count: int, units: int) -> list[events.CloudEvent]:
    completed = datetime(2026, 11, 18, 3, 0, tzinfo=timezone.utc)
    out = []
    for index in range(count):
        unit = f"79.U{index % units:03d}"
        data = events.RatingAccepted(
            rating_id=str(uuid.uuid4()), dossier_code=f"D-{index}", unit_code=unit, channel="kiosk",
            submitted_at=completed + timedelta(minutes=2), dossier_completed_at=completed, overall="dissatisfied",
            attitude="bad", reasons=["attitude", "documents"],
        )
        out.append(events.new_event(events.RATING_ACCEPTED, "/bench", unit, data))
    return out


async def produce(bootstrap: str, topic: str, batch: list[events.CloudEvent]) -> None:
    producer = create_producer(bootstrap)
    await producer.start()
    try:
        futures = [await producer.send(topic, value=e.to_bytes(), key=(e.subject or "").encode()) for e in batch]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def _attached(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return int(await conn.scalar(sa.select(sa.func.count()).select_from(store.ticket_ratings)) or 0)


async def workflow_runner(bootstrap: str, prefix: str, url: str, expect_links: int) -> tuple[float, int]:
    """Seconds to attach every rating (from the first applied batch on), and the tickets it made."""
    engine = await prepare_database(url, "workflow")
    settings = Settings(kafka_bootstrap=bootstrap, topic_prefix=prefix)

    async def before_commit(tx: Tx) -> None:
        await publish_touched_tickets(tx, settings)

    runner = ConsumerRunner(
        "bench-workflow", engine, store.bus, bootstrap=bootstrap, topic_prefix=prefix, topics=[topics.RATINGS],
        handlers=build_handlers(settings), before_commit=before_commit, batch_size=500,
    )
    task = asyncio.create_task(runner.run())
    try:
        while (first := await _attached(engine)) == 0:  # joining the group is not throughput
            await asyncio.sleep(0.01)
        started = time.perf_counter()
        while await _attached(engine) < expect_links:
            await asyncio.sleep(0.05)
        elapsed = (time.perf_counter() - started) * expect_links / (expect_links - first)
        async with engine.connect() as conn:
            tickets = int(await conn.scalar(sa.select(sa.func.count()).select_from(store.tickets)) or 0)
        return elapsed, tickets
    finally:
        runner.stop()
        await asyncio.wait_for(task, 30)
        await runner.close()
        await engine.dispose()


async def scenario(ctx: BenchContext, name: str, count: int, units: int, url: str) -> dict[str, Any]:
    prefix = f"benchwf{name}."
    await _topics(ctx, prefix)
    await produce(ctx.bootstrap, f"{prefix}{topics.RATINGS}", dissatisfied_ratings(count, units))
    ceiling = await raw_consume(ctx.bootstrap, f"{prefix}{topics.RATINGS}", count)
    measured, tickets = await workflow_runner(ctx.bootstrap, prefix, url, 2 * count)
    assert tickets == 2 * units, f"{tickets} tickets for {units} units: ratings must attach, not open new tickets"
    return ratio_row(f"ticket fan-in, {name} ({units} unit{'s' if units > 1 else ''}; Kafka → SQLite, exactly once)",
                     "ratings/s", count / measured, "raw aiokafka consume", count / ceiling,
                     target="≥ 300/s: DOMAIN.md's national peak of all ratings", ratings=count, tickets=tickets)


async def _topics(ctx: BenchContext, prefix: str) -> None:
    from deploy.kafka.runner import ensure_topics

    await ensure_topics(ctx.bootstrap, topic_specs(prefix, 3))


async def run(ctx: BenchContext) -> list[dict[str, Any]]:
    count = ctx.size(10_000)
    return [
        await scenario(ctx, "spread", count, 200, f"sqlite+aiosqlite:///{ctx.tmp / 'spread.db'}"),
        await scenario(ctx, "burst", count, 1, f"sqlite+aiosqlite:///{ctx.tmp / 'burst.db'}"),
    ]
