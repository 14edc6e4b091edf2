"""Intake's HTTP contract on both databases: validation, idempotency, one rating per dossier and channel."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator

import orjson
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from services.intake.app import build
from services.intake.handlers import new_ids
from services.intake.keys import create_api_key
from shared.auth import issue_jwt
from shared.db import create_engine_for
from shared.settings import Settings
from tests.support.data import UNITS, dossier, rating
from tests.support.infra import HASH_KEY, JWT_SECRET, Backend

pytestmark = pytest.mark.integration
PHONE = "+84901234567"


class Intake:
    def __init__(self, client: TestClient, settings: Settings) -> None:
        self.client = client
        self.settings = settings
        self.admin = issue_jwt(JWT_SECRET, "admin", "admin")
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

    def post(self, path: str, body: object, token: str | None, **headers: str):  # type: ignore[no-untyped-def]
        all_headers = {"Authorization": f"Bearer {token}"} if token else {}
        return self.client.post(path, json=body, headers={**all_headers, **headers})


@pytest.fixture
def intake(backend: Backend, kafka_broker, topic_prefix: str) -> Iterator[Intake]:  # type: ignore[no-untyped-def]
    settings = Settings(
        database_url=backend.database_url, data_dir=backend.data_dir, kafka_bootstrap=kafka_broker.bootstrap,
        topic_prefix=topic_prefix, jwt_secret=JWT_SECRET, respondent_hash_key=HASH_KEY,
    )
    with TestClient(build(settings)) as client:
        api = Intake(client, settings)
        for code, unit in UNITS + [("74", {"name": "Tỉnh Bình Dương (demo)", "level": "province"})]:
            assert client.put(f"/v1/units/{code}", json=unit, headers={"Authorization": f"Bearer {api.admin}"}).status_code == 200
        yield api


def test_bad_input_is_a_problem_naming_the_field(intake: Intake) -> None:
    record = dossier()
    assert intake.post("/v1/dossiers", record, intake.portal).status_code == 202
    cases = [
        ({**rating(record["dossier_code"]), "overall": "ecstatic"}, "body.overall"),
        ({**rating(record["dossier_code"]), "criteria": {"access": 9}}, "body.criteria.access"),
        ({**rating(record["dossier_code"]), "submitted_at": "yesterday"}, "body.submitted_at"),
        ({**rating(record["dossier_code"]), "submitted_at": "2026-11-18T10:02:10"}, "body.submitted_at"),
        ({**rating(record["dossier_code"]), "surprise": 1}, "body.surprise"),
        ({**rating(record["dossier_code"]), "comment": "x" * 5000}, "body.comment"),
    ]
    for body, field in cases:
        answer = intake.post("/v1/ratings", body, intake.portal)
        assert answer.status_code == 422, (field, answer.text)
        assert answer.headers["content-type"] == "application/problem+json"
        assert field in [error["field"] for error in answer.json()["errors"]], answer.json()
    not_json = intake.client.post("/v1/ratings", content=b"{not json", headers={"Authorization": f"Bearer {intake.portal}", "Content-Type": "application/json"})
    assert not_json.status_code == 422 and not_json.headers["content-type"] == "application/problem+json"


def test_a_ratings_batch_that_is_not_a_batch_is_a_problem_naming_the_body(intake: Intake) -> None:
    # The batch route reads its body itself (validated whole from the JSON bytes); what is not {"items": [...]}
    # must still be 422 naming the field, like every other route's body.
    auth = {"Authorization": f"Bearer {intake.portal}"}
    cases = [
        (b"", {}, "body"),
        (b"{not json", {"Content-Type": "application/json"}, "body"),
        (b'{"items": 1}', {"Content-Type": "application/json"}, "body.items"),
        (b'{"items": []}', {"Content-Type": "application/json"}, "body.items"),
        (b'{"items": [{}], "more": 1}', {"Content-Type": "application/json"}, "body.more"),
        (b'{"items": [{}]}', {"Content-Type": "text/plain"}, "body"),
    ]
    for content, headers, field in cases:
        answer = intake.client.post("/v1/ratings/batch", content=content, headers={**auth, **headers})
        assert answer.status_code == 422, (content, answer.text)
        assert answer.headers["content-type"] == "application/problem+json"
        assert [error["field"] for error in answer.json()["errors"]] == [field], answer.json()
    record = dossier()
    assert intake.post("/v1/dossiers", record, intake.portal).status_code == 202
    good = rating(record["dossier_code"], channel="portal", device_id=None)
    typed = intake.client.post("/v1/ratings/batch", content=orjson.dumps({"items": [good]}),
                               headers={**auth, "Content-Type": "application/vnd.hailong+json; charset=utf-8"})
    assert typed.status_code == 200 and typed.json()["accepted"] == 1, typed.text


def test_authentication_and_unit_scope(intake: Intake) -> None:
    record = dossier("79.SNV")
    assert intake.post("/v1/dossiers", record, None).status_code == 401
    assert intake.post("/v1/dossiers", record, intake.kiosk).status_code == 403  # kiosks post ratings, not dossiers
    assert intake.post("/v1/dossiers", record, "hl_deadbeef0000_wrong").status_code == 401
    elsewhere = dossier("74")
    assert intake.post("/v1/dossiers", elsewhere, intake.portal).status_code == 202
    outside = intake.post("/v1/ratings", rating(elsewhere["dossier_code"]), intake.kiosk)
    assert outside.status_code == 403 and outside.json()["title"] == "Outside your unit"
    assert intake.client.put("/v1/units/79.X", json={"name": "x", "level": "agency"}, headers={"Authorization": f"Bearer {intake.portal}"}).status_code == 403


def test_idempotency_key_replays_the_answer_and_refuses_another_body(intake: Intake) -> None:
    record = dossier()
    intake.post("/v1/dossiers", record, intake.portal)
    body = rating(record["dossier_code"])
    first = intake.post("/v1/ratings", body, intake.kiosk, **{"Idempotency-Key": "k-1"})
    assert first.status_code == 202, first.text
    again = intake.post("/v1/ratings", dict(reversed(list(body.items()))), intake.kiosk, **{"Idempotency-Key": "k-1"})
    assert first.status_code == again.status_code == 202
    assert first.json() == again.json()
    other = intake.post("/v1/ratings", {**body, "overall": "normal"}, intake.kiosk, **{"Idempotency-Key": "k-1"})
    assert other.status_code == 409


def test_one_counted_rating_per_dossier_and_channel(intake: Intake) -> None:
    record = dossier()
    intake.post("/v1/dossiers", record, intake.portal)
    first = intake.post("/v1/ratings", rating(record["dossier_code"]), intake.kiosk)
    second = intake.post("/v1/ratings", rating(record["dossier_code"], "dissatisfied"), intake.kiosk)
    assert second.status_code == 409
    assert second.json()["first_rating_id"] == first.json()["rating_id"]
    online = intake.post("/v1/ratings", rating(record["dossier_code"], channel="online"), intake.portal)
    assert online.status_code == 202


def test_a_rating_before_completion_is_422_and_unknown_dossiers_wait(intake: Intake) -> None:
    record = dossier()
    intake.post("/v1/dossiers", record, intake.portal)
    early = intake.post("/v1/ratings", rating(record["dossier_code"], submitted_at="2026-11-18T09:00:00+07:00"), intake.kiosk)
    assert early.status_code == 422 and early.json()["errors"][0]["field"] == "body.submitted_at"

    later = dossier()
    held = intake.post("/v1/ratings", rating(later["dossier_code"]), intake.portal)
    assert held.status_code == 202 and held.json()["status"] == "pending_dossier"
    arrived = intake.post("/v1/dossiers", later, intake.portal)
    assert arrived.json()["released_ratings"] == 1
    stored = intake.client.get(f"/v1/ratings/{held.json()['rating_id']}", headers={"Authorization": f"Bearer {intake.admin}"})
    assert stored.json()["status"] == "accepted" and stored.json()["unit_code"] == "79.SNV"


def test_the_respondents_phone_is_never_stored_in_clear(intake: Intake) -> None:
    record = dossier()
    intake.post("/v1/dossiers", record, intake.portal)
    assert intake.post("/v1/ratings", rating(record["dossier_code"]), intake.kiosk).status_code == 202

    async def dump() -> str:
        engine = create_engine_for(intake.settings.database_url_for("intake"), "intake")
        try:
            async with engine.connect() as conn:
                texts = []
                for table in ("ratings", "outbox", "idempotency_keys", "dossiers"):
                    rows = (await conn.execute(sa.text(f"SELECT * FROM {table}"))).all()
                    texts.append(repr(rows))
                return "\n".join(texts)
        finally:
            await engine.dispose()

    everything = asyncio.run(dump())
    assert record["dossier_code"] in everything  # the dump really holds the data
    assert PHONE not in everything and "901234567" not in everything


def test_new_ids_are_distinct_time_ordered_uuids() -> None:
    before = int(time.time() * 1000)
    ids = list(new_ids(1000))  # rating and event ids of a write come from one read of the random source
    after = int(time.time() * 1000)
    assert len(set(ids)) == 1000
    assert all(uuid.UUID(value).version == 7 and uuid.UUID(value).variant == uuid.RFC_4122 for value in ids)
    assert ids == sorted(ids)  # primary keys: a write's rows go to the end of the index
    assert all(before <= uuid.UUID(value).int >> 80 <= after for value in ids)  # RFC 9562: Unix time in ms first
    assert len({uuid.UUID(value).int & (2**62 - 1) for value in ids}) == 1000  # and random bits after it
    assert list(new_ids(0)) == []
