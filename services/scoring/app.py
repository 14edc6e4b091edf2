"""Scoring service: turns dossiers, ratings and assessments into the regulations' indices and live rankings
(composition root)."""

from __future__ import annotations

from fastapi import FastAPI

from services.scoring import store
from services.scoring.api import router
from services.scoring.domain.profiles import ProfileBook
from services.scoring.feed import Broadcast
from services.scoring.handlers import HANDLERS, IDEMPOTENT_BY_NATURAL_KEY, apply_scoring_batch
from services.scoring.reads import RankingCache
from services.scoring.scorer import Scorer
from shared import topics
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
    runtime.extras.update(book=book, broadcast=broadcast, scorer=scorer, rate_limiter=RateLimiter(), ranking_cache=RankingCache())


async def publish_scores(runtime: Runtime) -> None:
    scorer: Scorer = runtime.extras["scorer"]
    consumer = runtime.consumer
    await scorer.run(
        min_interval_seconds=runtime.settings.scoring_publish_interval_seconds, on_published=runtime.relay.wake,
        backlog=lambda: consumer.lag if consumer is not None else 0,
    )


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
        workers=[publish_scores],
        on_start=[_configure],
        on_events_committed=_wake_scorer,
    )
    return create_app(spec, settings)


app = build()
