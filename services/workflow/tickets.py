"""Ticket write flows shared by the event handlers, the API and the duties: open or attach, move, notify.

Every flow runs inside the caller's transaction and writes the state, its history line, its outbox
event and its notifications together, so a crash leaves all of them or none.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from services.workflow import notifications, store
from services.workflow.domain import lifecycle, obligations
from services.workflow.domain.remediation import DEFAULT_RULES, Rules
from shared import events, topics
from shared.bus.outbox import add_many_to_outbox
from shared.calendar import WorkingCalendar, default_calendar
from shared.db import upsert_statement
from shared.ids import new_id
from shared.settings import Settings

SOURCE = "/hailong/workflow"
MAX_RATING_IDS_IN_EVENT = 1000  # beyond this tickets.v1 carries the count only (events stay small)


class TicketChanged(Exception):
    """Someone else moved the ticket between our read and our write: re-read and decide again."""


@dataclass
class Context:
    """What every flow needs: the open transaction, configuration, the calendar and the rules."""

    conn: AsyncConnection
    settings: Settings
    calendar: WorkingCalendar
    rules: Rules = DEFAULT_RULES

    @classmethod
    def of(cls, conn: AsyncConnection, settings: Settings) -> Context:
        return cls(conn, settings, default_calendar())


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


async def open_ticket(
    ctx: Context, *, unit_code: str, category: str, source: str, severity: str, period: str, opened_at: datetime,
    note: str, subject_ref: str | None = None, restricted: bool = False, officer_id: str | None = None,
    escalated_to: str | None = None, rating: tuple[str, list[str]] | None = None,
) -> str:
    """A new ticket due N working days after `opened_at` (the day it opens does not count)."""
    ticket_id = new_id()
    due_at = ctx.calendar.deadline(opened_at, ctx.rules.days_for(category))
    await ctx.conn.execute(store.tickets.insert().values(
        id=ticket_id, unit_code=unit_code, category=category, source=source, severity=severity, status=lifecycle.OPEN,
        period=period, opened_at=opened_at, due_at=due_at, escalated_to=escalated_to, restricted=restricted,
        officer_id=officer_id, subject_ref=subject_ref, version=1, updated_at=opened_at,
    ))
    await add_history(ctx, ticket_id, opened_at, "system", "open", None, lifecycle.OPEN, note)
    if rating is not None:
        await attach_rating(ctx, ticket_id, rating[0], category, rating[1])
    if not restricted:
        await ensure_obligation(ctx, obligations.remediation_report_for(unit_code, opened_at))
    row = await load(ctx, ticket_id)
    await emit(ctx, row, events.TICKET_OPENED)
    await notifications.ticket_opened(ctx.conn, ctx.settings, row)
    if escalated_to:
        await notifications.ticket_escalated(ctx.conn, ctx.settings, row)
    return ticket_id


async def attach_rating(ctx: Context, ticket_id: str, rating_id: str, category: str, reasons: list[str]) -> bool:
    """Attach a rating to a ticket once; False when it already was (a redelivered event)."""
    table = store.ticket_ratings
    known = await ctx.conn.scalar(sa.select(table.c.ticket_id).where(table.c.rating_id == rating_id, table.c.category == category))
    if known is not None:
        return False
    await ctx.conn.execute(table.insert().values(rating_id=rating_id, category=category, ticket_id=ticket_id, reasons=reasons))
    return True


async def load(ctx: Context, ticket_id: str) -> Any:
    return (await ctx.conn.execute(sa.select(store.tickets).where(store.tickets.c.id == ticket_id))).first()


async def add_history(ctx: Context, ticket_id: str, at: datetime, actor: str, action: str,
                      from_status: str | None, to_status: str, note: str | None) -> None:
    await ctx.conn.execute(store.ticket_history.insert().values(
        ticket_id=ticket_id, at=at, actor=actor, action=action, from_status=from_status, to_status=to_status, note=note,
    ))


async def update(ctx: Context, row: Any, changes: dict[str, Any], now: datetime) -> Any:
    """Write `changes` if nobody changed the ticket since `row` was read (optimistic, by version)."""
    tickets = store.tickets
    result = await ctx.conn.execute(
        tickets.update().where(tickets.c.id == row.id, tickets.c.version == row.version)
        .values(**changes, version=row.version + 1, updated_at=now)
    )
    if result.rowcount != 1:
        raise TicketChanged(row.id)
    return await load(ctx, row.id)


def state_of(row: Any) -> lifecycle.TicketState:
    return lifecycle.TicketState(
        status=row.status, source=row.source, category=row.category, opened_at=row.opened_at, due_at=row.due_at,
        escalated_to=row.escalated_to, status_before_dispute=row.status_before_dispute,
    )


async def move(ctx: Context, row: Any, transition: lifecycle.Transition, actor: str, note: str | None,
               now: datetime, measures: str | None = None) -> Any:
    """Apply a decided transition: state, history, event, and the notifications it calls for."""
    changes: dict[str, Any] = {
        "status": transition.to_status, "due_at": transition.due_at, "escalated_to": transition.escalated_to,
        "status_before_dispute": transition.status_before_dispute,
    }
    if transition.clock_restarted:
        changes.update(breached=False, breached_at=None, reminded_due_at=None)
    if transition.resolved:
        changes["resolved_at"] = now
    if transition.to_status == lifecycle.OPEN and transition.from_status != lifecycle.OPEN:
        changes.update(resolved_at=None, closed_at=None)
    if transition.closed:
        changes["closed_at"] = now
    if measures is not None:
        changes["measures"] = measures.strip() or None
    updated = await update(ctx, row, changes, now)
    await add_history(ctx, row.id, now, actor, transition.action, transition.from_status, transition.to_status, note)
    await emit(ctx, updated, events.TICKET_UPDATED)
    if transition.escalated_to != row.escalated_to:
        await notifications.ticket_escalated(ctx.conn, ctx.settings, updated)
    return updated


async def mark_breached(ctx: Context, row: Any, now: datetime) -> Any:
    """Past its deadline: breached, the unit head is told, and the ticket climbs one rung (if it can)."""
    updated = await update(ctx, row, {"breached": True, "breached_at": now}, now)
    await add_history(ctx, row.id, now, "system", "breach", row.status, row.status, f"not done by {row.due_at.isoformat()}")
    await notifications.ticket_breached(ctx.conn, ctx.settings, updated)
    target = lifecycle.breach_escalation(state_of(updated))
    if target is None:
        await emit(ctx, updated, events.TICKET_UPDATED)
        return updated
    transition = lifecycle.decide(state_of(updated), "escalate", lifecycle.SYSTEM, now, ctx.calendar, ctx.rules)
    return await move(ctx, updated, transition, "system", f"breached: escalated to {transition.escalated_to}", now)


async def emit(ctx: Context, row: Any, event_type: str) -> None:
    await emit_many(ctx, [row], event_type)


async def emit_many(ctx: Context, rows: list[Any], event_type: str) -> None:
    """tickets.v1: the public facts of each ticket. A restricted record (an officer's review) is never published."""
    rows = [row for row in rows if not row.restricted]
    if not rows:
        return
    links = store.ticket_ratings
    rating_ids: dict[str, list[str]] = {row.id: [] for row in rows}
    for ticket_id, rating_id in await ctx.conn.execute(
        sa.select(links.c.ticket_id, links.c.rating_id)
        .where(links.c.ticket_id.in_(list(rating_ids)), links.c.invalidated.is_(False)).order_by(links.c.rating_id)
    ):
        rating_ids[ticket_id].append(rating_id)
    outgoing = []
    for row in rows:
        ids = rating_ids[row.id]
        data = events.TicketEvent(**store.ticket_public_fields(row), rating_ids=ids[:MAX_RATING_IDS_IN_EVENT], rating_count=len(ids))
        outgoing.append((ctx.settings.topic(topics.TICKETS), row.unit_code, events.new_event(event_type, SOURCE, row.unit_code, data)))
    await add_many_to_outbox(ctx.conn, store.bus, outgoing)


async def ensure_obligation(ctx: Context, obligation: obligations.Obligation) -> None:
    """Record a reporting duty once, whichever replica or event gets there first."""
    keys = ["kind", "scope", "period"]
    await ctx.conn.execute(upsert_statement(store.obligations, keys, keys, ctx.conn.dialect.name).values(
        id=new_id(), kind=obligation.kind, scope=obligation.scope, period=obligation.period,
        due_at=obligation.due_at, created_at=utcnow(),
    ))
