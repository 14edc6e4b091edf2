"""Scoring's HTTP API: rankings (JSON, CSV, XLSX, live SSE), scorecards, trends, officers, profiles."""

from __future__ import annotations

import gzip
from datetime import datetime, timezone
from typing import Annotated, Any, Literal, get_args

import orjson
from fastapi import APIRouter, Depends, Header, Path, Query, Request, Response
from sse_starlette.sse import EventSourceResponse

from services.scoring import feed, reads, store
from services.scoring.rankings import scope_of
from services.scoring.domain.profiles import DEFAULT_PROFILE, ProfileBook
from shared.auth import Principal
from shared.events import UnitLevel
from shared.db import BIGINT_MAX
from shared.periods import PERIOD_PATTERN, Period, parse_period, periods_containing
from shared.problems import Problem
from shared.ratelimit import RateLimiter
from shared.service import RuntimeDep, require

router = APIRouter(tags=["scores"])
UNIT_CODE = r"^[A-Za-z0-9._-]{1,64}$"
MAX_TREND_POINTS = 240
OFFICER_READERS = ("unit_head", "admin", "home_affairs", "inspector")
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"

PeriodQuery = Annotated[str, Query(pattern=PERIOD_PATTERN.pattern, examples=["2026-Q4"], description="2026-11, 2026-Q4, 2026-H2 or 2026")]
ProfileQuery = Annotated[str, Query(max_length=32, description="see GET /v1/profiles")]
UnitCode = Annotated[str, Path(pattern=UNIT_CODE)]


def _json(body: Any) -> Response:
    return Response(orjson.dumps(body), media_type="application/json")


def _book(runtime: RuntimeDep) -> ProfileBook:
    return runtime.extras["book"]


BookDep = Annotated[ProfileBook, Depends(_book)]


async def public_read(request: Request, runtime: RuntimeDep) -> None:
    """Public endpoints need no token and are rate limited per client address."""
    limiter: RateLimiter = runtime.extras["rate_limiter"]
    client = request.client.host if request.client else "unknown"
    limiter.check(runtime.settings.scoring_public_rate_limit, "scoring-public", client)


def _checked_profile(book: ProfileBook, profile: str) -> str:
    if profile not in book.names:
        raise Problem(422, "Invalid request", f"unknown profile {profile!r}", errors=[{"field": "query.profile", "message": f"one of {', '.join(book.names)}"}])
    return profile


