"""Scoring's tables: its copy of the unit registry, contributions, counters, assessments, figures, the feed.

- `rating_contributions` / `dossier_contributions`: one row per rating id / dossier code, holding where it
  counts and the counters it adds (domain/counters.py); redelivery or correction rewrites the row.
- `counters` / `officer_counters`: per unit (rolled up its subtree) or officer and month, the sum of the
  current contributions; `revision` goes up with every change and `dirty` marks rows the score publisher
  has not scored yet. Quarters, halves and years are summed from their months when scored.
- `aggregates` / `officer_aggregates`: each profile's figure per unit or officer and period, with the
  `version` that only goes up (carried by scores.v1 events).
- `score_feed`: the published changes in order, read by the SSE stream (pruned after an hour).
- `ranking_sources` / `rankings`: each (profile, period)'s figure changes counted, and its rankings rendered
  (gzip JSON, per scope: every unit, or one level) by the refresher, so a ranking read is one lookup.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from services.scoring.domain.counters import COUNTERS, DOSSIER_COUNTERS, RATING_COUNTERS
from shared.bus.tables import define_bus_tables
from shared.db import UtcDateTime, fetch_tuples

metadata = sa.MetaData()
bus = define_bus_tables(metadata)

BIGINT = sa.BigInteger().with_variant(sa.Integer, "sqlite")


def counter_columns(names: tuple[str, ...]) -> list[sa.Column]:
    return [sa.Column(name, sa.Integer, nullable=False, server_default="0") for name in names]


units = sa.Table(
    "units",
    metadata,
    sa.Column("code", sa.String(64), primary_key=True),
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("level", sa.String(32), nullable=False),
    sa.Column("parent_code", sa.String(64), nullable=True),
    sa.Column("valid_to", sa.String(32), nullable=True),
    sa.Column("successor_code", sa.String(64), nullable=True),
)

# Every unit with its ancestors and itself (depth 0): figures roll up along it.
unit_ancestors = sa.Table(
    "unit_ancestors",
    metadata,
    sa.Column("unit_code", sa.String(64), primary_key=True),
    sa.Column("ancestor_code", sa.String(64), primary_key=True),
    sa.Column("depth", sa.Integer, nullable=False),
    sa.Index("ix_unit_ancestors_ancestor", "ancestor_code"),
)

officers = sa.Table(
    "officers",
    metadata,
    sa.Column("officer_id", sa.String(64), primary_key=True),
    sa.Column("unit_code", sa.String(64), nullable=False),
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("active", sa.Boolean, nullable=False),
)

rating_contributions = sa.Table(
    "rating_contributions",
    metadata,
    sa.Column("rating_id", sa.String(64), primary_key=True),
    sa.Column("dossier_code", sa.String(64), nullable=True),
    sa.Column("unit_code", sa.String(64), nullable=True),
    sa.Column("month", sa.String(7), nullable=True),
    sa.Column("officer_ids", sa.Text, nullable=False),  # canonical JSON list: groupable as text
    sa.Column("arrived", sa.Boolean, nullable=False),
    sa.Column("flagged", sa.Boolean, nullable=False),
    sa.Column("verdict", sa.String(16), nullable=True),
    sa.Column("verdict_at", UtcDateTime, nullable=True),
    sa.Column("superseded_by", sa.String(64), nullable=True),
    sa.Column("counted", sa.Boolean, nullable=False),
    *counter_columns(RATING_COUNTERS),  # what the rating adds when counted
    sa.Index("ix_rating_contributions_dossier", "dossier_code"),
)

dossier_contributions = sa.Table(
    "dossier_contributions",
    metadata,
    sa.Column("dossier_code", sa.String(64), primary_key=True),
    sa.Column("revision", sa.Integer, nullable=False),
    sa.Column("unit_code", sa.String(64), nullable=False),
    sa.Column("month", sa.String(7), nullable=False),
    sa.Column("officer_ids", sa.Text, nullable=False),
    sa.Column("facts", sa.JSON, nullable=False),  # the dossier.completed data, to re-score when its ratings change
    sa.Column("rated_dissatisfied", sa.Boolean, nullable=False),
    *counter_columns(DOSSIER_COUNTERS),
)


def _counter_table(name: str, key: list[sa.Column], extra: list[sa.Column]) -> sa.Table:
    return sa.Table(
        name,
        metadata,
        *key,
        *extra,
        *counter_columns(COUNTERS),
        sa.Column("revision", BIGINT, nullable=False, server_default="0"),
        sa.Column("dirty", sa.Boolean, nullable=False, server_default=sa.false()),
        # Only the dirty rows, in key order: the score publisher takes them in that order (migration 0003).
        sa.Index(f"ix_{name}_dirty_key", key[0].name, "month", sqlite_where=sa.text("dirty = 1"), postgresql_where=sa.text("dirty")),
    )


# Kept per month: a quarter's, half's or year's counters are the sums of its months (summed when scored).
counters = _counter_table(
    "counters", [sa.Column("unit_code", sa.String(64), primary_key=True), sa.Column("month", sa.String(7), primary_key=True)], []
)
officer_counters = _counter_table(
    "officer_counters",
    [sa.Column("officer_id", sa.String(64), primary_key=True), sa.Column("month", sa.String(7), primary_key=True)],
    [sa.Column("unit_code", sa.String(64), nullable=False)],
)

assessments = sa.Table(
    "assessments",
    metadata,
    sa.Column("unit_code", sa.String(64), primary_key=True),
    sa.Column("period", sa.String(8), primary_key=True),
    sa.Column("inputs", sa.JSON, nullable=False),  # field → [value, recorded_at]: the newest value of each field holds
    sa.Column("updated_at", UtcDateTime, nullable=False),
)

aggregates = sa.Table(
    "aggregates",
    metadata,
    sa.Column("profile", sa.String(32), primary_key=True),
    sa.Column("unit_code", sa.String(64), primary_key=True),
    sa.Column("period", sa.String(8), primary_key=True),
    sa.Column("ratings", sa.Integer, nullable=False),
    sa.Column("dossiers", sa.Integer, nullable=False),
    sa.Column("score", sa.Float, nullable=True),
    sa.Column("band", sa.String(32), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),
    sa.Column("max_score", sa.Float, nullable=False, server_default="0"),
    sa.Column("provisional", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("ranked", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("sample_size", sa.Integer, nullable=False, server_default="0"),
    sa.Column("components", sa.JSON, nullable=True),
    sa.Column("profile_version", sa.String(16), nullable=True),
    sa.Column("definite_band", sa.String(32), nullable=True),  # the last satisfied / not_satisfied published
    sa.Index("ix_aggregates_ranking", "profile", "period", "score"),
)

officer_aggregates = sa.Table(
    "officer_aggregates",
    metadata,
    sa.Column("profile", sa.String(32), primary_key=True),
    sa.Column("officer_id", sa.String(64), primary_key=True),
    sa.Column("period", sa.String(8), primary_key=True),
    sa.Column("unit_code", sa.String(64), nullable=False),
    sa.Column("score", sa.Float, nullable=True),
    sa.Column("max_score", sa.Float, nullable=False),
    sa.Column("band", sa.String(32), nullable=False),
    sa.Column("sample_size", sa.Integer, nullable=False),
    sa.Column("ratings", sa.Integer, nullable=False),
    sa.Column("components", sa.JSON, nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),
)

score_feed = sa.Table(
    "score_feed",
    metadata,
    sa.Column("id", BIGINT, primary_key=True, autoincrement=True),
    sa.Column("profile", sa.String(32), nullable=False),
    sa.Column("unit_code", sa.String(64), nullable=False),
    sa.Column("period", sa.String(8), nullable=False),
    sa.Column("data", sa.Text, nullable=False),  # the score.changed data as JSON
    sa.Column("created_at", UtcDateTime, nullable=False),
)


ranking_sources = sa.Table(
    "ranking_sources",
    metadata,
    sa.Column("profile", sa.String(32), primary_key=True),
    sa.Column("period", sa.String(8), primary_key=True),
    sa.Column("revision", BIGINT, nullable=False, server_default="0"),  # + 1 by every pass that changes its figures
    sa.Column("rendered_revision", BIGINT, nullable=False, server_default="0"),  # what the stored rankings show
    sa.Column("stale_since", UtcDateTime, nullable=True),  # the first change the stored rankings do not show
    sa.Index("ix_ranking_sources_stale", "stale_since"),
)

rankings = sa.Table(
    "rankings",
    metadata,
    sa.Column("profile", sa.String(32), primary_key=True),
    sa.Column("period", sa.String(8), primary_key=True),
    sa.Column("scope", sa.String(40), primary_key=True),  # "" every unit; "level:ward" one level
    sa.Column("body_gzip", sa.LargeBinary, nullable=False),  # the GET /v1/rankings JSON answer, gzip-compressed
    sa.Column("revision", BIGINT, nullable=False),
    sa.Column("rendered_at", UtcDateTime, nullable=False),
)


# --- queries the API needs ------------------------------------------------------------------------------


def _figures_query() -> sa.Select[Any]:
    agg = aggregates
    return sa.select(
        agg.c.unit_code, agg.c.period, agg.c.profile, agg.c.score, agg.c.max_score, agg.c.band, agg.c.provisional,
        agg.c.ranked, agg.c.sample_size, agg.c.ratings, agg.c.dossiers, agg.c.components, agg.c.version,
        agg.c.profile_version, agg.c.updated_at, units.c.name, units.c.level, units.c.parent_code,
    ).select_from(agg.outerjoin(units, units.c.code == agg.c.unit_code))


RANKING_COLUMNS = (
    "unit_code", "score", "ranked", "provisional", "max_score", "band", "sample_size", "ratings", "dossiers", "components",
    "version", "name", "level", "parent_code",
)


async def figures(conn: AsyncConnection, profile: str, period: str, level: str | None = None, parent: str | None = None) -> list[tuple[Any, ...]]:
    """Every unit's figure for a profile and period as tuples of RANKING_COLUMNS, best score first, with the
    unit's registry name, level and parent; the components as their stored JSON (text on SQLite)."""
    agg = aggregates
    query = sa.select(
        agg.c.unit_code, agg.c.score, agg.c.ranked, agg.c.provisional, agg.c.max_score, agg.c.band, agg.c.sample_size,
        agg.c.ratings, agg.c.dossiers, sa.type_coerce(agg.c.components, sa.Text), agg.c.version,
        units.c.name, units.c.level, units.c.parent_code,
    ).select_from(agg.outerjoin(units, units.c.code == agg.c.unit_code))
    query = query.where(agg.c.profile == profile, agg.c.period == period).order_by(agg.c.score.desc(), agg.c.unit_code)
    if level:
        query = query.where(units.c.level == level)
    if parent:
        query = query.where(units.c.parent_code == parent)
    return await fetch_tuples(conn, query)


