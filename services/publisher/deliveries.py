"""The delivery worker: pushes queued results to the institution map, retrying as the contract says.

State lives in the database, so a publisher killed mid-push resends the same version, with the same
body and Idempotency-Key, when it comes back.
"""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timedelta, timezone

import httpx
import sqlalchemy as sa

from services.publisher import store
from services.publisher.domain.delivery import DEAD, DELIVERED, Backoff, next_delay, outcome_of, retry_after_seconds, signature
from services.publisher.handlers import MAP_TARGET
from shared import events, topics
from shared.aio import wait_event
from shared.bus.outbox import add_to_outbox
from shared.logging import get_logger
from shared.service import Runtime

log = get_logger(__name__)
SOURCE = "/hailong/publisher"
WAKEUP = "deliveries_wakeup"
CONCURRENCY_PER_TARGET = 4
DUE_STATUSES = ("pending", "retry")


def wake_deliveries(runtime: Runtime, _topics: list[str]) -> None:
    wakeup = runtime.extras.get(WAKEUP)
    if wakeup is not None:
        wakeup.set()


async def deliver_to_map(runtime: Runtime) -> None:
    settings = runtime.settings
    if not settings.map_url:
        log.info("HAILONG_MAP_URL is not set; results are not pushed to the institution map")
        return
    wakeup = runtime.extras.setdefault(WAKEUP, asyncio.Event())
    policy = Backoff(max_seconds=settings.map_max_backoff_seconds)
    limit = asyncio.Semaphore(CONCURRENCY_PER_TARGET)
    async with httpx.AsyncClient(timeout=settings.map_timeout_seconds) as client:
        while True:
            try:
                due = await _due_deliveries(runtime)
                if due:
                    await asyncio.gather(*(_attempt(runtime, client, limit, policy, row) for row in due))
                    continue
                wait = await _seconds_until_next(runtime)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # database trouble: keep the loop alive
                log.warning("delivery loop failed; will retry", error=repr(exc))
                wait = 2.0
            await wait_event(wakeup, wait)
            wakeup.clear()


async def _due_deliveries(runtime: Runtime) -> list[sa.Row]:
    table = store.deliveries
    now = datetime.now(timezone.utc)
    async with runtime.engine.connect() as conn:
        return list(
            (
                await conn.execute(
                    sa.select(table)
                    .where(table.c.target == MAP_TARGET, table.c.status.in_(DUE_STATUSES), table.c.next_attempt_at <= now)
                    .order_by(table.c.next_attempt_at, table.c.id)
                    .limit(50)
                )
            ).all()
        )


async def _seconds_until_next(runtime: Runtime) -> float:
    table = store.deliveries
    async with runtime.engine.connect() as conn:
        earliest = await conn.scalar(sa.select(sa.func.min(table.c.next_attempt_at)).where(table.c.status.in_(DUE_STATUSES)))
    if earliest is None:
        return 5.0
    return min(5.0, max(0.01, (earliest - datetime.now(timezone.utc)).total_seconds()))


async def _attempt(runtime: Runtime, client: httpx.AsyncClient, limit: asyncio.Semaphore, policy: Backoff, row: sa.Row) -> None:
    settings = runtime.settings
    url = f"{settings.map_url.rstrip('/')}/units/{row.unit_code}/satisfaction/{row.period}"
    headers = {
        "Content-Type": "application/json",
        "Idempotency-Key": f"{row.unit_code}:{row.period}:{row.profile}:v{row.version}",
        "X-Hailong-Signature": signature(settings.map_signing_secret or "", row.body),
    }
    if settings.map_token:
        headers["Authorization"] = f"Bearer {settings.map_token}"
    status_code: int | None = None
    error: str | None = None
    retry_after: float | None = None
    started = time.perf_counter()
    async with limit:
        try:
            response = await client.put(url, content=row.body, headers=headers)
            status_code = response.status_code
            retry_after = retry_after_seconds(response.headers.get("retry-after"), datetime.now(timezone.utc))
            if status_code >= 300:
                error = f"HTTP {status_code}: {response.text[:300]}"
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"[:500]
    await _record(runtime, row, status_code, error, retry_after, policy, (time.perf_counter() - started) * 1000)


async def _record(
    runtime: Runtime, row: sa.Row, status_code: int | None, error: str | None, retry_after: float | None,
    policy: Backoff, duration_ms: float,
) -> None:
    table = store.deliveries
    outcome = outcome_of(status_code)
    now = datetime.now(timezone.utc)
    if outcome == DELIVERED:
        changes = {"status": "delivered", "delivered_version": row.version, "last_error": None}
    elif outcome == DEAD:
        changes = {"status": "dead", "last_error": error}
    else:
        delay = next_delay(row.attempts + 1, retry_after, policy)
        changes = {"status": "retry", "attempts": row.attempts + 1, "last_error": error, "next_attempt_at": now + timedelta(seconds=delay)}
    async with runtime.transaction() as conn:
        await conn.execute(
            store.delivery_attempts.insert().values(
                delivery_id=row.id, version=row.version, at=now, status_code=status_code, outcome=outcome,
                error=error, duration_ms=duration_ms,
            )
        )
        # Only if no newer version was queued meanwhile; otherwise the row stays pending for it.
        updated = await conn.execute(
            table.update().where(table.c.id == row.id, table.c.version == row.version).values(updated_at=now, **changes)
        )
        if outcome == DELIVERED and updated.rowcount:
            data = events.PublicationDelivered(
                target=row.target, unit_code=row.unit_code, period=row.period, profile=row.profile,
                version=row.version, delivered_at=now,
            )
            await add_to_outbox(
                conn, store.bus, runtime.settings.topic(topics.PUBLICATIONS), row.unit_code,
                events.new_event(events.PUBLICATION_DELIVERED, SOURCE, row.unit_code, data),
            )
    log.info("delivery attempt", target=row.target, unit=row.unit_code, period=row.period, version=row.version, outcome=outcome, status=status_code)
