"""Materialised rankings: each (profile, period)'s rankings rendered once after its figures change, so that
GET /v1/rankings is one lookup instead of reading, ranking and serialising ten thousand figures per request.

The score publisher bumps `ranking_sources.revision` in the transaction that writes the figures; the
refresher (a worker of the service) renders every scope of a stale (profile, period) — every unit, and each
level — from one read of its figures, and stores the answers gzip-compressed. It waits `refresh_seconds`
after the first change so that a burst of changes costs one rendering, and it rests in proportion to the
time it renders, so rankings never take more than a quarter of the service's CPU from the consumer and the
score publisher: under a heavy load they lag a little further behind rather than slowing the scores.
Readers see the newest rendering; `Cache-Control: no-cache` computes a ranking afresh.
"""

from __future__ import annotations

import asyncio
import gzip
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone

import orjson
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.scoring import store
from services.scoring.domain.periods import previous
from services.scoring.domain.profiles import ProfileBook
from services.scoring.reads import ranking_body
from shared.aio import wait_event
from shared.logging import get_logger
from shared.memory import release_free_memory
from shared.periods import parse_period

log = get_logger(__name__)

EVERY_UNIT = ""  # the scope of a ranking without filters
DUTY_CYCLE = 0.25  # the share of its time the refresher may spend rendering
GZIP_LEVEL = 5  # 3.3 MB of JSON for 10,000 units → ~0.3 MB, in ~30 ms; read far more often than written
LEVEL = store.RANKING_COLUMNS.index("level")


def _insert(dialect: str):  # type: ignore[no-untyped-def]
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert


def level_scope(level: str) -> str:
    return f"level:{level}"


def scope_of(level: str | None) -> str:
    return EVERY_UNIT if level is None else level_scope(level)


async def mark_stale(conn: AsyncConnection, pairs: set[tuple[str, str]], now: datetime) -> None:
    """In the score publisher's transaction: these (profile, period)s' figures changed."""
    if not pairs:
        return
    sources = store.ranking_sources
    statement = _insert(conn.dialect.name)(sources)
    statement = statement.on_conflict_do_update(
        index_elements=["profile", "period"],
        set_={"revision": sources.c.revision + 1, "stale_since": sa.func.coalesce(sources.c.stale_since, statement.excluded.stale_since)},
    )
    # Sorted: overlapping passes of two replicas lock the rows in one order (no deadlock on PostgreSQL).
    rows = [{"profile": p, "period": q, "revision": 1, "rendered_revision": 0, "stale_since": now} for p, q in sorted(pairs)]
    await conn.execute(statement, rows)


async def render(conn: AsyncConnection, book: ProfileBook, profile: str, period: str) -> dict[str, bytes]:
    """The gzip-compressed JSON answer of every scope of a (profile, period) from one read of its figures.

    One scope at a time, compressed as soon as it is rendered: ten thousand units make a 3 MB answer whose
    dicts take ten times that, and holding every scope's at once set the service's peak memory."""
    rows = await store.figures(conn, profile, period)
    before = await store.ranked_scores_with_level(conn, profile, str(previous(parse_period(period))))

    def compressed(body: dict[str, object]) -> bytes:
        return gzip.compress(orjson.dumps(body), GZIP_LEVEL, mtime=0)

    answers = {EVERY_UNIT: compressed(ranking_body(book, profile, period, rows, before, embed=True))}
    for level in sorted({row[LEVEL] for row in rows if row[LEVEL] is not None}):
        answers[level_scope(level)] = compressed(ranking_body(
            book, profile, period, [r for r in rows if r[LEVEL] == level], [b for b in before if b[2] == level], embed=True,
        ))
    return answers


class RankingRefresher:
    def __init__(self, engine: AsyncEngine, book: ProfileBook, *, refresh_seconds: float = 1.0) -> None:
        self.engine = engine
        self.book = book
        self.refresh_seconds = refresh_seconds
        self.wake = asyncio.Event()  # set by the score publisher after a pass that changed figures

    async def run(
        self, *, poll_seconds: float = 1.0, backlog: Callable[[], int] = lambda: 0, busy_backlog: int = 20_000,
        scoring_behind: Callable[[], bool] = lambda: False,
    ) -> None:
        """Render whatever is stale, whenever woken (or every `poll_seconds`: changes by other replicas).

        While the consumer is far behind (catching up or replaying), or the score publisher is draining a backlog of
        changed counters, rankings wait: they would be stale at once, and rendering ten thousand units beside a
        pass of thousands of figures is what set the service's peak memory."""
        failures = 0
        while True:
            await wait_event(self.wake, poll_seconds)
            self.wake.clear()
            try:
                while backlog() <= busy_backlog and not scoring_behind():
                    started = time.monotonic()
                    if not await self.refresh_next():
                        break
                    await asyncio.sleep((time.monotonic() - started) * (1 / DUTY_CYCLE - 1))
                failures = 0
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # database trouble: the rankings stay stale, try again shortly
                failures += 1
                delay = min(10.0, 0.25 * 2**failures)
                log.warning("ranking refresh failed; will retry", error=repr(exc), retry_in=delay)
                await asyncio.sleep(delay)

    async def refresh_next(self, *, settled: bool = True) -> bool:
        """Render the longest-stale (profile, period) whose changes have settled; False when there is none."""
        sources = store.ranking_sources
        query = sa.select(sources.c.profile, sources.c.period, sources.c.revision).where(sources.c.stale_since.is_not(None))
        if settled:
            query = query.where(sources.c.stale_since <= datetime.now(timezone.utc) - timedelta(seconds=self.refresh_seconds))
        async with self.engine.connect() as conn:
            found = (await conn.execute(query.order_by(sources.c.stale_since, sources.c.profile, sources.c.period).limit(1))).first()
            if found is None:
                return False
            bodies = await render(conn, self.book, found.profile, found.period)
        await self._store(found.profile, found.period, found.revision, bodies)
        del bodies
        release_free_memory()  # tens of megabytes of rows and answers were just dropped: the next rendering starts low
        return True

    async def refresh_all(self) -> int:
        """Render every stale (profile, period) now (rebuilds, tests, benchmarks); returns how many."""
        count = 0
        while await self.refresh_next(settled=False):
            count += 1
        return count

    async def _store(self, profile: str, period: str, revision: int, bodies: dict[str, bytes]) -> None:
        now = datetime.now(timezone.utc)
        rows = [
            {"profile": profile, "period": period, "scope": scope, "body_gzip": body, "revision": revision, "rendered_at": now}
            for scope, body in sorted(bodies.items())
        ]
        table, sources = store.rankings, store.ranking_sources
        async with self.engine.begin() as conn:
            statement = _insert(conn.dialect.name)(table)
            # Never over a newer rendering (another replica's, of a later revision).
            statement = statement.on_conflict_do_update(
                index_elements=["profile", "period", "scope"],
                set_={name: statement.excluded[name] for name in ("body_gzip", "revision", "rendered_at")},
                where=table.c.revision <= statement.excluded.revision,
            )
            await conn.execute(statement, rows)
            # A scope that has no units any more (every unit of a level moved away) is not left behind.
            await conn.execute(table.delete().where(
                table.c.profile == profile, table.c.period == period, table.c.scope.not_in(list(bodies)), table.c.revision < revision,
            ))
            # Up to date only if no pass changed the figures while they were rendered.
            still = sa.case((sources.c.revision == revision, None), else_=sources.c.stale_since)
            await conn.execute(
                sources.update().where(sources.c.profile == profile, sources.c.period == period, sources.c.rendered_revision < revision)
                .values(rendered_revision=revision, stale_since=still)
            )
