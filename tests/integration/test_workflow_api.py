"""Workflow on both databases against the real broker: tickets from events, roles, disputes, duties with a
set clock, mail through a real SMTP server, phúc tra, obligations and their XLSX reports, the calendar."""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from openpyxl import load_workbook

from services.workflow import store
from services.workflow.app import build
from services.workflow.duties import DutyReport, run_duties
from shared.auth import issue_jwt
from shared.periods import VIETNAM
from shared.settings import Settings
from tests.support import workflow as ev
from tests.support.infra import JWT_SECRET, Backend, cloud_events, read_topic, wait_until

pytestmark = pytest.mark.integration
HOME_AFFAIRS_MAIL = "sonoivu@example.gov.vn"
HEAD_MAIL = "giamdoc.snv@example.gov.vn"
T0 = datetime(2025, 4, 25, 9, 0, tzinfo=VIETNAM)  # Fri 25 Apr 2025, DOMAIN.md's worked example
COMPLETED = datetime(2025, 4, 24, 15, 0, tzinfo=VIETNAM)


def vn(*args: int) -> datetime:
    return datetime(*args, tzinfo=VIETNAM)


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


class Workflow:
    def __init__(self, client: TestClient, settings: Settings, clock: Clock) -> None:
        self.client, self.settings, self.clock = client, settings, clock
        self.runtime = client.app.state.runtime  # type: ignore[attr-defined]

    def token(self, role: str, scope: str | None = None, subject: str = "person") -> str:
        return issue_jwt(JWT_SECRET, subject, role, scope)

    def get(self, path: str, token: str | None, **params: Any):  # type: ignore[no-untyped-def]
        return self.client.get(path, params=params, headers={"Authorization": f"Bearer {token}"} if token else {})

    def post(self, path: str, token: str | None, body: Any = None, **headers: str):  # type: ignore[no-untyped-def]
        all_headers = {"Authorization": f"Bearer {token}"} if token else {}
        return self.client.post(path, json=body, headers={**all_headers, **headers})

    def send(self, *batch: Any) -> None:
        ev.produce(self.settings.kafka_bootstrap, self.settings.topic_prefix, *batch)

    def tickets(self, token: str | None = None, **params: Any) -> list[dict[str, Any]]:
        answer = self.get("/v1/tickets", token or self.token("home_affairs"), **params)
        assert answer.status_code == 200, answer.text
        return answer.json()["items"]

    def wait_tickets(self, count: int, **params: Any) -> list[dict[str, Any]]:
        return wait_until(lambda: len(items := self.tickets(**params)) == count and items, timeout=60,
                          what=f"{count} tickets {params}")

    def duties(self, now: datetime) -> DutyReport:
        self.clock.now = now
        return self.client.portal.call(run_duties, self.runtime.engine, self.settings, now)  # type: ignore[union-attr]

    def sql(self, statement: Any) -> list[Any]:
        async def run() -> list[Any]:
            async with self.runtime.engine.begin() as conn:
                result = await conn.execute(statement)
                return list(result.all()) if result.returns_rows else []

        return self.client.portal.call(run)  # type: ignore[union-attr]


@pytest.fixture
def smtp() -> Iterator[ev.SmtpSink]:
    sink = ev.SmtpSink()
    yield sink
    sink.close()


@pytest.fixture
def workflow(backend: Backend, kafka_broker, topic_prefix: str, smtp: ev.SmtpSink) -> Iterator[Workflow]:  # type: ignore[no-untyped-def]
    settings = Settings(
        database_url=backend.database_url, data_dir=backend.data_dir, kafka_bootstrap=kafka_broker.bootstrap,
        topic_prefix=topic_prefix, jwt_secret=JWT_SECRET, smtp_host="127.0.0.1", smtp_port=smtp.port,
        home_affairs_email=HOME_AFFAIRS_MAIL, workflow_tick_seconds=3600, outbox_poll_seconds=0.2,
        verification_sample_seed="test-seed",
    )
    clock = Clock(T0)
    with TestClient(build(settings, clock)) as client:
        api = Workflow(client, settings, clock)
        api.send(ev.unit("79", "TP. Hồ Chí Minh", "province"), ev.unit("79.SNV", "Sở Nội vụ", parent="79"),
                 ev.unit("79.SNV.P1", "Phòng Công chức", "agency", parent="79.SNV"), ev.unit("79.STP", "Sở Tư pháp", parent="79"))
        wait_until(lambda: len(api.sql(sa.select(store.units))) == 4, timeout=60, what="the unit registry")
        yield api


