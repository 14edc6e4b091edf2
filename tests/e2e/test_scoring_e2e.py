"""Scoring as a real process on the real broker: a posted rating moves its unit's score and rank, the SSE
stream carries the change, flagged ratings count only once verified, and scores.v1 carries it all."""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer

from tests.support import scoring_events as se
from tests.support.data import dossier, rating
from tests.support.infra import Backend, ServiceProcess, cli, cloud_events, read_topic, service_env, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.e2e]
UNITS = [
    ("79", {"name": "Thành phố Hồ Chí Minh", "level": "province"}),
    ("79.P1", {"name": "Phường Bến Thành", "level": "ward", "parent_code": "79"}),
    ("79.P2", {"name": "Phường Sài Gòn", "level": "ward", "parent_code": "79"}),
]


class SseReader:
    """Reads GET /v1/rankings/stream in a thread and keeps every event."""

    def __init__(self, url: str) -> None:
        self.events: list[dict[str, Any]] = []
        self.content_type = ""
        self.connected = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, args=(url,), daemon=True)
        self._thread.start()

    def _read(self, url: str) -> None:
        try:
            with httpx.Client(timeout=httpx.Timeout(10, read=None)) as client, client.stream("GET", url) as response:
                self.content_type = response.headers["content-type"]
                self.connected.set()
                for line in response.iter_lines():
                    if self._stop.is_set():
                        return
                    if line.startswith("data:"):
                        self.events.append(json.loads(line[5:].strip()))
        except httpx.HTTPError:
            return  # the service stopped at the end of the test

    def stop(self) -> None:
        self._stop.set()


def _post(intake: ServiceProcess, portal: str, unit: str, overall: str) -> str:
    record = dossier(unit)
    assert intake.send("POST", "/v1/dossiers", portal, record).status_code == 202
    body = rating(record["dossier_code"], overall, channel="portal", device_id=None,
                  respondent={"phone": f"+8490{uuid.uuid4().int % 10**7:07d}"})
    answer = intake.send("POST", "/v1/ratings", portal, body)
    assert answer.status_code == 202, answer.text
    return answer.json()["rating_id"]


def _ranking(scoring: ServiceProcess) -> dict[str, tuple[int, float]]:
    try:
        answer = scoring.get("/v1/rankings", period="2026-11", parent="79")
    except httpx.TransportError:
        return {}
    if answer.status_code != 200:
        return {}
    return {item["unit_code"]: (item["rank"], item["score"]) for item in answer.json()["items"]}


def test_a_rating_moves_score_and_rank_live_and_flagged_ratings_wait_for_their_verdict(
    kafka_broker, topic_prefix: str, backend: Backend, tmp_path: Path
) -> None:
    env = service_env(backend, kafka_broker.bootstrap, topic_prefix, HAILONG_SCORING_MINIMUM_COUNT="3")
    intake = ServiceProcess("intake", env, tmp_path / "logs").start()
    scoring = ServiceProcess("scoring", env, tmp_path / "logs").start()
    sse: SseReader | None = None
    try:
        intake.wait_ready()
        scoring.wait_ready()
        admin = cli(env, "token", "admin")
        for code, unit in UNITS:
            assert intake.send("PUT", f"/v1/units/{code}", admin, unit).status_code == 200
        portal = cli(env, "keys", "create", "portal", "--name", "portal")
        for overall in ("satisfied", "satisfied", "dissatisfied"):
            _post(intake, portal, "79.P1", overall)
        for overall in ("satisfied", "very_satisfied", "satisfied", "normal"):
            _post(intake, portal, "79.P2", overall)
        ranking = wait_until(lambda: (r := _ranking(scoring)) and len(r) == 2 and r, timeout=60, what="both wards ranked")
        assert ranking["79.P2"][0] == 1 and ranking["79.P1"][0] == 2  # 3/4 = 75 ahead of 2/3 ≈ 66.7

        sse = SseReader(f"{scoring.url}/v1/rankings/stream?profile=satisfied-share&period=2026-11")
        assert sse.connected.wait(30) and sse.content_type.startswith("text/event-stream")
        time.sleep(0.5)  # the stream starts from the newest change: let it settle before the rating
        posted = time.monotonic()
        _post(intake, portal, "79.P1", "very_satisfied")  # 3/4 = 75: level with 79.P2, so both rank first
        ranking = wait_until(lambda: (r := _ranking(scoring)) and r.get("79.P1") == (1, 75.0) and r, timeout=30, interval=0.02,
                             what="79.P1's new score and rank")
        latency = time.monotonic() - posted
        print(f"rating posted → new score and rank at GET /v1/rankings: {latency * 1000:.0f} ms")
        assert ranking["79.P2"] == (1, 75.0)
        change = wait_until(
            lambda: next((e for e in sse.events if e["unit_code"] == "79.P1" and e["score"] == 75.0), None),  # type: ignore[union-attr]
            timeout=30, what="the SSE stream to deliver 79.P1's change",
        )
        assert change["ratings"] == 4 and change["band"] == "not_satisfied" and change["version"] >= 2

        # A flagged rating is held; the verdict "genuine" makes it count (events straight onto the broker).
        flagged = se.rating("D-FLAG", "79.P2", "dissatisfied", flagged=True)
        asyncio.run(_produce(kafka_broker.bootstrap, [(f"{topic_prefix}ratings.v1", flagged)]))
        time.sleep(1.0)
        assert scoring.get("/v1/units/79.P2/scores", period="2026-11").json()["ratings"] == 4
        verdict = se.verdict(se.rating_id_of(flagged), "D-FLAG", "genuine", unit_code="79.P2")
        asyncio.run(_produce(kafka_broker.bootstrap, [(f"{topic_prefix}verifications.v1", verdict)]))
        card = wait_until(lambda: (c := scoring.get("/v1/units/79.P2/scores", period="2026-11").json()).get("ratings") == 5 and c,
                          timeout=30, what="the verified rating to count")
        assert card["components"]["satisfied"] == 3 and card["score"] == 60.0

        # scores.v1: versions only go up per unit, period and profile; the province is the sum of its wards.
        published = cloud_events(read_topic(kafka_broker.bootstrap, f"{topic_prefix}scores.v1", 100_000, timeout=8))
        versions = [e["data"]["version"] for e in published if e["type"] == "vn.hailong.score.changed.v1"
                    and e["data"]["unit_code"] == "79.P1" and e["data"]["period"] == "2026-11" and e["data"]["profile"] == "satisfied-share"]
        assert versions == sorted(versions) and len(set(versions)) == len(versions) and versions[-1] >= 2
        province = scoring.get("/v1/units/79/scores", period="2026-Q4").json()
        assert (province["ratings"], province["components"]["satisfied"]) == (9, 6)
        assert any(e["type"] == "vn.hailong.score.threshold_crossed.v1" for e in published)
    finally:
        if sse is not None:
            sse.stop()
        intake.stop()
        scoring.stop()


async def _produce(bootstrap: str, records: list[tuple[str, Any]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        for topic, event in records:
            await producer.send_and_wait(topic, event.to_bytes(), key=(event.subject or "").encode())
    finally:
        await producer.stop()

