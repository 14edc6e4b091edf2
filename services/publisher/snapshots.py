"""Official snapshots: a closed quarter's or year's rankings frozen as an immutable, versioned record.

The worker freezes each quarter and year once it has closed in Việt Nam (plus a settle time) and the
publisher has caught up with scores.v1; an operator may publish a further version (e.g. after corrections).
Freezing writes the snapshot, its feed entries and its pushes in one transaction.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from itertools import groupby
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from services.publisher import store
from services.publisher.deliveries import wake_deliveries
from services.publisher.domain.official import due_for_snapshot
from services.publisher.domain.publication import OFFICIAL, PublicResult, public_result, rank_results
from services.publisher.handlers import PublicationPolicy, feed_entry, queue_for_targets
from services.publisher.live import wake_live_feed
from services.publisher.metrics import SNAPSHOTS
from shared import topics
from shared.logging import get_logger
from shared.metrics import CONSUMER_LAG
from shared.service import Runtime

log = get_logger(__name__)
AUTOMATIC = "period closed"


async def freeze(conn: AsyncConnection, policy: PublicationPolicy, period: str, profile: str, reason: str) -> dict[str, Any] | None:
    """Freeze the period's live figures as the next official version; None when there is nothing to freeze."""
    scores, units = store.latest_scores, store.units
    rows = (await conn.execute(
        sa.select(scores.c.payload, units)
        .select_from(scores.outerjoin(units, units.c.code == scores.c.unit_code))
        .where(scores.c.period == period, scores.c.profile == profile)
    )).all()
    if not rows:
        return None
    results = [public_result(row.payload, store.unit_info(row) if row.code else None, policy.min_ratings) for row in rows]
    ranked = _ranked_among_peers(results)
    table = store.snapshots
    version = int(await conn.scalar(
        sa.select(sa.func.coalesce(sa.func.max(table.c.version), 0)).where(table.c.period == period, table.c.profile == profile)
    )) + 1
    frozen_at = datetime.now(timezone.utc)
    snapshot_id = (await conn.execute(
        table.insert().values(period=period, profile=profile, version=version, frozen_at=frozen_at, reason=reason,
                              unit_count=len(ranked)).returning(table.c.id)
    )).scalar_one()
    entries = [feed_entry(result, OFFICIAL, version) for result in ranked]
    await conn.execute(store.snapshot_items.insert(), [
        {"snapshot_id": snapshot_id, "unit_code": r.unit_code, "level": r.level, "rank": r.rank, "payload": entry}
        for r, entry in zip(ranked, entries)
    ])
    await queue_for_targets(conn, policy, ranked, OFFICIAL, [version] * len(ranked), snapshot_version=version)
    await store.append_changes(conn, entries)  # last: it holds the feed's sequence lock until commit
    SNAPSHOTS.labels("automatic" if reason == AUTOMATIC else "operator").inc()
    return {"id": snapshot_id, "period": period, "profile": profile, "version": version,
            "frozen_at": frozen_at.isoformat(), "reason": reason, "unit_count": len(ranked)}


def _ranked_among_peers(results: list[PublicResult]) -> list[PublicResult]:
    """Each unit's rank among units of its own level, as the live pushes carry it."""
    by_level = sorted(results, key=lambda r: r.level or "")
    ranked: list[PublicResult] = []
    for _, peers in groupby(by_level, key=lambda r: r.level or ""):
        ranked += rank_results([replace(r, rank=None) for r in peers])
    return ranked


async def due_snapshots(conn: AsyncConnection, now: datetime, settle: timedelta, catch_up: timedelta) -> list[tuple[str, str]]:
    """(period, profile) pairs whose quarter or year has closed and that have no official snapshot yet."""
    scores, table = store.latest_scores, store.snapshots
    pairs = (await conn.execute(sa.select(scores.c.period, scores.c.profile).distinct())).all()
    frozen = set((await conn.execute(sa.select(table.c.period, table.c.profile).distinct())).all())
    return sorted(
        (row.period, row.profile) for row in pairs
        if (row.period, row.profile) not in frozen and due_for_snapshot(row.period, now, settle, catch_up)
    )


def caught_up(runtime: Runtime) -> bool:
    """Whether this process has read scores.v1 to its end (a lagging consumer would freeze stale figures)."""
    topic = runtime.settings.topic(topics.SCORES)
    lags = [
        sample.value
        for metric in CONSUMER_LAG.collect()
        for sample in metric.samples
        if sample.labels.get("service") == runtime.spec.name and sample.labels.get("topic") == topic
    ]
    return bool(lags) and all(lag == 0 for lag in lags)


async def freeze_due_snapshots(runtime: Runtime, policy: PublicationPolicy, now: datetime | None = None) -> list[dict[str, Any]]:
    settings = runtime.settings
    now = now or datetime.now(timezone.utc)
    async with runtime.engine.connect() as conn:
        due = await due_snapshots(
            conn, now, timedelta(minutes=settings.snapshot_settle_minutes), timedelta(days=settings.snapshot_catch_up_days)
        )
    frozen = []
    for period, profile in due:
        try:
            async with runtime.transaction() as conn:
                snapshot = await freeze(conn, policy, period, profile, AUTOMATIC)
        except IntegrityError:
            continue  # another replica froze it first
        if snapshot:
            frozen.append(snapshot)
            log.info("official snapshot frozen", period=period, profile=profile, version=snapshot["version"],
                     units=snapshot["unit_count"])
    if frozen:
        wake_deliveries(runtime)
        wake_live_feed(runtime)
    return frozen


def build_snapshot_worker(policy: PublicationPolicy):  # type: ignore[no-untyped-def]
    async def freeze_official_snapshots(runtime: Runtime) -> None:
        """Background worker: freeze each quarter and year once it has closed."""
        while True:
            try:
                if caught_up(runtime):
                    await freeze_due_snapshots(runtime, policy)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("could not freeze official snapshots; will retry", error=repr(exc))
            await asyncio.sleep(runtime.settings.snapshot_check_seconds)

    return freeze_official_snapshots
