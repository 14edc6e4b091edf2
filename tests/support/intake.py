"""An in-process intake (FastAPI TestClient) on a real database and the session's real Kafka broker."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from services.intake.app import build
from services.intake.keys import create_api_key
from shared.auth import issue_jwt
from shared.db import create_engine_for
from shared.settings import Settings
from tests.support.data import UNITS
from tests.support.infra import HASH_KEY, JWT_SECRET, Backend

EXTRA_UNITS = [
    ("74", {"name": "Tỉnh Bình Dương (demo)", "level": "province"}),
    ("79.SNV.P1", {"name": "Phòng một (demo)", "level": "agency", "parent_code": "79.SNV"}),
]


class IntakeClient:
    def __init__(self, client: TestClient, settings: Settings) -> None:
        self.client = client
        self.settings = settings
        self.admin = issue_jwt(JWT_SECRET, "admin", "admin")
        self.inspector = issue_jwt(JWT_SECRET, "inspector", "inspector")
        self.unit_head = issue_jwt(JWT_SECRET, "head", "unit_head", "79.SNV")
        self.portal = self.key("portal", None)
        self.kiosk = self.key("kiosk", "79.SNV")

    def key(self, role: str, unit: str | None) -> str:
        async def create() -> str:
            engine = create_engine_for(self.settings.database_url_for("intake"), "intake")
            try:
                async with engine.begin() as conn:
                    return (await create_api_key(conn, role, f"test {role}", unit)).token
            finally:
                await engine.dispose()

        return asyncio.run(create())

    def post(self, path: str, body: object, token: str | None, **headers: str) -> httpx.Response:
        all_headers = {"Authorization": f"Bearer {token}"} if token else {}
        return self.client.post(path, json=body, headers={**all_headers, **headers})

    def put(self, path: str, body: object, token: str | None) -> httpx.Response:
        return self.client.put(path, json=body, headers={"Authorization": f"Bearer {token}"} if token else {})

    def get(self, path: str, token: str | None = None, **params: Any) -> httpx.Response:
        return self.client.get(path, params=params, headers={"Authorization": f"Bearer {token}"} if token else {})

    def sql(self, query: str) -> list[Any]:
        async def run() -> list[Any]:
            engine = create_engine_for(self.settings.database_url_for("intake"), "intake")
            try:
                async with engine.connect() as conn:
                    return list((await conn.execute(sa.text(query))).all())
            finally:
                await engine.dispose()

        return asyncio.run(run())


def intake_settings(backend: Backend, bootstrap: str, prefix: str, **overrides: Any) -> Settings:
    return Settings(
        database_url=backend.database_url, data_dir=backend.data_dir, kafka_bootstrap=bootstrap, topic_prefix=prefix,
        jwt_secret=JWT_SECRET, respondent_hash_key=HASH_KEY, outbox_poll_seconds=0.2, **overrides,
    )


def running_intake(settings: Settings) -> Iterator[IntakeClient]:
    with TestClient(build(settings)) as client:
        api = IntakeClient(client, settings)
        for code, unit in UNITS + EXTRA_UNITS:
            assert api.put(f"/v1/units/{code}", unit, api.admin).status_code == 200
        yield api


@pytest.fixture
def intake(backend: Backend, kafka_broker, topic_prefix: str) -> Iterator[IntakeClient]:  # type: ignore[no-untyped-def]
    yield from running_intake(intake_settings(backend, kafka_broker.bootstrap, topic_prefix))
