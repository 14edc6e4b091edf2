"""CPU per consumed score event of the publisher, in-process (`python -m bench._publisher_consumer [passes] [batch]`).

Not a suite of `make bench`: a probe for work on the publisher's consumer (bench/notes/freshness.md). It drives
the publisher's handlers and before-commit hook through the consumer runner's own batch transaction on a fresh
SQLite file, with the institution map configured as a push target: 51 units (a province and 50 wards), each pass
a new version of every unit's figure for 4 periods × 5 profiles (1,020 score events), in batches as a fetch
would bring them. Reports the process's CPU time (the SQLite thread included) per score event.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from typing import Any, NamedTuple

import sqlalchemy as sa
from aiokafka import TopicPartition

from services.publisher import store
from services.publisher.app import publication_policy
from services.publisher.handlers import build_handlers, build_publish_results
from shared import events
from shared.bus.consumer import ConsumerRunner
from shared.db import prepare_database
from shared.settings import Settings

PROFILES = ("hcmc-2024", "qd766-satisfaction", "satisfied-share", "profile-4", "profile-5")
PERIODS = ("2026-11", "2026-Q4", "2026-H2", "2026")
WARDS = tuple(f"79.W{n:02d}" for n in range(50))


class Record(NamedTuple):  # what the runner reads of an aiokafka ConsumerRecord
    offset: int
    value: bytes
    key: bytes | None = None
    headers: Any = None


def _event(event_type: str, subject: str, data: events.EventData) -> bytes:
    return events.new_event(event_type, "/bench", subject, data).model_dump_json().encode()


async def measure(passes: int, batch: int) -> dict[str, float]:
    folder = tempfile.mkdtemp(prefix="hailong-publisher-probe-")
    settings = Settings(database_url=f"sqlite+aiosqlite:///{folder}/publisher.db", data_dir=folder,
                        map_url="http://127.0.0.1:9", map_rate_per_second=200, map_concurrency=8)
    engine = await prepare_database(settings.database_url_for("publisher"), "publisher")
    runner = ConsumerRunner(
        "publisher", engine, store.bus, bootstrap="unused", topic_prefix="p.", topics=["units.v1", "scores.v1"],
        handlers=build_handlers(), before_commit=build_publish_results(publication_policy(settings)),
        idempotent_types=frozenset({events.SCORE_CHANGED}),  # as services/publisher/app.py declares
    )
    units = [_event(events.UNIT_UPSERTED, "79", events.UnitUpserted(code="79", name="HCMC", level="province"))]
    units += [_event(events.UNIT_UPSERTED, w, events.UnitUpserted(code=w, name=w, level="ward", parent_code="79")) for w in WARDS]
    await runner._apply_in_one_transaction({TopicPartition("p.units.v1", 0): [Record(i, v) for i, v in enumerate(units)]})
    start = datetime(2026, 11, 20, tzinfo=timezone.utc)
    records = [
        _event(events.SCORE_CHANGED, code, events.ScoreChanged(
            unit_code=code, period=period, profile=profile, score=50 + (hash((code, profile, period, n)) % 500) / 10,
            max_score=100.0, band="satisfied", components={"a": 1.0, "b": 2.0}, ratings=10 + n, dossiers=10 + n,
            version=n, updated_at=start + timedelta(seconds=n),
        ))
        for n in range(1, passes + 1) for code in ("79", *WARDS) for profile in PROFILES for period in PERIODS
    ]
    scores = TopicPartition("p.scores.v1", 0)
    cpu, wall = time.process_time(), time.perf_counter()
    for first in range(0, len(records), batch):
        await runner._apply_in_one_transaction({scores: [Record(first + i, v) for i, v in enumerate(records[first:first + batch])]})
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    async with engine.connect() as conn:
        feed = await conn.scalar(sa.select(sa.func.count()).select_from(store.changes))
    await engine.dispose()
    assert feed == len(records), "every version was new, so every one is in the feed"
    return {"events": len(records), "batch": batch, "cpu_us_per_event": round(cpu / len(records) * 1e6, 1),
            "wall_us_per_event": round(wall / len(records) * 1e6, 1)}


if __name__ == "__main__":
    print(asyncio.run(measure(int(sys.argv[1]) if len(sys.argv) > 1 else 40, int(sys.argv[2]) if len(sys.argv) > 2 else 500)))
