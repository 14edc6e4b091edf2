"""Workflow's HTTP API: tickets and their transitions, phúc tra tasks, reporting obligations, the calendar.

Routes validate, authorise and call the write flows (tickets.py, handlers.py) or the queries (queries.py).
"""

from __future__ import annotations

import hashlib
from datetime import date, datetime, timezone
from typing import Annotated, Any, Literal

import orjson
import sqlalchemy as sa
from fastapi import APIRouter, Depends, Header, Path, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from services.workflow import queries, reports, store
from services.workflow.domain import lifecycle
from services.workflow.domain.lifecycle import TransitionRefused
from services.workflow.domain.remediation import DEFAULT_RULES
from services.workflow.duties import clock_of
from services.workflow.handlers import record_verdict
from services.workflow.tickets import Context, TicketChanged, move, state_of
from shared.auth import Principal
from shared.calendar import MAX_RANGE_DAYS, default_calendar, load_overlay, overlay_path
from shared.db import upsert
from shared.problems import Problem
from shared.ratelimit import RateLimiter
from shared.service import Runtime, RuntimeDep, require

router = APIRouter()
UNIT_CODE = r"^[A-Za-z0-9._-]{1,64}$"
TicketReader = Annotated[Principal, Depends(require(*queries.TICKET_READERS))]
TicketMover = Annotated[Principal, Depends(require(*queries.TICKET_READERS))]
Verifier = Annotated[Principal, Depends(require("admin", "home_affairs", "inspector"))]
ObligationReader = Annotated[Principal, Depends(require("admin", "home_affairs", "unit_head", "peoples_committee", "inspector"))]
ContactEditor = Annotated[Principal, Depends(require("admin", "home_affairs"))]
IdempotencyKey = Annotated[str | None, Header(alias="Idempotency-Key", max_length=255)]
PUBLIC_LIMIT = "300/minute"
_public_limiter = RateLimiter()


def _public(request: Request) -> None:
    """Public reads need no token and are rate limited per client address."""
    _public_limiter.check(PUBLIC_LIMIT, "workflow-public", request.client.host if request.client else "unknown")


PublicRead = Depends(_public)


class TransitionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    action: Literal["acknowledge", "submit_plan", "resolve", "verify", "close", "reopen", "dispute",
                    "uphold_dispute", "reject_dispute", "escalate"]
    note: str | None = Field(None, max_length=4000)
    measures: str | None = Field(None, max_length=2000, description="public summary of what the unit did (no personal data)")


class VerdictIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    verdict: Literal["genuine", "not_genuine"]
    note: str | None = Field(None, max_length=4000)


class ContactIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    head_email: str = Field(pattern=r"^[^@\s]{1,64}@[^@\s]{1,255}\.[^@\s]{2,}$", max_length=320)


def _actor(principal: Principal) -> str:
    return f"{principal.role}:{principal.subject}"[:128]


async def _idempotent(runtime: Runtime, request: Request, principal: Principal, key: str | None, write: Any) -> JSONResponse:
    """Run `write(conn)` once per Idempotency-Key; the same key with another body is 409."""
    fingerprint = hashlib.sha256(orjson.dumps(orjson.loads(await request.body() or b"null"), option=orjson.OPT_SORT_KEYS)).hexdigest()
    table = store.idempotency_keys
    try:
        async with runtime.transaction() as conn:
            if key:
                stored = (await conn.execute(sa.select(table).where(table.c.principal == principal.subject, table.c.key == key))).first()
                if stored is not None:
                    if stored.request_hash != fingerprint:
                        raise Problem(409, "Idempotency key reused", "this Idempotency-Key was used with a different body")
                    return JSONResponse(stored.response, status_code=stored.status_code)
            body = await write(conn)
            if key:
                await conn.execute(table.insert().values(principal=principal.subject, key=key, request_hash=fingerprint,
                                                         status_code=200, response=body, created_at=datetime.now(timezone.utc)))
    except IntegrityError:
        raise Problem(409, "Conflicting concurrent request", "another request with this Idempotency-Key is in flight; retry") from None
    return JSONResponse(body)


