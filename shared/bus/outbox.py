"""Transactional outbox: events are rows written with the state change, and a relay moves them to Kafka.

Kafka being down only grows the outbox; a rating accepted by the database is never lost.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections import Counter
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

import sqlalchemy as sa
from aiokafka import AIOKafkaProducer
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from shared.aio import wait_event
from shared.bus.tables import BusTables
from shared.db import execute_many, insert_statement
from shared.events import CloudEvent, new_traceparent
from shared.logging import get_logger
from shared.metrics import EVENTS_OUT, OUTBOX_BACKLOG

log = get_logger(__name__)

SENT_ROW_RETENTION = timedelta(hours=1)  # rows an earlier version marked sent (it kept them this long)

# An outbox row may carry several records of one topic (a bundle): its event_id is "bundle:<count>:<first event
# id>", its value the records' values one after another, and its headers {BUNDLE_HEADER: {"records": [[key,
# value length, index into "headers"], ...], "headers": [the records' distinct headers]}}. The relay publishes
# each record on its own, exactly as if it had had a row of its own: the topic sees the same records, keys,
# headers and partitions, in the same order. A write of a thousand ratings stores four rows instead of a
# thousand (each row cost ~4 µs to insert and ~3 µs to read back and mark sent on SQLite).
BUNDLE_PREFIX = "bundle:"
BUNDLE_HEADER = "hailong-outbox-bundle"
BUNDLE_MAX_RECORDS = 256  # ~180 KB of rating events a row


def bundled_rows(
    topic: str, records: Sequence[tuple[str | None, str, bytes, dict[str, str]]], created_at: datetime
) -> list[dict[str, Any]]:
    """Outbox rows for (key, event id, value, headers) records of `topic`, in order: BUNDLE_MAX_RECORDS to a row,
    a record alone in an ordinary row. Records of a write usually share their headers dict (one trace)."""
    rows: list[dict[str, Any]] = []
    for start in range(0, len(records), BUNDLE_MAX_RECORDS):
        chunk = records[start:start + BUNDLE_MAX_RECORDS]
        if len(chunk) == 1:
            key, event_id, value, headers = chunk[0]
            rows.append({"event_id": event_id, "topic": topic, "key": key, "value": value, "headers": headers, "created_at": created_at})
            continue
        index_of: dict[int, int] = {}  # id of a headers dict → its index (the dicts live as long as `records`)
        distinct: list[dict[str, str]] = []
        entries: list[list[Any]] = []
        for key, _event_id, value, headers in chunk:
            index = index_of.get(id(headers))
            if index is None:
                index = index_of[id(headers)] = len(distinct)
                distinct.append(headers)
            entries.append([key, len(value), index])
        rows.append({
            "event_id": f"{BUNDLE_PREFIX}{len(chunk)}:{chunk[0][1]}", "topic": topic, "key": None,
            "value": b"".join(record[2] for record in chunk),
            "headers": {BUNDLE_HEADER: {"records": entries, "headers": distinct}}, "created_at": created_at,
        })
    return rows


def _records_in(event_id: str) -> int:
    return int(event_id.split(":", 2)[1]) if event_id.startswith(BUNDLE_PREFIX) else 1


async def add_to_outbox(
    conn: AsyncConnection,
    tables: BusTables,
    topic: str,
    key: str | None,
    event: CloudEvent | bytes,
    *,
    event_id: str | None = None,
    headers: dict[str, str] | None = None,
) -> None:
    """Write one outgoing record inside the caller's transaction."""
    if isinstance(event, CloudEvent):
        value, event_id = event.to_bytes(), event.id
    else:
        value = event
    all_headers = {"traceparent": new_traceparent(), **(headers or {})}
    await conn.execute(
        tables.outbox.insert().values(
            event_id=event_id or "",
            topic=topic,
            key=key,
            value=value,
            headers=all_headers,
            created_at=datetime.now(timezone.utc),
        )
    )


async def add_many_to_outbox(
    conn: AsyncConnection, tables: BusTables, records: list[tuple[str, str | None, CloudEvent]]
) -> None:
    """Write many (topic, key, event) records in one statement, inside the caller's transaction."""
    if not records:
        return
    now = datetime.now(timezone.utc)
    await execute_many(
        conn,
        insert_statement(tables.outbox),
        [
            {"event_id": event.id, "topic": topic, "key": key, "value": event.to_bytes(),
             "headers": {"traceparent": new_traceparent()}, "created_at": now}
            for topic, key, event in records
        ],
    )


async def add_serialised_to_outbox(
    conn: AsyncConnection, tables: BusTables, records: list[tuple[str, str | None, str, bytes]]
) -> None:
    """Write many (topic, key, event id, CloudEvent bytes) records already serialised by the caller."""
    if not records:
        return
    now = datetime.now(timezone.utc)
    await execute_many(
        conn,
        insert_statement(tables.outbox),
        [
            {"event_id": event_id, "topic": topic, "key": key, "value": value,
             "headers": {"traceparent": new_traceparent()}, "created_at": now}
            for topic, key, event_id, value in records
        ],
    )


