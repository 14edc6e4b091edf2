"""Scoring service: turns dossiers and ratings into scores and rankings as events arrive (composition root)."""

from __future__ import annotations

from fastapi import FastAPI

from services.scoring import store
from services.scoring.api import router
from services.scoring.handlers import HANDLERS, publish_changed_scores
from shared import topics
from shared.service import ServiceSpec, create_app
from shared.settings import Settings


def build(settings: Settings | None = None) -> FastAPI:
    spec = ServiceSpec(
        name="scoring",
        title="Hài Lòng scoring",
        bus=store.bus,
        routers=[router],
        subscriptions=[topics.UNITS, topics.DOSSIERS, topics.RATINGS, topics.ASSESSMENTS],
        handlers=HANDLERS,
        before_commit=publish_changed_scores,
    )
    return create_app(spec, settings)


app = build()
