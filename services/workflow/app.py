"""Workflow service: remediation tickets with statutory deadlines (composition root)."""

from __future__ import annotations

from fastapi import FastAPI

from services.workflow import store
from services.workflow.api import router
from services.workflow.handlers import HANDLERS
from shared import topics
from shared.service import ServiceSpec, create_app
from shared.settings import Settings


def build(settings: Settings | None = None) -> FastAPI:
    spec = ServiceSpec(
        name="workflow",
        title="Hài Lòng workflow",
        bus=store.bus,
        routers=[router],
        subscriptions=[topics.RATINGS, topics.SCORES],
        handlers=HANDLERS,
    )
    return create_app(spec, settings)


app = build()