def create_producer(bootstrap: str) -> AIOKafkaProducer:
    # Idempotent with acks=all: a retried send neither duplicates nor reorders within a partition.
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        enable_idempotence=True,
        acks="all",
        linger_ms=5,
        request_timeout_ms=15000,
        max_batch_size=256 * 1024,
    )


class OutboxRelay:
    """Publishes unsent outbox rows in id order and marks them sent; wakes early when told new rows exist."""

    def __init__(
        self,
        service: str,
        engine: AsyncEngine,
        tables: BusTables,
        bootstrap: str,
        *,
        batch_size: int = 500,
        poll_seconds: float = 0.5,
    ) -> None:
        self.service = service
        self.engine = engine
        self.tables = tables
        self.bootstrap = bootstrap
        self.batch_size = batch_size
        self.poll_seconds = poll_seconds
        self.producer: AIOKafkaProducer | None = None
        self.kafka_ok = False
        self._wakeup = asyncio.Event()
        self._stopping = False
        self._last_prune = datetime.now(timezone.utc)
        self.published: Counter[str] = Counter()  # records published per topic since start (relay_process reports it)
        self.last_backlog = 0
        # Built once (compiled and cached once by SQLAlchemy); a fresh IN list per pass built an object per id.
        outbox = tables.outbox
        self._unsent_rows = (
            # The headers as their JSON text: the rows of a write share one text, parsed once (SQLAlchemy's JSON
            # type parsed every row's).
            sa.select(outbox.c.id, outbox.c.topic, outbox.c.key, outbox.c.value, sa.cast(outbox.c.headers, sa.Text), outbox.c.event_id)
            .where(outbox.c.id.in_(sa.bindparam("ids", expanding=True)))
            .order_by(outbox.c.id)
        )
        # Sent rows are deleted, not marked sent: marking changed each row's size, so SQLite wrote the whole row again
        # — a bundle's ~180 KB value, four per batch of a thousand ratings — to the WAL and once more at the
        # checkpoint; a delete only frees its pages. The topic holds what was published.
        self._delete_sent = tables.outbox.delete().where(tables.outbox.c.id.in_(sa.bindparam("ids", expanding=True)))

    def wake(self) -> None:
        self._wakeup.set()

    async def run(self) -> None:
        failures = 0
        while not self._stopping:
            try:
                await self._ensure_producer()
                sent = await self.relay_once()
                self.kafka_ok = True
                failures = 0
                if sent >= self.batch_size:
                    continue  # more is waiting: no pause
                await self._prune_sent_rows()
                await self._refresh_backlog_gauge()
                await self._sleep(self.poll_seconds)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # Kafka or database unavailable: back off, keep the rows.
                self.kafka_ok = False
                failures += 1
                await self._drop_producer()
                delay = min(10.0, 0.25 * 2**failures) * (0.5 + random.random() / 2)
                log.warning("outbox relay failed; will retry", error=repr(exc), retry_in=round(delay, 2))
                await self._back_off(delay)

    def request_stop(self) -> None:
        """End `run` after the round in hand (its records published and deleted), without interrupting it."""
        self._stopping = True
        self.wake()

    async def stop(self) -> None:
        self.request_stop()
        await self._drop_producer()

    async def _drop_producer(self) -> None:
        # A fresh producer after a failure: its idempotence state starts clean once the broker is back.
        producer, self.producer = self.producer, None
        if producer is not None:
            try:
                await asyncio.wait_for(producer.stop(), timeout=5)
            except Exception as exc:
                log.debug("producer stop failed", error=repr(exc))

    async def relay_once(self) -> int:
        """Publish the oldest unsent rows, about `batch_size` records' worth; the number of records published."""
        outbox = self.tables.outbox
        async with self.engine.begin() as conn:
            query = sa.select(outbox.c.id, outbox.c.event_id).where(outbox.c.sent_at.is_(None)).order_by(outbox.c.id).limit(self.batch_size)
            if conn.dialect.name == "postgresql":
                # Several replicas may relay the same outbox; each row goes to one of them.
                query = query.with_for_update(skip_locked=True)
            pending = (await conn.execute(query)).all()
            if not pending:
                return 0
            # Rows up to batch_size records (at least one row): a backlog of bundles is not read whole.
            taken: list[int] = []
            count = 0
            for row_id, event_id in pending:
                if count >= self.batch_size:
                    break
                taken.append(row_id)
                count += _records_in(event_id)
            rows = (await conn.execute(self._unsent_rows, {"ids": taken})).all()
            futures, published = await self._publish(rows)
            await asyncio.wait_for(asyncio.gather(*futures), timeout=30)
            await conn.execute(self._delete_sent, {"ids": taken})
        for topic, records in published.items():
            EVENTS_OUT.labels(self.service, topic).inc(records)
        self.published.update(published)
        return sum(published.values())

    async def _publish(self, rows: list[Any]) -> tuple[list[asyncio.Future[Any]], Counter[str]]:
        """Hand the rows' records to the producer as record batches, one per topic and partition, in id order
        within each; the futures of the batches and the records per topic. The records are what `producer.send`
        made of each (same key, value, headers and partition, by the producer's own partitioner), without its
        per-record future and bookkeeping, which were most of the relay's ~20 µs of CPU per event."""
        producer = self.producer
        assert producer is not None
        headers_of: dict[str, list[tuple[str, bytes]]] = {}

        def kafka_headers(headers: dict[str, Any] | None) -> list[tuple[str, bytes]]:
            return [(k, str(v).encode()) for k, v in (headers or {}).items()]

        records: list[tuple[str, str | None, bytes, list[tuple[str, bytes]]]] = []
        for _id, topic, key, value, headers_text, event_id in rows:
            if not event_id.startswith(BUNDLE_PREFIX):
                if not isinstance(headers_text, str):  # a driver that parses JSON even when cast to text
                    headers = kafka_headers(headers_text)
                elif (headers := headers_of.get(headers_text)) is None:
                    headers = headers_of[headers_text] = kafka_headers(json.loads(headers_text))
                records.append((topic, key, value, headers))
                continue
            bundle = (json.loads(headers_text) if isinstance(headers_text, str) else headers_text)[BUNDLE_HEADER]
            distinct = [kafka_headers(h) for h in bundle["headers"]]
            offset = 0
            for record_key, size, index in bundle["records"]:
                records.append((topic, record_key, value[offset:offset + size], distinct[index]))
                offset += size
            if offset != len(value):
                raise ValueError(f"outbox row {_id}: its bundle's lengths do not add up to its value")

        partitions: dict[tuple[str, bytes], int] = {}
        open_batches: dict[tuple[str, int], Any] = {}
        futures: list[asyncio.Future[Any]] = []
        published: Counter[str] = Counter()
        for topic, key, value, headers in records:
            published[topic] += 1
            key_bytes = key.encode() if key else None
            if key_bytes is None:
                await producer.partitions_for(topic)
                partition = producer._partition(topic, None, None, value, None, value)  # a random partition, as send()
            else:
                partition = partitions.get((topic, key_bytes))
                if partition is None:
                    await producer.partitions_for(topic)  # the topic's metadata, as send() waits for it
                    partition = partitions[(topic, key_bytes)] = producer._partition(topic, None, key, value, key_bytes, value)
            batch = open_batches.get((topic, partition))
            if batch is None:
                batch = open_batches[(topic, partition)] = producer.create_batch()
            if batch.append(timestamp=None, key=key_bytes, value=value, headers=headers) is None:  # full: send it
                futures.append(await producer.send_batch(batch, topic, partition=partition))
                batch = open_batches[(topic, partition)] = producer.create_batch()
                if batch.append(timestamp=None, key=key_bytes, value=value, headers=headers) is None:
                    raise ValueError(f"a record of topic {topic} does not fit a record batch")
        for (topic, partition), batch in open_batches.items():
            futures.append(await producer.send_batch(batch, topic, partition=partition))
        return futures, published

    async def _ensure_producer(self) -> None:
        if self.producer is not None:
            return
        producer = create_producer(self.bootstrap)
        try:
            await producer.start()
        except BaseException:
            await producer.stop()
            raise
        self.producer = producer

    async def _sleep(self, seconds: float) -> None:
        await wait_event(self._wakeup, seconds)
        self._wakeup.clear()

    async def _back_off(self, seconds: float) -> None:
        """A failure's pause in full: new rows do not cut it short (with Kafka away and kiosks posting, every group
        commit's wake retried the broker, up to 20 times a second); only a stop does."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while not self._stopping and (remaining := deadline - loop.time()) > 0:
            await self._sleep(remaining)

    async def _prune_sent_rows(self) -> None:
        """Rows an earlier version marked sent instead of deleting them."""
        now = datetime.now(timezone.utc)
        if now - self._last_prune < timedelta(minutes=1):
            return
        self._last_prune = now
        outbox = self.tables.outbox
        async with self.engine.begin() as conn:
            await conn.execute(outbox.delete().where(outbox.c.sent_at < now - SENT_ROW_RETENTION))

    async def _refresh_backlog_gauge(self) -> None:
        self.last_backlog = await self.backlog()
        OUTBOX_BACKLOG.labels(self.service).set(self.last_backlog)

    async def backlog(self) -> int:
        return await count_unsent(self.engine, self.tables)


async def count_unsent(engine: AsyncEngine, tables: BusTables) -> int:
    """Outbox rows not yet published (the backlog)."""
    outbox = tables.outbox
    async with engine.connect() as conn:
        return int(await conn.scalar(sa.select(sa.func.count()).select_from(outbox).where(outbox.c.sent_at.is_(None))) or 0)
