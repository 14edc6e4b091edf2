"""Intake's HTTP API: validate, authorise, rate-limit, and hand over to the write flows in handlers.py."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any, Literal

import sqlalchemy as sa
import orjson
from fastapi import APIRouter, Depends, Header, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from services.intake import handlers, store
from services.intake.domain.paper import RowError, read_forms
from services.intake.handlers import Intake, ItemError
from services.intake.writer import Post
from services.intake.schemas import (
    OFFICER_ID, RATING_ID, UNIT_CODE, AssessmentIn, BatchIn, BatchOut, CorrectionIn, DossierAccepted, DossierIn,
    OfficerIn, OfficerOut, RatingAccepted, RatingBatchIn, RatingIn, UnitIn, UnitOut,
)
from shared.auth import Principal
from shared.problems import Problem
from shared.ratelimit import RateLimiter
from shared.service import Runtime, RuntimeDep, require

router = APIRouter()
# The two routes a whole province posts to, registered before every other route: FastAPI tries routes in
# order, and matching a request against the ten routes before them cost ~40 µs of each post.
submissions = APIRouter()

READER_ROLES = ("admin", "inspector", "home_affairs", "unit_head")
Admin = Annotated[Principal, Depends(require("admin"))]
Submitter = Annotated[Principal, Depends(require("kiosk", "portal", "admin"))]
DossierSource = Annotated[Principal, Depends(require("portal", "admin"))]
AssessmentSource = Annotated[Principal, Depends(require("admin", "home_affairs", "portal"))]
RatingReader = Annotated[Principal, Depends(require(*READER_ROLES))]
IdempotencyKey = Annotated[str | None, Header(alias="Idempotency-Key", min_length=1, max_length=255)]
UnitCode = Annotated[str, Path(pattern=UNIT_CODE)]
RatingId = Annotated[str, Path(pattern=RATING_ID, description="a rating id (UUID)")]
# Comments may identify the citizen: only the consolidating and inspecting roles read them.
COMMENT_READERS = {"admin", "inspector", "home_affairs"}
RATING_STATUSES = Literal["accepted", "flagged", "pending_dossier", "unmatched", "rejected_before_completion", "superseded"]


class JsonAnswer(JSONResponse):
    """A JSON answer serialised by orjson: a batch's answer of 1,000 items in ~0.1 ms instead of ~1 ms."""

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


# The request body of POST /v1/ratings/batch as the document shows it; the route reads the body itself (below).
RATING_BATCH_BODY = {"requestBody": {"required": True, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/BatchIn"}}}}}


def _is_json(content_type: str | None) -> bool:
    """What FastAPI parses as JSON: no Content-Type at all, application/json, or application/*+json."""
    if content_type is None:
        return True
    media = content_type.partition(";")[0].strip().lower()
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))


async def read_rating_batch(request: Request) -> list[RatingIn | ItemError]:
    """The items of a ratings batch. The whole body is validated at once from its JSON bytes (pydantic's parser,
    no intermediate dicts); only when that fails is each item validated on its own, so that a bad item gets
    its own error and never rejects the others. A body that is not `{"items": [...]}` is 422 naming the
    field, as FastAPI answers for the other routes."""
    body = await request.body()
    if not body:
        raise RequestValidationError([{"type": "missing", "loc": ("body",), "msg": "Field required", "input": None}])
    if not _is_json(request.headers.get("content-type")):
        raise RequestValidationError([{"type": "model_attributes_type", "loc": ("body",),
                                       "msg": "Input should be a valid dictionary or object to extract fields from", "input": None}])
    try:
        return list(RatingBatchIn.model_validate_json(body).items)
    except ValidationError:
        pass
    try:
        batch = BatchIn.model_validate_json(body)
    except ValidationError as exc:
        raise RequestValidationError([{**error, "loc": ("body", *error["loc"])} for error in exc.errors()]) from None
    return _validated(batch.items)


def _validated(raw_items: list[Any]) -> list[RatingIn | ItemError]:
    parsed: list[RatingIn | ItemError] = []
    for raw in raw_items:
        if isinstance(raw, ItemError):
            parsed.append(raw)
            continue
        try:
            parsed.append(RatingIn.model_validate(raw))
        except ValidationError as exc:
            parsed.append(_item_validation_error(exc))
    return parsed


def _intake(runtime: Runtime) -> Intake:
    return runtime.extras["intake"]


def _limiter(runtime: Runtime) -> RateLimiter:
    return runtime.extras["limiter"]


