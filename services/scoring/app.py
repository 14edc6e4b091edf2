"""Scoring service: turns dossiers, ratings and assessments into the regulations' indices and live rankings
(composition root)."""

from __future__ import annotations


from fastapi import FastAPI
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from services.scoring import store
from services.scoring.api import router
from services.scoring.domain.profiles import ProfileBook
from services.scoring.feed import Broadcast
from services.scoring.handlers import HANDLERS, IDEMPOTENT_BY_NATURAL_KEY, apply_scoring_batch
from services.scoring.rankings import RankingRefresher
from services.scoring.reads import RankingCache
from services.scoring.scorer import Scorer
from shared import topics
from shared.memory import tune_garbage_collector
from shared.ratelimit import RateLimiter
from shared.service import Runtime, ServiceSpec, create_app
from shared.settings import Settings


async def _configure(runtime: Runtime) -> None:
    settings = runtime.settings
    # Unknown profiles or parameters in the configuration stop the start: a silent default would mis-score.
    book = ProfileBook.build(settings.scoring_profile_parameters, settings.scoring_minimum_count)
    broadcast = Broadcast()
    scorer = Scorer(runtime.engine, book, settings.topic_prefix)
    scorer.listeners.append(broadcast.notify)
    refresher = RankingRefresher(runtime.engine, book, refresh_seconds=settings.scoring_ranking_refresh_seconds)
    scorer.listeners.append(refresher.wake.set)
    runtime.extras.update(
        book=book, broadcast=broadcast, scorer=scorer, refresher=refresher, rate_limiter=RateLimiter(), ranking_cache=RankingCache(),
    )
    await tune_sqlite_connections(runtime.engine, settings.scoring_sqlite_cache_mib)
    tune_garbage_collector(settings.scoring_gc_gen0_threshold)


async def tune_sqlite_connections(engine: AsyncEngine, mib: int) -> None:
    """Each SQLite connection's page cache at `mib` (after shared.db's pragmas, which set 64 MiB), checkpoints
    every ~40 MB of WAL instead of 4 MB — a page rewritten by many batches (a busy unit's counters) is copied back
    once (catching up on 1 M ratings: 56 instead of 60 µs CPU per event) — and commits without an fsync each
    (synchronous=NORMAL instead of shared.db's FULL). Scoring's database alone: a power cut may then take back
    what followed the last checkpoint, which scoring re-derives from the topics (its offsets go back with it) but
    intake, the ratings' first home, would lose."""
    if engine.dialect.name != "sqlite":
        return

    @event.listens_for(engine.sync_engine, "connect")
    def _cache_size(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA cache_size=-{int(mib) * 1024}")
        cursor.execute("PRAGMA wal_autocheckpoint=10000")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    await engine.dispose()  # the connection the migrations used was opened with the larger cache


async def publish_scores(runtime: Runtime) -> None:
    scorer: Scorer = runtime.extras["scorer"]
    consumer = runtime.consumer
    await scorer.run(
        min_interval_seconds=runtime.settings.scoring_publish_interval_seconds,
        rest_factor=runtime.settings.scoring_publish_rest_factor, on_published=runtime.relay.wake,
        backlog=lambda: consumer.lag if consumer is not None else 0,
    )


async def refresh_rankings(runtime: Runtime) -> None:
    refresher: RankingRefresher = runtime.extras["refresher"]
    scorer: Scorer = runtime.extras["scorer"]
    consumer = runtime.consumer
    await refresher.run(backlog=lambda: consumer.lag if consumer is not None else 0, scoring_behind=lambda: scorer.draining)


def _wake_scorer(runtime: Runtime, _topics: list[str]) -> None:
    runtime.extras["scorer"].wake.set()


def build(settings: Settings | None = None) -> FastAPI:
    spec = ServiceSpec(
        name="scoring",
        title="Hài Lòng scoring",
        bus=store.bus,
        routers=[router],
        subscriptions=[topics.UNITS, topics.DOSSIERS, topics.RATINGS, topics.ASSESSMENTS, topics.VERIFICATIONS],
        handlers=HANDLERS,
        before_commit=apply_scoring_batch,
        idempotent_event_types=IDEMPOTENT_BY_NATURAL_KEY,
        workers=[publish_scores, refresh_rankings],
        on_start=[_configure],
        on_events_committed=_wake_scorer,
    )
    return create_app(spec, settings)


app = build()
