"""Inputs schemathesis found answered 500 (or not answered at all) by `make chaos`, each now a 422 problem naming
the field — in process, on both databases (the NUL cases failed on PostgreSQL only, which cannot store NUL).

- a period of year 0000 or 9999 passed the pattern, then had no first or last day (scoring, publisher);
- a NUL character in a query, a path or a JSON body reached PostgreSQL (workflow, publisher, intake);
- a control character in the publisher's `profile` went into a Content-Disposition header: no answer at all;
- a snapshot `version` beyond an INTEGER's range reached PostgreSQL.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from shared.auth import issue_jwt
from shared.settings import Settings
from tests.support.infra import HASH_KEY, JWT_SECRET, Backend

pytestmark = pytest.mark.integration
ADMIN = {"Authorization": f"Bearer {issue_jwt(JWT_SECRET, 'admin', 'admin')}"}


@pytest.fixture
def app_of(backend: Backend, kafka_broker, topic_prefix: str) -> Iterator[Any]:  # type: ignore[no-untyped-def]
    clients: list[TestClient] = []

    def start(service: str) -> TestClient:
        settings = Settings(database_url=backend.database_url, data_dir=backend.data_dir, kafka_bootstrap=kafka_broker.bootstrap,
                            topic_prefix=topic_prefix, jwt_secret=JWT_SECRET, respondent_hash_key=HASH_KEY)
        client = TestClient(importlib.import_module(f"services.{service}.app").build(settings))
        client.__enter__()
        clients.append(client)
        return client

    yield start
    for client in clients:
        client.__exit__(None, None, None)


def _names(response: Any, field: str) -> None:
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert field in [e["field"] for e in response.json()["errors"]], response.json()


def test_scoring_refuses_periods_without_days(app_of: Any) -> None:
    scoring = app_of("scoring")
    for period in ("0000", "0000-Q1", "9999-12", "1999"):
        _names(scoring.get("/v1/rankings", params={"period": period}), "query.period")
        _names(scoring.get("/v1/units/79.SNV/scores", params={"period": period}), "query.period")
    assert scoring.get("/v1/rankings", params={"period": "2026-Q4"}).status_code == 200


def test_publisher_refuses_bad_periods_profiles_versions_and_nul(app_of: Any) -> None:
    publisher = app_of("publisher")
    _names(publisher.get("/v1/public/rankings", params={"period": "0000", "format": "csv"}), "query.period")
    _names(publisher.get("/v1/public/rankings", params={"profile": "\x1f", "format": "csv"}), "query.profile")
    _names(publisher.get("/v1/public/rankings", params={"edition": "official", "version": 2**31}), "query.version")
    _names(publisher.get("/v1/public/snapshots", params={"profile": "hcmc\x002024"}), "query.profile")
    _names(publisher.post("/v1/snapshots", json={"period": "0000", "profile": "hcmc-2024", "reason": "late"}, headers=ADMIN),
           "body.period")
    _names(publisher.post("/v1/snapshots", json={"period": "2025", "profile": "a\u0000", "reason": "late"}, headers=ADMIN),
           "body.profile")
    assert publisher.get("/v1/public/snapshots", params={"profile": "hcmc-2024"}).status_code == 200


def test_workflow_refuses_nul_in_queries_paths_and_bodies(app_of: Any) -> None:
    workflow = app_of("workflow")
    _names(workflow.put("/v1/units/79.SNV/contact", json={"head_email": "head\u0000@snv.hcm.gov.vn"}, headers=ADMIN),
           "body.head_email")
    _names(workflow.get("/v1/verifications", params={"cursor": "\x00"}, headers=ADMIN), "query.cursor")
    _names(workflow.get("/v1/tickets", params={"status": "open\x00"}, headers=ADMIN), "query.status")
    _names(workflow.get("/v1/tickets/%00", headers=ADMIN), "path")
    assert workflow.put("/v1/units/79.SNV/contact", json={"head_email": "head@snv.hcm.gov.vn"}, headers=ADMIN).status_code == 200


def test_intake_refuses_nul_in_a_rating_naming_the_field(app_of: Any) -> None:
    intake = app_of("intake")
    rating = {"dossier_code": "H29-NUL-1", "channel": "portal", "submitted_at": "2026-11-18T10:02:10+07:00",
              "overall": "dissatisfied", "reasons": ["other"], "comment": "chờ lâu\u0000"}
    _names(intake.post("/v1/ratings", json=rating, headers=ADMIN), "body.comment")
    _names(intake.post("/v1/ratings/batch", json={"items": [rating]}, headers=ADMIN), "body.items.0.comment")
    rating["comment"] = "a backslash and u0000 is text: \\u0000"
    assert intake.post("/v1/ratings", json=rating, headers=ADMIN).status_code == 202
