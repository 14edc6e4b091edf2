"""Exactly-once consumption: apply a batch, store its offsets and write outbox rows in ONE transaction.

Offsets live in the service's own database, so on start and on every rebalance the consumer seeks to
them; Kafka's committed offsets are only advisory (for lag tools). Event ids already applied are
skipped, records below the stored offset are skipped (an overlapping consumer during a rebalance),
and a record that still fails after bounded retries goes to `<topic>.dlq` with the error in headers.

A service may name event types whose application is idempotent by a natural key (scoring's ratings by
rating id, dossiers by code and revision, verdicts by verification time): applying such an event again,
at any later moment, changes nothing, so the runner neither looks their ids up nor stores them — a
relay's re-send is absorbed by the natural key instead of a `processed_events` row per event.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

import sqlalchemy as sa
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from shared.bus.outbox import add_many_to_outbox, add_to_outbox
from shared.bus.tables import BusTables
from shared.db import execute_many, in_values, insert_statement, is_unavailable, upsert
from shared.events import CloudEvent, EventData, typed_event_from_bytes
from shared.logging import get_logger
from shared.metrics import CONSUMER_LAG, DLQ_EVENTS, EVENTS_IN
from shared.topics import dlq_of

log = get_logger(__name__)

# An event id needs remembering only as long as a duplicate can still arrive (a relay re-sending what it
# had sent before a crash: seconds to minutes); a week is far beyond that and keeps the table bounded.
PROCESSED_EVENT_RETENTION = timedelta(days=7)
ID_CHUNK = 5000  # event ids per IN (…) lookup: inside SQLite's and asyncpg's parameter limits
# Larger fetches than aiokafka's defaults (1 MiB per partition): a catching-up consumer gets whole
# batches in one round trip instead of a few hundred records.
MAX_PARTITION_FETCH_BYTES = 2 * 1024 * 1024
FETCH_MAX_BYTES = 16 * 1024 * 1024


class PoisonMessage(Exception):
    """A record that can never be applied (unparseable, unknown type, invalid data): no retry helps."""


def is_transient(exc: BaseException) -> bool:
    """Infrastructure trouble: retry the batch forever rather than dead-letter good events."""
    return isinstance(exc, (OSError, asyncio.TimeoutError)) or is_unavailable(exc)


@dataclass
class Tx:
    """What a handler gets: the open transaction and a way to emit events within it."""

    conn: AsyncConnection
    tables: BusTables
    topic_prefix: str
    emitted: list[str] = field(default_factory=list)
    state: dict[str, Any] = field(default_factory=dict)  # per-batch scratch space for handlers

    async def emit(self, base_topic: str, key: str, event: CloudEvent) -> None:
        await self.emit_many(base_topic, [(key, event)])

    async def emit_many(self, base_topic: str, keyed_events: list[tuple[str, CloudEvent]]) -> None:
        topic = f"{self.topic_prefix}{base_topic}"
        await add_many_to_outbox(self.conn, self.tables, [(topic, key, event) for key, event in keyed_events])
        self.emitted.extend(topic for _ in keyed_events)


Handler = Callable[[CloudEvent, EventData, Tx], Awaitable[None]]
BatchHook = Callable[[Tx], Awaitable[None]]


class _RewindOnAssignment(ConsumerRebalanceListener):
    def __init__(self, runner: ConsumerRunner) -> None:
        self.runner = runner

    async def on_partitions_revoked(self, revoked: Iterable[TopicPartition]) -> None:
        return None

    async def on_partitions_assigned(self, assigned: Iterable[TopicPartition]) -> None:
        # aiokafka positions new partitions at the group's offsets in Kafka — only advisory, and ahead of a database
        # that is new or restored from a backup — and fetches from there. Applied, such a batch would store its
        # offset and everything before it would then look applied. So nothing fetched is applied until the runner
        # has sought to the stored offsets itself (run(): it drops what it fetched meanwhile, and a seek that fails
        # because the database is away stays pending until it succeeds).
        self.runner.rewind_pending = True


class ConsumerRunner:
    def __init__(
        self,
        service: str,
        engine: AsyncEngine,
        tables: BusTables,
        *,
        bootstrap: str,
        topic_prefix: str,
        topics: list[str],
        handlers: dict[str, Handler],
        batch_size: int = 500,
        max_retries: int = 3,
        before_commit: BatchHook | None = None,
        after_commit: Callable[[list[str]], None] | None = None,
        idempotent_types: frozenset[str] = frozenset(),
    ) -> None:
        self.service = service
        self.group_id = service
        self.engine = engine
        self.tables = tables
        self.bootstrap = bootstrap
        self.topic_prefix = topic_prefix
        self.topics = [f"{topic_prefix}{t}" for t in topics]
        self.handlers = handlers
        self.batch_size = batch_size
        self.max_retries = max_retries
        self.before_commit = before_commit
        self.after_commit = after_commit
        # Event types the handlers apply idempotently by natural key: no processed_events row for them.
        self.idempotent_types = idempotent_types
        self.consumer: AIOKafkaConsumer | None = None
        self.kafka_ok = False
        self.lag = 0  # records behind the high watermarks of the assigned partitions, after the last fetch
        self._last_prune = datetime.now(timezone.utc)
        self._stopping = False
        # After a failed batch the fetch position is past records that were never applied: the next fetch must
        # start from the stored offsets again, or the next good batch would store an offset beyond them.
        self.rewind_pending = False

    async def run(self) -> None:
        failures = 0
        while not self._stopping:
            try:
                await self._ensure_consumer()
                assert self.consumer is not None
                if self.rewind_pending:
                    await self.seek_to_stored(list(self.consumer.assignment()))  # raises while the database is away
                    self.rewind_pending = False
                batch = await self.consumer.getmany(timeout_ms=500, max_records=self.batch_size)
                if self.rewind_pending:
                    continue  # partitions were assigned during the fetch: it may come from Kafka's offsets; seek first
                self.kafka_ok = True
                if batch:
                    await self._process_batch(batch)
                await self._update_lag()
                await self._prune_processed_events()
                failures = 0
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.kafka_ok = False
                failures += 1
                delay = min(10.0, 0.25 * 2**failures) * (0.5 + random.random() / 2)
                log.warning("consumer batch failed; will seek back and retry", error=repr(exc), retry_in=round(delay, 2))
                self.rewind_pending = True
                await asyncio.sleep(delay)

    def stop(self) -> None:
        """Ask the loop to finish the batch in hand and stop."""
        self._stopping = True

    async def close(self) -> None:
        if self.consumer is not None:
            consumer, self.consumer = self.consumer, None
            await consumer.stop()

    async def _ensure_consumer(self) -> None:
        if self.consumer is not None:
            return
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap,
            group_id=self.group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_interval_ms=300_000,
            session_timeout_ms=10_000,
            heartbeat_interval_ms=3_000,
            fetch_max_wait_ms=100,
            max_partition_fetch_bytes=MAX_PARTITION_FETCH_BYTES,
            fetch_max_bytes=FETCH_MAX_BYTES,
        )
        try:
            await consumer.start()
        except BaseException:
            await consumer.stop()
            raise
        consumer.subscribe(self.topics, listener=_RewindOnAssignment(self))
        self.consumer = consumer

    async def stored_offsets(self, partitions: list[TopicPartition]) -> dict[TopicPartition, int]:
        offsets = self.tables.consumer_offsets
        async with self.engine.connect() as conn:
            rows = (
                await conn.execute(
                    sa.select(offsets.c.topic, offsets.c.partition, offsets.c.next_offset).where(
                        offsets.c.group_id == self.group_id, offsets.c.topic.in_({tp.topic for tp in partitions})
                    )
                )
            ).all()
        stored = {TopicPartition(r.topic, r.partition): r.next_offset for r in rows}
        return {tp: stored[tp] for tp in partitions if tp in stored}

    async def seek_to_stored(self, partitions: list[TopicPartition]) -> None:
        if self.consumer is None or not partitions:
            return
        stored = await self.stored_offsets(partitions)
        for tp in partitions:
            if tp in stored:
                self.consumer.seek(tp, stored[tp])
            else:
                await self.consumer.seek_to_beginning(tp)
        log.info("partitions assigned", partitions=[f"{tp.topic}[{tp.partition}]" for tp in partitions])

    async def _process_batch(self, batch: dict[TopicPartition, list[ConsumerRecord]]) -> None:
        """Every partition of one fetch in one transaction: a catching-up consumer's fetch spreads over all its
        partitions, and per-partition transactions would cut each batch in as many smaller ones."""
        try:
            emitted = await self._apply_in_one_transaction(batch)
        except Exception as exc:
            if is_transient(exc):
                raise
            log.warning("batch failed; applying one partition, then one record, at a time", error=repr(exc))
            emitted = []
            for tp, records in batch.items():
                try:
                    emitted += await self._apply_in_one_transaction({tp: records})
                except Exception as partition_exc:
                    if is_transient(partition_exc):
                        raise
                    for record in records:
                        emitted += await self._apply_with_retries(tp, record)
        await self._advisory_commit({tp: records[-1].offset + 1 for tp, records in batch.items()})
        if self.after_commit:
            self.after_commit(emitted)

    async def _apply_in_one_transaction(self, batch: dict[TopicPartition, list[ConsumerRecord]]) -> list[str]:
        async with self.engine.begin() as conn:
            fresh: dict[TopicPartition, list[ConsumerRecord]] = {}
            # In one order (PostgreSQL locks the offset rows): two consumers overlapping in a rebalance cannot deadlock.
            for tp in sorted(batch, key=lambda tp: (tp.topic, tp.partition)):
                start = await self._stored_offset_for_update(conn, tp)
                records = [r for r in batch[tp] if start is None or r.offset >= start]
                if records:
                    fresh[tp] = records
            if not fresh:
                return []
            tx = Tx(conn, self.tables, self.topic_prefix)
            # Each record is parsed once, into its typed event; a partition's events keep their order.
            parsed = [(tp.topic, self._parse(record)) for tp, records in fresh.items() for record in records]
            idempotent = self.idempotent_types
            seen = await self._already_processed(conn, [event.id for _, event in parsed if event.type not in idempotent])
            applied: dict[str, int] = {}
            duplicates: dict[str, int] = {}
            remembered: list[str] = []
            for topic, event in parsed:
                if event.id in seen:
                    duplicates[topic] = duplicates.get(topic, 0) + 1  # applied before, or earlier in this batch
                    continue
                seen.add(event.id)
                await self._dispatch(event, tx)
                applied[topic] = applied.get(topic, 0) + 1
                if event.type not in idempotent:
                    remembered.append(event.id)
            if self.before_commit is not None:
                await self.before_commit(tx)
            await self._mark_processed(conn, remembered)
            for tp, records in fresh.items():
                await self._store_offset(conn, tp, records[-1].offset + 1)
        for topic, count in applied.items():
            EVENTS_IN.labels(self.service, topic, "applied").inc(count)
        for topic, count in duplicates.items():
            EVENTS_IN.labels(self.service, topic, "duplicate").inc(count)
        return tx.emitted

    async def _apply_with_retries(self, tp: TopicPartition, record: ConsumerRecord) -> list[str]:
        last_error: BaseException | None = None
        for attempt in range(self.max_retries + 1):
            try:
                return await self._apply_in_one_transaction({tp: [record]})
            except PoisonMessage as exc:
                last_error = exc
                break
            except Exception as exc:
                if is_transient(exc):
                    raise
                last_error = exc
                await asyncio.sleep(min(2.0, 0.05 * 2**attempt))
        assert last_error is not None
        await self._dead_letter(tp, record, last_error)
        return [dlq_of(tp.topic)]

    def _parse(self, record: ConsumerRecord) -> CloudEvent:
        """The record as its typed event, validated from its bytes in one pass; poison if it is not one."""
        try:
            return typed_event_from_bytes(record.value)
        except (ValueError, ValidationError, TypeError):
            pass
        # Rejected: parse again the slow way only to say precisely why (rare: the poison path).
        try:
            event = CloudEvent.from_bytes(record.value)
        except (ValueError, ValidationError, TypeError) as exc:
            raise PoisonMessage(f"not a CloudEvent: {exc}") from exc
        try:
            event.parsed_data()
        except (ValueError, ValidationError) as exc:
            raise PoisonMessage(f"invalid {event.type} data: {exc}") from exc
        raise PoisonMessage(f"{event.type} rejected by its schema")  # not reached: both paths use the same schemas

    async def _dispatch(self, event: CloudEvent, tx: Tx) -> None:
        handler = self.handlers.get(event.type)
        if handler is not None:
            await handler(event, event.data, tx)  # type: ignore[arg-type]  # typed by _parse

    async def _dead_letter(self, tp: TopicPartition, record: ConsumerRecord, error: BaseException) -> None:
        headers = {
            "hailong-error": str(error)[:2000],
            "hailong-error-type": type(error).__name__,
            "hailong-original-topic": tp.topic,
            "hailong-original-partition": str(tp.partition),
            "hailong-original-offset": str(record.offset),
            "hailong-failed-by": self.service,
            "hailong-failed-at": datetime.now(timezone.utc).isoformat(),
        }
        for name, value in record.headers or ():
            if name == "traceparent":
                headers["traceparent"] = value.decode(errors="replace")
        async with self.engine.begin() as conn:
            await add_to_outbox(
                conn,
                self.tables,
                dlq_of(tp.topic),
                record.key.decode(errors="replace") if record.key else None,
                record.value or b"",
                headers=headers,
            )
            await self._store_offset(conn, tp, record.offset + 1)
        DLQ_EVENTS.labels(self.service, tp.topic).inc()
        EVENTS_IN.labels(self.service, tp.topic, "dead_lettered").inc()
        log.error("record dead-lettered", topic=tp.topic, partition=tp.partition, offset=record.offset, error=str(error)[:500])

    async def _stored_offset_for_update(self, conn: AsyncConnection, tp: TopicPartition) -> int | None:
        offsets = self.tables.consumer_offsets
        query = sa.select(offsets.c.next_offset).where(
            offsets.c.group_id == self.group_id, offsets.c.topic == tp.topic, offsets.c.partition == tp.partition
        )
        if conn.dialect.name == "postgresql":
            query = query.with_for_update()
        return await conn.scalar(query)

    async def _store_offset(self, conn: AsyncConnection, tp: TopicPartition, next_offset: int) -> None:
        await conn.execute(
            upsert(
                self.tables.consumer_offsets,
                {
                    "group_id": self.group_id,
                    "topic": tp.topic,
                    "partition": tp.partition,
                    "next_offset": next_offset,
                    "updated_at": datetime.now(timezone.utc),
                },
                ["group_id", "topic", "partition"],
                conn.dialect.name,
            )
        )

    async def _already_processed(self, conn: AsyncConnection, event_ids: list[str]) -> set[str]:
        if not event_ids:
            return set()
        processed = self.tables.processed_events
        found: set[str] = set()
        for start in range(0, len(event_ids), ID_CHUNK):
            part = event_ids[start:start + ID_CHUNK]
            found.update((await conn.scalars(sa.select(processed.c.event_id).where(in_values(processed.c.event_id, part, conn.dialect.name)))).all())
        return found

    async def _mark_processed(self, conn: AsyncConnection, event_ids: list[str]) -> None:
        if not event_ids:
            return
        now = datetime.now(timezone.utc)
        await execute_many(conn, insert_statement(self.tables.processed_events), [{"event_id": event_id, "processed_at": now} for event_id in event_ids])

    async def _advisory_commit(self, offsets: dict[TopicPartition, int]) -> None:
        if self.consumer is None:
            return
        try:
            await self.consumer.commit(offsets)
        except Exception as exc:  # the database holds the truth; a failed advisory commit is harmless
            log.debug("advisory commit failed", error=repr(exc))

    async def _prune_processed_events(self) -> None:
        now = datetime.now(timezone.utc)
        if now - self._last_prune < timedelta(hours=1):
            return
        self._last_prune = now
        processed = self.tables.processed_events
        async with self.engine.begin() as conn:
            await conn.execute(processed.delete().where(processed.c.processed_at < now - PROCESSED_EVENT_RETENTION))

    async def _update_lag(self) -> None:
        if self.consumer is None:
            return
        total = 0
        for tp in self.consumer.assignment():
            highwater = self.consumer.highwater(tp)
            if highwater is None:
                continue
            position = await self.consumer.position(tp)
            CONSUMER_LAG.labels(self.service, tp.topic, str(tp.partition)).set(max(0, highwater - position))
            total += max(0, highwater - position)
        self.lag = total
