"""The delivery workers: push queued results to each target (the institution map, the national portal).

Deliveries are rows in the database, not tasks in memory: a publisher killed mid-push finds the same
version — same body, same Idempotency-Key — when it comes back, and replicas share the log by claiming
rows for a lease. Per target: at most `concurrency` requests in flight, at most `rate_per_second` started
per second, and a circuit breaker that stops claiming work while the target is down.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, NamedTuple

import httpx
import sqlalchemy as sa
from aiolimiter import AsyncLimiter

from services.publisher import store
from services.publisher.domain.breaker import CircuitBreaker
from services.publisher.domain.delivery import (
    DEAD, DELIVERED, Backoff, idempotency_key, next_delay, outcome_of, retry_after_seconds, signature, target_path,
)
from services.publisher.domain.publication import profile_filter
from services.publisher.metrics import CIRCUIT, DELIVERIES, DELIVERY_ATTEMPTS, DELIVERY_SECONDS, OLDEST_DUE
from shared import events, topics
from shared.aio import wait_event
from shared.bus.outbox import add_many_to_outbox
from shared.logging import get_logger
from shared.service import Runtime
from shared.settings import Settings

log = get_logger(__name__)
SOURCE = "/hailong/publisher"
WAKEUPS = "delivery_wakeups"
MAP, PORTAL = "map", "portal"
IDLE_SECONDS = 5.0
RECORD_EVERY_SECONDS = 0.2
GAUGE_EVERY_SECONDS = 5.0


@dataclass(frozen=True)
class DeliveryTarget:
    name: str
    base_url: str
    token: str | None
    signing_secret: str
    timeout_seconds: float
    concurrency: int
    rate_per_second: float
    profiles: frozenset[str]
    max_backoff_seconds: float

    def url(self, unit_code: str, period: str) -> str:
        return self.base_url.rstrip("/") + target_path(unit_code, period)


def delivery_targets(settings: Settings) -> list[DeliveryTarget]:
    """The targets configured: the map when HAILONG_MAP_URL is set, the portal when HAILONG_PORTAL_URL is."""
    targets = []
    if settings.map_url:
        targets.append(DeliveryTarget(
            MAP, settings.map_url, settings.map_token, settings.map_signing_secret or "", settings.map_timeout_seconds,
            settings.map_concurrency, settings.map_rate_per_second, profile_filter(settings.map_profiles),
            settings.map_max_backoff_seconds,
        ))
    if settings.portal_url:
        targets.append(DeliveryTarget(
            PORTAL, settings.portal_url, settings.portal_token, settings.portal_signing_secret or "",
            settings.portal_timeout_seconds, settings.portal_concurrency, settings.portal_rate_per_second,
            profile_filter(settings.portal_profiles), settings.map_max_backoff_seconds,
        ))
    return targets


def wake_deliveries(runtime: Runtime, _topics: list[str] | None = None) -> None:
    for wakeup in runtime.extras.get(WAKEUPS, {}).values():
        wakeup.set()


class Attempt(NamedTuple):
    """One push's outcome, recorded with the rest of its round."""

    row: Any
    outcome: str
    status_code: int | None
    error: str | None
    retry_after: float | None
    seconds: float


async def deliver_results(runtime: Runtime) -> None:
    """Background worker: one delivery loop per configured target."""
    targets = delivery_targets(runtime.settings)
    if not targets:
        log.info("no push target configured (HAILONG_MAP_URL, HAILONG_PORTAL_URL); results are served, not pushed")
        return
    workers = [TargetWorker(runtime, target) for target in targets]
    await asyncio.gather(*(worker.run() for worker in workers))


