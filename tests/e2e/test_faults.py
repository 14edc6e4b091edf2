"""Faults lose nothing and count nothing twice: broker down, consumer killed mid-batch, poison messages."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import pytest
from aiokafka import AIOKafkaProducer

from tests.support.data import UNITS, dossier, rating
from tests.support.infra import Backend, ServiceProcess, cli, cloud_events, read_topic, service_env, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.e2e]


def _post_rated_dossiers(intake: ServiceProcess, portal: str, count: int) -> list[str]:
    """Post `count` dossiers of 79.SNV, each with one satisfied rating; every answer must be 202."""
    rating_ids: list[str] = []
    with httpx.Client(base_url=intake.url, headers={"Authorization": f"Bearer {portal}"}, timeout=30) as client:
        for _ in range(count):
            record = dossier("79.SNV")
            assert client.post("/v1/dossiers", json=record).status_code == 202
            answer = client.post("/v1/ratings", json=rating(record["dossier_code"], channel="portal"))
            assert answer.status_code == 202, answer.text
            rating_ids.append(answer.json()["rating_id"])
    return rating_ids


def _setup_registry(intake: ServiceProcess, env: dict[str, str]) -> str:
    admin = cli(env, "token", "admin")
    for code, unit in UNITS:
        assert intake.send("PUT", f"/v1/units/{code}", admin, unit).status_code == 200
    return cli(env, "keys", "create", "portal", "--name", "portal")


def _november_card(scoring: ServiceProcess) -> dict | None:
    try:
        response = scoring.get("/v1/units/79.SNV/scores", period="2026-11")
    except httpx.TransportError:
        return None  # still starting
    return response.json() if response.status_code == 200 else None


def test_broker_down_intake_keeps_accepting_and_everything_arrives_once_it_is_back(
    backend: Backend, tmp_path: Path
) -> None:
    from deploy.kafka.runner import KafkaBroker, free_port
    from shared.topics import topic_specs

    broker = KafkaBroker(free_port(), tmp_path / "kafka", num_partitions=3, die_with_parent=True)
    broker.start_and_wait(timeout=120)
    broker.create_topics_sync(topic_specs("f.", 3))
    env = service_env(backend, broker.bootstrap, "f.")
    intake = ServiceProcess("intake", env, tmp_path / "logs").start()
    scoring = ServiceProcess("scoring", env, tmp_path / "logs").start()
    try:
        intake.wait_ready()
        portal = _setup_registry(intake, env)
        before = _post_rated_dossiers(intake, portal, 10)

        broker.stop()
        during = _post_rated_dossiers(intake, portal, 20)  # Kafka is down: still 202, into the outbox
        metrics = httpx.get(f"{intake.url}/metrics").text
        assert "hailong_outbox_backlog" in metrics

        broker.start_and_wait(timeout=120)
        card = wait_until(
            lambda: (c := _november_card(scoring)) and c["ratings"] >= 30 and c["dossiers"] >= 30 and c,
            timeout=90, what="all 30 dossiers and ratings counted after the broker came back",
        )
        assert (card["ratings"], card["dossiers"], card["components"]["satisfied"]) == (30, 30, 30)
        published = {e["data"]["rating_id"] for e in cloud_events(read_topic(broker.bootstrap, "f.ratings.v1", 30))}
        assert published == set(before + during)
    finally:
        intake.stop()
        scoring.stop()
        broker.stop()


def test_a_consumer_killed_mid_batch_and_restarted_counts_each_rating_once(
    kafka_broker, topic_prefix: str, backend: Backend, tmp_path: Path
) -> None:
    total = 300
    env = service_env(backend, kafka_broker.bootstrap, topic_prefix, HAILONG_CONSUMER_BATCH_SIZE="5")
    intake = ServiceProcess("intake", env, tmp_path / "logs").start()
    scoring = ServiceProcess("scoring", env, tmp_path / "logs")
    try:
        intake.wait_ready()
        portal = _setup_registry(intake, env)
        _post_rated_dossiers(intake, portal, total)
        assert len(read_topic(kafka_broker.bootstrap, f"{topic_prefix}ratings.v1", total)) == total

        scoring.start(wait=False)
        progress = wait_until(
            lambda: (c := _november_card(scoring)) and c["ratings"] > 0 and c["ratings"],
            timeout=60, interval=0.02, what="scoring to start counting",
        )
        scoring.kill()
        assert progress < total, "scoring finished before it could be killed mid-stream"

        scoring.start()
        card = wait_until(
            lambda: (c := _november_card(scoring)) and c["ratings"] >= total and c["dossiers"] >= total and c,
            timeout=120, what="scoring to catch up after the restart",
        )
        time.sleep(1)  # anything counted twice would show up after the catch-up
        card = _november_card(scoring)
        assert (card["ratings"], card["dossiers"], card["components"]["satisfied"]) == (total, total, total)
    finally:
        intake.stop()
        scoring.stop()


def test_a_poison_message_goes_to_the_dlq_and_the_consumer_carries_on(
    kafka_broker, topic_prefix: str, backend: Backend, tmp_path: Path
) -> None:
    env = service_env(backend, kafka_broker.bootstrap, topic_prefix, HAILONG_CONSUMER_MAX_RETRIES="2")
    intake = ServiceProcess("intake", env, tmp_path / "logs").start()
    scoring = ServiceProcess("scoring", env, tmp_path / "logs").start()
    topic = f"{topic_prefix}ratings.v1"
    garbage = b"\x00this is not a CloudEvent"
    bad_data = (
        b'{"specversion":"1.0","id":"poison-1","source":"/test","type":"vn.hailong.rating.accepted.v1",'
        b'"time":"2026-11-18T03:00:00Z","datacontenttype":"application/json","data":{"overall":"ecstatic"}}'
    )

    async def produce() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=kafka_broker.bootstrap)
        await producer.start()
        try:
            for value in (garbage, bad_data):
                await producer.send_and_wait(topic, value=value, key=b"79.SNV")
        finally:
            await producer.stop()

    try:
        intake.wait_ready()
        portal = _setup_registry(intake, env)
        asyncio.run(produce())
        _post_rated_dossiers(intake, portal, 1)

        card = wait_until(lambda: (c := _november_card(scoring)) and c["ratings"] == 1 and c, timeout=60, what="the good rating")
        assert card["ratings"] == 1
        dead = read_topic(kafka_broker.bootstrap, f"{topic}.dlq", 2)
        assert sorted(r.value for r in dead) == sorted([garbage, bad_data])
        for record in dead:
            headers = {k: v.decode() for k, v in record.headers}
            assert headers["hailong-original-topic"] == topic
            assert headers["hailong-failed-by"] == "scoring"
            assert headers["hailong-error"]
        assert scoring.get("/readyz").status_code == 200
    finally:
        intake.stop()
        scoring.stop()
