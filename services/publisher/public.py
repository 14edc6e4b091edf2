"""Publisher's public API (no token, rate limited): rankings, units as GeoJSON, the portal's changes feed, live
updates, and the open-data descriptor."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime, timezone
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Depends, Header, Path, Query, Request
from fastapi.responses import Response
from sse_starlette import EventSourceResponse, ServerSentEvent

from services.publisher import queries
from services.publisher.domain.opendata import LICENCE, data_package, rankings_csv
from services.publisher.domain.publication import LIVE, OFFICIAL
from services.publisher.live import live_feed
from shared.db import INTEGER_MAX
from shared.periods import PERIOD_PATTERN
from shared.problems import Problem
from shared.ratelimit import RateLimiter
from shared.service import Runtime, RuntimeDep

UNIT_CODE = r"^[A-Za-z0-9._-]{1,64}$"
RATE_LIMITER = "public_rate_limiter"
FEED_PAGE = 500
REPLAY_LIMIT = 2000


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


async def public_caller(request: Request, runtime: RuntimeDep) -> None:
    """Every public endpoint counts against the caller's address (429 with Retry-After when over)."""
    limiter: RateLimiter = runtime.extras.setdefault(RATE_LIMITER, RateLimiter())
    limiter.check(runtime.settings.public_rate_limit, "public", client_address(request))


router = APIRouter(tags=["public"], dependencies=[Depends(public_caller)])
PeriodQuery = Annotated[str | None, Query(pattern=PERIOD_PATTERN.pattern, examples=["2026-Q3"])]
# Profile names are lower-case words and digits joined by hyphens (GET /v1/profiles at scoring); anything else would
# reach a file name in a header (control characters broke the answer) or the database.
PROFILE_NAME = r"^[a-z0-9][a-z0-9-]{0,31}$"
ProfileQuery = Annotated[str | None, Query(pattern=PROFILE_NAME, examples=["hcmc-2024"])]
LevelQuery = Annotated[
    Literal["province", "department", "agency", "ward", "commune", "special_zone", "center"] | None, Query()
]
ParentQuery = Annotated[str | None, Query(pattern=UNIT_CODE)]


def json_response(body: Any, media_type: str = "application/json", headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body), media_type=media_type, headers=headers)


async def ranking_for(
    runtime: Runtime, period: str | None, profile: str | None, level: str | None, parent: str | None,
    edition: str, version: int | None,
) -> queries.Ranking:
    """The ranking asked for, with the page's defaults for period and profile; 404 when there is none."""
    settings = runtime.settings
    async with runtime.engine.connect() as conn:
        choice = queries.select(await queries.available(conn), profile, period, settings.public_default_profile)
        if choice.profile is None or choice.period is None:
            raise Problem(404, "Not found", "no results have been published yet")
        if edition == OFFICIAL:
            ranking = await queries.official_ranking(conn, choice.period, choice.profile, version, level, parent)
            if ranking is None:
                raise Problem(404, "Not found", f"no official snapshot of {choice.period} ({choice.profile})"
                              + (f" version {version}" if version else ""))
            return ranking
        return await queries.live_ranking(conn, choice.period, choice.profile, settings.public_min_ratings, level, parent)


def ranking_document(ranking: queries.Ranking, request: Request) -> dict[str, Any]:
    edition = ranking.edition
    return {
        "period": ranking.period,
        "profile": ranking.profile,
        "edition": edition.name,
        "snapshot_version": edition.snapshot_version,
        "frozen_at": edition.frozen_at.isoformat() if edition.frozen_at else None,
        "generated_at": datetime.now(timezone.utc).isoformat(),
        "licence": LICENCE,
        "schema": str(request.url_for("open_data_package")),
        "items": [result.as_dict() for result in ranking.results],
    }


@router.get("/v1/public/rankings")
async def public_rankings(
    request: Request, runtime: RuntimeDep, period: PeriodQuery = None, profile: ProfileQuery = None,
    level: LevelQuery = None, parent: ParentQuery = None,
    edition: Annotated[Literal["live", "official"], Query()] = LIVE,
    version: Annotated[int | None, Query(ge=1, le=INTEGER_MAX, description="official snapshot version (default: the newest)")] = None,
    format: Annotated[Literal["json", "csv"], Query()] = "json",  # noqa: A002 - the contract's parameter name
) -> Response:
    """Units ranked for one period and profile: live figures, or an official snapshot. Units with too few ratings
    are listed with band `insufficient_data` and no figures; provisional figures are listed after the ranked ones."""
    ranking = await ranking_for(runtime, period, profile, level, parent, edition, version)
    if format == "csv":
        name = f"hailong-{ranking.profile}-{ranking.period}-{ranking.edition.name}.csv"
        return Response(
            rankings_csv(ranking.results, ranking.edition.name, ranking.edition.snapshot_version),
            media_type="text/csv; charset=utf-8",
            headers={
                "Content-Disposition": f'attachment; filename="{name}"',
                "Link": f'<{request.url_for("open_data_package")}>; rel="describedby", <{LICENCE["path"]}>; rel="license"',
            },
        )
    return json_response(ranking_document(ranking, request))


@router.get("/v1/public/snapshots")
async def public_snapshots(runtime: RuntimeDep, period: PeriodQuery = None, profile: ProfileQuery = None) -> Response:
    """Official snapshots published so far (each version stays available)."""
    async with runtime.engine.connect() as conn:
        rows = await queries.snapshots(conn, period, profile)
    return json_response({"items": [
        {"period": r.period, "profile": r.profile, "version": r.version, "frozen_at": r.frozen_at.isoformat(),
         "reason": r.reason, "unit_count": r.unit_count}
        for r in rows
    ]})


