"""Workflow's event handlers: a dissatisfied rating opens, or joins, a remediation ticket per category."""

from __future__ import annotations

import uuid
from datetime import datetime

import sqlalchemy as sa

from services.workflow import store
from services.workflow.domain.remediation import Remedy, remedies_for
from shared import events, topics
from shared.bus.consumer import Tx
from shared.calendar import default_calendar
from shared.periods import month_of

SOURCE = "/hailong/workflow"
OPEN_STATUSES = ("open", "acknowledged", "plan_submitted")


async def on_rating_accepted(event: events.CloudEvent, rating: events.RatingAccepted, tx: Tx) -> None:
    period = str(month_of(rating.dossier_completed_at))
    for remedy in remedies_for(rating.overall, list(rating.reasons)):
        already = await tx.conn.scalar(
            sa.select(store.ticket_ratings.c.ticket_id).where(
                store.ticket_ratings.c.rating_id == rating.rating_id, store.ticket_ratings.c.category == remedy.category
            )
        )
        if already is not None:
            continue
        ticket_id = await _open_ticket_for(tx, rating.unit_code, period, remedy)
        if ticket_id is None:
            ticket_id = await _open_ticket(tx, event.time, rating, period, remedy)
        await tx.conn.execute(
            store.ticket_ratings.insert().values(
                rating_id=rating.rating_id, category=remedy.category, ticket_id=ticket_id, reasons=list(remedy.reasons)
            )
        )


async def _open_ticket_for(tx: Tx, unit_code: str, period: str, remedy: Remedy) -> str | None:
    """Several dissatisfied ratings of one unit, category and period share the ticket already open."""
    tickets = store.tickets
    return await tx.conn.scalar(
        sa.select(tickets.c.id)
        .where(
            tickets.c.unit_code == unit_code, tickets.c.category == remedy.category,
            tickets.c.period == period, tickets.c.status.in_(OPEN_STATUSES),
        )
        .order_by(tickets.c.opened_at)
        .limit(1)
    )


async def _open_ticket(tx: Tx, opened_at: datetime, rating: events.RatingAccepted, period: str, remedy: Remedy) -> str:
    ticket_id = str(uuid.uuid4())
    # The clock starts when the rating was accepted (the event's time), so a replay computes the same deadline.
    due_at = default_calendar().deadline(opened_at, remedy.working_days)
    row = {
        "id": ticket_id, "unit_code": rating.unit_code, "category": remedy.category, "source": "rating",
        "severity": remedy.severity, "status": "open", "period": period, "opened_at": opened_at, "due_at": due_at,
    }
    await tx.conn.execute(store.tickets.insert().values(**row))
    await tx.conn.execute(
        store.ticket_history.insert().values(
            ticket_id=ticket_id, at=opened_at, actor="system", action="open", from_status=None, to_status="open",
            note=f"rating {rating.rating_id}: {', '.join(remedy.reasons)}",
        )
    )
    data = events.TicketEvent(ticket_id=ticket_id, **{k: v for k, v in row.items() if k != "id"}, rating_ids=[rating.rating_id])
    await tx.emit(topics.TICKETS, rating.unit_code, events.new_event(events.TICKET_OPENED, SOURCE, rating.unit_code, data))
    return ticket_id


HANDLERS = {events.RATING_ACCEPTED: on_rating_accepted}
