"""Publisher service: pushes results to the institution map and serves them to the public (composition root)."""

from __future__ import annotations

from fastapi import FastAPI

from services.publisher import store
from services.publisher.api import router
from services.publisher.deliveries import deliver_to_map, wake_deliveries
from services.publisher.handlers import MAP_TARGET, build_handlers
from shared import topics
from shared.service import ServiceSpec, create_app
from shared.settings import Settings, get_settings


def build(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    spec = ServiceSpec(
        name="publisher",
        title="Hài Lòng publisher",
        bus=store.bus,
        routers=[router],
        subscriptions=[topics.SCORES, topics.TICKETS],
        handlers=build_handlers([MAP_TARGET] if settings.map_url else []),
        workers=[deliver_to_map],
        on_events_committed=wake_deliveries,
        required_secrets=("jwt_secret", "map_signing_secret") if settings.map_url else ("jwt_secret",),
    )
    return create_app(spec, settings)


app = build()