@router.get("/v1/rankings", dependencies=[Depends(public_read)])
async def rankings(
    runtime: RuntimeDep, book: BookDep, period: PeriodQuery, profile: ProfileQuery = DEFAULT_PROFILE,
    level: Annotated[UnitLevel | None, Query()] = None,
    parent: Annotated[str | None, Query(pattern=UNIT_CODE)] = None,
    format: Annotated[Literal["json", "csv", "xlsx"], Query()] = "json",  # noqa: A002 - the contract's name
    cache_control: Annotated[str | None, Header(include_in_schema=False)] = None,
    accept_encoding: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> Response:
    """Units ranked by score (ties share a rank); provisional figures and insufficient data listed apart.

    Rankings of every unit or of one level are rendered when their figures change (see `generated_at`) and
    served as rendered; `Cache-Control: no-cache` asks for one computed afresh. With a parent, or as CSV or
    XLSX, the answer is computed and reused until a figure changes."""
    _checked_profile(book, profile)
    fresh = "no-cache" in (cache_control or "").lower()
    if format == "json" and parent is None and not fresh:
        async with runtime.engine.connect() as conn:
            stored = await store.stored_ranking(conn, profile, period, scope_of(level))
        if stored is not None:  # rendered by the refresher when the figures last changed
            if "gzip" in (accept_encoding or "").lower():
                return Response(stored, media_type="application/json", headers={"Content-Encoding": "gzip", "Vary": "Accept-Encoding"})
            return Response(gzip.decompress(stored), media_type="application/json", headers={"Vary": "Accept-Encoding"})
    cache: reads.RankingCache = runtime.extras["ranking_cache"]
    async with runtime.engine.connect() as conn:

        async def render() -> bytes:
            body = await reads.ranking(conn, book, profile, period, level, parent, embed=format == "json")
            if format == "json":
                return orjson.dumps(body)
            from services.scoring import exports

            return exports.to_csv(body) if format == "csv" else exports.to_xlsx(body)

        content = await cache.get(conn, (profile, period, level, parent, format), render, fresh=fresh)
    if format == "json":
        return Response(content, media_type="application/json")
    headers = {"Content-Disposition": f'attachment; filename="rankings-{profile}-{period}.{format}"'}
    return Response(content, media_type="text/csv; charset=utf-8" if format == "csv" else XLSX, headers=headers)


@router.get("/v1/rankings/stream", dependencies=[Depends(public_read)])
async def rankings_stream(
    runtime: RuntimeDep, book: BookDep,
    profile: Annotated[str | None, Query(max_length=32)] = None,
    period: Annotated[str | None, Query(pattern=PERIOD_PATTERN.pattern)] = None,
    last_event_id: Annotated[int | None, Header(ge=0, le=BIGINT_MAX)] = None,
) -> EventSourceResponse:
    """Server-sent events: one `score.changed` per published change; resume with Last-Event-ID."""
    if profile is not None:
        _checked_profile(book, profile)
    stream = feed.changes(runtime.engine, runtime.extras["broadcast"], last_event_id, profile, period)
    return EventSourceResponse(stream, ping=15, headers={"Cache-Control": "no-store"})


@router.get("/v1/units/{unit_code}/scores", dependencies=[Depends(public_read)])
async def unit_scores(runtime: RuntimeDep, book: BookDep, unit_code: UnitCode, period: PeriodQuery, profile: ProfileQuery = DEFAULT_PROFILE) -> Response:
    """A unit's scorecard for a period: the figure with every component, its counts and intervals."""
    _checked_profile(book, profile)
    async with runtime.engine.connect() as conn:
        row = await store.unit_figure(conn, unit_code, period, profile)
    if row is None:
        raise Problem(404, "Not found", f"no {profile} figure for unit {unit_code} in {period}")
    return _json({"period": period, "profile": profile, **reads.figure_item(row)})


@router.get("/v1/units/{unit_code}/trend", dependencies=[Depends(public_read)])
async def unit_trend(
    runtime: RuntimeDep, book: BookDep, unit_code: UnitCode, profile: ProfileQuery = DEFAULT_PROFILE,
    granularity: Annotated[Literal["month", "quarter", "half", "year"], Query()] = "month",
    from_: Annotated[str | None, Query(alias="from", pattern=PERIOD_PATTERN.pattern)] = None,
    to: Annotated[str | None, Query(pattern=PERIOD_PATTERN.pattern)] = None,
) -> Response:
    """The unit's figure per month (or quarter, half, year) from `from` to `to`; null where there is none."""
    _checked_profile(book, profile)
    kind_index = {"month": 0, "quarter": 1, "half": 2, "year": 3}[granularity]
    last = parse_period(to) if to else periods_containing(datetime.now(timezone.utc))[kind_index]
    first = parse_period(from_) if from_ else Period(last.year - 1, last.kind, last.index) if granularity != "year" else Period(last.year - 4, "year", 1)
    errors = [
        {"field": f"query.{name}", "message": f"must be a {granularity} like {example}"}
        for name, value, example in (("from", first, "2026-01" if granularity == "month" else "2026-Q1"), ("to", last, "2026-12"))
        if value.kind != granularity
    ]
    if errors:
        raise Problem(422, "Invalid request", "from and to must be periods of the granularity", errors=errors)
    if first > last:
        raise Problem(422, "Invalid request", "from is after to", errors=[{"field": "query.from", "message": "must not be after to"}])
    async with runtime.engine.connect() as conn:
        body = await reads.trend(conn, unit_code, profile, first, last)
    if len(body["items"]) > MAX_TREND_POINTS:
        raise Problem(422, "Invalid request", f"at most {MAX_TREND_POINTS} periods", errors=[{"field": "query.from", "message": "range too long"}])
    return _json(body)


@router.get("/v1/officers/{officer_id}/scores")
async def officer_scores(
    runtime: RuntimeDep, officer_id: Annotated[str, Path(pattern=UNIT_CODE)], period: PeriodQuery,
    principal: Annotated[Principal, Depends(require(*OFFICER_READERS))],
) -> Response:
    """An officer's figures (restricted: the heads of the officer's unit or above, Home Affairs, inspectors)."""
    async with runtime.engine.connect() as conn:
        unit_code = await store.officer_unit(conn, officer_id)
        if unit_code is None:
            raise Problem(404, "Not found", f"no officer {officer_id}")
        if principal.role == "unit_head" and principal.unit_scope is None:
            raise Problem(403, "Forbidden", "a unit head's token must name the unit (unit_scope)")
        if principal.unit_scope is not None and not await store.is_within(conn, unit_code, principal.unit_scope):
            raise Problem(403, "Outside your unit", f"officer {officer_id} is not in the scope {principal.unit_scope}")
        rows = await store.officer_figures(conn, officer_id, period)
    items = [
        {"profile": r.profile, "score": r.score, "max_score": r.max_score, "band": r.band, "sample_size": r.sample_size,
         "ratings": r.ratings, "components": r.components, "version": r.version, "updated_at": r.updated_at.isoformat()}
        for r in rows
    ]
    return _json({"officer_id": officer_id, "unit_code": unit_code, "period": period, "items": items})


@router.get("/v1/profiles", dependencies=[Depends(public_read)])
async def profiles(book: BookDep) -> Response:
    """Every scoring profile: its versions with their validity, sources and the parameters in force."""
    return _json({"default_profile": DEFAULT_PROFILE, "levels": list(get_args(UnitLevel)), "items": book.describe()})