def _rate_limit(runtime: Runtime, principal: Principal, cost: int = 1) -> None:
    settings = runtime.settings
    limit = {"kiosk": settings.intake_rate_limit_kiosk, "portal": settings.intake_rate_limit_portal}.get(
        principal.role, settings.intake_rate_limit_default
    )
    _limiter(runtime).check(limit, principal.subject, cost=cost)


async def public_rate_limit(request: Request, runtime: RuntimeDep) -> None:
    """Unauthenticated reads are limited per client address."""
    client = request.client.host if request.client else "unknown"
    _limiter(runtime).check(runtime.settings.intake_rate_limit_public, "public", client)


PublicRead = Depends(public_rate_limit)


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
    for attempt in (1, 2, 3):
        try:
            async with runtime.transaction() as conn:
                if key:
                    stored = await handlers.stored_response(conn, principal, key, fingerprint)
                    if stored is not None:
                        return JsonAnswer(stored[1], status_code=stored[0])
                body = await write(conn)
                if key:
                    await handlers.remember_response(conn, principal, key, fingerprint, status_code, body)
            return JsonAnswer(body, status_code=status_code)
        except IntegrityError:
            # A concurrent request won the race for a slot or key; the next pass sees its result (or its 409).
            if attempt == 3:
                raise Problem(409, "Conflicting concurrent request", "retry the request") from None
    raise AssertionError("unreachable")


def _item_validation_error(exc: ValidationError) -> ItemError:
    errors = [{"field": ".".join(str(p) for p in err["loc"]) or "item", "message": err["msg"], "type": err["type"]} for err in exc.errors()]
    fields = ", ".join(e["field"] for e in errors[:5])
    return ItemError(422, "Invalid item", f"invalid field(s): {fields}", extra={"errors": errors})


def _batch_answer(outcomes: list[Any]) -> dict[str, Any]:
    items = []
    for index, outcome in enumerate(outcomes):
        if isinstance(outcome, ItemError):
            items.append({"index": index, "status": "error", "error": outcome.as_dict()})
        elif isinstance(outcome, handlers.RatingOutcome):
            items.append({"index": index, "status": outcome.status, "rating_id": outcome.rating_id})
        else:
            items.append({"index": index, "status": "accepted", "dossier_code": outcome.dossier_code,
                          "revision": outcome.revision, "released_ratings": outcome.released_ratings})
    failed = sum(1 for item in items if item["status"] == "error")
    return {"items": items, "accepted": len(items) - failed, "failed": failed}


async def _ratings_batch(runtime: Runtime, principal: Principal, request: Request, parsed: list[RatingIn | ItemError], key: str | None) -> JSONResponse:
    valid = [item for item in parsed if isinstance(item, RatingIn)]
    _rate_limit(runtime, principal, cost=max(1, len(valid)))
    traceparent = request.headers.get("traceparent")

    async def write(conn: AsyncConnection) -> dict[str, Any]:
        outcomes = iter(await handlers.record_ratings(conn, _intake(runtime), principal, valid, traceparent))
        return _batch_answer([item if isinstance(item, ItemError) else next(outcomes) for item in parsed])

    return await _idempotent(runtime, request, principal, key, 200, write)


# --- registry ---------------------------------------------------------------------------------------


@router.put("/v1/units/{unit_code}", response_model=UnitOut, tags=["registry"])
async def put_unit(unit: UnitIn, runtime: RuntimeDep, principal: Admin, request: Request, unit_code: UnitCode) -> dict[str, Any]:
    """Create or replace a unit (admin). A retired unit keeps its code and history and names its successor."""
    if unit.code is not None and unit.code != unit_code:
        raise Problem(422, "Invalid request", "code differs from the path", errors=[{"field": "body.code", "message": "must equal the unit code in the path"}])
    if unit.parent_code == unit_code or unit.successor_code == unit_code:
        raise Problem(422, "Invalid request", "a unit cannot be its own parent or successor",
                      errors=[{"field": "body.parent_code" if unit.parent_code == unit_code else "body.successor_code", "message": "names the unit itself"}])
    _rate_limit(runtime, principal)
    async with runtime.transaction() as conn:
        row = await handlers.upsert_unit(conn, runtime.settings, unit_code, unit, request.headers.get("traceparent"))
    _intake(runtime).registry.note_unit(unit_code, unit.parent_code)
    return row


