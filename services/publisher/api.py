"""Publisher's HTTP API: the delivery log for operators."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Path, Query

from services.publisher import store
from services.publisher.deliveries import wake_deliveries
from shared.auth import Principal
from shared.problems import Problem
from shared.service import RuntimeDep, require

router = APIRouter(tags=["deliveries"])
Operator = Annotated[Principal, Depends(require("admin", "operator"))]


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def _delivery(row: Any) -> dict[str, Any]:
    return {
        "id": row.id, "target": row.target, "unit_code": row.unit_code, "period": row.period, "profile": row.profile,
        "version": row.version, "status": row.status, "attempts": row.attempts, "delivered_version": row.delivered_version,
        "next_attempt_at": _iso(row.next_attempt_at), "last_error": row.last_error, "updated_at": _iso(row.updated_at),
    }


@router.get("/v1/deliveries")
async def list_deliveries(
    runtime: RuntimeDep, _: Operator,
    target: Annotated[str | None, Query(max_length=32)] = None,
    status: Annotated[str | None, Query(max_length=16)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    cursor: Annotated[int | None, Query(ge=0)] = None,
) -> dict[str, Any]:
    table = store.deliveries
    query = sa.select(table).order_by(table.c.id).limit(limit + 1)
    if target:
        query = query.where(table.c.target == target)
    if status:
        query = query.where(table.c.status == status)
    if cursor is not None:
        query = query.where(table.c.id > cursor)
    async with runtime.engine.connect() as conn:
        rows = (await conn.execute(query)).all()
    items = [_delivery(row) for row in rows[:limit]]
    return {"items": items, "next_cursor": items[-1]["id"] if len(rows) > limit else None}


@router.post("/v1/deliveries/{delivery_id}/retry", status_code=202)
async def retry_delivery(runtime: RuntimeDep, _: Operator, delivery_id: Annotated[int, Path(ge=1)]) -> dict[str, Any]:
    table = store.deliveries
    now = datetime.now(timezone.utc)
    async with runtime.transaction() as conn:
        result = await conn.execute(
            table.update().where(table.c.id == delivery_id, table.c.status != "delivered")
            .values(status="pending", attempts=0, next_attempt_at=now, updated_at=now)
        )
        row = (await conn.execute(sa.select(table).where(table.c.id == delivery_id))).first()
    if row is None:
        raise Problem(404, "Not found", f"no delivery {delivery_id}")
    if not result.rowcount:
        raise Problem(409, "Already delivered", f"delivery {delivery_id} holds version {row.version}, already delivered")
    wake_deliveries(runtime, [])
    return _delivery(row)
