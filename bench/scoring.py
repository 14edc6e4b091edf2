"""Suite `scoring`: one scoring process against raw aiokafka and raw SQL, on the same broker and database.

1. consume (issue 7 scenario 3): a topic pre-filled with 1,000,000 rating.accepted events (10,000 wards
   under 34 provinces, registered on units.v1; 12 months of 2026) applied by one scoring process (uvicorn,
   SQLite), beside a raw aiokafka consumer reading the same topic in the same run; also the time until
   every changed figure is scored and published, and the process's peak RSS (scenario 7);
2. rankings (scenario 5): GET /v1/rankings?level=ward p50/p99 over 10,000 wards, as rendered and computed
   afresh, beside the same ranking computed from the raw ratings with one SQL GROUP BY on the same
   database (with a covering index: its best case) — at 1,000,000 and at 10,000,000 ratings;
3. rebuild (scenario 6): every counter recomputed from 1,000,000 and from 10,000,000 contributions, in
   a process of its own (its peak RSS recorded). The 9,000,000 further contributions are bulk-loaded with
   sqlite3's executemany, in the shape the consumer writes them.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import json
import sqlite3

import httpx
import orjson
import sqlalchemy as sa
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from sqlalchemy.ext.asyncio import create_async_engine

from bench.common import ROOT, BenchContext, peak_rss_mb, ratio_row
from shared import topics
from shared.ids import new_id
from shared.topics import topic_specs

PREFIX = "benchscoring."
UNITS = 10_000
MONTHS = 12
FETCH = {"max_partition_fetch_bytes": 8 * 1024 * 1024, "fetch_max_bytes": 64 * 1024 * 1024}  # as the runner
OVERALL = ("very_satisfied", "satisfied", "satisfied", "normal", "dissatisfied")


def rating_value(index: int, units: int) -> tuple[bytes, bytes]:
    """A rating.accepted CloudEvent as bytes (built as dicts: a million pydantic models would take minutes), with
    rating and event ids as intake issues them (shared.ids: time-ordered, in the order intake accepted them)."""
    unit = f"B.{index % units:05d}"
    completed = datetime(2026, 1 + (index // units) % MONTHS, 1 + index % 27, 3, 0, tzinfo=timezone.utc)
    data = {
        "rating_id": new_id(), "dossier_code": f"BD-{index:08d}", "unit_code": unit, "officer_ids": [],
        "channel": "kiosk", "submitted_at": (completed + timedelta(minutes=2)).isoformat(),
        "dossier_completed_at": completed.isoformat(), "overall": OVERALL[(index * 7 + index // units) % 5],
        "attitude": "good" if index % 3 else "normal",
        "criteria": {"access": 1 + index % 5, "procedure": 1 + (index // 3) % 5, "officer": 5, "result": 4, "feedback": None},
        "reasons": [],
    }
    event = {"specversion": "1.0", "id": new_id(), "source": "/bench", "type": "vn.hailong.rating.accepted.v1",
             "subject": unit, "time": completed.isoformat(), "datacontenttype": "application/json", "data": data}
    return unit.encode(), orjson.dumps(event)


def unit_values(units: int, provinces: int = 34) -> list[tuple[bytes, bytes]]:
    """The registry: `provinces` provinces and `units` wards spread over them (the 2025 two-level map)."""
    def event(code: str, level: str, parent: str | None) -> tuple[bytes, bytes]:
        data = {"code": code, "name": f"Đơn vị {code}", "level": level, "parent_code": parent}
        return code.encode(), orjson.dumps({
            "specversion": "1.0", "id": new_id(), "source": "/bench", "type": "vn.hailong.unit.upserted.v1",
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



async def consume_with_service(ctx: BenchContext, data_dir: Path, count: int) -> tuple[float, float, subprocess.Popen[bytes], int, float]:
    """(seconds to apply every rating, seconds until every figure is published, the process, its port, its peak RSS in MB)."""
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

        async def rendered() -> bool:
            async with engine.connect() as conn:
                return await conn.scalar(sa.text("SELECT count(*) FROM ranking_sources WHERE stale_since IS NOT NULL")) == 0

        await wait_for(rendered, 1800, 0.5)
        rss = peak_rss_mb(process.pid)  # VmHWM: the peak of applying, publishing and rendering every ranking
        await engine.dispose()
    return applied_seconds, published_seconds, process, port, rss


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
# The GROUP BY's best case: every column it reads, in the order it filters and groups by.
RAW_RANKING_INDEX = "CREATE INDEX IF NOT EXISTS bench_raw_ranking ON rating_contributions (month, counted, unit_code, satisfied)"


async def http_rankings(port: int, requests: int, *, computed: bool) -> tuple[list[float], int]:
    """GET /v1/rankings?level=ward over the 12 months: rendered (as a browser asks: gzip accepted) or computed afresh."""
    timings: list[float] = []
    headers = {"Cache-Control": "no-cache"} if computed else {}
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
        for i in range(requests):
            params = {"period": f"2026-{1 + i % MONTHS:02d}", "profile": "satisfied-share", "level": "ward"}
            started = time.perf_counter()
            response = await client.get("/v1/rankings", params=params, headers=headers)
            body = response.content  # decompressed: the client's cost too
            timings.append(time.perf_counter() - started)
            assert response.status_code == 200, response.text[:300]
            assert (response.headers.get("content-encoding") == "gzip") != computed, response.headers
        items = len(orjson.loads(body)["items"])
    return timings, items


async def group_by_rankings(data_dir: Path, requests: int) -> tuple[list[float], int]:
    """The portals' way: one GROUP BY over the month's raw ratings (SQL only: no HTTP, no JSON, no names)."""
    timings: list[float] = []
    engine = create_async_engine(f"sqlite+aiosqlite:///{data_dir / 'scoring.db'}")
    async with engine.connect() as conn:
        for i in range(requests):
            started = time.perf_counter()
            rows = (await conn.execute(sa.text(RAW_RANKING), {"month": f"2026-{1 + i % MONTHS:02d}"})).all()
            timings.append(time.perf_counter() - started)
    await engine.dispose()
    return timings, len(rows)


def _with_raw_ranking_index(data_dir: Path, create: bool) -> float:
    started = time.perf_counter()
    with sqlite3.connect(data_dir / "scoring.db") as db:
        db.execute(RAW_RANKING_INDEX if create else "DROP INDEX IF EXISTS bench_raw_ranking")
    return time.perf_counter() - started


async def rankings_rows(ctx: BenchContext, port: int, data_dir: Path, ratings: int, units: int, raw_requests: int) -> list[dict[str, Any]]:
    requests = ctx.size(200, minimum=24)
    rendered, items = await http_rankings(port, requests, computed=False)
    computed, computed_items = await http_rankings(port, max(12, requests // 4), computed=True)
    unindexed, _ = await group_by_rankings(data_dir, max(12, raw_requests // 2))  # the table as scoring keeps it
    index_seconds = _with_raw_ranking_index(data_dir, True)  # not while the consumer or the rebuild run: it would slow them
    raw, raw_items = await group_by_rankings(data_dir, raw_requests)
    _with_raw_ranking_index(data_dir, False)
    assert items == computed_items and abs(raw_items - items) <= max(1, items // 100), (items, computed_items, raw_items)
    raw50, raw99 = percentile(raw, 0.5), percentile(raw, 0.99)
    rows = []
    for label, timings, target in (
        ("GET /v1/rankings as rendered when its figures changed (gzip)", rendered, "p99 < 20 ms and ≥ 100× faster than the GROUP BY at 10M ratings"),
        ("GET /v1/rankings computed afresh (Cache-Control: no-cache)", computed, ""),
    ):
        p50, p99 = percentile(timings, 0.5), percentile(timings, 0.99)
        print(f"  {label} at {ratings:,} ratings ({items:,} ranked units): p50 {p50 * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms; "
              f"GROUP BY p50 {raw50 * 1000:.1f} ms, p99 {raw99 * 1000:.1f} ms (ratio {raw50 / p50:.1f})", flush=True)
        rows.append({
            "scenario": f"{label}: {items:,} ranked wards of {units:,}, one month of 12, {ratings:,} ratings", "unit": "ms (p50)",
            "value": round(p50 * 1000, 2), "p99_ms": round(p99 * 1000, 2),
            "ceiling": "one SQL GROUP BY over the month's raw ratings, same database, covering index (SQL only, no HTTP)",
            "ceiling_value": round(raw50 * 1000, 1), "ceiling_p99_ms": round(raw99 * 1000, 1),
            "ratio_to_ceiling": round(raw50 / p50, 1), "target": target, "requests": len(timings),
            "group_by_requests": len(raw), "mean_ms": round(statistics.mean(timings) * 1000, 2),
            "covering_index_build_s": round(index_seconds, 1),
            "group_by_without_index_p50_ms": round(percentile(unindexed, 0.5) * 1000, 1),
            "group_by_without_index_p99_ms": round(percentile(unindexed, 0.99) * 1000, 1),
        })
    return rows


def bulk_load_contributions(data_dir: Path, first: int, last: int, units: int) -> float:
    """Rating contributions `first` … `last - 1` as the consumer writes them for rating_value(i), with executemany."""
    from services.scoring.domain.counters import RATING_COUNTERS, RatingFacts, rating_vector

    vectors: dict[tuple[str, str, int, int], tuple[int, ...]] = {}

    def counters_of(index: int) -> tuple[int, ...]:
        key = (OVERALL[(index * 7 + index // units) % 5], "good" if index % 3 else "normal", 1 + index % 5, 1 + (index // 3) % 5)
        if key not in vectors:
            criteria = {"access": key[2], "procedure": key[3], "officer": 5, "result": 4, "feedback": None}
            vector = rating_vector(RatingFacts(key[0], key[1], criteria))
            vectors[key] = tuple(vector.get(name, 0) for name in RATING_COUNTERS)
        return vectors[key]

    columns = ("rating_id", "dossier_code", "unit_code", "month", "officer_ids", "arrived", "flagged", "counted", *RATING_COUNTERS)
    statement = f"INSERT INTO rating_contributions ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
    started = time.perf_counter()
    with sqlite3.connect(data_dir / "scoring.db") as db:
        db.execute("PRAGMA synchronous=OFF")
        chunk = 200_000
        for start in range(first, last, chunk):
            db.executemany(statement, (
                (f"bulk-{i:09d}", f"BD-{i:09d}", f"B.{i % units:05d}", f"2026-{1 + (i // units) % MONTHS:02d}", "[]", 1, 0, 1, *counters_of(i))
                for i in range(start, min(last, start + chunk))
            ))
            db.commit()
    return time.perf_counter() - started


def rebuild_in_own_process(data_dir: Path) -> dict[str, float]:
    """`rebuild_counters` (what `hailong scoring rebuild` runs) in a fresh process: its time and its peak RSS."""
    output = subprocess.run([sys.executable, "-m", "bench.scoring", "rebuild", str(data_dir / "scoring.db")],
                            cwd=ROOT, check=True, capture_output=True, text=True).stdout
    return json.loads(output.strip().splitlines()[-1])


async def _rebuild(db_path: str) -> dict[str, float]:
    from services.scoring.projection import rebuild_counters
    from shared.db import prepare_database

    engine = await prepare_database(f"sqlite+aiosqlite:///{db_path}", "scoring")
    async with engine.connect() as conn:
        contributions = int(await conn.scalar(sa.text("SELECT count(*) FROM rating_contributions")) or 0)
    before = peak_rss_mb()
    started = time.perf_counter()
    async with engine.begin() as conn:
        summed = await rebuild_counters(conn)
    seconds = time.perf_counter() - started
    await engine.dispose()
    return {"seconds": seconds, "contributions": contributions, "summed": summed, "peak_rss_mb": peak_rss_mb(), "rss_before_mb": before}


async def publish_everything(data_dir: Path) -> tuple[float, float]:
    """After a rebuild: every figure scored (as the service's publisher would) and every ranking rendered."""
    from services.scoring.domain.profiles import ProfileBook
    from services.scoring.rankings import RankingRefresher
    from services.scoring.scorer import Scorer
    from shared.db import prepare_database

    engine = await prepare_database(f"sqlite+aiosqlite:///{data_dir / 'scoring.db'}", "scoring")
    book = ProfileBook.build()
    started = time.perf_counter()
    scorer = Scorer(engine, book, PREFIX, batch_size=2000)
    while True:
        result = await scorer.publish_once()
        if not result.unit_rows and not result.officer_rows:
            break
    scored = time.perf_counter() - started
    started = time.perf_counter()
    await RankingRefresher(engine, book).refresh_all()
    rendered = time.perf_counter() - started
    async with engine.begin() as conn:  # the bench has no relay running: these events are not what is measured
        await conn.execute(sa.text("DELETE FROM outbox"))
    await engine.dispose()
    return scored, rendered


async def run(ctx: BenchContext) -> list[dict[str, Any]]:
    from deploy.kafka.runner import ensure_topics

    count = ctx.size(1_000_000, minimum=20_000)
    big = ctx.size(10_000_000, minimum=200_000)
    units = min(UNITS, max(100, count // 100))
    await ensure_topics(ctx.bootstrap, topic_specs(PREFIX, 3))
    topic = f"{PREFIX}{topics.RATINGS}"
    await fill_units(ctx.bootstrap, f"{PREFIX}{topics.UNITS}", units)
    fill_seconds = await fill(ctx.bootstrap, topic, count, units)
    print(f"  pre-filled {topic} with {count:,} ratings in {fill_seconds:.0f}s", flush=True)
    rows = []
    ceiling = await raw_consume(ctx.bootstrap, topic, count, 5000)
    data_dir = ctx.tmp / "var"
    applied, published, process, port, rss = await consume_with_service(ctx, data_dir, count)
    rows.append(ratio_row(
        "one scoring process applies rating.accepted (Kafka → SQLite, exactly once)", "events/s", count / applied,
        "raw aiokafka consume of the same topic", count / ceiling, target="≥ 50% of the ceiling and ≥ 20,000/s", events=count, units=units,
        load_average=os.getloadavg()[0],
    ))
    rows.append(ratio_row(
        "… and every changed figure scored and published on scores.v1", "events/s", count / published,
        "raw aiokafka consume of the same topic", count / ceiling, events=count,
    ))
    print(f"  peak RSS of the scoring process: {rss:.0f} MB", flush=True)
    rows.append({"scenario": f"peak RSS of the scoring process while applying and publishing {count:,} ratings and rendering their rankings", "unit": "MB",
                 "value": round(rss, 1), "ceiling": "", "ceiling_value": None, "ratio_to_ceiling": None, "target": "< 250 MB"})
    try:
        rows += await rankings_rows(ctx, port, data_dir, count, units, ctx.size(200, minimum=24))
    finally:
        process.terminate()
        process.wait(60)
    for contributions in (count, big):
        if contributions > count:
            seconds = bulk_load_contributions(data_dir, count, contributions, units)
            print(f"  bulk-loaded {contributions - count:,} more contributions in {seconds:.0f}s", flush=True)
        outcome = rebuild_in_own_process(data_dir)
        rows.append(ratio_row(
            f"rebuild every counter from {outcome['contributions']:,} contributions", "contributions/s", outcome["contributions"] / outcome["seconds"],
            "raw aiokafka consume of the same topic", count / ceiling, target="≥ 50,000/s", contributions=int(outcome["contributions"]),
            seconds=round(outcome["seconds"], 1), peak_rss_mb=round(outcome["peak_rss_mb"], 1),
        ))
    scored, rendered = await publish_everything(data_dir)
    print(f"  after the rebuild: every figure scored in {scored:.0f}s, every ranking rendered in {rendered:.0f}s", flush=True)
    from deploy.kafka.runner import free_port

    port = free_port()
    process = start_scoring(ctx, data_dir, port)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5) as client:
            async def ready() -> bool:
                try:
                    return (await client.get("/readyz")).status_code == 200
                except httpx.HTTPError:
                    return False

            await wait_for(ready, 120, 0.2)
        rows += await rankings_rows(ctx, port, data_dir, big, units, ctx.size(24, minimum=12))
    finally:
        process.terminate()
        process.wait(60)
    return rows


if __name__ == "__main__":  # python -m bench.scoring rebuild <scoring.db>: one rebuild, its figures as JSON
    if sys.argv[1:2] != ["rebuild"] or len(sys.argv) != 3:
        raise SystemExit("usage: python -m bench.scoring rebuild <path of scoring.db>")
    print(json.dumps(asyncio.run(_rebuild(sys.argv[2]))))
