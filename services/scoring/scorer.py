"""The score publisher: scores the counters that changed and emits scores.v1, in one transaction per pass.

Consumed batches only mark counters dirty. This worker, woken after every commit, scores each dirty row
under every profile, bumps each figure's version, writes the figures, their score.changed events (and
score.threshold_crossed / officer_score.changed) to the outbox and the SSE feed, and clears the dirty
marks of the revisions it scored — all in one transaction, so nothing is published twice or lost. On an
idle machine a rating is published within milliseconds of its batch; under load, every change made
between two passes is collapsed into one event per unit, period and profile instead of one per batch.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from datetime import datetime, timedelta, timezone
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.scoring import store
from services.scoring.domain.counters import COUNTERS
from services.scoring.domain.periods import months_of, periods_of_month
from services.scoring.domain.profiles import DEFINITE_BANDS, NOT_SATISFIED, OFFICER_PROFILES, SATISFIED, ProfileBook
from services.scoring.projection import chunks, current_inputs
from services.scoring.rankings import mark_stale
from shared import events, topics
from shared.aio import wait_event
from shared.bus.outbox import add_serialised_to_outbox
from shared.db import execute_many, in_values, insert_statement, upsert_statement
from shared.ids import new_id
from shared.logging import get_logger
from shared.memory import release_free_memory

log = get_logger(__name__)
SOURCE = "/hailong/scoring"
FEED_RETENTION = timedelta(hours=1)


@dataclass
class PassResult:
    unit_rows: int = 0
    officer_rows: int = 0
    more: bool = False  # dirty rows remained beyond this pass's batch
    events: int = 0
    feed_ids: list[int] = field(default_factory=list)


def _outgoing(topic: str, key: str, event_type: str, time: str, data: bytes) -> tuple[str, str, str, bytes]:
    """(topic, key, event id, CloudEvent bytes) with `data` already serialised."""
    event_id = new_id()
    head = orjson.dumps({"specversion": "1.0", "id": event_id, "source": SOURCE, "type": event_type, "subject": key,
                         "time": time, "datacontenttype": "application/json"})
    return topic, key, event_id, head[:-1] + b',"data":' + data + b"}"


def crossing(previous_definite: str | None, band: str) -> str | None:
    """The threshold event a new band causes: into "not satisfied", or out of it into "satisfied"."""
    if band == NOT_SATISFIED and previous_definite != NOT_SATISFIED:
        return "became_not_satisfied"
    if band == SATISFIED and previous_definite == NOT_SATISFIED:
        return "recovered"
    return None


def _dirty_query(table: sa.Table, key: str, limit: int, dialect: str) -> sa.Select[Any]:
    query = sa.select(table).where(table.c.dirty).order_by(table.c[key], table.c.month).limit(limit)
    if dialect == "postgresql":
        query = query.with_for_update(skip_locked=True)  # replicas share the work
    return query


async def _dirty_rows(conn: AsyncConnection, table: sa.Table, key: str, limit: int) -> tuple[list[Any], bool]:
    """Dirty month rows of whole subjects (units or officers), and whether more remain dirty after them: a
    subject's quarter, half and year figures are made from all its dirty months at once, not once per month."""
    rows = (await conn.execute(_dirty_query(table, key, limit, conn.dialect.name))).all()
    more = len(rows) == limit
    if more and getattr(rows[0], key) != getattr(rows[-1], key):
        last = getattr(rows[-1], key)
        rows = [row for row in rows if getattr(row, key) != last]  # its remaining months come with it next pass
    return rows, more


@lru_cache(maxsize=8)
def _clear_dirty_statement(table: sa.Table, keys: tuple[str, ...]) -> Any:
    # Only the revision scored: a batch that committed meanwhile leaves its row dirty for the next pass.
    return (
        table.update()
        .where(*(table.c[k] == sa.bindparam(f"k_{k}") for k in keys), table.c.revision == sa.bindparam("k_revision"))
        .values(dirty=False)
    )


async def _clear_dirty(conn: AsyncConnection, table: sa.Table, keys: list[str], rows: list[Any]) -> None:
    statement = _clear_dirty_statement(table, tuple(keys))
    await execute_many(conn, statement, [{**{f"k_{k}": getattr(r, k) for k in keys}, "k_revision": r.revision} for r in rows])


