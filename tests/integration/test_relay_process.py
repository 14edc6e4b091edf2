"""Intake's outbox relay in a child process (shared/bus/relay_process.py), on the real broker and both databases.

What it must keep from the relay in process: every committed row reaches the topic, including across a child
killed mid-stream (it is started again and re-reads what it had not deleted); the parent's /readyz flag and
metrics follow the child's reports; a stop lets the child finish and leaves no process behind.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from collections.abc import AsyncIterator

import pytest
import sqlalchemy as sa
from aiokafka import AIOKafkaConsumer
from sqlalchemy.ext.asyncio import AsyncEngine

from services.intake import store
from shared.bus import relay_process
from shared.bus.outbox import OutboxRelay, add_many_to_outbox
from shared.bus.relay_process import ProcessRelay
from shared.db import prepare_database
from shared.metrics import EVENTS_OUT
from shared.settings import Settings
from shared.topics import RATINGS
from tests.support.infra import Backend
from tests.support.scoring_events import rating

pytestmark = pytest.mark.integration


@pytest.fixture
async def database(backend: Backend) -> AsyncIterator[tuple[AsyncEngine, str]]:
    url = Settings(database_url=backend.database_url, data_dir=backend.data_dir).database_url_for("intake")
    engine = await prepare_database(url, "intake")
    yield engine, url
    await engine.dispose()


async def _write(engine: AsyncEngine, topic: str, count: int, start: int = 0) -> list[str]:
    units = [f"79.P{n % 7}" for n in range(start, start + count)]
    written = [rating(f"D-{n:05d}", unit_code=unit) for n, unit in zip(range(start, start + count), units)]
    async with engine.begin() as conn:
        await add_many_to_outbox(conn, store.bus, [(topic, unit, event) for unit, event in zip(units, written)])
    return [event.id for event in written]


async def _read_ids(bootstrap: str, topic: str, expected: set[str], timeout: float = 60) -> set[str]:
    """Event ids on `topic` until every expected id has been seen (or the timeout)."""
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    seen: set[str] = set()
    try:
        deadline = time.monotonic() + timeout
        while not expected <= seen and time.monotonic() < deadline:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                seen.update(_id_of(record.value) for record in records)
    finally:
        await consumer.stop()
    return seen


def _id_of(value: bytes) -> str:
    return str(json.loads(value)["id"])


async def _until(condition, timeout: float = 30) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


async def _outbox_rows(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return int(await conn.scalar(sa.select(sa.func.count()).select_from(store.bus.outbox)))


async def test_the_child_relays_every_row_survives_being_killed_and_stops_cleanly(
    database: tuple[AsyncEngine, str], kafka_broker, topic_prefix: str  # type: ignore[no-untyped-def]
) -> None:
    engine, url = database
    topic = f"{topic_prefix}{RATINGS}"
    relay = ProcessRelay("intake", engine, store.bus, url, kafka_broker.bootstrap, batch_size=200, poll_seconds=0.2)
    published_before = EVENTS_OUT.labels("intake", topic)._value.get()
    task = asyncio.create_task(relay.run())
    try:
        first = await _write(engine, topic, 500)
        relay.wake()
        await _until(lambda: relay.kafka_ok)
        await _until(lambda: EVENTS_OUT.labels("intake", topic)._value.get() - published_before >= 500)
        assert await _outbox_rows(engine) == 0, "rows Kafka has are deleted from the outbox"

        # Killed hard while more rows wait: another child is started and sends them.
        pid = relay.child_pid
        assert pid is not None and pid != os.getpid()
        second = await _write(engine, topic, 2_000, start=500)
        os.kill(pid, signal.SIGKILL)
        await _until(lambda: relay.restarts == 1 and relay.child_pid not in (None, pid))
        relay.wake()
        seen = await _read_ids(kafka_broker.bootstrap, topic, set(first) | set(second))
        assert set(first) | set(second) <= seen, f"{len(set(first) | set(second) - seen)} events never reached the topic"
        await _until(lambda: relay.kafka_ok)
        assert relay.kafka_ok
    finally:
        last_child = relay.child_pid
        await relay.stop()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert relay.child_pid is None
    assert last_child is not None
    with pytest.raises(ProcessLookupError):
        os.kill(last_child, 0)  # gone, not a zombie nor a stray


async def test_the_child_reports_kafka_unreachable(database: tuple[AsyncEngine, str]) -> None:
    engine, url = database
    relay = ProcessRelay("intake", engine, store.bus, url, "127.0.0.1:1", batch_size=100, poll_seconds=0.2)
    task = asyncio.create_task(relay.run())
    try:
        await _write(engine, "nowhere.v1", 3)
        relay.wake()
        await _until(lambda: relay.child_pid is not None)
        await asyncio.sleep(2 * relay_process.REPORT_SECONDS + 1)
        assert relay.kafka_ok is False
        assert await relay.backlog() == 3, "nothing is lost while Kafka is away"
    finally:
        await relay.stop()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_new_rows_do_not_cut_a_failures_back_off_short(database: tuple[AsyncEngine, str]) -> None:
    engine, _url = database
    attempts = 0

    class CountingRelay(OutboxRelay):
        async def _ensure_producer(self) -> None:
            nonlocal attempts
            attempts += 1
            await super()._ensure_producer()

    relay = CountingRelay("intake", engine, store.bus, "127.0.0.1:1", batch_size=100, poll_seconds=0.05)
    task = asyncio.create_task(relay.run())
    try:
        await _write(engine, "nowhere.v1", 3)
        for _ in range(150):  # 1.5 s of group commits, each waking the relay
            relay.wake()
            await asyncio.sleep(0.01)
        # Back-offs of 0.25-0.5 s, then 0.5-1 s, ...: at most four attempts in 1.5 s (each wake retried before).
        assert 1 <= attempts <= 4, attempts
        assert relay.kafka_ok is False
        await relay.stop()
        await asyncio.wait_for(task, timeout=5)  # a stop does end the back-off
        assert await relay.backlog() == 3
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