# --- tickets ---------------------------------------------------------------------------------------------------

@router.get("/v1/tickets", tags=["tickets"])
async def list_tickets(
    runtime: RuntimeDep,
    principal: TicketReader,
    unit_code: Annotated[str | None, Query(pattern=UNIT_CODE)] = None,
    status: Annotated[str | None, Query(max_length=32)] = None,
    category: Annotated[str | None, Query(max_length=32)] = None,
    severity: Annotated[Literal["normal", "high"] | None, Query()] = None,
    overdue: bool | None = None,
    escalated_to: Annotated[Literal["home_affairs", "peoples_committee"] | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    cursor: Annotated[str | None, Query(max_length=120)] = None,
) -> dict[str, Any]:
    now = clock_of(runtime)()
    async with runtime.engine.connect() as conn:
        return await queries.list_tickets(
            conn, principal, now, unit_code=unit_code, status=status, category=category, severity=severity,
            overdue=overdue, escalated_to=escalated_to, limit=limit, cursor=cursor,
        )


@router.get("/v1/tickets/{ticket_id}", tags=["tickets"])
async def get_ticket(runtime: RuntimeDep, principal: TicketReader, ticket_id: Annotated[str, Path(max_length=36)]) -> dict[str, Any]:
    async with runtime.engine.connect() as conn:
        row = await queries.visible_ticket(conn, principal, ticket_id)
        return await queries.ticket_detail(conn, row, principal, clock_of(runtime)())


@router.post("/v1/tickets/{ticket_id}/transitions", tags=["tickets"])
async def transition(
    runtime: RuntimeDep, principal: TicketMover, request: Request, ticket_id: Annotated[str, Path(max_length=36)],
    body: TransitionIn, idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    """Move a ticket: only from the statuses the action allows (409) and for the roles it names (403)."""
    now = clock_of(runtime)()

    async def write(conn: AsyncConnection) -> dict[str, Any]:
        ctx = Context.of(conn, runtime.settings)
        row = await queries.visible_ticket(conn, principal, ticket_id)
        try:
            decided = lifecycle.decide(state_of(row), body.action, principal.role, now, ctx.calendar, ctx.rules, body.note)
        except TransitionRefused as refused:
            raise Problem(refused.status, refused.title, refused.detail,
                          allowed_actions=queries.allowed_actions(row, principal.role)) from None
        try:
            moved = await move(ctx, row, decided, _actor(principal), body.note, now, body.measures)
        except TicketChanged:
            raise Problem(409, "Changed meanwhile", "the ticket changed while you acted; reload it and try again") from None
        return await queries.ticket_detail(conn, moved, principal, now)

    return await _idempotent(runtime, request, principal, idempotency_key, write)


# --- phúc tra --------------------------------------------------------------------------------------------------

@router.get("/v1/verifications", tags=["verifications"])
async def list_verifications(
    runtime: RuntimeDep, _: Verifier,
    status: Annotated[Literal["pending", "done"] | None, Query()] = None,
    reason: Annotated[Literal["sample", "flagged"] | None, Query()] = None,
    unit_code: Annotated[str | None, Query(pattern=UNIT_CODE)] = None,
    period: Annotated[str | None, Query(pattern=r"^\d{4}-(0[1-9]|1[0-2])$")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    cursor: Annotated[str | None, Query(max_length=80)] = None,
) -> dict[str, Any]:
    async with runtime.engine.connect() as conn:
        return await queries.list_verifications(conn, status=status, reason=reason, unit_code=unit_code, period=period,
                                                limit=limit, cursor=cursor)


@router.post("/v1/verifications/{task_id}/result", tags=["verifications"])
async def verification_result(
    runtime: RuntimeDep, principal: Verifier, request: Request, task_id: Annotated[str, Path(max_length=36)],
    body: VerdictIn, idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    """Record a re-verification; scoring hears of it on verifications.v1. A task takes one verdict."""
    now = clock_of(runtime)()

    async def write(conn: AsyncConnection) -> dict[str, Any]:
        table = store.verification_tasks
        task = (await conn.execute(sa.select(table).where(table.c.id == task_id))).first()
        if task is None:
            raise Problem(404, "Not found", f"no verification task {task_id}")
        if task.status == "done":
            if task.verdict == body.verdict:
                return queries.verification_item(task)  # the same result again changes nothing
            raise Problem(409, "Already verified", f"task {task_id} was found {task.verdict} on {task.verified_at.isoformat()}")
        await record_verdict(Context.of(conn, runtime.settings), task, body.verdict, body.note, _actor(principal), now)
        return queries.verification_item((await conn.execute(sa.select(table).where(table.c.id == task_id))).first())

    return await _idempotent(runtime, request, principal, idempotency_key, write)


# --- obligations -----------------------------------------------------------------------------------------------

@router.get("/v1/obligations", tags=["obligations"])
async def list_obligations(
    runtime: RuntimeDep, principal: ObligationReader,
    kind: Annotated[Literal["unit_remediation_report", "annual_report", "monthly_ranking_report"] | None, Query()] = None,
    status: Annotated[Literal["pending", "overdue", "met", "met_late"] | None, Query()] = None,
    year: Annotated[int | None, Query(ge=2000, le=2100)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    cursor: Annotated[str | None, Query(max_length=120)] = None,
) -> dict[str, Any]:
    async with runtime.engine.connect() as conn:
        return await queries.list_obligations(conn, principal, clock_of(runtime)(), kind=kind, status=status, year=year,
                                              limit=limit, cursor=cursor)


@router.get("/v1/obligations/{obligation_id}/report", tags=["obligations"])
async def obligation_report(runtime: RuntimeDep, principal: ObligationReader, obligation_id: Annotated[str, Path(max_length=36)]) -> Response:
    """The report as XLSX: the submitted copy once submitted, else generated now from the data."""
    async with runtime.engine.connect() as conn:
        row = await queries.visible_obligation(conn, principal, obligation_id)
        content = row.report or await queries.generate_report(conn, row, runtime.settings, clock_of(runtime)())
    filename = f"{row.kind}-{row.scope.replace('*', 'province')}-{row.period}.xlsx"
    return Response(content, media_type=reports.XLSX, headers={"Content-Disposition": f'attachment; filename="{filename}"'})


@router.post("/v1/obligations/{obligation_id}/submit", tags=["obligations"])
async def submit_obligation(runtime: RuntimeDep, principal: ObligationReader, obligation_id: Annotated[str, Path(max_length=36)]) -> dict[str, Any]:
    """Generate the report from the data now, keep it, and mark the obligation met (or met late)."""
    now = clock_of(runtime)()
    async with runtime.transaction() as conn:
        row = await queries.visible_obligation(conn, principal, obligation_id)
        if principal.role not in ("admin", queries.RESPONSIBLE_ROLE[row.kind]):
            raise Problem(403, "Forbidden", f"a {row.kind} is submitted by {queries.RESPONSIBLE_ROLE[row.kind]}")
        if row.submitted_at is not None:
            raise Problem(409, "Already submitted", f"submitted {row.submitted_at.isoformat()} by {row.submitted_by}")
        content = await queries.generate_report(conn, row, runtime.settings, now)
        table = store.obligations
        await conn.execute(table.update().where(table.c.id == row.id).values(submitted_at=now, submitted_by=_actor(principal), report=content))
        row = (await conn.execute(sa.select(table).where(table.c.id == row.id))).first()
    return queries.obligation_item(row, now)


# --- unit contacts, rules ---------------------------------------------------------------------------------------

@router.put("/v1/units/{unit_code}/contact", tags=["notifications"])
async def put_contact(runtime: RuntimeDep, principal: ContactEditor, unit_code: Annotated[str, Path(pattern=UNIT_CODE)], body: ContactIn) -> dict[str, Any]:
    """Where the unit head is mailed; units below without their own contact use the nearest one above."""
    row = {"unit_code": unit_code, "head_email": body.head_email, "updated_at": datetime.now(timezone.utc), "updated_by": _actor(principal)}
    async with runtime.transaction() as conn:
        await conn.execute(upsert(store.unit_contacts, row, ["unit_code"], conn.dialect.name))
    return {"unit_code": unit_code, "head_email": body.head_email}


@router.get("/v1/rules", tags=["rules"], dependencies=[PublicRead])
async def rules(runtime: RuntimeDep) -> dict[str, Any]:
    """The deadlines and choices in force (DOMAIN.md: named parameters, never hidden)."""
    settings = runtime.settings
    return {
        **DEFAULT_RULES.describe(),
        "actions": {name: {"from": list(a.from_statuses), "to": a.to_status, "roles": list(a.roles)} for name, a in lifecycle.ACTIONS.items()},
        "verification": {"sample_rate": settings.verification_sample_rate, "channels": sorted(settings.verification_channels.split(",")),
                         "sample_delay_working_days": settings.verification_sample_delay_working_days},
        "report_profile": settings.report_profile,
        "sources": {"remediation": "Đà Nẵng 5697/2017 Art. 3", "repeated": "Đà Nẵng 5697/2017 Art. 6",
                    "phuc_tra": "Đà Nẵng 5697/2017 Art. 8.2", "apology_letter": "Quảng Điền 490/2020",
                    "monthly_ranking_report": "HCMC 104/2024 Art. 15"},
    }


# --- the calendar ----------------------------------------------------------------------------------------------

@router.get("/v1/calendar/working-days", tags=["calendar"], dependencies=[PublicRead])
async def working_days(
    start: Annotated[date, Query(alias="from")], end: Annotated[date, Query(alias="to")],
) -> dict[str, Any]:
    """Working days after `from` up to and including `to` (negative when `to` is earlier)."""
    if abs((end - start).days) > MAX_RANGE_DAYS:
        raise Problem(422, "Invalid request", "range too long", errors=[{"field": "query.to", "message": f"at most {MAX_RANGE_DAYS} days from `from`"}])
    return {"from": start.isoformat(), "to": end.isoformat(), "working_days": default_calendar().working_days_between(start, end)}


@router.get("/v1/calendar/add", tags=["calendar"], dependencies=[PublicRead])
async def add_working_days(
    start: Annotated[str, Query(max_length=40, description="a date (2025-04-25), or a moment with its offset")],
    days: Annotated[int, Query(ge=0, le=366)],
) -> dict[str, Any]:
    """"Within N working days of X": the day of X does not count; due at the end of the N-th working day."""
    calendar = default_calendar()
    moment = _moment(start)
    due = calendar.add_working_days(moment, days)
    return {"start": start, "days": days, "date": due.isoformat(), "deadline": calendar.deadline(moment, days).isoformat()}


def _moment(text: str) -> datetime:
    """A date is taken at the start of its day in Việt Nam; a moment must carry its offset."""
    invalid = Problem(422, "Invalid request", "start is not a date or a moment with offset",
                      errors=[{"field": "query.start", "message": "e.g. 2025-04-25 or 2025-04-25T09:00:00+07:00"}])
    try:
        if len(text) == 10:
            return default_calendar().start_of_day(date.fromisoformat(text))
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise invalid from None
    if moment.tzinfo is None:
        raise invalid
    return moment


@router.get("/v1/calendar/holidays", tags=["calendar"], dependencies=[PublicRead])
async def holidays(year: Annotated[int, Query(ge=2000, le=2100)]) -> dict[str, Any]:
    """Days off and swapped working days of a year, each with its source (the package or the overlay)."""
    calendar = default_calendar()
    return {"year": year, "items": [
        {"date": h.day.isoformat(), "name": h.name, "source": h.source, "working_day": calendar.is_working_day(h.day)}
        for h in calendar.holidays_in(year)
    ]}


@router.get("/v1/calendar/overlay", tags=["calendar"], dependencies=[PublicRead])
async def overlay() -> dict[str, Any]:
    """The operator's overlay in force: announcements the holidays package does not know yet."""
    path = overlay_path()
    return {"file": path.name, "entries": [
        {"date": e.day.isoformat(), "kind": e.kind, "name": e.name, "source": e.source} for e in load_overlay(path)
    ]}