def test_a_dissatisfied_rating_opens_one_ticket_per_category_and_later_ones_attach(workflow: Workflow, kafka_broker) -> None:
    first = ev.rating("79.SNV", reasons=("attitude", "documents"), completed_at=COMPLETED, time=T0)
    workflow.send(first)
    tickets = {t["category"]: t for t in workflow.wait_tickets(2)}
    # Đà Nẵng Art. 3.3: 5 working days → Tue 6 May 2025 (DOMAIN.md); 15 → 26 Apr (Sat, worked), 28, 29 Apr,
    # 5-9 May, 12-16 May, 19, 20 May → Tue 20 May 2025.
    assert tickets["service_conditions"]["due_at"] == "2025-05-06T23:59:59+07:00"
    assert tickets["procedure"]["due_at"] == "2025-05-20T23:59:59+07:00"
    assert {t["status"] for t in tickets.values()} == {"open"} and {t["period"] for t in tickets.values()} == {"2025-04"}

    burst = [ev.rating("79.SNV", reasons=("attitude", "documents"), completed_at=COMPLETED, time=T0 + timedelta(hours=1))
             for _ in range(5)]
    costly = ev.rating("79.SNV", reasons=("informal_cost",), completed_at=COMPLETED, time=T0 + timedelta(hours=2))
    held = ev.rating("79.SNV", reasons=("attitude",), completed_at=COMPLETED, time=T0, flagged=True)
    satisfied = ev.rating("79.SNV", overall="satisfied", completed_at=COMPLETED, time=T0)
    workflow.send(*burst, costly, held, satisfied, first)  # `first` again: a redelivery attaches nothing
    wait_until(lambda: {t["category"]: t["rating_count"] for t in workflow.tickets()} == {"service_conditions": 7, "procedure": 6},
               timeout=60, what="the burst attached to the two open tickets")
    tickets = {t["category"]: t for t in workflow.tickets()}
    assert tickets["service_conditions"]["severity"] == "high"  # an informal cost joined it
    # The flagged rating waits for phúc tra instead of obliging a remedy.
    tasks = workflow.get("/v1/verifications", workflow.token("inspector"), reason="flagged").json()["items"]
    assert [t["rating_id"] for t in tasks] == [held.data["rating_id"]]

    published = cloud_events(read_topic(kafka_broker.bootstrap, f"{workflow.settings.topic_prefix}tickets.v1", 4, timeout=30))
    opened = [e for e in published if e["type"] == "vn.hailong.ticket.opened.v1"]
    assert sorted(e["data"]["category"] for e in opened) == ["procedure", "service_conditions"]
    latest = [e for e in published if e["data"]["ticket_id"] == tickets["service_conditions"]["id"]][-1]["data"]
    assert latest["rating_count"] == 7 and first.data["rating_id"] in latest["rating_ids"]
    assert "ab" * 32 not in str(published) and "CB0012" not in str(published)  # no respondent, no officer


def test_late_dossiers_threshold_crossings_and_repeated_years_open_their_own_tickets(workflow: Workflow, kafka_broker) -> None:
    on_time = ev.dossier("79.SNV", due_at=vn(2025, 4, 24, 17), completed_at=vn(2025, 4, 24, 18), time=T0)
    late = ev.dossier("79.SNV", due_at=vn(2025, 4, 23, 17), completed_at=vn(2025, 4, 24, 10), time=T0, code="H29-LATE-1")
    workflow.send(on_time, late, late)
    (letter,) = workflow.wait_tickets(1, category="apology_letter")
    # One working day after Fri 25 Apr 2025 is Sat 26 Apr: worked that year in exchange for Fri 2 May.
    assert letter["due_at"] == "2025-04-26T23:59:59+07:00"
    workflow.send(ev.crossing("79.SNV", "2025-04", time=T0), ev.crossing("79.SNV", "2025-Q2", time=T0 + timedelta(hours=1)))
    (plan,) = workflow.wait_tickets(1, category="unit_plan")
    assert plan["due_at"] == "2025-05-20T23:59:59+07:00"

    after_2026 = vn(2027, 1, 10, 9)
    workflow.send(
        ev.unit_score("79.STP", "2025", "not_satisfied", time=vn(2026, 1, 5)),
        ev.unit_score("79.STP", "2026", "not_satisfied", time=after_2026),
        ev.unit_score("79.SNV", "2026", "not_satisfied", time=after_2026),  # one year only: nothing
        ev.officer("79.STP.CB7", "79.STP", "Nguyễn Văn A"),
        ev.officer_score("79.STP.CB7", "79.STP", "2025", "not_satisfied", time=vn(2026, 1, 5)),
        ev.officer_score("79.STP.CB7", "79.STP", "2026", "not_satisfied", time=after_2026),
    )
    (repeated,) = workflow.wait_tickets(1, category="repeated_dissatisfaction")
    assert (repeated["unit_code"], repeated["escalated_to"], repeated["severity"]) == ("79.STP", "peoples_committee", "high")
    (review,) = workflow.wait_tickets(1, category="officer_review")
    assert review["restricted"] and review["officer_id"] == "79.STP.CB7"
    # The officer's record: their unit head and Home Affairs only — not admin, not the People's Committee.
    head = workflow.token("unit_head", "79.STP")
    assert workflow.get(f"/v1/tickets/{review['id']}", head).json()["officer_name"] == "Nguyễn Văn A"
    for role in ("admin", "peoples_committee", "inspector"):
        assert workflow.get(f"/v1/tickets/{review['id']}", workflow.token(role)).status_code == 404, role
    assert [t["category"] for t in workflow.tickets(workflow.token("peoples_committee"))] == ["repeated_dissatisfaction"]
    published = cloud_events(read_topic(kafka_broker.bootstrap, f"{workflow.settings.topic_prefix}tickets.v1", 3, timeout=20))
    assert review["id"] not in str(published) and "CB7" not in str(published)
