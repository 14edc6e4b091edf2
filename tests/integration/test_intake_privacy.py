"""Respondents' identities are confidential (HCMC 104/2024 Art. 3.4): the clear phone and ID number are in no
table, no log line and no Kafka record of a real intake process — searched for, not assumed."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from services.intake.keys import create_api_key
from shared.auth import issue_jwt
from shared.db import create_engine_for
from shared.settings import Settings
from tests.support.data import UNITS, dossier, rating
from tests.support.infra import JWT_SECRET, Backend, ServiceProcess, read_topic, service_env

pytestmark = [pytest.mark.integration, pytest.mark.e2e]
PHONE = "+84 912 345 678"
ID_NUMBER = "079123456789"
STAFF_PHONE = "0987654321"
SECRETS = ("912345678", "912 345 678", ID_NUMBER, "987654321")
TABLES = ["ratings", "dossiers", "outbox", "idempotency_keys", "officers", "officer_devices", "rating_officers",
          "rating_slots", "assessments", "units", "api_keys"]


def database_text(backend: Backend) -> str:
    async def dump() -> str:
        engine = create_engine_for(Settings(database_url=backend.database_url, data_dir=backend.data_dir).database_url_for("intake"), "intake")
        try:
            async with engine.connect() as conn:
                return "\n".join([repr((await conn.execute(sa.text(f"SELECT * FROM {t}"))).all()) for t in TABLES])
        finally:
            await engine.dispose()

    return asyncio.run(dump())


def new_key(backend: Backend, role: str, unit: str | None) -> str:
    async def create() -> str:
        engine = create_engine_for(Settings(database_url=backend.database_url, data_dir=backend.data_dir).database_url_for("intake"), "intake")
        try:
            async with engine.begin() as conn:
                return (await create_api_key(conn, role, f"test {role}", unit)).token
        finally:
            await engine.dispose()

    return asyncio.run(create())


def test_the_clear_phone_and_id_number_are_nowhere(kafka_broker, topic_prefix: str, backend: Backend, tmp_path: Path) -> None:
    intake = ServiceProcess("intake", service_env(backend, kafka_broker.bootstrap, topic_prefix, HAILONG_LOG_LEVEL="DEBUG"), tmp_path / "logs")
    intake.start()
    try:
        admin = issue_jwt(JWT_SECRET, "admin", "admin")
        kiosk, portal = new_key(backend, "kiosk", "79.SNV"), new_key(backend, "portal", None)
        for code, unit in UNITS:
            assert intake.send("PUT", f"/v1/units/{code}", admin, unit).status_code == 200
        assert intake.send("PUT", "/v1/units/79.SNV/officers/79.SNV.CB0099", admin, {"name": "Trần Thị B", "phone": STAFF_PHONE}).status_code == 200
        record = dossier("79.SNV")
        assert intake.send("POST", "/v1/dossiers", portal, record).status_code == 202
        sent = intake.send("POST", "/v1/ratings", kiosk, rating(record["dossier_code"], respondent={"phone": PHONE, "id_number": ID_NUMBER}),
                           headers={"Idempotency-Key": "privacy-1"})
        assert sent.status_code == 202, sent.text
        by_staff = intake.send("POST", "/v1/ratings", portal, rating(record["dossier_code"], channel="phone", device_id=None,
                                                                     respondent={"phone": STAFF_PHONE}))
        assert by_staff.json()["status"] == "flagged"  # matched through the keyed hashes alone
        refused = intake.send("POST", "/v1/ratings", kiosk, rating(record["dossier_code"], overall="ecstatic", respondent={"phone": PHONE}))
        assert refused.status_code == 422 and "912" not in refused.text  # the problem does not echo the input
        paper = f"Mã hồ sơ,Ngày khảo sát,Mức độ hài lòng,Số điện thoại,Số CCCD\n{dossier()['dossier_code']},18/11/2026,Hài lòng,{PHONE},{ID_NUMBER}\n"
        imported = httpx.post(f"{intake.url}/v1/imports/paper", content=paper.encode(), headers={"Authorization": f"Bearer {portal}"}, timeout=30)
        assert imported.status_code == 200 and imported.json()["accepted"] == 1
        records = read_topic(kafka_broker.bootstrap, f"{topic_prefix}ratings.v1", 2)
        records += read_topic(kafka_broker.bootstrap, f"{topic_prefix}units.v1", 3)
    finally:
        intake.stop()
    database = database_text(backend)
    assert record["dossier_code"] in database and "79.SNV.CB0099" in database  # the dump really holds the data
    topic_text = "\n".join(r.value.decode() for r in records)
    assert record["dossier_code"] in topic_text and "respondent_hash" in topic_text
    logs = intake.log_path.read_text(errors="replace")
    assert "service started" in logs
    for secret in SECRETS:
        assert secret not in database, f"{secret} in the database"
        assert secret not in topic_text, f"{secret} on Kafka"
        assert secret not in logs, f"{secret} in the logs"