async def ranked_scores(conn: AsyncConnection, profile: str, period: str, level: str | None = None, parent: str | None = None) -> list[tuple[str, float]]:
    """(unit, score) of the figures in the final ranking, best first, e.g. for the previous period's ranks."""
    agg = aggregates
    query = sa.select(agg.c.unit_code, agg.c.score).where(agg.c.profile == profile, agg.c.period == period, agg.c.ranked, agg.c.score.is_not(None))
    query = query.order_by(agg.c.score.desc(), agg.c.unit_code)
    if level or parent:
        query = query.select_from(agg.join(units, units.c.code == agg.c.unit_code))
        if level:
            query = query.where(units.c.level == level)
        if parent:
            query = query.where(units.c.parent_code == parent)
    return await fetch_tuples(conn, query)  # type: ignore[return-value]


async def unit_figure(conn: AsyncConnection, unit_code: str, period: str, profile: str) -> Any | None:
    query = _figures_query().where(aggregates.c.unit_code == unit_code, aggregates.c.period == period, aggregates.c.profile == profile)
    return (await conn.execute(query)).first()


async def unit_trend(conn: AsyncConnection, unit_code: str, profile: str, periods: list[str]) -> dict[str, Any]:
    query = _figures_query().where(aggregates.c.unit_code == unit_code, aggregates.c.profile == profile, aggregates.c.period.in_(periods))
    return {row.period: row for row in await conn.execute(query)}