@router.get("/v1/public/units.geojson")
async def public_units_geojson(runtime: RuntimeDep, period: PeriodQuery = None, profile: ProfileQuery = None) -> Response:
    """Units with coordinates as GeoJSON points; with period and profile, each carries its live figure."""
    settings = runtime.settings
    async with runtime.engine.connect() as conn:
        units = await queries.located_units(conn)
        figures = {}
        if period and profile:
            ranking = await queries.live_ranking(conn, period, profile, settings.public_min_ratings)
            figures = {r.unit_code: r for r in ranking.results}
    features = []
    for unit in units:
        properties: dict[str, Any] = {
            "code": unit.code, "name": unit.name, "level": unit.level, "parent_code": unit.parent_code,
            "successor_code": unit.successor_code, "coordinates_source": unit.coordinates_source,
        }
        if unit.code in figures:
            figure = figures[unit.code]
            properties.update(period=figure.period, profile=figure.profile, score=figure.score,
                              max_score=figure.max_score, band=figure.band, ratings=figure.ratings)
        features.append({
            "type": "Feature", "id": unit.code,
            "geometry": {"type": "Point", "coordinates": [round(unit.lon, 6), round(unit.lat, 6)]},
            "properties": properties,
        })
    return json_response({"type": "FeatureCollection", "features": features, "licence": LICENCE},
                         media_type="application/geo+json")


@router.get("/v1/public/units/{unit_code}/results")
async def public_unit_results(
    runtime: RuntimeDep, unit_code: Annotated[str, Path(pattern=UNIT_CODE)], profile: ProfileQuery = None,
) -> Response:
    """Every live figure of one unit (its trend), oldest period first."""
    async with runtime.engine.connect() as conn:
        found = await queries.unit(conn, unit_code)
        results = await queries.unit_results(conn, unit_code, runtime.settings.public_min_ratings, found[0] if found else None)
    if found is None and not results:
        raise Problem(404, "Not found", f"no unit {unit_code}")
    items = [r.as_dict() for r in results if not profile or r.profile == profile]
    return json_response({"unit_code": unit_code, "items": items, "licence": LICENCE})


@router.get("/v1/public/datapackage.json", name="open_data_package")
async def open_data_package(request: Request) -> Response:
    """The open data's licence and schema, as a Frictionless Data Package."""
    return json_response(data_package(str(request.base_url).rstrip("/")))


@router.get("/v1/sync/results")
async def sync_results(
    runtime: RuntimeDep,
    since: Annotated[str, Query(pattern=r"^\d{1,18}$", description="next_cursor of the previous page; 0 from the start")] = "0",
    limit: Annotated[int, Query(ge=1, le=FEED_PAGE)] = 100,
) -> Response:
    """Changes feed for the national portal: every published result (live and official) in a stable order.

    Resume with `since=<next_cursor>`; the order is the order results were committed, so a reader that
    keeps its cursor sees every change once, with no gaps, across restarts of either side."""
    async with runtime.engine.connect() as conn:
        rows = await queries.changes_since(conn, int(since), limit + 1)
    items = [{**row.payload, "cursor": str(row.seq)} for row in rows[:limit]]
    next_cursor = items[-1]["cursor"] if items else since
    return json_response({"items": items, "next_cursor": next_cursor, "has_more": len(rows) > limit})


@router.get("/v1/public/stream")
async def live_stream(
    request: Request, runtime: RuntimeDep, period: PeriodQuery = None, profile: ProfileQuery = None,
    last_event_id: Annotated[str | None, Header(pattern=r"^\d{1,18}$")] = None,
) -> EventSourceResponse:
    """Server-Sent Events: one `result` event per published change (id = the feed's cursor). Reconnecting with
    Last-Event-ID replays what was missed; `reset` asks the page to reload (it fell too far behind)."""
    feed = live_feed(runtime)
    subscriber = feed.subscribe()
    replay: list[Any] = []
    if last_event_id is not None:
        async with runtime.engine.connect() as conn:
            replay = await queries.changes_since(conn, int(last_event_id), REPLAY_LIMIT + 1)

    def wanted(entry: dict[str, Any]) -> bool:
        return (not period or entry.get("period") == period) and (not profile or entry.get("profile") == profile)

    async def events() -> AsyncIterator[ServerSentEvent]:
        try:
            if len(replay) > REPLAY_LIMIT:
                yield ServerSentEvent(data="{}", event="reset")
                return
            seen = int(last_event_id or 0)
            for row in replay:
                seen = row.seq
                if wanted(row.payload):
                    yield ServerSentEvent(data=orjson.dumps(row.payload).decode(), event="result", id=str(row.seq))
            while True:
                getter = asyncio.ensure_future(subscriber.queue.get())
                overflow = asyncio.ensure_future(subscriber.overflowed.wait())
                done, _ = await asyncio.wait({getter, overflow}, return_when=asyncio.FIRST_COMPLETED)
                for task in (getter, overflow):
                    if task not in done:
                        task.cancel()
                if getter in done:
                    entry = getter.result()
                    if entry["seq"] > seen and wanted(entry):
                        yield ServerSentEvent(data=orjson.dumps(entry).decode(), event="result", id=str(entry["seq"]))
                    seen = max(seen, entry["seq"])
                elif overflow in done:
                    yield ServerSentEvent(data="{}", event="reset")
                    return
        finally:
            feed.unsubscribe(subscriber)

    return EventSourceResponse(events(), ping=15, headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

