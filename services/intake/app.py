"""Intake service: the front door for ratings, dossier completions and the unit registry (composition root)."""

from __future__ import annotations

from fastapi import FastAPI

from services.intake import store
from services.intake.api import router
from services.intake.keys import DatabaseApiKeyStore
from shared.service import Runtime, ServiceSpec, create_app
from shared.settings import Settings

DEV_RESPONDENT_HASH_KEY = "hailong-dev-only-respondent-key"


async def _configure(runtime: Runtime) -> None:
    runtime.extras["respondent_hash_key"] = runtime.settings.respondent_hash_key or DEV_RESPONDENT_HASH_KEY


def build(settings: Settings | None = None) -> FastAPI:
    spec = ServiceSpec(
        name="intake",
        title="Hài Lòng intake",
        bus=store.bus,
        routers=[router],
        api_key_store=lambda runtime: DatabaseApiKeyStore(runtime.engine),
        required_secrets=("jwt_secret", "respondent_hash_key"),
        on_start=[_configure],
    )
    return create_app(spec, settings)


app = build()
