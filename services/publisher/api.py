"""Publisher's operator API: the delivery log per target, retries, and official snapshot versions."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Annotated, Any, Literal

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Path, Query
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.exc import IntegrityError

from services.publisher import store
from services.publisher.deliveries import wake_deliveries
from services.publisher.domain.delivery import idempotency_key
from services.publisher.domain.official import has_closed, is_official_period
from services.publisher.handlers import PublicationPolicy
from services.publisher.live import wake_live_feed
from services.publisher.public import PROFILE_NAME
from services.publisher.snapshots import freeze
from shared.auth import Principal
from shared.db import BIGINT_MAX
from shared.periods import PERIOD_PATTERN
from shared.problems import Problem
from shared.service import RuntimeDep, require

router = APIRouter(tags=["operations: deliveries and snapshots"])
Operator = Annotated[Principal, Depends(require("admin", "operator"))]
POLICY = "publication_policy"


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def _delivery(row: Any) -> dict[str, Any]:
    return {
        "id": row.id, "target": row.target, "unit_code": row.unit_code, "period": row.period, "profile": row.profile,
        "edition": row.edition, "version": row.version, "status": row.status, "attempts": row.attempts,
        "delivered_version": row.delivered_version, "delivered_at": _iso(row.delivered_at),
        "next_attempt_at": _iso(row.next_attempt_at), "last_error": row.last_error, "updated_at": _iso(row.updated_at),
        "idempotency_key": idempotency_key(row.unit_code, row.period, row.profile, row.edition, row.version),
    }


@router.get("/v1/deliveries")
async def list_deliveries(
    runtime: RuntimeDep, _: Operator,
    target: Annotated[str | None, Query(max_length=32)] = None,
    status: Annotated[Literal["pending", "retry", "delivered", "dead"] | None, Query()] = None,
    unit_code: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    cursor: Annotated[int | None, Query(ge=0, le=BIGINT_MAX)] = None,
) -> dict[str, Any]:
    table = store.deliveries
    query = sa.select(table).order_by(table.c.id).limit(limit + 1)
    if target:
        query = query.where(table.c.target == target)
    if status:
        query = query.where(table.c.status == status)
    if unit_code:
        query = query.where(table.c.unit_code == unit_code)
    if cursor is not None:
        query = query.where(table.c.id > cursor)
    async with runtime.engine.connect() as conn:
        rows = (await conn.execute(query)).all()
    items = [_delivery(row) for row in rows[:limit]]
    return {"items": items, "next_cursor": items[-1]["id"] if len(rows) > limit else None}


@router.get("/v1/deliveries/{delivery_id}")
async def get_delivery(runtime: RuntimeDep, _: Operator, delivery_id: Annotated[int, Path(ge=1, le=BIGINT_MAX)]) -> dict[str, Any]:
    """One delivery with every attempt made for it (newest first)."""
    attempts = store.delivery_attempts
    async with runtime.engine.connect() as conn:
        row = (await conn.execute(sa.select(store.deliveries).where(store.deliveries.c.id == delivery_id))).first()
        if row is None:
            raise Problem(404, "Not found", f"no delivery {delivery_id}")
        history = (await conn.execute(
            sa.select(attempts).where(attempts.c.delivery_id == delivery_id).order_by(attempts.c.id.desc()).limit(200)
        )).all()
    return {
        **_delivery(row),
        "attempt_log": [
            {"at": _iso(a.at), "version": a.version, "status_code": a.status_code, "outcome": a.outcome,
             "error": a.error, "duration_ms": round(a.duration_ms, 1)}
            for a in history
        ],
    }


@router.post("/v1/deliveries/{delivery_id}/retry", status_code=202)
async def retry_delivery(runtime: RuntimeDep, _: Operator, delivery_id: Annotated[int, Path(ge=1, le=BIGINT_MAX)]) -> dict[str, Any]:
    """Send a dead (or backing-off) delivery again now, e.g. after the target fixed what it rejected."""
    table = store.deliveries
    now = datetime.now(timezone.utc)
    async with runtime.transaction() as conn:
        result = await conn.execute(
            table.update().where(table.c.id == delivery_id, table.c.status != store.DELIVERED)
            .values(status=store.PENDING, attempts=0, next_attempt_at=now, updated_at=now)
        )
        row = (await conn.execute(sa.select(table).where(table.c.id == delivery_id))).first()
    if row is None:
        raise Problem(404, "Not found", f"no delivery {delivery_id}")
    if not result.rowcount:
        raise Problem(409, "Already delivered", f"delivery {delivery_id} holds version {row.version}, already delivered")
    wake_deliveries(runtime)
    return _delivery(row)


class SnapshotRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    period: str = Field(pattern=PERIOD_PATTERN.pattern, examples=["2026-Q3"])
    profile: str = Field(pattern=PROFILE_NAME, examples=["hcmc-2024"])
    reason: str = Field(min_length=3, max_length=255, examples=["late corrections of dossiers in September"])


@router.post("/v1/snapshots", status_code=201)
async def publish_snapshot(runtime: RuntimeDep, _: Operator, request: SnapshotRequest) -> dict[str, Any]:
    """Freeze the current figures of a closed quarter or year as a new official version (earlier ones stay)."""
    if not is_official_period(request.period):
        raise Problem(422, "Invalid request", "official results are per quarter or year",
                      errors=[{"field": "body.period", "message": "a quarter (YYYY-Qn) or a year (YYYY)"}])
    if not has_closed(request.period, datetime.now(timezone.utc)):
        raise Problem(409, "Period still open", f"{request.period} has not closed yet (Asia/Ho_Chi_Minh)")
    policy: PublicationPolicy = runtime.extras[POLICY]
    try:
        async with runtime.transaction() as conn:
            snapshot = await freeze(conn, policy, request.period, request.profile, request.reason)
    except IntegrityError as exc:
        raise Problem(409, "Conflict", "another snapshot of this period was being published; try again") from exc
    if snapshot is None:
        raise Problem(404, "Not found", f"no results for {request.period} ({request.profile})")
    wake_deliveries(runtime)
    wake_live_feed(runtime)
    return snapshot
