"""Workflow's HTTP API: remediation tickets with their deadlines and history."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Path, Query

from services.workflow import store
from services.workflow.handlers import OPEN_STATUSES
from shared.auth import Principal
from shared.periods import local_time
from shared.problems import Problem
from shared.service import RuntimeDep, require

router = APIRouter(tags=["tickets"])
TicketReader = Annotated[
    Principal, Depends(require("admin", "unit_head", "officer", "inspector", "home_affairs", "peoples_committee"))
]
UNIT_CODE = r"^[A-Za-z0-9._-]{1,64}$"



def _ticket(row: Any, now: datetime) -> dict[str, Any]:
    due_at = row.due_at
    # Deadlines are Vietnamese working days: shown in Việt Nam's time, where they end at 23:59:59.
    return {
        "id": row.id, "unit_code": row.unit_code, "category": row.category, "source": row.source,
        "severity": row.severity, "status": row.status, "period": row.period,
        "opened_at": row.opened_at.isoformat(), "due_at": local_time(due_at).isoformat(),
        "breached": row.status in OPEN_STATUSES and now > due_at,
    }


@router.get("/v1/tickets")
async def list_tickets(
    runtime: RuntimeDep,
    principal: TicketReader,
    unit_code: Annotated[str | None, Query(pattern=UNIT_CODE)] = None,
    status: Annotated[str | None, Query(max_length=32)] = None,
    category: Annotated[str | None, Query(max_length=32)] = None,
    overdue: bool | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    cursor: Annotated[str | None, Query(max_length=80)] = None,
) -> dict[str, Any]:
    tickets = store.tickets
    now = datetime.now(timezone.utc)
    query = sa.select(tickets).order_by(tickets.c.opened_at, tickets.c.id).limit(limit + 1)
    scope = principal.unit_scope
    if scope is not None and unit_code is not None and unit_code != scope:
        raise Problem(403, "Outside your unit", f"your scope is {scope}")
    if unit_code or scope:
        query = query.where(tickets.c.unit_code == (unit_code or scope))
    if status:
        query = query.where(tickets.c.status == status)
    if category:
        query = query.where(tickets.c.category == category)
    if overdue:
        query = query.where(tickets.c.status.in_(OPEN_STATUSES), tickets.c.due_at < now)
    if cursor:
        opened, _, last_id = cursor.partition("|")
        try:
            opened_at = datetime.fromisoformat(opened)
        except ValueError:
            raise Problem(422, "Invalid request", "malformed cursor", errors=[{"field": "query.cursor", "message": "use next_cursor as given"}]) from None
        query = query.where(sa.tuple_(tickets.c.opened_at, tickets.c.id) > sa.tuple_(sa.literal(opened_at), sa.literal(last_id)))
    async with runtime.engine.connect() as conn:
        rows = (await conn.execute(query)).all()
    items = [_ticket(row, now) for row in rows[:limit]]
    next_cursor = f"{items[-1]['opened_at']}|{items[-1]['id']}" if len(rows) > limit else None
    return {"items": items, "next_cursor": next_cursor}


@router.get("/v1/tickets/{ticket_id}")
async def get_ticket(runtime: RuntimeDep, principal: TicketReader, ticket_id: Annotated[str, Path(max_length=36)]) -> dict[str, Any]:
    async with runtime.engine.connect() as conn:
        row = (await conn.execute(sa.select(store.tickets).where(store.tickets.c.id == ticket_id))).first()
        if row is None or (principal.unit_scope is not None and row.unit_code != principal.unit_scope):
            raise Problem(404, "Not found", f"no ticket {ticket_id}")
        history = (
            await conn.execute(
                sa.select(store.ticket_history).where(store.ticket_history.c.ticket_id == ticket_id).order_by(store.ticket_history.c.id)
            )
        ).all()
        rating_ids = (
            await conn.execute(sa.select(store.ticket_ratings.c.rating_id).where(store.ticket_ratings.c.ticket_id == ticket_id))
        ).scalars().all()
    return {
        **_ticket(row, datetime.now(timezone.utc)),
        "rating_ids": list(rating_ids),
        "history": [
            {"at": h.at.isoformat(), "actor": h.actor, "action": h.action, "from_status": h.from_status,
             "to_status": h.to_status, "note": h.note}
            for h in history
        ],
    }
