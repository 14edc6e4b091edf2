"""The public page, server-rendered: the map and ranking (`/`), and each unit's "Khảo sát hài lòng" page.

Vietnamese first (`?lang=en` for English). The map is drawn here as SVG on the outline projected at build
time, so the page works without JavaScript; the small script only refreshes the results on live updates.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Path as PathParam, Query, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from services.publisher import queries
from services.publisher.domain.geo import Mercator, ViewBox, dot_radius, fit_view
from services.publisher.domain.opendata import LICENCE
from services.publisher.domain.publication import LIVE, OFFICIAL, PublicResult, band_tone
from services.publisher.domain.transparency import summarise
from services.publisher.domain.trend import trend_chart
from services.publisher.i18n import LANGUAGES, Translator, translator
from services.publisher.public import ParentQuery, PeriodQuery, ProfileQuery, UNIT_CODE, public_caller
from shared.db import INTEGER_MAX
from shared.logging import get_logger
from shared.periods import parse_period
from shared.service import Runtime, RuntimeDep

log = get_logger(__name__)
HERE = Path(__file__).parent
STATIC_DIR = HERE / "static"
MAP_FILE = STATIC_DIR / "build" / "vietnam-map.json"
templates = Jinja2Templates(directory=HERE / "templates")
templates.env.globals["tone"] = lambda result: band_tone(result.band, result.score, result.max_score)
router = APIRouter(tags=["public page"], dependencies=[Depends(public_caller)], include_in_schema=False)
SECURITY_HEADERS = {
    # Everything comes from this server; no CDN, no inline script.
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
                               "connect-src 'self'; frame-ancestors 'none'; base-uri 'self'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-cache",
}
LanguageQuery = Annotated[Literal["vi", "en"], Query()]
TREND_MONTHS = 24


@dataclass(frozen=True)
class CountryMap:
    width: float
    height: float
    projection: Mercator
    outline: str
    archipelagos: list[dict[str, Any]]

    @property
    def whole(self) -> ViewBox:
        return ViewBox(0, 0, self.width, self.height)


@lru_cache(maxsize=1)
def country_map() -> CountryMap | None:
    """The outline built by `make web` (services/publisher/web); None if it was never built."""
    try:
        data = json.loads(MAP_FILE.read_text(encoding="utf-8"))
    except FileNotFoundError:
        log.warning("the map of Việt Nam has not been built (make web); the page shows the table only", path=str(MAP_FILE))
        return None
    tx, ty = data["projection"]["translate"]
    return CountryMap(data["width"], data["height"], Mercator(data["projection"]["scale"], tx, ty), data["outline"],
                      data["archipelagos"])


@dataclass(frozen=True)
class Dot:
    x: float
    y: float
    r: float
    tone: str
    result: PublicResult


def _map_view(results: list[PublicResult], located: dict[str, tuple[float, float]], zoom: str) -> dict[str, Any] | None:
    drawing = country_map()
    if drawing is None:
        return None
    points = {r.unit_code: drawing.projection.project(*located[r.unit_code]) for r in results if r.unit_code in located}
    view = drawing.whole if zoom == "country" else fit_view(points.values(), drawing.whole)
    radius = dot_radius(view, drawing.whole)
    dots = [
        Dot(x, y, radius, band_tone(r.band, r.score, r.max_score), r)
        for r in results if (xy := points.get(r.unit_code)) for x, y in [xy]
    ]
    # The worst drawn last, so it is never hidden under a better neighbour.
    order = {"good": 0, "none": 1, "fair": 2, "poor": 3}
    dots.sort(key=lambda d: order[d.tone])
    return {"drawing": drawing, "view": view, "zoomed": view != drawing.whole, "dots": dots,
            "unmapped": len(results) - len(dots), "stroke": view.width / drawing.whole.width}


def _url(path: str, **params: Any) -> str:
    query = {k: v for k, v in params.items() if v not in (None, "")}
    return f"{path}?{urlencode(query)}" if query else path


def _render(request: Request, name: str, context: dict[str, Any], status_code: int = 200) -> HTMLResponse:
    return templates.TemplateResponse(request, name, context, status_code=status_code, headers=SECURITY_HEADERS)


async def _results_context(
    runtime: Runtime, t: Translator, period: str | None, profile: str | None, level: str | None, parent: str | None,
    edition: str, version: int | None, zoom: str,
) -> dict[str, Any]:
    settings = runtime.settings
    async with runtime.engine.connect() as conn:
        choice = queries.select(await queries.available(conn), profile, period, settings.public_default_profile)
        context: dict[str, Any] = {"choice": choice, "ranking": None, "levels": {}, "level": level, "edition": edition,
                                   "snapshots": [], "map": None, "min_ratings": settings.public_min_ratings,
                                   "parent": parent, "zoom": zoom}
        if choice.profile is None or choice.period is None:
            return context
        counts = await queries.levels(conn, choice.period, choice.profile)
        if level is None and counts:
            level = max(sorted(counts), key=lambda name: counts[name])  # the level most units belong to
        wanted_level = None if level == "all" else level
        context["snapshots"] = await queries.snapshots(conn, choice.period, choice.profile)
        ranking = None
        if edition == OFFICIAL:
            ranking = await queries.official_ranking(conn, choice.period, choice.profile, version, wanted_level, parent)
        if ranking is None:
            edition = LIVE
            ranking = await queries.live_ranking(conn, choice.period, choice.profile, settings.public_min_ratings,
                                                 wanted_level, parent)
        located = {row.code: (row.lon, row.lat) for row in await queries.located_units(conn)}
    context.update(levels=counts, level=level, edition=edition, ranking=ranking,
                   map=_map_view(ranking.results, located, zoom))
    return context


def _links(t: Translator, context: dict[str, Any]) -> dict[str, str]:
    choice, ranking = context["choice"], context["ranking"]
    level = None if context["level"] == "all" else context["level"]
    common = {"period": choice.period, "profile": choice.profile, "level": level, "parent": context["parent"]}
    edition = ranking.edition if ranking else None
    data = {**common, "edition": edition.name if edition else None,
            "version": edition.snapshot_version if edition else None}
    page = {**common, "level": context["level"], "edition": context["edition"], "zoom": context["zoom"]}
    other = "en" if t.language == "vi" else "vi"
    return {
        "csv": _url("/v1/public/rankings", **data, format="csv"),
        "json": _url("/v1/public/rankings", **data),
        "geojson": _url("/v1/public/units.geojson", period=choice.period, profile=choice.profile),
        "datapackage": "/v1/public/datapackage.json",
        "other_language": _url("/", **page, lang=other if other != "vi" else None),
        "zoom_country": _url("/", **{**page, "zoom": "country"}, lang=t.language if t.language != "vi" else None),
        "zoom_units": _url("/", **{**page, "zoom": None}, lang=t.language if t.language != "vi" else None),
        "partial": _url("/partials/results", **page, lang=t.language),
        "stream": _url("/v1/public/stream", period=choice.period, profile=choice.profile),
    }


LevelChoice = Annotated[
    Literal["all", "province", "department", "agency", "ward", "commune", "special_zone", "center"] | None, Query()
]
EditionQuery = Annotated[Literal["live", "official"], Query()]
VersionQuery = Annotated[int | None, Query(ge=1, le=INTEGER_MAX)]
ZoomQuery = Annotated[Literal["auto", "country"], Query()]


@router.get("/", response_class=HTMLResponse)
async def home(
    request: Request, runtime: RuntimeDep, period: PeriodQuery = None, profile: ProfileQuery = None,
    level: LevelChoice = None, parent: ParentQuery = None, edition: EditionQuery = LIVE, version: VersionQuery = None,
    zoom: ZoomQuery = "auto", lang: LanguageQuery = "vi",
) -> HTMLResponse:
    t = translator(lang)
    context = await _results_context(runtime, t, period, profile, level, parent, edition, version, zoom)
    return _render(request, "index.html", {**context, "t": t, "links": _links(t, context), "licence": LICENCE,
                                           "languages": LANGUAGES})


@router.get("/partials/results", response_class=HTMLResponse)
async def results_fragment(
    request: Request, runtime: RuntimeDep, period: PeriodQuery = None, profile: ProfileQuery = None,
    level: LevelChoice = None, parent: ParentQuery = None, edition: EditionQuery = LIVE, version: VersionQuery = None,
    zoom: ZoomQuery = "auto", lang: LanguageQuery = "vi",
) -> HTMLResponse:
    """The map and the table alone, for the page's live refresh."""
    t = translator(lang)
    context = await _results_context(runtime, t, period, profile, level, parent, edition, version, zoom)
    return _render(request, "_results.html", {**context, "t": t, "links": _links(t, context)})


