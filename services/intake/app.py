"""Intake service: the front door for ratings, dossier completions and the unit registry (composition root)."""

from __future__ import annotations

import asyncio
import sys

from fastapi import FastAPI

from services.intake import handlers, retention, store
from services.intake.api import router, submissions
from services.intake.domain.integrity import IntegrityLimits
from services.intake.keys import DatabaseApiKeyStore
from services.intake.registry import Registry
from services.intake.writer import RatingWriter
from shared import topics
from shared.logging import get_logger
from shared.memory import tune_garbage_collector
from shared.ratelimit import RateLimiter
from shared.service import Runtime, ServiceSpec, create_app
from shared.settings import Settings, get_settings

DEV_RESPONDENT_HASH_KEY = "hailong-dev-only-respondent-key"
INTAKE_GC_GEN0_THRESHOLD = 25_000  # young-generation collections: see _configure
log = get_logger(__name__)


async def _configure(runtime: Runtime) -> None:
    # The database driver runs in a thread (aiosqlite, and SQLAlchemy's greenlet bridge): each statement is a
    # hand-over between threads, and with the default 5 ms GIL switch interval a busy event loop made every
    # hand-over wait up to 5 ms (a group of posts took 45 ms instead of 5). See bench/notes/intake.md.
    sys.setswitchinterval(0.0005)
    settings = runtime.settings
    registry = Registry()
    await registry.load(runtime.engine)
    runtime.extras["intake"] = handlers.Intake(
        settings=settings,
        hash_key=settings.respondent_hash_key or DEV_RESPONDENT_HASH_KEY,
        registry=registry,
        limits=IntegrityLimits(
            burst_max_ratings=settings.intake_burst_max_ratings,
            burst_window_seconds=settings.intake_burst_window_seconds,
            repeat_max_ratings=settings.intake_repeat_max_ratings,
            repeat_window_days=settings.intake_repeat_window_days,
        ),
    )
    runtime.extras["limiter"] = RateLimiter()
    runtime.extras["rating_writer"] = RatingWriter(runtime)
    # A batch of 1,000 ratings keeps ~15,000 container objects alive until its answer, then drops them: at the
    # default threshold (700) each batch ran ~25 young collections walking them and now and then a full one
    # (3–4 µs of CPU per rating in process). At 25,000 a batch's objects are mostly gone before a collection.
    tune_garbage_collector(INTAKE_GC_GEN0_THRESHOLD)


async def write_ratings(runtime: Runtime) -> None:
    """The group-commit writer of single rating posts (writer.py)."""
    await runtime.extras["rating_writer"].run()


async def reload_registry(runtime: Runtime) -> None:
    """Pick up registry changes made by other replicas or the CLI."""
    interval = runtime.settings.intake_cache_seconds or 30.0
    while True:
        await asyncio.sleep(interval)
        try:
            await runtime.extras["intake"].registry.load(runtime.engine)
        except Exception as exc:  # the database may be briefly away; the old view stays in use
            log.warning("registry reload failed", error=repr(exc)[:300])


async def sweep_unmatched(runtime: Runtime) -> None:
    """Ratings whose dossier never came within the window become `unmatched` (visible in metrics and the API)."""
    while True:
        try:
            swept = await handlers.sweep_unmatched(runtime.engine, runtime.settings.intake_pending_window_days)
            if swept:
                log.warning("ratings unmatched: no dossier within the window", count=swept)
        except Exception as exc:
            log.warning("unmatched sweep failed", error=repr(exc)[:300])
        await asyncio.sleep(runtime.settings.intake_sweep_seconds)


async def prune_expired(runtime: Runtime) -> None:
    """Forget idempotent answers past their retention, and officer ratings past the repeat window (retention.py)."""
    settings = runtime.settings
    while True:
        try:
            removed = await retention.prune_expired(
                runtime.engine, idempotency_hours=settings.intake_idempotency_retention_hours,
                repeat_window_days=settings.intake_repeat_window_days,
            )
            if any(removed.values()):
                log.info("expired rows pruned", **removed)
        except Exception as exc:  # the database may be away; the rows wait for the next round
            log.warning("pruning expired rows failed", error=repr(exc)[:300])
        await asyncio.sleep(settings.intake_prune_seconds)


def build(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    spec = ServiceSpec(
        name="intake",
        title="Hài Lòng intake",
        bus=store.bus,
        routers=[submissions, router],
        subscriptions=[topics.VERIFICATIONS],
        handlers=handlers.HANDLERS,
        workers=[write_ratings, reload_registry, sweep_unmatched, prune_expired],
        api_key_store=lambda runtime: DatabaseApiKeyStore(runtime.engine, runtime.settings.intake_cache_seconds),
        required_secrets=("jwt_secret", "respondent_hash_key"),
        on_start=[_configure],
        max_body_bytes=settings.intake_max_body_bytes,
        large_body_paths={"/batch": settings.intake_max_batch_body_bytes, "/imports/paper": settings.intake_max_batch_body_bytes},
        relay_in_child_process=True,  # publishing beside the requests, not between them (bench/notes/intake.md)
        sqlite_on_loop=True,  # no thread hand-over per statement and per row (bench/notes/intake.md)
    )
    return create_app(spec, settings)


app = build()
