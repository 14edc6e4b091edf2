"""Intake's HTTP API: validate, authorise, and hand over to the write flows in handlers.py."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Header, Path, Query, Request
from fastapi.responses import JSONResponse
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from services.intake import handlers, store
from services.intake.schemas import UNIT_CODE, DossierAccepted, DossierIn, RatingAccepted, RatingIn, UnitIn, UnitOut
from shared.auth import Principal
from shared.problems import Problem
from shared.service import Runtime, RuntimeDep, require

router = APIRouter()

Admin = Annotated[Principal, Depends(require("admin"))]
Submitter = Annotated[Principal, Depends(require("kiosk", "portal", "admin"))]
DossierSource = Annotated[Principal, Depends(require("portal", "admin"))]
RatingReader = Annotated[Principal, Depends(require("admin", "inspector", "home_affairs", "unit_head"))]
IdempotencyKey = Annotated[str | None, Header(alias="Idempotency-Key", max_length=255)]
COMMENT_READERS = {"admin", "inspector", "home_affairs", "unit_head"}


async def _idempotent(
    runtime: Runtime,
    request: Request,
    principal: Principal,
    key: str | None,
    status_code: int,
    write: Callable[[AsyncConnection], Awaitable[dict[str, Any]]],
) -> JSONResponse:
    """Run a write once per Idempotency-Key: a repeat returns the stored answer, a changed body is 409."""
    fingerprint = handlers.request_fingerprint(await request.body()) if key else ""
    traceparent = request.headers.get("traceparent")
    request.state.traceparent = traceparent
    for attempt in (1, 2):
        try:
            async with runtime.transaction() as conn:
                if key:
                    stored = await handlers.stored_response(conn, principal, key, fingerprint)
                    if stored is not None:
                        return JSONResponse(stored[1], status_code=stored[0])
                body = await write(conn)
                if key:
                    await handlers.remember_response(conn, principal, key, fingerprint, status_code, body)
            return JSONResponse(body, status_code=status_code)
        except IntegrityError:
            # A concurrent request won the race; the second pass sees its result (or its 409).
            if attempt == 2:
                raise Problem(409, "Conflicting concurrent request", "retry the request") from None
    raise AssertionError("unreachable")


@router.put("/v1/units/{unit_code}", response_model=UnitOut, tags=["registry"])
async def put_unit(
    unit: UnitIn, runtime: RuntimeDep, _: Admin, request: Request,
    unit_code: Annotated[str, Path(pattern=UNIT_CODE)],
) -> dict[str, Any]:
    if unit.code is not None and unit.code != unit_code:
        raise Problem(422, "Invalid request", "code differs from the path", errors=[{"field": "body.code", "message": "must equal the unit code in the path"}])
    async with runtime.transaction() as conn:
        return await handlers.upsert_unit(conn, runtime.settings, unit_code, unit, request.headers.get("traceparent"))


@router.get("/v1/units", tags=["registry"])
async def list_units(
    runtime: RuntimeDep,
    level: str | None = None,
    parent: Annotated[str | None, Query(pattern=UNIT_CODE)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[str | None, Query(max_length=64)] = None,
) -> dict[str, Any]:
    query = sa.select(store.units).order_by(store.units.c.code).limit(limit + 1)
    if level:
        query = query.where(store.units.c.level == level)
    if parent:
        query = query.where(store.units.c.parent_code == parent)
    if cursor:
        query = query.where(store.units.c.code > cursor)
    async with runtime.engine.connect() as conn:
        rows = (await conn.execute(query)).all()
    items = [UnitOut.model_validate(row._mapping).model_dump() for row in rows[:limit]]
    return {"items": items, "next_cursor": items[-1]["code"] if len(rows) > limit else None}


@router.get("/v1/units/{unit_code}", response_model=UnitOut, tags=["registry"])
async def get_unit(runtime: RuntimeDep, unit_code: Annotated[str, Path(pattern=UNIT_CODE)]) -> Any:
    async with runtime.engine.connect() as conn:
        row = (await conn.execute(sa.select(store.units).where(store.units.c.code == unit_code))).first()
    if row is None:
        raise Problem(404, "Not found", f"no unit {unit_code}")
    return row._mapping


@router.post("/v1/dossiers", status_code=202, response_model=DossierAccepted, tags=["dossiers"])
async def post_dossier(
    dossier: DossierIn, runtime: RuntimeDep, principal: DossierSource, request: Request, idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    async def write(conn: AsyncConnection) -> dict[str, Any]:
        revision, released = await handlers.record_dossier(conn, runtime.settings, dossier, request.state.traceparent)
        return {"dossier_code": dossier.dossier_code, "revision": revision, "released_ratings": released}

    return await _idempotent(runtime, request, principal, idempotency_key, 202, write)


@router.post("/v1/ratings", status_code=202, response_model=RatingAccepted, tags=["ratings"])
async def post_rating(
    rating: RatingIn, runtime: RuntimeDep, principal: Submitter, request: Request, idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    hash_key = runtime.extras["respondent_hash_key"]

    async def write(conn: AsyncConnection) -> dict[str, Any]:
        rating_id, status = await handlers.record_rating(
            conn, runtime.settings, principal, rating, hash_key, request.state.traceparent
        )
        return {"rating_id": rating_id, "status": status}

    return await _idempotent(runtime, request, principal, idempotency_key, 202, write)


@router.get("/v1/ratings/{rating_id}", tags=["ratings"])
async def get_rating(rating_id: Annotated[str, Path(max_length=36)], runtime: RuntimeDep, principal: RatingReader) -> dict[str, Any]:
    async with runtime.engine.connect() as conn:
        row = (await conn.execute(sa.select(store.ratings).where(store.ratings.c.rating_id == rating_id))).first()
        if row is None:
            raise Problem(404, "Not found", f"no rating {rating_id}")
        unit_code = await conn.scalar(sa.select(store.dossiers.c.unit_code).where(store.dossiers.c.dossier_code == row.dossier_code))
        if unit_code is not None and not await handlers.unit_within_scope(conn, unit_code, principal.unit_scope):
            raise Problem(403, "Outside your unit", f"rating {rating_id} belongs to a unit outside your scope")
    body = {k: v for k, v in row._mapping.items() if k not in {"received_from"}}
    body["unit_code"] = unit_code
    if principal.role not in COMMENT_READERS:
        body.pop("comment", None)
    return body
