"""Workflow service: remediation tickets, phúc tra and reporting duties on the working-day calendar (composition root)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from fastapi import FastAPI

from services.workflow import store
from services.workflow.api import router
from services.workflow.duties import CLOCK, duty_worker, notification_worker, wake_notifications
from services.workflow.handlers import build_handlers, publish_touched_tickets, store_scores
from shared import events, topics
from shared.bus.consumer import Tx
from shared.service import Runtime, ServiceSpec, create_app
from shared.settings import Settings, get_settings


def build(settings: Settings | None = None, clock: Callable[[], datetime] | None = None) -> FastAPI:
    """`clock` replaces the wall clock of the duties and the API (tests set "now"; production leaves it)."""
    settings = settings or get_settings()

    async def set_clock(runtime: Runtime) -> None:
        if clock is not None:
            runtime.extras[CLOCK] = clock

    async def before_commit(tx: Tx) -> None:
        await store_scores(tx, settings)  # first: an Art. 6 review may open a ticket
        await publish_touched_tickets(tx, settings)

    spec = ServiceSpec(
        name="workflow",
        title="Hài Lòng workflow",
        bus=store.bus,
        routers=[router],
        subscriptions=[topics.UNITS, topics.DOSSIERS, topics.RATINGS, topics.SCORES],
        handlers=build_handlers(settings),
        before_commit=before_commit,
        # A figure is stored only when its version is newer than the one held (store_scores), so applying one again
        # changes nothing: no processed_events row for each of the thousand figures a busy second brings.
        idempotent_event_types=frozenset({events.SCORE_CHANGED, events.OFFICER_SCORE_CHANGED}),
        workers=[duty_worker, notification_worker],
        on_events_committed=wake_notifications,
        on_start=[set_clock],
    )
    return create_app(spec, settings)


app = build()
