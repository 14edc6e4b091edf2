"""Workflow's read side: who sees which ticket, the API's lists and details, and the reports' data."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from services.workflow import reports, store
from services.workflow.domain import lifecycle, obligations
from shared.auth import Principal
from shared.calendar import default_calendar
from shared.periods import local_time
from shared.problems import Problem
from shared.settings import Settings

TICKET_READERS = ("admin", "home_affairs", "inspector", "peoples_committee", "unit_head", "officer")
SCOPED_ROLES = ("unit_head", "officer")
RESPONSIBLE_ROLE = obligations.RESPONSIBLE


def ticket_visibility(principal: Principal) -> sa.ColumnElement[bool]:
    """The tickets a caller may see. A restricted officer record: the unit head of its subtree and Home Affairs only."""
    t = store.tickets
    role = principal.role
    if role == "home_affairs":
        return sa.true()
    if role == "admin":
        return t.c.restricted.is_(False)
    if role == "inspector":  # informal costs are the inspectorate's business
        return sa.and_(t.c.restricted.is_(False), t.c.severity == "high")
    if role == "peoples_committee":
        return sa.and_(t.c.restricted.is_(False), t.c.escalated_to == lifecycle.PEOPLES_COMMITTEE)
    if role in SCOPED_ROLES:
        if principal.unit_scope is None:
            raise Problem(403, "No unit scope", f"a {role} token must carry a unit_scope")
        in_subtree = t.c.unit_code.in_(sa.select(store.subtree(principal.unit_scope).c.code))
        return in_subtree if role == "unit_head" else sa.and_(in_subtree, t.c.restricted.is_(False))
    raise Problem(403, "Forbidden", f"role {role!r} may not read tickets")


async def unit_in_scope(conn: AsyncConnection, principal: Principal, unit_code: str) -> bool:
    if principal.unit_scope is None:
        return True
    tree = store.subtree(principal.unit_scope)
    return await conn.scalar(sa.select(sa.func.count()).select_from(tree).where(tree.c.code == unit_code)) > 0


def allowed_actions(row: Any, role: str) -> list[str]:
    return [name for name, action in lifecycle.ACTIONS.items() if row.status in action.from_statuses and role in action.roles]


def _iso(moment: datetime | None) -> str | None:
    return local_time(moment).isoformat() if moment else None


def ticket_item(row: Any, now: datetime, role: str, rating_count: int | None = None) -> dict[str, Any]:
    # Deadlines are Vietnamese working days: shown in Việt Nam's time, where they end at 23:59:59.
    item = {
        "id": row.id, "unit_code": row.unit_code, "category": row.category, "source": row.source,
        "severity": row.severity, "status": row.status, "period": row.period,
        "opened_at": row.opened_at.isoformat(), "due_at": _iso(row.due_at),
        "breached": bool(row.breached) or (row.status in lifecycle.DEADLINE_STATUSES and now > row.due_at),
        "breached_at": _iso(row.breached_at), "escalated_to": row.escalated_to,
        "resolved_at": _iso(row.resolved_at), "closed_at": _iso(row.closed_at), "measures": row.measures,
        "allowed_actions": allowed_actions(row, role),
    }
    if rating_count is not None:
        item["rating_count"] = rating_count
    if row.source in lifecycle.DISPUTABLE_SOURCES:
        item["dispute_until"] = _iso(lifecycle.dispute_window_ends(
            lifecycle.TicketState(row.status, row.source, row.category, row.opened_at, row.due_at), default_calendar()))
    if row.restricted:
        item.update(restricted=True, officer_id=row.officer_id)
    return item


async def _rating_counts(conn: AsyncConnection, ticket_ids: list[str]) -> dict[str, int]:
    links = store.ticket_ratings
    if not ticket_ids:
        return {}
    rows = await conn.execute(
        sa.select(links.c.ticket_id, sa.func.count()).where(links.c.ticket_id.in_(ticket_ids), links.c.invalidated.is_(False))
        .group_by(links.c.ticket_id)
    )
    return {ticket_id: count for ticket_id, count in rows}


async def list_tickets(
    conn: AsyncConnection, principal: Principal, now: datetime, *, unit_code: str | None, status: str | None,
    category: str | None, severity: str | None, overdue: bool | None, escalated_to: str | None, limit: int, cursor: str | None,
) -> dict[str, Any]:
    t = store.tickets
    query = sa.select(t).where(ticket_visibility(principal)).order_by(t.c.opened_at, t.c.id).limit(limit + 1)
    if unit_code is not None:
        if principal.role in SCOPED_ROLES and not await unit_in_scope(conn, principal, unit_code):
            raise Problem(403, "Outside your unit", f"{unit_code} is outside your scope {principal.unit_scope}")
        query = query.where(t.c.unit_code == unit_code)
    for column, value in ((t.c.status, status), (t.c.category, category), (t.c.severity, severity), (t.c.escalated_to, escalated_to)):
        if value is not None:
            query = query.where(column == value)
    if overdue:
        query = query.where(t.c.status.in_(lifecycle.DEADLINE_STATUSES), t.c.due_at < now)
    if cursor:
        opened, _, last_id = cursor.partition("|")
        try:
            opened_at = datetime.fromisoformat(opened)
        except ValueError:
            raise Problem(422, "Invalid request", "malformed cursor", errors=[{"field": "query.cursor", "message": "use next_cursor as given"}]) from None
        if opened_at.tzinfo is None:
            raise Problem(422, "Invalid request", "malformed cursor", errors=[{"field": "query.cursor", "message": "use next_cursor as given"}])
        query = query.where(sa.or_(t.c.opened_at > opened_at, sa.and_(t.c.opened_at == opened_at, t.c.id > last_id)))
    rows = (await conn.execute(query)).all()
    page = rows[:limit]
    counts = await _rating_counts(conn, [row.id for row in page])
    items = [ticket_item(row, now, principal.role, counts.get(row.id, 0)) for row in page]
    next_cursor = f"{page[-1].opened_at.isoformat()}|{page[-1].id}" if len(rows) > limit else None
    return {"items": items, "next_cursor": next_cursor}


async def visible_ticket(conn: AsyncConnection, principal: Principal, ticket_id: str) -> Any:
    """The ticket if the caller may see it; 404 otherwise (a ticket outside one's scope is not revealed)."""
    t = store.tickets
    row = (await conn.execute(sa.select(t).where(t.c.id == ticket_id, ticket_visibility(principal)))).first()
    if row is None:
        raise Problem(404, "Not found", f"no ticket {ticket_id}")
    return row


async def ticket_detail(conn: AsyncConnection, row: Any, principal: Principal, now: datetime) -> dict[str, Any]:
    history = (await conn.execute(
        sa.select(store.ticket_history).where(store.ticket_history.c.ticket_id == row.id).order_by(store.ticket_history.c.id)
    )).all()
    links = store.ticket_ratings
    rating_ids = list((await conn.execute(
        sa.select(links.c.rating_id).where(links.c.ticket_id == row.id, links.c.invalidated.is_(False)).order_by(links.c.rating_id)
    )).scalars())
    detail = ticket_item(row, now, principal.role, len(rating_ids))
    if row.restricted and row.officer_id:
        detail["officer_name"] = await conn.scalar(sa.select(store.officers.c.name).where(store.officers.c.officer_id == row.officer_id))
    return {
        **detail,
        "rating_ids": rating_ids,
        "history": [
            {"at": h.at.isoformat(), "actor": h.actor, "action": h.action, "from_status": h.from_status,
             "to_status": h.to_status, "note": h.note}
            for h in history
        ],
    }


def verification_item(row: Any) -> dict[str, Any]:
    return {
        "id": row.id, "rating_id": row.rating_id, "unit_code": row.unit_code, "dossier_code": row.dossier_code,
        "period": row.period, "channel": row.channel, "reason": row.reason, "status": row.status, "verdict": row.verdict,
        "note": row.note, "verified_by": row.verified_by, "verified_at": _iso(row.verified_at),
        "created_at": row.created_at.isoformat(),
    }


async def list_verifications(conn: AsyncConnection, *, status: str | None, reason: str | None, unit_code: str | None,
                             period: str | None, limit: int, cursor: str | None) -> dict[str, Any]:
    v = store.verification_tasks
    query = sa.select(v).order_by(v.c.id).limit(limit + 1)
    for column, value in ((v.c.status, status), (v.c.reason, reason), (v.c.unit_code, unit_code), (v.c.period, period)):
        if value is not None:
            query = query.where(column == value)
    if cursor:
        query = query.where(v.c.id > cursor)
    rows = (await conn.execute(query)).all()
    items = [verification_item(row) for row in rows[:limit]]
    return {"items": items, "next_cursor": items[-1]["id"] if len(rows) > limit else None}


def obligation_item(row: Any, now: datetime) -> dict[str, Any]:
    return {
        "id": row.id, "kind": row.kind, "scope": row.scope, "period": row.period, "due_before": _iso(row.due_at),
        "responsible": RESPONSIBLE_ROLE[row.kind], "status": obligations.status_of(row.due_at, row.submitted_at, now),
        "submitted_at": _iso(row.submitted_at), "submitted_by": row.submitted_by,
        "report": f"/v1/obligations/{row.id}/report",
    }


def _obligation_visibility(principal: Principal) -> sa.ColumnElement[bool]:
    o = store.obligations
    if principal.role == "unit_head":
        if principal.unit_scope is None:
            raise Problem(403, "No unit scope", "a unit_head token must carry a unit_scope")
        return o.c.scope.in_(sa.select(store.subtree(principal.unit_scope).c.code))
    return sa.true()


def _obligation_status_is(status: str, now: datetime) -> sa.ColumnElement[bool]:
    """obligations.status_of, as SQL, so the status filter pages like any other."""
    o = store.obligations
    return {
        "met": sa.and_(o.c.submitted_at.is_not(None), o.c.submitted_at < o.c.due_at),
        "met_late": sa.and_(o.c.submitted_at.is_not(None), o.c.submitted_at >= o.c.due_at),
        "overdue": sa.and_(o.c.submitted_at.is_(None), o.c.due_at <= now),
        "pending": sa.and_(o.c.submitted_at.is_(None), o.c.due_at > now),
    }[status]


async def list_obligations(conn: AsyncConnection, principal: Principal, now: datetime, *, kind: str | None,
                           status: str | None, year: int | None, limit: int = 100, cursor: str | None = None) -> dict[str, Any]:
    o = store.obligations
    query = sa.select(o).where(_obligation_visibility(principal)).order_by(o.c.due_at, o.c.id).limit(limit + 1)
    if kind:
        query = query.where(o.c.kind == kind)
    if year:
        query = query.where(o.c.period.like(f"{year}%"))
    if status:
        query = query.where(_obligation_status_is(status, now))
    if cursor:
        due, _, last_id = cursor.partition("|")
        try:
            due_at = datetime.fromisoformat(due)
        except ValueError:
            raise Problem(422, "Invalid request", "malformed cursor", errors=[{"field": "query.cursor", "message": "use next_cursor as given"}]) from None
        query = query.where(sa.or_(o.c.due_at > due_at, sa.and_(o.c.due_at == due_at, o.c.id > last_id)))
    rows = (await conn.execute(query)).all()
    page = rows[:limit]
    next_cursor = f"{page[-1].due_at.isoformat()}|{page[-1].id}" if len(rows) > limit else None
    return {"items": [obligation_item(row, now) for row in page], "next_cursor": next_cursor}


async def visible_obligation(conn: AsyncConnection, principal: Principal, obligation_id: str) -> Any:
    o = store.obligations
    row = (await conn.execute(sa.select(o).where(o.c.id == obligation_id, _obligation_visibility(principal)))).first()
    if row is None:
        raise Problem(404, "Not found", f"no obligation {obligation_id}")
    return row


async def generate_report(conn: AsyncConnection, obligation: Any, settings: Settings, now: datetime) -> bytes:
    if obligation.kind == obligations.UNIT_REMEDIATION_REPORT:
        return await _unit_report(conn, obligation, now)
    if obligation.kind == obligations.ANNUAL_REPORT:
        return await _annual_report(conn, obligation, now)
    return await _ranking_report(conn, obligation, settings, now)


async def _unit_report(conn: AsyncConnection, obligation: Any, now: datetime) -> bytes:
    t = store.tickets
    start, end = obligations.remediation_report_window(obligation.period)
    rows = (await conn.execute(sa.select(t).where(
        t.c.unit_code == obligation.scope, t.c.restricted.is_(False), t.c.opened_at >= start, t.c.opened_at < end,
    ).order_by(t.c.opened_at))).all()
    counts = await _rating_counts(conn, [r.id for r in rows])
    table = [
        (r.id, r.unit_code, r.category, r.severity, r.opened_at, r.due_at, r.status, "yes" if r.breached else "no",
         r.resolved_at, ("yes" if r.resolved_at <= r.due_at else "no") if r.resolved_at else "", counts.get(r.id, 0), r.measures or "")
        for r in rows
    ]
    about = [("Đơn vị / unit", obligation.scope), ("Kỳ / period", obligation.period),
             ("Phiếu mở từ / tickets opened from", start), ("đến trước / until before", end),
             ("Hạn nộp trước / due before", obligation.due_at), ("Lập lúc / generated", now),
             ("Căn cứ / basis", "Đà Nẵng 5697/2017 Art. 3.3")]
    return reports.workbook("Báo cáo khắc phục", about, reports.TICKET_HEADER, table)


async def _annual_report(conn: AsyncConnection, obligation: Any, now: datetime) -> bytes:
    t, v = store.tickets, store.verification_tasks
    year = int(obligation.period)
    tickets = (await conn.execute(sa.select(t).where(t.c.restricted.is_(False), t.c.period.like(f"{year}%")))).all()
    checks = (await conn.execute(sa.select(v.c.unit_code, v.c.verdict).where(v.c.period.like(f"{year}-%"), v.c.status == "done"))).all()
    per_unit: dict[str, list[int]] = {}
    for r in tickets:
        counts = per_unit.setdefault(r.unit_code, [0] * 9)
        counts[0] += 1
        if r.resolved_at is not None:
            counts[1 if r.resolved_at <= r.due_at else 2] += 1
        counts[3] += bool(r.breached)
        counts[4] += r.escalated_to is not None
        counts[5] += r.status in lifecycle.DEADLINE_STATUSES
        counts[8] += r.category == "apology_letter"
    for unit_code, verdict in checks:
        counts = per_unit.setdefault(unit_code, [0] * 9)
        counts[6] += 1
        counts[7] += verdict == "not_genuine"
    about = [("Năm / year", year), ("Hạn nộp trước / due before", obligation.due_at), ("Lập lúc / generated", now),
             ("Căn cứ / basis", "Đà Nẵng 5697/2017 Art. 3.6")]
    return reports.workbook("Báo cáo năm", about, reports.ANNUAL_HEADER,
                            [(unit, *counts) for unit, counts in sorted(per_unit.items())])


async def _ranking_report(conn: AsyncConnection, obligation: Any, settings: Settings, now: datetime) -> bytes:
    s, u = store.scores, store.units
    rows = (await conn.execute(sa.select(s, u.c.name).select_from(s.outerjoin(u, u.c.code == s.c.unit_code)).where(
        s.c.subject_kind == "unit", s.c.period == obligation.period, s.c.profile == settings.report_profile, s.c.score.is_not(None),
    ).order_by(s.c.score.desc(), s.c.unit_code))).all()
    ranks = obligations.competition_ranks([r.score for r in rows])
    about = [("Tháng / month", obligation.period), ("Bộ tiêu chí / profile", settings.report_profile),
             ("Hạn nộp trước / due before", obligation.due_at), ("Lập lúc / generated", now),
             ("Căn cứ / basis", "HCMC 104/2024 Art. 15")]
    return reports.workbook("Xếp hạng tháng", about, reports.RANKING_HEADER,
                            [(rank, r.unit_code, r.unit_name or r.name or "", r.score, r.band) for rank, r in zip(ranks, rows, strict=True)])