async def officer_unit(conn: AsyncConnection, officer_id: str) -> str | None:
    """The officer's unit: from the registry, else from the officer's figures."""
    unit = await conn.scalar(sa.select(officers.c.unit_code).where(officers.c.officer_id == officer_id))
    if unit is None:
        unit = await conn.scalar(sa.select(officer_aggregates.c.unit_code).where(officer_aggregates.c.officer_id == officer_id).limit(1))
    return unit


async def officer_figures(conn: AsyncConnection, officer_id: str, period: str) -> list[Any]:
    oa = officer_aggregates
    return list((await conn.execute(sa.select(oa).where(oa.c.officer_id == officer_id, oa.c.period == period).order_by(oa.c.profile))).all())


async def is_within(conn: AsyncConnection, unit_code: str, scope: str) -> bool:
    """True when `unit_code` is `scope` or lies below it in the registry."""
    found = await conn.scalar(
        sa.select(unit_ancestors.c.depth).where(unit_ancestors.c.unit_code == unit_code, unit_ancestors.c.ancestor_code == scope)
    )
    return found is not None


async def newest_feed_id(conn: AsyncConnection) -> int:
    """The newest published change: when it has not moved, no figure has changed."""
    return int(await conn.scalar(sa.select(sa.func.max(score_feed.c.id))) or 0)


async def ranked_scores_with_level(conn: AsyncConnection, profile: str, period: str) -> list[tuple[str, float, str | None]]:
    """(unit, score, level) of every figure in the final ranking of a period, best first (unregistered units: level None)."""
    agg = aggregates
    query = sa.select(agg.c.unit_code, agg.c.score, units.c.level).select_from(agg.outerjoin(units, units.c.code == agg.c.unit_code))
    query = query.where(agg.c.profile == profile, agg.c.period == period, agg.c.ranked, agg.c.score.is_not(None))
    return await fetch_tuples(conn, query.order_by(agg.c.score.desc(), agg.c.unit_code))  # type: ignore[return-value]


async def stored_ranking(conn: AsyncConnection, profile: str, period: str, scope: str) -> bytes | None:
    """The rendered ranking (gzip JSON) of a scope, or None when there is none yet."""
    r = rankings
    query = sa.select(r.c.body_gzip).where(r.c.profile == profile, r.c.period == period, r.c.scope == scope)
    return await conn.scalar(query)
