"""One dissatisfied rating travels kiosk → intake → Kafka → scoring → workflow → publisher → institution map."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.data import UNITS, dossier, rating
from tests.support.infra import (
    MAP_SECRET, MAP_TOKEN, Backend, FakeInstitutionMap, ServiceProcess, cli, cloud_events,
    read_topic, service_env, signature_ok, wait_until,
)

pytestmark = [pytest.mark.integration, pytest.mark.e2e]
PHONE = "+84901234567"


def test_a_dissatisfied_rating_reaches_every_service_and_the_map(
    kafka_broker, topic_prefix: str, backend: Backend, tmp_path: Path
) -> None:
    institution_map = FakeInstitutionMap(script=[503])
    env = service_env(
        backend, kafka_broker.bootstrap, topic_prefix,
        HAILONG_MAP_URL=institution_map.url, HAILONG_MAP_TOKEN=MAP_TOKEN, HAILONG_MAP_SIGNING_SECRET=MAP_SECRET,
    )
    services = {name: ServiceProcess(name, env, tmp_path / "logs") for name in ("intake", "scoring", "workflow", "publisher")}
    try:
        for service in services.values():
            service.start()
        for service in services.values():
            service.wait_ready()
        intake, scoring, workflow = services["intake"], services["scoring"], services["workflow"]
        admin = cli(env, "token", "admin")
        kiosk = cli(env, "keys", "create", "kiosk", "--unit", "79.SNV", "--name", "kiosk at 79.SNV")
        portal = cli(env, "keys", "create", "portal", "--name", "portal")

        for code, unit in UNITS:
            assert intake.send("PUT", f"/v1/units/{code}", admin, unit).status_code == 200
        record = dossier("79.SNV")
        assert intake.send("POST", "/v1/dossiers", portal, record).status_code == 202
        answer = intake.send(
            "POST", "/v1/ratings", kiosk,
            rating(record["dossier_code"], "dissatisfied", attitude="bad", reasons=["attitude", "processing_time"]),
        )
        assert answer.status_code == 202, answer.text
        assert answer.json()["status"] == "accepted"
        rating_id = answer.json()["rating_id"]

        # The CloudEvent on ratings.v1, read by a consumer that is not part of the system.
        events = [e for e in cloud_events(read_topic(kafka_broker.bootstrap, f"{topic_prefix}ratings.v1", 1)) if e["data"]["rating_id"] == rating_id]
        assert len(events) == 1
        event = events[0]
        assert event["specversion"] == "1.0" and event["type"] == "vn.hailong.rating.accepted.v1"
        assert event["subject"] == "79.SNV" and event["data"]["overall"] == "dissatisfied"
        assert PHONE not in json.dumps(event) and event["data"]["respondent_hash"]

        # Scoring: November 2026 in Việt Nam, one rating, none satisfied.
        card = wait_until(
            lambda: (r := scoring.get("/v1/units/79.SNV/scores", period="2026-11")).status_code == 200
            and r.json()["ratings"] >= 1 and r.json()["dossiers"] >= 1 and r.json(),
            what="the unit's score to count the rating and its dossier (two topics, applied separately)",
        )
        assert (card["ratings"], card["components"]["satisfied"], card["dossiers"]) == (1, 0, 1)
        assert card["unit_name"] == "Sở Nội vụ Thành phố Hồ Chí Minh"
        quarter = scoring.get("/v1/units/79.SNV/scores", period="2026-Q4").json()
        assert quarter["ratings"] == 1

        # Workflow: attitude → 5 working days, processing time → 15 working days (Da Nang 5697/2017 Art. 3).
        tickets = wait_until(
            lambda: len(items := workflow.get("/v1/tickets", admin, unit_code="79.SNV").json()["items"]) == 2 and items,
            what="two tickets",
        )
        by_category = {t["category"]: t for t in tickets}
        assert set(by_category) == {"service_conditions", "procedure"}
        assert all(t["status"] == "open" and t["period"] == "2026-11" for t in tickets)
        detail = workflow.get(f"/v1/tickets/{by_category['procedure']['id']}", admin).json()
        assert detail["rating_ids"] == [rating_id] and detail["history"][0]["action"] == "open"

        # Publisher: the map answered 503 first, then got the score with the contract's headers. The dossier and the
        # rating come on two topics: the map may first get the figure with the dossier alone, then the newer one.
        delivered = wait_until(
            lambda: [r for r in institution_map.delivered() if r.path == "/units/79.SNV/satisfaction/2026-11"
                     and json.loads(r.body)["ratings"] == 1],
            timeout=30, what="a delivered PUT for 79.SNV/2026-11 counting the rating",
        )
        # The map URL has no profile: only HCMC 104/2024's figure goes there, never five overwriting each other.
        assert {json.loads(r.body)["profile"] for r in institution_map.requests} == {"hcmc-2024"}
        assert institution_map.requests[0].answered == 503
        put = delivered[-1]
        assert put.headers["authorization"] == f"Bearer {MAP_TOKEN}"
        assert put.headers["idempotency-key"].startswith("79.SNV:2026-11:")
        assert signature_ok(put)
        body = json.loads(put.body)
        assert (body["unit_code"], body["period"], body["ratings"], body["dossiers"]) == ("79.SNV", "2026-11", 1, 1)
        assert body["version"] >= 1 and body["max_score"] == 22
    finally:
        for service in services.values():
            service.stop()
        institution_map.close()
    for service in services.values():
        assert PHONE not in service.log_path.read_text(errors="replace"), f"clear phone number in {service.name}'s log"