async def _period_counts(conn: AsyncConnection, table: sa.Table, key: str, dirty: list[Any]) -> dict[tuple[str, str], dict[str, int]]:
    """The counters of every period that contains a dirty month (month, quarter, half, year), summed from months."""
    wanted = {(getattr(r, key), period) for r in dirty for period in periods_of_month(r.month)}
    years = sorted({r.month[:4] for r in dirty})
    months = [f"{year}-{m:02d}" for year in years for m in range(1, 13)]
    by_month: dict[tuple[str, str], Any] = {}
    for part in chunks(sorted({getattr(r, key) for r in dirty})):
        for row in await conn.execute(sa.select(table).where(in_values(table.c[key], part, conn.dialect.name), table.c.month.in_(months))):
            by_month[(getattr(row, key), row.month)] = row
    out: dict[tuple[str, str], dict[str, int]] = {}
    for subject, period in wanted:
        total = dict.fromkeys(COUNTERS, 0)
        for month in months_of(period):
            row = by_month.get((subject, month))
            if row is not None:
                for name in COUNTERS:
                    total[name] += getattr(row, name)
        out[(subject, period)] = total
    return out


MAX_REST_SECONDS = 2.0  # the longest rest after a pass, whatever it took


class Scorer:
    def __init__(self, engine: AsyncEngine, book: ProfileBook, topic_prefix: str, *, batch_size: int = 250) -> None:
        self.engine = engine
        self.book = book
        self.topic = f"{topic_prefix}{topics.SCORES}"
        self.batch_size = batch_size
        self.wake = asyncio.Event()
        self.listeners: list[Callable[[], None]] = []  # told after each pass that published something
        self.draining = False  # in a pass of many batches (a backlog of dirty counters): rankings would be stale at once
        self._last_prune = datetime.now(timezone.utc)

    async def run(
        self, *, poll_seconds: float = 1.0, min_interval_seconds: float = 0.05, rest_factor: float = 0.0, on_published: Callable[[], None] | None = None,
        backlog: Callable[[], int] = lambda: 0, busy_backlog: int = 20_000, max_deferral_seconds: float = 15.0,
    ) -> None:
        """Score whatever is dirty, whenever woken (or every `poll_seconds`, for changes made by other replicas).

        While the consumer is far behind (`backlog` above `busy_backlog` records: catching up after an outage
        or a replay) scoring waits, for `max_deferral_seconds` at most: every rating changes 20 figures
        (4 periods × 5 profiles) of its unit and as many of each ancestor, so scoring each batch's changes
        would take the CPU the consumer needs and publish figures that are stale at once.

        After each pass it rests `rest_factor` times as long as the pass took (`min_interval_seconds` at least,
        `MAX_REST_SECONDS` at most):
        under steady load every pass finds every busy unit dirty again, and each figure it publishes costs as much
        again in workflow and the publisher, which consume every one. Resting in proportion bounds that work to a
        share of the CPU, whatever the load, and lets more ratings collapse into each figure as the load grows.
        """
        failures = 0
        last_pass = time.monotonic()
        while True:
            await wait_event(self.wake, poll_seconds)
            self.wake.clear()
            if backlog() > busy_backlog and time.monotonic() - last_pass < max_deferral_seconds:
                continue
            last_pass = time.monotonic()
            published = False
            started = time.monotonic()
            batches = 0
            try:
                while True:  # one pass: batches until nothing is dirty (a batch's trimmed subject comes next)
                    result = await self.publish_once()
                    batches += 1
                    self.draining = result.more
                    if result.events:
                        published = True
                        if on_published is not None:
                            on_published()
                        for listener in self.listeners:
                            listener()
                    if not result.more:
                        break
                    if backlog() > busy_backlog:
                        break  # the rest waits for the next pass
                await self._prune_feed()
                if batches > 1:
                    release_free_memory()  # a drained backlog's figures and events are garbage now
                failures = 0
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # database trouble: the dirty marks stay, try again shortly
                self.draining = False
                failures += 1
                delay = min(10.0, 0.25 * 2**failures)
                log.warning("score publishing failed; will retry", error=repr(exc), retry_in=delay)
                await asyncio.sleep(delay)
            # This pause lets the changes of several batches collapse into one event each.
            # In proportion to the pass, and never long: after draining a backlog (many batches in a row) the
            # next ratings must not wait for a rest as long as the catch-up.
            took = time.monotonic() - started
            rest = min(MAX_REST_SECONDS, rest_factor * took) if published else 0.0
            await asyncio.sleep(max(min_interval_seconds, rest))

    async def publish_once(self) -> PassResult:
        result = PassResult()
        async with self.engine.begin() as conn:
            await self._score_units(conn, result)
            await self._score_officers(conn, result)
        return result

    async def _score_units(self, conn: AsyncConnection, result: PassResult) -> None:
        rows, more = await _dirty_rows(conn, store.counters, "unit_code", self.batch_size)
        result.unit_rows = len(rows)
        result.more = result.more or more
        if not rows:
            return
        period_counts = await _period_counts(conn, store.counters, "unit_code", rows)
        units = sorted({unit for unit, _ in period_counts})
        periods = sorted({period for _, period in period_counts})
        agg = store.aggregates
        inputs: dict[tuple[str, str], dict[str, Any]] = {}
        previous: dict[tuple[str, str, str], Any] = {}
        registry: dict[str, Any] = {}
        for part in chunks(units):
            a = store.assessments
            for row in await conn.execute(sa.select(a.c.unit_code, a.c.period, a.c.inputs).where(in_values(a.c.unit_code, part, conn.dialect.name), a.c.period.in_(periods))):
                inputs[(row.unit_code, row.period)] = current_inputs(row.inputs)
            query = sa.select(agg.c.profile, agg.c.unit_code, agg.c.period, agg.c.version, agg.c.definite_band)
            # The profiles named so that the primary key (profile, unit, period) finds the rows: without them
            # every pass scanned the whole table (half a million figures after 1,000,000 ratings).
            query = query.where(agg.c.profile.in_(self.book.names), in_values(agg.c.unit_code, part, conn.dialect.name), agg.c.period.in_(periods))
            for row in await conn.execute(query):
                previous[(row.profile, row.unit_code, row.period)] = row
            u = store.units
            for row in await conn.execute(sa.select(u.c.code, u.c.name, u.c.level, u.c.parent_code).where(in_values(u.c.code, part, conn.dialect.name))):
                registry[row.code] = row
        now = datetime.now(timezone.utc)
        stamp = now.isoformat()
        figures, outgoing, feed = [], [], []
        for (unit_code, period), counts in sorted(period_counts.items()):
            unit = registry.get(unit_code)
            for profile in self.book.names:
                scored = self.book.score(profile, period, counts, inputs.get((unit_code, period), {}))
                if scored is None:
                    continue  # the profile was not in force in this period
                figure, version = scored
                before = previous.get((profile, unit_code, period))
                number = (before.version if before else 0) + 1
                definite = figure.band if figure.band in DEFINITE_BANDS else (before.definite_band if before else None)
                figures.append({
                    "profile": profile, "unit_code": unit_code, "period": period, "ratings": figure.ratings,
                    "dossiers": figure.dossiers, "score": figure.score, "band": figure.band, "version": number,
                    "updated_at": now, "max_score": figure.max_score, "provisional": figure.provisional,
                    "ranked": figure.ranked, "sample_size": figure.sample_size, "components": figure.components,
                    "profile_version": version.version, "definite_band": definite,
                })
                # The events are built as plain dicts and serialised once: scoring's own output, in the shape
                # of events.ScoreChanged (a test validates every event against the schemas).
                data = {
                    "unit_code": unit_code, "unit_name": unit.name if unit else None, "period": period, "profile": profile,
                    "score": figure.score, "max_score": figure.max_score, "band": figure.band, "components": figure.components,
                    "ratings": figure.ratings, "dossiers": figure.dossiers, "version": number, "updated_at": stamp,
                    "provisional": figure.provisional, "profile_version": version.version, "sample_size": figure.sample_size,
                    "ranked": figure.ranked, "unit_level": unit.level if unit else None, "parent_code": unit.parent_code if unit else None,
                }
                outgoing.append(_outgoing(self.topic, unit_code, events.SCORE_CHANGED, stamp, orjson.dumps(data)))
                # The live feed carries the change without its components (the scorecard has them): a tenth the size.
                change = {k: v for k, v in data.items() if k != "components"}
                feed.append({"profile": profile, "unit_code": unit_code, "period": period, "data": orjson.dumps(change).decode(), "created_at": now})
                direction = crossing(before.definite_band if before else None, figure.band)
                if direction is not None:
                    crossed = {"unit_code": unit_code, "period": period, "profile": profile, "direction": direction,
                               "score": figure.score, "band": figure.band, "version": number, "at": stamp}
                    outgoing.append(_outgoing(self.topic, unit_code, events.SCORE_THRESHOLD_CROSSED, stamp, orjson.dumps(crossed)))
        dialect = conn.dialect.name
        if figures:
            await execute_many(conn, upsert_statement(agg, ["profile", "unit_code", "period"], list(figures[0]), dialect), figures)
            await execute_many(conn, insert_statement(store.score_feed), feed)
            await add_serialised_to_outbox(conn, store.bus, outgoing)
            await mark_stale(conn, {(f["profile"], f["period"]) for f in figures}, now)
        await _clear_dirty(conn, store.counters, ["unit_code", "month"], rows)
        result.events += len(outgoing)

    async def _score_officers(self, conn: AsyncConnection, result: PassResult) -> None:
        rows, more = await _dirty_rows(conn, store.officer_counters, "officer_id", self.batch_size)
        result.officer_rows = len(rows)
        result.more = result.more or more
        if not rows:
            return
        oa = store.officer_aggregates
        period_counts = await _period_counts(conn, store.officer_counters, "officer_id", rows)
        unit_of = {r.officer_id: r.unit_code for r in rows}
        officers = sorted(unit_of)
        previous: dict[tuple[str, str, str], int] = {}
        for part in chunks(officers):
            query = sa.select(oa.c.profile, oa.c.officer_id, oa.c.period, oa.c.version).where(
                oa.c.profile.in_(OFFICER_PROFILES), in_values(oa.c.officer_id, part, conn.dialect.name),
            )
            for row in await conn.execute(query):
                previous[(row.profile, row.officer_id, row.period)] = row.version
        now = datetime.now(timezone.utc)
        stamp = now.isoformat()
        figures, outgoing = [], []
        for (officer_id, period), counts in sorted(period_counts.items()):
            for profile in OFFICER_PROFILES:
                scored = self.book.score(profile, period, counts, {})
                if scored is None:
                    continue
                figure, _version = scored
                number = previous.get((profile, officer_id, period), 0) + 1
                figures.append({
                    "profile": profile, "officer_id": officer_id, "period": period, "unit_code": unit_of[officer_id],
                    "score": figure.score, "max_score": figure.max_score, "band": figure.band, "sample_size": figure.sample_size,
                    "ratings": figure.ratings, "components": figure.components, "version": number, "updated_at": now,
                })
                data = {
                    "officer_id": officer_id, "unit_code": unit_of[officer_id], "period": period, "profile": profile,
                    "score": figure.score, "max_score": figure.max_score, "band": figure.band, "components": figure.components,
                    "ratings": figure.ratings, "version": number, "updated_at": stamp,
                }
                outgoing.append(_outgoing(self.topic, unit_of[officer_id], events.OFFICER_SCORE_CHANGED, stamp, orjson.dumps(data)))
        if figures:
            await execute_many(conn, upsert_statement(oa, ["profile", "officer_id", "period"], list(figures[0]), conn.dialect.name), figures)
            await add_serialised_to_outbox(conn, store.bus, outgoing)
        await _clear_dirty(conn, store.officer_counters, ["officer_id", "month"], rows)
        result.events += len(outgoing)

    async def _prune_feed(self) -> None:
        now = datetime.now(timezone.utc)
        if now - self._last_prune < timedelta(minutes=1):
            return
        self._last_prune = now
        feed = store.score_feed
        async with self.engine.begin() as conn:
            # The newest row stays: its id is the "anything published since?" mark of the rankings cache.
            newest = sa.select(sa.func.max(feed.c.id)).scalar_subquery()
            await conn.execute(feed.delete().where(feed.c.created_at < now - FEED_RETENTION, feed.c.id < newest))
