"""Publisher service: pushes results to the institution map and the national portal, freezes official
snapshots, and serves the public page, open data and the portal's changes feed (composition root)."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from starlette.middleware.gzip import GZipMiddleware

from services.publisher import store
from services.publisher.api import POLICY
from services.publisher.api import router as operator_router
from services.publisher.deliveries import deliver_results, delivery_targets, wake_deliveries
from services.publisher.handlers import PublicationPolicy, Target, build_handlers, build_publish_results
from services.publisher.live import follow_changes, start_live_feed, wake_live_feed
from services.publisher.pages import STATIC_DIR
from services.publisher.pages import router as pages_router
from services.publisher.public import router as public_router
from services.publisher.retention import prune_history
from services.publisher.snapshots import build_snapshot_worker
from shared import events, topics
from shared.service import Runtime, ServiceSpec, create_app
from shared.settings import Settings, get_settings


def publication_policy(settings: Settings) -> PublicationPolicy:
    targets = tuple(Target(target.name, target.profiles) for target in delivery_targets(settings))
    return PublicationPolicy(min_ratings=settings.public_min_ratings, targets=targets)


def build(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    policy = publication_policy(settings)

    async def remember_policy(runtime: Runtime) -> None:
        runtime.extras[POLICY] = policy

    def on_events_committed(runtime: Runtime, emitted: list[str]) -> None:
        wake_deliveries(runtime)
        wake_live_feed(runtime)

    secrets = ["jwt_secret"]
    if settings.map_url:
        secrets.append("map_signing_secret")
    if settings.portal_url:
        secrets.append("portal_signing_secret")
    spec = ServiceSpec(
        name="publisher",
        title="Hài Lòng publisher",
        bus=store.bus,
        routers=[pages_router, public_router, operator_router],
        # Nothing about officers is public: officer.upserted and officer_score.changed have no handler here.
        subscriptions=[topics.UNITS, topics.SCORES, topics.TICKETS],
        handlers=build_handlers(),
        # A score event is applied by its natural key (unit, period, profile, version): a version not newer than
        # the stored one changes nothing, so a re-sent event is absorbed without a processed_events row for each.
        idempotent_event_types=frozenset({events.SCORE_CHANGED}),
        before_commit=build_publish_results(policy),
        workers=[deliver_results, build_snapshot_worker(policy), follow_changes, prune_history],
        on_events_committed=on_events_committed,
        on_start=[remember_policy, start_live_feed],
        required_secrets=tuple(secrets),
    )
    app = create_app(spec, settings)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    app.add_middleware(GZipMiddleware, minimum_size=1024)
    return app


app = build()
