"""Scheduled duties: breaches, reminders, the period's phúc tra sample, the annual Art. 6 review, and the
province's reporting obligations — run by a background worker on a clock that tests can set.

Every duty keeps its state in the database and is idempotent: a breach is marked once (optimistic
version check), a reminder once per deadline, a sample once per month (a `duty_runs` row claimed in
the same transaction), so restarts and several replicas never do a duty twice.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.workflow import notifications, store
from services.workflow.domain import lifecycle, obligations, sampling
from services.workflow.handlers import SAMPLE_DUTY, create_verification_task, review_repeated_dissatisfaction, sample_seed
from services.workflow.tickets import Context, TicketChanged, ensure_obligation, mark_breached, utcnow
from shared.calendar import default_calendar
from shared.logging import get_logger
from shared.periods import local_time
from shared.service import Runtime
from shared.settings import Settings

log = get_logger(__name__)
CLOCK = "clock"
REMINDER_HORIZON = timedelta(days=21)  # 2 working days before due is never further back than Tết's week off
MONTHS_LOOKED_BACK = 3


@dataclass
class DutyReport:
    breached: list[str] = field(default_factory=list)
    reminded: list[str] = field(default_factory=list)
    sampled: dict[str, int] = field(default_factory=dict)  # period -> tasks created
    reviewed_years: list[int] = field(default_factory=list)


def clock_of(runtime: Runtime) -> Callable[[], datetime]:
    return runtime.extras.get(CLOCK) or utcnow


async def run_duties(engine: AsyncEngine, settings: Settings, now: datetime) -> DutyReport:
    report = DutyReport()
    report.breached = await mark_breaches(engine, settings, now)
    report.reminded = await send_reminders(engine, settings, now)
    report.sampled = await draw_period_samples(engine, settings, now)
    report.reviewed_years = await review_ended_years(engine, settings, now)
    await ensure_province_obligations(engine, settings, now)
    return report


async def mark_breaches(engine: AsyncEngine, settings: Settings, now: datetime) -> list[str]:
    tickets = store.tickets
    async with engine.connect() as conn:
        due = list((await conn.execute(
            sa.select(tickets.c.id).where(tickets.c.status.in_(lifecycle.DEADLINE_STATUSES), tickets.c.due_at < now,
                                          tickets.c.breached.is_(False)).order_by(tickets.c.due_at).limit(500)
        )).scalars())
    marked = []
    for ticket_id in due:
        try:
            async with engine.begin() as conn:
                ctx = Context.of(conn, settings)
                row = (await conn.execute(sa.select(tickets).where(tickets.c.id == ticket_id))).first()
                if row is None or row.breached or row.status not in lifecycle.DEADLINE_STATUSES or row.due_at >= now:
                    continue  # moved on since the scan
                await mark_breached(ctx, row, now)
            marked.append(ticket_id)
        except TicketChanged:
            continue  # another replica or a person got there first; the next tick looks again
    return marked


async def send_reminders(engine: AsyncEngine, settings: Settings, now: datetime) -> list[str]:
    """Two working days before a deadline (the day the remaining working days drop to two), tell the unit head."""
    tickets = store.tickets
    reminded = []
    async with engine.begin() as conn:
        ctx = Context.of(conn, settings)
        rows = (await conn.execute(
            sa.select(tickets).where(
                tickets.c.status.in_(lifecycle.UNIT_OWES), tickets.c.breached.is_(False), tickets.c.due_at >= now,
                tickets.c.due_at <= now + REMINDER_HORIZON,
                sa.or_(tickets.c.reminded_due_at.is_(None), tickets.c.reminded_due_at != tickets.c.due_at),
            )
        )).all()
        for row in rows:
            remind_on = ctx.calendar.subtract_working_days(local_time(row.due_at).date(), ctx.rules.reminder_working_days)
            if now < ctx.calendar.start_of_day(remind_on):
                continue
            # Claimed by this very condition: a second replica re-checks it after our commit and finds nothing to do.
            # Not a change of the ticket itself: no version bump, no event.
            claimed = await conn.execute(
                tickets.update().where(
                    tickets.c.id == row.id, tickets.c.due_at == row.due_at,
                    sa.or_(tickets.c.reminded_due_at.is_(None), tickets.c.reminded_due_at != tickets.c.due_at),
                ).values(reminded_due_at=row.due_at)
            )
            if claimed.rowcount == 1:
                await notifications.ticket_due_soon(conn, settings, row)
                reminded.append(row.id)
    return reminded


def _month_end(year: int, month: int) -> date:
    return (date(year + (month == 12), month % 12 + 1, 1)) - timedelta(days=1)


async def _claim(conn: AsyncConnection, duty: str, key: str, now: datetime) -> bool:
    """Take a once-only duty; False when it was already done (here, earlier, or by another replica)."""
    if await conn.scalar(sa.select(store.duty_runs.c.ran_at).where(store.duty_runs.c.duty == duty, store.duty_runs.c.key == key)):
        return False
    await conn.execute(store.duty_runs.insert().values(duty=duty, key=key, ran_at=now))
    return True


async def draw_period_samples(engine: AsyncEngine, settings: Settings, now: datetime) -> dict[str, int]:
    """Đà Nẵng Art. 8.2: once a month is over (plus a few working days for late ratings), sample each unit."""
    calendar = default_calendar()
    local = local_time(now)
    drawn: dict[str, int] = {}
    for back in range(1, MONTHS_LOOKED_BACK + 1):
        year, month = divmod(local.year * 12 + local.month - 1 - back, 12)
        month += 1
        period = f"{year}-{month:02d}"
        if now < calendar.start_of_day(calendar.add_working_days(_month_end(year, month), settings.verification_sample_delay_working_days)):
            continue
        try:
            async with engine.begin() as conn:
                if not await _claim(conn, SAMPLE_DUTY, period, now):
                    continue
                drawn[period] = await _sample_month(Context.of(conn, settings), period, settings)
        except IntegrityError:
            continue  # another replica claimed it at the same moment
    return drawn


async def _sample_month(ctx: Context, period: str, settings: Settings) -> int:
    table = store.online_ratings
    rows = (await ctx.conn.execute(sa.select(table).where(table.c.period == period))).all()
    by_unit: dict[str, list] = {}
    for row in rows:
        by_unit.setdefault(row.unit_code, []).append(row)
    created = 0
    seed = sample_seed(settings)
    for unit_code, unit_rows in sorted(by_unit.items()):
        chosen = set(sampling.draw_sample([r.rating_id for r in unit_rows], rate=settings.verification_sample_rate,
                                          seed=seed, period=period, unit_code=unit_code))
        for row in unit_rows:
            if row.rating_id in chosen:
                created += await create_verification_task(
                    ctx, rating_id=row.rating_id, unit_code=row.unit_code, dossier_code=row.dossier_code, period=period,
                    channel=row.channel, reason="sample",
                )
    log.info("phúc tra sample drawn", period=period, units=len(by_unit), tasks=created)
    return created


async def review_ended_years(engine: AsyncEngine, settings: Settings, now: datetime) -> list[int]:
    """Đà Nẵng Art. 6 for every unit and officer, once a year has ended and its late ratings are in."""
    calendar = default_calendar()
    year = local_time(now).year - 1
    if now < calendar.start_of_day(calendar.add_working_days(date(year, 12, 31), settings.verification_sample_delay_working_days)):
        return []
    table = store.scores
    try:
        async with engine.begin() as conn:
            if not await _claim(conn, "annual_review", str(year), now):
                return []
            ctx = Context.of(conn, settings)
            rows = (await conn.execute(sa.select(table).where(
                table.c.period == str(year), table.c.profile == settings.report_profile
            ))).all()
            for row in rows:
                await review_repeated_dissatisfaction(ctx, row.subject_kind, row.subject_id, row.unit_code, row.profile, year, now)
    except IntegrityError:
        return []
    return [year]


async def ensure_province_obligations(engine: AsyncEngine, settings: Settings, now: datetime) -> None:
    async with engine.begin() as conn:
        ctx = Context.of(conn, settings)
        for obligation in obligations.province_obligations_around(now):
            await ensure_obligation(ctx, obligation)


async def duty_worker(runtime: Runtime) -> None:
    """The background worker: run the duties every HAILONG_WORKFLOW_TICK_SECONDS."""
    clock = clock_of(runtime)
    while True:
        try:
            report = await run_duties(runtime.engine, runtime.settings, clock())
            if report.breached or report.reminded or report.sampled:
                log.info("duties done", breached=len(report.breached), reminded=len(report.reminded), sampled=report.sampled)
            runtime.relay.wake()
            wake_notifications(runtime)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # database trouble: keep the loop alive, try at the next tick
            log.warning("duties failed; will retry", error=repr(exc)[:300])
        await asyncio.sleep(runtime.settings.workflow_tick_seconds)


def wake_notifications(runtime: Runtime, _topics: list[str] | None = None) -> None:
    wakeup = runtime.extras.get(notifications.WAKEUP)
    if wakeup is not None:
        wakeup.set()


async def notification_worker(runtime: Runtime) -> None:
    # Sending and retrying run on the wall clock: the set clock of tests is about deadlines, not about the mail server.
    wakeup = runtime.extras.setdefault(notifications.WAKEUP, asyncio.Event())
    await notifications.run_sender(runtime.engine, runtime.settings, utcnow, wakeup)