class TargetWorker:
    def __init__(self, runtime: Runtime, target: DeliveryTarget) -> None:
        settings = runtime.settings
        self.runtime = runtime
        self.target = target
        self.owner = f"{socket.gethostname()[:40]}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.breaker = CircuitBreaker(settings.delivery_breaker_failures, settings.delivery_breaker_cooldown_seconds)
        self.backoff = Backoff(max_seconds=target.max_backoff_seconds)
        self.in_flight = asyncio.Semaphore(target.concurrency)
        self.rate = AsyncLimiter(target.rate_per_second, 1.0)
        self.lease = timedelta(seconds=target.timeout_seconds + 30)
        # Rows are claimed ahead of the pushes, about half a second's worth at the target's rate (at least two per
        # request in flight), and topped up whenever half of that has gone out: a push queued now waits behind at
        # most that many, not behind a whole round of a second's worth and its recording. Outcomes are recorded
        # together every RECORD_EVERY_SECONDS in one transaction (one per push, on SQLite's one writer beside the
        # consumer's batches, held the map to a few dozen pushes a second).
        self.window = max(target.concurrency * 2, min(int(target.rate_per_second / 2), 500))
        self.refill_at = max(1, self.window // 2)
        self.in_hand = 0  # claimed and not yet attempted
        self.finished: list[Attempt] = []  # attempted, outcome not yet recorded
        self.to_record = asyncio.Event()
        self.wakeup = asyncio.Event()
        runtime.extras.setdefault(WAKEUPS, {})[target.name] = self.wakeup
        self._gauges_at = 0.0

    async def run(self) -> None:
        CIRCUIT.labels(self.target.name).state(self.breaker.state)
        pushes: set[asyncio.Task[None]] = set()
        async with httpx.AsyncClient(timeout=self.target.timeout_seconds, headers={"User-Agent": "hailong-publisher/1"}) as client:
            recorder = asyncio.create_task(self._record_continuously())
            try:
                while True:
                    try:
                        pause = await self._top_up(client, pushes)
                    except asyncio.CancelledError:
                        raise
                    except Exception as exc:  # database trouble: keep the loop alive, the rows wait in the database
                        log.warning("delivery loop failed; will retry", target=self.target.name, error=repr(exc))
                        pause = 2.0
                    if pause > 0:
                        await wait_event(self.wakeup, pause)
                    self.wakeup.clear()
            finally:
                recorder.cancel()
                for task in pushes:
                    task.cancel()
                await asyncio.gather(recorder, *pushes, return_exceptions=True)

    async def _top_up(self, client: httpx.AsyncClient, pushes: set[asyncio.Task[None]]) -> float:
        """Claim due rows up to the window and start their pushes; returns how long to wait before looking again
        (a push going out, a newly queued one and the breaker's answer wake the loop sooner)."""
        await self._refresh_gauges()
        pause = self.breaker.seconds_until_probe(time.monotonic())
        if pause > 0:
            return pause
        room = self.breaker.batch_size(self.window) - self.in_hand
        if room <= 0 or (self.in_hand and room < self.refill_at):
            return IDLE_SECONDS  # the pushes in hand wake the loop as they go out
        rows = await self._claim(room)
        for row in rows:
            self.in_hand += 1
            task = asyncio.create_task(self._push(client, row))
            pushes.add(task)
            task.add_done_callback(pushes.discard)
        if len(rows) == room:
            return 0.0  # maybe more due: look again once there is room
        return await self._seconds_until_next_due()

    async def _push(self, client: httpx.AsyncClient, row: Any) -> None:
        try:
            attempt = await self._attempt(client, row)
        finally:
            self.in_hand -= 1
            if self.in_hand == 0 or self.window - self.in_hand == self.refill_at:
                self.wakeup.set()  # room for another claim
        if attempt is not None:
            self.finished.append(attempt)
            self.to_record.set()

    async def _record_continuously(self) -> None:
        """Record finished attempts together: the first outcome waits RECORD_EVERY_SECONDS for others."""
        while True:
            await self.to_record.wait()
            await asyncio.sleep(RECORD_EVERY_SECONDS)
            self.to_record.clear()
            attempted, self.finished = self.finished, []
            try:
                await self._record(attempted)
            except asyncio.CancelledError:
                self.finished = attempted + self.finished
                raise
            except Exception as exc:  # database trouble: the rows stay claimed; record them when it is back
                log.warning("could not record delivery attempts; will retry", target=self.target.name, error=repr(exc))
                self.finished = attempted + self.finished
                self.to_record.set()
                await asyncio.sleep(1.0)

    async def _claim(self, limit: int) -> list[Any]:
        async with self.runtime.engine.begin() as conn:
            return await store.claim_due(conn, self.target.name, self.owner, limit, self.lease, datetime.now(timezone.utc))

    async def _seconds_until_next_due(self) -> float:
        async with self.runtime.engine.connect() as conn:
            earliest = await store.next_due_at(conn, self.target.name)
        if earliest is None:
            return IDLE_SECONDS
        return min(IDLE_SECONDS, max(0.01, (earliest - datetime.now(timezone.utc)).total_seconds()))

    async def _attempt(self, client: httpx.AsyncClient, row: Any) -> Attempt | None:
        """Push one row; its outcome is recorded with the round's (None: the breaker held it back)."""
        async with self.in_flight, self.rate:
            if not self.breaker.acquire(time.monotonic()):
                async with self.runtime.engine.begin() as conn:
                    await store.release_claim(conn, row.id, self.owner)
                return None
            status_code, error, retry_after, seconds = await self._put(client, row)
        outcome = outcome_of(status_code)
        if outcome == DELIVERED or outcome == DEAD:
            self.breaker.record_success()  # the target answered; a 4xx is about the request, not its health
        else:
            self.breaker.record_failure(time.monotonic())
        CIRCUIT.labels(self.target.name).state(self.breaker.state)
        DELIVERY_ATTEMPTS.labels(self.target.name, outcome).inc()
        DELIVERY_SECONDS.labels(self.target.name).observe(seconds)
        if outcome != DELIVERED:
            self.wakeup.set()  # the breaker may have opened or closed: re-plan at once
        return Attempt(row, outcome, status_code, error, retry_after, seconds)

    async def _put(self, client: httpx.AsyncClient, row: Any) -> tuple[int | None, str | None, float | None, float]:
        headers = {
            "Content-Type": "application/json",
            "Idempotency-Key": idempotency_key(row.unit_code, row.period, row.profile, row.edition, row.version),
            "X-Hailong-Signature": signature(self.target.signing_secret, row.body),
        }
        if self.target.token:
            headers["Authorization"] = f"Bearer {self.target.token}"
        started = time.perf_counter()
        try:
            response = await client.put(self.target.url(row.unit_code, row.period), content=row.body, headers=headers)
        except httpx.HTTPError as exc:  # timeouts and refused connections: retried
            return None, f"{type(exc).__name__}: {exc}"[:500], None, time.perf_counter() - started
        seconds = time.perf_counter() - started
        retry_after = retry_after_seconds(response.headers.get("retry-after"), datetime.now(timezone.utc))
        error = None if response.is_success else f"HTTP {response.status_code}: {response.text[:300]}"
        return response.status_code, error, retry_after, seconds

    async def _record(self, attempted: list[Attempt]) -> None:
        """Every outcome of the attempts given in one transaction: the attempt log and the emitted
        `publication.delivered` events in one statement each."""
        if not attempted:
            return
        outcomes = [self._outcome(*attempt) for attempt in attempted]
        async with self.runtime.transaction() as conn:
            applied = await store.record_attempts(conn, self.owner, [(row, changes, log_row) for row, changes, log_row, _ in outcomes])
            delivered = [event for (_, _, _, event), done in zip(outcomes, applied) if event is not None and done]
            await add_many_to_outbox(conn, store.bus, [
                (self.runtime.settings.topic(topics.PUBLICATIONS), event.subject, event) for event in delivered
            ])
        for row, outcome, status_code, *_ in attempted:
            log.info(
                "delivery attempt", target=row.target, unit=row.unit_code, period=row.period, profile=row.profile,
                edition=row.edition, version=row.version, outcome=outcome, status=status_code,
            )

    def _outcome(
        self, row: Any, outcome: str, status_code: int | None, error: str | None, retry_after: float | None,
        seconds: float,
    ) -> tuple[Any, dict[str, Any], dict[str, Any], events.CloudEvent | None]:
        """(row, its changes, its attempt log row, the event to emit if the outcome applies)."""
        now = datetime.now(timezone.utc)
        attempts = row.attempts + 1
        event = None
        if outcome == DELIVERED:
            changes = {"status": store.DELIVERED, "attempts": attempts, "delivered_version": row.version,
                       "delivered_at": now, "last_error": None}
            data = events.PublicationDelivered(
                target=row.target, unit_code=row.unit_code, period=row.period, profile=row.profile,
                version=row.version, delivered_at=now, edition=row.edition,
            )
            event = events.new_event(events.PUBLICATION_DELIVERED, SOURCE, row.unit_code, data)
        elif outcome == DEAD:
            changes = {"status": store.DEAD, "attempts": attempts, "last_error": error}
        else:
            delay = next_delay(attempts, retry_after, self.backoff)
            changes = {"status": store.RETRY, "attempts": attempts, "last_error": error,
                       "next_attempt_at": now + timedelta(seconds=delay)}
        attempt = {"at": now, "status_code": status_code, "outcome": outcome, "error": error, "duration_ms": seconds * 1000}
        return row, changes, attempt, event

    async def _refresh_gauges(self) -> None:
        if time.monotonic() - self._gauges_at < GAUGE_EVERY_SECONDS:
            return
        self._gauges_at = time.monotonic()
        table = store.deliveries
        async with self.runtime.engine.connect() as conn:
            counts = dict((await conn.execute(
                sa.select(table.c.status, sa.func.count()).where(table.c.target == self.target.name).group_by(table.c.status)
            )).all())
            oldest = await conn.scalar(
                sa.select(sa.func.min(table.c.updated_at)).where(
                    table.c.target == self.target.name, table.c.status.in_(store.DUE_STATUSES)
                )
            )
        for status in store.DELIVERY_STATUSES:
            DELIVERIES.labels(self.target.name, status).set(counts.get(status, 0))
        age = (datetime.now(timezone.utc) - oldest).total_seconds() if oldest else 0.0
        OLDEST_DUE.labels(self.target.name).set(max(0.0, age))
