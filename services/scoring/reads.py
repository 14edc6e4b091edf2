"""What the read API answers — rankings, scorecards, trends — assembled from store queries and pure ranking."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from datetime import datetime, timezone
from typing import Any

import orjson
from sqlalchemy.ext.asyncio import AsyncConnection

from services.scoring import store
from services.scoring.domain.periods import periods_between, previous
from services.scoring.domain.profiles import ProfileBook
from services.scoring.domain.ranking import Entry, RankedEntry, rank, ranks_of
from shared.periods import Period, parse_period


def figure_item(row: Any) -> dict[str, Any]:
    return {
        "unit_code": row.unit_code,
        "unit_name": row.name,
        "level": row.level,
        "parent_code": row.parent_code,
        "score": row.score,
        "max_score": row.max_score,
        "band": row.band,
        "provisional": row.provisional,
        "sample_size": row.sample_size,
        "components": row.components,
        "ratings": row.ratings,
        "dossiers": row.dossiers,
        "version": row.version,
        "profile_version": row.profile_version,
        "updated_at": row.updated_at.isoformat(),
    }


def _components(stored: Any, embed: bool) -> Any:
    """Stored components: JSON text on SQLite (embedded unparsed when `embed`), already decoded by asyncpg."""
    if not isinstance(stored, (str, bytes)):
        return stored
    return orjson.Fragment(stored) if embed else orjson.loads(stored)


def _ranked_item(ranked: RankedEntry, embed: bool) -> dict[str, Any]:
    """A ranking row (a tuple of store.RANKING_COLUMNS); with `embed` the stored components JSON goes into
    the answer unparsed (orjson.Fragment)."""
    unit_code, score, _ranked, provisional, max_score, band, sample, ratings, dossiers, components, version, name, level, parent = ranked.entry.row
    return {
        "rank": ranked.rank, "unit_code": unit_code, "unit_name": name, "level": level, "parent_code": parent,
        "score": score, "max_score": max_score, "band": band, "provisional": bool(provisional), "sample_size": sample,
        "components": _components(components, embed), "ratings": ratings, "dossiers": dossiers, "version": version,
        "rank_change": ranked.rank_change,
    }


def _entry(row: tuple[Any, ...]) -> Entry:
    return Entry(row[0], row[1], bool(row[2]), bool(row[3]), row)


async def ranking(
    conn: AsyncConnection, book: ProfileBook, profile: str, period: str, level: str | None, parent: str | None, *, embed: bool = False,
) -> dict[str, Any]:
    rows = await store.figures(conn, profile, period, level, parent)
    before = await store.ranked_scores(conn, profile, str(previous(parse_period(period))), level, parent)
    return ranking_body(book, profile, period, rows, before, embed=embed)


def ranking_body(
    book: ProfileBook, profile: str, period: str, rows: list[tuple[Any, ...]], before: list[tuple[Any, ...]], *, embed: bool = False,
) -> dict[str, Any]:
    """The GET /v1/rankings answer from figure rows (store.RANKING_COLUMNS) and the previous period's (unit, score)
    pairs, both best first and filtered alike."""
    result = rank([_entry(r) for r in rows], ranks_of([(b[0], b[1]) for b in before]))
    version = book.version_for(profile, period)
    return {
        "period": period,
        "profile": profile,
        "profile_version": version.version if version else None,
        "generated_at": datetime.now(timezone.utc).isoformat(),
        "items": [_ranked_item(r, embed) for r in result.final],
        "provisional": [_ranked_item(r, embed) for r in result.provisional],
        "insufficient_data": [_ranked_item(r, embed) for r in result.insufficient_data],
    }


async def trend(conn: AsyncConnection, unit_code: str, profile: str, first: Period, last: Period) -> dict[str, Any]:
    periods = [str(p) for p in periods_between(first, last)]
    found = await store.unit_trend(conn, unit_code, profile, periods)
    points = []
    for period in periods:
        row = found.get(period)
        points.append({"period": period, **({k: v for k, v in figure_item(row).items() if k not in ("unit_code", "unit_name", "level", "parent_code")} if row else {"score": None})})
    name = next((row.name for row in found.values()), None)
    return {"unit_code": unit_code, "unit_name": name, "profile": profile, "granularity": first.kind, "items": points}


class RankingCache:
    """Rendered rankings, reused while nothing new has been published (the feed's newest id has not moved).

    Dashboards poll the same few rankings; between two score changes the answer is the same bytes. Entries
    also expire after `ttl_seconds`, which bounds staleness should two replicas' passes commit out of order.
    The cache holds at most `size` answers and `max_bytes` of them: a national ranking is megabytes, and 256 of
    them would be most of the service's memory budget.
    """

    def __init__(self, size: int = 256, ttl_seconds: float = 10.0, max_bytes: int = 32 * 1024 * 1024) -> None:
        self.size = size
        self.ttl_seconds = ttl_seconds
        self.max_bytes = max_bytes
        self._bytes = 0
        self._entries: OrderedDict[tuple[Any, ...], tuple[int, float, bytes]] = OrderedDict()

    async def get(self, conn: AsyncConnection, key: tuple[Any, ...], render: Callable[[], Awaitable[bytes]], *, fresh: bool = False) -> bytes:
        """The cached answer while still valid, else `render()`'s (also with `fresh`: Cache-Control: no-cache)."""
        generation = await store.newest_feed_id(conn)
        found = self._entries.get(key)
        now = time.monotonic()
        if not fresh and found is not None and found[0] == generation and now - found[1] < self.ttl_seconds:
            self._entries.move_to_end(key)
            return found[2]
        body = await render()
        if found is not None:
            self._bytes -= len(found[2])
        self._entries[key] = (generation, now, body)
        self._bytes += len(body)
        self._entries.move_to_end(key)
        while self._entries and (len(self._entries) > self.size or self._bytes > self.max_bytes):
            self._bytes -= len(self._entries.popitem(last=False)[1][2])
        return body
