"""`hailong scoring rebuild`: every counter again, from the contributions or from the topics at offset zero.

From the contributions (the default) the counters are summed again month by month; it is safe while the
service runs. From the topics, scoring's own state (registry copy, contributions, counters, assessments,
consumed offsets and event ids) is cleared and its topics replayed from offset zero with the service's
own consumer runner and handlers; the scoring service must be stopped first, and the topics must still
hold every event (unlimited retention). Either way the figures keep their versions and every one is
re-scored, so the versions carried by scores.v1 only go up.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

import sqlalchemy as sa
from aiokafka import AIOKafkaConsumer, TopicPartition
from sqlalchemy.ext.asyncio import AsyncEngine

from services.scoring import store
from services.scoring.domain.profiles import ProfileBook
from services.scoring.handlers import HANDLERS, IDEMPOTENT_BY_NATURAL_KEY, apply_scoring_batch
from services.scoring.projection import rebuild_counters, zero_counters
from services.scoring.scorer import Scorer
from shared import topics
from shared.bus.consumer import ConsumerRunner
from shared.db import prepare_database
from shared.settings import Settings

SERVICE = "scoring"
SUBSCRIPTIONS = [topics.UNITS, topics.DOSSIERS, topics.RATINGS, topics.ASSESSMENTS, topics.VERIFICATIONS]
# Scoring's derived state; figures (aggregates) and the outbox are kept.
CLEARED_BY_REPLAY = (
    store.rating_contributions, store.dossier_contributions, store.assessments, store.units, store.unit_ancestors,
    store.officers, store.bus.processed_events,
)

Progress = Callable[[int, int], None]  # (done, total)


@dataclass
class Outcome:
    contributions: int
    events: int
    seconds: float
    published_rows: int


class ServiceStillRunning(RuntimeError):
    """Another member of the scoring consumer group holds some partitions."""


async def rebuild_from_contributions(settings: Settings, progress: Progress | None = None, publish: bool = True) -> Outcome:
    engine = await prepare_database(settings.database_url_for(SERVICE), SERVICE)
    try:
        async with engine.connect() as conn:
            total = int(await conn.scalar(sa.select(sa.func.count()).select_from(store.rating_contributions)) or 0)
            total += int(await conn.scalar(sa.select(sa.func.count()).select_from(store.dossier_contributions)) or 0)
        done = 0

        def advance(count: int) -> None:
            nonlocal done
            done += count
            if progress is not None:
                progress(done, total)

        started = time.perf_counter()
        async with engine.begin() as conn:
            summed = await rebuild_counters(conn, advance)
        seconds = time.perf_counter() - started
        published = await _publish(engine, settings) if publish else 0
        return Outcome(summed, 0, seconds, published)
    finally:
        await engine.dispose()


async def rebuild_from_topics(settings: Settings, progress: Progress | None = None, publish: bool = True) -> Outcome:
    engine = await prepare_database(settings.database_url_for(SERVICE), SERVICE)
    try:
        ends, starts = await _topic_bounds(settings)
        async with engine.begin() as conn:
            for table in CLEARED_BY_REPLAY:
                await conn.execute(table.delete())
            offsets = store.bus.consumer_offsets
            await conn.execute(offsets.delete().where(offsets.c.group_id == SERVICE))
            await zero_counters(conn)  # zero, not deleted: figures of units that no longer have any are re-scored too
        total = sum(ends[tp] - starts[tp] for tp in ends)
        started = time.perf_counter()
        await _replay(engine, settings, ends, starts, total, progress)
        seconds = time.perf_counter() - started
        published = await _publish(engine, settings) if publish else 0
        return Outcome(0, total, seconds, published)
    finally:
        await engine.dispose()


async def _topic_bounds(settings: Settings) -> tuple[dict[TopicPartition, int], dict[TopicPartition, int]]:
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = [
            TopicPartition(topic, p)
            for topic in (settings.topic(base) for base in SUBSCRIPTIONS)
            for p in sorted(consumer.partitions_for_topic(topic) or await _partitions(consumer, topic))
        ]
        return await consumer.end_offsets(partitions), await consumer.beginning_offsets(partitions)
    finally:
        await consumer.stop()


async def _partitions(consumer: AIOKafkaConsumer, topic: str) -> set[int]:
    await consumer._client.force_metadata_update()  # noqa: SLF001 - aiokafka learns new topics on a metadata refresh
    found = consumer.partitions_for_topic(topic)
    if not found:
        raise RuntimeError(f"topic {topic} does not exist")
    return found


async def _replay(
    engine: AsyncEngine, settings: Settings, ends: dict[TopicPartition, int], starts: dict[TopicPartition, int], total: int,
    progress: Progress | None,
) -> None:
    runner = ConsumerRunner(
        SERVICE, engine, store.bus, bootstrap=settings.kafka_bootstrap, topic_prefix=settings.topic_prefix,
        topics=SUBSCRIPTIONS, handlers=HANDLERS, batch_size=settings.consumer_batch_size,
        max_retries=settings.consumer_max_retries, before_commit=apply_scoring_batch, idempotent_types=IDEMPOTENT_BY_NATURAL_KEY,
    )
    task = asyncio.create_task(runner.run())
    try:
        while True:
            if task.done():
                task.result()
                raise RuntimeError("the consumer stopped before the replay finished")
            stored = await runner.stored_offsets(list(ends))
            done = sum(min(stored.get(tp, starts[tp]), ends[tp]) - starts[tp] for tp in ends)
            if progress is not None:
                progress(done, total)
            if all(stored.get(tp, starts[tp]) >= ends[tp] for tp in ends):
                return
            consumer = runner.consumer
            if consumer is not None and consumer.assignment() and len(consumer.assignment()) < len(ends):
                raise ServiceStillRunning("another scoring consumer holds some partitions: stop the scoring service first")
            await asyncio.sleep(0.2)
    finally:
        runner.stop()
        try:
            await asyncio.wait_for(task, 30)
        except Exception:  # noqa: BLE001 - shutting down; the stored offsets are the truth
            task.cancel()
        await runner.close()


async def _publish(engine: AsyncEngine, settings: Settings) -> int:
    """Score every dirty counter now; the events wait in the outbox for the service's relay."""
    scorer = Scorer(engine, ProfileBook.build(settings.scoring_profile_parameters, settings.scoring_minimum_count), settings.topic_prefix)
    rows = 0
    while True:
        result = await scorer.publish_once()
        rows += result.unit_rows + result.officer_rows
        if result.unit_rows == 0 and result.officer_rows == 0:
            return rows


def rebuild_command(settings: Settings, *, from_topics: bool, publish: bool = True) -> str:
    """Run a rebuild with a progress bar on the terminal; returns the summary line."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress as Bar, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    what = "events replayed" if from_topics else "contributions summed"
    with Bar(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn()) as bar:
        task = bar.add_task(what, total=None)

        def progress(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        rebuild = rebuild_from_topics if from_topics else rebuild_from_contributions
        outcome = asyncio.run(rebuild(settings, progress, publish))
    count = outcome.events if from_topics else outcome.contributions
    rate = count / outcome.seconds if outcome.seconds else 0.0
    return f"{count:,} {what} in {outcome.seconds:.1f}s ({rate:,.0f}/s); {outcome.published_rows:,} counter rows scored"
