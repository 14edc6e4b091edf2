"""Suite `scoring`: one scoring process against raw aiokafka and raw SQL, on the same broker and database.

1. consume: a topic pre-filled with 1,000,000 rating.accepted events (10,000 wards under 34 provinces,
   registered on units.v1; 12 months of 2026)
   applied by one scoring process (uvicorn, SQLite), beside a raw aiokafka consumer reading the same
   topic in the same run; also the time until every changed figure is scored and published;
2. rankings: GET /v1/rankings?level=ward p50/p99 over 10,000 wards (12 months present), beside computing
   the same ranking from the raw ratings with one SQL GROUP BY on the same database;
3. rebuild: recomputing every counter from the 1,000,000 contributions.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import sys
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import orjson
import sqlalchemy as sa
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from sqlalchemy.ext.asyncio import create_async_engine

from bench.common import ROOT, BenchContext, ratio_row
from shared import topics
from shared.topics import topic_specs

PREFIX = "benchscoring."
UNITS = 10_000
MONTHS = 12
FETCH = {"max_partition_fetch_bytes": 8 * 1024 * 1024, "fetch_max_bytes": 64 * 1024 * 1024}  # as the runner
OVERALL = ("very_satisfied", "satisfied", "satisfied", "normal", "dissatisfied")


def rating_value(index: int, units: int) -> tuple[bytes, bytes]:
    """A rating.accepted CloudEvent as bytes (built as dicts: a million pydantic models would take minutes)."""
    unit = f"B.{index % units:05d}"
    completed = datetime(2026, 1 + (index // units) % MONTHS, 1 + index % 27, 3, 0, tzinfo=timezone.utc)
    data = {
        "rating_id": str(uuid.uuid4()), "dossier_code": f"BD-{index:08d}", "unit_code": unit, "officer_ids": [],
        "channel": "kiosk", "submitted_at": (completed + timedelta(minutes=2)).isoformat(),
        "dossier_completed_at": completed.isoformat(), "overall": OVERALL[(index * 7 + index // units) % 5],
        "attitude": "good" if index % 3 else "normal",
        "criteria": {"access": 1 + index % 5, "procedure": 1 + (index // 3) % 5, "officer": 5, "result": 4, "feedback": None},
        "reasons": [],
    }
    event = {"specversion": "1.0", "id": str(uuid.uuid4()), "source": "/bench", "type": "vn.hailong.rating.accepted.v1",
             "subject": unit, "time": completed.isoformat(), "datacontenttype": "application/json", "data": data}
    return unit.encode(), orjson.dumps(event)


def unit_values(units: int, provinces: int = 34) -> list[tuple[bytes, bytes]]:
    """The registry: `provinces` provinces and `units` wards spread over them (the 2025 two-level map)."""
    def event(code: str, level: str, parent: str | None) -> tuple[bytes, bytes]:
        data = {"code": code, "name": f"Đơn vị {code}", "level": level, "parent_code": parent}
        return code.encode(), orjson.dumps({
            "specversion": "1.0", "id": str(uuid.uuid4()), "source": "/bench", "type": "vn.hailong.unit.upserted.v1",
            "subject": code, "time": datetime.now(timezone.utc).isoformat(), "datacontenttype": "application/json", "data": data,
        })

    out = [event(f"P{p:02d}", "province", None) for p in range(provinces)]
    return out + [event(f"B.{u:05d}", "ward", f"P{u % provinces:02d}") for u in range(units)]


async def fill_units(bootstrap: str, topic: str, units: int) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks=1, linger_ms=20)
    await producer.start()
    try:
        await asyncio.gather(*[await producer.send(topic, value=value, key=key) for key, value in unit_values(units)])
    finally:
        await producer.stop()


async def fill(bootstrap: str, topic: str, count: int, units: int) -> float:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks=1, linger_ms=20, max_batch_size=512 * 1024, compression_type=None)
    await producer.start()
    started = time.perf_counter()
    try:
        pending = []
        for index in range(count):
            key, value = rating_value(index, units)
            pending.append(await producer.send(topic, value=value, key=key))
            if len(pending) >= 20_000:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return time.perf_counter() - started


async def raw_consume(bootstrap: str, topic: str, expect: int, max_records: int) -> float:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", group_id=None,
                                enable_auto_commit=False, **FETCH)
    await consumer.start()
    try:
        seen, started = 0, None
        while seen < expect:
            batch = await consumer.getmany(timeout_ms=1000, max_records=max_records)
            if started is None and batch:
                started = time.perf_counter()
            seen += sum(len(records) for records in batch.values())
        assert started is not None
        return time.perf_counter() - started
    finally:
        await consumer.stop()


def _applied(metrics: str) -> int:
    total = 0
    for line in metrics.splitlines():
        if line.startswith("hailong_events_consumed_total{") and 'outcome="applied"' in line and "ratings.v1" in line:
            total += int(float(line.rsplit(" ", 1)[1]))
    return total


def start_scoring(ctx: BenchContext, data_dir: Path, port: int, extra: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    env = {
        **os.environ, "HAILONG_DATA_DIR": str(data_dir), "HAILONG_KAFKA_BOOTSTRAP": ctx.bootstrap,
        "HAILONG_TOPIC_PREFIX": PREFIX, "HAILONG_DEV_MODE": "true", "HAILONG_LOG_JSON": "true",
        "HAILONG_SCORING_PUBLIC_RATE_LIMIT": "1000000/minute", **(extra or {}),
    }
    log = (ctx.tmp / "scoring.log").open("ab")
    return subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "services.scoring.app:app", "--host", "127.0.0.1", "--port", str(port), "--no-access-log"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )


async def wait_for(predicate, timeout: float, interval: float = 0.2):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = await predicate()
        if value:
            return value
        await asyncio.sleep(interval)
    raise TimeoutError("benchmark step did not finish in time")


async def consume_with_service(ctx: BenchContext, data_dir: Path, count: int) -> tuple[float, float, subprocess.Popen[bytes], int]:
    """(seconds to apply every rating, seconds until every figure is published, the process, its port)."""
    from deploy.kafka.runner import free_port

    port = free_port()
    process = start_scoring(ctx, data_dir, port)
    url = f"http://127.0.0.1:{port}"
    async with httpx.AsyncClient(base_url=url, timeout=10) as client:
        async def applied() -> int:
            try:
                return _applied((await client.get("/metrics")).text)
            except httpx.HTTPError:
                return 0

        first = await wait_for(applied, 180, 0.02)
        started = time.perf_counter()
        await wait_for(lambda: _at_least(applied, count), 3600, 0.2)
        applied_seconds = (time.perf_counter() - started) * count / (count - first)
        engine = create_async_engine(f"sqlite+aiosqlite:///{data_dir / 'scoring.db'}")

        async def published() -> bool:
            async with engine.connect() as conn:
                dirty = await conn.scalar(sa.text("SELECT count(*) FROM counters WHERE dirty"))
                unsent = await conn.scalar(sa.text("SELECT count(*) FROM outbox WHERE sent_at IS NULL"))
            return dirty == 0 and unsent == 0

        await wait_for(published, 3600, 0.5)
        published_seconds = (time.perf_counter() - started) * count / (count - first)
        await engine.dispose()
    return applied_seconds, published_seconds, process, port


async def _at_least(applied, count: int) -> bool:  # type: ignore[no-untyped-def]
    return await applied() >= count


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


RAW_RANKING = """
SELECT unit_code, COUNT(*) AS ratings, SUM(satisfied) AS satisfied,
       100.0 * SUM(satisfied) / COUNT(*) AS score,
       RANK() OVER (ORDER BY 100.0 * SUM(satisfied) / COUNT(*) DESC) AS rank
