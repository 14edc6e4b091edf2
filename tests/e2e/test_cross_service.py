"""The four services together, each a real process on the real broker: what no single service can prove.

- A rating from a device registered to an officer is flagged by intake, held back by scoring, checked by
  workflow (phúc tra), and counted — with its remediation ticket — only once found genuine; intake shows the
  verdict.
- A sampled online rating found not genuine at workflow leaves the unit's figures at scoring (Đà Nẵng
  5697/2017 Art. 8.2).
- The counted ratings reach the publisher's public ranking and the map receives HCMC 104/2024's figure.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from shared.periods import VIETNAM
from tests.support.data import UNITS, dossier, rating
from tests.support.infra import (
    MAP_SECRET, MAP_TOKEN, Backend, FakeInstitutionMap, ServiceProcess, cli, service_env, wait_until,
)

pytestmark = [pytest.mark.integration, pytest.mark.e2e]
OFFICER_DEVICE = "TABLET-CB0001"
SAMPLED = 30  # at a 30% sample, the chance that none of 30 ratings is drawn is 0.7^30 ≈ 2e-5


def _card(scoring: ServiceProcess, period: str) -> dict[str, Any] | None:
    try:
        answer = scoring.get("/v1/units/79.SNV/scores", period=period, profile="satisfied-share")
    except httpx.TransportError:
        return None
    return answer.json() if answer.status_code == 200 else None


def _ratings_at_scoring(scoring: ServiceProcess, period: str) -> int:
    card = _card(scoring, period)
    return card["ratings"] if card else 0


def _post_rated_dossier(
    intake: ServiceProcess, portal: str, kiosk: str, overall: str = "satisfied", **changes: Any
) -> dict[str, Any]:
    """The one-stop-shop system reports the dossier (portal key); the citizen rates it at the kiosk."""
    record = dossier("79.SNV")
    assert intake.send("POST", "/v1/dossiers", portal, record).status_code == 202
    body = rating(record["dossier_code"], overall, respondent={"phone": f"+8491{uuid.uuid4().int % 10**7:07d}"}, **changes)
    answer = intake.send("POST", "/v1/ratings", kiosk, body)
    assert answer.status_code == 202, answer.text
    return answer.json()


def test_flags_verdicts_and_samples_travel_between_intake_workflow_scoring_and_publisher(
    kafka_broker, topic_prefix: str, backend: Backend, tmp_path: Path
) -> None:
    institution_map = FakeInstitutionMap()
    env = service_env(
        backend, kafka_broker.bootstrap, topic_prefix,
        HAILONG_MAP_URL=institution_map.url, HAILONG_MAP_TOKEN=MAP_TOKEN, HAILONG_MAP_SIGNING_SECRET=MAP_SECRET,
        HAILONG_WORKFLOW_TICK_SECONDS="1", HAILONG_VERIFICATION_SAMPLE_RATE="0.3",
    )
    services = {name: ServiceProcess(name, env, tmp_path / "logs") for name in ("intake", "scoring", "workflow", "publisher")}
    try:
        for service in services.values():
            service.start()
        for service in services.values():
            service.wait_ready()
        intake, scoring, workflow, publisher = (services[n] for n in ("intake", "scoring", "workflow", "publisher"))
        admin, inspector = cli(env, "token", "admin"), cli(env, "token", "inspector")
        portal = cli(env, "keys", "create", "portal", "--name", "portal")
        kiosk = cli(env, "keys", "create", "kiosk", "--unit", "79.SNV", "--name", "kiosk at 79.SNV")
        for code, unit in UNITS:
            assert intake.send("PUT", f"/v1/units/{code}", admin, unit).status_code == 200
        officer = {"name": "Trần Thị Cán Bộ", "device_ids": [OFFICER_DEVICE]}
        assert intake.send("PUT", "/v1/units/79.SNV/officers/79.SNV.CB0001", admin, officer).status_code == 200

        # --- a self-rating: flagged, held, verified genuine, then counted and remediated -----------------
        _post_rated_dossier(intake, portal, kiosk)
        flagged = _post_rated_dossier(intake, portal, kiosk, "dissatisfied", attitude="bad", reasons=["attitude"], device_id=OFFICER_DEVICE)
        assert flagged["status"] == "flagged"
        _post_rated_dossier(intake, portal, kiosk)  # after the flagged one on the unit's partition: once it counts, the flag was seen
        wait_until(lambda: _ratings_at_scoring(scoring, "2026-11") >= 2, timeout=60, what="the two clean ratings at scoring")
        assert _ratings_at_scoring(scoring, "2026-11") == 2, "a flagged rating counted before its verification"

        def flagged_task() -> dict[str, Any] | None:
            items = workflow.get("/v1/verifications", inspector, reason="flagged", status="pending").json()["items"]
            return next((t for t in items if t["rating_id"] == flagged["rating_id"]), None)

        task = wait_until(flagged_task, timeout=60, what="workflow's verification task for the flagged rating")
        assert workflow.get("/v1/tickets", admin, unit_code="79.SNV").json()["items"] == []  # no remedy for an unverified rating
        answer = workflow.send("POST", f"/v1/verifications/{task['id']}/result", inspector, {"verdict": "genuine", "note": "gọi lại xác minh"})
        assert answer.status_code == 200, answer.text

        card = wait_until(lambda: (c := _card(scoring, "2026-11")) and c["ratings"] == 3 and c, timeout=60,
                          what="the verified rating to count at scoring")
        assert card["components"]["satisfied"] == 2
        ticket = wait_until(lambda: workflow.get("/v1/tickets", admin, unit_code="79.SNV").json()["items"], timeout=60,
                            what="the remediation ticket of the genuine dissatisfied rating")
        assert [(t["category"], t["rating_count"]) for t in ticket] == [("service_conditions", 1)]
        shown = wait_until(lambda: (r := intake.get(f"/v1/ratings/{flagged['rating_id']}", admin).json()).get("verdict") and r,
                           timeout=60, what="intake to show workflow's verdict")
        assert shown["verdict"] == "genuine"

        # --- phúc tra: a sampled online rating found not genuine leaves the unit's figures --------------
        # A month whose sample is already due on the real clock; ratings arriving now get the same keyed chance.
        month = (datetime.now(VIETNAM).replace(day=1) - timedelta(days=32)).replace(day=10, hour=9, minute=0, second=0, microsecond=0)
        period = f"{month.year}-{month.month:02d}"
        completed = month.isoformat()
        submitted = (month + timedelta(minutes=5)).isoformat()
        records = [dossier("79.SNV", completed_at=completed, received_at=(month - timedelta(days=3)).isoformat(),
                           due_at=(month + timedelta(days=5)).isoformat()) for _ in range(SAMPLED)]
        assert intake.send("POST", "/v1/dossiers/batch", portal, {"items": records}).json()["failed"] == 0
        online = [rating(r["dossier_code"], "satisfied", channel="online", device_id=None, submitted_at=submitted,
                         respondent={"phone": f"+8492{i:07d}"}) for i, r in enumerate(records)]
        batch = intake.send("POST", "/v1/ratings/batch", portal, {"items": online}).json()
        assert (batch["accepted"], batch["failed"]) == (SAMPLED, 0)
        wait_until(lambda: _ratings_at_scoring(scoring, period) == SAMPLED, timeout=60, what=f"{SAMPLED} ratings of {period} at scoring")

        def sampled() -> list[dict[str, Any]]:
            return workflow.get("/v1/verifications", inspector, reason="sample", period=period, unit_code="79.SNV").json()["items"]

        tasks = wait_until(sampled, timeout=60, what=f"phúc tra tasks drawn from {period}'s online ratings")
        assert len(tasks) < SAMPLED  # late arrivals each get the sample's keyed 30% chance, not all of them
        answer = workflow.send("POST", f"/v1/verifications/{tasks[0]['id']}/result", inspector, {"verdict": "not_genuine"})
        assert answer.status_code == 200, answer.text
        wait_until(lambda: _ratings_at_scoring(scoring, period) == SAMPLED - 1, timeout=60,
                   what="the rating found not genuine to leave the unit's figures")

        # --- the publisher: the public ranking and the map follow ------------------------------------------
        def public_row() -> dict[str, Any] | None:
            items = publisher.get("/v1/public/rankings", period="2026-11", profile="satisfied-share").json()["items"]
            return next((i for i in items if i["unit_code"] == "79.SNV" and i["ratings"] == 3), None)

        row = wait_until(public_row, timeout=60, what="79.SNV with its three counted ratings in the public ranking")
        assert row["band"] == "insufficient_data" and row["score"] is None  # fewer than 5 ratings: no public figures
        assert 'data-unit="79.SNV"' in publisher.get("/", period="2026-11", profile="satisfied-share").text
        pushed = wait_until(lambda: [r for r in institution_map.delivered() if r.path == "/units/79.SNV/satisfaction/2026-11"],
                            timeout=60, what="the map to receive 79.SNV's November figure")
        assert all(r.headers["authorization"] == f"Bearer {MAP_TOKEN}" for r in pushed)
    finally:
        for service in services.values():
            service.stop()
        institution_map.close()