@router.get("/units/{unit_code}", response_class=HTMLResponse)
async def unit_page(
    request: Request, runtime: RuntimeDep, unit_code: Annotated[str, PathParam(pattern=UNIT_CODE)],
    lang: LanguageQuery = "vi",
) -> HTMLResponse:
    """A unit's public "Khảo sát hài lòng" page (Đà Nẵng 5697/2017 Art. 3 step 4): results, trend, remediation."""
    t = translator(lang)
    settings = runtime.settings
    async with runtime.engine.connect() as conn:
        found = await queries.unit(conn, unit_code)
        info = found[0] if found else None
        results = await queries.unit_results(conn, unit_code, settings.public_min_ratings, info)
        if info is None and not results:
            return _render(request, "not_found.html", {"t": t, "unit_code": unit_code, "languages": LANGUAGES,
                                                       "other_language": _url(request.url.path, lang="en" if lang == "vi" else None)},
                           status_code=404)
        official = await queries.unit_official_results(conn, unit_code)
        tickets = await queries.unit_tickets(conn, unit_code)
        parent = await queries.unit(conn, info.parent_code) if info and info.parent_code else None
        successor = await queries.unit(conn, info.successor_code) if info and info.successor_code else None
        below = await queries.children(conn, unit_code)
    name = (info.name if info else None) or (results[-1].unit_name if results else None) or unit_code
    return _render(request, "unit.html", {
        "t": t, "unit_code": unit_code, "name": name, "info": info, "parent": parent[0] if parent else None,
        "successor": successor[0] if successor else None, "latest": _latest_by_profile(results),
        "trends": _trends(results, t), "official": official,
        "remediation": summarise(tickets, datetime.now(timezone.utc)), "below": below, "languages": LANGUAGES,
        "other_language": _url(request.url.path, lang="en" if lang == "vi" else None), "licence": LICENCE,
        "min_ratings": settings.public_min_ratings,
    })


def _latest_by_profile(results: list[PublicResult]) -> list[PublicResult]:
    """Per profile, the result of the most recent month (or, without months, the most recent period)."""
    latest: dict[str, PublicResult] = {}
    for result in results:  # oldest first per profile
        is_month = parse_period(result.period).kind == "month"
        current = latest.get(result.profile)
        if current is None or is_month or parse_period(current.period).kind != "month":
            latest[result.profile] = result
    return [latest[profile] for profile in sorted(latest)]


def _trends(results: list[PublicResult], t: Translator) -> list[dict[str, Any]]:
    charts = []
    for profile in sorted({r.profile for r in results}):
        months = [r for r in results if r.profile == profile and parse_period(r.period).kind == "month"][-TREND_MONTHS:]
        if len(months) < 2:
            continue
        chart = trend_chart([(t.period(r.period), r.score) for r in months], months[-1].max_score)
        charts.append({"profile": profile, "chart": chart, "results": months})
    return charts