FROM rating_contributions
WHERE counted AND month = :month
GROUP BY unit_code
HAVING COUNT(*) >= 5
ORDER BY score DESC, unit_code
"""


async def rankings(port: int, data_dir: Path, requests: int) -> tuple[list[float], list[float], list[float], list[float], int]:
    """(computed answers, cached answers, the ranking computed in process, raw GROUP BY) timings over the 12 months."""
    computed, cached, raw = [], [], []
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
        for i in range(requests):
            month = f"2026-{1 + i % MONTHS:02d}"
            for headers, timings in (({"Cache-Control": "no-cache"}, computed), ({}, cached)):
                started = time.perf_counter()
                params = {"period": month, "profile": "satisfied-share", "level": "ward"}
                response = await client.get("/v1/rankings", params=params, headers=headers)
                timings.append(time.perf_counter() - started)
                assert response.status_code == 200, response.text[:300]
        items = len(response.json()["items"])
    from services.scoring.domain.profiles import ProfileBook
    from services.scoring.reads import ranking

    in_process = []
    book = ProfileBook.build()
    engine = create_async_engine(f"sqlite+aiosqlite:///{data_dir / 'scoring.db'}")
    async with engine.connect() as conn:
        for i in range(requests):
            month = f"2026-{1 + i % MONTHS:02d}"
            started = time.perf_counter()
            rows = (await conn.execute(sa.text(RAW_RANKING), {"month": month})).all()
            raw.append(time.perf_counter() - started)
            started = time.perf_counter()
            await ranking(conn, book, "satisfied-share", month, "ward", None)
            in_process.append(time.perf_counter() - started)
    await engine.dispose()
    assert abs(len(rows) - items) <= max(1, items // 100), (len(rows), items)
    return computed, cached, in_process, raw, items


async def rebuild(data_dir: Path) -> tuple[float, int]:
    from services.scoring.projection import rebuild_counters
    from shared.db import prepare_database

    engine = await prepare_database(f"sqlite+aiosqlite:///{data_dir / 'scoring.db'}", "scoring")
    async with engine.connect() as conn:
        contributions = int(await conn.scalar(sa.text("SELECT count(*) FROM rating_contributions")) or 0)
    started = time.perf_counter()
    async with engine.begin() as conn:
        await rebuild_counters(conn)
    elapsed = time.perf_counter() - started
    await engine.dispose()
    return elapsed, contributions


async def run(ctx: BenchContext) -> list[dict[str, Any]]:
    from deploy.kafka.runner import ensure_topics

    count = ctx.size(1_000_000, minimum=20_000)
    units = min(UNITS, max(100, count // 100))
    await ensure_topics(ctx.bootstrap, topic_specs(PREFIX, 3))
    topic = f"{PREFIX}{topics.RATINGS}"
    await fill_units(ctx.bootstrap, f"{PREFIX}{topics.UNITS}", units)
    fill_seconds = await fill(ctx.bootstrap, topic, count, units)
    print(f"  pre-filled {topic} with {count:,} ratings in {fill_seconds:.0f}s", flush=True)
    rows = []
    ceiling = await raw_consume(ctx.bootstrap, topic, count, 5000)
    data_dir = ctx.tmp / "var"
    applied, published, process, port = await consume_with_service(ctx, data_dir, count)
    rows.append(ratio_row(
        "one scoring process applies rating.accepted (Kafka → SQLite, exactly once)", "events/s", count / applied,
        "raw aiokafka consume of the same topic", count / ceiling, target="≥ 50% of the ceiling and ≥ 20,000/s", events=count, units=units,
    ))
    rows.append(ratio_row(
        "… and every changed figure scored and published on scores.v1", "events/s", count / published,
        "raw aiokafka consume of the same topic", count / ceiling, events=count,
    ))
    try:
        requests = ctx.size(200, minimum=24)
        computed, cached, in_process, raw, items = await rankings(port, data_dir, requests)
    finally:
        process.terminate()
        process.wait(60)
    raw50, raw99 = percentile(raw, 0.5), percentile(raw, 0.99)
    measured = (
        ("GET /v1/rankings, computed (Cache-Control: no-cache)", computed),
        ("GET /v1/rankings, cached until a figure changes", cached),
        ("the same ranking computed in process from the figures (SQL + ranking, no HTTP, no JSON)", in_process),
    )
    for label, timings in measured:
        p50, p99 = percentile(timings, 0.5), percentile(timings, 0.99)
        print(f"  {label} ({items:,} ranked units): p50 {p50 * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms; "
              f"raw GROUP BY p50 {raw50 * 1000:.1f} ms, p99 {raw99 * 1000:.1f} ms", flush=True)
        rows.append({
            "scenario": f"{label}: {items:,} ranked units of {units:,}, one month of 12", "unit": "ms (p50)",
            "value": round(p50 * 1000, 1), "p99_ms": round(p99 * 1000, 1),
            "ceiling": "one SQL GROUP BY over the raw ratings, same database (SQL only, no HTTP)",
            "ceiling_value": round(raw50 * 1000, 1), "ceiling_p99_ms": round(raw99 * 1000, 1),
            "ratio_to_ceiling": round(raw50 / p50, 3), "target": "faster than the GROUP BY (ratio > 1)", "requests": requests,
            "mean_ms": round(statistics.mean(timings) * 1000, 1),
        })
    seconds, contributions = await rebuild(data_dir)
    rows.append(ratio_row("rebuild every counter from the contributions", "contributions/s", contributions / seconds,
                          "raw aiokafka consume of the same topic", count / ceiling, contributions=contributions, seconds=round(seconds, 1)))
    return rows
