"""Read queries behind the public page, open data, the portal feed and the operators' delivery log."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from services.publisher import store
from services.publisher.domain.official import is_official_period, period_sort_key
from services.publisher.domain.publication import LIVE, OFFICIAL, PublicResult, UnitInfo, public_result, rank_results
from services.publisher.domain.transparency import TicketFacts
from shared.periods import parse_period


@dataclass(frozen=True)
class Edition:
    """Which figures are shown: live ones, or an official snapshot (its version and when it was frozen)."""

    name: str
    snapshot_version: int | None = None
    frozen_at: datetime | None = None
    reason: str | None = None


@dataclass(frozen=True)
class Ranking:
    period: str
    profile: str
    edition: Edition
    results: list[PublicResult]


async def available(conn: AsyncConnection) -> dict[str, list[str]]:
    """Profiles with published results, each with its periods (most recent first)."""
    rows = (await conn.execute(sa.select(store.latest_scores.c.profile, store.latest_scores.c.period).distinct())).all()
    found: dict[str, list[str]] = {}
    for row in rows:
        found.setdefault(row.profile, []).append(row.period)
    return {profile: sorted(periods, key=period_sort_key, reverse=True) for profile, periods in sorted(found.items())}


async def levels(conn: AsyncConnection, period: str, profile: str) -> dict[str, int]:
    """How many units of each level have a result in the period."""
    scores, units = store.latest_scores, store.units
    rows = await conn.execute(
        sa.select(units.c.level, sa.func.count())
        .select_from(scores.join(units, units.c.code == scores.c.unit_code))
        .where(scores.c.period == period, scores.c.profile == profile)
        .group_by(units.c.level)
    )
    return {row[0]: int(row[1]) for row in rows}


def _filtered(results: list[PublicResult], level: str | None, parent: str | None) -> list[PublicResult]:
    return [r for r in results if (not level or r.level == level) and (not parent or r.parent_code == parent)]


async def live_ranking(
    conn: AsyncConnection, period: str, profile: str, min_ratings: int, level: str | None = None, parent: str | None = None,
) -> Ranking:
    scores, units = store.latest_scores, store.units
    query = (
        sa.select(scores.c.payload, units)
        .select_from(scores.outerjoin(units, units.c.code == scores.c.unit_code))
        .where(scores.c.period == period, scores.c.profile == profile)
    )
    if level:
        query = query.where(units.c.level == level)
    if parent:
        query = query.where(units.c.parent_code == parent)
    rows = (await conn.execute(query)).all()
    results = [public_result(row.payload, store.unit_info(row) if row.code else None, min_ratings) for row in rows]
    return Ranking(period, profile, Edition(LIVE), rank_results(results))


async def snapshots(conn: AsyncConnection, period: str | None = None, profile: str | None = None) -> list[Any]:
    table = store.snapshots
    query = sa.select(table).order_by(table.c.frozen_at.desc(), table.c.id.desc())
    if period:
        query = query.where(table.c.period == period)
    if profile:
        query = query.where(table.c.profile == profile)
    return list((await conn.execute(query)).all())


async def official_ranking(
    conn: AsyncConnection, period: str, profile: str, version: int | None = None, level: str | None = None,
    parent: str | None = None,
) -> Ranking | None:
    """The frozen figures of an official snapshot (the newest version unless one is asked for), or None."""
    table, items = store.snapshots, store.snapshot_items
    query = sa.select(table).where(table.c.period == period, table.c.profile == profile)
    query = query.where(table.c.version == version) if version else query.order_by(table.c.version.desc()).limit(1)
    snapshot = (await conn.execute(query)).first()
    if snapshot is None:
        return None
    rows = (await conn.execute(sa.select(items.c.payload).where(items.c.snapshot_id == snapshot.id))).all()
    results = _filtered([PublicResult.from_dict(row.payload) for row in rows], level, parent)
    edition = Edition(OFFICIAL, snapshot.version, snapshot.frozen_at, snapshot.reason)
    # Ranks are recomputed within what was asked for, from the frozen figures, so they are frozen too.
    return Ranking(period, profile, edition, rank_results([replace(r, rank=None) for r in results]))


async def changes_since(conn: AsyncConnection, since: int, limit: int) -> list[Any]:
    table = store.changes
    query = sa.select(table.c.seq, table.c.payload).where(table.c.seq > since).order_by(table.c.seq).limit(limit)
    return list((await conn.execute(query)).all())


async def feed_head(conn: AsyncConnection) -> int:
    return int(await conn.scalar(sa.select(sa.func.max(store.changes.c.seq))) or 0)


async def unit(conn: AsyncConnection, code: str) -> tuple[UnitInfo, str | None] | None:
    row = (await conn.execute(sa.select(store.units).where(store.units.c.code == code))).first()
    return (store.unit_info(row), row.coordinates_source) if row else None


async def unit_results(conn: AsyncConnection, code: str, min_ratings: int, info: UnitInfo | None) -> list[PublicResult]:
    """Every live result of a unit (all profiles and periods), oldest period first."""
    scores = store.latest_scores
    rows = (await conn.execute(sa.select(scores.c.payload).where(scores.c.unit_code == code))).all()
    results = [public_result(row.payload, info, min_ratings) for row in rows]
    return sorted(results, key=lambda r: (r.profile, period_sort_key(r.period)))


async def unit_official_results(conn: AsyncConnection, code: str) -> list[tuple[Any, PublicResult]]:
    """The unit's figures in every official snapshot: (snapshot, result), newest first."""
    table, items = store.snapshots, store.snapshot_items
    rows = await conn.execute(
        sa.select(table, items.c.payload)
        .select_from(items.join(table, table.c.id == items.c.snapshot_id))
        .where(items.c.unit_code == code)
        .order_by(table.c.frozen_at.desc(), table.c.version.desc())
    )
    return [(row, PublicResult.from_dict(row.payload)) for row in rows]


async def unit_tickets(conn: AsyncConnection, code: str) -> list[TicketFacts]:
    table = store.tickets
    rows = await conn.execute(sa.select(table).where(table.c.unit_code == code))
    return [
        TicketFacts(row.category, row.status, row.opened_at, row.due_at, row.breached, row.resolved_at, row.closed_at, row.measures)
        for row in rows
    ]


async def children(conn: AsyncConnection, code: str) -> list[UnitInfo]:
    rows = await conn.execute(sa.select(store.units).where(store.units.c.parent_code == code).order_by(store.units.c.name))
    return [store.unit_info(row) for row in rows]


async def located_units(conn: AsyncConnection) -> list[Any]:
    table = store.units
    return list((await conn.execute(
        sa.select(table).where(table.c.lat.is_not(None), table.c.lon.is_not(None)).order_by(table.c.code)
    )).all())


def official_periods(periods: list[str]) -> list[str]:
    return [p for p in periods if is_official_period(p)]


@dataclass(frozen=True)
class Selection:
    """The period and profile a visitor sees: what they asked for, or sensible defaults from what exists."""

    profile: str | None
    period: str | None
    profiles: list[str]
    periods: list[str]


def select(found: dict[str, list[str]], profile: str | None, period: str | None, default_profile: str) -> Selection:
    """Default profile: the configured one if it has results, else the first; default period: its latest month."""
    profiles = list(found)
    if profile is None:
        profile = default_profile if default_profile in found else (profiles[0] if profiles else None)
    periods = found.get(profile or "", [])
    if period is None and periods:
        months = [p for p in periods if parse_period(p).kind == "month"]
        period = months[0] if months else periods[0]
    return Selection(profile, period, profiles, periods)
