"""Scoring's HTTP API: scorecards, rankings and the profiles in force."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime, timezone
from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import APIRouter, Path, Query

from services.scoring import store
from services.scoring.domain import satisfied_share
from services.scoring.domain.ranking import competition_ranks
from shared.periods import PERIOD_PATTERN
from shared.problems import Problem
from shared.service import RuntimeDep

router = APIRouter(tags=["scores"])
UNIT_CODE = r"^[A-Za-z0-9._-]{1,64}$"
PROFILES = {satisfied_share.PROFILE: satisfied_share}
PeriodQuery = Annotated[str, Query(pattern=PERIOD_PATTERN.pattern, examples=["2026-Q4"])]
ProfileQuery = Annotated[str, Query(max_length=32)]


def _profile(name: str) -> Any:
    if name not in PROFILES:
        raise Problem(422, "Invalid request", f"unknown profile {name!r}", errors=[{"field": "query.profile", "message": f"one of {sorted(PROFILES)}"}])
    return PROFILES[name]


def _item(row: Any, profile: Any) -> dict[str, Any]:
    return {
        "unit_code": row.unit_code,
        "unit_name": row.name,
        "score": row.score,
        "max_score": profile.MAX_SCORE,
        "band": row.band,
        "components": profile.score(row.ratings, row.satisfied).components,
        "ratings": row.ratings,
        "dossiers": row.dossiers,
        "version": row.version,
    }


def _scores_query() -> sa.Select[Any]:
    agg, units = store.aggregates, store.units
    return sa.select(agg, units.c.name, units.c.level, units.c.parent_code).select_from(
        agg.outerjoin(units, units.c.code == agg.c.unit_code)
    )


@router.get("/v1/units/{unit_code}/scores")
async def unit_scores(
    runtime: RuntimeDep, unit_code: Annotated[str, Path(pattern=UNIT_CODE)], period: PeriodQuery,
    profile: ProfileQuery = satisfied_share.PROFILE,
) -> dict[str, Any]:
    module = _profile(profile)
    agg = store.aggregates
    query = _scores_query().where(agg.c.unit_code == unit_code, agg.c.period == period, agg.c.profile == profile)
    async with runtime.engine.connect() as conn:
        row = (await conn.execute(query)).first()
    if row is None:
        raise Problem(404, "Not found", f"no scores for unit {unit_code} in {period} ({profile})")
    return {"period": period, "profile": profile, **_item(row, module)}


@router.get("/v1/rankings")
async def rankings(
    runtime: RuntimeDep, period: PeriodQuery, profile: ProfileQuery = satisfied_share.PROFILE,
    level: Annotated[str | None, Query(max_length=32)] = None,
    parent: Annotated[str | None, Query(pattern=UNIT_CODE)] = None,
) -> dict[str, Any]:
    module = _profile(profile)
    agg, units = store.aggregates, store.units
    query = _scores_query().where(agg.c.period == period, agg.c.profile == profile)
    if level:
        query = query.where(units.c.level == level)
    if parent:
        query = query.where(units.c.parent_code == parent)
    async with runtime.engine.connect() as conn:
        rows = (await conn.execute(query)).all()
    rankable = [r for r in rows if r.band != "insufficient_data" and r.score is not None]
    ranked = sorted(rankable, key=lambda r: (-r.score, r.unit_code))
    unranked = sorted((r for r in rows if r.band == "insufficient_data" or r.score is None), key=lambda r: r.unit_code)
    items = [
        {"rank": rank, **_item(row, module), "rank_change": None}
        for rank, row in zip(competition_ranks([r.score for r in ranked]), ranked)
    ]
    return {
        "period": period,
        "profile": profile,
        "generated_at": datetime.now(timezone.utc).isoformat(),
        "items": items,
        "insufficient_data": [{"rank": None, **_item(row, module), "rank_change": None} for row in unranked],
    }


@router.get("/v1/profiles")
async def profiles() -> dict[str, Any]:
    return {
        "items": [
            {"profile": name, "max_score": module.MAX_SCORE, "description": (module.__doc__ or "").strip().splitlines()[0],
             "parameters": asdict(module.Parameters())}
            for name, module in PROFILES.items()
        ]
    }