@router.get("/v1/units", tags=["registry"], dependencies=[PublicRead])
async def list_units(
    runtime: RuntimeDep,
    level: Annotated[Literal["province", "department", "agency", "ward", "commune", "special_zone", "center"] | None, Query()] = None,
    parent: Annotated[str | None, Query(pattern=UNIT_CODE)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[str | None, Query(pattern=UNIT_CODE)] = None,
) -> dict[str, Any]:
    """The registry, cursor-paginated by unit code."""
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


@router.get("/v1/units/{unit_code}", response_model=UnitOut, tags=["registry"], dependencies=[PublicRead])
async def get_unit(runtime: RuntimeDep, unit_code: UnitCode) -> Any:
    async with runtime.engine.connect() as conn:
        row = (await conn.execute(sa.select(store.units).where(store.units.c.code == unit_code))).first()
    if row is None:
        raise Problem(404, "Not found", f"no unit {unit_code}")
    return row._mapping


@router.put("/v1/units/{unit_code}/officers/{officer_id}", response_model=OfficerOut, tags=["registry"])
async def put_officer(
    officer: OfficerIn, runtime: RuntimeDep, principal: Admin, request: Request, unit_code: UnitCode,
    officer_id: Annotated[str, Path(pattern=OFFICER_ID)],
) -> dict[str, Any]:
    """Create or replace an officer (admin). Devices and phone feed the self-rating check; the phone is kept
    as a keyed hash and neither is ever published."""
    _rate_limit(runtime, principal)
    intake = _intake(runtime)
    async with runtime.transaction() as conn:
        answer = await handlers.upsert_officer(conn, intake, unit_code, officer_id, officer, request.headers.get("traceparent"))
    intake.registry.note_officer(unit_code, officer_id, officer.device_ids, intake.hash_identity(officer.phone), officer.active)
    return answer


@router.get("/v1/units/{unit_code}/officers", tags=["registry"])
async def list_officers(runtime: RuntimeDep, principal: RatingReader, unit_code: UnitCode) -> dict[str, Any]:
    """A unit's officers with their registered devices (never their phone)."""
    if not _intake(runtime).registry.within_scope(unit_code, principal.unit_scope):
        raise Problem(403, "Outside your unit", f"unit {unit_code} is outside your scope")
    officers, devices = store.officers, store.officer_devices
    async with runtime.engine.connect() as conn:
        rows = (await conn.execute(sa.select(officers).where(officers.c.unit_code == unit_code).order_by(officers.c.officer_id))).all()
        owned = (await conn.execute(sa.select(devices).where(devices.c.unit_code == unit_code))).all()
    by_officer: dict[str, list[str]] = {}
    for device in owned:
        by_officer.setdefault(device.officer_id, []).append(device.device_id)
    items = [
        {"unit_code": row.unit_code, "officer_id": row.officer_id, "name": row.name, "device_ids": sorted(by_officer.get(row.officer_id, [])),
         "has_phone": row.phone_hash is not None, "active": row.active}
        for row in rows
    ]
    return {"items": items, "next_cursor": None}


@router.post("/v1/units/{unit_code}/assessments", status_code=202, tags=["assessments"])
async def post_assessment(
    assessment: AssessmentIn, runtime: RuntimeDep, principal: AssessmentSource, request: Request, unit_code: UnitCode,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    """Period inputs that do not come from citizens (HCMC 104/2024 D and E, QĐ 766 feedback counts, Decree 61
    unit indices). Fields left out keep their earlier value; the answer and the event carry the merged whole."""
    if not _intake(runtime).registry.within_scope(unit_code, principal.unit_scope):
        raise Problem(403, "Outside your unit", f"unit {unit_code} is outside your scope")
    _rate_limit(runtime, principal)

    async def write(conn: AsyncConnection) -> dict[str, Any]:
        return await handlers.record_assessment(conn, _intake(runtime), unit_code, assessment, request.headers.get("traceparent"))

    return await _idempotent(runtime, request, principal, idempotency_key, 202, write)


# --- dossiers ---------------------------------------------------------------------------------------


@router.post("/v1/dossiers", status_code=202, response_model=DossierAccepted, tags=["dossiers"])
async def post_dossier(
    dossier: DossierIn, runtime: RuntimeDep, principal: DossierSource, request: Request, idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    """A completed dossier; upsert by dossier code (a correction bumps `revision` and is re-scored)."""
    _rate_limit(runtime, principal)

    async def write(conn: AsyncConnection) -> dict[str, Any]:
        [outcome] = await handlers.record_dossiers(conn, _intake(runtime), principal, [dossier], request.headers.get("traceparent"))
        if isinstance(outcome, ItemError):
            raise outcome.as_problem()
        return {"dossier_code": outcome.dossier_code, "revision": outcome.revision, "released_ratings": outcome.released_ratings}

    return await _idempotent(runtime, request, principal, idempotency_key, 202, write)


@router.post("/v1/dossiers/batch", response_model=BatchOut, tags=["dossiers"])
async def post_dossiers_batch(
    batch: BatchIn, runtime: RuntimeDep, principal: DossierSource, request: Request, idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    """Up to 1,000 dossiers `{"items": [...]}`; one result per item (`index`, `status`, `error`): one bad item
    never rejects the others."""
    parsed: list[DossierIn | ItemError] = []
    for raw in batch.items:
        try:
            parsed.append(DossierIn.model_validate(raw))
        except ValidationError as exc:
            parsed.append(_item_validation_error(exc))
    valid = [item for item in parsed if isinstance(item, DossierIn)]
    _rate_limit(runtime, principal, cost=max(1, len(valid)))

    async def write(conn: AsyncConnection) -> dict[str, Any]:
        outcomes = iter(await handlers.record_dossiers(conn, _intake(runtime), principal, valid, request.headers.get("traceparent")))
        return _batch_answer([item if isinstance(item, ItemError) else next(outcomes) for item in parsed])

    return await _idempotent(runtime, request, principal, idempotency_key, 200, write)


# --- ratings ----------------------------------------------------------------------------------------


@submissions.post("/v1/ratings", status_code=202, response_model=RatingAccepted, tags=["ratings"])
async def post_rating(
    rating: RatingIn, principal: Submitter, request: Request, idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    """A citizen's rating; 202 only after it and its event are committed. `status`: accepted | pending_dossier | flagged."""
    runtime: Runtime = request.app.state.runtime  # not a dependency: FastAPI's resolution of one costs more (notes)
    _rate_limit(runtime, principal)
    fingerprint = handlers.request_fingerprint(await request.body()) if idempotency_key else ""
    post = Post(principal, rating, idempotency_key, fingerprint, request.headers.get("traceparent"))
    status_code, body = await runtime.extras["rating_writer"].submit(post)  # group commit: see writer.py
    return JsonAnswer(body, status_code=status_code)


@submissions.post("/v1/ratings/batch", response_model=BatchOut, tags=["ratings"], openapi_extra=RATING_BATCH_BODY)
async def post_ratings_batch(principal: Submitter, request: Request, idempotency_key: IdempotencyKey = None) -> JSONResponse:
    """Up to 1,000 ratings `{"items": [...]}`; one result per item (`index`, `status`, `rating_id` or `error`)."""
    runtime: Runtime = request.app.state.runtime  # not a dependency: FastAPI's resolution of one costs more (notes)
    return await _ratings_batch(runtime, principal, request, await read_rating_batch(request), idempotency_key)


@router.post(
    "/v1/imports/paper", response_model=BatchOut, tags=["ratings"],
    openapi_extra={"requestBody": {"required": True, "content": {"text/csv": {"schema": {"type": "string"}}}}},
)
async def post_paper_import(runtime: RuntimeDep, principal: DossierSource, request: Request, idempotency_key: IdempotencyKey = None) -> JSONResponse:
    """Paper survey forms as UTF-8 CSV (Vietnamese or English headers: Mã hồ sơ, Ngày khảo sát, Mức độ hài lòng,
    Thái độ, the five SIPAS factors, Lý do, Ý kiến khác, Số điện thoại, Số CCCD). One result per row;
    `index` counts data rows from 0 and `line` is the line of the file."""
    raw = await request.body()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Problem(422, "Invalid request", f"the file is not UTF-8 (byte {exc.start})", errors=[{"field": "body", "message": "not UTF-8"}]) from None
    try:
        forms = list(read_forms(text))
    except RowError as exc:
        raise Problem(422, "Invalid request", str(exc), errors=[{"field": f"body.{exc.field}", "message": str(exc)}]) from None
    if not forms:
        raise Problem(422, "Invalid request", "the file holds no forms", errors=[{"field": "body", "message": "no rows"}])
    items = [
        form if isinstance(form, dict) else ItemError(422, "Invalid row", str(form), form.field, extra={"line": line})
        for line, form in forms
    ]
    return await _ratings_batch(runtime, principal, request, _validated(items), idempotency_key)


@router.post("/v1/ratings/{rating_id}/corrections", status_code=202, response_model=RatingAccepted, tags=["ratings"])
async def post_correction(
    correction: CorrectionIn, runtime: RuntimeDep, principal: Submitter, request: Request, rating_id: RatingId,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    """Correct a rating: a NEW rating whose event names the corrected one in `supersedes`; the corrected one
    is never edited in place. Only the newest rating of a chain can be corrected (409 names it)."""
    _rate_limit(runtime, principal)

    async def write(conn: AsyncConnection) -> dict[str, Any]:
        outcome = await handlers.correct_rating(conn, _intake(runtime), principal, rating_id, correction, request.headers.get("traceparent"))
        return {"rating_id": outcome.rating_id, "status": outcome.status, "supersedes": rating_id}

    return await _idempotent(runtime, request, principal, idempotency_key, 202, write)


def _rating_view(row: Any, principal: Principal) -> dict[str, Any]:
    body = {k: v for k, v in row._mapping.items() if k not in {"received_from", "respondent_hash"}}
    if principal.role not in COMMENT_READERS:
        body.pop("comment", None)
    for name in ("submitted_at", "created_at", "verified_at"):
        if body.get(name) is not None:
            body[name] = body[name].isoformat()
    return body


@router.get("/v1/ratings/counts", tags=["ratings"])
async def rating_counts(
    runtime: RuntimeDep, principal: RatingReader, unit_code: Annotated[str | None, Query(pattern=UNIT_CODE)] = None,
) -> dict[str, Any]:
    """How many ratings intake holds, by status (for a unit, or all within your scope)."""
    scope_unit = unit_code or principal.unit_scope
    if unit_code and not _intake(runtime).registry.within_scope(unit_code, principal.unit_scope):
        raise Problem(403, "Outside your unit", f"unit {unit_code} is outside your scope")
    ratings = store.ratings
    query = sa.select(ratings.c.status, sa.func.count()).group_by(ratings.c.status)
    if scope_unit:
        query = query.where(ratings.c.unit_code == scope_unit)
    async with runtime.engine.connect() as conn:
        counts = {status: count for status, count in (await conn.execute(query)).all()}
    return {"unit_code": scope_unit, "by_status": counts, "total": sum(counts.values())}


@router.get("/v1/ratings", tags=["ratings"])
async def list_ratings(
    runtime: RuntimeDep, principal: RatingReader,
    status: Annotated[RATING_STATUSES | None, Query()] = None,
    unit_code: Annotated[str | None, Query(pattern=UNIT_CODE)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    cursor: Annotated[str | None, Query(pattern=RATING_ID)] = None,
) -> dict[str, Any]:
    """Ratings for operators, e.g. `?status=unmatched` or `?status=flagged&unit_code=79.SNV`; by rating id."""
    unit = unit_code or principal.unit_scope
    if unit_code and not _intake(runtime).registry.within_scope(unit_code, principal.unit_scope):
        raise Problem(403, "Outside your unit", f"unit {unit_code} is outside your scope")
    ratings = store.ratings
    query = sa.select(ratings).order_by(ratings.c.rating_id).limit(limit + 1)
    if status:
        query = query.where(ratings.c.status == status)
    if unit:
        query = query.where(ratings.c.unit_code == unit)
    if cursor:
        query = query.where(ratings.c.rating_id > cursor)
    async with runtime.engine.connect() as conn:
        rows = (await conn.execute(query)).all()
    items = [_rating_view(row, principal) for row in rows[:limit]]
    return {"items": items, "next_cursor": items[-1]["rating_id"] if len(rows) > limit else None}


@router.get("/v1/ratings/{rating_id}", tags=["ratings"])
async def get_rating(rating_id: RatingId, runtime: RuntimeDep, principal: RatingReader) -> dict[str, Any]:
    """One rating with its status, flags, verdict (from workflow's phúc tra) and correction chain."""
    async with runtime.engine.connect() as conn:
        row = (await conn.execute(sa.select(store.ratings).where(store.ratings.c.rating_id == rating_id))).first()
    if row is None:
        raise Problem(404, "Not found", f"no rating {rating_id}")
    if row.unit_code is not None and not _intake(runtime).registry.within_scope(row.unit_code, principal.unit_scope):
        raise Problem(403, "Outside your unit", f"rating {rating_id} belongs to a unit outside your scope")
    if row.unit_code is None and principal.unit_scope is not None:
        raise Problem(403, "Outside your unit", f"rating {rating_id} has no known unit yet")
    return _rating_view(row, principal)
